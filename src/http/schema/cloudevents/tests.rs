//! Unit tests of `cloudevents`.

use super::*;
use crate::http::schema::{MAX_EVENT_DEPTH, json_depth};
use evgrid_actors::model::json::QUOTE_MAX;
use evgrid_actors::model::time::is_rfc3339;

const LIMITS: ParseLimits = ParseLimits {
    max_event_bytes: 1 << 20,
    max_events: 1000,
};
const BATCH: Option<&str> = Some("application/cloudevents-batch+json; charset=utf-8");
const SINGLE: Option<&str> = Some("application/cloudevents+json; charset=utf-8");
const JSON: Option<&str> = Some("application/json");

/// The publish body of docs/eventgrid.md §9.3, byte for byte.
const SDK_BODY: &str = r#"[{"id": "ce-1", "source": "/orders", "type": "Contoso.Order.Created", "specversion": "1.0", "time": "2024-05-01T10:00:00.123456Z", "subject": "orders/1", "data": {"orderId": 1}, "myext": "v"}]"#;

/// Every test here runs both paths and checks they agree: simd-json's split
/// ([`super::super::split_fast`]) and serde_json alone.
fn parse_batch(
    body: Bytes,
    ct: Option<&str>,
    limits: &ParseLimits,
) -> Result<Vec<CloudEvent>, ParseError> {
    let serde = parse_batch_with(body.clone(), ct, limits, false);
    let simd = parse_batch_with(body.clone(), ct, limits, true);
    assert_eq!(simd, serde, "simd-json and serde_json differ on {body:?}");
    simd
}

fn parse(body: &str, ct: Option<&str>) -> Result<Vec<CloudEvent>, ParseError> {
    parse_batch(Bytes::copy_from_slice(body.as_bytes()), ct, &LIMITS)
}

fn parse_ok(body: &str) -> Vec<CloudEvent> {
    parse(body, BATCH).unwrap_or_else(|e| panic!("{}: {e}", quoted(body)))
}

fn bad_request(body: &str) -> String {
    match parse(body, BATCH) {
        Err(ParseError::BadRequest(m)) => m,
        other => panic!("{}: expected BadRequest, got {other:?}", quoted(body)),
    }
}

/// A minimal valid event with `extra` members appended.
fn event(extra: &str) -> String {
    format!(r#"{{"specversion":"1.0","id":"e","source":"/s","type":"t"{extra}}}"#)
}

/// Bad request for a batch of one event made of `extra` members.
fn bad_event(extra: &str) -> String {
    bad_request(&format!("[{}]", event(extra)))
}

fn ext(ev: &CloudEvent) -> Vec<(&str, &str)> {
    ev.ext
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Offset of `part` in `whole`, asserting it lies inside (a slice, not a copy).
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    assert!(
        p >= w && p + part.len() <= w + whole.len(),
        "not a slice of the body"
    );
    p - w
}

#[test]
fn sdk_batch_under_batch_content_type() {
    assert_eq!(SDK_BODY.len(), 192, "the Content-Length of the capture");
    let evs = parse(SDK_BODY, BATCH).unwrap();
    assert_eq!(evs.len(), 1);
    let ev = &evs[0];
    assert_eq!(ev.id, "ce-1");
    assert_eq!(ev.source, "/orders");
    assert_eq!(ev.ty, "Contoso.Order.Created");
    assert_eq!(ev.subject.as_deref(), Some("orders/1"));
    assert_eq!(ext(ev), [("myext", "v")]);
    assert_eq!(&ev.raw[..], &SDK_BODY.as_bytes()[1..SDK_BODY.len() - 1]);
    assert_eq!(ev.attr("myext"), Some("v"));
}

#[test]
fn sdk_array_under_single_event_content_type() {
    let evs = parse(SDK_BODY, SINGLE).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].id, "ce-1");
    assert_eq!(&evs[0].raw[..], &SDK_BODY.as_bytes()[1..SDK_BODY.len() - 1]);
}

