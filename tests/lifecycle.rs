//! MQTT client lifecycle events on system topics (docs/eventgrid.md §7.7), against the real
//! binary over real sockets: the system topic resource and its errors, Connected and
//! Disconnected events at a webhook (Event Grid schema, CloudEvents, a filtered subscription)
//! with the disconnection reason of a clean DISCONNECT, a dropped socket, a keep-alive timeout,
//! a takeover, a malformed packet, a stalled subscriber and a server shutdown, sequence numbers
//! per session name, restart, and a storm of reconnecting clients against a tiny backlog.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{Resp, mgmt_json};
use common::raw::{Client, DISCONNECT, Opts};
use common::webhook::{Hook, Recorded};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const WAIT: Duration = Duration::from_secs(20);
const SOURCE: &str = "/providers/Microsoft.EventGrid/namespaces/default";
const CONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionConnected";
const DISCONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionDisconnected";

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_TICK_MS", "20"),
        ("EVGRID_PUSH_RETRY_SCHEDULE_MS", "200,300,400"),
    ];
    env.extend_from_slice(extra);
    env
}

fn mgmt(srv: &Server, method: &str, path: &str, body: &Value) -> Resp {
    mgmt_json(srv.http, ADMIN, method, path, body)
}

fn system_topic(srv: &Server, name: &str, source: &str) -> Resp {
    mgmt(
        srv,
        "PUT",
        &format!("/mgmt/systemTopics/{name}"),
        &json!({"properties": {"source": source, "topicType": "Microsoft.EventGrid.Namespaces"}}),
    )
}

fn hook_sub(srv: &Server, topic: &str, name: &str, url: &str, extra: Value) {
    let mut props =
        json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}});
    if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
        p.extend(e);
    }
    let r = mgmt(
        srv,
        "PUT",
        &format!("/mgmt/systemTopics/{topic}/eventSubscriptions/{name}"),
        &json!({ "properties": props }),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["properties"]["provisioningState"], "Succeeded");
}

/// Events delivered to `path` (answered 2xx), in arrival order.
fn delivered_at(reqs: &[Recorded], path: &str) -> Vec<Value> {
    reqs.iter()
        .filter(|r| r.is_notification() && r.path == path && (200..=204).contains(&r.answered))
        .flat_map(Recorded::events)
        .collect()
}

/// The event's data: `data` in both schemas.
fn session_of(e: &Value) -> &str {
    e["data"]["clientSessionName"].as_str().unwrap_or_default()
}

