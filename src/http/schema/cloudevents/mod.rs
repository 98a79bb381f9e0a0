//! CloudEvents 1.0 JSON publish bodies (structured mode, single and batch): parsing and
//! validation into [`CloudEvent`]s.
//!
//! Owns [`parse_batch`]: the content-type check, the body's shape (one object or an array), the
//! request limits ([`ParseLimits`]) applied to it, and every per-event rule of CloudEvents 1.0 (required attributes,
//! `specversion`, optional attribute types, `time` shape, `data` / `data_base64` exclusivity,
//! extension names, duplicate keys). A batch is accepted whole or not at all, and every error
//! names the event (0-based index) and the attribute at fault.
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

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use evgrid_actors::model::event::CloudEvent;
use ntex_bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    CowStr, ParseError, ParseLimits, Shape, bad, byte_string, check_count, check_depth, is_rfc3339,
    quoted, split_top,
};

pub(crate) const BATCH_TYPE: &str = "application/cloudevents-batch+json";
const SINGLE_TYPE: &str = "application/cloudevents+json";
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
    let shape = shape_for(content_type)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        bad(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })?;
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
    check_depth(index, json, 0)?;
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = match (EventSeed {
        problem: &mut problem,
    })
    .deserialize(&mut de)
    {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(bad(match problem {
                Some(msg) => format!("Event {index}: {msg}"),
                None => format!("Event {index} is not valid JSON: {e}."),
            }));
        }
    };
    Ok(CloudEvent {
        id: byte_string(body, parsed.id),
        source: byte_string(body, parsed.source),
        ty: byte_string(body, parsed.ty),
        subject: parsed.subject.map(|s| byte_string(body, s)),
        ext: parsed
            .ext
            .into_iter()
            .map(|(k, v)| (byte_string(body, k), byte_string(body, v)))
            .collect(),
        raw: body
            .slice_ref_checked(json.as_bytes())
            .unwrap_or_else(|| Bytes::copy_from_slice(json.as_bytes())),
    })
}

/// The JSON type of a (valid) raw JSON value, for messages.
fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

/// An attribute value. Values are taken as raw JSON first so that numbers are never parsed
/// (serde_json refuses out-of-range numbers such as `1e400` that are valid JSON) and containers
/// are skipped without being built.
enum Val<'a> {
    Null,
    Str(Cow<'a, str>),
    Other(&'static str),
}

fn classify<'a>(name: &str, raw: &'a str) -> Result<Val<'a>, String> {
    match raw.as_bytes().first() {
        Some(b'"') => match serde_json::from_str::<CowStr<'a>>(raw) {
            Ok(CowStr(s)) => Ok(Val::Str(s)),
            // The batch pass checks escapes only loosely (e.g. lone surrogates get through).
            Err(e) => Err(format!(
                "attribute '{name}' is not a valid JSON string: {e}."
            )),
        },
        Some(b'n') => Ok(Val::Null),
        _ => Ok(Val::Other(kind_of(raw))),
    }
}

/// A required attribute: a non-empty string.
fn required<'a>(name: &str, raw: &'a str) -> Result<Cow<'a, str>, String> {
    let got = match classify(name, raw)? {
        Val::Str(s) if !s.is_empty() => return Ok(s),
        Val::Str(_) => "an empty string",
        Val::Null => "null",
        Val::Other(kind) => kind,
    };
    Err(format!(
        "required attribute '{name}' must be a non-empty string, got {got}."
    ))
}

/// An optional string attribute; `null` means unset (CloudEvents JSON format §2.2).
fn optional<'a>(name: &str, raw: &'a str) -> Result<Option<Cow<'a, str>>, String> {
    match classify(name, raw)? {
        Val::Str(s) => Ok(Some(s)),
        Val::Null => Ok(None),
        Val::Other(kind) => Err(format!("attribute '{name}' must be a string, got {kind}.")),
    }
}

/// The attributes routing needs, borrowed from the body where possible.
struct Parsed<'a> {
    id: Cow<'a, str>,
    source: Cow<'a, str>,
    ty: Cow<'a, str>,
    subject: Option<Cow<'a, str>>,
    ext: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Validates one event object. On a rule violation it stores the message in `problem` and stops
/// with a placeholder error (serde errors carry a position suffix the client does not need).
struct EventSeed<'s> {
    problem: &'s mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

fn fail<E: de::Error>(problem: &mut Option<String>, msg: String) -> E {
    *problem = Some(msg);
    E::custom("invalid CloudEvent")
}

