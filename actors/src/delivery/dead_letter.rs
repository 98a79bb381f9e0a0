//! Dead-letter records and files: one record format per tier, one file writer.
//!
//! The basic tier's record is the event with Event Grid's dead-letter fields added at its top
//! level (camelCase, lower case for CloudEvents); the namespace record (docs/eventgrid.md §6.5),
//! written for pull and push subscriptions alike, wraps the event as `event` beside
//! `deadLetterProperties`. Either way the event is kept exactly as stored, never re-parsed into a
//! value, so no depth limit can lose it. Records go into the store (by the subscription actors);
//! with `push.dead_letter_dir` set, push subscriptions also write each as a file.
//!
//! The record formatters are pure; only [`write_file`] performs I/O, off the arbiter. Must never
//! decide whether an event is dead-lettered: the subscription actors do.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::request::DeliverySchema;
use crate::model::clock::now_ms;
use crate::model::time::format_rfc3339_ms;

/// The dead-letter fields of a basic-tier record.
#[derive(Debug, Clone, Copy)]
pub struct BasicDeadLetter<'a> {
    /// `deadLetterReason`.
    pub reason: &'a str,
    pub attempts: u32,
    /// `lastDeliveryOutcome` (`null` without an attempt since start-up).
    pub outcome: Option<&'a str>,
    pub status: Option<u16>,
    pub publish_ms: u64,
    /// `lastDeliveryAttemptTime`.
    pub attempt_ms: u64,
    /// `lastDeliveryError`, evgrid's own field, only when the last attempt failed for a reason an
    /// operator must act on (a refused certificate).
    pub error: Option<&'a str>,
}

/// The basic-tier record: the event's members as stored, in order, minus those the record sets,
/// then the dead-letter fields (lower-cased for CloudEvents). An event that is not a JSON object
/// (a damaged entry) is kept as text under `unreadableEvent`.
pub fn basic_record(body: &[u8], schema: DeliverySchema, d: &BasicDeadLetter<'_>) -> Vec<u8> {
    let mut fields = vec![
        ("deadLetterReason", json!(d.reason)),
        ("deliveryAttempts", json!(d.attempts)),
        ("lastDeliveryOutcome", json!(d.outcome)),
        ("lastHttpStatusCode", json!(d.status)),
        ("publishTime", json!(format_rfc3339_ms(d.publish_ms))),
        (
            "lastDeliveryAttemptTime",
            json!(format_rfc3339_ms(d.attempt_ms)),
        ),
    ];
    if let Some(e) = d.error {
        fields.push(("lastDeliveryError", json!(e)));
    }
    let ce = schema == DeliverySchema::CloudEvents;
    let name = |k: &str| {
        if ce {
            k.to_ascii_lowercase()
        } else {
            k.to_string()
        }
    };
    // The event's members as stored, in order, minus those the record sets.
    let members = match serde_json::from_slice::<RawMembers<'_>>(body) {
        Ok(m) => m.0,
        Err(e) => {
            // Stored events were validated at publish: this is a damaged entry. Keep its
            // bytes as text rather than write a record without the event.
            tracing::warn!(error = %e, "a dead-lettered event is not a JSON object; kept as text");
            let mut m = serde_json::Map::new();
            m.insert(
                "unreadableEvent".into(),
                Value::String(String::from_utf8_lossy(body).into_owned()),
            );
            for (k, v) in fields {
                m.insert(name(k), v);
            }
            return Value::Object(m).to_string().into_bytes();
        }
    };
    let mut rec = Vec::with_capacity(body.len() + 320);
    rec.push(b'{');
    for (k, v) in &members {
        if fields.iter().any(|(f, _)| name(f) == **k) {
            continue;
        }
        if rec.len() > 1 {
            rec.push(b',');
        }
        rec.extend_from_slice(Value::String(k.to_string()).to_string().as_bytes());
        rec.push(b':');
        rec.extend_from_slice(v.get().as_bytes());
    }
    for (k, v) in fields {
        if rec.len() > 1 {
            rec.push(b',');
        }
        rec.extend_from_slice(Value::String(name(k)).to_string().as_bytes());
        rec.push(b':');
        rec.extend_from_slice(v.to_string().as_bytes());
    }
    rec.push(b'}');
    rec
}

