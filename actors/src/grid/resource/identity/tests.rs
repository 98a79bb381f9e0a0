use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::identity::directory::Directory;

const SALT: [u8; 16] = [7; 16];

fn new_client(props: Value) -> Result<(ClientDef, Value), String> {
    let pw = password_change(&props, SALT)?;
    client("dev-1", &props, None, pw)
}

fn client_err(props: Value) -> String {
    new_client(props).expect_err("should be refused")
}

#[test]
fn names_follow_azure_rules() {
    assert!(check_name(Kind::Client, "dev:1").is_ok());
    assert!(check_name(Kind::ClientGroup, "dev:1").is_err());
    assert!(check_name(Kind::TopicSpace, "ab").is_err());
    assert!(check_name(Kind::TopicSpace, &"a".repeat(51)).is_err());
    assert!(check_name(Kind::PermissionBinding, "a_b-c").is_err());
    assert_eq!(
        check_name(Kind::CaCertificate, "x").unwrap_err(),
        "The CA certificate name 'x' is invalid: it must be 3 to 50 characters of letters, digits and hyphens."
    );
    assert_eq!(
        check_name(Kind::ClientGroup, "$ALL").unwrap_err(),
        "The client group '$all' is built in: it cannot be edited or deleted."
    );
    for k in Kind::ALL {
        assert_eq!(Kind::from_segment(&k.segment().to_uppercase()), Some(k));
    }
    assert_eq!(Kind::from_segment("topics"), None);
}

#[test]
fn limits_per_namespace() {
    assert!(check_limit(Kind::CaCertificate, 9).is_ok());
    assert_eq!(
        check_limit(Kind::ClientGroup, 10).unwrap_err(),
        "The namespace already has 10 client groups, the most it may have besides the built-in '$all' (limit 10); delete one first."
    );
    assert!(check_limit(Kind::TopicSpace, 10).is_err());
    assert!(check_limit(Kind::PermissionBinding, 99).is_ok());
    assert!(check_limit(Kind::PermissionBinding, 100).is_err());
    assert!(check_limit(Kind::Client, MAX_CLIENTS - 1).is_ok());
    assert!(check_limit(Kind::Client, MAX_CLIENTS).is_err());
}

#[test]
fn client_defaults() {
    let (c, out) = new_client(Value::Null).unwrap();
    assert_eq!(c.auth_name, "dev-1");
    assert!(c.enabled);
    assert_eq!(c.cert, CertValidation::SubjectMatches);
    assert!(c.attributes.is_empty());
    assert_eq!(c.password, None);
    assert_eq!(
        out,
        json!({"provisioningState": "Succeeded", "authenticationName": "dev-1",
            "state": "Enabled",
            "clientCertificateAuthentication": {"validationScheme": "SubjectMatchesAuthenticationName"},
            "attributes": {}})
    );
}

#[test]
fn client_fields() {
    let (c, out) = new_client(json!({
        "authenticationName": "Device-One",
        "state": "disabled",
        "description": "the first",
        "clientCertificateAuthentication": {"validationScheme": "dnsmatchesauthenticationname"},
        "attributes": {"floor": 3, "room_name": "lab", "tags": ["a", "b"], "on": true},
    }))
    .unwrap();
    assert_eq!(c.auth_name, "Device-One");
    assert!(!c.enabled);
    assert_eq!(c.cert, CertValidation::DnsMatches);
    assert_eq!(c.attributes["floor"], AttrValue::Int(3));
    assert_eq!(c.attributes["room_name"], AttrValue::Str("lab".into()));
    assert_eq!(
        c.attributes["tags"],
        AttrValue::Strs(vec!["a".into(), "b".into()])
    );
    assert_eq!(c.attributes["on"], AttrValue::Bool(true));
    assert_eq!(out["state"], "Disabled");
    assert_eq!(out["description"], "the first");
    assert_eq!(
        out["clientCertificateAuthentication"]["validationScheme"],
        "DnsMatchesAuthenticationName"
    );
}

