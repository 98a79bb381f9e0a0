//! One CloudEvent in the CloudEvents 1.0 JSON format (structured mode): validation of a JSON
//! object into a [`CloudEvent`], shared by the HTTP publish parsers and by the bridge (an MQTT
//! message whose payload is a structured CloudEvent, docs/eventgrid.md §7.6).
//!
//! Owns every per-event rule of CloudEvents 1.0 (docs/eventgrid.md §2.3): required attributes,
//! `specversion`, optional attribute types, `time` shape, `data` / `data_base64` exclusivity,
//! extension names, duplicate keys. Zero-copy: the event's `raw` and its attribute strings are
//! slices of the caller's buffer unless a JSON string had escape sequences; `data` is skipped,
//! never materialised.
//!
//! Pure and deterministic. Must never re-serialise an event and never panic on any input; what
//! the caller checks before (the object shape, size and depth limits) and how an error is worded
//! for its client stays with the caller.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use ntex_bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::event::CloudEvent;
use super::json::{CowStr, byte_string, quoted};
use super::time::is_rfc3339;

/// Why an object is not a valid CloudEvent.
#[derive(Debug)]
pub enum ObjectError {
    /// A CloudEvents rule is broken; the message names the attribute.
    Rule(String),
    /// Not valid JSON (or not an object).
    Json(serde_json::Error),
}

/// Validates one CloudEvent JSON object. `json` should be a slice of `body` (then `raw` and the
/// attribute strings share its buffer); otherwise they are copied.
pub fn parse_object(body: &Bytes, json: &str) -> Result<CloudEvent, ObjectError> {
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed = match (EventSeed {
        problem: &mut problem,
    })
    .deserialize(&mut de)
    .and_then(|p| de.end().map(|()| p))
    {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(match problem {
                Some(msg) => ObjectError::Rule(msg),
                None => ObjectError::Json(e),
            });
        }
    };
    Ok(event(body, json, parsed))
}

/// [`parse_object`] for an object already split into its members (key, raw JSON value, in
/// order), e.g. by the publish parsers' simd-json pass: the same rules in the same order, so the
/// same event or the same first broken rule. `json` must be valid JSON and the members its own.
pub fn parse_members<'a>(
    body: &Bytes,
    json: &'a str,
    members: impl IntoIterator<Item = (Cow<'a, str>, &'a str)>,
) -> Result<CloudEvent, String> {
    let mut rules = Rules::default();
    for (key, raw) in members {
        rules.member(key, raw)?;
    }
    Ok(event(body, json, rules.finish()?))
}

fn event(body: &Bytes, json: &str, parsed: Parsed<'_>) -> CloudEvent {
    CloudEvent {
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
    }
}

/// The JSON type of a (valid) raw JSON value, for messages.
pub fn kind_of(raw: &str) -> &'static str {
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
pub(crate) enum Val<'a> {
    Null,
    Str(Cow<'a, str>),
    Other(&'static str),
}

pub(crate) fn classify<'a>(name: &str, raw: &'a str) -> Result<Val<'a>, String> {
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
        let mut rules = Rules::default();
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let raw: &'de RawValue = map.next_value()?;
            if let Err(msg) = rules.member(key, raw.get()) {
                return Err(fail(problem, msg));
            }
        }
        rules.finish().map_err(|msg| fail(problem, msg))
    }
}

/// The rules over an event's members, one member at a time, then over the whole.
#[derive(Default)]
struct Rules<'a> {
    seen: u16,
    id: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    ty: Option<Cow<'a, str>>,
    subject: Option<Cow<'a, str>>,
    has_specversion: bool,
    has_data: bool,
    has_data_base64: bool,
    ext: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    ext_names: NameSet<'a>,
}

impl<'a> Rules<'a> {
    fn member(&mut self, key: Cow<'a, str>, raw: &'a str) -> Result<(), String> {
        let bit = context_bit(&key);
        if bit != 0 {
            if self.seen & bit != 0 {
                return Err(format!("duplicate attribute '{key}'."));
            }
            self.seen |= bit;
        }
        match &*key {
            "id" => required("id", raw).map(|s| self.id = Some(s)),
            "source" => required("source", raw).map(|s| self.source = Some(s)),
            "type" => required("type", raw).map(|s| self.ty = Some(s)),
            "specversion" => {
                self.has_specversion = true;
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
            "subject" => optional("subject", raw).map(|s| self.subject = s),
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
                self.has_data = raw != "null";
                Ok(())
            }
            "data_base64" => match optional("data_base64", raw) {
                Ok(Some(b)) if !is_base64(&b) => Err(
                    "attribute 'data_base64' must be base64 (standard alphabet, padded).".into(),
                ),
                other => other.map(|b| self.has_data_base64 = b.is_some()),
            },
            _ => {
                if !is_extension_name(&key) {
                    Err(format!(
                        "invalid extension attribute name {}: extension names must be 1 to 20 \
                         lowercase letters (a-z) or digits.",
                        quoted(&key)
                    ))
                } else if !self.ext_names.insert(key.clone()) {
                    Err(format!("duplicate attribute '{key}'."))
                } else {
                    // Non-string values (numbers, booleans, objects) stay only in `raw`;
                    // null means unset.
                    classify(&key, raw).map(|v| {
                        if let Val::Str(v) = v {
                            self.ext.push((key, v));
                        }
                    })
                }
            }
        }
    }

    fn finish(self) -> Result<Parsed<'a>, String> {
        if self.has_data && self.has_data_base64 {
            return Err(
                "'data' and 'data_base64' are mutually exclusive; send one of them.".into(),
            );
        }
        let missing = |name: &str| format!("required attribute '{name}' is missing.");
        let Some(id) = self.id else {
            return Err(missing("id"));
        };
        let Some(source) = self.source else {
            return Err(missing("source"));
        };
        let Some(ty) = self.ty else {
            return Err(missing("type"));
        };
        if !self.has_specversion {
            return Err(missing("specversion"));
        }
        Ok(Parsed {
            id,
            source,
            ty,
            subject: self.subject,
            ext: self.ext,
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

/// CloudEvents extension attribute names: 1–20 characters of `[a-z0-9]`.
pub fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A light base64 check: standard alphabet, length a multiple of 4, at most two `=` at the end.
pub fn is_base64(s: &str) -> bool {
    let b = s.as_bytes();
    let data = b.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    b.len().is_multiple_of(4)
        && b.len() - data <= 2
        && b[..data]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}
