//! Conversions between the basic tier's event schemas (spec §2.5) and lookups into an event.
//!
//! Owns the Event Grid → CloudEvents 1.0 mapping (`id→id`, `topic→source`, `subject→subject`,
//! `eventType→type`, `eventTime→time`, `data→data`, `dataVersion` kept as the `dataversion`
//! extension). Runs only for subscriptions that ask for another schema than the topic's, once
//! per event however many such subscriptions match. Must never fail on an event that passed
//! publish validation.

use serde_json::{Map, Value};

/// The CloudEvents form of a normalised Event Grid event.
pub fn eventgrid_to_cloudevent(eg: &[u8]) -> Vec<u8> {
    let v: Map<String, Value> = serde_json::from_slice(eg).unwrap_or_default();
    let mut out = Map::new();
    out.insert("specversion".into(), Value::String("1.0".into()));
    for (from, to) in [
        ("id", "id"),
        ("topic", "source"),
        ("subject", "subject"),
        ("eventType", "type"),
        ("eventTime", "time"),
    ] {
        if let Some(x) = v.get(from) {
            out.insert(to.into(), x.clone());
        }
    }
    if let Some(d) = v.get("data") {
        out.insert(
            "datacontenttype".into(),
            Value::String("application/json".into()),
        );
        out.insert("data".into(), d.clone());
    }
    if let Some(dv) = v
        .get("dataVersion")
        .filter(|d| d.as_str().is_some_and(|s| !s.is_empty()))
    {
        out.insert("dataversion".into(), dv.clone());
    }
    serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
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
    fn eventgrid_becomes_cloudevents() {
        let eg = json!({"id":"e1","topic":"/t/x","subject":"s","eventType":"T","eventTime":"2024-05-01T10:00:00Z","data":{"a":1},"dataVersion":"1.0","metadataVersion":"1"});
        let ce: Value =
            serde_json::from_slice(&eventgrid_to_cloudevent(eg.to_string().as_bytes())).unwrap();
        assert_eq!(
            ce,
            json!({"specversion":"1.0","id":"e1","source":"/t/x","subject":"s","type":"T","time":"2024-05-01T10:00:00Z","datacontenttype":"application/json","data":{"a":1},"dataversion":"1.0"})
        );
    }

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
