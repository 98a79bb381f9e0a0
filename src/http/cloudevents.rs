//! CloudEvents 1.0 JSON publish bodies (structured mode, single and batch): parsing and
//! validation into [`CloudEvent`]s.
//!
//! Owns [`parse_batch`]: the content-type check, the body's shape (one object or an array), the
//! request limits ([`Limits`]) and every per-event rule of CloudEvents 1.0 (required attributes,
//! `specversion`, optional attribute types, `time` shape, `data` / `data_base64` exclusivity,
//! extension names, duplicate keys). A batch is accepted whole or not at all, and every error
//! names the event (0-based index) and the attribute at fault.
//!
//! Zero-copy: each event's `raw` is a slice of the request body (the exact bytes of its JSON
//! object), and its attribute strings are slices of the same buffer unless the JSON string had
//! escape sequences (only then is an unescaped copy owned). `data` is skipped, never
//! materialised.
//!
//! Must never re-serialise an event (what consumers receive is byte for byte what was
//! published), never panic on any input, and knows nothing of HTTP beyond the `Content-Type`
//! value: mapping [`ParseError`] to a status and error body belongs to the handler.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use evgrid_actors::event::CloudEvent;
use ntex_bytes::{ByteString, Bytes};
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

/// Request limits enforced while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
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

const BATCH_TYPE: &str = "application/cloudevents-batch+json";
const SINGLE_TYPE: &str = "application/cloudevents+json";
const JSON_TYPE: &str = "application/json";
const ACCEPTED: &str =
    "application/cloudevents-batch+json, application/cloudevents+json or application/json";

/// Longest client-supplied text quoted back in an error message, in characters.
const QUOTE_MAX: usize = 64;

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
    limits: &Limits,
) -> Result<Vec<CloudEvent>, ParseError> {
    let shape = shape_for(content_type)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        bad(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })?;
    let (raws, count) = split_top(text, shape, limits.max_events)?;
    if count == 0 {
        return Err(bad("The request contained no events.".into()));
    }
    if count > limits.max_events {
        return Err(ParseError::TooLarge(format!(
            "The request contained {count} events; the limit is {} events per request.",
            limits.max_events
        )));
    }
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

fn bad(msg: String) -> ParseError {
    ParseError::BadRequest(msg)
}

/// What the body's top level may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Array,
    ObjectOrArray,
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

fn json_error(e: serde_json::Error) -> ParseError {
    bad(format!("The request body is not valid JSON: {e}."))
}

