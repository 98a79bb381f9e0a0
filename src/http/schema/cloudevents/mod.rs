//! CloudEvents 1.0 JSON publish bodies (structured mode, single and batch): parsing and
//! validation into [`CloudEvent`]s.
//!
//! Binary content mode (`ce-*` headers, the body the data) is [`binary`]'s.
//!
//! Owns [`parse_batch`]: the content-type check, the body's shape (one object or an array), the
//! request limits ([`ParseLimits`]) applied to it; every per-event rule of CloudEvents 1.0
//! (required attributes, `specversion`, optional attribute types, `time` shape, `data` /
//! `data_base64` exclusivity, extension names, duplicate keys) is
//! [`evgrid_actors::model::structured`]'s, shared with the MQTT bridge. A batch is accepted whole
//! or not at all, and every error names the event (0-based index) and the attribute at fault.
//!
//! Zero-copy: each event's `raw` is a slice of the request body (the exact bytes of its JSON
//! object), and its attribute strings are slices of the same buffer unless the JSON string had
//! escape sequences (only then is an unescaped copy owned). `data` is skipped, never
//! materialised.
//!
//! Pure and deterministic, like all of [`super`]. Must never re-serialise an event (what
//! consumers receive is byte for byte what was published), never panic on any input, and knows
//! nothing of HTTP beyond the `Content-Type` value: mapping [`ParseError`] to a status and error
//! body belongs to the handler.

pub mod binary;

use std::borrow::Cow;
use std::fmt;

use evgrid_actors::model::event::CloudEvent;
#[cfg(test)]
use evgrid_actors::model::structured::is_base64;
use evgrid_actors::model::structured::{ObjectError, kind_of, parse_members, parse_object};
use ntex_bytes::Bytes;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    CowStr, ParseError, ParseLimits, Shape, bad, check_count, check_depth, check_nesting, quoted,
    split_fast, split_top,
};

pub(crate) const BATCH_TYPE: &str = "application/cloudevents-batch+json";
pub(crate) const SINGLE_TYPE: &str = "application/cloudevents+json";
pub(crate) const JSON_TYPE: &str = "application/json";
const ACCEPTED: &str =
    "application/cloudevents-batch+json, application/cloudevents+json or application/json";

/// Parses and validates a CloudEvents 1.0 JSON publish body.
///
/// `body`: the whole request body. `content_type`: the Content-Type header value, if any.
/// `application/cloudevents-batch+json` requires an array; `application/cloudevents+json` and
/// `application/json` take one object or an array (the Python SDK sends an array under
/// `application/cloudevents+json`). Media types compare case-insensitively; parameters are
/// ignored.
pub fn parse_batch(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
) -> Result<Vec<CloudEvent>, ParseError> {
    parse_batch_with(body, content_type, limits, true)
}

/// [`parse_batch`], with the simd-json pass ([`super::split_fast`]) or with serde_json alone: the
/// same result either way (the fuzz harness and the tests compare them; the bench times both).
#[doc(hidden)]
pub fn parse_batch_with(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
    simd: bool,
) -> Result<Vec<CloudEvent>, ParseError> {
    let shape = shape_for(content_type)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        bad(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })?;
    if simd && let Some(split) = split_fast(text, shape, limits.max_events) {
        let mut events = Vec::with_capacity(split.len());
        for (index, ev) in split.into_iter().enumerate() {
            let json = ev.json;
            let parsed = check_event(index, json, limits.max_event_bytes, Some(ev.depth))
                .and_then(|()| parse_members(&body, json, ev.members).map_err(|m| rule(index, m)));
            events.push(parsed?);
        }
        return Ok(events);
    }
    let (raws, count) = split_top(text, shape, limits.max_events)?;
    check_count(count, limits.max_events)?;
    let mut events = Vec::with_capacity(raws.len());
    for (index, raw) in raws.into_iter().enumerate() {
        events.push(parse_event(
            &body,
            index,
            raw.get(),
            limits.max_event_bytes,
        )?);
    }
    Ok(events)
}

fn shape_for(content_type: Option<&str>) -> Result<Shape, ParseError> {
    let Some(ct) = content_type else {
        return Err(ParseError::UnsupportedMediaType(format!(
            "The request has no Content-Type; expected {ACCEPTED}."
        )));
    };
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case(BATCH_TYPE) {
        Ok(Shape::Array)
    } else if media.eq_ignore_ascii_case(SINGLE_TYPE) || media.eq_ignore_ascii_case(JSON_TYPE) {
        Ok(Shape::ObjectOrArray)
    } else {
        Err(ParseError::UnsupportedMediaType(format!(
            "Content-Type {} is not supported; expected {ACCEPTED}.",
            quoted(ct)
        )))
    }
}

fn parse_event(
    body: &Bytes,
    index: usize,
    json: &str,
    max_bytes: usize,
) -> Result<CloudEvent, ParseError> {
    check_event(index, json, max_bytes, None)?;
    parse_object(body, json).map_err(|e| match e {
        ObjectError::Rule(msg) => rule(index, msg),
        ObjectError::Json(e) => bad(format!("Event {index} is not valid JSON: {e}.")),
    })
}

fn rule(index: usize, msg: String) -> ParseError {
    bad(format!("Event {index}: {msg}"))
}

/// An object, within the size and depth limits (`depth`: how deeply it nests, when known).
fn check_event(
    index: usize,
    json: &str,
    max_bytes: usize,
    depth: Option<usize>,
) -> Result<(), ParseError> {
    if !json.starts_with('{') {
        return Err(bad(format!(
            "Event {index}: expected a JSON object, got {}.",
            kind_of(json)
        )));
    }
    if json.len() > max_bytes {
        let who = match peek_id(json) {
            Some(id) => format!("Event {index} (id {})", quoted(&id)),
            None => format!("Event {index}"),
        };
        return Err(ParseError::TooLarge(format!(
            "{who} is {} bytes; the limit is {max_bytes} bytes per event.",
            json.len()
        )));
    }
    match depth {
        Some(depth) => check_nesting(index, depth),
        None => check_depth(index, json, 0),
    }
}

/// The value of the first `id` member, if it is a string (for "too large" messages).
fn peek_id(json: &str) -> Option<Cow<'_, str>> {
    struct Peek;

    impl<'de> Visitor<'de> for Peek {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut id = None;
            while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
                let raw: &'de RawValue = map.next_value()?;
                if id.is_none()
                    && key == "id"
                    && let Ok(CowStr(s)) = serde_json::from_str::<CowStr<'de>>(raw.get())
                {
                    id = Some(s);
                }
            }
            Ok(id)
        }
    }

    serde_json::Deserializer::from_str(json)
        .deserialize_map(Peek)
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests;
