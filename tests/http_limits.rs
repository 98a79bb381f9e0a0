//! The HTTP edge against hostile or broken clients, over real sockets against the real binary:
//! bodies that are declared and never sent, trickled, or too large; management calls without
//! the key; headers that never finish; malformed requests and what they cost in the log.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use common::http::{Resp, mgmt_json, request};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";

fn start(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("EVGRID_ADMIN_KEY", ADMIN)];
    env.extend_from_slice(extra);
    Server::start(&env)
}

fn mgmt(srv: &Server, method: &str, path: &str, body: &Value) -> Resp {
    mgmt_json(srv.http, ADMIN, method, path, body)
}

/// A complete one-event publish to `top1` is answered 200.
fn assert_small_publish_ok(srv: &Server, key: &str) {
    let r = request(
        srv.http,
        "POST",
        "/topics/top1/api/events?api-version=2018-01-01",
        &[&format!("aeg-sas-key: {key}"), "Content-Type: application/json"],
        json!([{"id": "1", "eventType": "T", "subject": "s", "eventTime": "2024-05-01T10:00:00Z", "data": {}}])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

/// Creates custom topic `name` and answers its key1.
fn topic(srv: &Server, name: &str) -> String {
    let r = mgmt(
        srv,
        "PUT",
        &format!("/mgmt/topics/{name}"),
        &json!({"properties": {}}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let k = mgmt(
        srv,
        "POST",
        &format!("/mgmt/topics/{name}/listKeys"),
        &Value::Null,
    );
    k.json()["key1"].as_str().unwrap().to_string()
}

/// Opens a connection and sends `head` (request line and headers, with the blank line) only.
fn send_head(srv: &Server, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(srv.http).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

fn publish_head(key: &str, declared: usize) -> String {
    format!(
        "POST /topics/top1/api/events?api-version=2018-01-01 HTTP/1.1\r\nHost: x\r\naeg-sas-key: {key}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )
}

/// Reads until the server closes (or `timeout`): (everything read, whether it closed).
fn read_until_close(s: &mut TcpStream, timeout: Duration) -> (String, bool) {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = Vec::new();
    let closed = match s.read_to_end(&mut buf) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(_) => false,
    };
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

fn status_and_body(answer: &str) -> (u16, Value) {
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |x| x.1);
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
    (status, body)
}

/// Raises this process's open-file soft limit to its hard limit (many client sockets).
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur
    }
}

#[test]
fn a_declared_body_that_never_arrives_gets_408_and_the_connection_is_closed() {
    let srv = start(&[("EVGRID_HTTP_BODY_TIMEOUT_MS", "1000")]);
    let key = topic(&srv, "top1");
    let started = Instant::now();
    let mut s = send_head(&srv, &publish_head(&key, 1_048_576));
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10));
    let took = started.elapsed();
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(body["error"]["code"], "RequestTimeout", "{answer}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("0 of 1048576 bytes")),
        "{answer}"
    );
    assert!(closed, "the connection stays open after the 408");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );

    // A body trickled a byte at a time is cut off at the same total time, not per byte.
    let mut s = send_head(&srv, &publish_head(&key, 1000));
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // One byte, then wait up to 200 ms for an answer; once one starts, only read (writing
    // into a connection the server is closing could reset it before the answer is read).
    let mut buf = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if buf.is_empty() && s.write_all(b" ").is_err() {
            let (rest, _) = read_until_close(&mut s, Duration::from_secs(2));
            buf.extend_from_slice(rest.as_bytes());
            break;
        }
    }
    let answer = String::from_utf8_lossy(&buf).into_owned();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "trickle held the connection {:?}",
        started.elapsed()
    );
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(body["error"]["code"], "RequestTimeout");
    assert!(srv.metric("evgrid_http_body_timeouts_total") >= 2.0);

    // A complete body is unaffected.
    assert_small_publish_ok(&srv, &key);
}

