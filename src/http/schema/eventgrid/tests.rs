use super::*;
use serde_json::json;

/// The clock and id source `parse_custom` is given: fixed, so the tests need neither.
const NOW_MS: u64 = 1_714_557_600_000;

fn fixed_id() -> String {
    "00000000-0000-4000-a000-000000000001".to_string()
}

const L: ParseLimits = ParseLimits {
    max_event_bytes: 1 << 20,
    max_events: 5000,
};
const CT: Option<&str> = Some("application/json; charset=utf-8");
const T: PostedTo<'static> = PostedTo::Topic {
    topic_id: "/providers/Microsoft.EventGrid/topics/orders",
};
const D: PostedTo<'static> = PostedTo::Domain {
    domain_id: "/providers/Microsoft.EventGrid/domains/shop",
};

/// Every test here runs both paths and checks they agree: simd-json's split
/// ([`super::super::split_fast`]) and serde_json alone.
fn parse_eventgrid(
    body: Bytes,
    ct: Option<&str>,
    limits: &ParseLimits,
    target: PostedTo<'_>,
) -> Result<Vec<TopicEvent>, ParseError> {
    let fields = |r: &Result<Vec<TopicEvent>, ParseError>| {
        r.as_ref().map_err(ParseError::clone).map(|evs| {
            let f = |e: &TopicEvent| {
                let t = (
                    e.data_version.clone(),
                    e.custom.clone(),
                    e.domain_topic.clone(),
                );
                (e.ev.clone(), t)
            };
            evs.iter().map(f).collect::<Vec<_>>()
        })
    };
    let serde = parse_eventgrid_with(body.clone(), ct, limits, target, false);
    let simd = parse_eventgrid_with(body.clone(), ct, limits, target, true);
    assert_eq!(
        fields(&simd),
        fields(&serde),
        "simd-json and serde_json differ on {body:?}"
    );
    simd
}

fn eg(v: Value) -> Result<Vec<TopicEvent>, ParseError> {
    parse_eventgrid(Bytes::from(v.to_string()), CT, &L, T)
}

fn doc(e: &TopicEvent) -> Value {
    serde_json::from_slice(&e.ev.raw).unwrap()
}

#[test]
fn eventgrid_events_are_normalised() {
    let evs = eg(json!([
        {"id": "e1", "subject": "orders/1", "data": {"n": 1}, "eventType": "Order.Created", "eventTime": "2024-05-01T10:00:00.123456Z", "dataVersion": "1.0"},
        {"id": "e2", "topic": "ignored", "subject": "s", "data": "text", "eventType": "T", "eventTime": "2024-05-01T10:00:00Z", "dataVersion": "", "extra": 1}
    ]))
    .unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(
        doc(&evs[0]),
        json!({"id": "e1", "topic": "/providers/Microsoft.EventGrid/topics/orders", "subject": "orders/1", "data": {"n": 1}, "eventType": "Order.Created", "dataVersion": "1.0", "metadataVersion": "1", "eventTime": "2024-05-01T10:00:00.123456Z"})
    );
    let d1 = doc(&evs[1]);
    assert_eq!(d1["topic"], "/providers/Microsoft.EventGrid/topics/orders");
    assert!(d1.get("extra").is_none());
    assert_eq!(evs[0].ev.ty.as_str(), "Order.Created");
    assert_eq!(evs[0].data_version.as_str(), "1.0");
    assert_eq!(evs[0].ev.attr("dataversion"), Some("1.0"));
}

