//! What a webhook request looks like, as pure functions of the subscription's settings and its
//! events: the delivery schema, the batches (up to `maxEventsPerBatch` within
//! `preferredBatchSizeInKilobytes`), the `aeg-*` headers and the delivery attribute mappings
//! (static values, or values looked up in the event).
//!
//! Must never perform I/O, read a clock or start an actor: the push actor and the resource
//! validation call it.

use std::borrow::Cow;

use ntex_bytes::ByteString;
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

/// A request being filled with events: the first always joins (a single event larger than the
/// preferred size goes alone); the others while the batch stays within `max_events` and
/// `preferred_bytes` (counting the array's brackets and one separator byte per event).
#[derive(Debug, Clone, Copy)]
pub struct BatchFill {
    count: usize,
    bytes: usize,
}

impl Default for BatchFill {
    fn default() -> Self {
        BatchFill { count: 0, bytes: 2 }
    }
}

impl BatchFill {
    /// Whether an event of `len` bytes still fits.
    pub fn admits(&self, len: usize, max_events: usize, preferred_bytes: usize) -> bool {
        // The event and its separator must not pass the preferred size.
        self.count == 0 || (self.count < max_events && self.bytes + len < preferred_bytes)
    }

    pub fn add(&mut self, len: usize) {
        self.count += 1;
        self.bytes += len + 1;
    }
}

/// The request body and its content type: a CloudEvents subscription without batching gets one
/// event in structured mode, every other request a JSON array.
pub fn body(schema: DeliverySchema, batching: bool, events: &[&[u8]]) -> (Vec<u8>, &'static str) {
    let ce = schema == DeliverySchema::CloudEvents;
    let single = ce && !batching;
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    if single {
        body.extend_from_slice(events.first().copied().unwrap_or_default());
    } else {
        body.push(b'[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e);
        }
        body.push(b']');
    }
    let content_type = match (ce, single) {
        (true, true) => "application/cloudevents+json; charset=utf-8",
        (true, false) => "application/cloudevents-batch+json; charset=utf-8",
        _ => "application/json; charset=utf-8",
    };
    (body, content_type)
}

/// The first event of a request, which its headers describe.
pub struct First<'a> {
    /// For the log, when its dynamic headers cannot be read.
    pub seq: u64,
    pub body: &'a [u8],
    pub id: &'a ByteString,
    pub data_version: &'a ByteString,
    pub delivery_count: u32,
}

