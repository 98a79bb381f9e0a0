//! Namespace quotas (`topicSpacesConfiguration.quotas`, README "Quotas"; Event Grid's
//! per-session limits, docs/eventgrid.md §7.2), against the real binary over real sockets:
//! MQTT 5 PUBACK/PUBREC 0x97 past the messages per second of a session and past its bytes per
//! second, QoS 0 dropped and counted with the connection kept, an MQTT 3.1.1 publisher
//! disconnected, CONNACK 0x97 (v5) / 0x03 (v3.1.1) past the connects per second, a quiet client
//! unaffected by a noisy one, the counters, and no effect at all without quotas.
//!
//! Every test sets the same quotas ([`QUOTAS`]) on the namespace through the management API.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::http::mgmt_json;
use common::raw::{Client, Opts, PUBACK, PUBREC};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";

/// 5 messages and 1,000 payload bytes per second per session; 4 CONNECTs per second.
fn quotas() -> Value {
    json!({"sessionMessagesPerSecond": 5, "sessionBytesPerSecond": 1000, "connectsPerSecond": 4})
}

const QUOTA_EXCEEDED: u8 = 0x97;

/// A server whose namespace has [`quotas`].
fn start() -> Server {
    let srv = Server::start(&[("EVGRID_ADMIN_KEY", ADMIN)]);
    let r = mgmt_json(
        srv.http,
        ADMIN,
        "PUT",
        "/mgmt/namespaces/default",
        &json!({"properties": {"topicSpacesConfiguration": {"state": "Enabled", "quotas": quotas()}}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    srv
}

fn exceeded(srv: &Server, kind: &str) -> f64 {
    srv.metric(&format!(
        "evgrid_mqtt_quota_exceeded_total{{kind=\"{kind}\"}}"
    ))
}

/// Sends `n` QoS `qos` PUBLISHes of `len` bytes back to back (ids 1..=n), then reads their
/// acknowledgements (PUBACK, or PUBREC completed with PUBREL/PUBCOMP): the reason codes in order.
fn burst(c: &mut Client, topic: &str, n: u16, qos: u8, len: usize) -> Vec<u8> {
    let payload = vec![b'x'; len];
    for pid in 1..=n {
        c.publish(topic, &payload, qos, false, pid, &[]);
    }
    let codes: Vec<u8> = (1..=n)
        .map(|pid| {
            let p = c.expect(if qos == 1 { PUBACK } else { PUBREC });
            assert_eq!(u16::from_be_bytes([p.body[0], p.body[1]]), pid);
            p.body.get(2).copied().unwrap_or(0)
        })
        .collect();
    // QoS 2: complete the exchanges the broker accepted (a failure PUBREC ends its own).
    if qos == 2 {
        for (pid, code) in (1..=n).zip(&codes) {
            if *code == 0 {
                c.ack(common::raw::PUBREL, pid);
                c.expect(common::raw::PUBCOMP);
            }
        }
    }
    codes
}

/// Waits until the next whole second of the server's quota windows is likely fresh: a window
/// opens at the first PUBLISH after the last one ended, so a pause of more than a second
/// starts the next burst in a new window.
fn new_window() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn v5_over_the_message_quota_gets_0x97_and_a_quiet_client_is_unaffected() {
    let srv = start();
    let mut sub = Client::ok(srv.mqtt, Opts::v5("sub"));
    sub.sub("q/#", 1);
    let mut noisy = Client::ok(srv.mqtt, Opts::v5("noisy"));
    let mut quiet = Client::ok(srv.mqtt, Opts::v5("quiet"));

    let codes = burst(&mut noisy, "q/noisy", 20, 1, 10);
    let ok = codes.iter().filter(|c| **c == 0).count();
    let refused = codes.iter().filter(|c| **c == QUOTA_EXCEEDED).count();
    assert_eq!(ok + refused, 20, "{codes:?}");
    // Five per window; a burst that straddles a window boundary gets at most two windows' worth.
    assert!((5..=10).contains(&ok), "{codes:?}");
    assert_eq!(&codes[..5], &[0; 5], "the first five fit: {codes:?}");

    // The quiet client's quota is its own: accepted while the noisy one is refused.
    assert_eq!(quiet.pub_wait("q/quiet", b"hello", 1, false), 0);
    let mut got = Vec::new();
    for _ in 0..ok + 1 {
        got.push(sub.next_msg().topic);
    }
    assert_eq!(got.iter().filter(|t| *t == "q/noisy").count(), ok);
    assert!(got.contains(&"q/quiet".to_string()));
    sub.expect_silence(Duration::from_millis(300));

    // Refused messages are counted; the noisy client stays connected and gets a new window.
    assert_eq!(exceeded(&srv, "session_messages"), refused as f64);
    assert_eq!(exceeded(&srv, "session_bytes"), 0.0);
    new_window();
    let codes = burst(&mut noisy, "q/noisy", 6, 2, 10);
    assert_eq!(&codes[..5], &[0; 5], "QoS 2 in a new window: {codes:?}");
    assert_eq!(codes[5], QUOTA_EXCEEDED, "PUBREC 0x97: {codes:?}");
    noisy.ping();
}

#[test]
fn v5_over_the_byte_quota_gets_0x97_and_qos0_is_dropped_and_counted() {
    let srv = start();
    let mut sub = Client::ok(srv.mqtt, Opts::v5("sub"));
    sub.sub("b/#", 0);
    let mut c = Client::ok(srv.mqtt, Opts::v5("bytes"));
    // 400 + 400 fit in 1,000 bytes; the third would make 1,200.
    let codes = burst(&mut c, "b/1", 3, 1, 400);
    assert_eq!(codes, [0, 0, QUOTA_EXCEEDED]);
    assert_eq!(exceeded(&srv, "session_bytes"), 1.0);
    for _ in 0..2 {
        assert_eq!(sub.next_msg().payload.len(), 400);
    }

    // QoS 0 past the message quota: nothing answers, nothing is delivered, the client stays.
    new_window();
    for _ in 0..8 {
        c.publish("b/0", b"tiny", 0, false, 0, &[]);
    }
    c.ping();
    c.expect(common::raw::PINGRESP);
    for _ in 0..5 {
        assert_eq!(sub.next_msg().topic, "b/0");
    }
    sub.expect_silence(Duration::from_millis(300));
    assert_eq!(exceeded(&srv, "session_messages"), 3.0);
}

#[test]
fn v3_over_the_session_quota_is_disconnected() {
    let srv = start();
    let mut c = Client::ok(srv.mqtt, Opts::v3("v3-noisy"));
    for _ in 0..12 {
        // The broker may close before the last ones are written.
        let _ = {
            let mut body = Vec::new();
            common::raw::string(b"v3/t", &mut body);
            body.extend_from_slice(b"payload");
            let mut out = vec![common::raw::PUBLISH << 4];
            common::raw::varint(body.len(), &mut out);
            out.extend(body);
            c.write_raw(&out)
        };
    }
    c.until_closed(Duration::from_secs(5));
    assert!(exceeded(&srv, "session_messages") >= 1.0);
    assert_eq!(srv.metric("evgrid_mqtt_quota_disconnects_total"), 1.0);

    // QoS 1: no negative PUBACK in 3.1.1 either; closed without acknowledging the sixth.
    new_window();
    let mut c = Client::ok(srv.mqtt, Opts::v3("v3-qos1"));
    for pid in 1..=6 {
        c.publish("v3/t", b"p", 1, false, pid, &[]);
    }
    let got = c.until_closed(Duration::from_secs(5));
    let acks = got.iter().filter(|p| p.ty == PUBACK).count();
    assert!(acks <= 5, "{got:?}");
    assert_eq!(srv.metric("evgrid_mqtt_quota_disconnects_total"), 2.0);
    srv.assert_mqtt_alive();
}

#[test]
fn connects_over_the_namespace_quota_get_0x97_or_0x03() {
    let srv = start();
    let mut clients = Vec::new();
    let mut codes = Vec::new();
    let t0 = Instant::now();
    for i in 0..12 {
        let (c, ack) = Client::connect(srv.mqtt, Opts::v5(&format!("c{i}")));
        codes.push(ack.code);
        clients.push(c);
    }
    let spent = t0.elapsed();
    let ok = codes.iter().filter(|c| **c == 0).count();
    let refused = codes.iter().filter(|c| **c == QUOTA_EXCEEDED).count();
    assert_eq!(ok + refused, 12, "{codes:?}");
    // Four per second: twelve CONNECTs in well under two seconds cannot all pass.
    if spent < Duration::from_secs(1) {
        assert!(ok <= 8, "{codes:?} in {spent:?}");
    }
    assert!(refused >= 1, "{codes:?} in {spent:?}");
    assert_eq!(exceeded(&srv, "connects"), refused as f64);

    // MQTT 3.1.1 has no quota code: 0x03, server unavailable.
    let mut v3 = Vec::new();
    for i in 0..6 {
        v3.push(
            Client::connect(srv.mqtt, Opts::v3(&format!("v3-{i}")))
                .1
                .code,
        );
    }
    assert!(v3.contains(&3), "{v3:?}");
    assert!(v3.iter().all(|c| *c == 0 || *c == 3), "{v3:?}");

    // The next second admits again.
    new_window();
    Client::ok(srv.mqtt, Opts::v5("later"));
}

#[test]
fn without_quotas_nothing_is_refused() {
    let srv = Server::start(&[("EVGRID_ADMIN_KEY", ADMIN)]);
    let mut c = Client::ok(srv.mqtt, Opts::v5("free"));
    let codes = burst(&mut c, "f/1", 50, 1, 2000);
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    for i in 0..20 {
        Client::ok(srv.mqtt, Opts::v5(&format!("f{i}")));
    }
    for kind in ["session_messages", "session_bytes", "connects"] {
        assert_eq!(exceeded(&srv, kind), 0.0);
    }
}

#[test]
fn a_qos2_resend_over_the_quota_is_acknowledged_not_refused_or_routed_again() {
    let srv = start();
    let mut sub = Client::ok(srv.mqtt, Opts::v5("sub"));
    sub.sub("r/#", 1);
    let mut c = Client::ok(srv.mqtt, Opts::v5("resend"));
    new_window();
    // QoS 2 id 100 routed, its PUBREL held back; then, in one write so one window: four QoS 1
    // messages fill the quota, a fifth is refused, id 100 is resent (DUP), a sixth is refused.
    c.publish("r/once", b"once", 2, false, 100, &[]);
    assert_eq!(c.expect(PUBREC).body.get(2).copied().unwrap_or(0), 0);
    let mut wire = Vec::new();
    let mut packet = |first: u8, topic: &str, pid: u16, payload: &[u8]| {
        let mut body = Vec::new();
        common::raw::string(topic.as_bytes(), &mut body);
        body.extend_from_slice(&pid.to_be_bytes());
        body.push(0); // no properties
        body.extend_from_slice(payload);
        wire.push(first);
        common::raw::varint(body.len(), &mut wire);
        wire.extend(body);
    };
    let qos1 = common::raw::PUBLISH << 4 | 1 << 1;
    for pid in 1..=5 {
        packet(qos1, "r/x", pid, b"x");
    }
    packet(
        common::raw::PUBLISH << 4 | 0x08 | 2 << 1,
        "r/once",
        100,
        b"once",
    );
    packet(qos1, "r/x", 6, b"x");
    c.write_raw(&wire).unwrap();
    let mut got = std::collections::BTreeMap::new();
    for _ in 0..7 {
        let p = c.recv().expect("an acknowledgement");
        assert!(p.ty == PUBACK || p.ty == PUBREC, "{p:?}");
        let pid = u16::from_be_bytes([p.body[0], p.body[1]]);
        got.insert(pid, (p.ty, p.body.get(2).copied().unwrap_or(0)));
    }
    let codes: Vec<_> = (1..=6).map(|pid| got[&pid].1).collect();
    assert_eq!(
        codes,
        [0, 0, 0, 0, QUOTA_EXCEEDED, QUOTA_EXCEEDED],
        "{got:?}"
    );
    assert_eq!(got[&100], (PUBREC, 0), "the resend: {got:?}");
    c.ack(common::raw::PUBREL, 100);
    c.expect(common::raw::PUBCOMP);
    // One copy of the QoS 2 message, the four accepted QoS 1 ones.
    let mut topics: Vec<String> = (0..5).map(|_| sub.next_msg().topic).collect();
    topics.sort();
    assert_eq!(topics, ["r/once", "r/x", "r/x", "r/x", "r/x"]);
    sub.expect_silence(Duration::from_millis(300));
}
