//! A minimal HTTP/1.1 client for the HTTP modes: one keep-alive TCP connection, requests
//! written by hand, responses parsed here (status line, headers, a body delimited by
//! `Content-Length`, by `Transfer-Encoding: chunked` or by the server closing the connection).
//! No pipelining: one request at a time per connection. Plain `http://` only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest response head (status line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A parsed `http://HOST[:PORT][/PATH]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// `Host` header value: the host as given, with the port unless it is 80.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub base_path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base_path)
    }
}

pub fn parse_url(s: &str) -> Result<Url, String> {
    let s = s.trim();
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if s.starts_with("https://") {
        return Err(format!(
            "--url {s}: https is not supported (plain http:// only; put a TLS proxy in front if needed)"
        ));
    } else if s.contains("://") {
        return Err(format!("--url {s}: only http:// URLs are supported"));
    } else {
        s
    };
    let (hostport, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return Err(format!("--url {s}: no query or fragment allowed")),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!("--url {s}: no query or fragment allowed"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("--url {s}: unclosed '[' in the host"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("--url {s}: bad host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("--url {s}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("--url {s}: bad port '{p}'"))?,
        None => 80,
    };
    let host_in_header = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(Url {
        host: host.to_string(),
        port,
        authority: if port == 80 {
            host_in_header
        } else {
            format!("{host_in_header}:{port}")
        },
        base_path: path.trim_end_matches('/').to_string(),
    })
}

/// Appends a request with `body` (always with a `Content-Length`, even when empty) to `out`.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    authority: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server will close the connection after this response.
    pub close: bool,
}

impl Response {
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// "401 Unauthorized"
    pub fn status_text(&self) -> String {
        if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        }
    }

    /// `error.message` of an Event Grid error body, if there is one.
    pub fn error_message(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let e = v.get("error")?;
        let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
        let code = e.get("code").and_then(|m| m.as_str()).unwrap_or("");
        Some(match (code.is_empty(), msg.is_empty()) {
            (false, false) => format!("{code}: {msg}"),
            (false, true) => code.to_string(),
            _ => msg.to_string(),
        })
    }
}

/// Result of [`parse_response`] on the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// A whole response, and how many bytes of the buffer it took.
    Complete(Response, usize),
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Finds the end of the next line starting at `from`: returns (line without CR LF, index after
/// the LF).
fn line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rel = buf.get(from..)?.iter().position(|&b| b == b'\n')?;
    let end = from + rel;
    let l = &buf[from..end];
    Some((l.strip_suffix(b"\r").unwrap_or(l), end + 1))
}

/// Parses one response from the start of `buf`. `eof`: the server closed the connection after
/// these bytes (completes a body that runs until close; anything else incomplete is an error).
/// Interim 1xx responses (except 101) are skipped.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Parsed, String> {
    let mut start = 0;
    loop {
        match parse_one(&buf[start..], eof)? {
            Parsed::Complete(r, n) if (100..200).contains(&r.status) && r.status != 101 => {
                start += n;
            }
            Parsed::Complete(r, n) => return Ok(Parsed::Complete(r, start + n)),
            Parsed::Incomplete if eof => {
                return Err(if buf.len() == start {
                    "connection closed by the server".to_string()
                } else {
                    "connection closed by the server in the middle of a response".to_string()
                });
            }
            Parsed::Incomplete => return Ok(Parsed::Incomplete),
        }
    }
}

