//! Cluster mode (`cluster.urls`): evgrid nodes joined through a real 3-server NATS cluster on
//! loopback. MQTT across nodes — wildcards, QoS 0 and 1, order, interest that follows the
//! subscriptions, takeover of a client id by another node — readiness that follows the NATS
//! connection, and a NATS server killed under a running node.

mod common;

use std::time::Duration;

use common::nats::NatsCluster;
use common::{Server, wait_until};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// An evgrid node of the cluster whose client URLs are `urls`.
fn node(urls: &str) -> Server {
    Server::start(&[("EVGRID_CLUSTER_URLS", urls)])
}

fn opts(id: &str, s: &Server) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", s.mqtt.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// A client subscribed to `filters`; every PUBLISH it gets comes out of the receiver as
/// (topic, payload, qos). Returns once the SUBACK came.
async fn subscriber(
    id: &str,
    s: &Server,
    filters: &[(&str, QoS)],
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, String, QoS)>) {
    let (c, mut ev) = AsyncClient::new(opts(id, s), 1000);
    for (f, q) in filters {
        c.subscribe(*f, *q).await.unwrap();
    }
    let mut acked = 0;
    while acked < filters.len() {
        if let Event::Incoming(Packet::SubAck(_)) = ev.poll().await.unwrap() {
            acked += 1;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = ev.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = e {
                let _ = tx.send((
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                    p.qos,
                ));
            }
        }
    });
    (c, rx)
}

/// A connected publisher whose PUBACKs come out of the receiver (their packet ids).
async fn publisher(id: &str, s: &Server) -> (AsyncClient, mpsc::UnboundedReceiver<u16>) {
    let (c, mut ev) = AsyncClient::new(opts(id, s), 1000);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = ev.poll().await.unwrap() {
            break;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = ev.poll().await {
            if let Event::Incoming(Packet::PubAck(a)) = e {
                let _ = tx.send(a.pkid);
            }
        }
    });
    (c, rx)
}

/// Waits for `n` PUBACKs, each within 10 s.
async fn pubacks(acks: &mut mpsc::UnboundedReceiver<u16>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(10), acks.recv())
            .await
            .expect("a PUBACK within 10 s")
            .expect("the publisher is running");
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String, QoS)>) -> (String, String, QoS) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("the subscriber is running")
}

