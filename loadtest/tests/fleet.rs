//! `fleet` against a real mosquitto: a small fleet with short periods runs every phase, and
//! the report accounts for every message (nothing lost, every device back with its session).

mod common;

use common::*;
use std::time::Duration;

fn fleet(b: &Broker, version: &str) -> Run {
    let args = with(
        &target(b),
        &[
            "--devices",
            "60",
            "--backend",
            "2",
            "-V",
            version,
            "--telemetry-interval",
            "300ms",
            "--alert-interval",
            "200ms",
            "--steady",
            "2s",
            "--storm-window",
            "1s",
            "--after",
            "1s",
            "--broker-pid",
            &b.pid().to_string(),
        ],
    );
    let mut all = vec!["fleet".to_string()];
    all.extend(args);
    run(&strs(&all), Duration::from_secs(60))
}

#[test]
fn a_small_fleet_runs_every_phase_and_loses_nothing() {
    let b = Broker::start("max_queued_messages 100000");
    for v in ["4", "5"] {
        let r = fleet(&b, v);
        let ctx = format!("MQTT {v}\nstdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
        assert_eq!(r.code(), 0, "{ctx}");
        assert_eq!(r.s("scenario"), "fleet", "{ctx}");
        assert_eq!(r.u("connect_storm.connected"), 60, "{ctx}");
        assert_eq!(r.u("connect_storm.failed"), 0, "{ctx}");
        assert_eq!(r.u("connect_storm.connack_us.count"), 60, "{ctx}");
        // Telemetry: 60 devices, one message per 300 ms over at least the 4 s of publishing.
        let acked = r.u("telemetry.acked");
        assert!(acked >= 60 * 10, "{ctx}");
        assert_eq!(r.u("telemetry.received"), acked, "{ctx}");
        assert_eq!(r.u("lost.telemetry"), 0, "{ctx}");
        assert!(r.u("telemetry.e2e_steady_us.count") > 0, "{ctx}");
        // Alerts: one per 200 ms to every device, all of them delivered.
        let alerts = r.u("broadcast.alerts");
        assert!(alerts >= 15, "{ctx}");
        assert_eq!(r.u("broadcast.alerts_acked"), alerts, "{ctx}");
        assert!(r.u("broadcast.complete") >= 8, "{ctx}");
        assert_eq!(r.u("lost.alerts"), 0, "{ctx}");
        // The storm: every device dropped and came back to the session the broker kept.
        assert_eq!(r.u("reconnect_storm.reconnected"), 60, "{ctx}");
        assert_eq!(r.u("reconnect_storm.sessions_kept"), 60, "{ctx}");
        assert_eq!(r.u("reconnect_storm.not_back"), 0, "{ctx}");
        let recovery = r.f("reconnect_storm.recovery_s");
        assert!(recovery > 0.0 && recovery < 10.0, "{ctx}");
        assert!(r.f("steady.broker_rss_mb") > 0.0, "{ctx}");
        assert!(r.stdout.contains("reconnect storm"), "{ctx}");
    }
}

#[test]
fn a_fleet_larger_than_the_descriptor_limit_is_refused_up_front() {
    let b = Broker::start("");
    let mut args = vec!["fleet".to_string()];
    args.extend(with(&target(&b), &["--devices", "5000000"]));
    let r = run(&strs(&args), Duration::from_secs(30));
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("file descriptors"), "{}", r.stderr);
}