/// Waits until `path` got `n` events of session `session`; answers them sorted by (sequence
/// number, Connected before Disconnected), as a consumer keeping the latest state would.
fn wait_session(hook: &Hook, path: &str, session: &str, n: usize) -> Vec<Value> {
    let reqs = hook.wait(WAIT, &format!("{n} events of {session} at {path}"), |rs| {
        delivered_at(rs, path)
            .iter()
            .filter(|e| session_of(e) == session)
            .count()
            >= n
    });
    let mut evs: Vec<Value> = delivered_at(&reqs, path)
        .into_iter()
        .filter(|e| session_of(e) == session)
        .collect();
    let ty = |e: &Value| {
        e.get("eventType")
            .or_else(|| e.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    evs.sort_by_key(|e| (e["data"]["sequenceNumber"].as_i64(), ty(e) == DISCONNECTED));
    assert_eq!(evs.len(), n, "{evs:#?}");
    evs
}

/// (eventType, sequenceNumber, disconnectionReason) of Event Grid schema events.
fn steps(evs: &[Value]) -> Vec<(String, i64, String)> {
    evs.iter()
        .map(|e| {
            (
                e["eventType"]
                    .as_str()
                    .unwrap_or_default()
                    .replace("Microsoft.EventGrid.MQTTClientSession", ""),
                e["data"]["sequenceNumber"].as_i64().unwrap_or(-1),
                e["data"]["disconnectionReason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn step(ty: &str, seq: i64, reason: &str) -> (String, i64, String) {
    (ty.to_string(), seq, reason.to_string())
}

#[test]
fn system_topic_resource_and_its_errors() {
    let srv = Server::start(&env(&[]));
    let r = system_topic(&srv, "lifecycle", SOURCE);
    assert_eq!(r.status, 201, "{r:?}");
    let doc = r.json();
    assert_eq!(
        doc["id"],
        "/providers/Microsoft.EventGrid/systemTopics/lifecycle"
    );
    assert_eq!(doc["type"], "Microsoft.EventGrid/systemTopics");
    let p = &doc["properties"];
    assert_eq!(p["source"], SOURCE);
    assert_eq!(p["topicType"], "Microsoft.EventGrid.Namespaces");
    assert_eq!(p["provisioningState"], "Succeeded");
    let metric_id = p["metricResourceId"].as_str().unwrap().to_string();
    assert_eq!(metric_id.len(), 36, "{metric_id}");

    // Updating keeps the metric id; GET and list show the same document.
    let r = system_topic(&srv, "lifecycle", SOURCE);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["properties"]["metricResourceId"],
        metric_id.as_str()
    );
    let got = mgmt(&srv, "GET", "/mgmt/systemTopics/LIFECYCLE", &Value::Null);
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), r.json());
    let list = mgmt(&srv, "GET", "/mgmt/systemTopics", &Value::Null).json();
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");

    // Errors: status and sentence.
    let bad_type = mgmt(
        &srv,
        "PUT",
        "/mgmt/systemTopics/storage",
        &json!({"properties": {"source": SOURCE, "topicType": "Microsoft.Storage.StorageAccounts"}}),
    );
    assert_eq!(bad_type.status, 400, "{bad_type:?}");
    assert_eq!(bad_type.code(), "BadRequest");
    assert_eq!(
        bad_type.message(),
        "properties.topicType 'Microsoft.Storage.StorageAccounts' is not supported; the only topic type supported is 'Microsoft.EventGrid.Namespaces' (MQTT client lifecycle events of a namespace)"
    );
    let missing = system_topic(
        &srv,
        "other",
        "/subscriptions/0/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/nope",
    );
    assert_eq!(missing.status, 400, "{missing:?}");
    assert_eq!(
        missing.message(),
        "The namespace 'nope' that properties.source '/subscriptions/0/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/nope' names does not exist."
    );
    // The same namespace with an ARM prefix and other case is the same source.
    let dup = system_topic(
        &srv,
        "second",
        "/subscriptions/0/resourceGroups/rg/providers/microsoft.eventgrid/namespaces/DEFAULT",
    );
    assert_eq!(dup.status, 400, "{dup:?}");
    assert_eq!(
        dup.message(),
        format!(
            "The system topic 'lifecycle' already has the source '{SOURCE}'; a source can have only one system topic."
        )
    );
    let not_ns = system_topic(&srv, "other", "/providers/Microsoft.EventGrid/topics/t");
    assert_eq!(not_ns.status, 400);
    assert!(
        not_ns
            .message()
            .contains("is not the resource id of an Event Grid namespace"),
        "{not_ns:?}"
    );
    let bad_name = system_topic(&srv, "a_b", SOURCE);
    assert_eq!(bad_name.status, 400);
    assert!(
        bad_name
            .message()
            .contains("The system topic name 'a_b' is invalid"),
        "{bad_name:?}"
    );
    let r = mgmt(&srv, "PUT", "/mgmt/namespaces/other", &Value::Null);
    assert_eq!(r.status, 201, "{r:?}");
    let moved = system_topic(
        &srv,
        "lifecycle",
        "/providers/Microsoft.EventGrid/namespaces/other",
    );
    assert_eq!(moved.status, 400);
    assert!(
        moved
            .message()
            .starts_with("properties.source cannot be changed"),
        "{moved:?}"
    );
    // A system topic has no publish endpoint and no keys.
    let keys = mgmt(
        &srv,
        "POST",
        "/mgmt/systemTopics/lifecycle/listKeys",
        &Value::Null,
    );
    assert_eq!(keys.status, 404, "{keys:?}");

    // Deleting it deletes its subscriptions; then the source is free again.
    let hook = Hook::ok();
    hook_sub(&srv, "lifecycle", "ops", &hook.url("/h"), json!({}));
    let subs = mgmt(
        &srv,
        "GET",
        "/mgmt/systemTopics/lifecycle/eventSubscriptions",
        &Value::Null,
    );
    assert_eq!(
        subs.json()["value"][0]["properties"]["topic"],
        "/providers/Microsoft.EventGrid/systemTopics/lifecycle"
    );
    let del = mgmt(&srv, "DELETE", "/mgmt/systemTopics/lifecycle", &Value::Null);
    assert_eq!(del.status, 200, "{del:?}");
    let gone = mgmt(
        &srv,
        "GET",
        "/mgmt/systemTopics/lifecycle/eventSubscriptions/ops",
        &Value::Null,
    );
    assert_eq!(gone.status, 404, "{gone:?}");
    assert_eq!(gone.message(), "The system topic was not found.");
    let again = system_topic(&srv, "second", SOURCE);
    assert_eq!(again.status, 201, "{again:?}");
}

#[test]
fn connects_and_disconnects_reach_webhooks_with_their_reasons() {
    let srv = Server::start(&env(&[]));
    let hook = Hook::ok();
    assert_eq!(system_topic(&srv, "devices", SOURCE).status, 201);
    hook_sub(&srv, "devices", "egs", &hook.url("/eg"), json!({}));
    hook_sub(
        &srv,
        "devices",
        "ces",
        &hook.url("/ce"),
        json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}),
    );
    hook_sub(
        &srv,
        "devices",
        "only-disconnects",
        &hook.url("/dis"),
        json!({"filter": {"includedEventTypes": [DISCONNECTED]}}),
    );

    // A clean DISCONNECT (v5, with a user name), twice: numbers 1 and 2.
    for _ in 0..2 {
        let mut o = Opts::v5("clean-1");
        o.username = Some("alice".into());
        Client::ok(srv.mqtt, o).disconnect();
        // Let the first pair out before the second connection (numbering is per connection).
        std::thread::sleep(Duration::from_millis(100));
    }
    let evs = wait_session(&hook, "/eg", "clean-1", 4);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "ClientInitiatedDisconnect"),
            step("Connected", 2, ""),
            step("Disconnected", 2, "ClientInitiatedDisconnect"),
        ]
    );
    let d = &evs[1];
    assert_eq!(d["subject"], "clients/alice/sessions/clean-1");
    assert_eq!(d["topic"], SOURCE);
    assert_eq!(d["dataVersion"], "1");
    assert_eq!(d["metadataVersion"], "1");
    assert_eq!(
        d["data"],
        json!({"namespaceName": "default", "clientAuthenticationName": "alice",
               "clientSessionName": "clean-1", "sequenceNumber": 1,
               "disconnectionReason": "ClientInitiatedDisconnect"})
    );
    let t = evgrid_time(d["eventTime"].as_str().unwrap());
    assert!(t.abs_diff(now_ms()) < 60_000, "{d}");
    let ids: std::collections::BTreeSet<&str> =
        evs.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "ids are unique: {evs:#?}");

    // The same events in CloudEvents 1.0 (the conversion of docs/eventgrid.md §2.5).
    let ce = wait_session(&hook, "/ce", "clean-1", 4);
    assert_eq!(ce[0]["specversion"], "1.0");
    assert_eq!(ce[0]["type"], CONNECTED);
    assert_eq!(ce[0]["source"], SOURCE);
    assert_eq!(ce[0]["subject"], "clients/alice/sessions/clean-1");
    assert_eq!(ce[0]["id"], evs[0]["id"]);
    assert_eq!(ce[0]["data"], evs[0]["data"]);
    assert_eq!(ce[1]["type"], DISCONNECTED);
    assert_eq!(
        ce[1]["data"]["disconnectionReason"],
        "ClientInitiatedDisconnect"
    );

    // A dropped socket (v3.1.1, no user name: the client id is the authentication name).
    drop(Client::ok(srv.mqtt, Opts::v3("drop-1")));
    let evs = wait_session(&hook, "/eg", "drop-1", 2);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "ConnectionLost")
        ]
    );
    assert_eq!(evs[0]["subject"], "clients/drop-1/sessions/drop-1");
    assert_eq!(evs[0]["data"]["clientAuthenticationName"], "drop-1");

    // A keep-alive timeout: silent for 1.5 times 1 s, then closed by the broker.
    let mut silent = Client::ok(srv.mqtt, Opts::v3("quiet-1").keep_alive(1));
    let t0 = Instant::now();
    silent.until_closed(Duration::from_secs(6));
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        t0.elapsed()
    );
    let evs = wait_session(&hook, "/eg", "quiet-1", 2);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "ConnectionLost")
        ]
    );

    // A takeover: the first connection is told (v5 0x8E) and its event says so.
    let mut first = Client::ok(srv.mqtt, Opts::v5("taken-1"));
    std::thread::sleep(Duration::from_millis(100));
    let second = Client::ok(srv.mqtt, Opts::v5("taken-1"));
    let pkts = first.until_closed(Duration::from_secs(5));
    let disc = pkts
        .iter()
        .find(|p| p.ty == DISCONNECT)
        .expect("DISCONNECT");
    assert_eq!(first.disconnect_reason(disc), 0x8E);
    second.disconnect();
    let evs = wait_session(&hook, "/eg", "taken-1", 4);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "SessionTakenOver"),
            step("Connected", 2, ""),
            step("Disconnected", 2, "ClientInitiatedDisconnect"),
        ]
    );

    // A malformed packet (reserved packet type 0): the client's error.
    let mut bad = Client::ok(srv.mqtt, Opts::v5("bad-1"));
    bad.write_raw(&[0x00, 0x00]).unwrap();
    bad.until_closed(Duration::from_secs(5));
    let evs = wait_session(&hook, "/eg", "bad-1", 2);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "ClientError")
        ]
    );

    // mosquitto_sub: a real client's clean disconnect after one message.
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &srv.mqtt.port().to_string()])
        .args([
            "-i", "mosq-1", "-u", "bob", "-t", "lc/t", "-C", "1", "-W", "10",
        ])
        .spawn()
        .expect("mosquitto_sub");
    let mut sub = sub;
    wait_session(&hook, "/eg", "mosq-1", 1);
    let mut p = Client::ok(srv.mqtt, Opts::v5("mosq-pub"));
    // Retained: mosquitto_sub may not have subscribed yet.
    p.pub_wait("lc/t", b"x", 1, true);
    assert!(sub.wait().unwrap().success());
    let evs = wait_session(&hook, "/eg", "mosq-1", 2);
    assert_eq!(evs[1]["subject"], "clients/bob/sessions/mosq-1");
    assert_eq!(
        evs[1]["data"]["disconnectionReason"],
        "ClientInitiatedDisconnect"
    );

    // The filtered subscription got only Disconnected events.
    let reqs = hook.wait(WAIT, "the filtered subscription's events", |rs| {
        delivered_at(rs, "/dis").len() >= 6
    });
    let dis = delivered_at(&reqs, "/dis");
    assert!(
        dis.iter().all(|e| e["eventType"] == DISCONNECTED),
        "{dis:#?}"
    );
    let mut by_session: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &dis {
        *by_session.entry(session_of(e)).or_default() += 1;
    }
    assert_eq!(by_session["clean-1"], 2, "{by_session:?}");
    assert_eq!(by_session["taken-1"], 2, "{by_session:?}");
    assert!(srv.metric("evgrid_mqtt_lifecycle_events_total{outcome=\"published\"}") >= 14.0);
    assert_eq!(
        srv.metric("evgrid_mqtt_lifecycle_events_total{outcome=\"backlog_full\"}"),
        0.0
    );
}

