//! Minimal HTTP/1.1 for the HTTP modes, on tokio.
//!
//! - `client`: one keep-alive TCP connection, requests written by hand, responses parsed
//!   (status line, headers, a body delimited by `Content-Length`, by `Transfer-Encoding:
//!   chunked` or by the server closing the connection). No pipelining: one request at a time
//!   per connection. Plain `http://` only.
//! - `server`: for the webhook sink, [`parse_request`] and [`write_response`], the same head
//!   and body parsing seen from the server side (the sink owns its sockets).
//! - `url`: the `http://` URLs the flags give.
//! - This module: what both sides share — head parsing, body framing, chunked coding.
//!
//! This module only frames messages; it never interprets Event Grid semantics.

mod client;
mod server;
mod url;

pub use client::{Conn, HttpError, Response, write_request};
pub use server::{ParsedRequest, Request, parse_request, reason_phrase, write_response};
pub use url::{Url, encode_component, parse_target, parse_url};

/// Longest response head (status line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;

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

#[cfg(test)]
mod tests;
