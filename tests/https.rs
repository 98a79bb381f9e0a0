//! HTTPS end to end, against the real binary: the API over TLS (`http.tls`) with curl (publish,
//! management, metrics; plain HTTP on the HTTPS port and a stalled handshake hurt no other
//! client) and with the `azure-eventgrid` Python SDK trusting a custom CA; push delivery to an
//! `https://` `webhook-sink` with the validation handshake (its CA trusted through
//! `push.tls.ca_file`), for a custom topic and a namespace subscription in Push mode (the
//! CloudEvents OPTIONS handshake); and a webhook whose certificate is from an untrusted CA, refused at
//! validation and, once it changes under a live subscription, dead-lettered with the outcome
//! `CertificateError`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, TempDir, loadtest_bin};
use evgrid::tls::dev::DevCa;
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";

/// A CA and a server certificate it issued for 127.0.0.1 and localhost, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path, tag: &str) -> Pki {
        let ca = DevCa::new(&format!("{tag} CA")).unwrap();
        let (cert, key) = ca
            .issue("localhost", &["localhost", "127.0.0.1"], false)
            .unwrap();
        let p = Pki {
            ca: dir.join(format!("{tag}-ca.pem")),
            cert: dir.join(format!("{tag}-server.pem")),
            key: dir.join(format!("{tag}-server.key")),
        };
        std::fs::write(&p.ca, ca.cert_pem()).unwrap();
        std::fs::write(&p.cert, cert).unwrap();
        std::fs::write(&p.key, key).unwrap();
        p
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// evgrid with an HTTPS listener serving `pki`'s certificate, and `extra` settings.
fn https_server(pki: &Pki, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_HTTP_TLS_BIND", "127.0.0.1:0"),
        ("EVGRID_HTTP_TLS_CERT_FILE", s(&pki.cert)),
        ("EVGRID_HTTP_TLS_KEY_FILE", s(&pki.key)),
    ];
    env.extend_from_slice(extra);
    Server::start(&env)
}

/// curl with `args`; answers (exit code, HTTP status, body).
fn curl(args: &[&str]) -> (i32, u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body.to_string(),
    )
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_api_over_https_with_curl_and_bad_clients_hurt_no_one() {
    let dir = TempDir::new("https-api");
    let pki = Pki::new(&dir.0, "api");
    // Long enough that a client queued behind the stalled handshakes below would show.
    let srv = https_server(&pki, &[("EVGRID_HTTP_TLS_HANDSHAKE_TIMEOUT_MS", "3000")]);
    let https = srv.listener("https");
    let base = format!("https://{https}");
    let ca = s(&pki.ca);
    let bearer = format!("Authorization: Bearer {ADMIN}");

    // Management, publish and metrics over TLS, the certificate verified against the CA.
    let (rc, st, body) = curl(&[
        "--cacert",
        ca,
        "-X",
        "PUT",
        "-H",
        &bearer,
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &format!("{base}/mgmt/topics/orders"),
    ]);
    assert_eq!((rc, st), (0, 201), "{body}");
    let (rc, st, body) = curl(&[
        "--cacert",
        ca,
        "-X",
        "POST",
        "-H",
        &bearer,
        &format!("{base}/mgmt/topics/orders/listKeys"),
    ]);
    assert_eq!((rc, st), (0, 200), "{body}");
    let key: Value = serde_json::from_str(&body).unwrap();
    let key = key["key1"].as_str().unwrap();
    let events = json!([{"id": "1", "eventType": "T", "subject": "s", "data": {},
        "dataVersion": "1", "eventTime": "2024-05-01T10:00:00Z"}]);
    let (rc, st, body) = curl(&[
        "--cacert",
        ca,
        "-H",
        &format!("aeg-sas-key: {key}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        &events.to_string(),
        &format!("{base}/topics/orders/api/events?api-version=2018-01-01"),
    ]);
    assert_eq!((rc, st), (0, 200), "{body}");
    // By name too (the certificate's DNS name).
    let by_name = format!("https://localhost:{}/metrics", https.port());
    let (rc, st, metrics) = curl(&["--cacert", ca, &by_name]);
    assert_eq!((rc, st), (0, 200));
    assert!(metrics.contains("evgrid_http_publish"), "{metrics}");

    // Without the CA curl refuses the certificate (exit 60): nothing is served unverified.
    let (rc, _, _) = curl(&[&format!("{base}/metrics")]);
    assert_eq!(rc, 60, "curl trusted a certificate it should not");

    // Plain HTTP on the HTTPS port gets no HTTP answer, and the connection is closed.
    let mut plain = TcpStream::connect(https).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP was answered");

    // Handshakes that never finish, more than actix-tls's default cap of 256 in progress per
    // worker: others are served meanwhile, and each is cut off after
    // http.tls.handshake_timeout_ms.
    const STALLED: usize = 300;
    let mut others: Vec<TcpStream> = (0..STALLED - 1)
        .map(|_| {
            let mut s = TcpStream::connect(https).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff, 0x01]).unwrap();
            s
        })
        .collect();
    let mut stalled = TcpStream::connect(https).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0xff, 0x01])
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let (rc, st, _) = curl(&["--cacert", ca, &format!("{base}/metrics")]);
    assert_eq!((rc, st), (0, 200));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "served after {:?}, behind the stalled handshakes",
        t.elapsed()
    );
    let (st, _) = srv.get("/metrics");
    assert_eq!(st, 200, "the plain listener still answers");
    let mut buf = [0u8; 64];
    let cut = match stalled.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => true, // an alert, then the close
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(cut, "the stalled handshake was not cut off");
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "cut off after {:?}",
        t.elapsed()
    );

    // Completed handshakes are counted: the five curls that got through, not the refused ones,
    // nor the plain listener's connections.
    let n = srv.metric("evgrid_tls_handshakes_total{listener=\"https\"}");
    assert_eq!(n, 5.0, "handshakes counted");
    // And every refused one by its reason: plain HTTP, the stalled handshake, and curl giving
    // up on a certificate it does not trust (it says so with an alert).
    let failed = |reason: &str| {
        srv.metric(&format!(
            "evgrid_tls_handshake_failures_total{{listener=\"https\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(failed("not_tls"), 1.0, "plain HTTP on the HTTPS port");
    wait_until(
        "every stalled handshake cut",
        Duration::from_secs(6),
        || failed("timeout") == STALLED as f64,
    );
    others.clear();
    assert_eq!(failed("peer_closed"), 1.0, "curl refusing the certificate");
}

/// A `webhook-sink` serving HTTPS with `pki`'s certificate on `bind`, writing its report to
/// `json`; answers it and the address it listens on.
fn sink(pki: &Pki, bind: &str, json: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(loadtest_bin())
        .args(["webhook-sink", "--bind", bind])
        .args(["--tls-cert", s(&pki.cert), "--tls-key", s(&pki.key)])
        .args(["--duration", "60s", "--json"])
        .arg(json)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "webhook-sink exited");
        if let Some((_, rest)) = line.split_once("listening on https://") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, addr)
}

