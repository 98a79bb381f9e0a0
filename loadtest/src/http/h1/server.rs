//! The server side, for the webhook sink: requests parsed from a buffer that may hold several
//! (pipelining), and responses appended to an output buffer. Owns no socket: the sink does.

use super::*;

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
