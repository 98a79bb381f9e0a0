//! Namespace resources as Azure's ARM documents describe them: validation of the `properties` a
//! PUT carries, defaults, and the normalised `properties` a GET returns.
//!
//! Owns the rules of docs/eventgrid.md §6.3 (retention 1–7 days, lock 60–300 s, max delivery count
//! 1–10, time-to-live at least `PT1M` and at most the topic's retention, filters) and the name
//! rules of §1. Pure: never touches the store or an actor. Every error is a sentence that names the
//! property and what is allowed.

use serde_json::{Map, Value, json};

use super::basic::{PushCfg, webhook};
use super::{Limits, expiration, get_str, get_u64, props_obj};
use crate::delivery::queue::QueueSettings;
use crate::delivery::request::DeliverySchema;
use crate::delivery::retry::Profile;
use crate::grid::filter::Filter;
use crate::model::time::{format_duration, format_rfc3339_ms, parse_duration_secs};

/// A namespace topic's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicCfg {
    pub retention_days: u32,
}

pub fn topic(props: &Value) -> Result<(TopicCfg, Value), String> {
    let m = props_obj(props)?;
    if let Some(p) = get_str(m, "publisherType", "properties.")?
        && p != "Custom"
    {
        return Err(format!(
            "properties.publisherType '{p}' is not supported; namespace topics take 'Custom'"
        ));
    }
    if let Some(s) = get_str(m, "inputSchema", "properties.")?
        && s != "CloudEventSchemaV1_0"
    {
        return Err(format!(
            "properties.inputSchema '{s}' is not supported; namespace topics take 'CloudEventSchemaV1_0'"
        ));
    }
    let days = get_u64(m, "eventRetentionInDays", "properties.")?.unwrap_or(1);
    if !(1..=7).contains(&days) {
        return Err(format!(
            "properties.eventRetentionInDays must be between 1 and 7, got {days}"
        ));
    }
    let cfg = TopicCfg {
        retention_days: days as u32,
    };
    let out = json!({
        "provisioningState": "Succeeded",
        "publisherType": "Custom",
        "inputSchema": "CloudEventSchemaV1_0",
        "eventRetentionInDays": days,
    });
    Ok((cfg, out))
}

/// A queue (pull) subscription's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SubCfg {
    pub queue: QueueSettings,
    pub filter: Filter,
    /// The subscription stops and is deleted at this time (ms since the epoch).
    pub expires_ms: Option<u64>,
    /// Push delivery mode: the webhook and its retry settings (the queue fields are unused).
    pub push: Option<PushCfg>,
}

/// Validates a namespace event subscription's `properties`. `now_ms` checks `expirationTimeUtc`.
pub fn subscription(
    props: &Value,
    topic: TopicCfg,
    limits: Limits,
    now_ms: u64,
) -> Result<(SubCfg, Value), String> {
    let m = props_obj(props)?;
    let empty = Map::new();
    let dc = match m.get("deliveryConfiguration") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("properties.deliveryConfiguration must be an object".into()),
    };
    let mode = get_str(dc, "deliveryMode", "properties.deliveryConfiguration.")?.unwrap_or("Queue");
    match mode {
        "Queue" => {}
        "Push" => return push_subscription(m, dc, topic, now_ms),
        other => {
            return Err(format!(
                "properties.deliveryConfiguration.deliveryMode must be 'Queue' or 'Push', got '{other}'"
            ));
        }
    }
    let q = match dc.get("queue") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("properties.deliveryConfiguration.queue must be an object".into()),
    };
    let qp = "properties.deliveryConfiguration.queue.";
    let lock = get_u64(q, "receiveLockDurationInSeconds", qp)?.unwrap_or(60);
    let min_lock = limits.min_lock_secs as u64;
    if lock < min_lock || lock > 300 {
        return Err(format!(
            "{qp}receiveLockDurationInSeconds must be between {min_lock} and 300, got {lock}"
        ));
    }
    let (d, out) = delivery(
        m,
        q,
        qp,
        topic,
        now_ms,
        "Queue",
        json!({"receiveLockDurationInSeconds": lock}),
    )?;
    let cfg = SubCfg {
        queue: QueueSettings {
            lock_secs: lock as u32,
            max_delivery_count: d.max_dc as u32,
            ttl_secs: d.ttl,
            dead_letter: d.dead_letter,
        },
        filter: d.filter,
        expires_ms: d.expires_ms,
        push: None,
    };
    Ok((cfg, out))
}