/// A system topic and its subscriptions survive a restart; connections a shutdown cuts end with
/// `ServerInitiatedDisconnect`; the resource file declares system topics too.
#[test]
fn shutdown_restart_and_the_resource_file() {
    let hook = Hook::ok();
    let dir = TempDir::new("lifecycle");
    let res = dir.0.join("resources.toml");
    std::fs::write(
        &res,
        format!(
            r#"
[[systemTopics]]
name = "from-file"
properties = {{ source = "{SOURCE}", topicType = "Microsoft.EventGrid.Namespaces" }}

[[systemTopics.subscriptions]]
name = "ops"
properties = {{ destination = {{ endpointType = "WebHook", properties = {{ endpointUrl = "{}" }} }} }}
"#,
            hook.url("/ops")
        ),
    )
    .unwrap();
    let data = dir.0.join("data");
    let res_s = res.to_str().unwrap();
    let mut srv = Server::start_in(&data, &env(&[("EVGRID_RESOURCES", res_s)]));
    let got = mgmt(&srv, "GET", "/mgmt/systemTopics/from-file", &Value::Null);
    assert_eq!(got.status, 200, "{got:?}");
    let _held = Client::ok(srv.mqtt, Opts::v5("held-1"));
    wait_session(&hook, "/ops", "held-1", 1);
    assert!(srv.terminate().success());

    // After the restart (the file applied again changes nothing), the Disconnected event the
    // shutdown committed is delivered, and new connections continue to flow.
    let srv = Server::start_in(&data, &env(&[("EVGRID_RESOURCES", res_s)]));
    let evs = wait_session(&hook, "/ops", "held-1", 2);
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "ServerInitiatedDisconnect"),
        ]
    );
    Client::ok(srv.mqtt, Opts::v3("after-1")).disconnect();
    wait_session(&hook, "/ops", "after-1", 2);
}

