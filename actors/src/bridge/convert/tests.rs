use ntex_bytes::{ByteString, Bytes};
use serde_json::{Value, json};

use super::*;
use crate::grid::resource::topic_spaces;

const T: u64 = 1_714_557_600_123;
const TIME: &str = "2024-05-01T10:00:00.123Z";

fn msg(topic: &str, payload: &[u8], props: Option<Properties>) -> AppMessage {
    AppMessage {
        topic: ByteString::from(topic),
        payload: Bytes::copy_from_slice(payload),
        qos: 1,
        retain: false,
        props: props.map(Box::new),
        expires_at: None,
        publisher: None,
    }
}

fn client() -> Client {
    Client {
        auth_name: "dev-1".into(),
        session: "s-1".into(),
    }
}

fn no_enrich() -> Enrichments {
    Enrichments::default()
}

/// The enrichments of a `routingEnrichments` JSON value, through the real validation.
fn enrich(v: Value) -> Enrichments {
    topic_spaces::parse(Some(&json!({"routingEnrichments": v})), "localhost")
        .unwrap()
        .0
        .enrichments
}

fn up(kv: &[(&str, &str)]) -> Vec<(ByteString, ByteString)> {
    kv.iter()
        .map(|(k, v)| (ByteString::from(*k), ByteString::from(*v)))
        .collect()
}

fn convert(m: &AppMessage, e: &Enrichments) -> (CloudEvent, Value) {
    let ev = to_cloudevent(m, &client(), "myns", e, T, "id-1");
    let v: Value = serde_json::from_slice(&ev.raw).expect("raw is valid JSON");
    check_consistent(&ev, &v);
    (ev, v)
}

/// `raw` is a valid CloudEvent, and the recorded attributes say what it says.
fn check_consistent(ev: &CloudEvent, v: &Value) {
    let text = std::str::from_utf8(&ev.raw).unwrap();
    if let Err(e) = crate::model::structured::parse_object(&ev.raw, text) {
        panic!("not a valid CloudEvent ({e:?}): {text}");
    }
    assert_eq!(v["id"], *ev.id);
    assert_eq!(v["source"], *ev.source);
    assert_eq!(v["type"], *ev.ty);
    assert_eq!(
        v.get("subject").and_then(Value::as_str),
        ev.subject.as_deref()
    );
    let strings: Vec<(&str, &str)> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "id" | "source"
                    | "type"
                    | "subject"
                    | "specversion"
                    | "time"
                    | "datacontenttype"
                    | "dataschema"
                    | "data"
                    | "data_base64"
            )
        })
        .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
        .collect();
    let ext: Vec<(&str, &str)> = ev.ext.iter().map(|(k, v)| (&**k, &**v)).collect();
    let mut a = strings.clone();
    let mut b = ext.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "ext must list exactly the string extensions of raw");
}

fn v5(payload_utf8: bool, content_type: Option<&str>) -> Properties {
    Properties {
        payload_utf8,
        content_type: content_type.map(ByteString::from),
        ..Properties::default()
    }
}