/// What Queue and Push subscriptions share.
struct Delivery {
    max_dc: u64,
    ttl: u64,
    dead_letter: bool,
    filter: Filter,
    expires_ms: Option<u64>,
}

/// Validates the settings both delivery modes share (`maxDeliveryCount`, `eventTimeToLive`,
/// dead-lettering in the mode's object `q`; schema, filters, expiration in `m`) and builds the
/// normalised properties around `mode_out`, the mode's own output fields.
fn delivery(
    m: &Map<String, Value>,
    q: &Map<String, Value>,
    qp: &str,
    topic: TopicCfg,
    now_ms: u64,
    mode: &str,
    mut mode_out: Value,
) -> Result<(Delivery, Value), String> {
    let (max_dc, ttl) = delivery_limits(q, qp, topic)?;
    let dl = match q.get("deadLetterDestinationWithResourceIdentity") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            return Err(format!(
                "{qp}deadLetterDestinationWithResourceIdentity must be an object"
            ));
        }
    };
    if let Some(s) = get_str(m, "eventDeliverySchema", "properties.")?
        && s != "CloudEventSchemaV1_0"
    {
        return Err(format!(
            "properties.eventDeliverySchema '{s}' is not supported; namespace subscriptions deliver 'CloudEventSchemaV1_0'"
        ));
    }
    let filter = Filter::compile(m.get("filtersConfiguration"))?;
    let expires_ms = expiration(get_str(m, "expirationTimeUtc", "properties.")?, now_ms)?;
    mode_out["maxDeliveryCount"] = json!(max_dc);
    mode_out["eventTimeToLive"] = json!(format_duration(ttl));
    if let Some(d) = &dl {
        mode_out["deadLetterDestinationWithResourceIdentity"] = d.clone();
    }
    let filters = m
        .get("filtersConfiguration")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| json!({"includedEventTypes": null, "filters": []}));
    let mut out = json!({
        "provisioningState": "Succeeded",
        "deliveryConfiguration": {"deliveryMode": mode, mode.to_ascii_lowercase(): mode_out},
        "eventDeliverySchema": "CloudEventSchemaV1_0",
        "filtersConfiguration": filters,
    });
    if let Some(t) = expires_ms {
        out["expirationTimeUtc"] = json!(format_rfc3339_ms(t));
    }
    let d = Delivery {
        max_dc,
        ttl,
        dead_letter: dl.is_some(),
        filter,
        expires_ms,
    };
    Ok((d, out))
}

/// `maxDeliveryCount` (1–10) and `eventTimeToLive` (PT1M to the topic's retention) of a
/// `queue` or `push` object.
fn delivery_limits(
    q: &Map<String, Value>,
    qp: &str,
    topic: TopicCfg,
) -> Result<(u64, u64), String> {
    let max_dc = get_u64(q, "maxDeliveryCount", qp)?.unwrap_or(10);
    if !(1..=10).contains(&max_dc) {
        return Err(format!(
            "{qp}maxDeliveryCount must be between 1 and 10, got {max_dc}"
        ));
    }
    let retention_secs = topic.retention_days as u64 * 86_400;
    let ttl = match get_str(q, "eventTimeToLive", qp)? {
        None => retention_secs,
        Some(s) => {
            let secs = parse_duration_secs(s).ok_or_else(|| {
                format!(
                    "{qp}eventTimeToLive '{s}' is not an ISO 8601 duration such as 'P1D' or 'PT10M'"
                )
            })?;
            if secs < 60 || secs % 60 != 0 {
                return Err(format!(
                    "{qp}eventTimeToLive must be whole minutes and at least PT1M, got '{s}'"
                ));
            }
            if secs > retention_secs {
                return Err(format!(
                    "{qp}eventTimeToLive '{s}' is longer than the topic's retention of {} day(s)",
                    topic.retention_days
                ));
            }
            secs
        }
    };
    Ok((max_dc, ttl))
}

