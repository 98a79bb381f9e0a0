//! Test support: a real evgrid process on ephemeral ports, and a raw MQTT client that shows
//! every bit of every packet (flags, packet ids, reason codes, properties).
#![allow(dead_code)]

pub mod http;
pub mod jwt;
pub mod nats;
pub mod raw;
pub mod webhook;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Polls `f` every 20 ms until it holds; fails the test after 10 s, naming `what`.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running evgrid binary, killed on drop.
pub struct Server {
    child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// The management API key printed at first start (when none was configured).
    pub admin_key: Option<String>,
    /// Every other listener evgrid printed (`evgrid: NAME listening on ADDR`, printed before the
    /// MQTT and HTTP lines): `mqtt-tls`, `mqtt-ws`, `mqtt-wss`, `https`.
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    _dir: Option<TempDir>,
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "evgrid-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// Starts evgrid with `EVGRID_*` overrides, waits until both listeners are up.
    pub fn start(env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("srv");
        let mut s = Server::start_in(&dir.0, env);
        s._dir = Some(dir);
        s
    }

    /// Starts evgrid with its standard error captured (instead of inherited) into the returned
    /// buffer, for tests about what it logs.
    pub fn start_capturing_stderr(
        env: &[(&str, &str)],
    ) -> (Server, std::sync::Arc<std::sync::Mutex<String>>) {
        let dir = TempDir::new("srv");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut s = Server::spawn(&dir.0, env, Some(log.clone()));
        s._dir = Some(dir);
        (s, log)
    }

    /// The evgrid process id (to read its memory from `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts evgrid on a data directory the caller keeps (to restart on the same data).
    pub fn start_in(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(dir, env, None)
    }

    /// The evgrid command on `dir`, with ephemeral ports and warnings-only logging.
    pub fn command(dir: &std::path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evgrid"));
        cmd.args([
            "--mqtt-bind",
            "127.0.0.1:0",
            "--http-bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn");
        cmd
    }

    fn spawn(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        stderr: Option<std::sync::Arc<std::sync::Mutex<String>>>,
    ) -> Server {
        let mut cmd = Server::command(dir);
        cmd.stdout(Stdio::piped()).stderr(if stderr.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn evgrid");
        if let (Some(log), Some(err)) = (stderr, child.stderr.take()) {
            std::thread::spawn(move || {
                let mut r = BufReader::new(err);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    log.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = tx.send(line.trim().to_string());
                line.clear();
            }
        });
        let (mut mqtt, mut http, mut admin_key) = (None, None, None);
        let mut listeners = std::collections::HashMap::new();
        // The http line comes last; the mqtt one is missing when mqtt.tcp_enabled is false.
        while http.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("evgrid did not start");
            if let Some((_, k)) = line
                .split_once("API key (kept in ")
                .and_then(|(_, r)| r.split_once("): "))
            {
                admin_key = Some(k.to_string());
            } else if let Some(a) = line.strip_prefix("evgrid: mqtt listening on ") {
                mqtt = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("evgrid: http listening on ") {
                http = Some(a.parse().unwrap());
            } else if let Some((name, a)) = line
                .strip_prefix("evgrid: ")
                .and_then(|l| l.split_once(" listening on "))
            {
                listeners.insert(name.to_string(), a.parse().unwrap());
            }
        }
        Server {
            child,
            mqtt: mqtt.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            http: http.unwrap(),
            admin_key,
            listeners,
            _dir: None,
        }
    }

    /// The address of the listener evgrid announced as `name` (`mqtt-tls`, `https`, ...).
    pub fn listener(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("evgrid announced no {name} listener: {:?}", self.listeners))
    }

    /// GET on the HTTP port; returns (status, body). Bounded by a 5 s timeout.
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let status = buf[9..12].parse().unwrap();
        let body = buf
            .split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// One metric's value from /metrics (`name` includes labels, e.g. `x{qos="1"}`).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Other MQTT clients are still served: a QoS 1 round trip between a fresh v5 subscriber and
    /// a fresh v3.1.1 publisher.
    pub fn assert_mqtt_alive(&self) {
        use raw::{Client, Opts};
        let mut s = Client::ok(self.mqtt, Opts::v5("alive-s"));
        s.sub("alive", 1);
        let mut p = Client::ok(self.mqtt, Opts::v3("alive-p"));
        p.pub_wait("alive", b"yes", 1, false);
        assert_eq!(s.next_msg().payload, b"yes");
    }

    /// The child's resident set size in MiB, from /proc.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb / 1024.0
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -9`, through a shared reference (the process is reaped on drop). Returns once the
    /// process has exited (a zombie holds no files), so that a restart on the same data directory
    /// does not find the store still locked.
    pub fn kill9(&self) {
        let pid = self.child.id();
        let st = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match std::fs::read_to_string(&stat) {
                // The state follows the parenthesised command name.
                Ok(s) if !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')) => {}
                _ => return,
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pid {pid} outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        // Usually well under a second; the bound is for a loaded 2-core machine running a dozen
        // servers at once, still far below actix's 30 s grace that a hang would show as.
        for _ in 0..300 {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("evgrid did not stop within 15 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `evgrid-loadtest` binary of this workspace (built by `cargo test --workspace`; built here
/// when only this package's tests run).
pub fn loadtest_bin() -> std::path::PathBuf {
    let bin =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_evgrid")).with_file_name("evgrid-loadtest");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "evgrid-loadtest"])
            .status()
            .unwrap();
        assert!(st.success(), "building evgrid-loadtest failed");
    }
    bin
}

/// The paho-mqtt the test command installs (`paho-mqtt==2.1.0` in `target/sdk-venv`, or the
/// interpreter `SDK_PYTHON` names): the Python that runs `tests/ws/*.py` and `tests/auth/*.py`.
pub fn paho_python() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
    const PAHO_VERSION: &str = "2.1.0";
    let py = match std::env::var_os("SDK_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python"),
    };
    let out = Command::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, paho.mqtt; print(m.version('paho-mqtt'))",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}: run ./scripts/test (it creates target/sdk-venv with \
                 paho-mqtt=={PAHO_VERSION}), or set SDK_PYTHON",
                py.display()
            )
        });
    assert!(
        out.status.success(),
        "{} lacks paho-mqtt: run ./scripts/test (it installs it)\n{}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(v, PAHO_VERSION, "{} has paho-mqtt {v}", py.display());
    py
}
