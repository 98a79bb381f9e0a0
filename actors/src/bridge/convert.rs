//! One MQTT message as the CloudEvent routed into the namespace's route topic
//! (docs/eventgrid.md §7.6): [`to_cloudevent`].
//!
//! Owns the mapping: `specversion` 1.0, the given `id`, `time` (the broker's receive time, RFC
//! 3339 UTC with milliseconds), `type` `MQTT.EventPublished`, `source` the namespace name,
//! `subject` the topic name, then the static and the dynamic enrichments as top-level extension
//! attributes, then `datacontenttype` and the payload. The payload goes into `data` as JSON when
//! the payload format indicator is 1 or the content type is `application/json` (any parameters,
//! so `application/json; charset=utf-8` too) and the payload is UTF-8 — as a JSON string when it
//! is not valid JSON; otherwise into `data_base64`. `datacontenttype` is the MQTT content type;
//! without one evgrid writes `application/octet-stream` beside `data_base64` (as §7.6's sample)
//! and nothing beside `data` (CloudEvents then means JSON).
//!
//! A message that already is a CloudEvent keeps its own attributes, and gets the enrichments:
//! structured mode (content type `application/cloudevents+json`, payload one valid CloudEvent
//! object) is copied member by member, each value byte for byte; binary mode (user properties
//! `specversion`, `id`, `source`, `type`, …) goes through [`crate::model::binding`], the mapping
//! the HTTP edge's binary mode uses. A payload or user properties that break a CloudEvents rule
//! make an ordinary message, converted as above. An enrichment replaces a publisher's extension
//! of the same name: enrichments are the operator's, and a publisher must not forge them.
//!
//! Pure: no clock, no randomness (the time and the id come in), no actor; one buffer per event.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::bridge::Client;
use crate::grid::resource::topic_spaces::{Dynamic, Enrichments};
use crate::model::binding::{self, EventJson, as_json};
use crate::model::event::CloudEvent;
use crate::model::json::{CowStr, MAX_EVENT_DEPTH, json_depth};
use crate::model::structured::{is_extension_name, parse_object};
use crate::mqtt::message::{AppMessage, Properties};

/// The `type` of every converted MQTT message.
pub const EVENT_TYPE: &str = "MQTT.EventPublished";
/// `datacontenttype` beside `data_base64` when the message has no content type.
pub const DEFAULT_BINARY_TYPE: &str = "application/octet-stream";
const STRUCTURED_TYPE: &str = "application/cloudevents+json";

/// The CloudEvent for `msg`, published by `client` into `namespace` and received at
/// `received_ms`; `id` is the event's id unless the message already is a CloudEvent.
pub fn to_cloudevent(
    msg: &AppMessage,
    client: &Client,
    namespace: &str,
    enrich: &Enrichments,
    received_ms: u64,
    id: &str,
) -> CloudEvent {
    let props = msg.props.as_deref();
    let ct = props.and_then(|p| p.content_type.as_deref());
    if ct.is_some_and(|c| media(c).eq_ignore_ascii_case(STRUCTURED_TYPE))
        && let Some(ev) = structured(msg, client, enrich)
    {
        return ev;
    }
    if let Some(p) = props
        && p.user_properties.iter().any(|(k, _)| k == "specversion")
        && let Some(ev) = binary_mode(msg, p, client, enrich)
    {
        return ev;
    }
    ordinary(msg, client, namespace, enrich, received_ms, id)
}

fn media(ct: &str) -> &str {
    ct.split(';').next().unwrap_or_default().trim()
}

fn ordinary(
    msg: &AppMessage,
    client: &Client,
    namespace: &str,
    enrich: &Enrichments,
    received_ms: u64,
    id: &str,
) -> CloudEvent {
    let props = msg.props.as_deref();
    let ct = props.and_then(|p| p.content_type.as_deref());
    // One allocation in the common case: the fixed members, base64's 4/3, ~48 per enrichment.
    let mut ev = EventJson::new(
        192 + id.len()
            + namespace.len()
            + msg.topic.len()
            + msg.payload.len() * 4 / 3
            + 48 * (enrich.statics.len() + enrich.dynamics.len()),
    );
    ev.string("specversion", "1.0");
    ev.string("id", id);
    ev.time_ms("time", received_ms);
    ev.string("type", EVENT_TYPE);
    ev.string("source", namespace);
    ev.string("subject", &msg.topic);
    enrichments(&mut ev, msg, client, enrich);
    let pfi = props.is_some_and(|p| p.payload_utf8);
    let json_ct = ct.is_some_and(|c| media(c).eq_ignore_ascii_case("application/json"));
    let text = (pfi || json_ct)
        .then(|| std::str::from_utf8(&msg.payload).ok())
        .flatten();
    match text {
        Some(text) => {
            if let Some(ct) = ct {
                ev.string("datacontenttype", ct);
            }
            match as_json(&msg.payload) {
                Some(json) => ev.raw("data", json, None),
                None => ev.string("data", text),
            }
        }
        None => {
            ev.string("datacontenttype", ct.unwrap_or(DEFAULT_BINARY_TYPE));
            ev.base64("data_base64", &msg.payload);
        }
    }
    ev.finish()
}

