use super::*;

const LIMITS: MqttLimits = MqttLimits {
    topic: TopicLimits {
        max_len: 32,
        max_levels: 4,
    },
    max_qos: 2,
    max_packet_size: 256,
};

fn parse_q(query: &str, h: Headers<'_>) -> Result<AppMessage, Refused> {
    parse(query, &h, &LIMITS, Instant::now())
}

fn ok(query: &str, h: Headers<'_>) -> AppMessage {
    parse_q(query, h).unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

/// The 400 message for `query` and `h`.
fn refused(query: &str, h: Headers<'_>) -> String {
    match parse_q(query, h) {
        Err(Refused::BadRequest(m)) => m,
        other => panic!("{query}: expected 400, got {other:?}"),
    }
}

/// The 403 message for `query` and `h` (a topic no message may be published to).
fn forbidden(query: &str, h: Headers<'_>) -> String {
    match parse_q(query, h) {
        Err(Refused::Forbidden(m)) => m,
        other => panic!("{query}: expected 403, got {other:?}"),
    }
}

fn props(m: &AppMessage) -> &Properties {
    m.props.as_deref().expect("properties")
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

#[test]
fn defaults_and_topic_decoding() {
    let m = ok(
        "topic=devices%2Fd17%2Fprompt&api-version=x",
        Headers::default(),
    );
    assert_eq!(m.topic, "devices/d17/prompt");
    assert_eq!((m.qos, m.retain), (1, false));
    assert!(m.props.is_none() && m.expires_at.is_none() && m.publisher.is_none());
    assert!(m.payload.is_empty());
    // Unencoded slashes, a case-insensitive name, and UTF-8 after decoding.
    assert_eq!(ok("TOPIC=a/b", Headers::default()).topic, "a/b");
    assert_eq!(ok("topic=caf%C3%A9", Headers::default()).topic, "café");
    // The first of two topic parameters.
    assert_eq!(ok("topic=a&topic=b", Headers::default()).topic, "a");
}

#[test]
fn topic_errors() {
    let h = Headers::default;
    assert!(refused("api-version=x", h()).contains("topic query parameter is required"));
    assert!(forbidden("topic=", h()).contains("is empty"));
    for q in ["topic=a/+", "topic=a%2F%2B", "topic=a/%23", "topic=%23"] {
        assert!(forbidden(q, h()).contains("wildcard"), "{q}");
    }
    assert!(forbidden("topic=a%FFb", h()).contains("not valid UTF-8"));
    assert!(forbidden("topic=a%00b", h()).contains("U+0000"));
    let long = format!("topic={}", "x".repeat(33));
    let m = forbidden(&long, h());
    assert!(m.contains("33 bytes") && m.contains("limit is 32"), "{m}");
    let m = forbidden("topic=a/b/c/d/e", h());
    assert!(m.contains("5 levels") && m.contains("limit is 4"), "{m}");
    // At the limits exactly: accepted.
    ok(&format!("topic={}", "x".repeat(32)), h());
    ok("topic=a/b/c/d", h());
}

#[test]
fn qos_from_query_or_header() {
    let hq = |v: &'static [u8]| Headers {
        qos: Some(v),
        ..Headers::default()
    };
    assert_eq!(ok("topic=t&qos=0", Headers::default()).qos, 0);
    assert_eq!(ok("topic=t", hq(b"0")).qos, 0);
    assert_eq!(ok("topic=t", hq(b" 1 ")).qos, 1);
    // The query wins over the header, either way.
    assert_eq!(ok("topic=t&qos=0", hq(b"1")).qos, 0);
    assert_eq!(ok("topic=t&qos=1", hq(b"0")).qos, 1);
    // An empty header is absent: the default.
    assert_eq!(ok("topic=t", hq(b"")).qos, 1);
    let m = refused("topic=t&qos=2", Headers::default());
    assert!(
        m.contains("qos query parameter is 2") && m.contains("QoS 0 and 1"),
        "{m}"
    );
    let m = refused("topic=t", hq(b"2"));
    assert!(m.contains("mqtt-qos header is 2"), "{m}");
    assert!(refused("topic=t&qos=x", Headers::default()).contains("'x'; it must be 0 or 1"));
    assert!(refused("topic=t", hq(b"01")).contains("must be 0 or 1"));
    assert!(refused("topic=t", hq(b"\xff")).contains("mqtt-qos header is not valid UTF-8"));
    // Above the broker's maximum.
    let max0 = MqttLimits {
        max_qos: 0,
        ..LIMITS
    };
    let m = parse("topic=t&qos=1", &Headers::default(), &max0, Instant::now());
    assert!(
        matches!(&m, Err(Refused::BadRequest(s)) if s.contains("above the broker's maximum QoS 0")),
        "{m:?}"
    );
    // The default follows a broker that takes QoS 0 only.
    let m = parse("topic=t", &Headers::default(), &max0, Instant::now()).unwrap();
    assert_eq!(m.qos, 0);
}

#[test]
fn retain_from_query_or_header() {
    let hr = |v: &'static [u8]| Headers {
        retain: Some(v),
        ..Headers::default()
    };
    assert!(ok("topic=t&retain=1", Headers::default()).retain);
    assert!(ok("topic=t", hr(b"1")).retain);
    assert!(!ok("topic=t", hr(b"0")).retain);
    assert!(!ok("topic=t&retain=0", hr(b"1")).retain);
    assert!(ok("topic=t&retain=1", hr(b"0")).retain);
    let m = refused("topic=t", hr(b"2"));
    assert!(
        m.contains("mqtt-retain header is '2'; it must be 0 or 1"),
        "{m}"
    );
    assert!(refused("topic=t&retain=true", Headers::default()).contains("retain query parameter"));
}

