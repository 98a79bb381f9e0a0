//! Unit tests of the cross-protocol scenarios: the accounting, the arguments, and the HTTP
//! sides (pull of routed events, HTTP publish to MQTT, --setup) against a fake namespace.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::BytesMut;
use clap::Parser as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::args::Switch;
use super::http_mqtt::topics;
use super::mqtt_pull::mqtt_args;
use super::report::{accounting, mqtt_published, per_s};
use super::setup::{self, Mgmt, namespace_body, namespace_of, subscription_body};
use crate::cli::{Cli, Cmd, HttpArgs, PullArgs, RunFlags};
use crate::http::h1::{self, Request, parse_request};
use crate::http::load::{MqttMessagesArgs, MqttMessagesRun, PullRun};
use crate::mqtt::payload::{put_payload, read_header};
use crate::mqtt::run::Scenario;
use crate::report::stats::lock;
use crate::report::track::Dedup;

/// The HTTP side gets the TLS files only with an https:// --url; files serving neither side
/// are an error.
#[test]
fn tls_files_go_to_the_side_on_tls() {
    let parse = |url: &str, extra: &[&str]| {
        let mut v = vec!["evgrid-loadtest", "e2e", "--url", url, "--cafile", "ca.pem"];
        v.extend_from_slice(extra);
        let Cmd::E2e(a) = Cli::try_parse_from(v).unwrap().cmd else {
            panic!("not e2e")
        };
        a
    };
    let a = parse("http://h:8080/namespaces/n", &[]);
    let e = super::check_tls_files(&a.ns, &a.mqtt).unwrap_err();
    assert!(e.contains("--cafile") && e.contains("https://"), "{e}");
    let a = parse("http://h:8080/namespaces/n", &["--tls"]);
    super::check_tls_files(&a.ns, &a.mqtt).unwrap();
    assert!(super::https_flags(&a.ns, &a.mqtt).cafile.is_none());
    let a = parse("https://h:8443/namespaces/n", &[]);
    super::check_tls_files(&a.ns, &a.mqtt).unwrap();
    let f = super::https_flags(&a.ns, &a.mqtt);
    assert!(f.cafile.is_some() && !f.tls);
}

#[test]
fn published_and_lost() {
    assert_eq!(mqtt_published(0, 100, 0).0, 100, "QoS 0: what was written");
    assert_eq!(mqtt_published(1, 100, 97).0, 97, "QoS 1: what was PUBACKed");
    let a = accounting(mqtt_published(1, 100, 97), 95, 3, 1, 2);
    assert_eq!((a.expected, a.unique, a.lost), (97, 95, 2));
    assert_eq!((a.duplicated, a.reordered, a.foreign), (3, 1, 2));
    assert!((a.loss_fraction - 2.0 / 97.0).abs() < 1e-12);
    // more than published (a QoS 1 message routed but not acknowledged before the end)
    let a = accounting((10, "x"), 11, 0, 0, 0);
    assert_eq!((a.lost, a.loss_fraction), (-1, 0.0));
    assert_eq!(per_s(500, 250_000_000), 2000.0);
    assert_eq!(per_s(0, 1), 0.0);
    assert_eq!(per_s(5, 0), 0.0);
}

#[test]
fn command_lines() {
    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "e2e",
        "-h",
        "127.0.0.1",
        "-p",
        "1999",
        "-q",
        "1",
        "--publishers",
        "4",
        "--rate",
        "2000",
        "--url",
        "http://127.0.0.1:18080/namespaces/fleet",
        "--setup",
        "--admin-key",
        "adm",
        "--routing",
        "off",
        "--consumers",
        "2",
    ])
    .unwrap();
    let Cmd::E2e(a) = c.cmd else {
        panic!("not e2e")
    };
    assert_eq!((a.mqtt.port, a.mqtt.qos, a.consumers), (1999, Some(1), 2));
    assert_eq!((a.setup, a.routing), (true, Switch::Off));
    assert_eq!(
        (a.route_topic.as_str(), a.subscription.as_str()),
        ("mqtt-routed", "e2e")
    );
    let (scenario, m) = mqtt_args(&a.mqtt);
    assert_eq!(scenario, Scenario::Pub);
    assert_eq!((m.count, m.topic.as_deref()), (Some(4), Some("e2e/%i")));
    assert!(
        Cli::try_parse_from(["evgrid-loadtest", "e2e", "--setup"]).is_err(),
        "--setup needs --admin-key"
    );
    // MQTT subscribers on the same messages: fanin
    let c = Cli::try_parse_from(["evgrid-loadtest", "e2e", "--subscribers", "1"]).unwrap();
    let Cmd::E2e(a) = c.cmd else {
        panic!("not e2e")
    };
    let (scenario, m) = mqtt_args(&a.mqtt);
    assert_eq!((scenario, m.publishers), (Scenario::Fanin, Some(10)));

    let c = Cli::try_parse_from([
        "evgrid-loadtest",
        "http-mqtt",
        "--connections",
        "16",
        "--subscribers",
        "3",
        "--key",
        "k",
        "-s",
        "100",
    ])
    .unwrap();
    let Cmd::HttpMqtt(a) = c.cmd else {
        panic!("not http-mqtt")
    };
    assert_eq!((a.connections, a.mqtt.subscribers), (16, Some(3)));
    assert_eq!(a.ns.key.as_deref(), Some("k"));
}

