//! Unit tests of the HTTP/1.1 framing: URLs, response and request parsing, chunked bodies.

use super::client::{Parsed, parse_response};
use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn complete(buf: &[u8]) -> (Response, usize) {
    match parse_response(buf, false).unwrap() {
        Parsed::Complete(r, n) => (r, n),
        Parsed::Incomplete => panic!("incomplete: {:?}", String::from_utf8_lossy(buf)),
    }
}

/// Every strict prefix is incomplete, the whole is complete: what split reads see.
fn check_split(buf: &[u8]) -> (Response, usize) {
    for i in 0..buf.len() {
        match parse_response(&buf[..i], false) {
            Ok(Parsed::Incomplete) => {}
            other => panic!("prefix of {i} bytes: {other:?}"),
        }
    }
    complete(buf)
}

#[test]
fn content_length() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json; charset=utf-8\r\ndate: x\r\n\r\n{}";
    let (r, n) = check_split(raw);
    assert_eq!(n, raw.len());
    assert_eq!(r.status, 200);
    assert_eq!(r.reason, "OK");
    assert_eq!(r.body, b"{}");
    assert!(!r.close);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: y\r\n\r\n";
    let (r, n) = check_split(raw);
    assert_eq!(n, raw.len());
    assert_eq!(r.body, b"hello, world");
    // hex sizes, upper and lower case
    let mut raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1A\r\n".to_vec();
    raw.extend_from_slice(&[b'a'; 26]);
    raw.extend_from_slice(b"\r\nb\r\n");
    raw.extend_from_slice(&[b'b'; 11]);
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let (r, _) = check_split(&raw);
    assert_eq!(r.body.len(), 37);
    assert!(r.body.starts_with(b"aaaa") && r.body.ends_with(b"bbbb"));
}

#[test]
fn split_reads_of_a_large_chunked_body() {
    let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut want = Vec::new();
    for i in 0..50u8 {
        let data = vec![b'a' + i % 26; 1000 + i as usize];
        raw.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        raw.extend_from_slice(&data);
        raw.extend_from_slice(b"\r\n");
        want.extend_from_slice(&data);
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    // fed in odd-sized pieces as reads would deliver them
    let mut seen = 0;
    let mut done = None;
    while seen < raw.len() {
        seen = (seen + 997).min(raw.len());
        match parse_response(&raw[..seen], false).unwrap() {
            Parsed::Incomplete => assert!(seen < raw.len()),
            Parsed::Complete(r, n) => done = Some((r, n)),
        }
    }
    let (r, n) = done.unwrap();
    assert_eq!(n, raw.len());
    assert_eq!(r.body, want);
}

#[test]
fn leftover_bytes_stay_for_the_next_response() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    let (r, n) = complete(raw);
    assert_eq!(r.body, b"abc");
    let (r2, n2) = complete(&raw[n..]);
    assert_eq!(r2.status, 404);
    assert_eq!(r2.status_text(), "404 Not Found");
    assert_eq!(n + n2, raw.len());
}