fn mgmt(srv: &Server, method: &str, path: &str, body: &Value) -> common::http::Resp {
    common::http::mgmt_json(srv.http, ADMIN, method, path, body)
}

fn topic(srv: &Server, name: &str) -> String {
    let r = mgmt(srv, "PUT", &format!("/mgmt/topics/{name}"), &json!({}));
    assert_eq!(r.status, 201, "{r:?}");
    let k = mgmt(
        srv,
        "POST",
        &format!("/mgmt/topics/{name}/listKeys"),
        &Value::Null,
    );
    k.json()["key1"].as_str().unwrap().to_string()
}

fn publish(srv: &Server, name: &str, key: &str, ids: std::ops::Range<u32>) {
    let events: Vec<Value> = ids
        .map(|i| {
            json!({"id": format!("e{i}"), "eventType": "T", "subject": "s", "data": {"i": i},
                "dataVersion": "1", "eventTime": "2024-05-01T10:00:00Z"})
        })
        .collect();
    let k = format!("aeg-sas-key: {key}");
    let r = common::http::request(
        srv.http,
        "POST",
        &format!("/topics/{name}/api/events?api-version=2018-01-01"),
        &[&k, "Content-Type: application/json"],
        Value::Array(events).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

fn hook_props(url: &str, extra: Value) -> Value {
    let mut p = json!({"destination": {"endpointType": "WebHook",
        "properties": {"endpointUrl": url, "maxEventsPerBatch": 5}}});
    if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
        p.extend(e);
    }
    json!({ "properties": p })
}

fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "webhook-sink did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn push_delivery_to_an_https_webhook_sink_with_the_validation_handshake() {
    const N: u32 = 40;
    let dir = TempDir::new("https-sink");
    let pki = Pki::new(&dir.0, "sink");
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_TICK_MS", "20"),
        ("EVGRID_PUSH_TLS_CA_FILE", s(&pki.ca)),
    ]);
    let key = topic(&srv, "orders");
    let report = dir.0.join("sink.json");
    let (mut child, addr) = sink(
        &pki,
        "127.0.0.1:0",
        &report,
        &["--expect", &N.to_string(), "--idle", "1s"],
    );
    // Validated synchronously over TLS: the subscription is active at once.
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/topics/orders/eventSubscriptions/tls",
        &hook_props(&format!("https://{addr}/hook"), json!({})),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.json()["properties"]["provisioningState"], "Succeeded");
    // Four rounds, each delivered (two requests of 5) before the next is published, so the
    // connections of one round are idle and reusable when the next one starts.
    for round in 0..4 {
        publish(&srv, "orders", &key, round * N / 4..(round + 1) * N / 4);
        let want = f64::from((round + 1) * N / 4);
        wait_until("the round's delivery", Duration::from_secs(10), || {
            srv.metric("evgrid_push_events_delivered_total") >= want
        });
    }
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(st.success(), "webhook-sink exit {st}");
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let ev = &rep["events"];
    assert_eq!(ev["accepted"], N, "{rep}");
    assert_eq!(ev["duplicated"], 0, "{ev}");
    assert_eq!(
        rep["handshakes"]["validation_sync"], 1,
        "{}",
        rep["handshakes"]
    );
    // Connections are reused: the validation and 8 deliveries, at most two at a time, over at
    // most three TLS connections.
    let conns = rep["connections"].as_u64().unwrap();
    assert!((1..=3).contains(&conns), "{conns} connections: {rep}");
    assert_eq!(
        srv.metric("evgrid_push_failures_by_outcome_total{outcome=\"CertificateError\"}"),
        0.0
    );
}