async fn nothing_more(rx: &mut mpsc::UnboundedReceiver<(String, String, QoS)>) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
        panic!("unexpected message {m:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_cross_nodes_by_wildcard_qos_and_order() {
    let nats = NatsCluster::start(3);
    // Each node is given a different server first: routing goes through the NATS cluster.
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    let (_sa, mut on_a) = subscriber(
        "sub-a",
        &a,
        &[
            ("fleet/+/telemetry", QoS::AtLeastOnce),
            ("alerts/#", QoS::AtMostOnce),
        ],
    )
    .await;
    // A subscriber on the publisher's own node gets each message once, as before.
    let (_sb, mut on_b) = subscriber("sub-b", &b, &[("fleet/#", QoS::AtLeastOnce)]).await;
    nats.wait_interest(1, "evgrid.m.fleet.d1.telemetry");
    nats.wait_interest(1, "evgrid.m.alerts.x");
    let (p, mut acks) = publisher("pub-b", &b).await;
    for (topic, qos, payload) in [
        ("fleet/d1/telemetry", QoS::AtMostOnce, "t0"),
        ("fleet/d2/telemetry", QoS::AtLeastOnce, "t1"),
        ("fleet/d2/status", QoS::AtLeastOnce, "s1"),
        ("alerts/site 1/fire.alarm", QoS::AtLeastOnce, "a1"),
        ("other/x", QoS::AtLeastOnce, "o1"),
    ] {
        p.publish(topic, qos, false, payload).await.unwrap();
    }
    assert_eq!(
        next(&mut on_a).await,
        ("fleet/d1/telemetry".into(), "t0".into(), QoS::AtMostOnce)
    );
    assert_eq!(
        next(&mut on_a).await,
        ("fleet/d2/telemetry".into(), "t1".into(), QoS::AtLeastOnce)
    );
    // Downgraded to the subscription's QoS 0; the level with a space and dots crosses intact.
    assert_eq!(
        next(&mut on_a).await,
        (
            "alerts/site 1/fire.alarm".into(),
            "a1".into(),
            QoS::AtMostOnce
        )
    );
    nothing_more(&mut on_a).await;
    for want in ["t0", "t1", "s1"] {
        assert_eq!(next(&mut on_b).await.1, want);
    }
    nothing_more(&mut on_b).await;
    pubacks(&mut acks, 4).await;
    // One publisher's messages keep their order on the other node.
    for i in 0..500 {
        p.publish(
            "fleet/d3/telemetry",
            QoS::AtLeastOnce,
            false,
            format!("{i}"),
        )
        .await
        .unwrap();
    }
    for i in 0..500 {
        assert_eq!(next(&mut on_a).await.1, format!("{i}"));
        assert_eq!(next(&mut on_b).await.1, format!("{i}"));
    }
    // Published on A, received on A and (through NATS) nowhere else: B has no interest.
    let (pa, _acks_a) = publisher("pub-a", &a).await;
    pa.publish("alerts/local", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(next(&mut on_a).await.1, "x");
    nothing_more(&mut on_b).await;
    assert_eq!(a.metric("evgrid_cluster_connected"), 1.0);
    assert!(a.metric("evgrid_cluster_mqtt_received_total") >= 503.0);
    assert!(b.metric("evgrid_cluster_mqtt_forwarded_total") >= 505.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_a_matching_subscription_receive_and_unsubscribing_stops_it() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.url(0));
    let b = node(&nats.url(2));
    let (sa, mut on_a) = subscriber("sub-a", &a, &[("x/y/#", QoS::AtLeastOnce)]).await;
    nats.wait_interest(2, "evgrid.m.x.y.1");
    let (p, _acks) = publisher("pub-b", &b).await;
    // `x/z` is outside A's interest: NATS does not carry it to A at all.
    for t in ["x/z", "x/y", "x/y/1/2"] {
        p.publish(t, QoS::AtLeastOnce, false, t).await.unwrap();
    }
    assert_eq!(next(&mut on_a).await.0, "x/y");
    assert_eq!(next(&mut on_a).await.0, "x/y/1/2");
    nothing_more(&mut on_a).await;
    assert_eq!(a.metric("evgrid_cluster_mqtt_received_total"), 2.0);
    sa.unsubscribe("x/y/#").await.unwrap();
    // Published until A stops getting them (the UNSUBACK is not awaited here).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = a.metric("evgrid_cluster_mqtt_received_total");
        p.publish("x/y/after", QoS::AtMostOnce, false, "z")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        if a.metric("evgrid_cluster_mqtt_received_total") == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still gets x/y/after"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_spanning_nodes_gets_each_message_once() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    let c = node(&nats.url(2));
    let filter = "$share/workers/jobs/+";
    let (_m1, mut m1) = subscriber("m1", &a, &[(filter, QoS::AtLeastOnce)]).await;
    let (_m2, mut m2) = subscriber("m2", &a, &[(filter, QoS::AtLeastOnce)]).await;
    let (_m3, mut m3) = subscriber("m3", &b, &[(filter, QoS::AtLeastOnce)]).await;
    // A plain subscriber beside the group still gets every message.
    let (_all, mut all) = subscriber("all", &b, &[("jobs/+", QoS::AtLeastOnce)]).await;
    // The plain subscriber's cover (B's) at the publishers' servers, and the group's queue
    // subscriptions at C's: any one of them alone would satisfy a looser wait.
    for n in [0, 2] {
        nats.wait_route_sub(n, "evgrid.m.jobs.>");
    }
    nats.wait_route_sub(2, "evgrid.m.jobs.*");
    let (pc, _ca) = publisher("pub-c", &c).await;
    let (pa, _aa) = publisher("pub-a", &a).await;
    // From a node without members, and from a node with some.
    for i in 0..60 {
        pc.publish("jobs/x", QoS::AtLeastOnce, false, format!("c{i}"))
            .await
            .unwrap();
        pa.publish("jobs/y", QoS::AtLeastOnce, false, format!("a{i}"))
            .await
            .unwrap();
    }
    let mut want: Vec<String> = (0..60)
        .flat_map(|i| [format!("c{i}"), format!("a{i}")])
        .collect();
    want.sort();
    let mut every = Vec::new();
    for _ in 0..120 {
        every.push(next(&mut all).await.1);
    }
    every.sort();
    assert_eq!(every, want);
    let mut got = Vec::new();
    let mut per_node = [0, 0];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 120 && std::time::Instant::now() < deadline {
        tokio::select! {
            Some(m) = m1.recv() => { per_node[0] += 1; got.push(m.1) }
            Some(m) = m2.recv() => { per_node[0] += 1; got.push(m.1) }
            Some(m) = m3.recv() => { per_node[1] += 1; got.push(m.1) }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    got.sort();
    assert_eq!(got, want, "each message to exactly one member");
    for rx in [&mut m1, &mut m2, &mut m3] {
        nothing_more(rx).await;
    }
    // NATS spreads them over both nodes (a node getting none of 120 is 2^-119 likely).
    assert!(per_node[0] > 0 && per_node[1] > 0, "{per_node:?}");
}

/// Subscribes `filter` on `s` as a new client and answers the retained message that arrives
/// (topic, payload, RETAIN flag), if one does within `wait`.
async fn retained_on(
    s: &Server,
    id: &str,
    filter: &str,
    wait: Duration,
) -> Option<(String, String, bool)> {
    let (c, mut ev) = AsyncClient::new(opts(id, s), 10);
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let got = tokio::time::timeout(wait, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = ev.poll().await.unwrap() {
                return (
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                    p.retain,
                );
            }
        }
    })
    .await
    .ok();
    let _ = c.disconnect().await;
    got
}

/// Subscribes as new clients on `s` until the retained message that arrives is `want` (`None`:
/// none arrives), for at most 10 s; fails with `what` otherwise.
async fn retained_becomes(
    s: &Server,
    id: &str,
    filter: &str,
    want: &Option<(String, String, bool)>,
    what: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = retained_on(s, id, filter, Duration::from_millis(500)).await;
        if &got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_the_clusters_and_reach_nodes_started_later() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    // Published on B while nobody anywhere subscribes; PUBACK after the bucket has it.
    let (p, mut acks) = publisher("pub-b", &b).await;
    p.publish("status/d1", QoS::AtLeastOnce, true, "on")
        .await
        .unwrap();
    pubacks(&mut acks, 1).await;
    let want = Some(("status/d1".to_string(), "on".to_string(), true));
    // Another node has it for a new subscriber.
    retained_becomes(
        &a,
        "late-a",
        "status/#",
        &want,
        "A never had the retained message",
    )
    .await;
    // A node started afterwards reads the bucket at start.
    let c = node(&nats.url(2));
    retained_becomes(
        &c,
        "late-c",
        "status/+",
        &want,
        "C never had the retained message",
    )
    .await;
    // Cleared on A (an empty retained message): gone on C too.
    let (pa, mut acks_a) = publisher("pub-a", &a).await;
    pa.publish("status/d1", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    pubacks(&mut acks_a, 1).await;
    retained_becomes(
        &c,
        "later-c",
        "status/#",
        &None,
        "C kept the cleared message",
    )
    .await;
    assert_eq!(b.metric("evgrid_cluster_mqtt_retained_not_kept_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_session_resumes_on_another_node_with_what_it_held() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    let persistent = |s: &Server| {
        let mut o = opts("dev-9", s);
        o.set_clean_session(false);
        o
    };
    // The device subscribes on A, then goes away.
    {
        let (c, mut ev) = AsyncClient::new(persistent(&a), 10);
        c.subscribe("cmd/dev-9", QoS::AtLeastOnce).await.unwrap();
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = ev.poll().await.unwrap() {
                break;
            }
        }
        c.disconnect().await.unwrap();
        while ev.poll().await.is_ok() {}
    }
    // Commands for it wait in its session on A.
    let (pa, mut acks) = publisher("cmd-a", &a).await;
    for i in 0..3 {
        pa.publish("cmd/dev-9", QoS::AtLeastOnce, false, format!("c{i}"))
            .await
            .unwrap();
    }
    pubacks(&mut acks, 3).await;
    // The cluster's session directory names A (written after A's CONNACK, without waiting).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // It comes back on B: the session moves, with its subscription and its three messages.
    let (_c, mut ev) = AsyncClient::new(persistent(&b), 10);
    let present = loop {
        if let Event::Incoming(Packet::ConnAck(ack)) = ev.poll().await.unwrap() {
            break ack.session_present;
        }
    };
    assert!(present, "the session did not move to B");
    let mut got = Vec::new();
    // Then a command published on A after the move reaches it on B.
    while got.len() < 4 {
        let e = tokio::time::timeout(Duration::from_secs(10), ev.poll())
            .await
            .expect("a message within 10 s")
            .unwrap();
        if let Event::Incoming(Packet::Publish(p)) = e {
            assert_eq!(p.qos, QoS::AtLeastOnce);
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
            if got.len() == 3 {
                nats.wait_interest(0, "evgrid.m.cmd.dev-9");
                pa.publish("cmd/dev-9", QoS::AtLeastOnce, false, "c3")
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(got, ["c0", "c1", "c2", "c3"]);
    assert_eq!(
        a.metric("evgrid_cluster_mqtt_sessions_moved_out_total"),
        1.0
    );
    assert_eq!(b.metric("evgrid_cluster_mqtt_sessions_moved_in_total"), 1.0);
    wait_until("A no longer holds it", || {
        a.metric("evgrid_mqtt_sessions") == 1.0
    });
}

/// Publishes `payload` at QoS 1 on `ev`'s connection and waits for its PUBACK; `false` if the
/// connection failed first.
async fn publish_acked(c: &AsyncClient, ev: &mut rumqttc::EventLoop, payload: String) -> bool {
    if c.publish("seq/x", QoS::AtLeastOnce, false, payload)
        .await
        .is_err()
    {
        return false;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return true,
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_acknowledged_message_and_its_clients_carry_on_elsewhere() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    let (_s, mut on_a) = subscriber("sub-a", &a, &[("seq/#", QoS::AtLeastOnce)]).await;
    nats.wait_interest(1, "evgrid.m.seq.x");
    // The publisher on B, one QoS 1 message at a time; B is killed half-way.
    let (mut c, mut ev) = AsyncClient::new(opts("pub-seq", &b), 10);
    let mut acked = Vec::new();
    let mut on_b = true;
    let mut i = 0;
    while i < 400 {
        if i == 200 && on_b {
            b.kill9();
        }
        if publish_acked(&c, &mut ev, format!("{i}")).await {
            acked.push(i);
            i += 1;
            continue;
        }
        assert!(on_b, "the publisher failed on A too");
        // It reconnects to the other node and publishes the unacknowledged message again.
        on_b = false;
        (c, ev) = AsyncClient::new(opts("pub-seq", &a), 10);
    }
    assert!(!on_b, "B was never found dead");
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 400 {
        let m = next(&mut on_a).await;
        got.insert(m.1.parse::<u32>().unwrap());
    }
    // Every acknowledged message arrived (a message whose PUBACK the kill swallowed may arrive
    // twice: QoS 1 is at least once).
    for i in &acked {
        assert!(got.contains(i), "acknowledged message {i} lost");
    }
    assert_eq!(acked.len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_connecting_to_another_node_takes_its_session_over() {
    let nats = NatsCluster::start(3);
    let a = node(&nats.urls());
    let b = node(&nats.urls());
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    // The device on A, subscribed.
    let (_c1, mut ev1) = AsyncClient::new(opts("device-7", &a), 10);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = ev1.poll().await.unwrap() {
            break;
        }
    }
    // The same client id connects to B: A closes its connection.
    let (_c2, mut ev2) = AsyncClient::new(opts("device-7", &b), 10);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = ev2.poll().await.unwrap() {
            break;
        }
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if ev1.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "A kept the taken-over connection open");
    assert_eq!(a.metric("evgrid_cluster_mqtt_takeovers_total"), 1.0);
    wait_until("A forgot the session", || {
        a.metric("evgrid_mqtt_sessions") == 0.0
    });
    // B keeps its client: nothing took it over there.
    assert_eq!(b.metric("evgrid_cluster_mqtt_takeovers_total"), 0.0);
    assert_eq!(b.metric("evgrid_mqtt_sessions"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_nats_connection_and_a_killed_server_is_survived() {
    let mut nats = NatsCluster::start(3);
    // A knows only server 0 and B only server 1 at start; the cluster announces the others.
    let a = node(&nats.url(0));
    let b = node(&nats.url(1));
    wait_until("both nodes ready", || {
        a.get("/readyz").0 == 200 && b.get("/readyz").0 == 200
    });
    let (_sa, mut on_a) = subscriber("sub-a", &a, &[("k/#", QoS::AtLeastOnce)]).await;
    nats.wait_interest(1, "evgrid.m.k.1");
    let (p, _acks) = publisher("pub-b", &b).await;
    p.publish("k/1", QoS::AtLeastOnce, false, "before")
        .await
        .unwrap();
    assert_eq!(next(&mut on_a).await.1, "before");
    // kill -9 of every server A may be on but B's: A reconnects to the one left.
    nats.kill9(0);
    nats.kill9(2);
    wait_until("A is back on the server that is left", || {
        a.get("/readyz").0 == 200 && a.metric("evgrid_cluster_connected") == 1.0
    });
    // Its subscriptions were made again on the new server: messages flow.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        p.publish("k/2", QoS::AtMostOnce, false, "after")
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(500), on_a.recv()).await {
            Ok(Some(m)) if m.1 == "after" => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "nothing after failover"
            ),
        }
    }
    // No NATS at all: not ready, with the reason; the node itself serves on.
    nats.kill9(1);
    wait_until("A reports it is not ready", || a.get("/readyz").0 == 503);
    let (_, body) = a.get("/readyz");
    assert!(body.contains("not connected to the NATS cluster"), "{body}");
    assert_eq!(a.metric("evgrid_cluster_connected"), 0.0);
    assert_eq!(a.get("/healthz").0, 200);
    a.assert_mqtt_alive();
    // Its own clients are served on: far more QoS 1 messages than the NATS client buffers are
    // acknowledged at once, and a shared group's member here gets them (the cluster cannot
    // choose a node for the group now).
    let (_m, mut member) = subscriber("member-a", &a, &[("$share/g/k/#", QoS::AtLeastOnce)]).await;
    let (pa, mut acks) = publisher("pub-a", &a).await;
    let sent = tokio::spawn(async move {
        for i in 0..3000 {
            pa.publish("k/3", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        pa
    });
    pubacks(&mut acks, 3000).await;
    let _pa = sent.await.unwrap();
    for i in 0..3000 {
        assert_eq!(next(&mut on_a).await.1, format!("{i}"));
        assert_eq!(next(&mut member).await.1, format!("{i}"));
    }
    assert!(a.metric("evgrid_cluster_mqtt_not_forwarded_total") >= 3000.0);
    // A server comes back: ready again without any step on the node.
    nats.restart(1);
    wait_until("A is ready again", || a.get("/readyz").0 == 200);
}

#[test]
fn a_node_starts_without_nats_and_says_why_it_is_not_ready() {
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = node(&format!("nats://127.0.0.1:{port}"));
    let (code, body) = s.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not connected to the NATS cluster"), "{body}");
    s.assert_mqtt_alive();
}

#[test]
fn bad_cluster_settings_are_refused_at_start_with_their_key() {
    for (var, val, key) in [
        ("EVGRID_CLUSTER_URLS", "http://[::1", "cluster.urls"),
        ("EVGRID_CLUSTER_PREFIX", "a.b", "cluster.prefix"),
        ("EVGRID_CLUSTER_USER", "u", "cluster.user"),
    ] {
        let dir = common::TempDir::new("cluster-cfg");
        let out = Server::command(&dir.0)
            .env("EVGRID_CLUSTER_URLS", "nats://127.0.0.1:4222")
            .env(var, val)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={val}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}={val}: {err}");
    }
}
