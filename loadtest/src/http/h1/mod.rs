//! Minimal HTTP/1.1 for the HTTP modes, on tokio.
//!
//! - The client: one keep-alive TCP connection, requests written by hand, responses parsed here
//!   (status line, headers, a body delimited by `Content-Length`, by `Transfer-Encoding:
//!   chunked` or by the server closing the connection). No pipelining: one request at a time
//!   per connection. Plain `http://` only.
//! - For the webhook sink: [`parse_request`] and [`write_response`], the same head and body
//!   parsing seen from the server side (the sink owns its sockets).
//!
//! This module only frames messages; it never interprets Event Grid semantics.

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

/// Parses `http://HOST[:PORT][/PATH]` given to `flag` (named in the messages); no query.
pub fn parse_url(flag: &str, s: &str) -> Result<Url, String> {
    let s = s.trim();
    let rest = if let Some(r) = s.strip_prefix("http://") {
        r
    } else if s.starts_with("https://") {
        return Err(format!(
            "{flag} {s}: https is not supported (plain http:// only; put a TLS proxy in front if needed)"
        ));
    } else if s.contains("://") {
        return Err(format!("{flag} {s}: only http:// URLs are supported"));
    } else {
        s
    };
    let (hostport, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return Err(format!("{flag} {s}: no query or fragment allowed")),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!("{flag} {s}: no query or fragment allowed"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{flag} {s}: unclosed '[' in the host"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("{flag} {s}: bad host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{flag} {s}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{flag} {s}: bad port '{p}'"))?,
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

/// A URL that may carry a query (a webhook validation URL): the URL without it, and the
/// request target to send (path and query as given; a fragment is dropped).
pub fn parse_target(flag: &str, s: &str) -> Result<(Url, String), String> {
    let s = s.trim();
    let s = s.split_once('#').map_or(s, |(a, _)| a);
    let (base, query) = match s.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (s, None),
    };
    let url = parse_url(flag, base)?;
    let after_scheme = base.strip_prefix("http://").unwrap_or(base);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    Ok(match query {
        Some(q) => (url, format!("{path}?{q}")),
        None => (url, path.to_string()),
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, with uppercase hex: a URL
/// path segment or query value, and the `r` and `e` fields of a SAS token (spec §3).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        find_header(&self.headers, name)
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

/// The head of a message: what its start line parsed to, the headers (names lowercased, in
/// order) and the head's length.
struct Head<T> {
    start: T,
    headers: Vec<(String, String)>,
    len: usize,
}

/// Parses the head at the start of `buf`; None while incomplete. `start` checks the start line
/// as soon as it is there, so a peer that is not speaking HTTP is an error at once, not a wait.
/// `what` ("response", "request") names the message in errors.
fn parse_head<T>(
    buf: &[u8],
    what: &str,
    start: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<Head<T>>, String> {
    let too_long = |part: &str| Err(format!("{what} {part} too long"));
    let Some((first, mut pos)) = line(buf, 0) else {
        return if buf.len() > MAX_HEAD {
            too_long("start line")
        } else {
            Ok(None)
        };
    };
    let first =
        std::str::from_utf8(first).map_err(|_| format!("{what} start line is not UTF-8"))?;
    let start = start(first)?;
    let mut headers = Vec::new();
    loop {
        let Some((l, next)) = line(buf, pos) else {
            return if buf.len() > MAX_HEAD {
                too_long("head")
            } else {
                Ok(None)
            };
        };
        pos = next;
        if l.is_empty() {
            break;
        }
        if pos > MAX_HEAD {
            return too_long("head");
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
    Ok(Some(Head {
        start,
        headers,
        len: pos,
    }))
}

/// Whether a comma-separated header `name` (lowercase) lists `token`.
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The framing the headers declare: `Transfer-Encoding` wins over `Content-Length` (its last
/// coding decides: chunked, or anything else runs until close); None when neither is there.
fn declared_framing(headers: &[(String, String)]) -> Result<Option<Framing>, String> {
    if let Some((_, te)) = headers.iter().rfind(|(k, _)| k == "transfer-encoding") {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return Ok(Some(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }));
    }
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
        Some(n) if n > MAX_BODY => Err(format!("body of {n} bytes is too large")),
        Some(n) => Ok(Some(Framing::Length(n))),
        None => Ok(None),
    }
}

/// The body at `at` for a framing that does not depend on the connection closing: None while
/// incomplete, else (body, end).
fn delimited_body(
    buf: &[u8],
    at: usize,
    framing: &Framing,
) -> Result<Option<(Vec<u8>, usize)>, String> {
    match framing {
        Framing::None => Ok(Some((Vec::new(), at))),
        Framing::Length(n) if buf.len() < at + n => Ok(None),
        Framing::Length(n) => Ok(Some((buf[at..at + n].to_vec(), at + n))),
        Framing::Chunked => chunked(buf, at),
        Framing::UntilClose => Err("a body delimited by closing the connection".into()),
    }
}

/// The protocol version of a start line's version field: true for HTTP/1.0.
fn is_http10(version: &str, what: &str, line: &str) -> Result<bool, String> {
    match version {
        "HTTP/1.1" => Ok(false),
        "HTTP/1.0" => Ok(true),
        _ => Err(format!("not an HTTP/1.x {what}: {:?}", truncate(line, 60))),
    }
}

fn parse_one(buf: &[u8], eof: bool) -> Result<Parsed, String> {
    let head = parse_head(buf, "response", |sl| {
        let mut parts = sl.splitn(3, ' ');
        let http10 = is_http10(parts.next().unwrap_or(""), "response", sl)?;
        let code = parts.next().unwrap_or("");
        let status: u16 = match code.parse() {
            Ok(s) if code.len() == 3 && (100..1000).contains(&s) => s,
            _ => return Err(format!("bad status line {:?}", truncate(sl, 60))),
        };
        Ok((
            http10,
            status,
            parts.next().unwrap_or("").trim().to_string(),
        ))
    })?;
    let Some(Head {
        start: (http10, status, reason),
        headers,
        len: head_len,
    }) = head
    else {
        return Ok(Parsed::Incomplete);
    };
    let mut close = has_token(&headers, "connection", "close")
        || (http10 && !has_token(&headers, "connection", "keep-alive"));
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else {
        declared_framing(&headers)
            .map_err(|e| format!("response {e}"))?
            .unwrap_or(Framing::UntilClose)
    };
    let (body, used) = match framing {
        Framing::UntilClose if !eof => {
            if buf.len() - head_len > MAX_BODY {
                return Err("response body too large".into());
            }
            return Ok(Parsed::Incomplete);
        }
        Framing::UntilClose => {
            close = true;
            (buf[head_len..].to_vec(), buf.len())
        }
        f => match delimited_body(buf, head_len, &f)? {
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

/// A request a server read: the request line, then what [`parse_head`] and the framing gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    /// As on the request line: path and query.
    pub target: String,
    /// Answer, then close: the client said `Connection: close`, or speaks HTTP/1.0 without
    /// keep-alive.
    pub close: bool,
    /// Names lowercased, in order; read them with [`Request::header`].
    pub headers: Vec<(String, String)>,
    /// Unchunked.
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Result of [`parse_request`] on the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedRequest {
    /// More bytes are needed; `expects_continue`: the head is complete and asks for
    /// `100 Continue` before the client sends the body.
    Incomplete { expects_continue: bool },
    /// A whole request, and how many bytes of the buffer it took.
    Complete(Request, usize),
}

/// Parses one request from the start of `buf`. A request body is delimited by
/// `Content-Length` or chunked coding, never by the connection closing (RFC 9112 §6.3), so
/// requests that follow on the same connection (pipelining) stay in the buffer.
pub fn parse_request(buf: &[u8]) -> Result<ParsedRequest, String> {
    let head = parse_head(buf, "request", |rl| {
        let parts: Vec<&str> = rl.split(' ').collect();
        let [method, target, version] = parts[..] else {
            return Err(format!("bad request line {:?}", truncate(rl, 60)));
        };
        if method.is_empty() || target.is_empty() {
            return Err(format!("bad request line {:?}", truncate(rl, 60)));
        }
        let http10 = is_http10(version, "request", rl)?;
        Ok((method.to_string(), target.to_string(), http10))
    })?;
    let Some(Head {
        start: (method, target, http10),
        headers,
        len,
    }) = head
    else {
        return Ok(ParsedRequest::Incomplete {
            expects_continue: false,
        });
    };
    let framing = declared_framing(&headers)
        .map_err(|e| format!("request {e}"))?
        .unwrap_or(Framing::None);
    if matches!(framing, Framing::UntilClose) {
        return Err("request with a transfer coding other than chunked".into());
    }
    let Some((body, used)) = delimited_body(buf, len, &framing)? else {
        return Ok(ParsedRequest::Incomplete {
            expects_continue: find_header(&headers, "expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue")),
        });
    };
    let close = has_token(&headers, "connection", "close")
        || (http10 && !has_token(&headers, "connection", "keep-alive"));
    Ok(ParsedRequest::Complete(
        Request {
            method,
            target,
            close,
            headers,
            body,
        },
        used,
    ))
}

/// The reason phrase of the statuses a webhook is likely to answer ("" for others: the
/// phrase is optional on the wire).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Appends a response to `out`: a `Content-Length` unless the status has no body, and
/// `Connection: close` when `close`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) {
    use std::io::Write as _;
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if !((100..200).contains(&status) || status == 204 || status == 304) {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
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
mod tests;