/// A namespace subscription in Push mode: the CloudEvents handshake (OPTIONS) and delivery over
/// TLS.
#[test]
fn namespace_push_to_an_https_webhook_sink_with_the_cloudevents_handshake() {
    let dir = TempDir::new("https-ns");
    let pki = Pki::new(&dir.0, "ns");
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_TICK_MS", "20"),
        ("EVGRID_PUSH_TLS_CA_FILE", s(&pki.ca)),
    ]);
    let report = dir.0.join("sink.json");
    let (mut child, addr) = sink(
        &pki,
        "127.0.0.1:0",
        &report,
        &["--expect", "2", "--idle", "500ms"],
    );
    let t = "/mgmt/namespaces/default/topics/alerts";
    assert_eq!(mgmt(&srv, "PUT", t, &json!({"properties": {}})).status, 201);
    let sub = json!({"properties": {"deliveryConfiguration": {"deliveryMode": "Push", "push": {
        "destination": {"endpointType": "WebHook",
            "properties": {"endpointUrl": format!("https://{addr}/ns")}}}}}});
    let r = mgmt(&srv, "PUT", &format!("{t}/eventSubscriptions/tls"), &sub);
    assert_eq!(r.status, 201, "{r:?}");
    let nk = mgmt(
        &srv,
        "POST",
        "/mgmt/namespaces/default/listKeys",
        &Value::Null,
    )
    .json()["key1"]
        .as_str()
        .unwrap()
        .to_string();
    let ce = json!([
        {"specversion": "1.0", "id": "n1", "source": "/alerts", "type": "A", "data": {}},
        {"specversion": "1.0", "id": "n2", "source": "/alerts", "type": "A", "data": {}}
    ]);
    let r = common::http::request(
        srv.http,
        "POST",
        "/namespaces/default/topics/alerts:publish?api-version=2024-06-01",
        &[
            &format!("Authorization: SharedAccessKey {nk}"),
            "Content-Type: application/cloudevents-batch+json; charset=utf-8",
        ],
        ce.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let st = wait_exit(&mut child, Duration::from_secs(20));
    assert!(st.success(), "webhook-sink exit {st}");
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["events"]["accepted"], 2, "{rep}");
    assert_eq!(
        rep["handshakes"]["options_allowed"], 1,
        "{}",
        rep["handshakes"]
    );
}

