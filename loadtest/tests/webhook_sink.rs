//! `webhook-sink` and `http-publish --endpoint` (basic tier) against each other over real
//! sockets, the sink's handshakes seen by a raw HTTP client, and the errors a user sees for a
//! busy port and bad arguments.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(60);
/// The test key of the worked examples in docs/eventgrid.md §3 (base64 of "this is a fake key
/// for testing only!").
const KEY: &str = "dGhpcyBpcyBhIGZha2Uga2V5IGZvciB0ZXN0aW5nIG9ubHkh";

/// A running webhook-sink with its JSON report to come.
struct Sink {
    port: u16,
    child: Child,
    json: PathBuf,
    _dir: TempDir,
}

impl Sink {
    fn start(more: &[&str]) -> Sink {
        let dir = TempDir::new("sink");
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec!["webhook-sink", "--bind", &bind];
        args.extend_from_slice(more);
        let (child, json) = spawn(&dir, &args);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "webhook-sink did not listen on {bind}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Sink {
            port,
            child,
            json,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/api/events", self.port)
    }

    fn finish(self) -> Run {
        wait(self.child, self.json, LIMIT)
    }
}

fn ctx(r: &Run) -> String {
    format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr)
}

fn publish(sink: &Sink, more: &str) -> Run {
    let mut a = vec![
        "http-publish".to_string(),
        "--endpoint".into(),
        sink.endpoint(),
    ];
    a.extend(more.split_whitespace().map(String::from));
    run(&strs(&a), LIMIT)
}

