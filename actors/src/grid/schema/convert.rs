//! Conversions between the basic tier's event schemas (docs/eventgrid.md §2.5) and lookups into
//! an event.
//!
//! Owns the Event Grid → CloudEvents 1.0 mapping (`id→id`, `topic→source`, `subject→subject`,
//! `eventType→type`, `eventTime→time`, `data→data`, `dataVersion` kept as the `dataversion`
//! extension). Runs only for subscriptions that ask for another schema than the topic's, once
//! per event however many such subscriptions match. Copies the members' JSON as stored (never
//! re-encodes `data`, so no depth limit applies); must never fall back to a default on failure:
//! a conversion that fails refuses the publish.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The members of a normalised Event Grid event the CloudEvents form takes, as the raw JSON
/// stored (so `data` is copied byte for byte, whatever its depth).
#[derive(Deserialize)]
struct EgFields<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    subject: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventType")]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, rename = "eventTime")]
    event_time: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow, rename = "dataVersion")]
    data_version: Option<&'a RawValue>,
}

/// The CloudEvents form of a normalised Event Grid event; an error (the reason) if `eg` is not a
/// JSON object, which the publish edge never lets through.
pub fn eventgrid_to_cloudevent(eg: &[u8]) -> Result<Vec<u8>, String> {
    let v: EgFields<'_> = serde_json::from_slice(eg).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(eg.len() + 64);
    out.extend_from_slice(b"{\"specversion\":\"1.0\"");
    let mut put = |name: &str, raw: Option<&RawValue>| {
        if let Some(raw) = raw {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(raw.get().as_bytes());
        }
    };
    put("id", v.id);
    put("source", v.topic);
    put("subject", v.subject);
    put("type", v.event_type);
    put("time", v.event_time);
    if v.data.is_some() {
        put("datacontenttype", Some(APPLICATION_JSON.as_ref()));
        put("data", v.data);
    }
    // Only a non-empty string: "" and null mean no data version.
    put(
        "dataversion",
        v.data_version
            .filter(|d| d.get().starts_with('"') && d.get() != "\"\""),
    );
    out.push(b'}');
    Ok(out)
}

/// `"application/json"` as a raw JSON value.
static APPLICATION_JSON: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
    RawValue::from_string("\"application/json\"".into()).expect("a JSON string")
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn eventgrid_becomes_cloudevents() {
        let eg = json!({"id":"e1","topic":"/t/x","subject":"s","eventType":"T","eventTime":"2024-05-01T10:00:00Z","data":{"a":1},"dataVersion":"1.0","metadataVersion":"1"});
        let ce: Value =
            serde_json::from_slice(&eventgrid_to_cloudevent(eg.to_string().as_bytes()).unwrap())
                .unwrap();
        assert_eq!(
            ce,
            json!({"specversion":"1.0","id":"e1","source":"/t/x","subject":"s","type":"T","time":"2024-05-01T10:00:00Z","datacontenttype":"application/json","data":{"a":1},"dataversion":"1.0"})
        );
    }

    #[test]
    fn deep_data_is_copied_not_rebuilt() {
        // 200 levels: more than serde_json's parser takes into a Value, and copied untouched.
        let data = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let eg = format!(
            "{{\"id\":\"e1\",\"topic\":\"/t\",\"subject\":\"s\",\"data\":{data},\"eventType\":\"T\",\"dataVersion\":\"\",\"metadataVersion\":\"1\",\"eventTime\":\"2024-05-01T10:00:00Z\"}}"
        );
        let ce = String::from_utf8(eventgrid_to_cloudevent(eg.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            ce,
            format!(
                "{{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/t\",\"subject\":\"s\",\"type\":\"T\",\"time\":\"2024-05-01T10:00:00Z\",\"datacontenttype\":\"application/json\",\"data\":{data}}}"
            )
        );
        assert!(eventgrid_to_cloudevent(b"[1]").is_err());
        assert!(eventgrid_to_cloudevent(b"{").is_err());
    }
}