#[test]
fn client_refusals() {
    for (v, want) in [
        (json!({"authenticationName": ""}), "1 to 128 characters"),
        (
            json!({"authenticationName": "x".repeat(129)}),
            "1 to 128 characters",
        ),
        (json!({"state": "On"}), "'Enabled' or 'Disabled'"),
        (
            json!({"attributes": {"bad-key": 1}}),
            "letters, digits and underscores",
        ),
        (json!({"attributes": {"k": 1.5}}), "must be an integer"),
        (json!({"attributes": {"k": [1]}}), "array of strings"),
        (json!({"attributes": {"k": {"a": 1}}}), "must be an integer"),
        (
            json!({"attributes": {"k": "x".repeat(4100)}}),
            "smaller than 4096 bytes",
        ),
        (json!({"attributes": [1]}), "must be a JSON object"),
        (
            json!({"clientCertificateAuthentication": {"validationScheme": "Magic"}}),
            "is not supported",
        ),
        (
            json!({"clientCertificateAuthentication": {"validationScheme": "ThumbprintMatch"}}),
            "allowedThumbprints is required",
        ),
        (
            json!({"clientCertificateAuthentication": {"validationScheme": "ThumbprintMatch",
                "allowedThumbprints": []}}),
            "allowedThumbprints is required",
        ),
        (
            json!({"clientCertificateAuthentication": {"validationScheme": "ThumbprintMatch",
                "allowedThumbprints": ["a".repeat(64), "b".repeat(64), "c".repeat(64)]}}),
            "at most 2",
        ),
        (
            json!({"clientCertificateAuthentication": {"allowedThumbprints": ["a".repeat(64)]}}),
            "only allowed with validationScheme 'ThumbprintMatch'",
        ),
        (json!({"password": ""}), "must not be empty"),
        (json!({"password": 5}), "must be a string"),
        (json!({"description": "d".repeat(4097)}), "at most 4096"),
    ] {
        let e = client_err(v.clone());
        assert!(e.contains(want), "{v}: {e}");
    }
    assert_eq!(
        client_err(json!({"state": "On"})),
        "properties.state must be 'Enabled' or 'Disabled', got 'On'"
    );
    // Just under the bound is accepted.
    let (c, _) = new_client(json!({"attributes": {"k": "x".repeat(4000)}})).unwrap();
    assert_eq!(c.attributes.len(), 1);
}

#[test]
fn thumbprints_are_normalised() {
    let t = "ab:".repeat(31) + "ab";
    let (c, out) = new_client(json!({"clientCertificateAuthentication": {
        "validationScheme": "ThumbprintMatch", "allowedThumbprints": [t]}}))
    .unwrap();
    let want = "AB".repeat(32);
    assert_eq!(c.cert, CertValidation::Thumbprints(vec![want.clone()]));
    assert_eq!(
        out["clientCertificateAuthentication"],
        json!({"validationScheme": "ThumbprintMatch", "allowedThumbprints": [want]})
    );
    let e = client_err(json!({"clientCertificateAuthentication": {
        "validationScheme": "ThumbprintMatch", "allowedThumbprints": ["xyz"]}}));
    assert!(
        e.starts_with("properties.clientCertificateAuthentication.allowedThumbprints[0]: "),
        "{e}"
    );
}

#[test]
fn authentication_name_is_immutable() {
    let (old, _) = new_client(json!({"authenticationName": "a1"})).unwrap();
    let e = client(
        "dev-1",
        &json!({"authenticationName": "a2"}),
        Some(&old),
        PasswordChange::Keep,
    )
    .unwrap_err();
    assert_eq!(
        e,
        "properties.authenticationName cannot be changed once the client exists: client 'dev-1' authenticates as 'a1'; delete the client and create it again to change it."
    );
    // Absent keeps it; the same value is fine.
    let (c, _) = client("dev-1", &json!({}), Some(&old), PasswordChange::Keep).unwrap();
    assert_eq!(c.auth_name, "a1");
    assert!(
        client(
            "dev-1",
            &json!({"authenticationName": "a1"}),
            Some(&old),
            PasswordChange::Keep
        )
        .is_ok()
    );
}