/// How a namespace subscription delivered the event.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Queue mode: there is no HTTP status to report.
    Pull,
    /// Push mode: the last attempt's HTTP status (`lasthttpstatuscode`, `null` without one),
    /// and why it failed when an operator must act on it (`lastdeliveryerror`, evgrid's own
    /// field, only when set: a refused certificate).
    Push {
        status: Option<u16>,
        error: Option<&'a str>,
    },
}

/// The dead-letter properties of a namespace record.
#[derive(Debug, Clone, Copy)]
pub struct NamespaceDeadLetter<'a> {
    pub reason: &'a str,
    pub attempts: u32,
    /// `deliveryresult`.
    pub result: Option<&'a str>,
    pub via: Via<'a>,
    pub publish_ms: u64,
    /// `deliveryattemptutc`.
    pub attempt_ms: u64,
    /// `deadlettersequence`.
    pub sequence: u64,
}

/// The namespace record: `{"event": <the event as stored>, "deadLetterProperties": {...}}`.
pub fn namespace_record(body: &[u8], d: &NamespaceDeadLetter<'_>) -> Vec<u8> {
    let mut props = json!({
        "deadletterreason": d.reason,
        "deliveryattempts": d.attempts,
        "deliveryresult": d.result,
        "publishutc": format_rfc3339_ms(d.publish_ms),
        "deliveryattemptutc": format_rfc3339_ms(d.attempt_ms),
        "deadlettersequence": d.sequence,
    });
    if let Via::Push { status, error } = d.via {
        props["lasthttpstatuscode"] = json!(status);
        if let Some(e) = error {
            props["lastdeliveryerror"] = json!(e);
        }
    }
    let mut rec = Vec::with_capacity(body.len() + 320);
    rec.extend_from_slice(b"{\"event\":");
    rec.extend_from_slice(body);
    rec.extend_from_slice(b",\"deadLetterProperties\":");
    rec.extend_from_slice(props.to_string().as_bytes());
    rec.push(b'}');
    rec
}

/// A JSON object's members as raw JSON, in order (values are not built, so any depth reads).
struct RawMembers<'a>(Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    out.push((k, map.next_value()?));
                }
                Ok(RawMembers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Writes `<dir>/<kind>/<SOURCE>/<SUBSCRIPTION>/<yyyy>/<M>/<d>/<H>/<publish ms>-<sequence>.json`
/// (`source` is `<kind>/<SOURCE>`, see [`super::push::Names`]), holding a JSON array with the
/// record (under the kind, the layout Azure uses in a storage container). Best effort, off the
/// arbiter.
pub fn write_file(
    dir: std::path::PathBuf,
    source: &str,
    subscription: &str,
    publish_ms: u64,
    dl_seq: u64,
    record: &[u8],
) {
    let t = format_rfc3339_ms(now_ms());
    let num = |s: &str| s.trim_start_matches('0').to_string();
    let (y, mo, d, h) = (&t[0..4], num(&t[5..7]), num(&t[8..10]), num(&t[11..13]));
    let h = if h.is_empty() { "0".to_string() } else { h };
    let path = dir
        .join(source)
        .join(subscription.to_ascii_uppercase())
        .join(y)
        .join(mo)
        .join(d)
        .join(h);
    let file = path.join(format!("{publish_ms}-{dl_seq}.json"));
    let mut body = Vec::with_capacity(record.len() + 2);
    body.push(b'[');
    body.extend_from_slice(record);
    body.push(b']');
    actix::spawn(async move {
        let r = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&path)?;
            std::fs::write(&file, body).map(|_| file)
        })
        .await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not write a dead-letter file"),
            Err(e) => tracing::warn!(error = %e, "dead-letter file task failed"),
        }
    });
}

#[cfg(test)]
mod tests;