/// 500 connections declare a megabyte each and send nothing: the server must not set aside
/// their declared sizes (500 MB; it did, with `BytesMut::with_capacity(declared)`), and frees
/// them at the body timeout.
#[test]
fn stalled_bodies_do_not_cost_their_declared_size() {
    const CONNS: usize = 500;
    let limit = raise_fd_limit();
    assert!(
        limit > CONNS as u64 + 100,
        "open-file limit {limit} too low"
    );
    let srv = start(&[("EVGRID_HTTP_BODY_TIMEOUT_MS", "8000")]);
    let key = topic(&srv, "top1");
    // Warm up the worker (a full request) before the baseline.
    for _ in 0..3 {
        let s = send_head(&srv, &publish_head(&key, 2));
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = srv.rss_mib();
    let head = publish_head(&key, 1_048_576);
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| send_head(&srv, &head)).collect();
    // Let the server read every head and start every handler.
    std::thread::sleep(Duration::from_millis(1500));
    let during = srv.rss_mib();
    eprintln!(
        "RSS {before:.0} MiB before, {during:.0} MiB with {CONNS} stalled 1 MB bodies (+{:.0} MiB)",
        during - before
    );
    assert!(
        during - before < 64.0,
        "RSS grew by {:.0} MiB for {CONNS} stalled bodies (before {before:.0}, during {during:.0})",
        during - before
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "setup too slow for the timeout"
    );
    // Each one gets its 408 and is closed.
    for (i, s) in conns.iter_mut().enumerate() {
        let (answer, closed) = read_until_close(s, Duration::from_secs(20));
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "connection {i}: {answer:?}"
        );
        assert!(closed, "connection {i} not closed");
    }
    eprintln!("RSS {:.0} MiB after the 408s", srv.rss_mib());
}

#[test]
fn management_checks_the_key_before_reading_the_body() {
    let srv = start(&[("EVGRID_HTTP_BODY_TIMEOUT_MS", "30000")]);
    for (auth, declared) in [
        ("", 1_048_576),
        ("Authorization: Bearer wrong-key-0123456789\r\n", 200_000),
        ("", 200_000),
    ] {
        let started = Instant::now();
        let mut s = send_head(
            &srv,
            &format!(
                "PUT /mgmt/topics/top1 HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            ),
        );
        let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
        let (status, body) = status_and_body(&answer);
        assert_eq!(status, 401, "{auth:?} {declared}: {answer}");
        assert_eq!(body["error"]["code"], "Unauthorized");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the 401 waited for the body ({:?})",
            started.elapsed()
        );
    }
    // Nothing was created.
    assert_eq!(
        mgmt(&srv, "GET", "/mgmt/topics/top1", &Value::Null).status,
        404
    );
}