#[test]
fn password_is_hashed_kept_and_removed_never_shown() {
    let (c, out) = new_client(json!({"password": "s3cret"})).unwrap();
    let h = c.password.clone().expect("hashed");
    assert!(h.verify(b"s3cret"));
    assert!(!out.to_string().contains("s3cret"));
    assert!(!out.to_string().contains(&h.0));
    assert!(out.get("password").is_none());
    // Absent keeps the hash, null removes it, a new one replaces it.
    let keep = password_change(&json!({}), SALT).unwrap();
    assert_eq!(keep, PasswordChange::Keep);
    let (k, _) = client("dev-1", &json!({}), Some(&c), keep).unwrap();
    assert_eq!(k.password, Some(h.clone()));
    let rm = password_change(&json!({"password": null}), SALT).unwrap();
    assert_eq!(rm, PasswordChange::Remove);
    let (r, _) = client("dev-1", &json!({}), Some(&c), rm).unwrap();
    assert_eq!(r.password, None);
    let set = password_change(&json!({"password": "other"}), SALT).unwrap();
    let (n, _) = client("dev-1", &json!({}), Some(&c), set).unwrap();
    assert!(n.password.unwrap().verify(b"other"));
}

fn dir_with(clients: &[(&str, &str)]) -> Directory {
    let mut d = Directory::default();
    for (name, auth) in clients {
        let (c, _) = client(
            name,
            &json!({"authenticationName": auth}),
            None,
            PasswordChange::Keep,
        )
        .unwrap();
        d.clients
            .insert(crate::identity::fold(auth).into_owned(), Arc::new(c));
    }
    d
}

#[test]
fn authentication_names_are_unique_case_insensitively() {
    let d = dir_with(&[("dev-1", "Sensor-A")]);
    assert_eq!(
        check_auth_name_free(&d, "dev-2", "sensor-a").unwrap_err(),
        "The authenticationName 'sensor-a' is already used by client 'dev-1' in this namespace (authentication names are unique, case-insensitively)."
    );
    // The client itself may keep its own.
    assert!(check_auth_name_free(&d, "DEV-1", "Sensor-A").is_ok());
    assert!(check_auth_name_free(&d, "dev-2", "sensor-b").is_ok());
    // Beyond ASCII too, as the broker matches names at CONNECT.
    let d = dir_with(&[("dev-3", "Gerät-Ä")]);
    assert!(check_auth_name_free(&d, "dev-4", "GERÄT-ä").is_err());
    // One folding with the broker's lookup: a capital sigma is σ even at the end of a word.
    let d = dir_with(&[("dev-5", "ΟΔΟΣ")]);
    assert!(check_auth_name_free(&d, "dev-6", "οδοσ").is_err());
}

#[test]
fn groups_parse_their_query() {
    let (g, out) = client_group(
        "sensors",
        &json!({"query": "attributes.type = 'sensor'", "description": "d"}),
    )
    .unwrap();
    assert_eq!(g.query.text, "attributes.type = 'sensor'");
    assert_eq!(out["query"], "attributes.type = 'sensor'");
    assert_eq!(out["description"], "d");
    assert!(
        client_group("g", &json!({}))
            .unwrap_err()
            .contains("properties.query is required")
    );
    let e = client_group("g", &json!({"query": "attributes.type = "})).unwrap_err();
    assert!(e.starts_with("properties.query is invalid: "), "{e}");
}

#[test]
fn topic_spaces_parse_their_templates() {
    let (s, out) = topic_space(
        "telemetry",
        &json!({"topicTemplates": ["devices/${client.authenticationName}/telemetry", "x/#"]}),
    )
    .unwrap();
    assert_eq!(s.templates.len(), 2);
    assert_eq!(out["topicTemplates"][1], "x/#");
    for (v, want) in [
        (json!({}), "topicTemplates is required"),
        (json!({"topicTemplates": []}), "topicTemplates is required"),
        (json!({"topicTemplates": "a"}), "array of strings"),
        (json!({"topicTemplates": [1]}), "[0] must be a string"),
        (json!({"topicTemplates": vec!["a"; 11]}), "at most 10"),
        (
            json!({"topicTemplates": ["ok", "${client.nope}"]}),
            "topicTemplates[1] '${client.nope}' is invalid: ",
        ),
    ] {
        let e = topic_space("s", &v).unwrap_err();
        assert!(e.contains(want), "{v}: {e}");
    }
}

