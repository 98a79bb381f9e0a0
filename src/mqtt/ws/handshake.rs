//! The HTTP/1.1 WebSocket upgrade (RFC 6455 §4.2) of an MQTT-over-WebSocket connection:
//! finding the request head, checking it, and the response either way.
//!
//! Owns what an upgrade must carry: `GET /mqtt` (or `/`) over HTTP/1.1, `Upgrade: websocket`,
//! `Connection: Upgrade`, `Sec-WebSocket-Version: 13`, a `Sec-WebSocket-Key` of 16 bytes, and
//! `mqtt` or `mqttv3.1` among the offered subprotocols (MQTT 5.0 §6; the response names the
//! one chosen). Anything else gets a plain HTTP error with a one-line reason. Pure: no I/O, no
//! clock; the head is bounded ([`MAX_HEAD`]) and nothing here panics on any input.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use evgrid_actors::metrics::WsUpgrade;

/// The largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Subprotocols accepted, as MQTT 5.0 §6 and 3.1.1 §6 name them.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// An upgrade refused: the status, a one-line reason, and the outcome counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: &'static str,
    pub outcome: WsUpgrade,
}

/// The refusal of a TLS ClientHello (a `wss` client on the `ws` port).
pub const TLS_ON_PLAIN: &str = "a TLS handshake on the plain WebSocket port";

const fn bad(reason: &'static str) -> Refused {
    Refused {
        status: 400,
        reason,
        outcome: WsUpgrade::BadRequest,
    }
}

/// An upgrade accepted: the `Sec-WebSocket-Accept` value and the subprotocol chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub accept: String,
    pub protocol: &'static str,
}

/// The length of the request head at the start of `buf` (through its blank line), `None`
/// while it is incomplete. Refuses early what cannot become an upgrade: bytes that do not
/// start `GET `, and a head over [`MAX_HEAD`].
pub fn head_len(buf: &[u8]) -> Result<Option<usize>, Refused> {
    if buf.starts_with(&[0x16, 0x03]) {
        return Err(bad(TLS_ON_PLAIN));
    }
    let start = buf.len().min(4);
    if buf[..start] != b"GET "[..start] {
        return Err(bad("not an HTTP GET request"));
    }
    let window = &buf[..buf.len().min(MAX_HEAD)];
    if let Some(i) = window.windows(4).position(|w| w == b"\r\n\r\n") {
        return Ok(Some(i + 4));
    }
    if buf.len() >= MAX_HEAD {
        return Err(bad("request head too large"));
    }
    Ok(None)
}

/// Checks a whole request head (as [`head_len`] delimits it).
pub fn check(head: &[u8]) -> Result<Accepted, Refused> {
    let head = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (Some("GET"), Some(target), Some("HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not an HTTP/1.1 GET request line"));
    };
    let path = target.split('?').next().unwrap_or_default();
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, None, None);
    let mut protocol = None;
    let mut offered = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        let value = value.trim();
        let tokens = || value.split(',').map(str::trim);
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= tokens().any(|t| t.eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= tokens().any(|t| t.eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            offered = true;
            // The client's order is its preference.
            if protocol.is_none() {
                protocol = tokens().find_map(|t| SUBPROTOCOLS.into_iter().find(|p| *p == t));
            }
        }
    }
    if path != "/mqtt" && path != "/" {
        return Err(Refused {
            status: 404,
            reason: "MQTT over WebSockets is served at /mqtt",
            outcome: WsUpgrade::NotFound,
        });
    }
    if !upgrade || !connection {
        return Err(bad(
            "not a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)",
        ));
    }
    if version != Some("13") {
        return Err(Refused {
            status: 426,
            reason: "Sec-WebSocket-Version must be 13",
            outcome: WsUpgrade::BadVersion,
        });
    }
    let key = key.ok_or(bad("missing Sec-WebSocket-Key"))?;
    if STANDARD.decode(key).map(|k| k.len()) != Ok(16) {
        return Err(bad("Sec-WebSocket-Key is not 16 bytes in base64"));
    }
    let Some(protocol) = protocol else {
        return Err(Refused {
            status: 400,
            reason: if offered {
                "none of the offered subprotocols is mqtt or mqttv3.1"
            } else {
                "Sec-WebSocket-Protocol must offer mqtt"
            },
            outcome: WsUpgrade::NoSubprotocol,
        });
    };
    Ok(Accepted {
        accept: accept_key(key),
        protocol,
    })
}

/// `Sec-WebSocket-Accept` for a client's key.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID);
    STANDARD.encode(h.finalize())
}

/// The 101 response switching to WebSocket.
pub fn switching(a: &Accepted) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
        a.accept, a.protocol
    )
}

/// The error response of a refused upgrade; the connection closes after it.
pub fn refusal(r: &Refused) -> String {
    let text = match r.status {
        404 => "Not Found",
        426 => "Upgrade Required",
        _ => "Bad Request",
    };
    let version = if r.status == 426 {
        "Sec-WebSocket-Version: 13\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 {} {text}\r\n{version}Content-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}\n",
        r.status,
        r.reason.len() + 1,
        r.reason
    )
}

#[cfg(test)]
mod tests;
