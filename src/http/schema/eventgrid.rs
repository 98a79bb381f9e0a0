//! Basic-tier publish bodies (docs/eventgrid.md §2.1–2.4, §2.6): Event Grid schema arrays, custom-schema
//! arrays with the topic's input mapping, and CloudEvents (through [`super::cloudevents`]), turned into
//! [`TopicEvent`]s.
//!
//! Owns every per-event rule of the Event Grid schema (required `id`, `subject`, `eventType`,
//! `eventTime`, `data`; `dataVersion` a string; `metadataVersion` only `"1"`; `topic` naming the
//! domain topic on a domain, overwritten on a custom topic) and the normalised form events are
//! delivered in (`topic` = the ARM id, `metadataVersion` = `"1"`). A batch is accepted whole or
//! not at all; each error names the event (0-based index) and the field at fault.
//!
//! The normalised events of a batch are written into one buffer and sliced from it, so a batch
//! costs one allocation, not one per event. Field values are copied as the raw JSON the
//! publisher sent, never re-encoded. Pure and deterministic: no HTTP framework, async runtime or
//! clock (the time and the ids a custom-schema event lacks come in as arguments). Must never
//! panic on any input.

use std::borrow::Cow;
use std::fmt::Write as _;

use evgrid_actors::grid::resource::basic::{Field, Mapping};
use evgrid_actors::grid::topic::TopicEvent;
use evgrid_actors::model::event::CloudEvent;
use ntex_bytes::{ByteString, Bytes};
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::cloudevents::{self, JSON_TYPE};
use super::{
    CowStr, ParseError, ParseLimits, Shape, bad, check_count, check_depth, check_nesting,
    is_rfc3339, quoted, split_fast, split_top,
};

/// Where the events go: a custom topic (events get `topic_id`) or a domain (events name their
/// domain topic; they get `topic_id` + `/topics/{name}`).
#[derive(Debug, Clone, Copy)]
pub enum PostedTo<'a> {
    Topic { topic_id: &'a str },
    Domain { domain_id: &'a str },
}

fn check_media(content_type: Option<&str>, schema: &str) -> Result<(), ParseError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .unwrap_or_default()
        .trim();
    if media.eq_ignore_ascii_case(JSON_TYPE) {
        return Ok(());
    }
    if media
        .to_ascii_lowercase()
        .starts_with("application/cloudevents")
    {
        return Err(bad(format!(
            "This topic takes {schema} events (Content-Type application/json), not CloudEvents; create the topic with inputSchema CloudEventSchemaV1_0 to publish CloudEvents."
        )));
    }
    Err(ParseError::UnsupportedMediaType(match content_type {
        None => "The request has no Content-Type; expected application/json.".into(),
        Some(c) => format!(
            "The Content-Type {} is not supported; expected application/json.",
            quoted(c)
        ),
    }))
}

fn elements<'b>(text: &'b str, limits: &ParseLimits) -> Result<Vec<&'b RawValue>, ParseError> {
    let (raws, count) = split_top(text, Shape::Array, limits.max_events).map_err(|e| match e {
        ParseError::BadRequest(m) if m.contains("single object") => bad(
            "Unexpected token when reading JSON. Expected: StartArray, actual: StartObject. The request body must be a JSON array of events, even for one event.".into(),
        ),
        other => other,
    })?;
    check_count(count, limits.max_events)?;
    Ok(raws)
}

fn check_size(i: usize, json: &str, limits: &ParseLimits) -> Result<(), ParseError> {
    if json.len() > limits.max_event_bytes {
        return Err(ParseError::TooLarge(format!(
            "Event {i} is {} bytes; the limit is {} bytes per event.",
            json.len(),
            limits.max_event_bytes
        )));
    }
    Ok(())
}

