use super::*;

fn hook(extra: Value) -> Value {
    let mut v = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9/hook?code=secret"}}});
    if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
        a.extend(b);
    }
    v
}

#[test]
fn defaults_batching_and_redaction() {
    let (c, out) = subscription(&hook(json!({})), InputSchema::EventGrid, 0).unwrap();
    assert_eq!(
        (
            c.delivery.max_events,
            c.delivery.batching,
            c.delivery.max_attempts,
            c.delivery.ttl_secs
        ),
        (1, false, 30, 86_400)
    );
    assert_eq!(c.delivery.schema, DeliverySchema::EventGrid);
    let mut v = hook(json!({}));
    v["destination"]["properties"]["maxEventsPerBatch"] = json!(10);
    v["destination"]["properties"]["deliveryAttributeMappings"] = json!([
        {"name": "Authorization", "type": "Static", "properties": {"value": "Bearer x", "isSecret": true}},
        {"name": "Channel", "type": "Dynamic", "properties": {"sourceField": "data.system"}}]);
    let (c, stored) = subscription(&v, InputSchema::EventGrid, 0).unwrap();
    assert_eq!(
        (
            c.delivery.max_events,
            c.delivery.preferred_bytes,
            c.delivery.batching
        ),
        (10, 65_536, true)
    );
    assert_eq!(c.delivery.headers.len(), 2);
    let shown = redacted(&stored, "Succeeded");
    let d = &shown["destination"]["properties"];
    assert_eq!(d["endpointBaseUrl"], "http://127.0.0.1:9/hook");
    assert!(d.get("endpointUrl").is_none());
    assert!(
        d["deliveryAttributeMappings"][0]["properties"]
            .get("value")
            .is_none()
    );
    assert_eq!(
        d["deliveryAttributeMappings"][1]["properties"]["sourceField"],
        "data.system"
    );
    assert_eq!(out["retryPolicy"]["maxDeliveryAttempts"], 30);
}

#[test]
fn refusals_name_the_property() {
    let cases = [
        (
            json!({"destination": {"endpointType": "EventHub"}}),
            "not supported",
        ),
        (json!({}), "destination is required"),
        (
            hook(json!({"retryPolicy": {"maxDeliveryAttempts": 31}})),
            "1 to 30",
        ),
        (
            hook(json!({"retryPolicy": {"eventTimeToLiveInMinutes": 0}})),
            "1 to 1440",
        ),
        (
            hook(json!({"eventDeliverySchema": "Xml"})),
            "eventDeliverySchema",
        ),
        (
            hook(json!({"expirationTimeUtc": "2000-01-01T00:00:00Z"})),
            "Invalid expiration time",
        ),
        (hook(json!({"labels": [1]})), "labels"),
        (
            hook(json!({"filter": {"advancedFilters": [{"operatorType": "Nope", "key": "id"}]}})),
            "Nope",
        ),
    ];
    for (v, want) in cases {
        let e = subscription(&v, InputSchema::EventGrid, 1_700_000_000_000).unwrap_err();
        assert!(e.contains(want), "{v}: {e}");
    }
    let ce_to_eg = hook(json!({"eventDeliverySchema": "EventGridSchema"}));
    assert!(
        subscription(&ce_to_eg, InputSchema::CloudEvents, 0)
            .unwrap_err()
            .contains("not supported")
    );
    let mut https = hook(json!({}));
    https["destination"]["properties"]["endpointUrl"] = json!("https://x/y");
    assert!(subscription(&https, InputSchema::EventGrid, 0).is_ok());
    https["destination"]["properties"]["endpointUrl"] = json!("http://[::1]:8080/y");
    assert!(
        subscription(&https, InputSchema::EventGrid, 0).is_ok(),
        "plain IPv6 is fine"
    );
    for (url, want) in [
        ("ftp://x/y", "absolute http:// or https:// URL"),
        ("https:///y", "no valid host"),
        ("https://u@x/y", "no valid host"),
        (
            "https://[::1]:8443/y",
            "IPv6 address literals are not supported",
        ),
    ] {
        https["destination"]["properties"]["endpointUrl"] = json!(url);
        let e = subscription(&https, InputSchema::EventGrid, 0).unwrap_err();
        assert!(e.contains(want), "{url}: {e}");
    }
    for (mapping, want) in [
        (
            json!({"name": "Content-Type", "type": "Static", "properties": {"value": "text/plain"}}),
            "sets itself",
        ),
        (
            json!({"name": "X-Ok", "type": "Static", "properties": {"value": "a\u{7f}b"}}),
            "printable",
        ),
        (
            json!({"name": "X-Ok", "type": "Static", "properties": {"value": "a\nb"}}),
            "printable",
        ),
    ] {
        let mut v = hook(json!({}));
        v["destination"]["properties"]["deliveryAttributeMappings"] = json!([mapping]);
        let e = subscription(&v, InputSchema::EventGrid, 0).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    let mut aeg = hook(json!({}));
    aeg["destination"]["properties"]["deliveryAttributeMappings"] =
        json!([{"name": "aeg-x", "type": "Static", "properties": {"value": "v"}}]);
    assert!(
        subscription(&aeg, InputSchema::EventGrid, 0)
            .unwrap_err()
            .contains("aeg-")
    );
}

#[test]
fn topics_and_mappings() {
    let (c, out) = source(&Value::Null, false).unwrap();
    assert_eq!(
        (c.input, out["inputSchema"].as_str()),
        (InputSchema::EventGrid, Some("EventGridSchema"))
    );
    assert!(source(&json!({"inputSchema": "CustomEventSchema"}), false).is_err());
    let (c, out) = source(
        &json!({"inputSchema": "CustomEventSchema", "inputSchemaMapping": {"inputSchemaMappingType": "Json", "properties": {
            "id": {"sourceField": "myId"}, "eventType": {"sourceField": "kind", "defaultValue": "T"}}}}),
        true,
    )
    .unwrap();
    let m = c.mapping.unwrap();
    assert_eq!(m.id.source.as_deref(), Some("myId"));
    assert_eq!(m.event_type.default.as_deref(), Some("T"));
    assert_eq!(out["autoCreateTopicWithFirstSubscription"], true);
    assert!(source(&json!({"inputSchema": "Avro"}), false).is_err());
}
