//! `http-publish` and `pull` against a small fake Event Grid namespace served by the test
//! (publish, receive, acknowledge; answers sized and chunked, and now and then closes the
//! connection), plus the errors a user sees for a wrong key and an unreachable server.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const KEY: &str = "dGVzdCBrZXk=";

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    locked: HashMap<String, String>,
    next_token: u64,
    published: u64,
    publish_requests: u64,
    acked: u64,
    bad_requests: Vec<String>,
}

/// The fake namespace `default` with topic `t` and queue subscription `s`.
struct Fake {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn start() -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(s, st));
            }
        });
        Fake { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/namespaces/default", self.port)
    }
}

fn respond(s: &mut TcpStream, status: &str, body: &[u8], chunked: bool, close: bool) {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n");
    if close {
        out.push_str("connection: close\r\n");
    }
    let mut out = out.into_bytes();
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
        let mid = body.len() / 2;
        for part in [&body[..mid], &body[mid..]] {
            if !part.is_empty() {
                out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
    let _ = s.write_all(&out);
}

fn serve(s: TcpStream, st: Arc<Mutex<State>>) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut n = 0u64;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        let mut auth = String::new();
        let mut ctype = String::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap(),
                "authorization" => auth = v.trim().to_string(),
                "content-type" => ctype = v.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        n += 1;
        let close = n.is_multiple_of(25);
        if auth != format!("SharedAccessKey {KEY}") {
            respond(
                &mut w,
                "401 Unauthorized",
                br#"{"error":{"code":"Unauthorized","message":"The key is not valid for this namespace."}}"#,
                false,
                false,
            );
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut g = st.lock().unwrap();
        if !query.contains("api-version=2024-06-01") {
            g.bad_requests.push(format!("no api-version: {target}"));
        }
        match path {
            "/namespaces/default/topics/t:publish" => {
                if ctype != "application/cloudevents-batch+json; charset=utf-8" {
                    g.bad_requests.push(format!("content type {ctype}"));
                }
                let events: Vec<Value> = serde_json::from_slice(&body).unwrap();
                g.published += events.len() as u64;
                g.publish_requests += 1;
                for e in events {
                    g.queue.push_back(e.to_string());
                }
                drop(g);
                respond(&mut w, "200 OK", b"{}", n.is_multiple_of(2), close);
            }
            "/namespaces/default/topics/t/eventsubscriptions/s:receive" => {
                let max: usize = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("maxEvents="))
                    .unwrap()
                    .parse()
                    .unwrap();
                let mut items = Vec::new();
                while items.len() < max {
                    let Some(e) = g.queue.pop_front() else { break };
                    g.next_token += 1;
                    let tok = format!("tok{}", g.next_token);
                    items.push(format!(
                        r#"{{"brokerProperties":{{"lockToken":"{tok}","deliveryCount":1}},"event":{e}}}"#
                    ));
                    g.locked.insert(tok, e);
                }
                drop(g);
                if items.is_empty() {
                    // a short long-poll
                    std::thread::sleep(Duration::from_millis(200));
                }
                let body = format!(r#"{{"value":[{}]}}"#, items.join(","));
                respond(&mut w, "200 OK", body.as_bytes(), true, close);
            }
            "/namespaces/default/topics/t/eventsubscriptions/s:acknowledge" => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                for t in v["lockTokens"].as_array().unwrap() {
                    let t = t.as_str().unwrap().to_string();
                    if g.locked.remove(&t).is_some() {
                        ok.push(t);
                    } else {
                        failed.push(serde_json::json!({"lockToken": t, "error": {"code": "TokenLost", "message": "Token has expired."}}));
                    }
                }
                g.acked += ok.len() as u64;
                drop(g);
                let body =
                    serde_json::json!({"failedLockTokens": failed, "succeededLockTokens": ok});
                respond(&mut w, "200 OK", body.to_string().as_bytes(), false, close);
            }
            _ => {
                drop(g);
                respond(
                    &mut w,
                    "404 Not Found",
                    br#"{"error":{"code":"NotFound","message":"No such topic."}}"#,
                    false,
                    false,
                );
            }
        }
        if close {
            return;
        }
    }
}

fn args(mode: &str, url: &str, more: &str) -> Vec<String> {
    let mut v = vec![mode.to_string(), "--url".into(), url.to_string()];
    v.extend(more.split_whitespace().map(String::from));
    v
}