#[test]
fn an_untrusted_webhook_certificate_is_refused_then_dead_lettered_as_a_certificate_error() {
    let dir = TempDir::new("https-untrusted");
    let trusted = Pki::new(&dir.0, "trusted");
    let rogue = Pki::new(&dir.0, "rogue");
    let srv = Server::start(&[
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_TICK_MS", "20"),
        ("EVGRID_PUSH_RETRY_SCHEDULE_MS", "100,100,100"),
        ("EVGRID_PUSH_TLS_CA_FILE", s(&trusted.ca)),
    ]);
    let _ = topic(&srv, "orders");

    // The validation handshake to an endpoint whose certificate does not verify fails, saying
    // why; the request never went out in plaintext.
    let (mut r1, a1) = sink(&rogue, "127.0.0.1:0", &dir.0.join("r1.json"), &[]);
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/topics/orders/eventSubscriptions/rogue",
        &hook_props(&format!("https://{a1}/hook"), json!({})),
    );
    assert_eq!(r.status, 400, "{r:?}");
    let msg = r.message();
    assert!(
        msg.contains("certificate error") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    let _ = r1.kill();
    let _ = r1.wait();

    // A subscription validated against a trusted endpoint whose certificate is then replaced by
    // one from an unknown CA: every attempt fails on the certificate, then the event is
    // dead-lettered with that outcome.
    let (mut good, addr) = sink(&trusted, "127.0.0.1:0", &dir.0.join("good.json"), &[]);
    let dl = json!({"retryPolicy": {"maxDeliveryAttempts": 3},
        "deadLetterDestination": {"endpointType": "StorageBlob",
            "properties": {"resourceId": "local", "blobContainerName": "dead"}}});
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/topics/orders/eventSubscriptions/swapped",
        &hook_props(&format!("https://{addr}/hook"), dl),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let _ = good.kill();
    let _ = good.wait();
    let (mut bad, _) = sink(&rogue, &addr.to_string(), &dir.0.join("bad.json"), &[]);
    let key = mgmt(&srv, "POST", "/mgmt/topics/orders/listKeys", &Value::Null).json()["key1"]
        .as_str()
        .unwrap()
        .to_string();
    publish(&srv, "orders", &key, 0..1);
    let path = "/mgmt/topics/orders/eventSubscriptions/swapped/deadLetters";
    let mut dead = Vec::new();
    wait_until("the dead letter", Duration::from_secs(15), || {
        let r = mgmt(&srv, "GET", path, &Value::Null);
        dead = r.json()["value"].as_array().cloned().unwrap_or_default();
        !dead.is_empty()
    });
    let d = &dead[0];
    assert_eq!(d["id"], "e0", "{d}");
    assert_eq!(d["deadLetterReason"], "MaxDeliveryAttemptsExceeded", "{d}");
    assert_eq!(d["deliveryAttempts"], 3, "{d}");
    assert_eq!(d["lastDeliveryOutcome"], "CertificateError", "{d}");
    assert_eq!(d["lastHttpStatusCode"], Value::Null, "{d}");
    let why = d["lastDeliveryError"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("certificate error: ") && why.contains("UnknownIssuer"),
        "{d}"
    );
    // Counted by outcome (a first attempt on a connection the old sink closed may count as a
    // socket error).
    let n = srv.metric("evgrid_push_failures_by_outcome_total{outcome=\"CertificateError\"}");
    assert!(n >= 2.0, "certificate errors counted: {n}");
    let _ = bad.kill();
    let _ = bad.wait();
}

/// The Python to run the SDK with: `SDK_PYTHON`, else `target/sdk-venv/bin/python` (which
/// `./scripts/test` creates; tests/sdk.rs checks its SDK version). Without it this test fails.
fn python() -> PathBuf {
    let py = match std::env::var_os("SDK_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk-venv/bin/python"),
    };
    assert!(
        py.exists(),
        "no Python with the azure-eventgrid SDK at {}: run ./scripts/test, or set SDK_PYTHON",
        py.display()
    );
    py
}

/// `tests/sdk/test_https.py`: the SDK publishes, receives and acknowledges over HTTPS, trusting
/// evgrid's certificate through a CA it is given (and refusing it without).
#[test]
fn azure_eventgrid_python_sdk_over_https_with_a_custom_ca() {
    let py = python();
    let dir = TempDir::new("https-sdk");
    let pki = Pki::new(&dir.0, "sdk");
    let srv = https_server(&pki, &[]);
    let https = format!("https://{}", srv.listener("https"));
    let r = mgmt(
        &srv,
        "POST",
        "/mgmt/namespaces/default/listKeys",
        &Value::Null,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let key = r.json()["key1"].as_str().unwrap().to_string();
    let mut child = Command::new(&py)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-m", "pytest", "-q", "-rfEX", "-p", "no:cacheprovider"])
        .arg("tests/sdk/test_https.py")
        .env("EVGRID_HTTPS", &https)
        .env("EVGRID_HTTP", &https)
        .env("EVGRID_CA", &pki.ca)
        .env("EVGRID_KEY", key)
        .env("EVGRID_ADMIN", ADMIN)
        // For evgrid_mgmt's urllib (OpenSSL's default paths); the SDK gets the CA explicitly.
        .env("SSL_CERT_FILE", &pki.ca)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = std::thread::spawn(move || {
        let _ = se.read_to_string(&mut err);
        err
    });
    let _ = so.read_to_string(&mut out);
    let err = t.join().unwrap();
    let st = child.wait().unwrap();
    assert!(
        st.success(),
        "pytest failed ({st})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    );
    assert!(out.contains("3 passed"), "{out}");
}
