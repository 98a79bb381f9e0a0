//! What every reader and writer of CloudEvents JSON shares: the nesting limit of stored events
//! ([`MAX_EVENT_DEPTH`]), borrowed JSON strings ([`CowStr`], [`byte_string`]), quoting client
//! text in error messages ([`quoted`]) and writing a JSON string into a buffer ([`write_str`]).
//!
//! Pure: no I/O, no clock. Must never panic on any input.

use std::borrow::Cow;
use std::fmt;

use ntex_bytes::{ByteString, Bytes};
use serde::Deserialize;
use serde::de::{self, Visitor};

/// Longest client-supplied text quoted back in an error message, in characters.
pub const QUOTE_MAX: usize = 64;

/// Deepest nesting of objects and arrays an event may have as stored, its own object counting
/// as level 1 (`{"data":{"a":[1]}}` is 3 deep).
///
/// Publish reads events without building them (raw slices), which has no depth limit, but what
/// happens to an event afterwards does: the CloudEvents conversion for push subscriptions, the
/// headers read from an event and the dead-letter records parse it with serde_json, which refuses
/// more than 127 levels, and evgrid wraps a stored event in up to 3 more levels itself
/// (`{"value":[{"event":…}]}` in receive answers and dead-letter pages). 120 leaves every one of
/// them, and any serde_json consumer of them, room; deeper events are refused at publish (400)
/// rather than accepted and delivered broken.
pub const MAX_EVENT_DEPTH: usize = 120;

/// How deeply `json` nests objects and arrays (0 for a scalar). A byte scan that skips strings;
/// `json` is known to be valid JSON.
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A slice of `body` when `s` borrows from it, else an owned copy.
pub fn byte_string(body: &Bytes, s: Cow<'_, str>) -> ByteString {
    match s {
        Cow::Borrowed(b) => match body.slice_ref_checked(b.as_bytes()) {
            // SAFETY: the slice holds exactly the bytes of `b`, a `&str`, so it is valid UTF-8.
            Some(bytes) => unsafe { ByteString::from_bytes_unchecked(bytes) },
            None => ByteString::from(b),
        },
        Cow::Owned(o) => ByteString::from(o),
    }
}

/// A JSON string: borrowed from the input when it has no escape sequences.
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = CowStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v)))
    }
}

/// `s` as a quoted, escaped string for messages, cut to [`QUOTE_MAX`] characters.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}

/// Appends `s` to `buf` as a JSON string (quotes included). Answers whether it needed no escape
/// sequence, i.e. whether the bytes between the quotes are exactly `s`.
pub fn write_str(buf: &mut Vec<u8>, s: &str) -> bool {
    let start = buf.len();
    // Writing to a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *buf, s);
    buf.len() - start == s.len() + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_str_escapes_and_says_when() {
        let mut b = Vec::new();
        assert!(write_str(&mut b, "plain é"));
        assert!(!write_str(&mut b, "a\"b\\c\n\u{1}"));
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#""plain é""a\"b\\c\n\u0001""#
        );
    }

    #[test]
    fn quoted_cuts_long_text() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let long = "x".repeat(QUOTE_MAX + 5);
        assert_eq!(quoted(&long), format!("{:?}...", "x".repeat(QUOTE_MAX)));
    }
}