#[test]
fn v3_message_is_base64() {
    let (_, v) = convert(&msg("campus/b17", br#"{"temp":70}"#, None), &no_enrich());
    assert_eq!(
        v,
        json!({"specversion": "1.0", "id": "id-1", "time": TIME, "type": "MQTT.EventPublished",
               "source": "myns", "subject": "campus/b17",
               "datacontenttype": "application/octet-stream", "data_base64": "eyJ0ZW1wIjo3MH0="})
    );
    // Members in §7.6's order.
    let (ev, _) = convert(&msg("t", b"", None), &no_enrich());
    assert_eq!(
        std::str::from_utf8(&ev.raw).unwrap(),
        format!(
            r#"{{"specversion":"1.0","id":"id-1","time":"{TIME}","type":"MQTT.EventPublished","source":"myns","subject":"t","datacontenttype":"application/octet-stream","data_base64":""}}"#
        )
    );
}

#[test]
fn v5_pfi_0_with_content_type_is_base64() {
    let m = msg("t", b"\x00\x01", Some(v5(false, Some("image/png"))));
    let (_, v) = convert(&m, &no_enrich());
    assert_eq!(v["datacontenttype"], "image/png");
    assert_eq!(v["data_base64"], "AAE=");
    assert_eq!(v.get("data"), None);
}

#[test]
fn v5_pfi_1_json_and_not_json() {
    let (ev, v) = convert(
        &msg("t", br#" {"temp": 70, "ok": true} "#, Some(v5(true, None))),
        &no_enrich(),
    );
    assert_eq!(v["data"], json!({"temp": 70, "ok": true}));
    assert_eq!(
        (v.get("data_base64"), v.get("datacontenttype")),
        (None, None)
    );
    // The payload's JSON bytes, not a re-serialisation.
    assert!(
        std::str::from_utf8(&ev.raw)
            .unwrap()
            .ends_with(r#""data":{"temp": 70, "ok": true}}"#)
    );
    let (_, v) = convert(
        &msg("t", b"hello \"world\"", Some(v5(true, None))),
        &no_enrich(),
    );
    assert_eq!(v["data"], "hello \"world\"");
    let (_, v) = convert(
        &msg("t", b"42", Some(v5(true, Some("text/plain")))),
        &no_enrich(),
    );
    assert_eq!(
        (&v["data"], &v["datacontenttype"]),
        (&json!(42), &json!("text/plain"))
    );
    // PFI 1 on bytes that are not UTF-8 (a broker that does not check): base64.
    let (_, v) = convert(&msg("t", b"\xff", Some(v5(true, None))), &no_enrich());
    assert_eq!(v["data_base64"], "/w==");
}

#[test]
fn json_content_type_without_pfi() {
    for ct in [
        "application/json; charset=utf-8",
        "application/json",
        "Application/JSON",
    ] {
        let (_, v) = convert(&msg("t", b"[1,2]", Some(v5(false, Some(ct)))), &no_enrich());
        assert_eq!(
            (&v["data"], &v["datacontenttype"]),
            (&json!([1, 2]), &json!(ct))
        );
    }
    let ct = "application/json; charset=utf-8";
    let (_, v) = convert(
        &msg("t", b"not json", Some(v5(false, Some(ct)))),
        &no_enrich(),
    );
    assert_eq!(v["data"], "not json");
}

#[test]
fn static_and_dynamic_enrichments() {
    let e = enrich(json!({
        "static": [{"key": "namespaceid", "valueType": "String", "value": "123"}],
        "dynamic": [
            {"key": "clientname", "value": "${client.authenticationName}"},
            {"key": "floor", "value": "${client.attributes.floor}"},
            {"key": "unit", "value": "${mqtt.message.userProperties.unit}"},
            {"key": "dotted", "value": "${mqtt.message.userProperties['a.b']}"},
            {"key": "quoted", "value": "${mqtt.message.userProperties['it\\'s']}"},
            {"key": "tags", "value": "${mqtt.message.userProperties.tag}"},
            {"key": "topic", "value": "${mqtt.message.topicName}"},
            {"key": "reply", "value": "${mqtt.message.responseTopic}"},
            {"key": "corr", "value": "${mqtt.message.correlationData}"},
            {"key": "mqttpfi", "value": "${mqtt.message.pfi}"}
        ]
    }));
    let present = Properties {
        response_topic: Some("replies/1".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02\x03")),
        payload_utf8: true,
        user_properties: up(&[
            ("unit", "C"),
            ("tag", "a"),
            ("a.b", "dotted \"v\""),
            ("it's", "q"),
            ("tag", "b"),
            ("tag", "c"),
        ]),
        ..Properties::default()
    };
    let (_, v) = convert(&msg("campus/b17", b"1", Some(present)), &e);
    assert_eq!(
        v,
        json!({"specversion": "1.0", "id": "id-1", "time": TIME, "type": "MQTT.EventPublished",
               "source": "myns", "subject": "campus/b17", "namespaceid": "123",
               "clientname": "dev-1", "floor": "", "unit": "C", "dotted": "dotted \"v\"",
               "quoted": "q", "tags": "a,b,c", "topic": "campus/b17", "reply": "replies/1",
               "corr": "AQID", "mqttpfi": 1, "data": 1})
    );
    // Every variable missing: "" (and pfi 0), for v3 and for v5 without the properties.
    let missing = json!({"namespaceid": "123", "clientname": "dev-1", "floor": "", "unit": "",
        "dotted": "", "quoted": "", "tags": "", "topic": "t", "reply": "", "corr": "",
        "mqttpfi": 0});
    for props in [None, Some(v5(false, None))] {
        let (_, v) = convert(&msg("t", b"x", props), &e);
        for (k, want) in missing.as_object().unwrap() {
            assert_eq!(&v[k], want, "{k}");
        }
    }
}

fn structured_payload() -> &'static str {
    r#"{ "specversion" : "1.0", "id": "ce-9", "source": "/dev/1", "type": "Contoso.T",
        "subject": "s/1", "time": "2024-01-01T00:00:00Z", "myext": "own", "num": 5,
        "clientname": "forged", "data": {"a": [1, 2]} }"#
}

#[test]
fn structured_cloudevent_keeps_its_attributes() {
    let e = enrich(json!({
        "static": [{"key": "site", "value": "b17"}],
        "dynamic": [{"key": "clientname", "value": "${client.authenticationName}"}]
    }));
    for ct in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
    ] {
        let m = msg(
            "t/1",
            structured_payload().as_bytes(),
            Some(v5(true, Some(ct))),
        );
        let (ev, v) = convert(&m, &e);
        assert_eq!(
            v,
            json!({"specversion": "1.0", "id": "ce-9", "source": "/dev/1", "type": "Contoso.T",
                   "subject": "s/1", "time": "2024-01-01T00:00:00Z", "myext": "own", "num": 5,
                   "data": {"a": [1, 2]}, "site": "b17", "clientname": "dev-1"})
        );
        // The publisher's values byte for byte.
        assert!(
            std::str::from_utf8(&ev.raw)
                .unwrap()
                .contains(r#""data":{"a": [1, 2]}"#)
        );
        assert_eq!(ev.attr("myext"), Some("own"));
        assert_eq!(ev.attr("clientname"), Some("dev-1"));
    }
    // Without enrichments the event is the payload's members.
    let m = msg(
        "t",
        br#"{"specversion":"1.0","id":"a\u0062","source":"s","type":"t"}"#,
        Some(v5(false, Some("application/cloudevents+json"))),
    );
    let (ev, _) = convert(&m, &no_enrich());
    assert_eq!(
        std::str::from_utf8(&ev.raw).unwrap(),
        r#"{"specversion":"1.0","id":"a\u0062","source":"s","type":"t"}"#
    );
    assert_eq!(&*ev.id, "ab");
}

#[test]
fn invalid_structured_payload_is_an_ordinary_message() {
    let ct = Some("application/cloudevents+json");
    for bad in [
        r#"{"specversion":"1.0","id":"x","source":"s"}"#.to_string(),
        r#"{"specversion":"0.3","id":"x","source":"s","type":"t"}"#.to_string(),
        r#"{"specversion":"1.0","id":"x","source":"s","type":"t","Bad":1}"#.to_string(),
        r#"{"specversion":"1.0","id":"x","source":"s","type":"t"} trailing"#.to_string(),
        r#"[{"specversion":"1.0","id":"x","source":"s","type":"t"}]"#.to_string(),
        "not json".to_string(),
        format!(
            r#"{{"specversion":"1.0","id":"x","source":"s","type":"t","data":{}{}}}"#,
            "[".repeat(MAX_EVENT_DEPTH),
            "]".repeat(MAX_EVENT_DEPTH)
        ),
    ] {
        let (_, v) = convert(&msg("t", bad.as_bytes(), Some(v5(false, ct))), &no_enrich());
        assert_eq!(v["type"], "MQTT.EventPublished", "{bad}");
        assert_eq!(v["id"], "id-1");
        assert_eq!(v["datacontenttype"], "application/cloudevents+json");
        assert!(v["data_base64"].is_string());
    }
    // A valid CloudEvent payload under another content type is just a payload.
    let (_, v) = convert(
        &msg("t", structured_payload().as_bytes(), Some(v5(true, None))),
        &no_enrich(),
    );
    assert_eq!(
        (&v["type"], &v["data"]["id"]),
        (&json!("MQTT.EventPublished"), &json!("ce-9"))
    );
}

#[test]
fn binary_mode_user_properties() {
    let e = enrich(json!({"static": [{"key": "site", "value": "b17"}]}));
    let props = Properties {
        content_type: Some("application/json".into()),
        user_properties: up(&[
            ("specversion", "1.0"),
            ("id", "b-1"),
            ("source", "/dev/2"),
            ("type", "Contoso.B"),
            ("subject", "x/y"),
            ("time", "2024-01-01T00:00:00Z"),
            ("dataschema", "https://s"),
            ("myext", "v"),
            ("site", "forged"),
            ("Not-An-Attribute", "ignored"),
        ]),
        ..Properties::default()
    };
    let (_, v) = convert(&msg("t", br#"{"k":1}"#, Some(props.clone())), &e);
    assert_eq!(
        v,
        json!({"specversion": "1.0", "id": "b-1", "source": "/dev/2", "type": "Contoso.B",
               "subject": "x/y", "time": "2024-01-01T00:00:00Z", "dataschema": "https://s",
               "myext": "v", "datacontenttype": "application/json", "data": {"k": 1},
               "site": "b17"})
    );
    // Binary data in binary mode.
    let mut p = props.clone();
    p.content_type = Some("application/octet-stream".into());
    let (_, v) = convert(&msg("t", b"\x00", Some(p)), &e);
    assert_eq!(
        (&v["id"], &v["data_base64"]),
        (&json!("b-1"), &json!("AA=="))
    );
    // A required attribute missing, or a bad one: an ordinary message.
    for drop in ["id", "source", "type"] {
        let mut p = props.clone();
        p.user_properties.retain(|(k, _)| k != drop);
        let (_, v) = convert(&msg("t", b"{}", Some(p)), &e);
        assert_eq!(
            (&v["type"], &v["id"]),
            (&json!("MQTT.EventPublished"), &json!("id-1"))
        );
    }
    let mut p = props.clone();
    p.user_properties.push(("time".into(), "noon".into()));
    let (_, v) = convert(&msg("t", b"{}", Some(p)), &e);
    assert_eq!(v["type"], "MQTT.EventPublished");
}
