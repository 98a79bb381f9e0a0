//! WebSocket (RFC 6455) as an MQTT client needs it, pure: the upgrade request and the check of
//! the server's 101 answer (Sec-WebSocket-Accept, subprotocol `mqtt`), client frames (masked,
//! binary) and a streaming decoder of server frames (unmasked; binary and continuation frames
//! carry the MQTT byte stream, pings are answered, a close is echoed). No I/O, no clock; the
//! masking keys come in as arguments.

use base64::Engine as _;
use bytes::{Buf, BufMut, BytesMut};
use sha1::{Digest, Sha1};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The subprotocol MQTT over WebSocket uses (MQTT 5.0 §6).
pub const SUBPROTOCOL: &str = "mqtt";
/// Longest upgrade answer head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Sec-WebSocket-Accept for `key`: base64(SHA-1(key + the RFC 6455 GUID)).
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Appends the upgrade request for `path` on `host` (the Host header: host[:port]).
pub fn upgrade_request(out: &mut Vec<u8>, path: &str, host: &str, key: &str) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    );
}

/// Checks the server's answer to the upgrade: None while its head is incomplete, else the
/// head's length (frames may follow it in `buf`).
pub fn check_upgrade(buf: &[u8], key: &str) -> Result<Option<usize>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("upgrade answer head too long".into())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "upgrade answer is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut parts = status.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP answer to the upgrade: {:?}",
            clip(status)
        ));
    }
    if parts.next() != Some("101") {
        return Err(format!("upgrade refused: {}", clip(status)));
    }
    let (mut upgrade, mut connection, mut accept, mut protocol) = (false, false, None, None);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            return Err(format!("bad header line {:?}", clip(l)));
        };
        let v = v.trim();
        let tokens = || v.split(',').map(str::trim);
        match k.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= tokens().any(|t| t.eq_ignore_ascii_case("websocket")),
            "connection" => connection |= tokens().any(|t| t.eq_ignore_ascii_case("upgrade")),
            "sec-websocket-accept" => accept = Some(v),
            "sec-websocket-protocol" => protocol = Some(v),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err("101 without Upgrade: websocket and Connection: Upgrade".into());
    }
    match accept {
        Some(a) if a == accept_for(key) => {}
        Some(a) => return Err(format!("wrong Sec-WebSocket-Accept {a:?}")),
        None => return Err("101 without Sec-WebSocket-Accept".into()),
    }
    match protocol {
        Some(p) if p == SUBPROTOCOL => {}
        Some(p) => return Err(format!("server chose subprotocol {p:?}, not {SUBPROTOCOL}")),
        None => return Err(format!("server did not accept subprotocol {SUBPROTOCOL}")),
    }
    Ok(Some(end + 4))
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Appends one final client frame: `opcode`, masked with `mask`.
pub fn encode(out: &mut BytesMut, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(payload.len() + 14);
    out.put_u8(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.put_u8(0x80 | len as u8);
    } else if len <= 0xffff {
        out.put_u8(0x80 | 126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(0x80 | 127);
        out.put_u64(len as u64);
    }
    out.put_slice(&mask);
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XORs `buf` with the repeated masking key (RFC 6455 §5.3), eight bytes at a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let m = [mask, mask].concat();
    let m8 = u64::from_ne_bytes(m.try_into().expect("8 bytes"));
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ m8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    // the remainder starts at a multiple of 8, so at mask index 0
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// The next masking key of a connection's xorshift64* sequence.
pub fn next_mask(state: &mut u64) -> [u8; 4] {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32).to_ne_bytes()
}

struct Header {
    fin: bool,
    opcode: u8,
    /// header bytes
    len: usize,
    payload: u64,
}

fn header(raw: &[u8]) -> Result<Option<Header>, String> {
    let &[b0, b1, ..] = raw else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("frame with reserved bits set (no extension was negotiated)".into());
    }
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (payload, len) = match b1 & 0x7f {
        126 if raw.len() < 4 => return Ok(None),
        126 => (u16::from_be_bytes([raw[2], raw[3]]) as u64, 4),
        127 if raw.len() < 10 => return Ok(None),
        127 => {
            let n = u64::from_be_bytes(raw[2..10].try_into().expect("8 bytes"));
            if n >> 63 != 0 {
                return Err("frame length with the top bit set".into());
            }
            (n, 10)
        }
        n => (n as u64, 2),
    };
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
    if opcode >= 0x8 && (!fin || payload > 125) {
        return Err(format!(
            "control frame 0x{opcode:x} fragmented or over 125 bytes"
        ));
    }
    Ok(Some(Header {
        fin,
        opcode,
        len,
        payload,
    }))
}

/// Reads the server's frames as a byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    /// payload bytes of the current data frame not yet seen
    remaining: u64,
    /// inside a fragmented message (a continuation frame is due)
    in_message: bool,
    closed: bool,
}

impl Decoder {
    /// The server sent a close frame (it was answered; nothing after it is read).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Moves the data in `raw`'s frames into `out` as it arrives (a frame's payload need not be
    /// complete), consuming what it used; answers pings (pong) and a close (close, echoing the
    /// status code) into `ctl`, masked with keys from `rng`. Returns the data bytes moved.
    pub fn decode(
        &mut self,
        raw: &mut BytesMut,
        out: &mut impl BufMut,
        ctl: &mut BytesMut,
        rng: &mut u64,
    ) -> Result<usize, String> {
        let mut produced = 0;
        while !self.closed {
            if self.remaining > 0 {
                let n = self.remaining.min(raw.len() as u64) as usize;
                if n == 0 {
                    break;
                }
                out.put_slice(&raw[..n]);
                raw.advance(n);
                self.remaining -= n as u64;
                produced += n;
                continue;
            }
            let Some(h) = header(raw)? else { break };
            match h.opcode {
                OP_BINARY if self.in_message => {
                    return Err("binary frame inside a fragmented message".into());
                }
                OP_CONTINUATION if !self.in_message => {
                    return Err("continuation frame outside a fragmented message".into());
                }
                OP_BINARY | OP_CONTINUATION => {
                    self.in_message = !h.fin;
                    self.remaining = h.payload;
                    raw.advance(h.len);
                }
                OP_TEXT => return Err("text frame (MQTT over WebSocket is binary)".into()),
                OP_PING | OP_PONG | OP_CLOSE => {
                    let end = h.len + h.payload as usize;
                    if raw.len() < end {
                        break;
                    }
                    let body = &raw[h.len..end];
                    match h.opcode {
                        OP_PING => encode(ctl, OP_PONG, body, next_mask(rng)),
                        OP_CLOSE => {
                            let code = body.get(..2).unwrap_or(&[]);
                            encode(ctl, OP_CLOSE, code, next_mask(rng));
                            self.closed = true;
                        }
                        _ => {}
                    }
                    raw.advance(end);
                }
                op => return Err(format!("frame with reserved opcode 0x{op:x}")),
            }
        }
        Ok(produced)
    }
}
