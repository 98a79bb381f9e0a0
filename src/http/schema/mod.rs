//! Publish bodies: the pure parsers that turn a request body into events, CloudEvents 1.0
//! ([`cloudevents`], both tiers) and the basic tier's Event Grid and custom schemas
//! ([`eventgrid`]).
//!
//! Owns what both parsers share: the request limits ([`ParseLimits`]), the refusal ([`ParseError`]),
//! splitting a body into its events' raw JSON without building them, the depth limit
//! ([`MAX_EVENT_DEPTH`]), the RFC 3339 shape check and quoting client text in messages.
//!
//! Pure and deterministic: no HTTP framework, async runtime, HTTP client or clock; what a parser
//! needs of the outside world (the current time, new ids) comes in as arguments. Must never
//! re-serialise an event, never panic on any input, and knows nothing of HTTP beyond the
//! `Content-Type` value: mapping [`ParseError`] to a status and error body belongs to the
//! handler.

pub mod cloudevents;
pub mod eventgrid;

use std::borrow::Cow;
use std::fmt;

use ntex_bytes::{ByteString, Bytes};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Request limits enforced while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest accepted event: the length of its JSON object in bytes.
    pub max_event_bytes: usize,
    /// Most events accepted in one request.
    pub max_events: usize,
}

/// Why a publish body was refused; each variant carries a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed JSON, wrong shape, or an invalid event (400).
    BadRequest(String),
    /// Too many events, or an event too large (413).
    TooLarge(String),
    /// Missing or unsupported `Content-Type` (415).
    UnsupportedMediaType(String),
}

impl ParseError {
    /// The message for the client.
    pub fn message(&self) -> &str {
        match self {
            ParseError::BadRequest(m)
            | ParseError::TooLarge(m)
            | ParseError::UnsupportedMediaType(m) => m,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ParseError {}

/// Longest client-supplied text quoted back in an error message, in characters.
pub(crate) const QUOTE_MAX: usize = 64;

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

/// Refuses event `index` (its JSON as received) if, once stored with `wrap` more levels around
/// it, it would nest deeper than [`MAX_EVENT_DEPTH`].
pub(crate) fn check_depth(index: usize, json: &str, wrap: usize) -> Result<(), ParseError> {
    let depth = json_depth(json.as_bytes()) + wrap;
    if depth > MAX_EVENT_DEPTH {
        return Err(bad(format!(
            "Event {index} nests objects and arrays {depth} levels deep; the limit is \
             {MAX_EVENT_DEPTH} levels (the event's own object counts as one)."
        )));
    }
    Ok(())
}

/// At least one event and at most `max`.
pub(crate) fn check_count(count: usize, max: usize) -> Result<(), ParseError> {
    if count == 0 {
        return Err(bad("The request contained no events.".into()));
    }
    if count > max {
        return Err(ParseError::TooLarge(format!(
            "The request contained {count} events; the limit is {max} events per request."
        )));
    }
    Ok(())
}

pub(crate) fn bad(msg: String) -> ParseError {
    ParseError::BadRequest(msg)
}

/// What the body's top level may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Array,
    ObjectOrArray,
}

fn json_error(e: serde_json::Error) -> ParseError {
    bad(format!("The request body is not valid JSON: {e}."))
}

/// Splits the body into its events' raw JSON, keeping at most `max` of them; also returns how
/// many there are in all (elements past `max` are only counted).
pub(crate) fn split_top(
    text: &str,
    shape: Shape,
    max: usize,
) -> Result<(Vec<&RawValue>, usize), ParseError> {
    match text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        None => Err(bad("The request body is empty.".into())),
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(text);
            let split = BatchSeed { max }.deserialize(&mut de).map_err(json_error)?;
            de.end().map_err(json_error)?;
            Ok(split)
        }
        Some(b'{') if shape == Shape::ObjectOrArray => {
            let raw: &RawValue = serde_json::from_str(text).map_err(json_error)?;
            Ok((vec![raw], 1))
        }
        Some(b'{') => Err(bad(format!(
            "The request body must be a JSON array of events under Content-Type {}, \
             got a single object.",
            cloudevents::BATCH_TYPE
        ))),
        Some(_) => Err(bad(match shape {
            Shape::Array => "The request body must be a JSON array of events.".into(),
            Shape::ObjectOrArray => {
                "The request body must be a JSON object (one event) or a JSON array of events."
                    .into()
            }
        })),
    }
}

/// The top-level array: raw elements up to `max`, then only a count.
struct BatchSeed {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = (Vec<&'de RawValue>, usize);

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed {
    type Value = (Vec<&'de RawValue>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of CloudEvents")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut raws = Vec::new();
        let mut count = 0usize;
        loop {
            if raws.len() < self.max {
                match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => raws.push(raw),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            count += 1;
        }
        Ok((raws, count))
    }
}

/// A slice of `body` when `s` borrows from it, else an owned copy.
pub(crate) fn byte_string(body: &Bytes, s: Cow<'_, str>) -> ByteString {
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
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

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

/// The shape of an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T`/`Z` in
/// either case, with field ranges checked (leap seconds are refused: common consumers, such as
/// Python's `datetime`, cannot represent them).
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if date_time(b).is_none() {
        return false;
    }
    let mut i = 19;
    if byte_in(b, i, b".") {
        i += 1;
        let start = i;
        while byte_in(b, i, b"0123456789") {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i..).unwrap_or_default() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => matches!(
            (digits(b, i + 1, 2), digits(b, i + 4, 2)),
            (Some(h), Some(m)) if h <= 23 && m <= 59
        ),
        _ => false,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` at the start of `b`, with a real calendar date.
fn date_time(b: &[u8]) -> Option<()> {
    let year = digits(b, 0, 4)?;
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let separators = byte_in(b, 4, b"-")
        && byte_in(b, 7, b"-")
        && byte_in(b, 10, b"Tt")
        && byte_in(b, 13, b":")
        && byte_in(b, 16, b":");
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    (separators && (1..=days).contains(&day) && hour <= 23 && minute <= 59 && second <= 59)
        .then_some(())
}

/// The decimal value of the `len` ASCII digits at `at`, if they are all there.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    b.get(at..at.checked_add(len)?)?
        .iter()
        .try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
}

fn byte_in(b: &[u8], at: usize, set: &[u8]) -> bool {
    b.get(at).is_some_and(|c| set.contains(c))
}

/// `s` as a quoted, escaped string for messages, cut to [`QUOTE_MAX`] characters.
pub(crate) fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}