/// Bit per context attribute, for duplicate detection.
fn context_bit(name: &str) -> u16 {
    match name {
        "id" => 1,
        "source" => 1 << 1,
        "type" => 1 << 2,
        "specversion" => 1 << 3,
        "subject" => 1 << 4,
        "time" => 1 << 5,
        "datacontenttype" => 1 << 6,
        "dataschema" => 1 << 7,
        "data" => 1 << 8,
        "data_base64" => 1 << 9,
        _ => 0,
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudEvent JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let problem = self.problem;
        let mut seen = 0u16;
        let (mut id, mut source, mut ty, mut subject) = (None, None, None, None);
        let mut has_specversion = false;
        let (mut has_data, mut has_data_base64) = (false, false);
        let mut ext = Vec::new();
        let mut ext_names = NameSet::default();

        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let raw: &'de RawValue = map.next_value()?;
            let raw = raw.get();
            let bit = context_bit(&key);
            if bit != 0 {
                if seen & bit != 0 {
                    return Err(fail(problem, format!("duplicate attribute '{key}'.")));
                }
                seen |= bit;
            }
            let checked: Result<(), String> = match &*key {
                "id" => required("id", raw).map(|s| id = Some(s)),
                "source" => required("source", raw).map(|s| source = Some(s)),
                "type" => required("type", raw).map(|s| ty = Some(s)),
                "specversion" => {
                    has_specversion = true;
                    classify("specversion", raw).and_then(|v| {
                        let got = match v {
                            Val::Str(s) if s == "1.0" => return Ok(()),
                            Val::Str(s) => quoted(&s),
                            Val::Null => "null".into(),
                            Val::Other(kind) => kind.into(),
                        };
                        Err(format!("'specversion' must be \"1.0\", got {got}."))
                    })
                }
                "subject" => optional("subject", raw).map(|s| subject = s),
                "time" => match optional("time", raw) {
                    Ok(Some(t)) if !is_rfc3339(&t) => Err(format!(
                        "attribute 'time' must be an RFC 3339 timestamp such as \
                         \"2024-05-01T10:00:00Z\", got {}.",
                        quoted(&t)
                    )),
                    other => other.map(drop),
                },
                "datacontenttype" | "dataschema" => optional(&key, raw).map(drop),
                "data" => {
                    has_data = raw != "null";
                    Ok(())
                }
                "data_base64" => match optional("data_base64", raw) {
                    Ok(Some(b)) if !is_base64(&b) => Err(
                        "attribute 'data_base64' must be base64 (standard alphabet, padded)."
                            .into(),
                    ),
                    other => other.map(|b| has_data_base64 = b.is_some()),
                },
                _ => {
                    if !is_extension_name(&key) {
                        Err(format!(
                            "invalid extension attribute name {}: extension names must be 1 to 20 \
                             lowercase letters (a-z) or digits.",
                            quoted(&key)
                        ))
                    } else if !ext_names.insert(key.clone()) {
                        Err(format!("duplicate attribute '{key}'."))
                    } else {
                        // Non-string values (numbers, booleans, objects) stay only in `raw`;
                        // null means unset.
                        classify(&key, raw).map(|v| {
                            if let Val::Str(v) = v {
                                ext.push((key, v));
                            }
                        })
                    }
                }
            };
            if let Err(msg) = checked {
                return Err(fail(problem, msg));
            }
        }

        if has_data && has_data_base64 {
            return Err(fail(
                problem,
                "'data' and 'data_base64' are mutually exclusive; send one of them.".into(),
            ));
        }
        let missing = |name: &str| format!("required attribute '{name}' is missing.");
        let Some(id) = id else {
            return Err(fail(problem, missing("id")));
        };
        let Some(source) = source else {
            return Err(fail(problem, missing("source")));
        };
        let Some(ty) = ty else {
            return Err(fail(problem, missing("type")));
        };
        if !has_specversion {
            return Err(fail(problem, missing("specversion")));
        }
        Ok(Parsed {
            id,
            source,
            ty,
            subject,
            ext,
        })
    }
}

/// Names seen so far: a short list, turned into a hash set once an event has many extensions (so
/// an event with thousands of them costs linear time, not quadratic).
#[derive(Default)]
struct NameSet<'a> {
    few: Vec<Cow<'a, str>>,
    many: Option<HashSet<Cow<'a, str>>>,
}

impl<'a> NameSet<'a> {
    const FEW: usize = 16;

    /// False when `name` was already there.
    fn insert(&mut self, name: Cow<'a, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(name);
        }
        if self.few.contains(&name) {
            return false;
        }
        self.few.push(name);
        if self.few.len() > Self::FEW {
            self.many = Some(self.few.drain(..).collect());
        }
        true
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
                    && let Ok(Val::Str(s)) = classify("id", raw.get())
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

/// CloudEvents extension attribute names: 1–20 characters of `[a-z0-9]`.
fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A light base64 check: standard alphabet, length a multiple of 4, at most two `=` at the end.
fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    let data = b.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    b.len().is_multiple_of(4)
        && b.len() - data <= 2
        && b[..data]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

#[cfg(test)]
mod tests;