#[test]
fn publish_then_pull_everything() {
    let f = Fake::start();
    let a = args(
        "http-publish",
        &f.url(),
        &format!("--topic t --key {KEY} --connections 4 --batch 20 --size 300 --duration 1s"),
    );
    let r = run(&strs(&a), LIMIT);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code(), 0, "{ctx}");
    let published = f.state.lock().unwrap().published;
    assert!(published > 0, "{ctx}");
    assert_eq!(r.u("events.published"), published, "{ctx}");
    assert_eq!(r.u("requests.ok") * 20, published);
    assert_eq!(r.u("requests.failed"), 0, "{ctx}");
    assert!(
        r.u("requests.reconnects") > 0,
        "the server closes every 25th: {ctx}"
    );
    assert_eq!(r.u("latency_us.publish.count"), r.u("requests.ok"));
    assert!(r.f("throughput.events_per_s") > 0.0);
    assert_eq!(r.s("mode"), "closed-loop");
    assert_eq!(r.u("event_bytes"), 300);
    assert!(r.stdout.contains("events/s"), "{ctx}");
    {
        let g = f.state.lock().unwrap();
        assert!(g.bad_requests.is_empty(), "{:?}", g.bad_requests);
        let ev: Value = serde_json::from_str(g.queue.front().unwrap()).unwrap();
        assert_eq!(ev.to_string().len(), 300, "event size");
        assert_eq!(ev["specversion"], "1.0");
    }

    let a = args(
        "pull",
        &f.url(),
        &format!(
            "--topic t --subscription s --key {KEY} --consumers 3 --max-events 50 --duration 20s --until-empty"
        ),
    );
    let r = run(&strs(&a), LIMIT);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code(), 0, "{ctx}");
    assert_eq!(r.u("events.received"), published, "{ctx}");
    assert_eq!(r.u("events.acked"), published, "{ctx}");
    assert_eq!(r.u("events.failed_tokens"), 0, "{ctx}");
    assert!(r.u("events.empty_receives") >= 1, "{ctx}");
    assert_eq!(
        r.u("latency_us.e2e.count"),
        published,
        "publish stamps read back"
    );
    assert!(r.u("latency_us.ack.count") > 0);
    assert!(r.f("wall_s") < 15.0, "--until-empty stops early: {ctx}");
    let g = f.state.lock().unwrap();
    assert_eq!(g.acked, published);
    assert!(g.queue.is_empty() && g.locked.is_empty());
}

#[test]
fn open_loop_publish_keeps_the_rate() {
    let f = Fake::start();
    let a = args(
        "http-publish",
        &f.url(),
        &format!("--topic t --key {KEY} --connections 2 --batch 10 --rate 2000 --duration 2s"),
    );
    let r = run(&strs(&a), LIMIT);
    let ctx = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert_eq!(r.code(), 0, "{ctx}");
    assert_eq!(r.s("mode"), "open-loop");
    // 2000 events/s for 2 s in batches of 10: 400 requests
    let sent = r.u("requests.sent") + r.u("requests.not_sent");
    assert!((398..=402).contains(&sent), "{sent}: {ctx}");
    assert!(r.u("latency_us.send_lag.count") > 0);
}

#[test]
fn a_wrong_key_or_topic_stops_with_the_servers_message() {
    let f = Fake::start();
    let a = args(
        "http-publish",
        &f.url(),
        "--topic t --key wrong --connections 2 --duration 5s",
    );
    let r = run(&strs(&a), LIMIT);
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("401 Unauthorized") && r.stderr.contains("not valid"),
        "{}",
        r.stderr
    );
    let a = args(
        "pull",
        &f.url(),
        &format!("--topic nope --subscription s --key {KEY} --duration 5s"),
    );
    let r = run(&strs(&a), LIMIT);
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("404 Not Found"), "{}", r.stderr);
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/namespaces/default");
    for mode in ["http-publish", "pull"] {
        let a = args(
            mode,
            &url,
            "--topic t --subscription s --key k --duration 1s",
        );
        let a: Vec<String> = if mode == "http-publish" {
            a.into_iter()
                .filter(|x| x != "--subscription" && x != "s")
                .collect()
        } else {
            a
        };
        let r = run(&strs(&a), LIMIT);
        assert_eq!(r.code(), 2, "{mode}: {}\n{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&format!(
                "error: cannot connect to {url} (127.0.0.1:{port})"
            )) && r.stderr.contains("refused"),
            "{mode}: {}",
            r.stderr
        );
    }
    // something listens but drops every connection (e.g. not an HTTP listener)
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
        }
    });
    let url = format!("http://127.0.0.1:{port}/namespaces/default");
    let r = run(
        &[
            "http-publish",
            "--url",
            &url,
            "--topic",
            "t",
            "--key",
            "k",
            "--duration",
            "2s",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("without answering")
            || r.stderr.contains("does not answer like an HTTP server"),
        "{}",
        r.stderr
    );
    // https:// to the same listener: the TLS handshake fails, named as such
    let https = url.replace("http://", "https://");
    let r = run(
        &[
            "http-publish",
            "--url",
            &https,
            "--topic",
            "t",
            "--key",
            "k",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "cannot connect to {https} (127.0.0.1:{port}): TLS handshake"
        )),
        "{}",
        r.stderr
    );
    // a CA bundle with a plain http:// URL would go unused
    let r = run(
        &[
            "http-publish",
            "--url",
            &url,
            "--topic",
            "t",
            "--key",
            "k",
            "--cafile",
            "ca.pem",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr.contains("--cafile is for TLS connections"),
        "{}",
        r.stderr
    );
    let r = run(
        &[
            "http-publish",
            "--url",
            "ftp://x/",
            "--topic",
            "t",
            "--key",
            "k",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), 2);
    assert!(
        r.stderr.contains("only http:// and https://"),
        "{}",
        r.stderr
    );
}
