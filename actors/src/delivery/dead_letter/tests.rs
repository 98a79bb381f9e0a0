use super::*;

const T: u64 = 1_714_557_600_000; // 2024-05-01T10:00:00Z

fn parse(rec: &[u8]) -> Value {
    serde_json::from_slice(rec).unwrap()
}

#[test]
fn basic_records_add_azures_fields_to_the_event_as_stored() {
    let d = BasicDeadLetter {
        reason: "MaxDeliveryAttemptsExceeded",
        attempts: 3,
        outcome: Some("Busy"),
        status: Some(503),
        publish_ms: T,
        attempt_ms: T + 1000,
        error: None,
    };
    let body = br#"{"id":"e1","deliveryAttempts":99,"data":{"a":[1,2]}}"#;
    let rec = basic_record(body, DeliverySchema::EventGrid, &d);
    let text = String::from_utf8(rec.clone()).unwrap();
    assert!(
        text.starts_with(
            r#"{"id":"e1","data":{"a":[1,2]},"deadLetterReason":"MaxDeliveryAttemptsExceeded""#
        ),
        "{text}"
    );
    let v = parse(&rec);
    assert_eq!(
        v["deliveryAttempts"], 3,
        "the record's field replaces the event's"
    );
    assert_eq!(v["lastDeliveryOutcome"], "Busy");
    assert_eq!(v["lastHttpStatusCode"], 503);
    assert_eq!(v["publishTime"], "2024-05-01T10:00:00.000Z");
    assert_eq!(v["lastDeliveryAttemptTime"], "2024-05-01T10:00:01.000Z");

    let ce = parse(&basic_record(
        br#"{"id":"e1"}"#,
        DeliverySchema::CloudEvents,
        &d,
    ));
    assert_eq!(ce["deadletterreason"], "MaxDeliveryAttemptsExceeded");
    assert_eq!(ce["lasthttpstatuscode"], 503);
    assert!(ce.get("deadLetterReason").is_none());

    let damaged = parse(&basic_record(b"[1]", DeliverySchema::EventGrid, &d));
    assert_eq!(damaged["unreadableEvent"], "[1]");
    assert_eq!(damaged["deliveryAttempts"], 3);
    assert!(v.get("lastDeliveryError").is_none(), "only when set");

    // A refused certificate says why (lower-cased for CloudEvents, like the rest).
    let refused = BasicDeadLetter {
        outcome: Some("CertificateError"),
        status: None,
        error: Some("certificate error: invalid peer certificate: Expired"),
        ..d
    };
    let eg = parse(&basic_record(body, DeliverySchema::EventGrid, &refused));
    assert_eq!(eg["lastDeliveryOutcome"], "CertificateError");
    assert_eq!(
        eg["lastDeliveryError"],
        "certificate error: invalid peer certificate: Expired"
    );
    let ce = parse(&basic_record(body, DeliverySchema::CloudEvents, &refused));
    assert_eq!(
        ce["lastdeliveryerror"],
        "certificate error: invalid peer certificate: Expired"
    );
}

#[test]
fn namespace_records_wrap_the_event_and_report_http_only_for_push() {
    let d = NamespaceDeadLetter {
        reason: "Event was rejected by the receiver.",
        attempts: 1,
        result: Some("Rejected"),
        via: Via::Pull,
        publish_ms: T,
        attempt_ms: T,
        sequence: 7,
    };
    let rec = namespace_record(br#"{"id":"a"}"#, &d);
    assert!(rec.starts_with(br#"{"event":{"id":"a"},"deadLetterProperties":"#));
    let v = parse(&rec);
    let p = &v["deadLetterProperties"];
    assert_eq!(p["deadletterreason"], "Event was rejected by the receiver.");
    assert_eq!(p["deliveryattempts"], 1);
    assert_eq!(p["deliveryresult"], "Rejected");
    assert_eq!(p["deadlettersequence"], 7);
    assert_eq!(p["publishutc"], "2024-05-01T10:00:00.000Z");
    assert!(
        p.get("lasthttpstatuscode").is_none(),
        "pull: no HTTP status"
    );

    let push = |status| {
        parse(&namespace_record(
            br#"{"id":"a"}"#,
            &NamespaceDeadLetter {
                via: Via::Push {
                    status,
                    error: None,
                },
                result: None,
                ..d
            },
        ))["deadLetterProperties"]
            .clone()
    };
    assert_eq!(push(Some(404))["lasthttpstatuscode"], 404);
    assert!(push(Some(404)).get("lastdeliveryerror").is_none());
    let refused = parse(&namespace_record(
        br#"{"id":"a"}"#,
        &NamespaceDeadLetter {
            via: Via::Push {
                status: None,
                error: Some("certificate error: invalid peer certificate: UnknownIssuer"),
            },
            result: Some("CertificateError"),
            ..d
        },
    ))["deadLetterProperties"]
        .clone();
    assert_eq!(refused["deliveryresult"], "CertificateError");
    assert_eq!(
        refused["lastdeliveryerror"],
        "certificate error: invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(push(None)["lasthttpstatuscode"], Value::Null);
    assert_eq!(push(None)["deliveryresult"], Value::Null);
}