/// 2,000 connect/disconnect cycles from 8 threads against a backlog of 2: the broker keeps
/// serving, every event is accounted for (published or dropped and counted), and without a
/// system topic events are discarded and counted.
#[test]
fn a_storm_of_reconnects_never_stalls_the_broker() {
    let srv = Server::start(&env(&[("EVGRID_MQTT_LIFECYCLE_BACKLOG", "2")]));
    let hook = Hook::ok();
    assert_eq!(system_topic(&srv, "storm", SOURCE).status, 201);
    hook_sub(&srv, "storm", "egs", &hook.url("/eg"), json!({}));
    let metric = |o: &str| {
        srv.metric(&format!(
            "evgrid_mqtt_lifecycle_events_total{{outcome=\"{o}\"}}"
        ))
    };
    let t0 = Instant::now();
    let addr = srv.mqtt;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..250 {
                    let c = Client::ok(addr, Opts::v3(&format!("storm-{t}-{}", i % 50)));
                    if i % 2 == 0 {
                        c.disconnect();
                    }
                }
            })
        })
        .collect();
    // Meanwhile other clients are served.
    srv.assert_mqtt_alive();
    for t in threads {
        t.join().unwrap();
    }
    let storm = t0.elapsed();
    srv.assert_mqtt_alive();
    // 2,000 storm connections and 4 alive-check ones, two events each.
    let expected = 2.0 * 2004.0;
    common::wait_until("every lifecycle event accounted for", || {
        metric("published") + metric("backlog_full") + metric("failed") >= expected
    });
    let dropped = metric("backlog_full");
    assert!(
        dropped > 0.0,
        "a backlog of 2 overflowed in a storm ({storm:?})"
    );
    assert_eq!(metric("failed"), 0.0);
    assert_eq!(metric("no_system_topic"), 0.0);
    assert!(storm < Duration::from_secs(60), "{storm:?}");

    // Without a system topic: discarded, counted.
    assert_eq!(
        mgmt(&srv, "DELETE", "/mgmt/systemTopics/storm", &Value::Null).status,
        200
    );
    for i in 0..5 {
        Client::ok(srv.mqtt, Opts::v5(&format!("none-{i}"))).disconnect();
        std::thread::sleep(Duration::from_millis(20));
    }
    common::wait_until("discarded events counted", || {
        metric("no_system_topic") + metric("backlog_full") - dropped >= 10.0
    });
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// ms since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn evgrid_time(s: &str) -> u64 {
    assert!(s.ends_with('Z') && s.len() == 24, "{s}");
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    (secs * 1000 + n(20, 23)) as u64
}