#[test]
fn single_object_under_single_event_content_type() {
    let body = r#"{"specversion":"1.0","id":"c1","source":"/orders","type":"Contoso.Order.Created","time":"2024-05-01T10:00:00Z","subject":"orders/1","datacontenttype":"application/json","data":{"orderId":1},"tenant":"a"}"#;
    let evs = parse(&format!(" \n{body}\r\n\t"), SINGLE).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].id, "c1");
    assert_eq!(ext(&evs[0]), [("tenant", "a")]);
    assert_eq!(&evs[0].raw[..], body.as_bytes());
}

#[test]
fn application_json_takes_object_or_array() {
    let one = event("");
    assert_eq!(parse(&one, JSON).unwrap().len(), 1);
    let two = format!("[{one},{one}]");
    assert_eq!(parse(&two, JSON).unwrap().len(), 2);
}

#[test]
fn media_type_is_case_insensitive_and_parameters_ignored() {
    let body = format!("[{}]", event(""));
    for ct in [
        "Application/CloudEvents-Batch+JSON",
        "application/cloudevents-batch+json ; charset=UTF-8",
        "APPLICATION/CLOUDEVENTS+JSON;charset=utf-8",
        "application/json; charset=utf-8; foo=bar",
        "  application/json  ",
    ] {
        assert_eq!(parse(&body, Some(ct)).unwrap().len(), 1, "{ct}");
    }
}

#[test]
fn unsupported_media_types() {
    let body = format!("[{}]", event(""));
    match parse(&body, None) {
        Err(ParseError::UnsupportedMediaType(m)) => assert_eq!(
            m,
            "The request has no Content-Type; expected application/cloudevents-batch+json, \
             application/cloudevents+json or application/json."
        ),
        other => panic!("{other:?}"),
    }
    for ct in [
        "text/plain",
        "",
        "application/cloudevents-batch+jsonx",
        "application/xml; charset=utf-8",
        "application/json-seq",
    ] {
        match parse(&body, Some(ct)) {
            Err(ParseError::UnsupportedMediaType(m)) => assert_eq!(
                m,
                format!(
                    "Content-Type {ct:?} is not supported; expected \
                     application/cloudevents-batch+json, application/cloudevents+json or \
                     application/json."
                )
            ),
            other => panic!("{ct}: {other:?}"),
        }
    }
    // The content type is checked before the body.
    assert!(matches!(
        parse("garbage", Some("text/plain")),
        Err(ParseError::UnsupportedMediaType(_))
    ));
}

#[test]
fn batch_content_type_requires_an_array() {
    assert_eq!(
        bad_request(&event("")),
        "The request body must be a JSON array of events under Content-Type \
         application/cloudevents-batch+json, got a single object."
    );
    assert_eq!(
        bad_request("42"),
        "The request body must be a JSON array of events."
    );
    assert_eq!(
        parse("\"x\"", SINGLE),
        Err(bad(
            "The request body must be a JSON object (one event) or a JSON array of events.".into()
        ))
    );
}

#[test]
fn empty_batch_and_empty_body() {
    assert_eq!(bad_request("[]"), "The request contained no events.");
    assert_eq!(bad_request(" [ ] "), "The request contained no events.");
    assert_eq!(
        parse("[]", SINGLE),
        Err(bad("The request contained no events.".into()))
    );
    assert_eq!(bad_request(""), "The request body is empty.");
    assert_eq!(bad_request(" \r\n\t"), "The request body is empty.");
}

#[test]
fn too_many_events() {
    let limits = ParseLimits {
        max_event_bytes: 1000,
        max_events: 2,
    };
    let one = event("");
    let two = Bytes::from(format!("[{one},{one}]"));
    assert_eq!(parse_batch(two, BATCH, &limits).unwrap().len(), 2);
    let three = Bytes::from(format!("[{one},{one},{one}]"));
    assert_eq!(
        parse_batch(three, BATCH, &limits),
        Err(ParseError::TooLarge(
            "The request contained 3 events; the limit is 2 events per request.".into()
        ))
    );
    // Elements past the limit are counted, not validated or kept.
    let many = Bytes::from(format!("[{}{{}}]", "{},".repeat(9_999)));
    assert_eq!(
        parse_batch(many, BATCH, &limits),
        Err(ParseError::TooLarge(
            "The request contained 10000 events; the limit is 2 events per request.".into()
        ))
    );
    // ...but they must still be valid JSON.
    let broken = Bytes::from(format!("[{one},{one},{one},{{]"));
    assert!(matches!(
        parse_batch(broken, BATCH, &limits),
        Err(ParseError::BadRequest(_))
    ));
}