/// Splits the body into its events' raw JSON, keeping at most `max` of them; also returns how
/// many there are in all (elements past `max` are only counted).
fn split_top(text: &str, shape: Shape, max: usize) -> Result<(Vec<&RawValue>, usize), ParseError> {
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
            "The request body must be a JSON array of events under Content-Type {BATCH_TYPE}, \
             got a single object."
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

/// A slice of `body` when `s` borrows from it, else an owned copy.
fn byte_string(body: &Bytes, s: Cow<'_, str>) -> ByteString {
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
struct CowStr<'a>(Cow<'a, str>);

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

/// The shape of an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T`/`Z` in
/// either case, with field ranges checked (leap seconds are refused: common consumers, such as
/// Python's `datetime`, cannot represent them).
fn is_rfc3339(s: &str) -> bool {
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

/// `s` as a quoted, escaped string for messages, cut to [`QUOTE_MAX`] characters.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_event_bytes: 1 << 20,
        max_events: 1000,
    };
    const BATCH: Option<&str> = Some("application/cloudevents-batch+json; charset=utf-8");
    const SINGLE: Option<&str> = Some("application/cloudevents+json; charset=utf-8");
    const JSON: Option<&str> = Some("application/json");

    /// The publish body of spec §9.3, byte for byte.
    const SDK_BODY: &str = r#"[{"id": "ce-1", "source": "/orders", "type": "Contoso.Order.Created", "specversion": "1.0", "time": "2024-05-01T10:00:00.123456Z", "subject": "orders/1", "data": {"orderId": 1}, "myext": "v"}]"#;

    fn parse(body: &str, ct: Option<&str>) -> Result<Vec<CloudEvent>, ParseError> {
        parse_batch(Bytes::copy_from_slice(body.as_bytes()), ct, &LIMITS)
    }

    fn parse_ok(body: &str) -> Vec<CloudEvent> {
        parse(body, BATCH).unwrap_or_else(|e| panic!("{}: {e}", quoted(body)))
    }

    fn bad_request(body: &str) -> String {
        match parse(body, BATCH) {
            Err(ParseError::BadRequest(m)) => m,
            other => panic!("{}: expected BadRequest, got {other:?}", quoted(body)),
        }
    }

    /// A minimal valid event with `extra` members appended.
    fn event(extra: &str) -> String {
        format!(r#"{{"specversion":"1.0","id":"e","source":"/s","type":"t"{extra}}}"#)
    }

    /// Bad request for a batch of one event made of `extra` members.
    fn bad_event(extra: &str) -> String {
        bad_request(&format!("[{}]", event(extra)))
    }

    fn ext(ev: &CloudEvent) -> Vec<(&str, &str)> {
        ev.ext
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Offset of `part` in `whole`, asserting it lies inside (a slice, not a copy).
    fn offset_in(whole: &[u8], part: &[u8]) -> usize {
        let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
        assert!(
            p >= w && p + part.len() <= w + whole.len(),
            "not a slice of the body"
        );
        p - w
    }

    #[test]
    fn sdk_batch_under_batch_content_type() {
        assert_eq!(SDK_BODY.len(), 192, "the Content-Length of the capture");
        let evs = parse(SDK_BODY, BATCH).unwrap();
        assert_eq!(evs.len(), 1);
        let ev = &evs[0];
        assert_eq!(ev.id, "ce-1");
        assert_eq!(ev.source, "/orders");
        assert_eq!(ev.ty, "Contoso.Order.Created");
        assert_eq!(ev.subject.as_deref(), Some("orders/1"));
        assert_eq!(ext(ev), [("myext", "v")]);
        assert_eq!(&ev.raw[..], &SDK_BODY.as_bytes()[1..SDK_BODY.len() - 1]);
        assert_eq!(ev.attr("myext"), Some("v"));
    }

    #[test]
    fn sdk_array_under_single_event_content_type() {
        let evs = parse(SDK_BODY, SINGLE).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id, "ce-1");
        assert_eq!(&evs[0].raw[..], &SDK_BODY.as_bytes()[1..SDK_BODY.len() - 1]);
    }

    #[test]
    fn single_object_under_single_event_content_type() {
        let body = r#"{"specversion":"1.0","id":"c1","source":"/orders","type":"Contoso.Order.Created","time":"2024-05-01T10:00:00Z","subject":"orders/1","datacontenttype":"application/json","data":{"orderId":1},"tenant":"a"}"#;
        let evs = parse(&format!(" \n{body}\r\n\t"), SINGLE).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id, "c1");
        assert_eq!(ext(&evs[0]), [("tenant", "a")]);
        assert_eq!(&evs[0].raw[..], body.as_bytes());
    }

    #[test]
    fn application_json_takes_object_or_array() {
        let one = event("");
        assert_eq!(parse(&one, JSON).unwrap().len(), 1);
        let two = format!("[{one},{one}]");
        assert_eq!(parse(&two, JSON).unwrap().len(), 2);
    }

    #[test]
    fn media_type_is_case_insensitive_and_parameters_ignored() {
        let body = format!("[{}]", event(""));
        for ct in [
            "Application/CloudEvents-Batch+JSON",
            "application/cloudevents-batch+json ; charset=UTF-8",
            "APPLICATION/CLOUDEVENTS+JSON;charset=utf-8",
            "application/json; charset=utf-8; foo=bar",
            "  application/json  ",
        ] {
            assert_eq!(parse(&body, Some(ct)).unwrap().len(), 1, "{ct}");
        }
    }

    #[test]
    fn unsupported_media_types() {
        let body = format!("[{}]", event(""));
        match parse(&body, None) {
            Err(ParseError::UnsupportedMediaType(m)) => assert_eq!(
                m,
                "The request has no Content-Type; expected application/cloudevents-batch+json, \
                 application/cloudevents+json or application/json."
            ),
            other => panic!("{other:?}"),
        }
        for ct in [
            "text/plain",
            "",
            "application/cloudevents-batch+jsonx",
            "application/xml; charset=utf-8",
            "application/json-seq",
        ] {
            match parse(&body, Some(ct)) {
                Err(ParseError::UnsupportedMediaType(m)) => assert_eq!(
                    m,
                    format!(
                        "Content-Type {ct:?} is not supported; expected \
                         application/cloudevents-batch+json, application/cloudevents+json or \
                         application/json."
                    )
                ),
                other => panic!("{ct}: {other:?}"),
            }
        }
        // The content type is checked before the body.
        assert!(matches!(
            parse("garbage", Some("text/plain")),
            Err(ParseError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn batch_content_type_requires_an_array() {
        assert_eq!(
            bad_request(&event("")),
            "The request body must be a JSON array of events under Content-Type \
             application/cloudevents-batch+json, got a single object."
        );
        assert_eq!(
            bad_request("42"),
            "The request body must be a JSON array of events."
        );
        assert_eq!(
            parse("\"x\"", SINGLE),
            Err(bad(
                "The request body must be a JSON object (one event) or a JSON array of events."
                    .into()
            ))
        );
    }

    #[test]
    fn empty_batch_and_empty_body() {
        assert_eq!(bad_request("[]"), "The request contained no events.");
        assert_eq!(bad_request(" [ ] "), "The request contained no events.");
        assert_eq!(
            parse("[]", SINGLE),
            Err(bad("The request contained no events.".into()))
        );
        assert_eq!(bad_request(""), "The request body is empty.");
        assert_eq!(bad_request(" \r\n\t"), "The request body is empty.");
    }

    #[test]
    fn too_many_events() {
        let limits = Limits {
            max_event_bytes: 1000,
            max_events: 2,
        };
        let one = event("");
        let two = Bytes::from(format!("[{one},{one}]"));
        assert_eq!(parse_batch(two, BATCH, &limits).unwrap().len(), 2);
        let three = Bytes::from(format!("[{one},{one},{one}]"));
        assert_eq!(
            parse_batch(three, BATCH, &limits),
            Err(ParseError::TooLarge(
                "The request contained 3 events; the limit is 2 events per request.".into()
            ))
        );
        // Elements past the limit are counted, not validated or kept.
        let many = Bytes::from(format!("[{}{{}}]", "{},".repeat(9_999)));
        assert_eq!(
            parse_batch(many, BATCH, &limits),
            Err(ParseError::TooLarge(
                "The request contained 10000 events; the limit is 2 events per request.".into()
            ))
        );
        // ...but they must still be valid JSON.
        let broken = Bytes::from(format!("[{one},{one},{one},{{]"));
        assert!(matches!(
            parse_batch(broken, BATCH, &limits),
            Err(ParseError::BadRequest(_))
        ));
    }

    #[test]
    fn event_too_large() {
        let small = event("");
        let big = event(r#","data":"0123456789""#);
        let limits = Limits {
            max_event_bytes: big.len() - 1,
            max_events: 10,
        };
        let body = Bytes::from(format!("[{small}, {big}]"));
        assert_eq!(
            parse_batch(body, BATCH, &limits),
            Err(ParseError::TooLarge(format!(
                "Event 1 (id \"e\") is {} bytes; the limit is {} bytes per event.",
                big.len(),
                big.len() - 1
            )))
        );
        // Exactly at the limit is fine.
        let exact = Limits {
            max_event_bytes: big.len(),
            ..limits
        };
        assert!(parse_batch(Bytes::from(format!("[{big}]")), BATCH, &exact).is_ok());
        // No readable id: the index alone.
        let no_id = format!(r#"{{"id":7,"data":"{}"}}"#, "0123456789".repeat(10));
        let body = Bytes::from(format!("[{no_id}]"));
        assert_eq!(
            parse_batch(body, BATCH, &limits),
            Err(ParseError::TooLarge(format!(
                "Event 0 is {} bytes; the limit is {} bytes per event.",
                no_id.len(),
                big.len() - 1
            )))
        );
    }

    #[test]
    fn element_that_is_not_an_object() {
        let one = event("");
        for (elem, kind) in [
            ("1", "a number"),
            ("-1.5e3", "a number"),
            ("\"x\"", "a string"),
            ("null", "null"),
            ("true", "a boolean"),
            ("[]", "an array"),
        ] {
            assert_eq!(
                bad_request(&format!("[{one}, {elem}]")),
                format!("Event 1: expected a JSON object, got {kind}.")
            );
        }
    }

    #[test]
    fn missing_required_attributes() {
        let one = event("");
        let no_source = r#"{"specversion":"1.0","id":"x","type":"t"}"#;
        assert_eq!(
            bad_request(&format!("[{one},{one},{one},{no_source}]")),
            "Event 3: required attribute 'source' is missing."
        );
        for (body, name) in [
            (r#"{"specversion":"1.0","source":"/s","type":"t"}"#, "id"),
            (r#"{"specversion":"1.0","id":"x","source":"/s"}"#, "type"),
            (r#"{"id":"x","source":"/s","type":"t"}"#, "specversion"),
            ("{}", "id"),
        ] {
            assert_eq!(
                bad_request(&format!("[{body}]")),
                format!("Event 0: required attribute '{name}' is missing.")
            );
        }
    }

    #[test]
    fn required_attributes_must_be_non_empty_strings() {
        for name in ["id", "source", "type"] {
            for (value, got) in [
                ("5", "a number"),
                ("null", "null"),
                ("\"\"", "an empty string"),
                ("false", "a boolean"),
                ("{\"a\":1}", "an object"),
                ("[\"x\"]", "an array"),
            ] {
                let members: Vec<String> = [
                    ("specversion", "\"1.0\""),
                    ("id", "\"x\""),
                    ("source", "\"/s\""),
                    ("type", "\"t\""),
                ]
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{}", if k == name { value } else { v }))
                .collect();
                let body = format!("[{{{}}}]", members.join(","));
                assert_eq!(
                    bad_request(&body),
                    format!(
                        "Event 0: required attribute '{name}' must be a non-empty string, got {got}."
                    ),
                    "{body}"
                );
            }
        }
    }

    #[test]
    fn specversion_must_be_1_0() {
        let with = |v: &str| {
            bad_request(&format!(
                r#"[{{"id":"x","source":"/s","type":"t","specversion":{v}}}]"#
            ))
        };
        assert_eq!(
            with("\"0.3\""),
            r#"Event 0: 'specversion' must be "1.0", got "0.3"."#
        );
        assert_eq!(
            with("\"1.0 \""),
            r#"Event 0: 'specversion' must be "1.0", got "1.0 "."#
        );
        assert_eq!(
            with("\"1\""),
            r#"Event 0: 'specversion' must be "1.0", got "1"."#
        );
        assert_eq!(
            with("1.0"),
            r#"Event 0: 'specversion' must be "1.0", got a number."#
        );
        assert_eq!(
            with("null"),
            r#"Event 0: 'specversion' must be "1.0", got null."#
        );
        // Long values are cut in messages.
        let long = format!("\"{}\"", "9".repeat(10_000));
        let msg = with(&long);
        assert!(msg.len() < 200, "{msg}");
        assert!(
            msg.ends_with(&format!("got \"{}\"....", "9".repeat(QUOTE_MAX))),
            "{msg}"
        );
    }

    #[test]
    fn optional_attributes_must_be_strings() {
        for (name, value, got) in [
            ("subject", "5", "a number"),
            ("time", "true", "a boolean"),
            ("datacontenttype", "{}", "an object"),
            ("dataschema", "[]", "an array"),
            ("data_base64", "12", "a number"),
        ] {
            assert_eq!(
                bad_event(&format!(r#","{name}":{value}"#)),
                format!("Event 0: attribute '{name}' must be a string, got {got}.")
            );
        }
        let evs = parse_ok(&format!(
            "[{}]",
            event(r#","subject":"","datacontenttype":"text/plain","dataschema":"https://x/y""#)
        ));
        assert_eq!(evs[0].subject.as_deref(), Some(""));
    }

    #[test]
    fn null_optional_attributes_are_unset() {
        let evs = parse_ok(&format!(
            "[{}]",
            event(
                r#","subject":null,"time":null,"datacontenttype":null,"dataschema":null,"data":null,"data_base64":null,"myext":null"#
            )
        ));
        assert_eq!(evs[0].subject, None);
        assert!(evs[0].ext.is_empty());
        // null `data` does not conflict with `data_base64`, and vice versa.
        parse_ok(&format!(
            "[{}]",
            event(r#","data":null,"data_base64":"aGVsbG8=""#)
        ));
        parse_ok(&format!(
            "[{}]",
            event(r#","data":{"a":1},"data_base64":null"#)
        ));
    }

    #[test]
    fn time_shape() {
        for ok in [
            "2024-05-01T10:00:00Z",
            "2024-05-01t10:00:00z",
            "2024-05-01T10:00:00.123456Z",
            "2024-05-01T10:00:00.1234567Z",
            "2024-05-01T10:00:00.1+02:00",
            "2024-05-01T23:59:59-11:30",
            "2024-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "0001-01-01T00:00:00+00:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
            parse_ok(&format!("[{}]", event(&format!(r#","time":"{ok}""#))));
        }
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T10:00:00",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00,5Z",
            "2024-05-01T10:00:00+0200",
            "2024-05-01T10:00:00+02",
            "2024-05-01T10:00:00Zjunk",
            "2024-05-01T10:00:00Z ",
            "2024-13-01T10:00:00Z",
            "2024-00-01T10:00:00Z",
            "2024-04-31T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "1900-02-29T10:00:00Z",
            "2024-05-00T10:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:60:00Z",
            "2024-05-01T10:00:60Z",
            "2024-05-01T10:00:00+24:00",
            "2024-05-01T10:00:00+02:60",
            "+024-05-01T10:00:00Z",
            "2024-05-01T10:00:00\u{0660}Z",
            "yesterday",
            "２024-05-01T10:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
        assert_eq!(
            bad_event(r#","time":"yesterday""#),
            "Event 0: attribute 'time' must be an RFC 3339 timestamp such as \
             \"2024-05-01T10:00:00Z\", got \"yesterday\"."
        );
    }

    #[test]
    fn data_and_data_base64() {
        let evs = parse_ok(&format!("[{}]", event(r#","data_base64":"aGVsbG8=""#)));
        assert_eq!(evs.len(), 1);
        for data in [
            r#""text""#,
            "1e400",
            "[1,2,[3]]",
            r#"{"a":{"b":null}}"#,
            "false",
        ] {
            parse_ok(&format!("[{}]", event(&format!(r#","data":{data}"#))));
        }
        assert_eq!(
            bad_event(r#","data":{"a":1},"data_base64":"aGVsbG8=""#),
            "Event 0: 'data' and 'data_base64' are mutually exclusive; send one of them."
        );
        assert_eq!(
            bad_event(r#","data_base64":"aGVsbG8=","data":"x""#),
            "Event 0: 'data' and 'data_base64' are mutually exclusive; send one of them."
        );
        for ok in ["", "aGVsbG8=", "aGVsbA==", "aGVs", "ab+/", "\\u0061GVs"] {
            assert!(is_base64(&ok.replace("\\u0061", "a")), "{ok}");
            parse_ok(&format!(
                "[{}]",
                event(&format!(r#","data_base64":"{ok}""#))
            ));
        }
        for bad in [
            "aGVsbG8",
            "aGVsbG8==",
            "a===",
            "====",
            "aGV=bG8=",
            "aGVs bG8=",
            "aGVs-_8=",
            "é===",
            "\\n",
        ] {
            assert_eq!(
                bad_event(&format!(r#","data_base64":"{bad}""#)),
                "Event 0: attribute 'data_base64' must be base64 (standard alphabet, padded).",
                "{bad}"
            );
        }
    }

    #[test]
    fn extension_names() {
        for name in [
            "MyExt",
            "my_ext",
            "my-ext",
            "",
            "a23456789012345678901",
            "é",
            "data_Base64",
            " a",
        ] {
            assert_eq!(
                bad_event(&format!(r#","{name}":"v""#)),
                format!(
                    "Event 0: invalid extension attribute name {name:?}: extension names must be \
                     1 to 20 lowercase letters (a-z) or digits."
                ),
                "{name}"
            );
        }
        // The check applies whatever the value.
        assert!(bad_event(r#","Big":1"#).contains("invalid extension attribute name \"Big\""));
        let evs = parse_ok(&format!(
            "[{}]",
            event(r#","a2345678901234567890":"x","0":"y","traceparent":"00-ab""#)
        ));
        assert_eq!(
            ext(&evs[0]),
            [
                ("a2345678901234567890", "x"),
                ("0", "y"),
                ("traceparent", "00-ab")
            ]
        );
    }

    #[test]
    fn extension_order_and_non_string_values() {
        let evs = parse_ok(&format!(
            "[{}]",
            event(
                r#","b":"1","a":2,"c":"3","d":true,"e":{"x":"y"},"f":null,"g":"4","h":[1],"big":1e400,"i":"""#
            )
        ));
        assert_eq!(
            ext(&evs[0]),
            [("b", "1"), ("c", "3"), ("g", "4"), ("i", "")]
        );
        assert_eq!(evs[0].attr("a"), None);
        assert_eq!(evs[0].attr("g"), Some("4"));
    }

    #[test]
    fn duplicate_keys() {
        for (extra, name) in [
            (r#","id":"again""#, "id"),
            (r#","specversion":"1.0""#, "specversion"),
            (r#","data":1,"data":2"#, "data"),
            (r#","subject":null,"subject":"x""#, "subject"),
            (r#","x":"1","x":2"#, "x"),
            (r#","x":null,"x":null"#, "x"),
            // An escaped key is the same key once unescaped.
            (r#","\u0069d":"again""#, "id"),
        ] {
            assert_eq!(
                bad_event(extra),
                format!("Event 0: duplicate attribute '{name}'."),
                "{extra}"
            );
        }
        // Past the short list (hash-set path).
        let many: String = (0..100).map(|i| format!(r#","x{i}":"v""#)).collect();
        let evs = parse_ok(&format!("[{}]", event(&many)));
        assert_eq!(evs[0].ext.len(), 100);
        assert_eq!(evs[0].ext[99].0, "x99");
        assert_eq!(
            bad_event(&format!(r#"{many},"x57":1"#)),
            "Event 0: duplicate attribute 'x57'."
        );
        assert_eq!(
            bad_event(&format!(r#"{many},"x3":1"#)),
            "Event 0: duplicate attribute 'x3'."
        );
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let body = r#"[{"specversion":"1.0","id":"\u00e9t\u00e9","source":"/s\/t","type":"t","subject":"a\"b\n","ext1":"tab\there","\u0065xt2":"k"}]"#;
        let evs = parse_ok(body);
        let ev = &evs[0];
        assert_eq!(ev.id, "été");
        assert_eq!(ev.source, "/s/t");
        assert_eq!(ev.subject.as_deref(), Some("a\"b\n"));
        assert_eq!(ext(ev), [("ext1", "tab\there"), ("ext2", "k")]);
        // Escaped required attributes count.
        parse_ok(r#"[{"specversion":"1\u002e0","\u0069d":"x","source":"/s","type":"t"}]"#);
        // Surrogate pairs decode; lone surrogates are refused.
        assert_eq!(
            parse_ok(&format!("[{}]", event(r#","subject":"\ud83d\ude00""#)))[0]
                .subject
                .as_deref(),
            Some("😀")
        );
        let msg = bad_event(r#","subject":"\ud800""#);
        assert!(
            msg.starts_with("Event 0: attribute 'subject' is not a valid JSON string: "),
            "{msg}"
        );
        assert!(bad_event(r#","x":"\udc00""#).starts_with("Event 0: attribute 'x' is not a valid"));
    }

    #[test]
    fn raw_and_attributes_are_slices_of_the_body() {
        let e0 = r#"{ "specversion" : "1.0", "id" : "first-event-with-a-long-id-0123456789", "source" : "/subscriptions/abc/resourceGroups/rg/providers/x", "type" : "Contoso.Items.ItemReceived", "data" : { "n" : [1, 2, 3] } }"#;
        let e1 = r#"{"specversion":"1.0","id":"second","source":"/s","type":"t","subject":"an/escaped\/subject/that/is/long/enough","tenant":"tenant-name-that-is-longer-than-inline","data_base64":"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="}"#;
        assert!(e0.len() > 100 && e1.len() > 100);
        let text = format!("\n[\n  {e0} ,\n\t{e1}\n]\n");
        let body = Bytes::copy_from_slice(text.as_bytes());
        let evs = parse_batch(body.clone(), BATCH, &LIMITS).unwrap();
        assert_eq!(evs.len(), 2);
        for (ev, src) in evs.iter().zip([e0, e1]) {
            assert_eq!(&ev.raw[..], src.as_bytes());
            assert_eq!(offset_in(&body, &ev.raw), text.find(src).unwrap());
        }
        // Unescaped attribute strings longer than the inline capacity point into the body.
        let id = &evs[0].id;
        assert_eq!(
            offset_in(&body, id.as_slice()),
            text.find("first-event").unwrap()
        );
        offset_in(&body, evs[0].source.as_slice());
        offset_in(&body, evs[0].ty.as_slice());
        offset_in(&body, evs[1].ext[0].1.as_slice());
        // The escaped subject is an owned copy, unescaped.
        let subject = evs[1].subject.as_ref().unwrap();
        assert_eq!(subject, "an/escaped/subject/that/is/long/enough");
        let (b, s) = (body.as_ptr() as usize, subject.as_slice().as_ptr() as usize);
        assert!(
            s < b || s >= b + body.len(),
            "an escaped string cannot be a slice"
        );
    }

    #[test]
    fn a_bad_event_fails_the_whole_batch() {
        let good = event("");
        let bad = r#"{"specversion":"1.0","id":"x","source":"/s"}"#;
        assert_eq!(
            bad_request(&format!("[{good},{good},{bad},{good}]")),
            "Event 2: required attribute 'type' is missing."
        );
        // The first bad event is the one reported.
        let bad1 = r#"{"specversion":"0.3","id":"x","source":"/s","type":"t"}"#;
        assert_eq!(
            bad_request(&format!("[{good},{bad1},{bad}]")),
            r#"Event 1: 'specversion' must be "1.0", got "0.3"."#
        );
    }

    #[test]
    fn malformed_json() {
        for body in [
            "[",
            "[{",
            "[{}",
            "[{},]",
            "[{\"id\":}]",
            "[1 2]",
            "{\"id\":\"x\"",
            "[{\"a\":1}]]",
            "[{}] x",
            "[\"\\x\"]",
            "[\"a\u{1}\"]",
            "[{'id':'x'}]",
            "[NaN]",
            "[01]",
        ] {
            let msg = match parse(body, JSON) {
                Err(ParseError::BadRequest(m)) => m,
                other => panic!("{body:?}: {other:?}"),
            };
            assert!(
                msg.starts_with("The request body is not valid JSON: "),
                "{body:?}: {msg}"
            );
        }
    }

    #[test]
    fn non_utf8_and_garbage() {
        for body in [
            &b"\xff\xfe[]"[..],
            b"[{\"specversion\":\"1.0\",\"id\":\"\xc3\x28\",\"source\":\"/s\",\"type\":\"t\"}]",
            b"[\xed\xa0\x80]",
        ] {
            let r = parse_batch(Bytes::copy_from_slice(body), BATCH, &LIMITS);
            match r {
                Err(ParseError::BadRequest(m)) => {
                    assert!(m.starts_with("The request body is not valid UTF-8"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
        for body in ["\u{feff}[]", "garbage", "<xml/>", "nul", "\u{0}\u{1}\u{2}"] {
            assert!(
                matches!(parse(body, JSON), Err(ParseError::BadRequest(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_and_huge_values_do_not_panic() {
        let deep = 200_000;
        let top = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
        assert!(matches!(parse(&top, BATCH), Err(ParseError::BadRequest(_))));
        let open = "[".repeat(deep);
        assert!(matches!(
            parse(&open, BATCH),
            Err(ParseError::BadRequest(_))
        ));
        // Deep `data` is skipped without recursion: accepted as published.
        let data = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
        let evs = parse_ok(&format!("[{}]", event(&format!(r#","data":{data}"#))));
        assert!(evs[0].raw.len() > 2 * deep);
        let objs = format!("{}1{}", r#"{"a":"#.repeat(deep / 4), "}".repeat(deep / 4));
        parse_ok(&format!(
            "[{}]",
            event(&format!(r#","data":{objs},"x":{objs}"#))
        ));
        // Numbers no parser can hold, where strings or anything go.
        let huge = format!("1{}", "0".repeat(10_000));
        assert!(bad_event(&format!(r#","subject":{huge}"#)).ends_with("got a number."));
        parse_ok(&format!(
            "[{}]",
            event(&format!(r#","n":{huge},"m":-1e-99999"#))
        ));
        // A huge string value and a huge key.
        let long = "x".repeat(100_000);
        parse_ok(&format!("[{}]", event(&format!(r#","subject":"{long}""#))));
        let msg = bad_event(&format!(r#","{long}":1"#));
        assert!(msg.len() < 300, "{}", msg.len());
    }

    /// xorshift64*: deterministic pseudo-random bytes, no dependency.
    struct Rng(u64);

    impl Rng {
        fn step(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.step() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_truncated_or_mutated_bodies() {
        let seed = format!(
            "[{},{}]",
            event(
                r#","subject":"a\"b\n","time":"2024-05-01T10:00:00.1Z","x":"\u00e9","n":1.5e3,"data":{"k":[true,null,"v"]}"#
            ),
            event(r#","data_base64":"aGVsbG8=","y":false"#)
        );
        let limits = Limits {
            max_event_bytes: 150,
            max_events: 3,
        };
        // Every strict prefix is refused.
        for cut in 0..seed.len() {
            let body = Bytes::copy_from_slice(&seed.as_bytes()[..cut]);
            assert!(parse_batch(body, BATCH, &LIMITS).is_err(), "prefix {cut}");
        }
        assert_eq!(parse(&seed, BATCH).unwrap().len(), 2);
        // Random mutations: flips, insertions, deletions and swaps of interesting bytes.
        let alphabet = b"{}[]\",:\\u0aZ.-+eE \n\x00\xff\xc3\xa9null";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let mut b = seed.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len() + 1);
                let byte = if rng.below(4) == 0 {
                    rng.step() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                };
                match rng.below(3) {
                    0 if at < b.len() => b[at] = byte,
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.insert(at, byte),
                }
            }
            let ct = [BATCH, SINGLE, JSON][round % 3];
            let body = Bytes::from(b);
            let lim = if round % 2 == 0 { &LIMITS } else { &limits };
            if let Ok(evs) = parse_batch(body.clone(), ct, lim) {
                for ev in &evs {
                    offset_in(&body, &ev.raw);
                    assert!(!ev.id.is_empty() && !ev.source.is_empty() && !ev.ty.is_empty());
                }
            }
        }
    }

    #[test]
    fn errors_display_their_message() {
        let e = parse("[]", BATCH).unwrap_err();
        assert_eq!(e.to_string(), "The request contained no events.");
        assert_eq!(e.message(), "The request contained no events.");
    }

    #[test]
    fn many_events_sanity() {
        // A full 1,000-event batch parses, each raw a slice at its own offset.
        let one = event(r#","subject":"orders/1","tenant":"a","data":{"orderId":1}"#);
        let text = format!("[{}]", vec![one.as_str(); 1000].join(","));
        let body = Bytes::from(text);
        let evs = parse_batch(body.clone(), BATCH, &LIMITS).unwrap();
        assert_eq!(evs.len(), 1000);
        for (i, ev) in evs.iter().enumerate() {
            assert_eq!(offset_in(&body, &ev.raw), 1 + i * (one.len() + 1));
        }
    }
}
