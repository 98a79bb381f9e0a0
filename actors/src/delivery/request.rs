//! What a webhook request looks like, as pure functions of the subscription's settings and its
//! events: the delivery schema, the batches (up to `maxEventsPerBatch` within
//! `preferredBatchSizeInKilobytes`), the `aeg-*` headers and the delivery attribute mappings
//! (static values, or values looked up in the event).
//!
//! Must never perform I/O, read a clock or start an actor: the push actor and the resource
//! validation call it.

use serde_json::Value;

/// The schema a subscription delivers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverySchema {
    EventGrid,
    CloudEvents,
    /// Custom-schema topics: the object as published.
    CustomInput,
}

impl DeliverySchema {
    pub fn name(self) -> &'static str {
        match self {
            DeliverySchema::EventGrid => "EventGridSchema",
            DeliverySchema::CloudEvents => "CloudEventSchemaV1_0",
            DeliverySchema::CustomInput => "CustomInputSchema",
        }
    }
}

/// A delivery attribute mapping: one extra request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Static(String),
    /// A path into the event (`subject`, `data.key1`, …).
    Dynamic(String),
}

/// What the HTTP client accepts as a header value (visible ASCII, tab, obs-text), at most 4 KiB.
pub fn valid_header_value(v: &str) -> bool {
    v.len() <= 4096
        && v.bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80)
}

/// The value at a dotted path (`subject`, `data.system`), case-insensitive, as header text: only
/// strings, numbers and booleans give one.
pub fn lookup_scalar(doc: &Value, path: &str) -> Option<String> {
    let mut v = doc;
    for part in path.split('.') {
        let m = v.as_object()?;
        v = m.get(part).or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(part))
                .map(|(_, v)| v)
        })?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_by_path() {
        let d = json!({"Subject":"s1","data":{"system":"eu","n":3,"b":true,"o":{}}});
        assert_eq!(lookup_scalar(&d, "subject").as_deref(), Some("s1"));
        assert_eq!(lookup_scalar(&d, "data.system").as_deref(), Some("eu"));
        assert_eq!(lookup_scalar(&d, "data.n").as_deref(), Some("3"));
        assert_eq!(lookup_scalar(&d, "data.b").as_deref(), Some("true"));
        assert_eq!(lookup_scalar(&d, "data.o"), None);
        assert_eq!(lookup_scalar(&d, "data.missing"), None);
    }
}