/// A namespace subscription in Push mode (docs/eventgrid.md §6.3, §6.4): a WebHook destination,
/// CloudEvents only, the namespace retry schedule.
fn push_subscription(
    m: &Map<String, Value>,
    dc: &Map<String, Value>,
    topic: TopicCfg,
    now_ms: u64,
) -> Result<(SubCfg, Value), String> {
    let qp = "properties.deliveryConfiguration.push.";
    let p = match dc.get("push") {
        Some(Value::Object(o)) => o,
        _ => {
            return Err(
                "properties.deliveryConfiguration.push is required for deliveryMode 'Push' (an object with a destination)"
                    .into(),
            );
        }
    };
    let dest = match p.get("destination") {
        Some(Value::Object(o)) => o,
        _ => {
            return Err(format!(
                "{qp}destination is required: {{\"endpointType\":\"WebHook\",\"properties\":{{\"endpointUrl\":\"http://...\"}}}}"
            ));
        }
    };
    let hook = webhook(dest, &format!("{qp}destination."))?;
    let (d, out) = delivery(
        m,
        p,
        qp,
        topic,
        now_ms,
        "Push",
        json!({"destination": hook.out.clone()}),
    )?;
    let mut pc = hook.cfg(
        DeliverySchema::CloudEvents,
        d.max_dc as u32,
        d.ttl,
        d.dead_letter,
        d.filter.clone(),
        d.expires_ms,
    );
    pc.delivery.profile = Profile::Namespace;
    let cfg = SubCfg {
        queue: QueueSettings {
            lock_secs: 60,
            max_delivery_count: d.max_dc as u32,
            ttl_secs: d.ttl,
            dead_letter: d.dead_letter,
        },
        filter: d.filter,
        expires_ms: d.expires_ms,
        push: Some(pc),
    };
    Ok((cfg, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::resource::check_name;

    const T: TopicCfg = TopicCfg { retention_days: 1 };
    /// Event Grid's shortest receive lock, evgrid's default `events.min_lock_duration_secs`.
    const EVENT_GRID_LIMITS: Limits = Limits { min_lock_secs: 60 };

    fn sub(v: Value) -> Result<SubCfg, String> {
        subscription(&v, T, EVENT_GRID_LIMITS, 1_000).map(|x| x.0)
    }

    #[test]
    fn defaults_and_normalised_output() {
        let (cfg, out) = subscription(&Value::Null, T, EVENT_GRID_LIMITS, 0).unwrap();
        assert_eq!(
            (
                cfg.queue.lock_secs,
                cfg.queue.max_delivery_count,
                cfg.queue.ttl_secs,
                cfg.queue.dead_letter
            ),
            (60, 10, 86_400, false)
        );
        assert_eq!(
            out["deliveryConfiguration"]["queue"]["eventTimeToLive"],
            "P1D"
        );
        assert_eq!(out["deliveryConfiguration"]["deliveryMode"], "Queue");
        let (t, out) = topic(&json!({"eventRetentionInDays": 7})).unwrap();
        assert_eq!(t.retention_days, 7);
        assert_eq!(out["inputSchema"], "CloudEventSchemaV1_0");
    }

    #[test]
    fn bounds_are_enforced_with_reasons() {
        let q = |queue: Value| json!({"deliveryConfiguration": {"deliveryMode": "Queue", "queue": queue}});
        for (v, want) in [
            (
                q(json!({"receiveLockDurationInSeconds": 30})),
                "between 60 and 300",
            ),
            (
                q(json!({"receiveLockDurationInSeconds": 301})),
                "between 60 and 300",
            ),
            (q(json!({"maxDeliveryCount": 0})), "between 1 and 10"),
            (q(json!({"maxDeliveryCount": 11})), "between 1 and 10"),
            (q(json!({"eventTimeToLive": "PT30S"})), "at least PT1M"),
            (q(json!({"eventTimeToLive": "P2D"})), "retention"),
            (q(json!({"eventTimeToLive": "soon"})), "ISO 8601"),
            (q(json!({"maxDeliveryCount": "ten"})), "whole number"),
            (
                json!({"deliveryConfiguration": {"deliveryMode": "Push"}}),
                "push is required",
            ),
            (
                json!({"deliveryConfiguration": {"deliveryMode": "Carrier"}}),
                "'Queue' or 'Push'",
            ),
            (
                json!({"expirationTimeUtc": "1970-01-01T00:00:00Z"}),
                "in the past",
            ),
            (
                json!({"eventDeliverySchema": "EventGridSchema"}),
                "not supported",
            ),
            (json!([1]), "JSON object"),
        ] {
            let e = sub(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        let loose = Limits { min_lock_secs: 1 };
        let v = q(json!({"receiveLockDurationInSeconds": 2}));
        assert_eq!(subscription(&v, T, loose, 0).unwrap().0.queue.lock_secs, 2);
        assert!(topic(&json!({"eventRetentionInDays": 8})).is_err());
        assert!(topic(&json!({"inputSchema": "EventGridSchema"})).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("namespace", "ns1", 50).is_ok());
        assert!(check_name("namespace", "a", 50).is_err());
        assert!(check_name("namespace", "bad_name", 50).is_err());
        assert!(check_name("namespace", &"x".repeat(51), 50).is_err());
    }
}
