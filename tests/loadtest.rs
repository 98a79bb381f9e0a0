//! evgrid under load from the bundled generator: every scenario at a modest rate, with the
//! generator's accounting (lost, duplicated, reordered) asserted, on MQTT 3.1.1 and 5.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, TempDir};

/// The `evgrid-loadtest` binary of this workspace (built by `cargo test --workspace`; built here
/// when only this package's tests run).
fn loadtest_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_evgrid")).with_file_name("evgrid-loadtest");
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

/// Runs the generator against `srv` with `args` (split on whitespace) for 2 s; returns its report.
fn run(srv: &Server, args: &str) -> serde_json::Value {
    let args: Vec<&str> = args.split_whitespace().collect();
    let dir = TempDir::new("lt");
    let json = dir.0.join("report.json");
    let port = srv.mqtt.port().to_string();
    let out = Command::new(loadtest_bin())
        .args(&args)
        .args(["-h", "127.0.0.1", "-p", &port, "--duration", "2s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "evgrid-loadtest {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

fn assert_clean(what: &str, r: &serde_json::Value) {
    let m = &r["messages"];
    assert_eq!(
        r["connections"]["failed"], 0,
        "{what}: connections failed: {r}"
    );
    assert!(
        m["expected"].as_u64().unwrap() > 0,
        "{what}: nothing expected: {m}"
    );
    assert_eq!(m["received"], m["expected"], "{what}: {m}");
    for k in ["lost", "duplicated", "reordered"] {
        assert_eq!(m[k], 0, "{what}: {k}: {m}");
    }
}

#[test]
fn generator_scenarios_against_evgrid_lose_nothing() {
    let srv = Server::start(&[]);
    for v in ["4", "5"] {
        for q in ["0", "1", "2"] {
            let r = run(
                &srv,
                &format!("fanin -V {v} -q {q} --publishers 10 --rate 2000"),
            );
            assert_clean(&format!("fanin v{v} q{q}"), &r);
        }
        let r = run(
            &srv,
            &format!("fanout -V {v} -q 1 --subscribers 50 --rate 100"),
        );
        assert_clean(&format!("fanout v{v}"), &r);
        let r = run(
            &srv,
            &format!("fanin -V {v} -q 1 --publishers 10 --shared 3 --rate 2000"),
        );
        assert_clean(&format!("shared v{v}"), &r);
    }
    let r = run(&srv, "p2p -q 1 --pairs 10 --rate 1000");
    assert_clean("p2p", &r);
    let rtt = &r["latency_us"]["rtt"];
    assert!(rtt["count"].as_u64().unwrap_or(0) > 0, "{rtt}");
}