fn parse_one(buf: &[u8], eof: bool) -> Result<Parsed, String> {
    // status line
    let Some((status_line, mut pos)) = line(buf, 0) else {
        return if buf.len() > MAX_HEAD {
            Err("response status line too long".into())
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let sl = std::str::from_utf8(status_line).map_err(|_| "status line is not UTF-8")?;
    let mut parts = sl.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(format!("not an HTTP/1.x response: {:?}", truncate(sl, 60))),
    };
    let code = parts.next().unwrap_or("");
    let status: u16 = match code.parse() {
        Ok(s) if code.len() == 3 && (100..1000).contains(&s) => s,
        _ => return Err(format!("bad status line {:?}", truncate(sl, 60))),
    };
    let reason = parts.next().unwrap_or("").trim().to_string();

    // headers
    let mut headers = Vec::new();
    loop {
        let Some((l, next)) = line(buf, pos) else {
            return if buf.len() > MAX_HEAD {
                Err("response head too long".into())
            } else {
                Ok(Parsed::Incomplete)
            };
        };
        pos = next;
        if l.is_empty() {
            break;
        }
        if pos > MAX_HEAD {
            return Err("response head too long".into());
        }
        let l = std::str::from_utf8(l).map_err(|_| "header is not UTF-8")?;
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {:?}", truncate(l, 60)))?;
        if k.is_empty() || k.ends_with([' ', '\t']) {
            return Err(format!("bad header line {:?}", truncate(l, 60)));
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let head_len = pos;

    let has_token = |name: &str, token: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let mut close = has_token("connection", "close");
    if http10 && !has_token("connection", "keep-alive") {
        close = true;
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if let Some((_, te)) = headers.iter().rfind(|(k, _)| k == "transfer-encoding") {
        // the last coding decides: chunked, or anything else runs until close
        let last = te.rsplit(',').next().unwrap_or("").trim();
        if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        let mut len: Option<usize> = None;
        for (_, v) in headers.iter().filter(|(k, _)| k == "content-length") {
            for p in v.split(',') {
                let n: usize = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?;
                if len.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                len = Some(n);
            }
        }
        match len {
            Some(n) if n > MAX_BODY => {
                return Err(format!("response body of {n} bytes is too large"));
            }
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };

    let (body, used) = match framing {
        Framing::None => (Vec::new(), head_len),
        Framing::Length(n) => {
            if buf.len() < head_len + n {
                return Ok(Parsed::Incomplete);
            }
            (buf[head_len..head_len + n].to_vec(), head_len + n)
        }
        Framing::UntilClose => {
            if !eof {
                if buf.len() - head_len > MAX_BODY {
                    return Err("response body too large".into());
                }
                return Ok(Parsed::Incomplete);
            }
            close = true;
            (buf[head_len..].to_vec(), buf.len())
        }
        Framing::Chunked => match chunked(buf, head_len)? {
            Some(x) => x,
            None => return Ok(Parsed::Incomplete),
        },
    };
    Ok(Parsed::Complete(
        Response {
            status,
            reason,
            headers,
            body,
            close,
        },
        used,
    ))
}

/// Decodes a chunked body starting at `pos`: `None` while incomplete, else (body, end).
/// Walks the chunk headers first and copies only once the whole body is there.
fn chunked(buf: &[u8], pos: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut chunks: Vec<(usize, usize)> = Vec::new();
    let mut total = 0usize;
    let mut p = pos;
    loop {
        let Some((l, next)) = line(buf, p) else {
            if buf.len() - p > 1024 {
                return Err("chunk size line too long".into());
            }
            return Ok(None);
        };
        let l = std::str::from_utf8(l).map_err(|_| "bad chunk size line")?;
        let size_text = l.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {:?}", truncate(l, 40)))?;
        p = next;
        if size == 0 {
            // trailers, up to an empty line
            loop {
                let Some((t, next)) = line(buf, p) else {
                    return Ok(None);
                };
                p = next;
                if t.is_empty() {
                    break;
                }
            }
            let mut body = Vec::with_capacity(total);
            for (a, b) in chunks {
                body.extend_from_slice(&buf[a..b]);
            }
            return Ok(Some((body, p)));
        }
        total = total
            .checked_add(size)
            .filter(|&t| t <= MAX_BODY)
            .ok_or("response body too large")?;
        if buf.len() < p + size + 2 {
            return Ok(None);
        }
        if &buf[p + size..p + size + 2] != b"\r\n" {
            return Err("chunk not followed by CR LF".into());
        }
        chunks.push((p, p + size));
        p += size + 2;
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    Connect(String),
    Io(String),
    Timeout,
    Protocol(String),
}

impl HttpError {
    /// Short key for the error table.
    pub fn kind(&self) -> String {
        match self {
            HttpError::Connect(e) => format!("connect: {e}"),
            HttpError::Io(e) => format!("io: {e}"),
            HttpError::Timeout => "timeout".to_string(),
            HttpError::Protocol(e) => format!("bad response: {e}"),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.kind())
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The last response asked for the connection to be closed (or it broke).
    pub closed: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, HttpError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(HttpError::Connect(e.to_string())),
            Err(_) => {
                return Err(HttpError::Connect(format!(
                    "no answer within {:.1} s",
                    timeout.as_secs_f64()
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            closed: false,
        })
    }

    /// Writes `req` (a whole request) and reads the response, within `timeout`. On any error
    /// the connection is marked closed.
    pub async fn roundtrip(
        &mut self,
        req: &[u8],
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let res = match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout),
        };
        match &res {
            Ok(r) if !r.close => {}
            _ => self.closed = true,
        }
        res
    }

    async fn exchange(&mut self, req: &[u8]) -> Result<Response, HttpError> {
        self.stream
            .write_all(req)
            .await
            .map_err(|e| HttpError::Io(e.to_string()))?;
        let mut eof = false;
        loop {
            match parse_response(&self.buf, eof).map_err(HttpError::Protocol)? {
                Parsed::Complete(r, n) => {
                    self.buf.drain(..n);
                    return Ok(r);
                }
                Parsed::Incomplete => {}
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| HttpError::Io(e.to_string()))?;
            if n == 0 {
                eof = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let u = parse_url("http://127.0.0.1:8080/namespaces/default/").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 8080);
        assert_eq!(u.authority, "127.0.0.1:8080");
        assert_eq!(u.base_path, "/namespaces/default");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/namespaces/default");
        let u = parse_url("localhost").unwrap();
        assert_eq!(
            (u.port, u.authority.as_str(), u.base_path.as_str()),
            (80, "localhost", "")
        );
        let u = parse_url("http://[::1]:9000/ns").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert_eq!(u.authority, "[::1]:9000");
        assert!(parse_url("https://x/").unwrap_err().contains("https"));
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://x:0/").is_err());
        assert!(parse_url("http://x:99999/").is_err());
        assert!(parse_url("http:///a").is_err());
        assert!(parse_url("http://x/a?b=1").is_err());
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
}
