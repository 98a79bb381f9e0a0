//! Publish bodies: the pure parsers that turn a request body into events, CloudEvents 1.0
//! ([`cloudevents`], both tiers) and the basic tier's Event Grid and custom schemas
//! ([`eventgrid`]).
//!
//! Owns what both parsers share: the request limits ([`ParseLimits`]), the refusal ([`ParseError`]),
//! splitting a body into its events' raw JSON without building them and the depth check; the
//! depth limit ([`MAX_EVENT_DEPTH`]), the RFC 3339 shape check and quoting client text are
//! `evgrid_actors::model`'s (`json`, `time`), shared with the MQTT bridge.
//!
//! Pure and deterministic: no HTTP framework, async runtime, HTTP client or clock; what a parser
//! needs of the outside world (the current time, new ids) comes in as arguments. Must never
//! re-serialise an event, never panic on any input, and knows nothing of HTTP beyond the
//! `Content-Type` value: mapping [`ParseError`] to a status and error body belongs to the
//! handler.

pub mod cloudevents;
pub mod eventgrid;

use std::fmt;

pub(crate) use evgrid_actors::model::json::{CowStr, quoted};
pub use evgrid_actors::model::json::{MAX_EVENT_DEPTH, json_depth};
pub(crate) use evgrid_actors::model::time::is_rfc3339;
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