/// Static enrichments, then dynamic ones (docs/eventgrid.md §7.6): a missing value is `""`,
/// repeated user properties are joined with commas, correlation data is base64 and the payload
/// format indicator an integer.
fn enrichments(ev: &mut EventJson, msg: &AppMessage, client: &Client, enrich: &Enrichments) {
    for (k, v) in &enrich.statics {
        ev.string(k, v);
    }
    let props = msg.props.as_deref();
    for (k, d) in &enrich.dynamics {
        match d {
            Dynamic::AuthName => ev.string(k, &client.auth_name),
            // Clients have no attributes until the client registry exists: always missing.
            Dynamic::Attribute(_) => ev.string(k, ""),
            Dynamic::UserProperty(name) => ev.joined(
                k,
                props
                    .into_iter()
                    .flat_map(|p| p.user_properties.iter())
                    .filter(|(n, _)| n.as_str() == name)
                    .map(|(_, v)| v.as_str()),
            ),
            Dynamic::TopicName => ev.string(k, &msg.topic),
            Dynamic::ResponseTopic => ev.string(
                k,
                props
                    .and_then(|p| p.response_topic.as_deref())
                    .unwrap_or(""),
            ),
            Dynamic::CorrelationData => match props.and_then(|p| p.correlation_data.as_ref()) {
                Some(b) => ev.base64(k, b),
                None => ev.string(k, ""),
            },
            Dynamic::Pfi => ev.number(k, u64::from(props.is_some_and(|p| p.payload_utf8))),
        }
    }
}

fn is_enrichment(enrich: &Enrichments, name: &str) -> bool {
    enrich.statics.iter().any(|(k, _)| k == name) || enrich.dynamics.iter().any(|(k, _)| k == name)
}

/// A structured-mode CloudEvent payload with the enrichments added, or `None` when the payload
/// is not one valid CloudEvent object an event may hold.
fn structured(msg: &AppMessage, client: &Client, enrich: &Enrichments) -> Option<CloudEvent> {
    let text = std::str::from_utf8(&msg.payload).ok()?;
    let json = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if !json.starts_with('{') || json_depth(json.as_bytes()) > MAX_EVENT_DEPTH {
        return None;
    }
    parse_object(&msg.payload, json).ok()?;
    let mut ev = EventJson::new(json.len() + 64 * (enrich.statics.len() + enrich.dynamics.len()));
    for (name, raw) in members(json)? {
        if is_enrichment(enrich, &name) {
            continue;
        }
        let value = raw
            .starts_with('"')
            .then(|| serde_json::from_str::<CowStr<'_>>(raw).ok().map(|s| s.0))
            .flatten();
        ev.raw(&name, raw, value);
    }
    enrichments(&mut ev, msg, client, enrich);
    Some(ev.finish())
}

/// The top-level members of a JSON object: name and raw value, in order.
fn members(json: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Cow<'de, str>, &'de str)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(CowStr(k)) = map.next_key::<CowStr<'de>>()? {
                let raw: &'de RawValue = map.next_value()?;
                out.push((k, raw.get()));
            }
            Ok(out)
        }
    }

    serde_json::Deserializer::from_str(json)
        .deserialize_map(V)
        .ok()
}

/// A binary-mode CloudEvent (MQTT CloudEvents binding: attributes in user properties) with the
/// enrichments added, or `None` when the user properties do not make a valid CloudEvent. User
/// properties that cannot be attribute names are not attributes, and are left out.
fn binary_mode(
    msg: &AppMessage,
    p: &Properties,
    client: &Client,
    enrich: &Enrichments,
) -> Option<CloudEvent> {
    let attrs = p
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| {
            (is_extension_name(k) || *k == "data_base64") && !is_enrichment(enrich, k)
        });
    let mut ev = binding::binary(attrs, p.content_type.as_deref(), &msg.payload, "").ok()?;
    enrichments(&mut ev, msg, client, enrich);
    Some(ev.finish())
}

#[cfg(test)]
mod tests;
