//! WebSocket framing (RFC 6455 §5) for MQTT over WebSockets: decoding what a client sends into
//! the MQTT byte stream, and the headers of what the server sends.
//!
//! Owns the frame rules a client must keep: every frame masked, no reserved bits, binary data
//! only (continuations in order), control frames whole, unfragmented and at most 125 bytes, and
//! no data frame larger than the largest MQTT packet. Data frames are a byte stream here: a
//! payload is unmasked into the output as it arrives, never buffered whole, so MQTT packets may
//! span frames and several may share one. Pure: no I/O, no clock; never panics on any input
//! (the `ws_frames` fuzz target holds it to that).

use ntex_bytes::BytesMut;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close status codes (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The largest control frame payload.
pub const MAX_CONTROL: usize = 125;

/// A client's breach of the framing rules: the connection is closed with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// A ping's payload, to be echoed in the pong (at most 125 bytes, kept inline).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PingData {
    len: u8,
    data: [u8; MAX_CONTROL],
}

impl PingData {
    pub fn as_slice(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for PingData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PingData({:?})", self.as_slice())
    }
}

/// A control frame the connection has to act on (pongs are consumed silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Ping(PingData),
    /// The client closes, with its status code if it sent one.
    Close(Option<u16>),
}

/// The rest of a data frame being streamed out.
#[derive(Debug, Clone, Copy)]
struct Payload {
    remaining: u64,
    mask: [u8; 4],
    /// Bytes of this frame unmasked so far, modulo 4: where in the mask the next byte starts.
    offset: usize,
}

/// The decoding state of one connection's incoming frames.
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload: u64,
    payload: Option<Payload>,
    /// A binary message was started without FIN: continuations must follow.
    fragmented: bool,
}

impl FrameDecoder {
    /// A decoder refusing data frames whose payload exceeds `max_payload` bytes.
    pub fn new(max_payload: u64) -> Self {
        FrameDecoder {
            max_payload,
            payload: None,
            fragmented: false,
        }
    }

    /// Decodes from `src` as far as it can: data payload bytes go to `out` unmasked, and the
    /// first control frame met is returned (call again for more). What was decoded is consumed
    /// from `src`; an incomplete header or control frame stays there for the next call.
    /// `Ok(None)`: `src` holds nothing more to decode yet.
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Option<Control>, Violation> {
        loop {
            if let Some(p) = &mut self.payload {
                let n = usize::try_from(p.remaining)
                    .unwrap_or(usize::MAX)
                    .min(src.len());
                if n == 0 {
                    return Ok(None);
                }
                let start = out.len();
                out.extend_from_slice(&src[..n]);
                unmask(&mut out[start..], p.mask, p.offset);
                let _ = src.split_to(n);
                p.remaining -= n as u64;
                p.offset = (p.offset + n) % 4;
                if p.remaining == 0 {
                    self.payload = None;
                }
                continue;
            }
            let Some(h) = parse_header(src)? else {
                return Ok(None);
            };
            match h.opcode {
                OP_CONTINUATION | OP_BINARY => {
                    if h.opcode == OP_CONTINUATION && !self.fragmented {
                        return Err(violation(
                            CLOSE_PROTOCOL,
                            "continuation frame without a message",
                        ));
                    }
                    if h.opcode == OP_BINARY && self.fragmented {
                        return Err(violation(
                            CLOSE_PROTOCOL,
                            "new message inside a fragmented one",
                        ));
                    }
                    if h.len > self.max_payload {
                        return Err(violation(
                            CLOSE_TOO_BIG,
                            "frame larger than the largest MQTT packet",
                        ));
                    }
                    self.fragmented = !h.fin;
                    let _ = src.split_to(h.header_len);
                    if h.len > 0 {
                        self.payload = Some(Payload {
                            remaining: h.len,
                            mask: h.mask,
                            offset: 0,
                        });
                    }
                }
                OP_TEXT => return Err(violation(CLOSE_UNSUPPORTED, "text frames carry no MQTT")),
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !h.fin {
                        return Err(violation(CLOSE_PROTOCOL, "fragmented control frame"));
                    }
                    if h.len > MAX_CONTROL as u64 {
                        return Err(violation(CLOSE_PROTOCOL, "control frame over 125 bytes"));
                    }
                    let len = h.len as usize;
                    if src.len() < h.header_len + len {
                        return Ok(None);
                    }
                    let mut data = [0u8; MAX_CONTROL];
                    data[..len].copy_from_slice(&src[h.header_len..h.header_len + len]);
                    unmask(&mut data[..len], h.mask, 0);
                    let _ = src.split_to(h.header_len + len);
                    match h.opcode {
                        OP_PING => {
                            return Ok(Some(Control::Ping(PingData {
                                len: len as u8,
                                data,
                            })));
                        }
                        OP_CLOSE => return close(&data[..len]).map(Some),
                        _ => {}
                    }
                }
                _ => return Err(violation(CLOSE_PROTOCOL, "unknown opcode")),
            }
        }
    }
}

/// A close frame's payload: empty, or a valid status code and a UTF-8 reason.
fn close(payload: &[u8]) -> Result<Control, Violation> {
    match payload {
        [] => Ok(Control::Close(None)),
        [_] => Err(violation(
            CLOSE_PROTOCOL,
            "close frame with a 1-byte payload",
        )),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            // RFC 6455 §7.4: 1004-1006 and 1015 are never sent; 1016-2999 are reserved.
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(violation(CLOSE_PROTOCOL, "invalid close status code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(violation(CLOSE_INVALID_DATA, "close reason is not UTF-8"));
            }
            Ok(Control::Close(Some(code)))
        }
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    mask: [u8; 4],
    header_len: usize,
}

/// The frame header at the start of `src`, if it is all there (nothing is consumed).
fn parse_header(src: &[u8]) -> Result<Option<Header>, Violation> {
    let [b0, b1, rest @ ..] = src else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(violation(CLOSE_PROTOCOL, "reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(CLOSE_PROTOCOL, "client frame not masked"));
    }
    let (len, ext) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(violation(
                        CLOSE_PROTOCOL,
                        "payload length with its top bit set",
                    ));
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    let Some(m) = rest.get(ext..ext + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        len,
        mask: [m[0], m[1], m[2], m[3]],
        header_len: 2 + ext + 4,
    }))
}

/// XORs `buf` with `mask`, the first byte of `buf` taking mask byte `offset % 4`.
pub fn unmask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let k = u32::from_ne_bytes(key);
    let mut chunks = buf.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ k;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// The header of an unmasked, final server frame of `len` payload bytes: the bytes and how
/// many of them are used.
pub fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A whole close frame with `code` and no reason.
pub fn close_frame(code: u16) -> [u8; 4] {
    let c = code.to_be_bytes();
    [0x80 | OP_CLOSE, 2, c[0], c[1]]
}

#[cfg(test)]
mod tests;