#[test]
fn http_mqtt_topics_and_filter() {
    let (t, f) = topics("cmd/%i", None, 3).unwrap();
    assert_eq!(
        (t, f.as_str()),
        (
            vec!["cmd/0".into(), "cmd/1".into(), "cmd/2".into()],
            "cmd/#"
        )
    );
    let (t, f) = topics("one/topic", None, 2).unwrap();
    assert_eq!((t.len(), f.as_str()), (2, "one/topic"));
    assert!(
        topics("cmd/%i", Some("other/#"), 2).is_err(),
        "filter misses"
    );
    assert!(topics("cmd/+", None, 1).is_err(), "wildcard publish topic");
}

#[test]
fn setup_bodies() {
    let u = h1::parse_url("--url", "http://h:1/namespaces/fleet").unwrap();
    assert_eq!(namespace_of(&u).unwrap(), "fleet");
    for bad in [
        "http://h:1/",
        "http://h:1/namespaces",
        "http://h:1/topics/x",
    ] {
        assert!(
            namespace_of(&h1::parse_url("--url", bad).unwrap()).is_err(),
            "{bad}"
        );
    }
    let b = namespace_body("fleet", "routed", true);
    let t = &b["properties"]["topicSpacesConfiguration"];
    assert_eq!(t["state"], "Enabled");
    assert_eq!(
        t["routeTopicResourceId"],
        "/providers/Microsoft.EventGrid/namespaces/fleet/topics/routed"
    );
    let b = namespace_body("fleet", "routed", false);
    assert_eq!(
        b["properties"]["topicSpacesConfiguration"]["state"],
        "Disabled"
    );
    let q = subscription_body(None);
    assert_eq!(
        q["properties"]["deliveryConfiguration"]["deliveryMode"],
        "Queue"
    );
    let p = subscription_body(Some("http://127.0.0.1:9000/hook"));
    let dc = &p["properties"]["deliveryConfiguration"];
    assert_eq!(dc["deliveryMode"], "Push");
    assert_eq!(
        dc["push"]["destination"]["properties"]["endpointUrl"],
        "http://127.0.0.1:9000/hook"
    );
}

// ---- a fake namespace over a real socket ----

#[derive(Default)]
struct Fake {
    /// events the next receives hand out (JSON text of each)
    queue: VecDeque<String>,
    next_token: u64,
    acked: usize,
    /// every request, in order
    seen: Vec<Request>,
    /// answer 401 to everything but management calls
    deny: bool,
}

type Shared = Arc<Mutex<Fake>>;

