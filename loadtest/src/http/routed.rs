//! MQTT messages as the grid hands them out again: a PUBLISH routed into a namespace topic
//! becomes a CloudEvent (docs/eventgrid.md §7.6: `type` `MQTT.EventPublished`, `subject` the
//! MQTT topic, the payload as `data_base64`, or as `data` when the MQTT 5 payload format
//! indicator is 1 or the content type is `application/json; charset=utf-8`). What the generator
//! reads back is its own payload header (publisher, sequence, send stamp; `mqtt::payload`), from
//! either place:
//!
//! - `data_base64`: the binary payload; its 24-byte header is the first 32 base64 characters, so
//!   only those are decoded, however long the padding.
//! - `data`: a JSON payload `{"ts":"<ns since the Unix epoch>","pub":<publisher>,"seq":<n>,...}`
//!   ([`put_json_payload`] writes one), read by `http::load`'s `Stamp`.
//!
//! Pure: no clock, no socket; the event is never built beyond these fields.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
#[cfg(test)]
use std::io::Write as _;

use crate::mqtt::payload::{HEADER_LEN, Header, read_header};

/// Base64 characters that carry the payload header (24 bytes, no padding needed).
const HEADER_B64: usize = HEADER_LEN / 3 * 4;

/// The header at the start of a base64 payload; `None` when it is shorter than a header or not
/// base64.
pub fn header_from_base64(s: &str) -> Option<Header> {
    let head = s.get(..HEADER_B64)?;
    let mut buf = [0u8; HEADER_LEN];
    let n = STANDARD.decode_slice(head, &mut buf).ok()?;
    read_header(&buf[..n])
}

/// `data_base64` of a routed event, read only as far as the header.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct B64Mark(pub Option<Header>);

impl<'de> Deserialize<'de> for B64Mark {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<B64Mark, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = B64Mark;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E>(self, s: &str) -> Result<B64Mark, E> {
                Ok(B64Mark(header_from_base64(s)))
            }
            fn visit_unit<E>(self) -> Result<B64Mark, E> {
                Ok(B64Mark(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Appends a JSON payload of `size` bytes (at least its fixed part) carrying the header fields:
/// the form a publisher whose messages are routed with `data` as JSON writes (the generator's
/// own publishers write the binary header; this pins the format the reader takes).
#[cfg(test)]
pub fn put_json_payload(out: &mut Vec<u8>, size: usize, ts_ns: u64, publisher: u32, seq: u64) {
    let start = out.len();
    let _ = write!(
        out,
        r#"{{"ts":"{ts_ns:019}","pub":{publisher},"seq":{seq},"pad":""#
    );
    let fixed = out.len() - start + 2;
    out.resize(out.len() + size.saturating_sub(fixed), b'x');
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::load::Stamp;
    use bytes::BytesMut;

    #[test]
    fn header_comes_back_from_data_base64() {
        for size in [24, 25, 26, 256, 4000] {
            let mut p = BytesMut::new();
            crate::mqtt::payload::put_payload(&mut p, size, 1_780_000_000_123_456_789, 7, 41);
            let b64 = STANDARD.encode(&p);
            let h = header_from_base64(&b64).unwrap();
            assert_eq!(
                (h.ts_ns, h.publisher, h.seq),
                (1_780_000_000_123_456_789, 7, 41),
                "{size}"
            );
            let ev = format!(r#"{{"data_base64":"{b64}"}}"#);
            #[derive(Deserialize)]
            struct E {
                data_base64: B64Mark,
            }
            let e: E = serde_json::from_str(&ev).unwrap();
            assert_eq!(e.data_base64.0, Some(h));
        }
        assert_eq!(header_from_base64("AAAA"), None, "shorter than a header");
        assert_eq!(header_from_base64(&"!".repeat(40)), None, "not base64");
        assert_eq!(
            header_from_base64("eyJ0ZW1wIjo3MH0="),
            None,
            "a foreign payload"
        );
    }

    #[test]
    fn json_payload_is_read_back_as_data() {
        let mut v = Vec::new();
        put_json_payload(&mut v, 200, 1_780_000_000_000_000_001, 3, 9);
        assert_eq!(v.len(), 200);
        let s: Stamp = serde_json::from_slice(&v).unwrap();
        assert_eq!(s, Stamp(Some(1_780_000_000_000_000_001), Some((3, 9))));
        // the fixed part only, when asked for less
        let mut v = Vec::new();
        put_json_payload(&mut v, 1, 5, 0, 0);
        let s: Stamp = serde_json::from_slice(&v).unwrap();
        assert_eq!(s, Stamp(Some(5), Some((0, 0))));
    }
}