fn utf8(body: &Bytes) -> Result<&str, ParseError> {
    std::str::from_utf8(body).map_err(|e| {
        bad(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })
}

/// The members of one JSON object, as raw values, in order.
fn members(json: &str) -> Result<Vec<(Cow<'_, str>, &str)>, String> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Cow<'de, str>, &'de str)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(CowStr(k)) = map.next_key::<CowStr<'de>>()? {
                out.push((k, map.next_value::<&'de RawValue>()?.get()));
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(json)
        .deserialize_map(V)
        .map_err(|e: serde_json::Error| e.to_string())
}

fn json_str(raw: &str) -> Option<String> {
    serde_json::from_str::<String>(raw).ok()
}

struct Normalised {
    range: (usize, usize),
    id: String,
    ty: String,
    subject: String,
    data_version: String,
    domain_topic: Option<String>,
    custom: Option<(usize, usize)>,
}

/// Slices the batch buffer into events.
fn finish(
    buf: String,
    body: Option<&Bytes>,
    items: Vec<Normalised>,
    source_of: impl Fn(&Normalised) -> String,
) -> Vec<TopicEvent> {
    let buf = Bytes::from(buf);
    items
        .into_iter()
        .map(|n| TopicEvent {
            ev: CloudEvent {
                id: ByteString::from(n.id.as_str()),
                source: ByteString::from(source_of(&n)),
                ty: ByteString::from(n.ty.as_str()),
                subject: Some(ByteString::from(n.subject.as_str())),
                ext: vec![(
                    ByteString::from_static("dataversion"),
                    ByteString::from(n.data_version.as_str()),
                )],
                raw: buf.slice(n.range.0..n.range.1),
            },
            data_version: ByteString::from(n.data_version),
            custom: n
                .custom
                .and_then(|(a, b)| body.map(|body| body.slice(a..b))),
            domain_topic: n
                .domain_topic
                .map(|t| ByteString::from(t.to_ascii_lowercase())),
        })
        .collect()
}

fn topic_id(target: PostedTo<'_>, dt: Option<&str>) -> String {
    match (target, dt) {
        (PostedTo::Domain { domain_id }, Some(t)) => format!("{domain_id}/topics/{t}"),
        (PostedTo::Topic { topic_id }, _)
        | (
            PostedTo::Domain {
                domain_id: topic_id,
            },
            None,
        ) => topic_id.to_string(),
    }
}

fn domain_topic_name(index: usize, v: Option<String>) -> Result<String, ParseError> {
    let t = v.ok_or_else(|| bad(format!("Event {index}: 'topic' is required when publishing to a domain; it names the domain topic.")))?;
    let ok =
        (3..=50).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ok {
        return Err(bad(format!(
            "Event {index}: the domain topic name {} is invalid: it must be 3 to 50 characters of letters, digits and hyphens.",
            quoted(&t)
        )));
    }
    Ok(t)
}

/// Parses an Event Grid schema publish body.
pub fn parse_eventgrid(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
    target: PostedTo<'_>,
) -> Result<Vec<TopicEvent>, ParseError> {
    parse_eventgrid_with(body, content_type, limits, target, true)
}

/// [`parse_eventgrid`], with the simd-json pass ([`super::split_fast`]) or with serde_json alone:
/// the same result either way (the fuzz harness and the tests compare them; the bench times both).
#[doc(hidden)]
pub fn parse_eventgrid_with(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
    target: PostedTo<'_>,
    simd: bool,
) -> Result<Vec<TopicEvent>, ParseError> {
    check_media(content_type, "Event Grid schema")?;
    let text = utf8(&body)?;
    let fast = simd
        .then(|| split_fast(text, Shape::Array, limits.max_events))
        .flatten();
    type Members<'b> = Vec<(Cow<'b, str>, &'b str)>;
    let events: Vec<(&str, Option<(usize, Members<'_>)>)> = match fast {
        Some(split) => split
            .into_iter()
            .map(|e| (e.json, Some((e.depth, e.members))))
            .collect(),
        None => elements(text, limits)?
            .into_iter()
            .map(|raw| (raw.get(), None))
            .collect(),
    };
    let mut buf = String::with_capacity(text.len() + events.len() * 160);
    let mut items = Vec::with_capacity(events.len());
    for (i, (json, split)) in events.into_iter().enumerate() {
        check_size(i, json, limits)?;
        if !json.starts_with('{') {
            return Err(bad(format!("Event {i} is not a JSON object.")));
        }
        // Normalising keeps the event's depth: its members are copied into a new object.
        let ms = match split {
            Some((depth, ms)) => {
                check_nesting(i, depth)?;
                ms
            }
            None => {
                check_depth(i, json, 0)?;
                members(json).map_err(|e| bad(format!("Event {i} is not valid JSON: {e}.")))?
            }
        };
        let mut f: [Option<&str>; 8] = [None; 8];
        const NAMES: [&str; 8] = [
            "id",
            "topic",
            "subject",
            "eventType",
            "eventTime",
            "data",
            "dataVersion",
            "metadataVersion",
        ];
        for (k, v) in &ms {
            if let Some(slot) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(k)) {
                if f[slot].is_some() {
                    return Err(bad(format!(
                        "Event {i}: '{}' appears more than once.",
                        NAMES[slot]
                    )));
                }
                f[slot] = Some(*v);
            }
        }
        let string = |slot: usize, required: bool| -> Result<Option<String>, ParseError> {
            match f[slot] {
                None if required => Err(bad(format!(
                    "Event {i}: the required property '{}' is missing.",
                    NAMES[slot]
                ))),
                None => Ok(None),
                Some(v) if v == "null" && !required => Ok(None),
                Some(v) => json_str(v)
                    .map(Some)
                    .ok_or_else(|| bad(format!("Event {i}: '{}' must be a string.", NAMES[slot]))),
            }
        };
        let id = string(0, true)?.unwrap_or_default();
        if id.is_empty() {
            return Err(bad(format!("Event {i}: 'id' must not be empty.")));
        }
        let subject = string(2, true)?.unwrap_or_default();
        let ty = string(3, true)?.unwrap_or_default();
        if ty.is_empty() {
            return Err(bad(format!("Event {i}: 'eventType' must not be empty.")));
        }
        let time = string(4, true)?.unwrap_or_default();
        if !is_rfc3339(&time) {
            return Err(bad(format!(
                "Event {i}: 'eventTime' {} is not an RFC 3339 date-time such as 2024-05-01T10:00:00Z.",
                quoted(&time)
            )));
        }
        let data = f[5].ok_or_else(|| {
            bad(format!(
                "Event {i}: the required property 'data' is missing."
            ))
        })?;
        let dv = string(6, false)?.unwrap_or_default();
        if let Some(mv) = string(7, false)?
            && mv != "1"
        {
            return Err(bad(format!(
                "Event {i}: 'metadataVersion' must be \"1\" (or left out), got {}.",
                quoted(&mv)
            )));
        }
        let dt = match target {
            PostedTo::Domain { .. } => Some(domain_topic_name(i, string(1, false)?)?),
            PostedTo::Topic { .. } => None,
        };
        let start = buf.len();
        let tid = topic_id(target, dt.as_deref());
        let _ = write!(
            buf,
            "{{\"id\":{},\"topic\":{},\"subject\":{},\"data\":{},\"eventType\":{},\"dataVersion\":{},\"metadataVersion\":\"1\",\"eventTime\":{}}}",
            f[0].unwrap_or("\"\""),
            Value::String(tid),
            f[2].unwrap_or("\"\""),
            data,
            f[3].unwrap_or("\"\""),
            f[6].filter(|v| *v != "null").unwrap_or("\"\""),
            f[4].unwrap_or("\"\""),
        );
        items.push(Normalised {
            range: (start, buf.len()),
            id,
            ty,
            subject,
            data_version: dv,
            domain_topic: dt,
            custom: None,
        });
    }
    Ok(finish(buf, None, items, |n| {
        topic_id(target, n.domain_topic.as_deref())
    }))
}

fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let mut v = v;
    for p in path.split('.') {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Parses a custom-schema publish body with the topic's `inputSchemaMapping`.
///
/// An event whose mapping yields no `id` gets `new_id()`; one without a valid `eventTime` gets
/// `now_unix_ms` (milliseconds since the unix epoch), the same for the whole batch.
pub fn parse_custom(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
    target: PostedTo<'_>,
    mapping: &Mapping,
    now_unix_ms: u64,
    new_id: fn() -> String,
) -> Result<Vec<TopicEvent>, ParseError> {
    check_media(content_type, "custom schema")?;
    let text = utf8(&body)?;
    let raws = elements(text, limits)?;
    let base = text.as_ptr() as usize;
    let mut buf = String::with_capacity(text.len() * 2 + raws.len() * 200);
    let mut items = Vec::with_capacity(raws.len());
    let now = evgrid_actors::model::time::format_rfc3339_ms(now_unix_ms);
    for (i, raw) in raws.iter().enumerate() {
        let json = raw.get();
        check_size(i, json, limits)?;
        // The custom object becomes the normalised event's `data`: one level deeper.
        check_depth(i, json, 1)?;
        let v: Value = serde_json::from_str(json)
            .map_err(|e| bad(format!("Event {i} is not valid JSON: {e}.")))?;
        if !v.is_object() {
            return Err(bad(format!("Event {i} is not a JSON object.")));
        }
        let get = |field: &Field, name: &str| -> Result<Option<String>, ParseError> {
            let found = field.source.as_deref().and_then(|s| lookup(&v, s));
            match found {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) if !other.is_null() => Err(bad(format!(
                    "Event {i}: the field {} mapped to '{name}' must be a string.",
                    quoted(field.source.as_deref().unwrap_or_default())
                ))),
                _ => Ok(field.default.clone()),
            }
        };
        let id = match get(&mapping.id, "id")? {
            Some(id) if !id.is_empty() => id,
            _ => new_id(),
        };
        let require = |v: Option<String>, name: &str| {
            v.ok_or_else(|| bad(format!("Event {i}: no value for '{name}': the mapped field is missing and the mapping has no defaultValue.")))
        };
        let ty = require(get(&mapping.event_type, "eventType")?, "eventType")?;
        let subject = require(get(&mapping.subject, "subject")?, "subject")?;
        let dv = get(&mapping.data_version, "dataVersion")?.unwrap_or_default();
        let time = get(&mapping.event_time, "eventTime")?
            .filter(|t| is_rfc3339(t))
            .unwrap_or_else(|| now.clone());
        let dt = match target {
            PostedTo::Domain { .. } => Some(domain_topic_name(i, get(&mapping.topic, "topic")?)?),
            PostedTo::Topic { .. } => None,
        };
        let start = buf.len();
        let _ = write!(
            buf,
            "{{\"id\":{},\"topic\":{},\"subject\":{},\"data\":{json},\"eventType\":{},\"dataVersion\":{},\"metadataVersion\":\"1\",\"eventTime\":{}}}",
            Value::String(id.clone()),
            Value::String(topic_id(target, dt.as_deref())),
            Value::String(subject.clone()),
            Value::String(ty.clone()),
            Value::String(dv.clone()),
            Value::String(time),
        );
        let off = json.as_ptr() as usize - base;
        items.push(Normalised {
            range: (start, buf.len()),
            id,
            ty,
            subject,
            data_version: dv,
            domain_topic: dt,
            custom: Some((off, off + json.len())),
        });
    }
    Ok(finish(buf, Some(&body), items, |n| {
        topic_id(target, n.domain_topic.as_deref())
    }))
}

/// Parses a CloudEvents publish body for a basic topic; on a domain, each event's `source`
/// names its domain topic.
pub fn parse_cloudevents(
    body: Bytes,
    content_type: Option<&str>,
    limits: &ParseLimits,
    target: PostedTo<'_>,
) -> Result<Vec<TopicEvent>, ParseError> {
    let events = cloudevents::parse_batch(body, content_type, limits)?;
    events
        .into_iter()
        .enumerate()
        .map(|(i, ev)| {
            let domain_topic = match target {
                PostedTo::Domain { .. } => Some(
                    domain_topic_name(i, Some(ev.source.to_string()))?
                        .to_ascii_lowercase()
                        .into(),
                ),
                PostedTo::Topic { .. } => None,
            };
            let data_version = ev
                .attr("dataversion")
                .map(ByteString::from)
                .unwrap_or_default();
            Ok(TopicEvent {
                ev,
                data_version,
                custom: None,
                domain_topic,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
