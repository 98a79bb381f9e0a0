//! The binary's contract: defaults, configuration errors, graceful shutdown.

mod common;

use std::process::Command;
use std::time::Duration;

use common::raw::{Client, Opts};
use common::{Server, TempDir};

#[test]
fn bad_config_is_refused_before_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .env("EVGRID_MQTT_MAX_QOS", "7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt.max_qos"), "{err}");
    let dir = TempDir::new("cfg");
    let f = dir.0.join("evgrid.toml");
    std::fs::write(&f, "[mqtt]\nmax_inflight = \"many\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_inflight") && err.contains("evgrid.toml"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .env("EVGRID_MQTT_NO_SUCH", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("EVGRID_MQTT_NO_SUCH"));
}

#[test]
fn config_file_env_and_flags_apply_in_order() {
    let dir = TempDir::new("cfg2");
    let f = dir.0.join("evgrid.toml");
    std::fs::write(
        &f,
        "[mqtt]\nmax_qos = 1\nmax_inflight = 5\n[http]\nworkers = 2\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .args(["config", "--mqtt-bind", "127.0.0.1:9999", "--config"])
        .arg(&f)
        .env("EVGRID_MQTT_MAX_INFLIGHT", "9")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "max_qos = 1",
        "max_inflight = 9",
        "workers = 2",
        "bind = \"127.0.0.1:9999\"",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut srv = Server::start(&[]);
    let mut c = Client::ok(srv.mqtt, Opts::v5("bye"));
    c.set_timeout(Duration::from_secs(10));
    let st = srv.terminate();
    assert!(st.success(), "exit status {st:?}");
    assert!(c.closed(), "client connection closed on shutdown");
}