#[test]
fn bindings_name_existing_groups_and_spaces() {
    let (b, out) = permission_binding(
        "b1",
        &json!({"clientGroupName": "Sensors", "topicSpaceName": "Telemetry", "permission": "publisher"}),
    )
    .unwrap();
    assert_eq!(
        (b.group.as_str(), b.space.as_str()),
        ("sensors", "telemetry")
    );
    assert_eq!(b.permission, Permission::Publisher);
    assert_eq!(out["permission"], "Publisher");
    assert_eq!(out["clientGroupName"], "Sensors");
    for (v, want) in [
        (
            json!({"topicSpaceName": "t", "permission": "Publisher"}),
            "clientGroupName is required",
        ),
        (
            json!({"clientGroupName": "g", "permission": "Publisher"}),
            "topicSpaceName is required",
        ),
        (
            json!({"clientGroupName": "g", "topicSpaceName": "t"}),
            "permission is required",
        ),
        (
            json!({"clientGroupName": "g", "topicSpaceName": "t", "permission": "Owner"}),
            "'Publisher' or 'Subscriber', got 'Owner'",
        ),
    ] {
        let e = permission_binding("b", &v).unwrap_err();
        assert!(e.contains(want), "{v}: {e}");
    }
    let mut d = Directory::default();
    assert_eq!(
        check_binding_refs(&d, &b).unwrap_err(),
        "properties.clientGroupName names the client group 'sensors', which does not exist in this namespace; create it first."
    );
    d.groups.push(
        client_group("SENSORS", &json!({"query": "attributes.a = 1"}))
            .unwrap()
            .0,
    );
    assert!(
        check_binding_refs(&d, &b)
            .unwrap_err()
            .contains("topic space 'telemetry'")
    );
    d.spaces.push(
        topic_space("telemetry", &json!({"topicTemplates": ["a"]}))
            .unwrap()
            .0,
    );
    assert!(check_binding_refs(&d, &b).is_ok());
    // `$all` always exists.
    let (all, _) = permission_binding(
        "b2",
        &json!({"clientGroupName": "$all", "topicSpaceName": "telemetry", "permission": "Subscriber"}),
    )
    .unwrap();
    assert!(check_binding_refs(&d, &all).is_ok());
    // A bound group or space cannot be deleted.
    d.bindings.push(b);
    assert_eq!(
        check_unbound(&d, Kind::ClientGroup, "Sensors").unwrap_err(),
        "The client group 'Sensors' is used by the permission binding 'b1'; delete or change the binding first."
    );
    assert!(check_unbound(&d, Kind::TopicSpace, "telemetry").is_err());
    assert!(check_unbound(&d, Kind::TopicSpace, "other").is_ok());
}

#[test]
fn ca_certificates_need_a_certificate() {
    assert!(
        ca_certificate("ca1", &json!({}))
            .unwrap_err()
            .contains("encodedCertificate is required")
    );
    let e = ca_certificate("ca1", &json!({"encodedCertificate": "not a certificate"})).unwrap_err();
    assert!(e.starts_with("properties.encodedCertificate: "), "{e}");
}

#[test]
fn ca_certificates_show_their_expiry() {
    let pem = include_str!("../../../identity/testdata/ca.pem");
    let (ca, out) = ca_certificate("fleet-ca", &json!({"encodedCertificate": pem})).unwrap();
    assert_eq!(ca.name, "fleet-ca");
    assert_eq!(out["encodedCertificate"], pem);
    let exp = out["expiryTimeInUtc"].as_str().unwrap();
    assert_eq!(
        crate::model::time::parse_rfc3339_ms(exp),
        ca.not_after_ms(),
        "{exp}"
    );
    // A leaf is no CA.
    let leaf = include_str!("../../../identity/testdata/leaf.pem");
    let e = ca_certificate("x", &json!({"encodedCertificate": leaf})).unwrap_err();
    assert!(e.starts_with("properties.encodedCertificate: "), "{e}");
}