/// A subscriber whose socket takes nothing for `mqtt.send_timeout` while messages wait is closed
/// by the broker: `QuotaExceeded`, the reason its v5 DISCONNECT gives too.
#[test]
fn a_stalled_subscriber_ends_with_quota_exceeded() {
    let srv = Server::start(&env(&[("EVGRID_MQTT_SEND_TIMEOUT", "1")]));
    let hook = Hook::ok();
    assert_eq!(system_topic(&srv, "slow", SOURCE).status, 201);
    hook_sub(&srv, "slow", "egs", &hook.url("/eg"), json!({}));
    let mut slow = Client::ok(srv.mqtt, Opts::v5("slow-1"));
    slow.sub("flood/#", 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooder = {
        let (addr, stop) = (srv.mqtt, stop.clone());
        std::thread::spawn(move || {
            let mut p = Client::ok(addr, Opts::v3("flooder-1"));
            let payload = vec![b'z'; 100 * 1024];
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 400 << 20 {
                p.publish("flood/a", &payload, 0, false, 0, &[]);
                sent += payload.len();
            }
        })
    };
    let evs = wait_session(&hook, "/eg", "slow-1", 2);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flooder.join().unwrap();
    assert_eq!(
        steps(&evs),
        vec![
            step("Connected", 1, ""),
            step("Disconnected", 1, "QuotaExceeded")
        ]
    );
    assert!(srv.metric("evgrid_mqtt_slow_consumer_disconnects_total") >= 1.0);
    drop(slow);
}
