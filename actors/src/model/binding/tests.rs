use serde_json::{Value, json};

use super::*;

fn attrs<'a>(extra: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("specversion", "1.0"),
        ("id", "e-1"),
        ("source", "/devices/d1"),
        ("type", "Contoso.Reading"),
    ];
    v.extend_from_slice(extra);
    v
}

fn parsed(ev: &CloudEvent) -> Value {
    serde_json::from_slice(&ev.raw).expect("raw is valid JSON")
}

#[test]
fn binary_json_data() {
    let a = attrs(&[
        ("subject", "rooms/1"),
        ("time", "2024-05-01T10:00:00.5+02:00"),
        ("dataschema", "https://example.com/s"),
        ("unit", "celsius"),
    ]);
    let ev = from_binary(
        a.into_iter(),
        Some("application/json; charset=utf-8"),
        br#" {"temp": 21.5} "#,
        "ce-",
    )
    .unwrap();
    assert_eq!(
        parsed(&ev),
        json!({"specversion": "1.0", "id": "e-1", "source": "/devices/d1",
               "type": "Contoso.Reading", "subject": "rooms/1",
               "time": "2024-05-01T10:00:00.5+02:00", "dataschema": "https://example.com/s",
               "unit": "celsius", "datacontenttype": "application/json; charset=utf-8",
               "data": {"temp": 21.5}})
    );
    // The publisher's JSON bytes are kept, not re-serialised.
    assert!(
        std::str::from_utf8(&ev.raw)
            .unwrap()
            .ends_with(r#""data":{"temp": 21.5}}"#)
    );
    assert_eq!(
        (&*ev.id, &*ev.source, &*ev.ty, ev.subject.as_deref()),
        ("e-1", "/devices/d1", "Contoso.Reading", Some("rooms/1"))
    );
    assert_eq!(ev.attr("unit"), Some("celsius"));
    assert_eq!(ev.ext.len(), 1);
}

#[test]
fn long_attributes_are_slices_of_raw() {
    // Short strings are inline in a ByteString (no allocation either way); long ones share
    // the event's buffer.
    let long = "x".repeat(100);
    let ev = from_binary(
        attrs(&[("subject", &long), ("ext", &long)]).into_iter(),
        None,
        b"",
        "",
    )
    .unwrap();
    let range = ev.raw.as_ptr_range();
    assert!(range.contains(&ev.subject.as_ref().unwrap().as_bytes().as_ptr()));
    assert!(range.contains(&ev.ext[0].1.as_bytes().as_ptr()));
}

#[test]
fn binary_other_content_types_are_base64() {
    for ct in [Some("application/octet-stream"), Some("text/plain"), None] {
        let ev = from_binary(attrs(&[]).into_iter(), ct, b"\x00\xffhi", "").unwrap();
        let v = parsed(&ev);
        assert_eq!(v["data_base64"], "AP9oaQ==", "{ct:?}");
        assert_eq!(v.get("data"), None);
        assert_eq!(v.get("datacontenttype").and_then(Value::as_str), ct);
    }
    for ct in [
        "application/cloudevents+json",
        "text/json",
        "APPLICATION/JSON",
        "application/vnd.x+JSON;v=1",
    ] {
        let ev = from_binary(attrs(&[]).into_iter(), Some(ct), b"[1,2]", "").unwrap();
        assert_eq!(parsed(&ev)["data"], json!([1, 2]), "{ct}");
    }
    assert!(!is_json_media("application/jsonx"));
    assert!(!is_json_media("json"));
    assert!(!is_json_media("application/+json"));
    // Untrusted and not ASCII: answered, never a panic on a character boundary.
    for ct in ["a/ééé", "a/éjson", "é/éjson", "a/x+jsoné"] {
        assert!(!is_json_media(ct), "{ct}");
    }
    assert!(is_json_media("é/x+json"));
    // No data: no data member.
    let ev = from_binary(attrs(&[]).into_iter(), Some("application/json"), b"", "").unwrap();
    let v = parsed(&ev);
    assert_eq!((v.get("data"), v.get("data_base64")), (None, None));
}

#[test]
fn binary_escapes_and_records_escaped_values() {
    let ev = from_binary(
        attrs(&[("note", "a \"quoted\" é\n")]).into_iter(),
        None,
        b"",
        "",
    )
    .unwrap();
    assert_eq!(parsed(&ev)["note"], "a \"quoted\" é\n");
    assert_eq!(ev.attr("note"), Some("a \"quoted\" é\n"));
}

#[test]
fn binary_errors_name_the_attribute() {
    let err = |a: Vec<(&str, &str)>, ct: Option<&str>, data: &[u8]| {
        from_binary(a.into_iter(), ct, data, "ce-").unwrap_err()
    };
    for missing in ["specversion", "id", "source", "type"] {
        let a: Vec<_> = attrs(&[])
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_eq!(
            err(a, None, b""),
            format!("required attribute 'ce-{missing}' is missing.")
        );
    }
    let mut a = attrs(&[]);
    a[0].1 = "0.3";
    assert_eq!(
        err(a, None, b""),
        r#"'ce-specversion' must be "1.0", got "0.3"."#
    );
    let mut a = attrs(&[]);
    a[1].1 = "";
    assert!(err(a, None, b"").contains("'ce-id' must be a non-empty string"));
    assert!(
        err(attrs(&[("time", "yesterday")]), None, b"").contains("'ce-time' must be an RFC 3339")
    );
    assert!(err(attrs(&[("id", "again")]), None, b"").contains("'ce-id' is given more than once"));
    assert!(
        err(attrs(&[("x", "1"), ("x", "2")]), None, b"").contains("'ce-x' is given more than once")
    );
    assert!(err(attrs(&[("My-Ext", "1")]), None, b"").contains(r#"name "ce-My-Ext""#));
    assert!(err(attrs(&[("a".repeat(21).as_str(), "1")]), None, b"").contains("1 to 20"));
    assert!(err(attrs(&[("datacontenttype", "x")]), None, b"").contains("content type carries it"));
    assert!(err(attrs(&[("data", "x")]), None, b"").contains("the body is the data"));
    assert!(err(attrs(&[]), Some("application/json"), b"{nope").contains("not valid JSON"));
    let deep = format!(
        "{}{}",
        "[".repeat(MAX_EVENT_DEPTH),
        "]".repeat(MAX_EVENT_DEPTH)
    );
    assert!(err(attrs(&[]), Some("application/json"), deep.as_bytes()).contains("not valid JSON"));
    let ok = &deep[1..deep.len() - 1];
    assert!(
        from_binary(
            attrs(&[]).into_iter(),
            Some("application/json"),
            ok.as_bytes(),
            ""
        )
        .is_ok()
    );
}

#[test]
fn writer_members() {
    let mut w = EventJson::new(0);
    w.string("id", "1");
    w.string("source", "ns");
    w.string("type", "t");
    w.time_ms("time", 1_714_557_600_123);
    w.number("mqttpfi", 0);
    w.number("big", u64::MAX);
    w.base64("corr", b"\x01\x02\x03\x04");
    w.joined("many", ["a", "b", "c"].into_iter());
    w.joined("one", ["a"].into_iter());
    w.joined("none", std::iter::empty());
    w.raw("rawstr", r#""x\u0041""#, Some(Cow::Borrowed("xA")));
    w.raw("plain", r#""y""#, Some(Cow::Borrowed("y")));
    w.raw("obj", r#"{"k": [1]}"#, None);
    let ev = w.finish();
    assert_eq!(
        parsed(&ev),
        json!({"id": "1", "source": "ns", "type": "t", "time": "2024-05-01T10:00:00.123Z",
               "mqttpfi": 0, "big": u64::MAX, "corr": "AQIDBA==", "many": "a,b,c", "one": "a",
               "none": "", "rawstr": "xA", "plain": "y", "obj": {"k": [1]}})
    );
    let ext: Vec<(&str, &str)> = ev.ext.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(
        ext,
        [
            ("corr", "AQIDBA=="),
            ("many", "a,b,c"),
            ("one", "a"),
            ("none", ""),
            ("rawstr", "xA"),
            ("plain", "y")
        ]
    );
}

#[test]
fn many_extensions() {
    // (A set finds duplicates: a list made this quadratic, minutes for an MQTT message with
    // 100,000 user properties.)
    let names: Vec<String> = (0..50_000).map(|i| format!("x{i}")).collect();
    let mut a = attrs(&[]);
    a.extend(names.iter().map(|n| (n.as_str(), "v")));
    let ev = from_binary(a.clone().into_iter(), None, b"", "").unwrap();
    assert_eq!(ev.ext.len(), 50_000);
    a.push(("x49999", "again"));
    let e = from_binary(a.into_iter(), None, b"", "").unwrap_err();
    assert!(e.contains("'x49999' is given more than once"), "{e}");
}
