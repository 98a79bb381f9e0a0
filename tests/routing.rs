//! MQTT messages routed into the event grid (docs/eventgrid.md §7.6), over real sockets against
//! the real binary: MQTT publishers (v3.1.1 and v5, QoS 0 and 1) → the namespace's route topic →
//! a Queue subscription received over HTTP; MQTT subscribers of the same messages unaffected;
//! `topicSpacesConfiguration` validation; a route topic that disappears (v5 PUBACK reason code,
//! v3.1.1 PUBACK, the outcome counter); `state` Disabled; and no PUBACKed message lost across
//! `kill -9`.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::http::{Resp, request_with};
use common::raw::{Client, Opts, PUBACK};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const API: &str = "api-version=2024-06-01";
const ROUTE_ID: &str = "/providers/Microsoft.EventGrid/namespaces/default/topics/telemetry";

struct Eg {
    srv: Server,
    key: String,
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_MIN_LOCK_DURATION_SECS", "1"),
    ]
}

impl Eg {
    fn start() -> Eg {
        Eg::wrap(Server::start(&env()))
    }

    fn start_in(dir: &Path) -> Eg {
        Eg::wrap(Server::start_in(dir, &env()))
    }

    fn wrap(srv: Server) -> Eg {
        let r = common::http::mgmt(
            srv.http,
            ADMIN,
            "POST",
            "/mgmt/namespaces/default/listKeys",
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        let key = r.json()["key1"].as_str().unwrap().to_string();
        Eg { srv, key }
    }

    fn mgmt(&self, method: &str, path: &str, body: Value) -> Resp {
        common::http::mgmt(
            self.srv.http,
            ADMIN,
            method,
            path,
            body.to_string().as_bytes(),
        )
    }

    /// Topic `telemetry` with Queue subscription `all`, and the namespace routing into it.
    fn setup_route(&self) {
        let r = self.mgmt(
            "PUT",
            "/mgmt/namespaces/default/topics/telemetry",
            json!({"properties": {}}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        let r = self.mgmt(
            "PUT",
            "/mgmt/namespaces/default/topics/telemetry/eventSubscriptions/all",
            json!({"properties": {"deliveryConfiguration": {"deliveryMode": "Queue",
                "queue": {"receiveLockDurationInSeconds": 60}}}}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        self.route("Enabled", ROUTE_ID);
    }

    fn route(&self, state: &str, id: &str) {
        let r = self.put_ns(json!({"state": state, "routeTopicResourceId": id}));
        assert_eq!(r.status, 200, "{r:?}");
    }

    fn put_ns(&self, tsc: Value) -> Resp {
        self.mgmt(
            "PUT",
            "/mgmt/namespaces/default",
            json!({"properties": {"topicSpacesConfiguration": tsc}}),
        )
    }

    fn op(&self, action: &str, query: &str, body: &[u8]) -> Resp {
        let auth = format!("Authorization: SharedAccessKey {}", self.key);
        request_with(
            self.srv.http,
            "POST",
            &format!(
                "/namespaces/default/topics/telemetry/eventsubscriptions/all:{action}?{API}{query}"
            ),
            &[&auth, "Content-Type: application/json"],
            body,
            Duration::from_secs(30),
        )
    }

    /// Receives (and acknowledges) until `want` events came or `wait` passed.
    fn drain(&self, want: usize, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            let r = self.op("receive", "&maxEvents=100&maxWaitTime=10", b"");
            assert_eq!(r.status, 200, "{r:?}");
            let v = r.json();
            let items = v["value"].as_array().unwrap().clone();
            if items.is_empty() {
                continue;
            }
            let tokens: Vec<Value> = items
                .iter()
                .map(|i| i["brokerProperties"]["lockToken"].clone())
                .collect();
            let a = self.op(
                "acknowledge",
                "",
                json!({"lockTokens": tokens}).to_string().as_bytes(),
            );
            assert_eq!(a.status, 200, "{a:?}");
            out.extend(items.into_iter().map(|i| i["event"].clone()));
        }
        out
    }
}

fn data_of(ev: &Value) -> Vec<u8> {
    let b64 = ev["data_base64"]
        .as_str()
        .unwrap_or_else(|| panic!("no data_base64 in {ev}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[test]
fn mqtt_publishes_reach_a_queue_subscription_as_cloudevents() {
    let eg = Eg::start();
    eg.setup_route();
    let mut sub = Client::ok(eg.srv.mqtt, Opts::v5("watcher"));
    sub.sub("plant/#", 1);

    let mut v3 = Client::ok(eg.srv.mqtt, Opts::v3("dev-3"));
    v3.pub_wait("plant/a/temp", b"v3-qos0", 0, false);
    assert_eq!(v3.pub_wait("plant/a/temp", b"v3-qos1", 1, false), 0);
    let mut v5 = Client::ok(eg.srv.mqtt, Opts::v5("dev-5"));
    assert_eq!(v5.pub_wait("plant/b/hum", b"\x00\x01binary", 1, false), 0);
    v5.pub_wait("plant/b/hum", b"v5-qos0", 0, false);

    // MQTT subscribers get every message as before.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(sub.next_msg().payload);
    }
    seen.sort();
    let mut want: Vec<Vec<u8>> = vec![
        b"v3-qos0".to_vec(),
        b"v3-qos1".to_vec(),
        b"\x00\x01binary".to_vec(),
        b"v5-qos0".to_vec(),
    ];
    want.sort();
    assert_eq!(seen, want);

    let events = eg.drain(4, Duration::from_secs(20));
    assert_eq!(events.len(), 4, "{events:?}");
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ids = HashSet::new();
    for ev in &events {
        assert_eq!(ev["specversion"], "1.0", "{ev}");
        assert_eq!(ev["type"], "MQTT.EventPublished", "{ev}");
        assert_eq!(ev["source"], "default", "{ev}");
        assert!(
            ev["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{ev}"
        );
        assert!(
            ids.insert(ev["id"].as_str().unwrap().to_string()),
            "duplicate id in {ev}"
        );
        got.push((ev["subject"].as_str().unwrap().to_string(), data_of(ev)));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("plant/a/temp".into(), b"v3-qos0".to_vec()),
            ("plant/a/temp".into(), b"v3-qos1".to_vec()),
            ("plant/b/hum".into(), b"\x00\x01binary".to_vec()),
            ("plant/b/hum".into(), b"v5-qos0".to_vec()),
        ]
    );
    assert_eq!(
        eg.srv
            .metric("evgrid_mqtt_routed_total{outcome=\"routed\"}"),
        4.0
    );
    assert_eq!(
        eg.srv
            .metric("evgrid_mqtt_routed_total{outcome=\"no_route\"}"),
        0.0
    );

    // GET shows the configuration as normalised.
    let r = eg.mgmt("GET", "/mgmt/namespaces/default", Value::Null);
    let tsc = &r.json()["properties"]["topicSpacesConfiguration"];
    assert_eq!(tsc["state"], "Enabled", "{tsc}");
    assert_eq!(tsc["routeTopicResourceId"], ROUTE_ID, "{tsc}");
    assert_eq!(tsc["maximumSessionExpiryInHours"], 1, "{tsc}");
}

#[test]
fn disabled_routing_routes_nothing() {
    let eg = Eg::start();
    eg.setup_route();
    eg.route("Disabled", ROUTE_ID);
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5("dev"));
    assert_eq!(c.pub_wait("plant/x", b"kept out", 1, false), 0);
    let r = eg.op("receive", "&maxEvents=10&maxWaitTime=10", b"");
    assert_eq!(r.json()["value"], json!([]), "{r:?}");
    assert_eq!(
        eg.srv
            .metric("evgrid_mqtt_routed_total{outcome=\"routed\"}"),
        0.0
    );
}

#[test]
fn topic_spaces_configuration_is_validated() {
    let eg = Eg::start();
    let bad = |tsc: Value, want: &str| {
        let r = eg.put_ns(tsc.clone());
        assert_eq!(r.status, 400, "{tsc}: {r:?}");
        assert!(r.message().contains(want), "{tsc}: {}", r.message());
    };
    bad(
        json!({"state": "Enabled", "routeTopicResourceId": ROUTE_ID}),
        "telemetry",
    );
    bad(
        json!({"routeTopicResourceId": "/not/an/id"}),
        "routeTopicResourceId",
    );
    bad(json!({"state": "On"}), "state");
    bad(
        json!({"maximumSessionExpiryInHours": 9}),
        "maximumSessionExpiryInHours",
    );
    // A custom topic taking Event Grid schema cannot be a route topic.
    let r = eg.mgmt("PUT", "/mgmt/topics/egschema", json!({"properties": {}}));
    assert_eq!(r.status, 201, "{r:?}");
    bad(
        json!({"routeTopicResourceId": "/providers/Microsoft.EventGrid/topics/egschema"}),
        "CloudEventSchemaV1_0",
    );
    // One taking CloudEvents can.
    let r = eg.mgmt(
        "PUT",
        "/mgmt/topics/cetopic",
        json!({"properties": {"inputSchema": "CloudEventSchemaV1_0"}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = eg.put_ns(json!({"state": "Enabled",
        "routeTopicResourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/cetopic"}));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_deleted_route_topic_is_counted_and_reported_to_v5_publishers() {
    let eg = Eg::start();
    eg.setup_route();
    let mut sub = Client::ok(eg.srv.mqtt, Opts::v3("watcher"));
    sub.sub("plant/#", 1);
    let r = eg.mgmt(
        "DELETE",
        "/mgmt/namespaces/default/topics/telemetry",
        Value::Null,
    );
    assert!(r.status == 200 || r.status == 204, "{r:?}");

    let mut v5 = Client::ok(eg.srv.mqtt, Opts::v5("dev-5"));
    v5.publish("plant/a", b"one", 1, false, 9, &[]);
    let ack = v5.expect(PUBACK);
    // 0x83 implementation specific error, with a reason string saying why.
    assert_eq!(ack.body.get(2).copied(), Some(0x83), "{ack:?}");
    assert!(
        String::from_utf8_lossy(&ack.body).contains("not routed"),
        "{ack:?}"
    );
    // v3.1.1 has no negative acknowledgement: PUBACK, and the connection stays.
    let mut v3 = Client::ok(eg.srv.mqtt, Opts::v3("dev-3"));
    v3.pub_wait("plant/b", b"two", 1, false);
    v3.ping();
    // MQTT delivery is not affected.
    let got: HashSet<Vec<u8>> = (0..2).map(|_| sub.next_msg().payload).collect();
    assert_eq!(got, HashSet::from([b"one".to_vec(), b"two".to_vec()]));
    assert_eq!(
        eg.srv
            .metric("evgrid_mqtt_routed_total{outcome=\"no_route\"}"),
        2.0
    );
}

/// Every PUBACKed message is in the route topic after `kill -9` and a restart.
#[test]
fn acknowledged_messages_survive_kill9() {
    let dir = TempDir::new("route-kill9");
    let mut eg = Eg::start_in(&dir.0);
    eg.setup_route();
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for p in 0..4 {
        let (acked, stop, addr) = (acked.clone(), stop.clone(), eg.srv.mqtt);
        threads.push(std::thread::spawn(move || {
            let opts = if p % 2 == 0 {
                Opts::v3(&format!("p{p}"))
            } else {
                Opts::v5(&format!("p{p}"))
            };
            let mut c = Client::ok(addr, opts);
            c.set_timeout(Duration::from_secs(5));
            // A window of 10 publishes in flight; each PUBACK (in order) confirms one.
            let mut sent = std::collections::VecDeque::new();
            let (mut n, mut seq) = (0u16, 0u64);
            while !stop.load(Ordering::Relaxed) {
                while sent.len() < 10 {
                    n = n.wrapping_add(1).max(1);
                    seq += 1;
                    let payload = format!("p{p}-{seq}");
                    c.publish("plant/kill", payload.as_bytes(), 1, false, n, &[]);
                    sent.push_back((n, payload));
                }
                match c.recv() {
                    Some(pk) if pk.ty == PUBACK => {
                        let pid = u16::from_be_bytes([pk.body[0], pk.body[1]]);
                        let reason = pk.body.get(2).copied().unwrap_or(0);
                        let (want, payload) = sent.pop_front().unwrap();
                        assert_eq!(pid, want, "PUBACKs in order");
                        if reason == 0 {
                            acked.lock().unwrap().insert(payload);
                        }
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        }));
    }
    common::wait_until("a few hundred PUBACKs", || {
        acked.lock().unwrap().len() >= 300
    });
    eg.srv.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let acked = acked.lock().unwrap().clone();
    eg.srv.kill();
    let eg = Eg::start_in(&dir.0);
    let events = eg.drain(acked.len(), Duration::from_secs(60));
    let routed: HashSet<String> = events
        .iter()
        .map(|e| String::from_utf8(data_of(e)).unwrap())
        .collect();
    let lost: Vec<&String> = acked.difference(&routed).collect();
    assert!(
        lost.is_empty(),
        "{} of {} PUBACKed messages lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

/// `maximumSessionExpiryInHours` caps what v5 clients ask for while the configuration is
/// enabled (the broker's own `mqtt.max_session_expiry` is raised here so the namespace's cap is
/// the lower one).
#[test]
fn the_namespace_caps_session_expiry() {
    use common::raw::Prop;
    let mut e = env();
    e.push(("EVGRID_MQTT_MAX_SESSION_EXPIRY", "28800"));
    let eg = Eg::wrap(Server::start(&e));
    let ask = || {
        Opts::v5("keeper")
            .clean(false)
            .prop(Prop::Num(0x11, 20_000))
    };
    let (c, ack) = Client::connect(eg.srv.mqtt, ask());
    assert_eq!(
        common::raw::num(&ack.props, 0x11),
        None,
        "not capped while Disabled: {ack:?}"
    );
    c.disconnect();
    let r = eg.put_ns(json!({"state": "Enabled", "maximumSessionExpiryInHours": 2}));
    assert_eq!(r.status, 200, "{r:?}");
    let (_c, ack) = Client::connect(eg.srv.mqtt, ask());
    assert_eq!(common::raw::num(&ack.props, 0x11), Some(7_200), "{ack:?}");
}

/// The resource file declares routing too, with the route topic declared after the namespace.
#[test]
fn the_resource_file_declares_routing() {
    let dir = TempDir::new("route-resfile");
    let res = dir.0.join("resources.toml");
    std::fs::write(
        &res,
        format!(
            r#"
[[namespaces]]
name = "default"
properties = {{ topicSpacesConfiguration = {{ state = "Enabled", routeTopicResourceId = "{ROUTE_ID}" }} }}

[[namespaces.topics]]
name = "telemetry"

[[namespaces.topics.subscriptions]]
name = "all"
properties = {{ deliveryConfiguration = {{ deliveryMode = "Queue" }} }}
"#
        ),
    )
    .unwrap();
    let mut e = env();
    let res = res.to_str().unwrap().to_string();
    e.push(("EVGRID_RESOURCES", Box::leak(res.into_boxed_str())));
    let eg = Eg::wrap(Server::start_in(&dir.0.join("data"), &e));
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5("dev"));
    assert_eq!(c.pub_wait("plant/file", b"from the file", 1, false), 0);
    let events = eg.drain(1, Duration::from_secs(20));
    assert_eq!(data_of(&events[0]), b"from the file");
}

/// A Push subscription on the route topic with a filter gets only what it selects, while the
/// Queue subscription beside it gets everything.
#[test]
fn a_filtered_push_subscription_gets_only_its_subjects() {
    use common::webhook::Hook;
    let eg = Eg::start();
    eg.setup_route();
    let hook = Hook::ok();
    let r = eg.mgmt(
        "PUT",
        "/mgmt/namespaces/default/topics/telemetry/eventSubscriptions/alarms",
        json!({"properties": {
            "deliveryConfiguration": {"deliveryMode": "Push", "push": {
                "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/alarms")}}}},
            "filtersConfiguration": {"includedEventTypes": ["MQTT.EventPublished"], "filters": [
                {"operatorType": "StringEndsWith", "key": "subject", "values": ["/alarm"]}]}}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5("dev"));
    for (t, p) in [
        ("plant/1/temp", "21"),
        ("plant/1/alarm", "fire"),
        ("plant/2/temp", "22"),
    ] {
        assert_eq!(c.pub_wait(t, p.as_bytes(), 1, false), 0);
    }
    let pushed = hook.wait_delivered(1, Duration::from_secs(20));
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["subject"], "plant/1/alarm");
    assert_eq!(data_of(&pushed[0]), b"fire");
    assert_eq!(eg.drain(3, Duration::from_secs(20)).len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.delivered().len(), 1, "the filter let more through");
}

/// HTTP publishes to MQTT topics are routed too (docs/eventgrid.md §7.8: "every authorized
/// PUBLISH including HTTP publish"); when the route topic is gone the publisher gets 500 (MQTT
/// subscribers still get the message).
#[test]
fn http_publishes_to_mqtt_are_routed() {
    let eg = Eg::start();
    eg.setup_route();
    let mut sub = Client::ok(eg.srv.mqtt, Opts::v5("watcher"));
    sub.sub("cmd/#", 1);
    let publish = |topic: &str, body: &[u8]| {
        let auth = format!("Authorization: SharedAccessKey {}", eg.key);
        request_with(
            eg.srv.http,
            "POST",
            &format!(
                "/namespaces/default/mqtt/messages?topic={topic}&api-version=2025-02-15-preview"
            ),
            &[&auth, "Content-Type: application/octet-stream"],
            body,
            Duration::from_secs(10),
        )
    };
    let r = publish("cmd%2Fd1", b"reboot");
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(sub.next_msg().payload, b"reboot");
    let events = eg.drain(1, Duration::from_secs(20));
    assert_eq!(events[0]["subject"], "cmd/d1", "{}", events[0]);
    assert_eq!(events[0]["type"], "MQTT.EventPublished");
    assert_eq!(data_of(&events[0]), b"reboot");

    let r = eg.mgmt(
        "DELETE",
        "/mgmt/namespaces/default/topics/telemetry",
        Value::Null,
    );
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    let r = publish("cmd%2Fd2", b"halt");
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        r.message().contains("telemetry") || r.message().contains("route"),
        "{r:?}"
    );
    assert_eq!(sub.next_msg().payload, b"halt");
}

/// A message whose CloudEvent would be larger than `events.max_event_bytes` reaches MQTT
/// subscribers but not the route topic: v5 PUBACK 0x83, HTTP 413, counted as too_large; the
/// messages beside it in the same batch are routed.
#[test]
fn a_message_too_large_for_an_event_is_not_routed() {
    let mut e = env();
    e.push(("EVGRID_EVENTS_MAX_EVENT_BYTES", "2000"));
    let eg = Eg::wrap(Server::start(&e));
    eg.setup_route();
    let mut sub = Client::ok(eg.srv.mqtt, Opts::v5("watcher"));
    sub.sub("big/#", 1);
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5("dev"));
    // Three in one write, so they share a batch: small, too large once base64, small.
    c.publish("big/1", b"small-1", 1, false, 1, &[]);
    c.publish("big/2", &[7u8; 1800], 1, false, 2, &[]);
    c.publish("big/3", b"small-3", 1, false, 3, &[]);
    let codes: Vec<(u16, u8)> = (0..3)
        .map(|_| {
            let a = c.expect(PUBACK);
            (
                u16::from_be_bytes([a.body[0], a.body[1]]),
                a.body.get(2).copied().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(codes, vec![(1, 0), (2, 0x83), (3, 0)]);
    assert_eq!(
        (0..3).map(|_| sub.next_msg().payload.len()).sum::<usize>(),
        7 + 1800 + 7
    );
    let events = eg.drain(2, Duration::from_secs(20));
    let mut got: Vec<Vec<u8>> = events.iter().map(data_of).collect();
    got.sort();
    assert_eq!(got, vec![b"small-1".to_vec(), b"small-3".to_vec()]);
    assert_eq!(
        eg.srv
            .metric("evgrid_mqtt_routed_total{outcome=\"too_large\"}"),
        1.0
    );

    let auth = format!("Authorization: SharedAccessKey {}", eg.key);
    let r = request_with(
        eg.srv.http,
        "POST",
        "/namespaces/default/mqtt/messages?topic=big%2F4&api-version=2025-02-15-preview",
        &[&auth, "Content-Type: application/octet-stream"],
        &[9u8; 1800],
        Duration::from_secs(10),
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(sub.next_msg().payload.len(), 1800);

    // QoS 0: converted by the route topic, not before the publisher's next packet; the one
    // too large is counted there and the one beside it routed.
    c.publish("big/5", &[5u8; 1800], 0, false, 0, &[]);
    c.publish("big/6", b"small-6", 0, false, 0, &[]);
    assert_eq!(
        (0..2).map(|_| sub.next_msg().payload.len()).sum::<usize>(),
        1800 + 7
    );
    let events = eg.drain(1, Duration::from_secs(20));
    assert_eq!(
        events.iter().map(data_of).collect::<Vec<_>>(),
        vec![b"small-6".to_vec()]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while eg
        .srv
        .metric("evgrid_mqtt_routed_total{outcome=\"too_large\"}")
        < 3.0
    {
        assert!(
            Instant::now() < deadline,
            "the QoS 0 message too large was not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Rust MQTT 5 client's messages with every kind of enrichment, a structured and a binary-mode
/// CloudEvent, and a client that asked for no problem information (docs/eventgrid.md §7.6).
#[test]
fn v5_properties_enrichments_and_cloudevents_bindings() {
    use common::raw::Prop;
    let eg = Eg::start();
    eg.setup_route();
    let r = eg.put_ns(json!({"state": "Enabled", "routeTopicResourceId": ROUTE_ID,
        "routingEnrichments": {
            "static": [{"key": "site", "valueType": "String", "value": "plant-7"}],
            "dynamic": [
                {"key": "who", "value": "${client.authenticationName}"},
                {"key": "topic", "value": "${mqtt.message.topicName}"},
                {"key": "reply", "value": "${mqtt.message.responseTopic}"},
                {"key": "corr", "value": "${mqtt.message.correlationData}"},
                {"key": "pfi", "value": "${mqtt.message.pfi}"},
                {"key": "room", "value": "${mqtt.message.userProperties.room}"},
                {"key": "dotted", "value": "${mqtt.message.userProperties['a.b']}"},
                {"key": "floor", "value": "${client.attributes.floor}"}]}}));
    assert_eq!(r.status, 200, "{r:?}");
    let mut o = Opts::v5("dev-9");
    o.username = Some("device-9".into());
    let mut c = Client::ok(eg.srv.mqtt, o);
    let ct = |v: &str| Prop::Bytes(0x03, v.as_bytes().to_vec());
    c.publish(
        "plant/9/plain",
        br#"{"t":1}"#,
        1,
        false,
        1,
        &[
            Prop::Num(0x01, 1),
            Prop::Bytes(0x08, b"plant/9/reply".to_vec()),
            Prop::Bytes(0x09, b"\x01\x02".to_vec()),
            Prop::User("room".into(), "r1".into()),
            Prop::User("room".into(), "r2".into()),
            Prop::User("a.b".into(), "dot".into()),
        ],
    );
    let structured = json!({"specversion": "1.0", "id": "s-1", "source": "/dev/9",
        "type": "Dev.Reading", "time": "2026-01-02T03:04:05Z", "data": {"x": 1}});
    c.publish(
        "plant/9/structured",
        structured.to_string().as_bytes(),
        1,
        false,
        2,
        &[ct("application/cloudevents+json")],
    );
    c.publish(
        "plant/9/binary",
        b"\x00\x01",
        1,
        false,
        3,
        &[
            ct("application/octet-stream"),
            Prop::User("specversion".into(), "1.0".into()),
            Prop::User("id".into(), "b-1".into()),
            Prop::User("source".into(), "/dev/9".into()),
            Prop::User("type".into(), "Dev.Binary".into()),
        ],
    );
    for _ in 0..3 {
        assert_eq!(c.expect(PUBACK).body.get(2).copied().unwrap_or(0), 0);
    }
    let events = eg.drain(3, Duration::from_secs(20));
    let by = |s: &str| {
        events
            .iter()
            .find(|e| e["subject"] == s || e["id"] == s)
            .unwrap_or_else(|| panic!("{s} missing in {events:?}"))
            .clone()
    };
    let e = by("plant/9/plain");
    assert_eq!(e["data"], json!({"t": 1}), "{e}");
    assert_eq!(
        (&e["site"], &e["who"], &e["topic"], &e["reply"]),
        (
            &json!("plant-7"),
            &json!("device-9"),
            &json!("plant/9/plain"),
            &json!("plant/9/reply")
        ),
        "{e}"
    );
    assert_eq!((&e["corr"], &e["pfi"]), (&json!("AQI="), &json!(1)), "{e}");
    assert_eq!(
        (&e["room"], &e["dotted"], &e["floor"]),
        (&json!("r1,r2"), &json!("dot"), &json!("")),
        "{e}"
    );
    let e = by("s-1");
    assert_eq!(
        (&e["source"], &e["type"], &e["time"]),
        (
            &json!("/dev/9"),
            &json!("Dev.Reading"),
            &json!("2026-01-02T03:04:05Z")
        ),
        "{e}"
    );
    assert_eq!(
        (&e["data"], &e["site"], &e["topic"]),
        (
            &json!({"x": 1}),
            &json!("plant-7"),
            &json!("plant/9/structured")
        ),
        "{e}"
    );
    let e = by("b-1");
    assert_eq!(
        (&e["source"], &e["type"], &e["datacontenttype"]),
        (
            &json!("/dev/9"),
            &json!("Dev.Binary"),
            &json!("application/octet-stream")
        ),
        "{e}"
    );
    assert_eq!(data_of(&e), b"\x00\x01");

    // Request Problem Information 0: a failure PUBACK carries no reason string [MQTT-3.1.2-29].
    let r = eg.mgmt(
        "DELETE",
        "/mgmt/namespaces/default/topics/telemetry",
        Value::Null,
    );
    assert!(r.status == 200 || r.status == 204, "{r:?}");
    let mut quiet = Client::ok(eg.srv.mqtt, Opts::v5("quiet").prop(Prop::Num(0x17, 0)));
    quiet.publish("plant/q", b"x", 1, false, 5, &[]);
    let ack = quiet.expect(PUBACK);
    assert_eq!(ack.body.get(2).copied(), Some(0x83), "{ack:?}");
    assert!(
        !String::from_utf8_lossy(&ack.body).contains("not routed"),
        "{ack:?}"
    );
}

/// The grid's threads (its arbiters, the store writer) run at a lower priority than the MQTT
/// engine's (`events.nice`, default 10), so MQTT delivery comes first when the cores are busy.
#[test]
fn the_grid_runs_below_the_mqtt_engine() {
    let threads = |srv: &Server| -> Vec<(String, i64)> {
        let dir = format!("/proc/{}/task", srv.pid());
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
            .map(|stat| {
                let (head, tail) = stat.rsplit_once(')').unwrap();
                let comm = head.split_once('(').unwrap().1.to_string();
                // After the command: state is field 3, nice field 19.
                let nice = tail.split_whitespace().nth(16).unwrap().parse().unwrap();
                (comm, nice)
            })
            .collect()
    };
    let eg = Eg::start();
    let t = threads(&eg.srv);
    let nice_of = |t: &[(String, i64)], name: &str| {
        t.iter()
            .find(|(c, _)| c == name)
            .unwrap_or_else(|| panic!("no thread {name} in {t:?}"))
            .1
    };
    // Relative to the MQTT engine's: the whole test may run niced already.
    let base = nice_of(&t, "mqtt");
    let grid = (base + 10).min(19);
    assert_eq!(nice_of(&t, "evgrid-store"), grid, "{t:?}");
    // The grid's arbiters: one per core at least, besides the writer.
    assert!(t.iter().filter(|(_, n)| *n == grid).count() >= 2, "{t:?}");
    let mut e = env();
    e.push(("EVGRID_EVENTS_NICE", "0"));
    let srv = Server::start(&e);
    let t = threads(&srv);
    assert!(t.iter().all(|(_, n)| *n == base), "{t:?}");
}