fn answer(fake: &Shared, req: &Request) -> (u16, String) {
    let mut f = lock(fake);
    f.seen.push(req.clone());
    let t = req.target.as_str();
    if t.starts_with("/mgmt/") {
        return match req.method.as_str() {
            "GET" => (
                404,
                r#"{"error":{"code":"NotFound","message":"no"}}"#.into(),
            ),
            "POST" if t.ends_with("/listKeys") => (200, r#"{"key1":"fake-key"}"#.into()),
            _ => (201, "{}".into()),
        };
    }
    if f.deny {
        return (
            401,
            r#"{"error":{"code":"Unauthorized","message":"bad key"}}"#.into(),
        );
    }
    if t.contains(":receive") {
        let mut items = Vec::new();
        for _ in 0..3 {
            let Some(ev) = f.queue.pop_front() else { break };
            f.next_token += 1;
            items.push(format!(
                r#"{{"brokerProperties":{{"lockToken":"t{}","deliveryCount":1}},"event":{ev}}}"#,
                f.next_token
            ));
        }
        return (200, format!(r#"{{"value":[{}]}}"#, items.join(",")));
    }
    if t.contains(":acknowledge") {
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let tokens = v["lockTokens"].as_array().unwrap().clone();
        f.acked += tokens.len();
        let body = serde_json::json!({"succeededLockTokens": tokens, "failedLockTokens": []});
        return (200, body.to_string());
    }
    if t.contains("/mqtt/messages?") {
        return (204, String::new());
    }
    (404, String::new())
}

async fn serve_conn(fake: Shared, mut s: tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while let Ok(h1::ParsedRequest::Complete(req, used)) = parse_request(&buf) {
            buf.drain(..used);
            let (status, body) = answer(&fake, &req);
            if req.target.contains(":receive") && body == r#"{"value":[]}"# {
                // a long poll on an empty queue, shortened
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut out = Vec::new();
            let ct = [("Content-Type", "application/json")];
            h1::write_response(&mut out, status, &ct, body.as_bytes(), false);
            if s.write_all(&out).await.is_err() {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn fake_namespace(fake: Shared) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_conn(fake.clone(), s));
        }
    });
    addr
}

fn http_args(addr: SocketAddr, duration: &str) -> HttpArgs {
    HttpArgs {
        url: format!("http://{addr}/namespaces/default"),
        topic: Some("routed".into()),
        key: Some("k".into()),
        api_version: None,
        duration: duration.into(),
        connect_timeout: 5.0,
        timeout: 5.0,
        tls: Default::default(),
        run: RunFlags {
            quiet: true,
            ..Default::default()
        },
    }
}

/// A routed event as §7.6 describes it, the payload in `data_base64`.
fn routed_b64(payload: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    format!(
        r#"{{"specversion":"1.0","id":"x","source":"default","type":"MQTT.EventPublished","subject":"e2e/0","time":"2030-01-01T00:00:00Z","datacontenttype":"application/octet-stream","data_base64":"{b64}"}}"#
    )
}

fn header_payload(publisher: u32, seq: u64, size: usize) -> Vec<u8> {
    let mut p = BytesMut::new();
    put_payload(&mut p, size, crate::clock::unix_now_ns(), publisher, seq);
    p.to_vec()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_counts_routed_events_from_data_base64_and_data() {
    let fake: Shared = Default::default();
    {
        let mut f = lock(&fake);
        for seq in 0..40 {
            f.queue.push_back(routed_b64(&header_payload(0, seq, 256)));
            // publisher 1's payloads were JSON (PFI 1): routed as `data`
            let ts = crate::clock::unix_now_ns();
            f.queue.push_back(format!(
                r#"{{"specversion":"1.0","id":"y","type":"MQTT.EventPublished","datacontenttype":"application/json","data":{{"ts":"{ts}","pub":1,"seq":{seq},"pad":"xx"}}}}"#
            ));
        }
        // a redelivery, and a payload not from the generator
        f.queue.push_back(routed_b64(&header_payload(0, 7, 24)));
        f.queue.push_back(routed_b64(br#"{"temp":70}"#));
    }
    let addr = fake_namespace(fake.clone()).await;
    let track = Arc::new(Mutex::new(Dedup::default()));
    let run = PullRun::prepare(
        PullArgs {
            http: http_args(addr, "30s"),
            subscription: "sub".into(),
            consumers: 2,
            max_events: 100,
            max_wait: 10,
            until_empty: false,
            drain: 0.0,
        },
        Some(track.clone()),
    )
    .await
    .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(run.run(stop_rx));
    wait_for("every event acknowledged", || lock(&fake).acked == 82).await;
    stop.send_replace(true);
    let (r, fatal) = task.await.unwrap();
    assert_eq!(fatal, None);
    let d = lock(&track);
    assert_eq!((d.unique, d.duplicated), (80, 1));
    assert_eq!((r.events.received, r.events.acked), (82, 82));
    assert_eq!(r.events.unmarked, 1);
    assert_eq!(r.latency_us.e2e.count, 81, "every stamped event");
    let f = lock(&fake);
    let recv = f
        .seen
        .iter()
        .find(|q| q.target.contains(":receive"))
        .unwrap();
    assert_eq!(
        recv.target,
        "/namespaces/default/topics/routed/eventsubscriptions/sub:receive?api-version=2024-06-01&maxEvents=100&maxWaitTime=10"
    );
    assert_eq!(recv.header("authorization"), Some("SharedAccessKey k"));
}

fn mqtt_messages_args(addr: SocketAddr) -> MqttMessagesArgs {
    MqttMessagesArgs {
        http: http_args(addr, "300ms"),
        connections: 2,
        topics: vec!["cmd/0".into(), "cmd/1".into()],
        qos: 1,
        size: 64,
        rate: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publishers_post_stamped_mqtt_messages() {
    let fake: Shared = Default::default();
    let addr = fake_namespace(fake.clone()).await;
    let run = MqttMessagesRun::prepare(mqtt_messages_args(addr))
        .await
        .unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let (r, fatal) = run.run(stop_rx).await;
    assert_eq!(fatal, None);
    let f = lock(&fake);
    assert!(f.seen.len() > 10, "{} requests", f.seen.len());
    assert_eq!(r.events.published, f.seen.len() as u64);
    let mut next = [0u64; 2];
    for q in &f.seen {
        let h = read_header(&q.body).unwrap();
        let p = h.publisher as usize;
        assert_eq!(
            q.target,
            format!(
                "/namespaces/default/mqtt/messages?topic=cmd%2F{p}&qos=1&api-version=2025-02-15-preview"
            )
        );
        assert_eq!(q.body.len(), 64);
        assert_eq!(
            h.seq, next[p],
            "each connection numbers its messages from 0"
        );
        next[p] += 1;
        assert!(h.ts_ns > 0);
        assert_eq!(q.header("authorization"), Some("SharedAccessKey k"));
        assert_eq!(q.header("content-type"), Some("application/octet-stream"));
    }
    assert!(next.iter().all(|&n| n > 0), "both connections published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publishers_stop_on_a_refused_key() {
    let fake: Shared = Default::default();
    lock(&fake).deny = true;
    let addr = fake_namespace(fake.clone()).await;
    let run = MqttMessagesRun::prepare(mqtt_messages_args(addr))
        .await
        .unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let (r, fatal) = run.run(stop_rx).await;
    let fatal = fatal.expect("a 401 before anything succeeded is fatal");
    assert!(
        fatal.contains("401") && fatal.contains("bad key"),
        "{fatal}"
    );
    assert_eq!(r.events.published, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_makes_topic_subscription_routing_and_reads_the_key() {
    let fake: Shared = Default::default();
    let addr = fake_namespace(fake.clone()).await;
    let url = h1::parse_url("--url", &format!("http://{addr}/namespaces/fleet")).unwrap();
    let mut m = Mgmt::connect(&url, None, "adm", Duration::from_secs(5))
        .await
        .unwrap();
    let plan = setup::Plan {
        namespace: "fleet",
        topic: "routed",
        subscription: "e2e",
        push: None,
        routing: true,
    };
    assert_eq!(
        m.apply(&plan, true).await.unwrap().as_deref(),
        Some("fake-key")
    );
    let f = lock(&fake);
    let calls: Vec<String> = f
        .seen
        .iter()
        .map(|q| format!("{} {}", q.method, q.target))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /mgmt/namespaces/fleet",
            "PUT /mgmt/namespaces/fleet",
            "PUT /mgmt/namespaces/fleet/topics/routed",
            "PUT /mgmt/namespaces/fleet/topics/routed/eventSubscriptions/e2e",
            "PUT /mgmt/namespaces/fleet",
            "POST /mgmt/namespaces/fleet/listKeys",
        ]
    );
    assert!(
        f.seen
            .iter()
            .all(|q| q.header("authorization") == Some("Bearer adm"))
    );
    let body = |i: usize| serde_json::from_slice::<serde_json::Value>(&f.seen[i].body).unwrap();
    assert_eq!(
        body(3)["properties"]["deliveryConfiguration"]["deliveryMode"],
        "Queue"
    );
    assert_eq!(
        body(4)["properties"]["topicSpacesConfiguration"]["routeTopicResourceId"],
        "/providers/Microsoft.EventGrid/namespaces/fleet/topics/routed"
    );
}