/// What both clean runs must show, given the publisher's and the sink's reports.
fn assert_delivered_once_each(p: &Run, s: &Run, n: u64, content_type: &str, credential: &str) {
    let both = format!("publisher:\n{}\nsink:\n{}", ctx(p), ctx(s));
    assert_eq!(p.code(), 0, "{both}");
    assert_eq!(s.code(), 0, "{both}");
    assert_eq!(p.s("tier"), "basic");
    assert_eq!(p.s("api_version"), "2018-01-01");
    assert_eq!(p.s("auth"), credential);
    assert_eq!(p.u("events.published"), n, "{both}");
    assert_eq!(p.u("requests.failed"), 0, "{both}");
    assert_eq!(s.s("ended_by"), "expect", "{both}");
    let requests = p.u("requests.ok");
    assert_eq!(s.u("requests.deliveries"), requests, "{both}");
    assert_eq!(s.u("requests.accepted"), requests);
    assert_eq!(s.u("requests.by_status.200"), requests);
    assert_eq!(
        s.u(&format!("headers.content_type.{content_type}")),
        requests
    );
    assert_eq!(s.u(&format!("headers.auth.{credential}")), requests);
    assert!(s.u("connections") >= p.u("connections"), "{both}");
    for k in ["received", "accepted", "unique", "expected"] {
        assert_eq!(s.u(&format!("events.{k}")), n, "events.{k}: {both}");
    }
    for k in [
        "rejected",
        "duplicated",
        "reordered",
        "foreign",
        "unstamped",
    ] {
        assert_eq!(s.u(&format!("events.{k}")), 0, "events.{k}: {both}");
    }
    assert_eq!(s.i("events.lost"), 0);
    assert_eq!(s.u("latency_us.e2e.count"), n, "every event's stamp read");
    let (p50, p99, max) = (
        s.f("latency_us.e2e.p50_us"),
        s.f("latency_us.e2e.p99_us"),
        s.f("latency_us.e2e.max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
    // the publisher's request latency includes the sink's answer, which follows arrival
    assert!(s.f("latency_us.e2e.min_us") <= p.f("latency_us.publish.max_us"));
    assert!(s.f("throughput.events_per_s") > 0.0);
    assert!(
        s.stdout.contains("latency (us)") && s.stdout.contains("e2e"),
        "{both}"
    );
}

#[test]
fn eventgrid_events_with_a_key_arrive_once_each() {
    let sink = Sink::start(&["--expect", "2000", "--idle", "300ms", "--duration", "30s"]);
    let p = publish(
        &sink,
        &format!("--key {KEY} --connections 4 --batch 20 --size 400 --limit 2000 --duration 20s"),
    );
    let s = sink.finish();
    assert_eq!(p.s("schema"), "eventgrid", "the default with --endpoint");
    assert_delivered_once_each(
        &p,
        &s,
        2000,
        "application/json; charset=utf-8",
        "aeg-sas-key",
    );
    // every request was a full batch of 20 events of 400 B
    assert_eq!(p.u("request_body_bytes"), 2 + 20 * 401 - 1);
    assert_eq!(s.u("requests.bytes"), 100 * p.u("request_body_bytes"));
}

#[test]
fn cloudevents_with_a_signed_token_arrive_once_each() {
    let sink = Sink::start(&["--expect", "2000", "--idle", "300ms", "--duration", "30s"]);
    let p = publish(
        &sink,
        &format!(
            "--schema cloudevents --sas-key {KEY} --connections 2 --batch 10 --rate 4000 --limit 2000 --duration 20s"
        ),
    );
    let s = sink.finish();
    assert_eq!(p.s("schema"), "cloudevents");
    assert_eq!(p.s("mode"), "open-loop");
    assert_delivered_once_each(
        &p,
        &s,
        2000,
        "application/cloudevents-batch+json; charset=utf-8",
        "aeg-sas-token",
    );
}

#[test]
fn scripted_failures_are_failed_requests_for_the_publisher() {
    // deliveries 1-3 get 503 (the script), 10 and 20 get 500 (--fail-every), the rest 200,
    // each answered after 5 ms
    let sink = Sink::start(&[
        "--delay",
        "5ms",
        "--script",
        "503*3,200",
        "--fail-every",
        "10",
        "--fail-status",
        "500",
        "--idle",
        "500ms",
        "--duration",
        "30s",
        "--max-loss",
        "0.1",
    ]);
    let p = publish(
        &sink,
        &format!("--key {KEY} --connections 1 --batch 5 --limit 100 --duration 20s"),
    );
    let s = sink.finish();
    let both = format!("publisher:\n{}\nsink:\n{}", ctx(&p), ctx(&s));
    assert_eq!(p.code(), 0, "{both}");
    assert_eq!(
        (
            p.u("requests.sent"),
            p.u("requests.ok"),
            p.u("requests.failed")
        ),
        (20, 15, 5),
        "{both}"
    );
    assert_eq!(p.u("requests.errors.503 Service Unavailable"), 3, "{both}");
    assert_eq!(
        p.u("requests.errors.500 Internal Server Error"),
        2,
        "{both}"
    );
    assert_eq!(
        (p.u("events.published"), p.u("events.publish_failed")),
        (75, 25)
    );

    // rejected events are not accounted as delivered: 20 of the 95 sequence numbers up to the
    // highest accepted are missing, above --max-loss 0.1, so the exit code is 3
    assert_eq!(s.code(), 3, "{both}");
    assert!(s.stdout.contains("THRESHOLD MISSED  loss"), "{both}");
    assert_eq!(s.s("ended_by"), "idle");
    assert_eq!(s.s("answers"), "503*3,200; every 10th 500");
    assert_eq!(s.f("delay_ms"), 5.0);
    assert_eq!(s.u("requests.by_status.200"), 15);
    assert_eq!(s.u("requests.by_status.503"), 3);
    assert_eq!(s.u("requests.by_status.500"), 2);
    assert_eq!(
        (
            s.u("requests.deliveries"),
            s.u("requests.accepted"),
            s.u("requests.rejected")
        ),
        (20, 15, 5)
    );
    assert_eq!(
        (
            s.u("events.received"),
            s.u("events.accepted"),
            s.u("events.rejected")
        ),
        (100, 75, 25)
    );
    assert_eq!(s.s("events.expected_basis"), "sequence");
    assert_eq!((s.u("events.expected"), s.u("events.unique")), (95, 75));
    assert_eq!(s.i("events.lost"), 20);
    assert_eq!(s.u("latency_us.e2e.count"), 75, "accepted events are timed");
    assert!(
        !s.json.as_ref().unwrap()["thresholds"]["passed"]
            .as_bool()
            .unwrap()
    );
}

/// The basic-tier request exactly: one request caught by a listener that answers 200.
#[test]
fn basic_tier_requests_look_like_the_sdks() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let catcher = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let len: usize = head
            .iter()
            .find_map(|h| h.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (head, body)
    });
    let endpoint = format!("http://127.0.0.1:{port}/topics/orders/api/events");
    let r = run(
        &[
            "http-publish",
            "--endpoint",
            &endpoint,
            "--sas-key",
            KEY,
            "--connections",
            "1",
            "--batch",
            "1",
            "--limit",
            "1",
            "--size",
            "300",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), 0, "{}", ctx(&r));
    let (head, body) = catcher.join().unwrap();
    assert_eq!(
        head[0],
        "POST /topics/orders/api/events?api-version=2018-01-01 HTTP/1.1"
    );
    let header = |name: &str| {
        head.iter()
            .find_map(|h| h.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in {head:?}"))
    };
    assert_eq!(header("Content-Type"), "application/json; charset=utf-8");
    // signed for the endpoint, expiring in ISO 8601 UTC, signature last (docs/eventgrid.md §3)
    let token = header("aeg-sas-token");
    let prefix = format!("r=http%3A%2F%2F127.0.0.1%3A{port}%2Ftopics%2Forders%2Fapi%2Fevents&e=");
    let rest = token
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{token}"));
    let (expiry, sig) = rest.split_once("&s=").unwrap();
    assert_eq!(expiry.len(), "2030-01-01T00%3A00%3A00Z".len(), "{expiry}");
    assert!(expiry.ends_with('Z') && expiry.contains('T'), "{expiry}");
    assert!(sig.ends_with("%3D") && sig.len() > 40, "{sig}");
    let events: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ev = &events[0];
    assert_eq!(body.len(), 302, "one event of --size 300 in an array");
    // the six fields of an Event Grid event, nothing the SDK would not send
    // (docs/eventgrid.md §2.2, §9.2)
    assert_eq!(ev.as_object().unwrap().len(), 6, "{ev}");
    assert_eq!(
        (&ev["subject"], &ev["eventType"], &ev["dataVersion"]),
        (
            &serde_json::json!("/evgrid-loadtest"),
            &serde_json::json!("evgrid.loadtest"),
            &serde_json::json!("1.0")
        )
    );
    assert!(ev["eventTime"].as_str().unwrap().ends_with('Z'), "{ev}");
    assert_eq!(ev["id"], "00000-000000000000");
    assert!(ev["data"]["ts"].as_str().unwrap().parse::<u64>().unwrap() > 0);
}

/// A response as the raw client reads it: (status line, headers lowercased, body).
type Answer = (String, Vec<(String, String)>, String);

/// One response read from `r`.
fn response(r: &mut impl BufRead) -> Answer {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (
        status.trim_end().to_string(),
        headers,
        String::from_utf8(body).unwrap(),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Writes `requests` in one write (pipelined) and reads `n` answers.
fn exchange(port: u16, requests: &[u8], n: usize) -> Vec<Answer> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(requests).unwrap();
    let mut r = BufReader::new(s);
    (0..n).map(|_| response(&mut r)).collect()
}

fn post(event_type: &str, content_type: &str, body: &str) -> String {
    format!(
        "POST /api/events HTTP/1.1\r\nHost: sink\r\nContent-Type: {content_type}\r\naeg-event-type: {event_type}\r\naeg-subscription-name: SUB1\r\naeg-delivery-count: 0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn validation_request(url: &str) -> String {
    let body = format!(
        r#"[{{"id":"2d1781af","topic":"/subscriptions/x","subject":"","data":{{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"{url}"}},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2024-05-01T10:00:00.0000000Z","metadataVersion":"1","dataVersion":"1"}}]"#
    );
    post(
        "SubscriptionValidation",
        "application/json; charset=utf-8",
        &body,
    )
}

const OPTIONS: &str = "OPTIONS /api/events HTTP/1.1\r\nHost: sink\r\nWebHook-Request-Origin: eventgrid.azure.net\r\n\r\n";

#[test]
fn sync_validation_options_and_a_single_cloudevent_on_one_connection() {
    let sink = Sink::start(&["--idle", "300ms", "--duration", "30s"]);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let ce = format!(
        r#"{{"specversion":"1.0","id":"c1","source":"/x","type":"t","data":{{"ts":"{now_ns}"}}}}"#
    );
    let pipelined = [
        validation_request("https://rp.example:553/validate?id=1"),
        OPTIONS.to_string(),
        post(
            "Notification",
            "application/cloudevents+json; charset=utf-8",
            &ce,
        ),
        "GET /api/events HTTP/1.1\r\nHost: sink\r\n\r\n".to_string(),
    ]
    .concat();
    let answers = exchange(sink.port, pipelined.as_bytes(), 4);
    let (status, h, body) = &answers[0];
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        serde_json::json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    assert!(
        header(h, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let (status, h, _) = &answers[1];
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(h, "webhook-allowed-origin"),
        Some("eventgrid.azure.net")
    );
    assert_eq!(header(h, "allow"), Some("POST"));
    assert_eq!(answers[2].0, "HTTP/1.1 200 OK");
    assert_eq!(answers[3].0, "HTTP/1.1 405 Method Not Allowed");
    let s = sink.finish();
    assert_eq!(s.code(), 0, "{}", ctx(&s));
    assert_eq!(s.s("ended_by"), "idle");
    assert_eq!(s.u("handshakes.validation_sync"), 1);
    assert_eq!(s.u("handshakes.options_allowed"), 1);
    assert_eq!((s.u("requests.total"), s.u("requests.deliveries")), (4, 1));
    assert_eq!(
        (s.u("requests.by_status.200"), s.u("requests.by_status.405")),
        (3, 1)
    );
    assert_eq!((s.u("events.received"), s.u("events.accepted")), (1, 1));
    assert_eq!(s.u("events.foreign"), 1, "not an http-publish id");
    assert_eq!(s.u("events.unique"), 1);
    assert_eq!(s.u("latency_us.e2e.count"), 1, "the CloudEvent's data.ts");
    assert_eq!(s.u("headers.delivery_count.0"), 1);
    assert_eq!(s.u("headers.subscription_name.SUB1"), 1);
    assert_eq!(s.u("headers.event_type.SubscriptionValidation"), 1);
    assert_eq!(s.u("headers.event_type.Notification"), 1);
}

#[test]
fn a_client_expecting_100_continue_gets_it_before_sending_the_body() {
    let sink = Sink::start(&["--idle", "300ms", "--duration", "30s"]);
    let body = r#"[{"id":"00000-000000000000","data":{"ts":"1"}}]"#;
    let s = TcpStream::connect(("127.0.0.1", sink.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /api/events HTTP/1.1\r\nHost: sink\r\naeg-event-type: Notification\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (&s).write_all(head.as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(response(&mut r).0, "HTTP/1.1 100 Continue");
    (&s).write_all(body.as_bytes()).unwrap();
    assert_eq!(response(&mut r).0, "HTTP/1.1 200 OK");
    let s = sink.finish();
    assert_eq!(s.code(), 0, "{}", ctx(&s));
    assert_eq!((s.u("events.accepted"), s.u("events.unique")), (1, 1));
    assert_eq!(s.u("events.foreign"), 0, "an http-publish id");
}

#[test]
fn async_validation_gets_the_validation_url() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                break;
            }
        }
        w.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        tx.send(line.trim_end().to_string()).unwrap();
    });
    let sink = Sink::start(&[
        "--validation",
        "async",
        "--idle",
        "500ms",
        "--duration",
        "30s",
    ]);
    let url = format!("http://127.0.0.1:{port}/eventsubscriptions/s1/validate?id=abc&token=t1");
    let answers = exchange(sink.port, validation_request(&url).as_bytes(), 1);
    assert_eq!(answers[0].0, "HTTP/1.1 200 OK");
    assert_eq!(
        answers[0].2, "",
        "the asynchronous way answers without the code"
    );
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the sink did not GET the validation URL");
    assert_eq!(
        got,
        "GET /eventsubscriptions/s1/validate?id=abc&token=t1 HTTP/1.1"
    );
    let s = sink.finish();
    assert_eq!(s.code(), 0, "{}", ctx(&s));
    assert_eq!(s.u("handshakes.validation_async"), 1);
    assert_eq!(s.u("handshakes.async_get_ok"), 1, "{}", ctx(&s));
    assert_eq!(s.u("handshakes.async_get_failed"), 0);
}

#[test]
fn refused_handshakes_and_ctrl_c_prints_the_summary() {
    let sink = Sink::start(&["--validation", "refuse", "--duration", "30s"]);
    let pipelined = [
        validation_request("https://rp.example:553/validate?id=1"),
        OPTIONS.to_string(),
    ]
    .concat();
    let answers = exchange(sink.port, pipelined.as_bytes(), 2);
    assert_eq!(answers[0].0, "HTTP/1.1 403 Forbidden");
    assert_eq!(answers[1].0, "HTTP/1.1 403 Forbidden");
    assert_eq!(header(&answers[1].1, "webhook-allowed-origin"), None);
    // without --idle or --expect only --duration or Ctrl-C ends the run
    let st = std::process::Command::new("kill")
        .args(["-INT", &sink.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let s = sink.finish();
    assert_eq!(s.code(), 130, "{}", ctx(&s));
    assert!(s.stdout.contains("INTERRUPTED"), "{}", ctx(&s));
    assert_eq!(s.s("ended_by"), "interrupted");
    assert_eq!(s.u("handshakes.validation_refused"), 1);
    assert_eq!(s.u("handshakes.options_refused"), 1);
    assert_eq!(
        s.u("handshakes.validation_sync"),
        0,
        "every kind is reported"
    );
    assert_eq!(s.u("requests.by_status.403"), 2);
}

#[test]
fn a_busy_port_and_bad_arguments_are_clear_errors() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = l.local_addr().unwrap().to_string();
    let r = run(
        &["webhook-sink", "--bind", &bind, "--duration", "1s"],
        LIMIT,
    );
    assert_eq!(r.code(), 2, "{}", ctx(&r));
    assert!(
        r.stderr
            .contains(&format!("error: cannot listen on {bind}: "))
            && r.stderr.contains("in use"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    drop(l);

    for (args, says) in [
        (&["webhook-sink", "--script", "503*0,200"][..], "--script"),
        (
            &["webhook-sink", "--script", "200,503*2"],
            "not the last step",
        ),
        (&["webhook-sink", "--fail-every", "0"], "--fail-every"),
        (&["webhook-sink", "--status", "99"], "--status"),
        (&["webhook-sink", "--delay", "soon"], "--delay"),
        (&["webhook-sink", "--max-loss", "2"], "--max-loss"),
        (
            &["webhook-sink", "--status", "200", "--script", "200"],
            "cannot be used with",
        ),
        (
            &[
                "http-publish",
                "--endpoint",
                "http://127.0.0.1:9/api/events",
            ],
            "--key or --sas-key is required",
        ),
        (
            &[
                "http-publish",
                "--endpoint",
                "http://127.0.0.1:9/api/events",
                "--sas-key",
                "not base64!",
            ],
            "not a base64 key",
        ),
        (
            &[
                "http-publish",
                "--topic",
                "t",
                "--key",
                "k",
                "--schema",
                "eventgrid",
            ],
            "CloudEvents only",
        ),
        (
            &[
                "http-publish",
                "--endpoint",
                "http://h/api/events?x=1",
                "--key",
                "k",
            ],
            "--endpoint http://h/api/events?x=1: no query",
        ),
        (
            &[
                "http-publish",
                "--endpoint",
                "http://h/api/events",
                "--topic",
                "t",
                "--key",
                "k",
            ],
            "cannot be used with",
        ),
        (&["http-publish", "--key", "k"], "--topic is required"),
        (
            &["pull", "--topic", "t", "--subscription", "s"],
            "--key is required",
        ),
    ] {
        let r = run(args, LIMIT);
        assert_eq!(r.code(), 2, "{args:?}: {}", ctx(&r));
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
}
