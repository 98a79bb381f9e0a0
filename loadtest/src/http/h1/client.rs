//! The client side: requests written by hand, responses parsed (skipping interim 1xx), and one
//! keep-alive [`Conn`] (plain TCP or TLS) with one request in flight at a time. Never retries:
//! a failed exchange marks the connection closed and the caller decides.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::transport::{Stream, TlsClient};

use super::*;

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
    stream: Stream,
    buf: Vec<u8>,
    /// The last response asked for the connection to be closed (or it broke).
    pub closed: bool,
}

impl Conn {
    /// A plain `http://` connection.
    #[cfg(test)]
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, HttpError> {
        Conn::open(addr, timeout, None).await
    }

    /// A connection, over TLS with `tls` (`https://`); `timeout` bounds the TCP connect and the
    /// TLS handshake together.
    pub async fn open(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<&TlsClient>,
    ) -> Result<Conn, HttpError> {
        let connect = async {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| HttpError::Connect(e.to_string()))?;
            let _ = s.set_nodelay(true);
            match tls {
                None => Ok(Stream::tcp(s)),
                Some(t) => Stream::tls(s, t)
                    .await
                    .map_err(|e| HttpError::Connect(format!("TLS handshake: {e}"))),
            }
        };
        let stream = match tokio::time::timeout(timeout, connect).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(HttpError::Connect(format!(
                    "no answer within {:.1} s",
                    timeout.as_secs_f64()
                )));
            }
        };
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
