//! How a queued entry and its delivery state are framed as bytes in the durable store: an entry
//! is its publish time (ms since the epoch, u64 little-endian) followed by the event's bytes
//! exactly as published; a state row is the delivery count (u32 LE) followed by the time before
//! which the entry must not be handed out (ms, u64 LE).
//!
//! Pure: never touches a database, a clock or an actor. Decoding refuses input of the wrong
//! length rather than guess; the backend reports a damaged row.

use super::EntryState;

/// Bytes before the event in an entry.
const PUBLISH_LEN: usize = 8;
/// Bytes of a state row.
const STATE_LEN: usize = 12;

/// Frames an entry into `buf` (cleared first, so one buffer serves a whole batch).
pub fn encode_entry(buf: &mut Vec<u8>, publish_ms: u64, body: &[u8]) {
    buf.clear();
    buf.reserve(PUBLISH_LEN + body.len());
    buf.extend_from_slice(&publish_ms.to_le_bytes());
    buf.extend_from_slice(body);
}

/// The publish time and event bytes of a framed entry; `None` if it is shorter than its header.
pub fn decode_entry(v: &[u8]) -> Option<(u64, &[u8])> {
    let (publish, body) = v.split_first_chunk::<PUBLISH_LEN>()?;
    Some((u64::from_le_bytes(*publish), body))
}

impl EntryState {
    pub(crate) fn encode(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        b[..4].copy_from_slice(&self.delivery_count.to_le_bytes());
        b[4..].copy_from_slice(&self.available_at_ms.to_le_bytes());
        b
    }

    /// `None` unless `b` is exactly one state row.
    pub(crate) fn decode(b: &[u8]) -> Option<EntryState> {
        let b: &[u8; STATE_LEN] = b.try_into().ok()?;
        let (count, at) = b.split_first_chunk::<4>()?;
        Some(EntryState {
            delivery_count: u32::from_le_bytes(*count),
            available_at_ms: u64::from_le_bytes(at.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_bytes_untouched() {
        let mut buf = vec![0xff; 3];
        encode_entry(&mut buf, 1_714_557_600_123, br#"{"id":"a"}"#);
        assert_eq!(buf.len(), 8 + 10, "the buffer was cleared first");
        assert_eq!(&buf[..8], &1_714_557_600_123u64.to_le_bytes());
        assert_eq!(
            decode_entry(&buf),
            Some((1_714_557_600_123, &br#"{"id":"a"}"#[..]))
        );
        encode_entry(&mut buf, 0, b"");
        assert_eq!(decode_entry(&buf), Some((0, &b""[..])), "an empty event");
    }

    #[test]
    fn truncated_entries_are_refused() {
        for n in 0..8 {
            assert_eq!(decode_entry(&[7u8; 8][..n]), None, "{n} bytes");
        }
    }

    #[test]
    fn states_round_trip_and_refuse_any_other_length() {
        let s = EntryState {
            delivery_count: 3,
            available_at_ms: u64::MAX - 1,
        };
        let b = s.encode();
        assert_eq!(&b[..4], &3u32.to_le_bytes());
        assert_eq!(EntryState::decode(&b), Some(s));
        assert_eq!(
            EntryState::decode(&EntryState::default().encode()),
            Some(EntryState::default())
        );
        for n in [0, 4, 11] {
            assert_eq!(EntryState::decode(&b[..n]), None, "{n} bytes");
        }
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(EntryState::decode(&long), None, "13 bytes");
    }
}
