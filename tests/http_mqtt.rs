//! HTTP publish to MQTT topics and the retained-message read API (docs/eventgrid.md §7.8), over
//! real sockets against the real binary: `curl` → `mosquitto_sub -V mqttv5` and the raw v5
//! client see every MQTT 5 property; RETAIN sets and clears the retained message, which the
//! read API returns with its `x-ms-mqtt-*` headers; every bad request gets its status and
//! Event Grid error body; credentials are checked as on the namespace data plane.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::http::{Resp, mgmt, request};
use common::raw::{Client, Opts, Prop};

const ADMIN: &str = "test-admin-key-0123456789";
const PUB: &str = "api-version=2025-02-15-preview";
const READ: &str = "api-version=2025-11-16-preview";

/// MQTT 5 property ids.
const PFI: u8 = 0x01;
const EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION: u8 = 0x09;

/// base64 of `[{"Urgency":"alert"},{"RequestId":"55f4"},{"Urgency":"again"}]`.
const USERS_B64: &str =
    "W3siVXJnZW5jeSI6ImFsZXJ0In0seyJSZXF1ZXN0SWQiOiI1NWY0In0seyJVcmdlbmN5IjoiYWdhaW4ifV0=";

struct Eg {
    srv: Server,
    key: String,
}

impl Eg {
    fn start(extra: &[(&str, &str)]) -> Eg {
        let mut env = vec![("EVGRID_ADMIN_KEY", ADMIN)];
        env.extend_from_slice(extra);
        let srv = Server::start(&env);
        let r = mgmt(
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

    fn auth(&self) -> String {
        format!("Authorization: SharedAccessKey {}", self.key)
    }

    /// `POST /mqtt/messages?{query}` with the namespace key and `headers`.
    fn post(&self, query: &str, headers: &[&str], body: &[u8]) -> Resp {
        let auth = self.auth();
        let mut h = vec![auth.as_str()];
        h.extend_from_slice(headers);
        request(
            self.srv.http,
            "POST",
            &format!("/mqtt/messages?{query}"),
            &h,
            body,
        )
    }

    /// `GET /namespaces/default/mqtt/retainedMessages/message?topic={topic}&{READ}`.
    fn retained(&self, topic: &str) -> Resp {
        request(
            self.srv.http,
            "GET",
            &format!("/namespaces/default/mqtt/retainedMessages/message?topic={topic}&{READ}"),
            &[&self.auth()],
            b"",
        )
    }

    fn wait_subs(&self, n: f64) {
        let start = Instant::now();
        while self.srv.metric("evgrid_mqtt_subscriptions") != n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "subscriptions != {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn assert_204(r: &Resp) {
    assert_eq!(r.status, 204, "{r:?}");
}

/// A v5 subscriber on `filter` at QoS 1.
fn subscriber(eg: &Eg, id: &str, filter: &str) -> Client {
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5(id));
    c.sub(filter, 1);
    c
}

fn user_props(p: &common::raw::Publish) -> Vec<(String, String)> {
    p.props
        .iter()
        .filter_map(|p| match p {
            Prop::User(k, v) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn curl_to_mosquitto_sub_shows_every_field() {
    let eg = Eg::start(&[]);
    let port = eg.srv.mqtt.port().to_string();
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
        .args(["-t", "devices/#", "-C", "2", "-W", "15"])
        .args(["-F", "%t|%q|%r|%p|%P|%C|%D|%R|%E|%F"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (package mosquitto-clients)");
    eg.wait_subs(1.0);
    let url = |q: &str| format!("http://{}/mqtt/messages?{q}", eg.srv.http);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8(out.stdout).unwrap()
    };
    let key = format!("aeg-sas-key: {}", eg.key);
    let code = curl(&[
        &url(&format!("topic=devices%2Fd17%2Fprompt&{PUB}")),
        "-H",
        &key,
        "-H",
        "mqtt-qos: 1",
        "-H",
        "mqtt-response-topic: devices%2Fd17%2Freply",
        "-H",
        "mqtt-correlation-data: cmVxLTQy",
        "-H",
        &format!("mqtt-user-properties: {USERS_B64}"),
        "-H",
        "mqtt-message-expiry: 3600",
        "-H",
        "mqtt-payload-format-indicator: 1",
        "-H",
        "Content-Type: text/plain;charset=UTF-8",
        "--data-binary",
        "Please accept terms",
    ]);
    assert_eq!(code, "204");
    // QoS 0 from the query, winning over the header; no properties at all.
    let code = curl(&[
        &url("topic=devices/d18&qos=0&api-version=2025-08-01-preview"),
        "-H",
        &key,
        "-H",
        "mqtt-qos: 1",
        // curl adds a form Content-Type to --data-binary; without one, no MQTT content type.
        "-H",
        "Content-Type:",
        "--data-binary",
        "plain",
    ]);
    assert_eq!(code, "204");
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success(), "mosquitto_sub timed out");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let f: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(
        &f[..8],
        [
            "devices/d17/prompt",
            "1",
            "0",
            "Please accept terms",
            "Urgency:alert RequestId:55f4 Urgency:again",
            "text/plain;charset=UTF-8",
            "req-42",
            "devices/d17/reply",
        ],
        "{text}"
    );
    let left: u32 = f[8].parse().unwrap();
    assert!((3590..=3600).contains(&left), "expiry {left}");
    assert_eq!(f[9], "1", "payload format indicator");
    assert_eq!(lines[1], "devices/d18|0|0|plain||||||", "{text}");
}

#[test]
fn raw_v5_subscriber_gets_exact_properties_on_both_paths() {
    let eg = Eg::start(&[]);
    let mut sub = subscriber(&eg, "raw-sub", "cmd/#");
    let r = eg.post(
        &format!("topic=cmd%2Fd1&{PUB}"),
        &[
            "mqtt-response-topic: cmd%2Fd1%2Freply",
            "mqtt-correlation-data: AAH/",
            &format!("mqtt-user-properties: {USERS_B64}"),
            "mqtt-message-expiry: 120",
            "mqtt-payload-format-indicator: 1",
            "Content-Type: application/json",
        ],
        br#"{"op":"reboot"}"#,
    );
    assert_204(&r);
    let m = sub.next_msg();
    assert_eq!((m.topic.as_str(), m.qos, m.retain), ("cmd/d1", 1, false));
    assert_eq!(m.payload, br#"{"op":"reboot"}"#);
    assert_eq!(m.num(PFI), Some(1));
    assert!(matches!(m.num(EXPIRY), Some(118..=120)), "{:?}", m.props);
    assert_eq!(
        m.bytes(CONTENT_TYPE).as_deref(),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        m.bytes(RESPONSE_TOPIC).as_deref(),
        Some(&b"cmd/d1/reply"[..])
    );
    assert_eq!(m.bytes(CORRELATION).as_deref(), Some(&[0u8, 1, 0xff][..]));
    let want = [
        ("Urgency", "alert"),
        ("RequestId", "55f4"),
        ("Urgency", "again"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(user_props(&m), want);
    assert_eq!(
        eg.srv.metric("evgrid_http_mqtt_publish_requests_total"),
        1.0
    );

    // The namespace path, QoS 0 from the header, an empty payload and no properties at all.
    let r = request(
        eg.srv.http,
        "POST",
        &format!("/namespaces/default/mqtt/messages?topic=cmd/d2&{PUB}"),
        &[&format!("aeg-sas-key: {}", eg.key), "mqtt-qos: 0"],
        b"",
    );
    assert_204(&r);
    let m = sub.next_msg();
    assert_eq!((m.topic.as_str(), m.qos, m.retain), ("cmd/d2", 0, false));
    assert!(m.payload.is_empty() && m.props.is_empty(), "{m:?}");
}

#[test]
fn retain_sets_and_clears_and_the_read_api_returns_it() {
    let eg = Eg::start(&[]);
    assert_eq!(eg.retained("state%2Flamp").status, 404);
    let before = now_ms();
    let r = eg.post(
        &format!("topic=state%2Flamp&retain=1&{PUB}"),
        &[
            "mqtt-qos: 0",
            "Content-Type: text/plain",
            "mqtt-message-expiry: 600",
            "mqtt-correlation-data: AAH/",
            "mqtt-response-topic: state%2Freply",
            &format!("mqtt-user-properties: {USERS_B64}"),
            "mqtt-payload-format-indicator: 1",
        ],
        b"on",
    );
    assert_204(&r);
    // A subscriber that arrives later gets it, with the retain flag.
    let mut late = subscriber(&eg, "late", "state/#");
    let m = late.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.qos, m.retain, &m.payload[..]),
        ("state/lamp", 0, true, &b"on"[..])
    );
    assert_eq!(m.bytes(CONTENT_TYPE).as_deref(), Some(&b"text/plain"[..]));
    assert_eq!(user_props(&m).len(), 3);

    // The read API, on the namespace path and on the short one.
    let r = eg.retained("state%2Flamp");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "on");
    assert_eq!(r.header("x-ms-mqtt-topic"), Some("state/lamp"));
    assert_eq!(r.header("x-ms-mqtt-qos"), Some("0"));
    assert_eq!(r.header("x-ms-mqtt-size"), Some("2"));
    let left: u32 = r.header("x-ms-mqtt-expiry").unwrap().parse().unwrap();
    assert!((590..=600).contains(&left), "{left}");
    let modified = r.header("x-ms-mqtt-last-modified").unwrap();
    let ms = evgrid_actors::model::time::parse_rfc3339_ms(modified).expect(modified);
    assert!(ms >= before - 1 && ms <= now_ms(), "{modified}");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("mqtt-response-topic"), Some("state/reply"));
    assert_eq!(r.header("mqtt-correlation-data"), Some("AAH/"));
    assert_eq!(r.header("mqtt-payload-format-indicator"), Some("1"));
    // The user properties come back in the publish header's own encoding.
    let users = r.header("mqtt-user-properties").unwrap().to_string();
    let r2 = request(
        eg.srv.http,
        "GET",
        &format!("/mqtt/retainedMessages/message?topic=state/lamp&{READ}"),
        &[&eg.auth()],
        b"",
    );
    assert_eq!((r2.status, r2.body.as_str()), (200, "on"));
    assert_eq!(r2.header("mqtt-user-properties"), Some(users.as_str()));

    // A retained message without expiry or properties: no expiry header, no content type.
    assert_204(&eg.post(&format!("topic=state/fan&retain=1&{PUB}"), &[], b"off"));
    let r = eg.retained("state/fan");
    assert_eq!((r.status, r.body.as_str()), (200, "off"));
    assert_eq!(r.header("x-ms-mqtt-qos"), Some("1"));
    assert!(r.header("x-ms-mqtt-expiry").is_none() && r.header("content-type").is_none());

    // Retain with an empty payload clears it: 404, and a new subscriber gets nothing.
    assert_204(&eg.post(&format!("topic=state/lamp&{PUB}"), &["mqtt-retain: 1"], b""));
    drop(late);
    let r = eg.retained("state%2Flamp");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.code(), "NotFound");
    assert_eq!(
        r.message(),
        "There is no retained message on topic 'state/lamp'."
    );
    let mut later = subscriber(&eg, "later", "state/lamp");
    later.expect_silence(Duration::from_millis(300));
    // A message published with retain 0 never becomes the retained one.
    assert_204(&eg.post(&format!("topic=state/lamp&retain=0&{PUB}"), &[], b"x"));
    assert_eq!(later.next_msg().payload, b"x");
    assert_eq!(eg.retained("state/lamp").status, 404);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (query, headers, body, status, code, a piece of the message).
type Case = (
    String,
    Vec<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
    &'static str,
);

#[test]
fn bad_requests_get_their_status_and_error_body() {
    let eg = Eg::start(&[
        ("EVGRID_MQTT_MAX_TOPIC_LENGTH", "16"),
        ("EVGRID_MQTT_MAX_TOPIC_LEVELS", "3"),
        ("EVGRID_MQTT_MAX_PACKET_SIZE", "1024"),
    ]);
    let mut sub = subscriber(&eg, "watch", "#");
    let ok_query = format!("topic=t&{PUB}");
    let with = |extra: &str| format!("{ok_query}&{extra}");
    let cases: Vec<Case> = vec![
        (
            PUB.to_string(),
            vec![],
            vec![],
            400,
            "BadRequest",
            "topic query parameter is required",
        ),
        (
            "topic=t".to_string(),
            vec![],
            vec![],
            400,
            "BadRequest",
            "api-version query parameter is required",
        ),
        (
            "topic=t&api-version=2024-06-01".to_string(),
            vec![],
            vec![],
            400,
            "BadRequest",
            "'2024-06-01' is not supported",
        ),
        (
            "topic=t&api-version=2025-11-16-preview".to_string(),
            vec![],
            vec![],
            400,
            "BadRequest",
            "Supported versions: 2025-02-15-preview, 2025-08-01-preview",
        ),
        (
            format!("topic=a%2F%2B&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "'a/+' contains a wildcard",
        ),
        (
            format!("topic=a/%23&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "contains a wildcard",
        ),
        (
            format!("topic=a%FF&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "not valid UTF-8",
        ),
        (
            format!("topic=&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "is empty",
        ),
        (
            format!("topic=aaaaaaaaaaaaaaaaa&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "17 bytes long; the broker's limit is 16 bytes (mqtt.max_topic_length)",
        ),
        (
            format!("topic=a/b/c/d&{PUB}"),
            vec![],
            vec![],
            403,
            "Forbidden",
            "4 levels; the broker's limit is 3 (mqtt.max_topic_levels)",
        ),
        (
            with("qos=2"),
            vec![],
            vec![],
            400,
            "BadRequest",
            "supports QoS 0 and 1 only",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-qos: 2"],
            vec![],
            400,
            "BadRequest",
            "mqtt-qos header is 2",
        ),
        (
            with("qos=x"),
            vec![],
            vec![],
            400,
            "BadRequest",
            "qos query parameter is 'x'; it must be 0 or 1",
        ),
        (
            with("retain=2"),
            vec![],
            vec![],
            400,
            "BadRequest",
            "retain query parameter is '2'",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-retain: yes"],
            vec![],
            400,
            "BadRequest",
            "mqtt-retain header is 'yes'",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-user-properties: %%%"],
            vec![],
            400,
            "BadRequest",
            "mqtt-user-properties header is not valid base64",
        ),
        // base64 of {"a":"b"}: JSON, but not an array.
        (
            ok_query.clone(),
            vec!["mqtt-user-properties: eyJhIjoiYiJ9"],
            vec![],
            400,
            "BadRequest",
            "mqtt-user-properties header is not usable",
        ),
        // base64 of [{"a":"b","c":"d"}].
        (
            ok_query.clone(),
            vec!["mqtt-user-properties: W3siYSI6ImIiLCJjIjoiZCJ9XQ=="],
            vec![],
            400,
            "BadRequest",
            "Item 0 of the mqtt-user-properties header",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-correlation-data: !!"],
            vec![],
            400,
            "BadRequest",
            "mqtt-correlation-data header is not valid base64",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-response-topic: r%2F%23"],
            vec![],
            400,
            "BadRequest",
            "mqtt-response-topic header 'r/#' contains a wildcard",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-message-expiry: soon"],
            vec![],
            400,
            "BadRequest",
            "mqtt-message-expiry header is 'soon'",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-payload-format-indicator: 7"],
            vec![],
            400,
            "BadRequest",
            "mqtt-payload-format-indicator header is '7'",
        ),
        (
            ok_query.clone(),
            vec!["mqtt-payload-format-indicator: 1"],
            vec![b'a', 0xff],
            400,
            "BadRequest",
            "payload is not valid UTF-8",
        ),
        (
            ok_query.clone(),
            vec![],
            vec![b'x'; 1025],
            413,
            "RequestEntityTooLarge",
            "larger than the limit of 1024 bytes",
        ),
        // Fits the body limit, but not with its topic and properties around it.
        (
            ok_query.clone(),
            vec!["mqtt-correlation-data: AAAA"],
            vec![b'x'; 1010],
            413,
            "RequestEntityTooLarge",
            "above the broker's maximum packet size of 1024 bytes (mqtt.max_packet_size)",
        ),
    ];
    for (query, headers, body, status, code, piece) in &cases {
        let r = eg.post(query, headers, body);
        assert_eq!(r.status, *status, "{query} {headers:?}: {r:?}");
        assert_eq!(r.code(), *code, "{query} {headers:?}: {r:?}");
        assert!(r.message().contains(piece), "{query} {headers:?}: {r:?}");
    }
    // None of them reached a subscriber, or counts as published.
    sub.expect_silence(Duration::from_millis(200));
    assert_eq!(
        eg.srv.metric("evgrid_http_mqtt_publish_requests_total"),
        0.0
    );

    // The retained read API refuses the same topics, and other api-versions.
    let get = |q: &str| {
        request(
            eg.srv.http,
            "GET",
            &format!("/mqtt/retainedMessages/message?{q}"),
            &[&eg.auth()],
            b"",
        )
    };
    let r = get(&format!("topic=a/%2B&{READ}"));
    assert_eq!((r.status, r.code().as_str()), (403, "Forbidden"), "{r:?}");
    assert!(r.message().contains("wildcard"));
    let r = get(&format!("topic=a&{PUB}"));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message()
            .contains("Supported versions: 2025-11-16-preview"),
        "{r:?}"
    );
    let r = get(READ);
    assert!(r.status == 400 && r.message().contains("topic query parameter is required"));
}

#[test]
fn namespaces_and_qos_limits() {
    let eg = Eg::start(&[("EVGRID_MQTT_MAX_QOS", "0")]);
    let mut sub = subscriber_q0(&eg);
    // With mqtt.max_qos 0, QoS 1 is refused and the default is 0.
    let r = eg.post(&format!("topic=q&qos=1&{PUB}"), &[], b"");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message()
            .contains("above the broker's maximum QoS 0 (mqtt.max_qos)"),
        "{r:?}"
    );
    assert_204(&eg.post(&format!("topic=q&{PUB}"), &[], b"d"));
    let m = sub.next_msg();
    assert_eq!(
        (m.topic.as_str(), m.qos, &m.payload[..]),
        ("q", 0, &b"d"[..])
    );

    // An unknown namespace: 404, before any credential check.
    let r = request(
        eg.srv.http,
        "POST",
        &format!("/namespaces/nope/mqtt/messages?topic=q&{PUB}"),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "ResourceNotFound"),
        "{r:?}"
    );
    // A namespace the broker does not serve: 404 naming the one it serves.
    let put = mgmt(eg.srv.http, ADMIN, "PUT", "/mgmt/namespaces/other", b"{}");
    assert!(put.status == 200 || put.status == 201, "{put:?}");
    let keys = mgmt(
        eg.srv.http,
        ADMIN,
        "POST",
        "/mgmt/namespaces/other/listKeys",
        b"",
    )
    .json();
    let other = format!("aeg-sas-key: {}", keys["key1"].as_str().unwrap());
    for (method, path) in [
        (
            "POST",
            format!("/namespaces/other/mqtt/messages?topic=q&{PUB}"),
        ),
        (
            "GET",
            format!("/namespaces/other/mqtt/retainedMessages/message?topic=q&{READ}"),
        ),
    ] {
        let r = request(eg.srv.http, method, &path, &[&other], b"x");
        assert_eq!((r.status, r.code().as_str()), (404, "NotFound"), "{r:?}");
        assert!(
            r.message()
                .contains("serves namespace 'default' (mqtt.namespace), not 'other'"),
            "{r:?}"
        );
        // Its key is not the served namespace's.
        let short = path.replacen("/namespaces/other", "", 1);
        assert_eq!(
            request(eg.srv.http, method, &short, &[&other], b"x").status,
            401
        );
    }
    sub.expect_silence(Duration::from_millis(200));
}

fn subscriber_q0(eg: &Eg) -> Client {
    let mut c = Client::ok(eg.srv.mqtt, Opts::v5("q0"));
    c.sub("#", 0);
    c
}

#[test]
fn credentials_are_the_namespace_keys() {
    let eg = Eg::start(&[]);
    let mut sub = subscriber(&eg, "auth", "a/#");
    let http = eg.srv.http;
    let post = |path: &str, headers: &[&str]| {
        request(
            http,
            "POST",
            &format!("{path}?topic=a/b&{PUB}"),
            headers,
            b"p",
        )
    };
    for path in ["/mqtt/messages", "/namespaces/default/mqtt/messages"] {
        let r = post(path, &[]);
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "Unauthorized"),
            "{r:?}"
        );
        assert!(
            r.message().contains("No credentials were presented"),
            "{r:?}"
        );
        let r = post(path, &["aeg-sas-key: d3Jvbmc="]);
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.message().contains("does not match key1 or key2"), "{r:?}");
        let r = post(path, &["Authorization: Bearer x.y.z"]);
        assert_eq!(r.status, 401, "{r:?}");
    }
    sub.expect_silence(Duration::from_millis(200));
    let keys = mgmt(
        http,
        ADMIN,
        "POST",
        "/mgmt/namespaces/default/listKeys",
        b"",
    )
    .json();
    let k2 = keys["key2"].as_str().unwrap();
    // key2, and SAS tokens for the namespace or for the short path, on both paths.
    let ns_token = evgrid::http::auth::sign_sas(
        &format!("http://{http}/namespaces/default"),
        "2099-01-01T00:00:00Z",
        &eg.key,
    );
    let host_token = evgrid::http::auth::sign_sas(
        "https://default.eventgrid.example/mqtt/messages",
        "2099-01-01T00:00:00Z",
        k2,
    );
    let expired = evgrid::http::auth::sign_sas(
        &format!("http://{http}/namespaces/default"),
        "2001-01-01T00:00:00Z",
        &eg.key,
    );
    for path in ["/mqtt/messages", "/namespaces/default/mqtt/messages"] {
        for h in [
            format!("Authorization: SharedAccessKey {k2}"),
            format!("aeg-sas-token: {ns_token}"),
            format!("Authorization: SharedAccessSignature {host_token}"),
        ] {
            assert_204(&post(path, &[&h]));
            assert_eq!(sub.next_msg().topic, "a/b");
        }
        let r = post(path, &[&format!("aeg-sas-token: {expired}")]);
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.message().contains("expired"), "{r:?}");
    }
    // The read API takes the same credentials.
    let r = request(
        http,
        "GET",
        &format!("/mqtt/retainedMessages/message?topic=a&{READ}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = request(
        http,
        "GET",
        &format!("/mqtt/retainedMessages/message?topic=a&{READ}"),
        &[&format!("aeg-sas-token: {ns_token}")],
        b"",
    );
    assert_eq!(r.status, 404, "{r:?}");
}

/// A retained message published over MQTT is read over HTTP too, and an expired one is gone.
#[test]
fn retained_read_api_sees_mqtt_publishers_and_expiry() {
    let eg = Eg::start(&[]);
    let mut dev = Client::ok(eg.srv.mqtt, Opts::v5("device"));
    assert_eq!(dev.pub_wait("site/1/temp", b"21.5", 1, true), 0);
    let r = eg.retained("site/1/temp");
    assert_eq!((r.status, r.body.as_str()), (200, "21.5"), "{r:?}");
    assert_eq!(r.header("x-ms-mqtt-qos"), Some("1"));
    // A topic name with characters a header cannot carry comes back percent-encoded.
    assert_204(&eg.post(
        &format!("topic=site%2Fcaf%C3%A9%20bar&retain=1&{PUB}"),
        &[],
        b"v",
    ));
    let r = eg.retained("site%2Fcaf%C3%A9%20bar");
    assert_eq!(
        r.header("x-ms-mqtt-topic"),
        Some("site/caf%C3%A9%20bar"),
        "{r:?}"
    );
    // Expiry: 1 s, then the read API and a late subscriber no longer see it.
    assert_204(&eg.post(
        &format!("topic=site/1/alarm&retain=1&{PUB}"),
        &["mqtt-message-expiry: 1"],
        b"hot",
    ));
    assert_eq!(
        eg.retained("site/1/alarm").header("x-ms-mqtt-expiry"),
        Some("1")
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(eg.retained("site/1/alarm").status, 404);
    let mut late = subscriber(&eg, "late", "site/1/alarm");
    late.expect_silence(Duration::from_millis(200));
}

/// A chunked body (no Content-Length) is refused once it passes the maximum packet size, without
/// the server waiting for the rest of it.
#[test]
fn chunked_body_over_the_packet_size_is_refused_while_reading() {
    use std::io::{Read, Write};
    let eg = Eg::start(&[("EVGRID_MQTT_MAX_PACKET_SIZE", "4096")]);
    let mut s = std::net::TcpStream::connect(eg.srv.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /mqtt/messages?topic=t&{PUB} HTTP/1.1\r\nHost: x\r\n{}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        eg.auth()
    );
    s.write_all(head.as_bytes()).unwrap();
    // 5 KiB in two chunks, and no final chunk: the answer must come without the end of the body.
    for _ in 0..2 {
        s.write_all(format!("a00\r\n{}\r\n", "x".repeat(0xa00)).as_bytes())
            .unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("RequestEntityTooLarge") && text.contains("limit of 4096 bytes"),
        "{text}"
    );
}