/// The request headers: Event Grid's `aeg-*` headers (`subscription` upper-cased), `Origin` for
/// CloudEvents, then the delivery attribute mappings whose value is a valid header value (a
/// dynamic value looked up in the first event; one that cannot be a header value is left out, as
/// Event Grid does). Names are static or shared, values shared slices: no per-request string
/// building beyond the delivery count.
pub fn headers(
    schema: DeliverySchema,
    subscription: &ByteString,
    first: &First<'_>,
    mappings: &[(String, HeaderValue)],
) -> Vec<(Cow<'static, str>, ByteString)> {
    let ce = schema == DeliverySchema::CloudEvents;
    let mut headers: Vec<(Cow<'static, str>, ByteString)> = Vec::with_capacity(7 + mappings.len());
    headers.extend([
        (
            Cow::Borrowed("aeg-event-type"),
            ByteString::from_static("Notification"),
        ),
        (Cow::Borrowed("aeg-subscription-name"), subscription.clone()),
        (
            Cow::Borrowed("aeg-delivery-count"),
            ByteString::from(first.delivery_count.to_string()),
        ),
        (
            Cow::Borrowed("aeg-metadata-version"),
            ByteString::from_static(if ce { "1.0" } else { "1" }),
        ),
        (Cow::Borrowed("aeg-output-event-id"), first.id.clone()),
    ]);
    if !ce {
        headers.push((
            Cow::Borrowed("aeg-data-version"),
            first.data_version.clone(),
        ));
    } else {
        headers.push((
            Cow::Borrowed("Origin"),
            ByteString::from_static("eventgrid.azure.net"),
        ));
    }
    if !mappings.is_empty() {
        // Events nest at most MAX_EVENT_DEPTH levels (refused at publish beyond), within what
        // serde_json builds; a failure leaves the dynamic headers out, not the delivery.
        let doc = serde_json::from_slice::<Value>(first.body)
            .inspect_err(|e| {
                tracing::warn!(seq = first.seq, error = %e, "dynamic delivery headers left out: the event could not be read");
            })
            .ok();
        for (name, v) in mappings {
            let value = match v {
                HeaderValue::Static(s) => Some(s.clone()),
                HeaderValue::Dynamic(path) => doc.as_ref().and_then(|doc| lookup_scalar(doc, path)),
            };
            if let Some(value) = value.filter(|v| valid_header_value(v)) {
                headers.push((Cow::Owned(name.clone()), ByteString::from(value)));
            }
        }
    }
    headers
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

    #[test]
    fn batches_fill_to_max_events_within_the_preferred_size() {
        let fill = |lens: &[usize], max, preferred| {
            let mut f = BatchFill::default();
            let mut n = 0;
            for &len in lens {
                if !f.admits(len, max, preferred) {
                    break;
                }
                f.add(len);
                n += 1;
            }
            n
        };
        assert_eq!(fill(&[10; 10], 3, 1024), 3, "maxEventsPerBatch");
        assert_eq!(fill(&[10; 10], 1, 1024), 1, "without batching: one each");
        // Brackets 2 + each event and a separator 11: two events count 24 bytes, and fit
        // exactly at that preferred size.
        assert_eq!(fill(&[10; 10], 100, 24), 2);
        assert_eq!(fill(&[10; 10], 100, 23), 1);
        assert_eq!(fill(&[5000, 10], 100, 1024), 1, "a larger event goes alone");
        assert_eq!(fill(&[], 100, 1024), 0);
    }

    #[test]
    fn bodies_are_an_array_except_single_cloudevents() {
        let evs: [&[u8]; 2] = [br#"{"a":1}"#, br#"{"b":2}"#];
        let (b, ct) = body(DeliverySchema::EventGrid, false, &evs[..1]);
        assert_eq!(
            (&b[..], ct),
            (&br#"[{"a":1}]"#[..], "application/json; charset=utf-8")
        );
        let (b, ct) = body(DeliverySchema::CustomInput, true, &evs);
        assert_eq!(
            (&b[..], ct),
            (
                &br#"[{"a":1},{"b":2}]"#[..],
                "application/json; charset=utf-8"
            )
        );
        let (b, ct) = body(DeliverySchema::CloudEvents, false, &evs[..1]);
        assert_eq!(
            (&b[..], ct),
            (
                &br#"{"a":1}"#[..],
                "application/cloudevents+json; charset=utf-8"
            )
        );
        let (b, ct) = body(DeliverySchema::CloudEvents, true, &evs);
        assert_eq!(
            (&b[..], ct),
            (
                &br#"[{"a":1},{"b":2}]"#[..],
                "application/cloudevents-batch+json; charset=utf-8"
            )
        );
    }

    fn header_map(h: &[(Cow<'static, str>, ByteString)]) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn aeg_headers_describe_the_first_event() {
        let (id, dv) = (ByteString::from("e1"), ByteString::from("2.0"));
        let first = First {
            seq: 1,
            body: br#"{"id":"e1","subject":"s1","data":{"system":"eu","o":{}}}"#,
            id: &id,
            data_version: &dv,
            delivery_count: 2,
        };
        let sub = ByteString::from("ORDERS");
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            header_map(&headers(DeliverySchema::EventGrid, &sub, &first, &[])),
            pairs(&[
                ("aeg-event-type", "Notification"),
                ("aeg-subscription-name", "ORDERS"),
                ("aeg-delivery-count", "2"),
                ("aeg-metadata-version", "1"),
                ("aeg-output-event-id", "e1"),
                ("aeg-data-version", "2.0"),
            ])
        );
        let mappings = vec![
            ("X-Static".to_string(), HeaderValue::Static("v".into())),
            (
                "X-System".to_string(),
                HeaderValue::Dynamic("data.system".into()),
            ),
            (
                "X-Object".to_string(),
                HeaderValue::Dynamic("data.o".into()),
            ),
            ("X-Missing".to_string(), HeaderValue::Dynamic("nope".into())),
            ("X-Bad".to_string(), HeaderValue::Static("a\nb".into())),
        ];
        assert_eq!(
            header_map(&headers(
                DeliverySchema::CloudEvents,
                &sub,
                &first,
                &mappings
            )),
            pairs(&[
                ("aeg-event-type", "Notification"),
                ("aeg-subscription-name", "ORDERS"),
                ("aeg-delivery-count", "2"),
                ("aeg-metadata-version", "1.0"),
                ("aeg-output-event-id", "e1"),
                ("Origin", "eventgrid.azure.net"),
                ("X-Static", "v"),
                ("X-System", "eu"),
            ])
        );
        // An unreadable event keeps its static headers, loses its dynamic ones.
        let broken = First {
            body: b"{",
            ..first
        };
        let h = header_map(&headers(
            DeliverySchema::EventGrid,
            &sub,
            &broken,
            &mappings,
        ));
        assert!(h.contains(&("X-Static".into(), "v".into())));
        assert!(!h.iter().any(|(k, _)| k == "X-System"));
    }

    #[test]
    fn header_values_are_visible_ascii_tab_or_obs_text_up_to_4_kib() {
        assert!(valid_header_value("a b\tc~"));
        assert!(valid_header_value("caf\u{e9}"));
        assert!(valid_header_value(&"x".repeat(4096)));
        assert!(!valid_header_value(&"x".repeat(4097)));
        assert!(!valid_header_value("a\nb"));
        assert!(!valid_header_value("a\rb"));
        assert!(!valid_header_value("\u{7f}"));
    }
}
