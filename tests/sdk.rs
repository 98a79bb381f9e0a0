//! Compatibility with the real `azure-eventgrid` Python SDK (4.22.1): runs
//! `tests/sdk/test_namespace.py` and `tests/sdk/test_basic.py` (pytest) against a fresh evgrid:
//! namespace publish (structured and binary mode), receive, acknowledge, release, reject, renew
//! locks, lock expiry, max delivery count; basic-tier publish to topics and domains (EventGridEvent, CloudEvent, dicts,
//! key and SAS credentials) delivered to a webhook; error mapping. And, against a server of its
//! own, `tests/sdk/test_mqtt_routing.py`: `mosquitto_pub` messages routed into a namespace topic
//! and received with `EventGridConsumerClient`, attribute by attribute.
//!
//! Needs a Python with the SDK and pytest: `SDK_PYTHON`, else `target/sdk-venv/bin/python`,
//! which `./scripts/test` creates. Without it this test fails (it never passes silently).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const SDK_VERSION: &str = "4.22.1";
const TIMEOUT: Duration = Duration::from_secs(300);

/// The Python to use. (Not an `EVGRID_*` variable: evgrid refuses those that are not settings,
/// and the server inherits this environment.)
fn python() -> PathBuf {
    let var = std::env::var_os("SDK_PYTHON");
    let py = match var {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python"),
    };
    assert!(
        py.exists(),
        "no Python with the azure-eventgrid SDK at {}: run ./scripts/test (it creates \
         target/sdk-venv), or set SDK_PYTHON to a Python with azure-eventgrid=={SDK_VERSION} \
         and pytest",
        py.display()
    );
    let out = Command::new(&py)
        .args([
            "-c",
            "import importlib.metadata as m, azure.eventgrid, pytest; \
             print(m.version('azure-eventgrid'))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(
        out.status.success(),
        "{} lacks azure-eventgrid or pytest: run ./scripts/test (it installs them)\n{}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        version,
        SDK_VERSION,
        "{} has azure-eventgrid {version}; this test pins {SDK_VERSION}: run ./scripts/test",
        py.display()
    );
    py
}

/// `POST /mgmt/namespaces/default/listKeys` → key1.
fn key1(srv: &Server) -> String {
    let mut s = std::net::TcpStream::connect(srv.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /mgmt/namespaces/default/listKeys HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {ADMIN_KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "listKeys: {buf}");
    let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["key1"].as_str().expect("key1").to_string()
}

#[test]
fn azure_eventgrid_python_sdk_namespace_and_basic_tier() {
    run_pytest(&["tests/sdk/test_namespace.py", "tests/sdk/test_basic.py"]);
}

/// MQTT messages routed into a namespace topic, received with the SDK (its own server: the test
/// changes the `default` namespace's routing).
#[test]
fn azure_eventgrid_python_sdk_receives_routed_mqtt_messages() {
    run_pytest(&["tests/sdk/test_mqtt_routing.py"]);
}

/// Runs pytest on `files` against a fresh evgrid; fails with pytest's output if any test fails.
fn run_pytest(files: &[&str]) {
    let py = python();
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN_KEY),
        ("EVGRID_EVENTS_MIN_LOCK_DURATION_SECS", "1"),
        ("EVGRID_STORE_BACKEND", "redb"),
    ]);
    let http = format!("http://{}", srv.http);
    let mut child = Command::new(&py)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-m", "pytest", "-q", "-rfEX", "-p", "no:cacheprovider"])
        .args(files)
        .env("EVGRID_ENDPOINT", format!("{http}/namespaces/default"))
        .env("EVGRID_KEY", key1(&srv))
        .env("EVGRID_ADMIN", ADMIN_KEY)
        .env("EVGRID_HTTP", &http)
        .env("EVGRID_MQTT", srv.mqtt.to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // Loopback must never go through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let report = format!("--- pytest stdout ---\n{out}\n--- pytest stderr ---\n{err}");
    match status {
        None => panic!("pytest did not finish within {TIMEOUT:?}; killed\n{report}"),
        Some(st) if !st.success() => panic!("pytest failed ({st})\n{report}"),
        Some(_) => eprintln!("{report}"),
    }
}