#[test]
fn every_property() {
    let corr = b64("\u{1}\u{2}corr");
    let users = b64(r#"[{"Urgency":"alert"},{"RequestId":"55f4"},{"Urgency":"again"}]"#);
    let h = Headers {
        response_topic: Some(b"devices%2Fd17%2Freply"),
        correlation_data: Some(corr.as_bytes()),
        user_properties: Some(users.as_bytes()),
        content_type: Some(b"text/plain;charset=UTF-8"),
        message_expiry: Some(b"3600"),
        payload_format_indicator: Some(b"1"),
        ..Headers::default()
    };
    let now = Instant::now();
    let m = parse("topic=t", &h, &LIMITS, now).unwrap();
    let p = props(&m);
    assert_eq!(p.response_topic.as_deref(), Some("devices/d17/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x01\x02corr"[..]));
    assert_eq!(p.content_type.as_deref(), Some("text/plain;charset=UTF-8"));
    assert!(p.payload_utf8);
    let pairs: Vec<(&str, &str)> = p
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("Urgency", "alert"),
            ("RequestId", "55f4"),
            ("Urgency", "again")
        ]
    );
    assert_eq!(m.expires_at, Some(now + Duration::from_secs(3600)));
    // Each property alone makes a box; unpadded base64 is accepted.
    let only = |h: Headers<'_>| ok("topic=t", h);
    let m = only(Headers {
        correlation_data: Some(b"YWI"),
        ..Headers::default()
    });
    assert_eq!(props(&m).correlation_data.as_deref(), Some(&b"ab"[..]));
    let m = only(Headers {
        payload_format_indicator: Some(b"0"),
        message_expiry: Some(b"0"),
        ..Headers::default()
    });
    assert!(
        m.props.is_none() && m.expires_at.is_none(),
        "PFI 0 and expiry 0 are the defaults"
    );
    let empty = b64("[]");
    let m = only(Headers {
        user_properties: Some(empty.as_bytes()),
        ..Headers::default()
    });
    assert!(m.props.is_none());
}

#[test]
fn property_errors() {
    let h = |f: fn(&mut Headers<'static>)| {
        let mut h = Headers::default();
        f(&mut h);
        refused("topic=t", h)
    };
    assert!(h(|h| h.response_topic = Some(b"a/%2B")).contains("mqtt-response-topic header 'a/+'"));
    assert!(h(|h| h.response_topic = Some(b"%FF")).contains("response-topic header is not valid"));
    assert!(h(|h| h.correlation_data = Some(b"not base64!")).contains("mqtt-correlation-data"));
    assert!(
        h(|h| h.content_type = Some(b"\xfe")).contains("Content-Type header is not valid UTF-8")
    );
    assert!(h(|h| h.content_type = Some(b"a\0b")).contains("U+0000"));
    for bad_expiry in [&b"abc"[..], b"-1", b"1.5", b"4294967296"] {
        let hd = Headers {
            message_expiry: Some(bad_expiry),
            ..Headers::default()
        };
        let m = refused("topic=t", hd);
        assert!(m.contains("mqtt-message-expiry header is"), "{m}");
    }
    ok(
        "topic=t",
        Headers {
            message_expiry: Some(b"4294967295"),
            ..Headers::default()
        },
    );
    for bad_pfi in [&b"2"[..], b"yes"] {
        let hd = Headers {
            payload_format_indicator: Some(bad_pfi),
            ..Headers::default()
        };
        assert!(refused("topic=t", hd).contains("it must be 0 or 1"));
    }
}

