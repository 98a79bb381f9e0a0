//! Publish bodies: the pure parsers that turn a request body into events, CloudEvents 1.0
//! ([`cloudevents`], both tiers) and the basic tier's Event Grid and custom schemas
//! ([`eventgrid`]).
//!
//! Owns what both parsers share: the request limits ([`ParseLimits`]), the refusal ([`ParseError`]),
//! splitting a body into its events' raw JSON without building them (one simd-json pass,
//! [`split_fast`], with serde_json deciding whatever simd-json refuses) and the depth check; the
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

use std::borrow::Cow;
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
    check_nesting(index, json_depth(json.as_bytes()) + wrap)
}

/// [`check_depth`] for an event whose depth (with the levels around it) is known.
pub(crate) fn check_nesting(index: usize, depth: usize) -> Result<(), ParseError> {
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

/// One event of a body split by [`split_fast`]: its raw JSON object, how deeply it nests (what
/// [`json_depth`] would answer), and its top-level members (key, raw JSON value) in order.
pub(crate) struct Split<'b> {
    pub json: &'b str,
    pub depth: usize,
    pub members: Vec<(Cow<'b, str>, &'b str)>,
}

/// The fast path of [`split_top`], which also splits each event into its members: simd-json
/// validates the whole body in one pass, then a walk over its structural indexes (the offsets of
/// every `{}[]:,` and of every value's first byte) finds where each event and each member starts
/// and ends, and how deeply each event nests; the body is parsed once, not twice, and not scanned
/// again for the depth (issue 19; benches/README.md has the figures).
/// Needs a padded copy of the body, since simd-json writes into its input.
///
/// `None` whenever the serde_json path must decide, so that both give the same events and the
/// same errors: the body is not valid JSON to simd-json (which also refuses what serde_json's raw
/// values accept: numbers out of range such as `1e400`, lone surrogates, nesting past 1024),
/// its top level is not what `shape` allows, it holds no event or more than `max`, or an element
/// is not an object.
pub(crate) fn split_fast(text: &str, shape: Shape, max: usize) -> Option<Vec<Split<'_>>> {
    let body = text.as_bytes();
    let top = *body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))?;
    if !(top == b'[' || top == b'{' && shape == Shape::ObjectOrArray) {
        return None;
    }
    let len = body.len();
    let mut copy = Vec::with_capacity(len + simd_json::INPUT_PADDING);
    copy.extend_from_slice(body);
    copy.resize(len + simd_json::INPUT_PADDING, b' ');
    let mut bufs = simd_json::Buffers::new(len);
    let mut tape = simd_json::Tape::null();
    simd_json::fill_tape_padded(&mut copy, len, &mut bufs, &mut tape).ok()?;
    // The depth at which an event's members are: in the top-level array, or the top level.
    let inner = if top == b'[' { 2 } else { 1 };
    let trim = |mut end: usize| {
        while end > 0 && matches!(body[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
            end -= 1;
        }
        end
    };
    let mut events = Vec::new();
    let (mut depth, mut start, mut deepest) = (0usize, 0usize, 0usize);
    let mut members = Vec::new();
    // The current member's key, and where its value starts (and whether it is a container).
    let mut key: Option<Cow<'_, str>> = None;
    let mut value: Option<(usize, bool)> = None;
    let idx = bufs.structural_indexes();
    for (i, &p) in idx.iter().enumerate() {
        let p = p as usize;
        let Some(&c) = body.get(p) else { break };
        match c {
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max((depth + 1).saturating_sub(inner));
                if depth == inner {
                    if c != b'{' || events.len() == max {
                        return None;
                    }
                    (start, deepest) = (p, 1);
                } else if depth == inner + 1 {
                    value = Some((p, true));
                }
            }
            b'}' | b']' => {
                if depth == inner {
                    if let Some((s, false)) = value.take() {
                        members.push((key.take()?, text.get(s..trim(p))?));
                    }
                    events.push(Split {
                        json: text.get(start..=p)?,
                        depth: deepest,
                        members: std::mem::take(&mut members),
                    });
                } else if depth == inner + 1 {
                    let (s, _) = value.take()?;
                    members.push((key.take()?, text.get(s..=p)?));
                }
                depth = depth.checked_sub(1)?;
            }
            b',' | b':' => {
                if depth == inner
                    && let Some((s, false)) = value.take()
                {
                    members.push((key.take()?, text.get(s..trim(p))?));
                }
            }
            _ if depth < inner => return None,
            _ if depth == inner && key.is_none() => {
                // A key: the string up to its `:`, borrowed unless it has escape sequences.
                let end = *idx.get(i + 1)? as usize;
                let raw = text.get(p..trim(end))?;
                key = Some(if raw.contains('\\') {
                    serde_json::from_str::<CowStr<'_>>(raw).ok()?.0
                } else {
                    Cow::Borrowed(raw.get(1..raw.len() - 1)?)
                });
            }
            _ if depth == inner => value = Some((p, false)),
            _ => {}
        }
    }
    (!events.is_empty()).then_some(events)
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