#[test]
fn close_interim_and_no_body_statuses() {
    let (r, _) = complete(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    assert!(r.close);
    let (r, _) = complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert!(r.close, "HTTP/1.0 closes unless keep-alive");
    let (r, _) =
        complete(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    assert!(!r.close);
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let (r, n) = complete(raw);
    assert_eq!((r.status, n), (204, raw.len()));
    // bare LF line ends are tolerated
    let (r, _) = complete(b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx");
    assert_eq!(r.body, b"x");
}

#[test]
fn body_until_close() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
    assert_eq!(parse_response(raw, false).unwrap(), Parsed::Incomplete);
    match parse_response(raw, true).unwrap() {
        Parsed::Complete(r, n) => {
            assert_eq!(r.body, b"all of it");
            assert!(r.close);
            assert_eq!(n, raw.len());
        }
        Parsed::Incomplete => panic!(),
    }
    // eof before a complete length-delimited body is an error
    let e = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true);
    assert!(e.unwrap_err().contains("middle of a response"));
    assert!(
        parse_response(b"", true)
            .unwrap_err()
            .contains("closed by the server")
    );
}

#[test]
fn malformed_responses() {
    for raw in [
        &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
    ] {
        assert!(
            parse_response(raw, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // a repeated identical length is fine
    let (r, _) = complete(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx");
    assert_eq!(r.body, b"x");
}

#[test]
fn error_bodies() {
    let (r, _) = complete(
        b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 56\r\n\r\n{\"error\":{\"code\":\"Unauthorized\",\"message\":\"bad key.\"}}  ",
    );
    assert_eq!(r.error_message().unwrap(), "Unauthorized: bad key.");
}

#[test]
fn urls() {
    let u = parse_url("--url", "http://127.0.0.1:8080/namespaces/default/").unwrap();
    assert_eq!(u.host, "127.0.0.1");
    assert_eq!(u.port, 8080);
    assert_eq!(u.authority, "127.0.0.1:8080");
    assert_eq!(u.base_path, "/namespaces/default");
    assert_eq!(u.to_string(), "http://127.0.0.1:8080/namespaces/default");
    let u = parse_url("--url", "localhost").unwrap();
    assert_eq!(
        (u.port, u.authority.as_str(), u.base_path.as_str()),
        (80, "localhost", "")
    );
    let u = parse_url("--url", "http://[::1]:9000/ns").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
    assert_eq!(u.authority, "[::1]:9000");
    let u = parse_url("--url", "https://x/ns").unwrap();
    assert!(u.tls);
    assert_eq!((u.port, u.authority.as_str()), (443, "x"));
    assert_eq!(u.to_string(), "https://x/ns");
    let u = parse_url("--url", "https://x:8443").unwrap();
    assert_eq!(
        (u.tls, u.port, u.authority.as_str()),
        (true, 8443, "x:8443")
    );
    assert!(!parse_url("--url", "http://x:443").unwrap().tls);
    assert!(parse_url("--url", "ftp://x/").is_err());
    assert!(parse_url("--url", "http://x:0/").is_err());
    assert!(parse_url("--url", "http://x:99999/").is_err());
    assert!(parse_url("--url", "http:///a").is_err());
    assert!(parse_url("--url", "http://x/a?b=1").is_err());
}

#[test]
fn targets_with_queries_and_encoding() {
    let (u, t) = parse_target(
        "validationUrl",
        "http://127.0.0.1:553/eventsubscriptions/s/validate?id=1&t=x#frag",
    )
    .unwrap();
    assert_eq!((u.authority.as_str(), u.port), ("127.0.0.1:553", 553));
    assert_eq!(t, "/eventsubscriptions/s/validate?id=1&t=x");
    let (_, t) = parse_target("x", "http://h?a=b").unwrap();
    assert_eq!(t, "/?a=b");
    let (_, t) = parse_target("x", "http://h:81").unwrap();
    assert_eq!(t, "/");
    let (u, t) = parse_target("validationUrl", "https://rp:553/v?x").unwrap();
    assert!(u.tls);
    assert_eq!((u.port, t.as_str()), (553, "/v?x"));
    let e = parse_target("validationUrl", "ftp://rp:553/v?x").unwrap_err();
    assert!(e.starts_with("validationUrl ftp://rp:553/v"), "{e}");
    assert_eq!(encode_component("bench-sub_1.x~"), "bench-sub_1.x~");
    assert_eq!(encode_component("a b/c:d="), "a%20b%2Fc%3Ad%3D");
}

fn request(buf: &[u8]) -> (Request, usize) {
    match parse_request(buf).unwrap() {
        ParsedRequest::Complete(r, n) => (r, n),
        other => panic!("{other:?}: {:?}", String::from_utf8_lossy(buf)),
    }
}

#[test]
fn pipelined_requests_split_anywhere() {
    let mut raw = b"POST /api/events?x=1 HTTP/1.1\r\nHost: h\r\naeg-event-type: Notification\r\nContent-Length: 4\r\n\r\n[{}]".to_vec();
    let first = raw.len();
    raw.extend_from_slice(
        b"OPTIONS /api/events HTTP/1.1\r\nWebHook-Request-Origin: eventgrid.azure.net\r\n\r\n",
    );
    let second = raw.len();
    raw.extend_from_slice(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n[]\r\n0\r\n\r\n");
    for i in 0..first {
        assert_eq!(
            parse_request(&raw[..i]).unwrap(),
            ParsedRequest::Incomplete {
                expects_continue: false
            },
            "prefix {i}"
        );
    }
    let (r, n) = request(&raw);
    assert_eq!(n, first);
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/api/events?x=1")
    );
    assert_eq!(r.header("AEG-Event-Type"), Some("Notification"));
    assert_eq!(r.body, b"[{}]");
    assert!(!r.close);
    let (r, n2) = request(&raw[n..]);
    assert_eq!(n + n2, second);
    assert_eq!(r.method, "OPTIONS");
    assert!(r.body.is_empty());
    let (r, n3) = request(&raw[second..]);
    assert_eq!(second + n3, raw.len());
    assert_eq!(r.body, b"[]");
    assert!(r.close);
}

#[test]
fn request_edge_cases() {
    let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(
        parse_request(head).unwrap(),
        ParsedRequest::Incomplete {
            expects_continue: true
        }
    );
    let (r, _) = request(b"GET /x HTTP/1.0\r\n\r\n");
    assert!(r.close, "HTTP/1.0 closes unless keep-alive");
    for (raw, says) in [
        (&b"SSH-2.0-OpenSSH\r\n"[..], "bad request line"),
        (b"POST /\r\n\r\n", "bad request line"),
        (b"POST / HTTP/2\r\n\r\n", "not an HTTP/1.x request"),
        (
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "bad Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "other than chunked",
        ),
        (b"POST / HTTP/1.1\r\nbad\r\n\r\n", "bad header line"),
    ] {
        let e = parse_request(raw).unwrap_err();
        assert!(e.contains(says), "{:?}: {e}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn responses_written_parse_back() {
    let mut out = Vec::new();
    write_response(&mut out, 503, &[("Retry-After", "1")], b"", false);
    write_response(&mut out, 204, &[], b"", false);
    write_response(&mut out, 599, &[], b"x", true);
    let (r, n) = complete(&out);
    assert_eq!(r.status_text(), "503 Service Unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
    let (r, n2) = complete(&out[n..]);
    assert_eq!(r.status, 204);
    let (r, n3) = complete(&out[n + n2..]);
    assert_eq!(
        (r.status, r.body.as_slice(), r.close),
        (599, &b"x"[..], true)
    );
    assert_eq!(n + n2 + n3, out.len());
}

#[test]
fn request_bytes() {
    let mut out = Vec::new();
    write_request(
        &mut out,
        "POST",
        "/a:b?x=1",
        "h:1",
        &[("Authorization", "SharedAccessKey k")],
        b"[]",
    );
    assert_eq!(
        out,
        b"POST /a:b?x=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\nAuthorization: SharedAccessKey k\r\n\r\n[]"
    );
}

/// Against a real socket: a server that answers in small pieces, chunked then sized, on
/// one keep-alive connection; then a refused connection.
#[tokio::test]
async fn over_a_socket() {
    use tokio::net::TcpListener;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let answers: [&[u8]; 2] = [
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\":\r\n2\r\n1}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        ];
        for a in answers {
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            for piece in a.chunks(5) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut c = Conn::connect(addr, Duration::from_secs(5)).await.unwrap();
    let mut req = Vec::new();
    write_request(&mut req, "POST", "/x", "h", &[], b"");
    let r = c.roundtrip(&req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.body, b"{\"a\":1}");
    assert!(!c.closed);
    let r = c.roundtrip(&req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.body, b"{}");
    assert!(c.closed);
    server.await.unwrap();

    // nothing listens on a port just released
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = Conn::connect(addr, Duration::from_secs(5))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, HttpError::Connect(_)), "{e:?}");
}