#[test]
fn user_property_errors() {
    let refuse = |json: &str| {
        let v = b64(json);
        let h = Headers {
            user_properties: Some(v.as_bytes()),
            ..Headers::default()
        };
        refused("topic=t", h)
    };
    let raw = |v: &'static [u8]| {
        refused(
            "topic=t",
            Headers {
                user_properties: Some(v),
                ..Headers::default()
            },
        )
    };
    assert!(raw(b"%%%").contains("not valid base64"));
    assert!(raw(b"\xff").contains("not valid UTF-8"));
    assert!(refuse("not json").contains("not usable"));
    assert!(refuse(r#"{"a":"b"}"#).contains("not usable"));
    assert!(refuse(r#"["a"]"#).contains("not usable"));
    assert!(refuse(r#"[{"a":"b","c":"d"}]"#).contains("Item 0"));
    assert!(refuse(r#"[{"a":"b"},{}]"#).contains("Item 1"));
    assert!(refuse(r#"[{"a":1}]"#).contains("exactly one string member"));
    assert!(refuse(r#"[{"a":null}]"#).contains("Item 0"));
    assert!(refuse(r#"[{"a\u0000":"b"}]"#).contains("U+0000"));
}

#[test]
fn payload_checks() {
    let utf8 = Headers {
        payload_format_indicator: Some(b"1"),
        ..Headers::default()
    };
    let m = ok("topic=t", utf8);
    let got = with_payload(m.clone(), Bytes::from_static("héllo".as_bytes()), &LIMITS).unwrap();
    assert_eq!(&got.payload[..], "héllo".as_bytes());
    let err = with_payload(m, Bytes::from_static(b"\xff\xfe"), &LIMITS).unwrap_err();
    assert!(matches!(&err, Refused::BadRequest(s) if s.contains("not valid UTF-8")));
    // Without PFI 1 any bytes go, and an empty payload is a message too.
    let plain = ok("topic=t", Headers::default());
    with_payload(plain.clone(), Bytes::from_static(b"\xff"), &LIMITS).unwrap();
    assert!(
        with_payload(plain.clone(), Bytes::new(), &LIMITS)
            .unwrap()
            .payload
            .is_empty()
    );
    // The whole PUBLISH must fit: 1 + 4 + 2 + 1 + 2 + 4 = 14 bytes around the payload.
    let fits = Bytes::from(vec![b'x'; 256 - 14]);
    with_payload(plain.clone(), fits, &LIMITS).unwrap();
    let over = Bytes::from(vec![b'x'; 256 - 13]);
    match with_payload(plain, over, &LIMITS) {
        Err(Refused::TooLarge(s)) => {
            assert!(
                s.contains("257 bytes") && s.contains("256 bytes (mqtt.max_packet_size)"),
                "{s}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn packet_size_counts_properties() {
    let users = b64(r#"[{"k":"v"}]"#);
    let h = Headers {
        response_topic: Some(b"rt"),
        correlation_data: Some(b"YWI="),
        user_properties: Some(users.as_bytes()),
        content_type: Some(b"ct"),
        message_expiry: Some(b"5"),
        payload_format_indicator: Some(b"1"),
        ..Headers::default()
    };
    let m = ok("topic=t", h);
    // 14 + response topic 5 + correlation 5 + content type 5 + PFI 2 + user property 7 + expiry 5.
    assert_eq!(packet_size(&m), 14 + 5 + 5 + 5 + 2 + 7 + 5);
}

#[test]
fn api_versions() {
    assert!(api_version("api-version=2025-02-15-preview", &PUBLISH_API_VERSIONS).is_ok());
    assert!(
        api_version(
            "topic=t&API-VERSION=2025-08-01-preview",
            &PUBLISH_API_VERSIONS
        )
        .is_ok()
    );
    assert!(api_version("api-version=2025-11-16-preview", &RETAINED_API_VERSIONS).is_ok());
    let Err(Refused::BadRequest(m)) = api_version("topic=t", &PUBLISH_API_VERSIONS) else {
        panic!()
    };
    assert!(m.contains("is required") && m.contains("2025-02-15-preview, 2025-08-01-preview"));
    let Err(Refused::BadRequest(m)) = api_version("api-version=2024-06-01", &RETAINED_API_VERSIONS)
    else {
        panic!()
    };
    assert!(m.contains("'2024-06-01' is not supported") && m.contains("2025-11-16-preview"));
}

#[test]
fn encodings_for_the_retained_read_api() {
    assert_eq!(
        encode_topic("devices/d 1/é+#"),
        "devices/d%201/%C3%A9%2B%23"
    );
    assert_eq!(
        String::from_utf8(percent_decode(&encode_topic("a b/ü"), false)).unwrap(),
        "a b/ü"
    );
    let pairs = vec![
        (ByteString::from("Urgency"), ByteString::from("alert")),
        (ByteString::from("Urgency"), ByteString::from("again")),
    ];
    // What the retained API answers, the publish API reads back unchanged.
    assert_eq!(
        user_properties(&encode_user_properties(&pairs)).unwrap(),
        pairs
    );
    assert_eq!(encode_base64(b"ab"), "YWI=");
    let now = Instant::now();
    assert_eq!(expiry_secs_left(None, now), None);
    assert_eq!(
        expiry_secs_left(Some(now + Duration::from_secs(90)), now),
        Some(90)
    );
    assert_eq!(
        expiry_secs_left(Some(now + Duration::from_millis(300)), now),
        Some(1)
    );
    assert_eq!(quoted(&"é".repeat(70)).chars().count(), MAX_QUOTED + 1);
}