#[test]
fn management_bodies_over_the_limit_get_an_event_grid_413() {
    let srv = start(&[]);
    let big = format!(
        "{{\"properties\":{{}},\"pad\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/topics/top1",
        &serde_json::from_str(&big).unwrap(),
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.code(), "RequestEntityTooLarge");
    assert!(r.message().contains("262144"), "{r:?}");
    assert!(
        r.header("Content-Type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{r:?}"
    );
    // Within the limit it is read as before.
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/topics/top1",
        &json!({"properties": {}, "pad": "x".repeat(200 * 1024)}),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn headers_that_never_finish_are_cut_off_at_the_header_timeout() {
    let srv = start(&[("EVGRID_HTTP_HEADER_TIMEOUT_MS", "1000")]);
    let started = Instant::now();
    let mut s = send_head(&srv, "POST /topics/top1/api/events HTTP/1.1\r\nHost: x\r\n");
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10));
    assert!(closed, "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
}

#[test]
fn malformed_requests_do_not_flood_the_error_log() {
    let (srv, log) = Server::start_capturing_stderr(&[("EVGRID_ADMIN_KEY", ADMIN)]);
    for i in 0..20 {
        let mut s = send_head(
            &srv,
            &format!("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope{i}\r\n\r\n"),
        );
        let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    // The server still answers, and has had time to write whatever it logs.
    assert_eq!(srv.get("/healthz").0, 200);
    std::thread::sleep(Duration::from_millis(300));
    let text = log.lock().unwrap().clone();
    let errors = text.lines().filter(|l| l.contains("ERROR")).count();
    assert!(
        errors <= 1,
        "{errors} ERROR lines for 20 malformed requests:\n{text}"
    );
}

/// Many connections each send half of a declared 1 MB body and stall, against a 16 MiB memory
/// budget: the bodies that fit are held (and counted as `http_body`), each one that would pass
/// the budget is answered 503 `ServerBusy` with `Retry-After` and closed at once, not at the
/// body timeout; closing the held ones gives every byte back.
#[test]
fn bodies_beyond_the_memory_budget_get_503_at_once_and_give_back_on_close() {
    const BUDGET: usize = 16 * 1024 * 1024;
    const CONNS: usize = 48;
    const PART: usize = 512 * 1024;
    let srv = start(&[
        ("EVGRID_MEMORY_BUDGET_BYTES", "16777216"),
        ("EVGRID_HTTP_BODY_TIMEOUT_MS", "30000"),
    ]);
    let key = topic(&srv, "top1");
    assert_eq!(srv.metric("evgrid_memory_budget_bytes"), BUDGET as f64);
    let head = publish_head(&key, 1_048_576);
    let part = vec![b' '; PART];
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let mut s = send_head(&srv, &head);
            // A refused connection is closed under the write: its error is expected here, the
            // answer is read below.
            let _ = s.write_all(&part);
            s
        })
        .collect();
    // Every body that was not refused ends with all of its part in the server's buffer, exactly
    // PART bytes each: wait for the gauge to stop moving.
    let gauge = || srv.metric("evgrid_buffered_bytes{kind=\"http_body\"}") as usize;
    let mut held_bytes = gauge();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = gauge();
        if (now == held_bytes && now > 0) || Instant::now() > deadline {
            held_bytes = now;
            break;
        }
        held_bytes = now;
    }
    let (mut refused, mut held) = (0, 0);
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut first = [0u8; 1];
        match s.read(&mut first) {
            Ok(1) => {
                let (rest, closed) = read_until_close(s, Duration::from_secs(5));
                let answer = format!("{}{rest}", first[0] as char);
                let (status, body) = status_and_body(&answer);
                assert_eq!(status, 503, "connection {i}: {answer}");
                assert_eq!(body["error"]["code"], "ServerBusy", "{answer}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("memory budget")),
                    "{answer}"
                );
                assert!(
                    answer.to_ascii_lowercase().contains("\r\nretry-after: "),
                    "{answer}"
                );
                assert!(closed, "connection {i} stays open after its 503");
                refused += 1;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                held += 1;
            }
            other => panic!("connection {i}: {other:?}"),
        }
    }
    let took = started.elapsed();
    eprintln!(
        "{held} bodies held ({held_bytes} bytes), {refused} refused, all answered in {took:?}"
    );
    // Every 503 had arrived long before the 30 s body timeout.
    assert!(took < Duration::from_secs(5), "answers took {took:?}");
    assert_eq!(held + refused, CONNS);
    assert!(held > 0 && refused > 0, "held {held}, refused {refused}");
    assert_eq!(held_bytes, held * PART, "the gauge counts the held bodies");
    assert!(
        held_bytes <= BUDGET,
        "{held_bytes} bytes held over the budget"
    );
    assert!(
        refused >= CONNS - BUDGET / PART,
        "only {refused} refused: more than the budget was held"
    );
    assert_eq!(
        srv.metric("evgrid_http_memory_budget_refusals_total"),
        refused as f64
    );

    // The held connections close mid-body: their bytes are given back.
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.metric("evgrid_buffered_bytes{kind=\"http_body\"}") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "http_body still {} after every connection closed",
            srv.metric("evgrid_buffered_bytes{kind=\"http_body\"}")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_small_publish_ok(&srv, &key);
}