#[test]
fn event_too_large() {
    let small = event("");
    let big = event(r#","data":"0123456789""#);
    let limits = ParseLimits {
        max_event_bytes: big.len() - 1,
        max_events: 10,
    };
    let body = Bytes::from(format!("[{small}, {big}]"));
    assert_eq!(
        parse_batch(body, BATCH, &limits),
        Err(ParseError::TooLarge(format!(
            "Event 1 (id \"e\") is {} bytes; the limit is {} bytes per event.",
            big.len(),
            big.len() - 1
        )))
    );
    // Exactly at the limit is fine.
    let exact = ParseLimits {
        max_event_bytes: big.len(),
        ..limits
    };
    assert!(parse_batch(Bytes::from(format!("[{big}]")), BATCH, &exact).is_ok());
    // No readable id: the index alone.
    let no_id = format!(r#"{{"id":7,"data":"{}"}}"#, "0123456789".repeat(10));
    let body = Bytes::from(format!("[{no_id}]"));
    assert_eq!(
        parse_batch(body, BATCH, &limits),
        Err(ParseError::TooLarge(format!(
            "Event 0 is {} bytes; the limit is {} bytes per event.",
            no_id.len(),
            big.len() - 1
        )))
    );
}

#[test]
fn element_that_is_not_an_object() {
    let one = event("");
    for (elem, kind) in [
        ("1", "a number"),
        ("-1.5e3", "a number"),
        ("\"x\"", "a string"),
        ("null", "null"),
        ("true", "a boolean"),
        ("[]", "an array"),
    ] {
        assert_eq!(
            bad_request(&format!("[{one}, {elem}]")),
            format!("Event 1: expected a JSON object, got {kind}.")
        );
    }
}

#[test]
fn missing_required_attributes() {
    let one = event("");
    let no_source = r#"{"specversion":"1.0","id":"x","type":"t"}"#;
    assert_eq!(
        bad_request(&format!("[{one},{one},{one},{no_source}]")),
        "Event 3: required attribute 'source' is missing."
    );
    for (body, name) in [
        (r#"{"specversion":"1.0","source":"/s","type":"t"}"#, "id"),
        (r#"{"specversion":"1.0","id":"x","source":"/s"}"#, "type"),
        (r#"{"id":"x","source":"/s","type":"t"}"#, "specversion"),
        ("{}", "id"),
    ] {
        assert_eq!(
            bad_request(&format!("[{body}]")),
            format!("Event 0: required attribute '{name}' is missing.")
        );
    }
}

#[test]
fn required_attributes_must_be_non_empty_strings() {
    for name in ["id", "source", "type"] {
        for (value, got) in [
            ("5", "a number"),
            ("null", "null"),
            ("\"\"", "an empty string"),
            ("false", "a boolean"),
            ("{\"a\":1}", "an object"),
            ("[\"x\"]", "an array"),
        ] {
            let members: Vec<String> = [
                ("specversion", "\"1.0\""),
                ("id", "\"x\""),
                ("source", "\"/s\""),
                ("type", "\"t\""),
            ]
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{}", if k == name { value } else { v }))
            .collect();
            let body = format!("[{{{}}}]", members.join(","));
            assert_eq!(
                bad_request(&body),
                format!(
                    "Event 0: required attribute '{name}' must be a non-empty string, got {got}."
                ),
                "{body}"
            );
        }
    }
}

#[test]
fn specversion_must_be_1_0() {
    let with = |v: &str| {
        bad_request(&format!(
            r#"[{{"id":"x","source":"/s","type":"t","specversion":{v}}}]"#
        ))
    };
    assert_eq!(
        with("\"0.3\""),
        r#"Event 0: 'specversion' must be "1.0", got "0.3"."#
    );
    assert_eq!(
        with("\"1.0 \""),
        r#"Event 0: 'specversion' must be "1.0", got "1.0 "."#
    );
    assert_eq!(
        with("\"1\""),
        r#"Event 0: 'specversion' must be "1.0", got "1"."#
    );
    assert_eq!(
        with("1.0"),
        r#"Event 0: 'specversion' must be "1.0", got a number."#
    );
    assert_eq!(
        with("null"),
        r#"Event 0: 'specversion' must be "1.0", got null."#
    );
    // Long values are cut in messages.
    let long = format!("\"{}\"", "9".repeat(10_000));
    let msg = with(&long);
    assert!(msg.len() < 200, "{msg}");
    assert!(
        msg.ends_with(&format!("got \"{}\"....", "9".repeat(QUOTE_MAX))),
        "{msg}"
    );
}

#[test]
fn optional_attributes_must_be_strings() {
    for (name, value, got) in [
        ("subject", "5", "a number"),
        ("time", "true", "a boolean"),
        ("datacontenttype", "{}", "an object"),
        ("dataschema", "[]", "an array"),
        ("data_base64", "12", "a number"),
    ] {
        assert_eq!(
            bad_event(&format!(r#","{name}":{value}"#)),
            format!("Event 0: attribute '{name}' must be a string, got {got}.")
        );
    }
    let evs = parse_ok(&format!(
        "[{}]",
        event(r#","subject":"","datacontenttype":"text/plain","dataschema":"https://x/y""#)
    ));
    assert_eq!(evs[0].subject.as_deref(), Some(""));
}

#[test]
fn null_optional_attributes_are_unset() {
    let evs = parse_ok(&format!(
        "[{}]",
        event(
            r#","subject":null,"time":null,"datacontenttype":null,"dataschema":null,"data":null,"data_base64":null,"myext":null"#
        )
    ));
    assert_eq!(evs[0].subject, None);
    assert!(evs[0].ext.is_empty());
    // null `data` does not conflict with `data_base64`, and vice versa.
    parse_ok(&format!(
        "[{}]",
        event(r#","data":null,"data_base64":"aGVsbG8=""#)
    ));
    parse_ok(&format!(
        "[{}]",
        event(r#","data":{"a":1},"data_base64":null"#)
    ));
}

#[test]
fn time_shape() {
    for ok in [
        "2024-05-01T10:00:00Z",
        "2024-05-01t10:00:00z",
        "2024-05-01T10:00:00.123456Z",
        "2024-05-01T10:00:00.1234567Z",
        "2024-05-01T10:00:00.1+02:00",
        "2024-05-01T23:59:59-11:30",
        "2024-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "0001-01-01T00:00:00+00:00",
    ] {
        assert!(is_rfc3339(ok), "{ok}");
        parse_ok(&format!("[{}]", event(&format!(r#","time":"{ok}""#))));
    }
    for bad in [
        "",
        "2024-05-01",
        "2024-05-01T10:00:00",
        "2024-05-01 10:00:00Z",
        "2024-05-01T10:00Z",
        "2024-05-01T10:00:00.Z",
        "2024-05-01T10:00:00,5Z",
        "2024-05-01T10:00:00+0200",
        "2024-05-01T10:00:00+02",
        "2024-05-01T10:00:00Zjunk",
        "2024-05-01T10:00:00Z ",
        "2024-13-01T10:00:00Z",
        "2024-00-01T10:00:00Z",
        "2024-04-31T10:00:00Z",
        "2023-02-29T10:00:00Z",
        "1900-02-29T10:00:00Z",
        "2024-05-00T10:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:60:00Z",
        "2024-05-01T10:00:60Z",
        "2024-05-01T10:00:00+24:00",
        "2024-05-01T10:00:00+02:60",
        "+024-05-01T10:00:00Z",
        "2024-05-01T10:00:00\u{0660}Z",
        "yesterday",
        "２024-05-01T10:00:00Z",
    ] {
        assert!(!is_rfc3339(bad), "{bad}");
    }
    assert_eq!(
        bad_event(r#","time":"yesterday""#),
        "Event 0: attribute 'time' must be an RFC 3339 timestamp such as \
         \"2024-05-01T10:00:00Z\", got \"yesterday\"."
    );
}

#[test]
fn data_and_data_base64() {
    let evs = parse_ok(&format!("[{}]", event(r#","data_base64":"aGVsbG8=""#)));
    assert_eq!(evs.len(), 1);
    for data in [
        r#""text""#,
        "1e400",
        "[1,2,[3]]",
        r#"{"a":{"b":null}}"#,
        "false",
    ] {
        parse_ok(&format!("[{}]", event(&format!(r#","data":{data}"#))));
    }
    assert_eq!(
        bad_event(r#","data":{"a":1},"data_base64":"aGVsbG8=""#),
        "Event 0: 'data' and 'data_base64' are mutually exclusive; send one of them."
    );
    assert_eq!(
        bad_event(r#","data_base64":"aGVsbG8=","data":"x""#),
        "Event 0: 'data' and 'data_base64' are mutually exclusive; send one of them."
    );
    for ok in ["", "aGVsbG8=", "aGVsbA==", "aGVs", "ab+/", "\\u0061GVs"] {
        assert!(is_base64(&ok.replace("\\u0061", "a")), "{ok}");
        parse_ok(&format!(
            "[{}]",
            event(&format!(r#","data_base64":"{ok}""#))
        ));
    }
    for bad in [
        "aGVsbG8",
        "aGVsbG8==",
        "a===",
        "====",
        "aGV=bG8=",
        "aGVs bG8=",
        "aGVs-_8=",
        "é===",
        "\\n",
    ] {
        assert_eq!(
            bad_event(&format!(r#","data_base64":"{bad}""#)),
            "Event 0: attribute 'data_base64' must be base64 (standard alphabet, padded).",
            "{bad}"
        );
    }
}

#[test]
fn extension_names() {
    for name in [
        "MyExt",
        "my_ext",
        "my-ext",
        "",
        "a23456789012345678901",
        "é",
        "data_Base64",
        " a",
    ] {
        assert_eq!(
            bad_event(&format!(r#","{name}":"v""#)),
            format!(
                "Event 0: invalid extension attribute name {name:?}: extension names must be \
                 1 to 20 lowercase letters (a-z) or digits."
            ),
            "{name}"
        );
    }
    // The check applies whatever the value.
    assert!(bad_event(r#","Big":1"#).contains("invalid extension attribute name \"Big\""));
    let evs = parse_ok(&format!(
        "[{}]",
        event(r#","a2345678901234567890":"x","0":"y","traceparent":"00-ab""#)
    ));
    assert_eq!(
        ext(&evs[0]),
        [
            ("a2345678901234567890", "x"),
            ("0", "y"),
            ("traceparent", "00-ab")
        ]
    );
}

#[test]
fn extension_order_and_non_string_values() {
    let evs = parse_ok(&format!(
        "[{}]",
        event(
            r#","b":"1","a":2,"c":"3","d":true,"e":{"x":"y"},"f":null,"g":"4","h":[1],"big":1e400,"i":"""#
        )
    ));
    assert_eq!(
        ext(&evs[0]),
        [("b", "1"), ("c", "3"), ("g", "4"), ("i", "")]
    );
    assert_eq!(evs[0].attr("a"), None);
    assert_eq!(evs[0].attr("g"), Some("4"));
}

#[test]
fn duplicate_keys() {
    for (extra, name) in [
        (r#","id":"again""#, "id"),
        (r#","specversion":"1.0""#, "specversion"),
        (r#","data":1,"data":2"#, "data"),
        (r#","subject":null,"subject":"x""#, "subject"),
        (r#","x":"1","x":2"#, "x"),
        (r#","x":null,"x":null"#, "x"),
        // An escaped key is the same key once unescaped.
        (r#","\u0069d":"again""#, "id"),
    ] {
        assert_eq!(
            bad_event(extra),
            format!("Event 0: duplicate attribute '{name}'."),
            "{extra}"
        );
    }
    // Past the short list (hash-set path).
    let many: String = (0..100).map(|i| format!(r#","x{i}":"v""#)).collect();
    let evs = parse_ok(&format!("[{}]", event(&many)));
    assert_eq!(evs[0].ext.len(), 100);
    assert_eq!(evs[0].ext[99].0, "x99");
    assert_eq!(
        bad_event(&format!(r#"{many},"x57":1"#)),
        "Event 0: duplicate attribute 'x57'."
    );
    assert_eq!(
        bad_event(&format!(r#"{many},"x3":1"#)),
        "Event 0: duplicate attribute 'x3'."
    );
}

#[test]
fn escaped_strings_are_unescaped() {
    let body = r#"[{"specversion":"1.0","id":"\u00e9t\u00e9","source":"/s\/t","type":"t","subject":"a\"b\n","ext1":"tab\there","\u0065xt2":"k"}]"#;
    let evs = parse_ok(body);
    let ev = &evs[0];
    assert_eq!(ev.id, "été");
    assert_eq!(ev.source, "/s/t");
    assert_eq!(ev.subject.as_deref(), Some("a\"b\n"));
    assert_eq!(ext(ev), [("ext1", "tab\there"), ("ext2", "k")]);
    // Escaped required attributes count.
    parse_ok(r#"[{"specversion":"1\u002e0","\u0069d":"x","source":"/s","type":"t"}]"#);
    // Surrogate pairs decode; lone surrogates are refused.
    assert_eq!(
        parse_ok(&format!("[{}]", event(r#","subject":"\ud83d\ude00""#)))[0]
            .subject
            .as_deref(),
        Some("😀")
    );
    let msg = bad_event(r#","subject":"\ud800""#);
    assert!(
        msg.starts_with("Event 0: attribute 'subject' is not a valid JSON string: "),
        "{msg}"
    );
    assert!(bad_event(r#","x":"\udc00""#).starts_with("Event 0: attribute 'x' is not a valid"));
}

#[test]
fn raw_and_attributes_are_slices_of_the_body() {
    let e0 = r#"{ "specversion" : "1.0", "id" : "first-event-with-a-long-id-0123456789", "source" : "/subscriptions/abc/resourceGroups/rg/providers/x", "type" : "Contoso.Items.ItemReceived", "data" : { "n" : [1, 2, 3] } }"#;
    let e1 = r#"{"specversion":"1.0","id":"second","source":"/s","type":"t","subject":"an/escaped\/subject/that/is/long/enough","tenant":"tenant-name-that-is-longer-than-inline","data_base64":"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="}"#;
    assert!(e0.len() > 100 && e1.len() > 100);
    let text = format!("\n[\n  {e0} ,\n\t{e1}\n]\n");
    let body = Bytes::copy_from_slice(text.as_bytes());
    let evs = parse_batch(body.clone(), BATCH, &LIMITS).unwrap();
    assert_eq!(evs.len(), 2);
    for (ev, src) in evs.iter().zip([e0, e1]) {
        assert_eq!(&ev.raw[..], src.as_bytes());
        assert_eq!(offset_in(&body, &ev.raw), text.find(src).unwrap());
    }
    // Unescaped attribute strings longer than the inline capacity point into the body.
    let id = &evs[0].id;
    assert_eq!(
        offset_in(&body, id.as_slice()),
        text.find("first-event").unwrap()
    );
    offset_in(&body, evs[0].source.as_slice());
    offset_in(&body, evs[0].ty.as_slice());
    offset_in(&body, evs[1].ext[0].1.as_slice());
    // The escaped subject is an owned copy, unescaped.
    let subject = evs[1].subject.as_ref().unwrap();
    assert_eq!(subject, "an/escaped/subject/that/is/long/enough");
    let (b, s) = (body.as_ptr() as usize, subject.as_slice().as_ptr() as usize);
    assert!(
        s < b || s >= b + body.len(),
        "an escaped string cannot be a slice"
    );
}

#[test]
fn a_bad_event_fails_the_whole_batch() {
    let good = event("");
    let bad = r#"{"specversion":"1.0","id":"x","source":"/s"}"#;
    assert_eq!(
        bad_request(&format!("[{good},{good},{bad},{good}]")),
        "Event 2: required attribute 'type' is missing."
    );
    // The first bad event is the one reported.
    let bad1 = r#"{"specversion":"0.3","id":"x","source":"/s","type":"t"}"#;
    assert_eq!(
        bad_request(&format!("[{good},{bad1},{bad}]")),
        r#"Event 1: 'specversion' must be "1.0", got "0.3"."#
    );
}

#[test]
fn malformed_json() {
    for body in [
        "[",
        "[{",
        "[{}",
        "[{},]",
        "[{\"id\":}]",
        "[1 2]",
        "{\"id\":\"x\"",
        "[{\"a\":1}]]",
        "[{}] x",
        "[\"\\x\"]",
        "[\"a\u{1}\"]",
        "[{'id':'x'}]",
        "[NaN]",
        "[01]",
    ] {
        let msg = match parse(body, JSON) {
            Err(ParseError::BadRequest(m)) => m,
            other => panic!("{body:?}: {other:?}"),
        };
        assert!(
            msg.starts_with("The request body is not valid JSON: "),
            "{body:?}: {msg}"
        );
    }
}

#[test]
fn non_utf8_and_garbage() {
    for body in [
        &b"\xff\xfe[]"[..],
        b"[{\"specversion\":\"1.0\",\"id\":\"\xc3\x28\",\"source\":\"/s\",\"type\":\"t\"}]",
        b"[\xed\xa0\x80]",
    ] {
        let r = parse_batch(Bytes::copy_from_slice(body), BATCH, &LIMITS);
        match r {
            Err(ParseError::BadRequest(m)) => {
                assert!(m.starts_with("The request body is not valid UTF-8"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }
    for body in ["\u{feff}[]", "garbage", "<xml/>", "nul", "\u{0}\u{1}\u{2}"] {
        assert!(
            matches!(parse(body, JSON), Err(ParseError::BadRequest(_))),
            "{body:?}"
        );
    }
}

#[test]
fn deep_nesting_and_huge_values_do_not_panic() {
    let deep = 200_000;
    let top = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
    assert!(matches!(parse(&top, BATCH), Err(ParseError::BadRequest(_))));
    let open = "[".repeat(deep);
    assert!(matches!(
        parse(&open, BATCH),
        Err(ParseError::BadRequest(_))
    ));
    // Deep `data` is scanned without recursion and refused (MAX_EVENT_DEPTH), not accepted to
    // break every later step that parses the event.
    let data = format!("{}{}", "[".repeat(deep), "]".repeat(deep));
    let msg = bad_request(&format!("[{}]", event(&format!(r#","data":{data}"#))));
    assert!(msg.contains("200001 levels deep"), "{msg}");
    let objs = format!("{}1{}", r#"{"a":"#.repeat(deep / 4), "}".repeat(deep / 4));
    let msg = bad_request(&format!(
        "[{}]",
        event(&format!(r#","data":{objs},"x":{objs}"#))
    ));
    assert!(msg.contains("levels deep"), "{msg}");
    // Numbers no parser can hold, where strings or anything go.
    let huge = format!("1{}", "0".repeat(10_000));
    assert!(bad_event(&format!(r#","subject":{huge}"#)).ends_with("got a number."));
    parse_ok(&format!(
        "[{}]",
        event(&format!(r#","n":{huge},"m":-1e-99999"#))
    ));
    // A huge string value and a huge key.
    let long = "x".repeat(100_000);
    parse_ok(&format!("[{}]", event(&format!(r#","subject":"{long}""#))));
    let msg = bad_event(&format!(r#","{long}":1"#));
    assert!(msg.len() < 300, "{}", msg.len());
}

/// xorshift64*: deterministic pseudo-random bytes, no dependency.
struct Rng(u64);

impl Rng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.step() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_truncated_or_mutated_bodies() {
    let seed = format!(
        "[{},{}]",
        event(
            r#","subject":"a\"b\n","time":"2024-05-01T10:00:00.1Z","x":"\u00e9","n":1.5e3,"data":{"k":[true,null,"v"]}"#
        ),
        event(r#","data_base64":"aGVsbG8=","y":false"#)
    );
    let limits = ParseLimits {
        max_event_bytes: 150,
        max_events: 3,
    };
    // Every strict prefix is refused.
    for cut in 0..seed.len() {
        let body = Bytes::copy_from_slice(&seed.as_bytes()[..cut]);
        assert!(parse_batch(body, BATCH, &LIMITS).is_err(), "prefix {cut}");
    }
    assert_eq!(parse(&seed, BATCH).unwrap().len(), 2);
    // Random mutations: flips, insertions, deletions and swaps of interesting bytes.
    let alphabet = b"{}[]\",:\\u0aZ.-+eE \n\x00\xff\xc3\xa9null";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut b = seed.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() + 1);
            let byte = if rng.below(4) == 0 {
                rng.step() as u8
            } else {
                alphabet[rng.below(alphabet.len())]
            };
            match rng.below(3) {
                0 if at < b.len() => b[at] = byte,
                1 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.insert(at, byte),
            }
        }
        let ct = [BATCH, SINGLE, JSON][round % 3];
        let body = Bytes::from(b);
        let lim = if round % 2 == 0 { &LIMITS } else { &limits };
        if let Ok(evs) = parse_batch(body.clone(), ct, lim) {
            for ev in &evs {
                offset_in(&body, &ev.raw);
                assert!(!ev.id.is_empty() && !ev.source.is_empty() && !ev.ty.is_empty());
            }
        }
    }
}

#[test]
fn errors_display_their_message() {
    let e = parse("[]", BATCH).unwrap_err();
    assert_eq!(e.to_string(), "The request contained no events.");
    assert_eq!(e.message(), "The request contained no events.");
}

#[test]
fn many_events_sanity() {
    // A full 1,000-event batch parses, each raw a slice at its own offset.
    let one = event(r#","subject":"orders/1","tenant":"a","data":{"orderId":1}"#);
    let text = format!("[{}]", vec![one.as_str(); 1000].join(","));
    let body = Bytes::from(text);
    let evs = parse_batch(body.clone(), BATCH, &LIMITS).unwrap();
    assert_eq!(evs.len(), 1000);
    for (i, ev) in evs.iter().enumerate() {
        assert_eq!(offset_in(&body, &ev.raw), 1 + i * (one.len() + 1));
    }
}

#[test]
fn depth_counts_containers_not_brackets_in_strings() {
    assert_eq!(json_depth(b"1"), 0);
    assert_eq!(json_depth(br#"{"a":[1,{"b":{}}]}"#), 4);
    assert_eq!(json_depth(br#"{"a":"[[[{{{\"]]]","b":[]}"#), 2);
    assert_eq!(json_depth(br#"[{}, {}, [[]]]"#), 3);
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let ev = |data: &str| {
        format!(r#"{{"specversion":"1.0","id":"x","source":"/s","type":"T","data":{data}}}"#)
    };
    // The event's own object is level 1.
    let at_limit = ev(&deep(MAX_EVENT_DEPTH - 1));
    assert!(parse_batch(Bytes::from(at_limit), JSON, &LIMITS).is_ok());
    let over = ev(&deep(MAX_EVENT_DEPTH));
    let e = parse_batch(Bytes::from(format!("[{},{over}]", ev("1"))), BATCH, &LIMITS).unwrap_err();
    assert!(
        e.message()
            .starts_with("Event 1 nests objects and arrays 121 levels deep"),
        "{e}"
    );
    // simd-json's split counts the depth itself (parse_batch here checks it against serde_json's
    // path), past simd-json's own limit of 1024 too.
    for n in [MAX_EVENT_DEPTH - 2, MAX_EVENT_DEPTH + 1, 500, 1022, 1030] {
        let objs = format!("{}\"[{{\"{}", r#"{"a":"#.repeat(n), "}".repeat(n));
        let _ = parse_batch(Bytes::from(format!("[{}]", ev(&objs))), BATCH, &LIMITS);
        let _ = parse_batch(Bytes::from(ev(&deep(n))), SINGLE, &LIMITS);
    }
    // Every stored event, wrapped 3 more levels by evgrid, still parses with serde_json.
    let wrapped = format!(
        "{{\"value\":[{{\"event\":{}}}]}}",
        ev(&deep(MAX_EVENT_DEPTH - 1))
    );
    serde_json::from_str::<serde_json::Value>(&wrapped).unwrap();
}