#[test]
fn eventgrid_refusals_name_the_event_and_field() {
    let ok = json!({"id": "e", "subject": "s", "data": 1, "eventType": "T", "eventTime": "2024-05-01T10:00:00Z", "dataVersion": "1"});
    let with = |k: &str, v: Value| {
        let mut e = ok.clone();
        if v.is_null() {
            e.as_object_mut().unwrap().remove(k);
        } else {
            e[k] = v;
        }
        json!([ok.clone(), e])
    };
    for (body, want) in [
        (
            with("id", Value::Null),
            "Event 1: the required property 'id'",
        ),
        (with("subject", Value::Null), "'subject' is missing"),
        (with("eventType", json!(3)), "'eventType' must be a string"),
        (with("eventTime", json!("yesterday")), "RFC 3339"),
        (with("data", Value::Null), "'data' is missing"),
        (with("metadataVersion", json!("2")), "metadataVersion"),
        (with("id", json!("")), "must not be empty"),
        (json!(ok.clone()), "Expected: StartArray"),
        (json!([]), "no events"),
        (json!([1]), "not a JSON object"),
    ] {
        match eg(body.clone()) {
            Err(ParseError::BadRequest(m)) => assert!(m.contains(want), "{body}: {m}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert!(matches!(
        parse_eventgrid(Bytes::from_static(b"[{"), CT, &L, T),
        Err(ParseError::BadRequest(_))
    ));
    assert!(matches!(
        parse_eventgrid(Bytes::from(json!([ok]).to_string()), Some("application/cloudevents-batch+json"), &L, T),
        Err(ParseError::BadRequest(m)) if m.contains("not CloudEvents")
    ));
    assert!(matches!(
        parse_eventgrid(
            Bytes::from(json!([ok]).to_string()),
            Some("text/plain"),
            &L,
            T
        ),
        Err(ParseError::UnsupportedMediaType(_))
    ));
    let small = ParseLimits {
        max_event_bytes: 50,
        max_events: 1,
    };
    assert!(matches!(
        parse_eventgrid(Bytes::from(json!([ok, ok]).to_string()), CT, &small, T),
        Err(ParseError::TooLarge(m)) if m.contains("2 events")
    ));
    assert!(matches!(
        parse_eventgrid(Bytes::from(json!([ok]).to_string()), CT, &small, T),
        Err(ParseError::TooLarge(m)) if m.contains("bytes per event")
    ));
}

#[test]
fn domain_events_name_their_topic() {
    let e = |t: Value| json!([{"id": "e", "topic": t, "subject": "s", "data": 1, "eventType": "T", "eventTime": "2024-05-01T10:00:00Z"}]);
    let evs = parse_eventgrid(Bytes::from(e(json!("Tenant-A")).to_string()), CT, &L, D).unwrap();
    assert_eq!(evs[0].domain_topic.as_deref(), Some("tenant-a"));
    assert_eq!(
        doc(&evs[0])["topic"],
        "/providers/Microsoft.EventGrid/domains/shop/topics/Tenant-A"
    );
    assert_eq!(doc(&evs[0])["dataVersion"], "");
    for bad_topic in [Value::Null, json!("a"), json!("bad/topic")] {
        assert!(parse_eventgrid(Bytes::from(e(bad_topic).to_string()), CT, &L, D).is_err());
    }
}

#[test]
fn custom_events_are_mapped_and_kept() {
    let m = Mapping {
        id: Field {
            source: Some("myId".into()),
            default: None,
        },
        topic: Field {
            source: Some("tenant".into()),
            default: None,
        },
        event_time: Field {
            source: Some("ts".into()),
            default: None,
        },
        event_type: Field {
            source: Some("kind".into()),
            default: Some("Default.Type".into()),
        },
        subject: Field {
            source: Some("meta.path".into()),
            default: Some("/".into()),
        },
        data_version: Field {
            source: None,
            default: Some("1.0".into()),
        },
    };
    let body = r#"[{"myId":"c1","kind":"Order","meta":{"path":"orders/1"},"ts":"2024-05-01T10:00:00Z","n":5},{"other":true}]"#;
    let evs = parse_custom(
        Bytes::from_static(body.as_bytes()),
        CT,
        &L,
        T,
        &m,
        NOW_MS,
        fixed_id,
    )
    .unwrap();
    let d0 = doc(&evs[0]);
    assert_eq!(
        (
            d0["id"].as_str(),
            d0["eventType"].as_str(),
            d0["subject"].as_str()
        ),
        (Some("c1"), Some("Order"), Some("orders/1"))
    );
    assert_eq!(d0["data"]["n"], 5);
    assert_eq!(d0["dataVersion"], "1.0");
    assert_eq!(&evs[0].custom.as_ref().unwrap()[..], br#"{"myId":"c1","kind":"Order","meta":{"path":"orders/1"},"ts":"2024-05-01T10:00:00Z","n":5}"#);
    let d1 = doc(&evs[1]);
    assert_eq!(
        (d1["eventType"].as_str(), d1["subject"].as_str()),
        (Some("Default.Type"), Some("/"))
    );
    assert_eq!(d1["id"].as_str().unwrap().len(), 36);
    let strict = Mapping {
        event_type: Field {
            source: Some("kind".into()),
            default: None,
        },
        ..m
    };
    assert!(matches!(
        parse_custom(Bytes::from_static(b"[{\"x\":1}]"), CT, &L, T, &strict, NOW_MS, fixed_id),
        Err(ParseError::BadRequest(msg)) if msg.contains("'eventType'")
    ));
}

#[test]
fn both_splits_count_the_same_depth() {
    use crate::http::schema::MAX_EVENT_DEPTH;
    for n in [
        1,
        MAX_EVENT_DEPTH - 2,
        MAX_EVENT_DEPTH - 1,
        MAX_EVENT_DEPTH,
        500,
        1030,
    ] {
        let data = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let body = format!(
            r#"[{{"id":"1","subject":"s","eventType":"t","eventTime":"2024-05-01T10:00:00Z","data":{data}}}]"#
        );
        // The event's own object is level 1.
        let r = parse_eventgrid(Bytes::from(body), CT, &L, T);
        assert_eq!(r.is_ok(), n < MAX_EVENT_DEPTH, "{n}: {r:?}");
    }
}
