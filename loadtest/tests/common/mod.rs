//! Test helpers: a private mosquitto per test and a bounded runner for the
//! evgrid-loadtest binary.

#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "evlt-test-{}-{}-{}",
            std::process::id(),
            tag,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mosquitto_path() -> PathBuf {
    if let Ok(p) = std::env::var("MOSQUITTO") {
        return PathBuf::from(p);
    }
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/bin/mosquitto",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "mosquitto not found (looked in /usr/sbin, /usr/local/sbin, /usr/bin, /usr/local/bin): \
         install it with `apt-get install -y mosquitto` or set MOSQUITTO=/path/to/mosquitto"
    );
}

/// A mosquitto broker on a free loopback port, killed on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Broker {
    /// Starts mosquitto with `extra` config lines (TCP_NODELAY is always on:
    /// mosquitto's default Nagle adds up to 40 ms to small messages).
    pub fn start(extra: &str) -> Broker {
        let bin = mosquitto_path();
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = TempDir::new("mosq");
            let conf = dir.path("mosquitto.conf");
            std::fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n{extra}\n"),
            )
            .expect("write mosquitto.conf");
            let log = std::fs::File::create(dir.path("mosquitto.log")).expect("log file");
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Broker {
                        port,
                        child,
                        _dir: dir,
                    };
                }
                if let Ok(Some(st)) = child.try_wait() {
                    last_err = format!(
                        "mosquitto exited with {st}: {}",
                        std::fs::read_to_string(dir.path("mosquitto.log")).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "mosquitto did not listen within 5 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start mosquitto: {last_err}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Result of one bounded run of the binary.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub json: Option<Value>,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn report(&self) -> &Value {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report (exit {:?})\nstdout:\n{}\nstderr:\n{}",
                self.status, self.stdout, self.stderr
            )
        })
    }
    pub fn u(&self, path: &str) -> u64 {
        get(self.report(), path)
            .as_u64()
            .unwrap_or_else(|| panic!("{path} is not an unsigned number in {}", self.report()))
    }
    pub fn i(&self, path: &str) -> i64 {
        get(self.report(), path)
            .as_i64()
            .unwrap_or_else(|| panic!("{path} is not a number"))
    }
    pub fn f(&self, path: &str) -> f64 {
        get(self.report(), path)
            .as_f64()
            .unwrap_or_else(|| panic!("{path} is not a number"))
    }
    pub fn s(&self, path: &str) -> String {
        get(self.report(), path)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// `a.b.c` lookup in a JSON value.
pub fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_evgrid-loadtest")
}

/// Spawns the binary with `args` and a JSON report in `dir`.
pub fn spawn(dir: &TempDir, args: &[&str]) -> (Child, PathBuf) {
    let json = dir.path(&format!(
        "report-{}.json",
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let child = Command::new(bin())
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evgrid-loadtest");
    (child, json)
}

/// Waits for a spawned run, killing it after `limit`.
pub fn wait(mut child: Child, json: PathBuf, limit: Duration) -> Run {
    let deadline = Instant::now() + limit;
    // drain pipes in threads so a chatty child cannot block
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let st = child.wait().expect("wait");
            let stdout = t_out.join().unwrap_or_default();
            let stderr = t_err.join().unwrap_or_default();
            panic!(
                "evgrid-loadtest did not finish within {limit:?} ({st})\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    let json = std::fs::read_to_string(&json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    Run {
        status,
        stdout,
        stderr,
        json,
    }
}

/// Runs the binary to completion (bounded by `limit`).
pub fn run(args: &[&str], limit: Duration) -> Run {
    let dir = TempDir::new("run");
    let (child, json) = spawn(&dir, args);
    wait(child, json, limit)
}

/// Common arguments to target a broker.
pub fn target(b: &Broker) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        b.port.to_string(),
    ]
}

pub fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let mut v = base.to_vec();
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The invariants of a clean run on a healthy broker.
pub fn assert_clean(r: &Run) {
    let ctx = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code(), 0, "exit code\n{ctx}");
    let sent = r.u("messages.sent");
    let expected = r.u("messages.expected");
    assert!(sent > 0, "nothing sent\n{ctx}");
    assert_eq!(
        r.u("messages.received"),
        expected,
        "received != expected\n{ctx}"
    );
    assert_eq!(
        r.u("messages.unique"),
        expected,
        "unique != expected\n{ctx}"
    );
    assert_eq!(r.i("messages.lost"), 0, "lost\n{ctx}");
    assert_eq!(r.u("messages.duplicated"), 0, "duplicated\n{ctx}");
    assert_eq!(r.u("messages.reordered"), 0, "reordered\n{ctx}");
    assert_eq!(r.u("connections.failed"), 0, "connection failures\n{ctx}");
    assert_eq!(
        r.u("connections.lost_during_run"),
        0,
        "connections lost\n{ctx}"
    );
}
