use super::*;
use crate::identity::cert::pem_certificates;
use crate::identity::cert::tests::{CA, leaf};

const NOW: u64 = 1_700_000_000_000;

fn creds<'a>() -> Credentials<'a> {
    Credentials {
        client_id: "cid",
        ..Default::default()
    }
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn request_with_only_client_id() {
    assert_eq!(
        json(&request_body(&creds())),
        serde_json::json!({"clientId": "cid"})
    );
}

#[test]
fn request_with_everything() {
    let mut l = leaf();
    l.chain.push(pem_certificates(CA).unwrap().remove(0));
    let c = Credentials {
        client_id: "cid",
        username: Some("user"),
        password: Some(b"pw\xff"),
        auth_method: Some("CUSTOM-X"),
        auth_data: Some(b"\x00\x01"),
        cert: Some(&l),
    };
    let v = json(&request_body(&c));
    assert_eq!(v["userName"], "user");
    assert_eq!(v["password"], B64.encode(b"pw\xff"));
    assert_eq!(v["authenticationMethod"], "CUSTOM-X");
    assert_eq!(v["authenticationData"], "AAE=");
    let leaf_pem = v["clientCertificate"].as_str().unwrap();
    assert_eq!(
        pem_certificates(leaf_pem).unwrap(),
        vec![l.chain[0].clone()]
    );
    let chain_pem = v["clientCertificateChain"].as_str().unwrap();
    assert_eq!(
        pem_certificates(chain_pem).unwrap(),
        vec![l.chain[1].clone()]
    );
    // Without intermediates, no chain field.
    let l2 = leaf();
    let c2 = Credentials {
        cert: Some(&l2),
        ..creds()
    };
    let v2 = json(&request_body(&c2));
    assert!(v2.get("clientCertificate").is_some());
    assert!(v2.get("clientCertificateChain").is_none());
}

#[test]
fn allow_reply() {
    let body = br#"{"decision":"allow","clientAuthenticationName":"device-17",
        "attributes":{"floor":3,"site":"b","tags":["x","y"],"on":true,"f":1.5,"o":{},"mixed":[1,"a"],
            "big":2147483648,"neg":-2147483648,"bad-key":"x","":"y","k\u00e9":"z"},
        "expiration":1800000000}"#;
    let id = read_reply(body, &creds(), NOW).unwrap();
    assert_eq!(id.auth_name, "device-17");
    assert_eq!(id.client, None);
    assert_eq!(id.method, AuthMethod::Webhook);
    assert_eq!(id.expires_ms, Some(1_800_000_000_000));
    // Keys `[A-Za-z0-9_]` and int32 only, as for JWT claims.
    assert_eq!(id.attributes.len(), 5, "{:?}", id.attributes);
    assert_eq!(id.attributes["neg"], AttrValue::Int(-2_147_483_648));
    assert_eq!(id.claims, id.attributes);
    assert_eq!(id.attributes["floor"], AttrValue::Int(3));
    assert_eq!(id.attributes["site"], AttrValue::Str("b".into()));
    assert_eq!(
        id.attributes["tags"],
        AttrValue::Strs(vec!["x".into(), "y".into()])
    );
    assert_eq!(id.attributes["on"], AttrValue::Bool(true));
}

#[test]
fn allow_reply_name_defaults() {
    let id = read_reply(br#"{"decision":"Allow"}"#, &creds(), NOW).unwrap();
    assert_eq!(id.auth_name, "cid");
    assert_eq!(id.expires_ms, None);
    let c = Credentials {
        username: Some("u"),
        ..creds()
    };
    assert_eq!(
        read_reply(br#"{"decision":"allow"}"#, &c, NOW)
            .unwrap()
            .auth_name,
        "u"
    );
}

#[test]
fn deny_and_bad_replies() {
    assert_eq!(
        read_reply(
            br#"{"decision":"deny","errorReason":"nope"}"#,
            &creds(),
            NOW
        ),
        Err(Denied::NotAuthorized("nope".into()))
    );
    // The reason reaches log lines: control characters escaped.
    assert_eq!(
        read_reply(
            br#"{"decision":"deny","errorReason":"a\nforged line\u001b[0m"}"#,
            &creds(),
            NOW
        ),
        Err(Denied::NotAuthorized("a\\u{a}forged line\\u{1b}[0m".into()))
    );
    assert!(matches!(
        read_reply(br#"{"decision":"deny"}"#, &creds(), NOW),
        Err(Denied::NotAuthorized(_))
    ));
    let fractional = br#"{"decision":"allow","expiration":1800000000.5}"#;
    let id = read_reply(fractional, &creds(), NOW).unwrap();
    assert_eq!(id.expires_ms, Some(1_800_000_000_000));
    let expired = br#"{"decision":"allow","expiration":1600000000}"#;
    assert!(matches!(
        read_reply(expired, &creds(), NOW),
        Err(Denied::NotAuthorized(_))
    ));
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"decision":"maybe"}"#,
        br#"{"decision":"allow","clientAuthenticationName":5}"#,
        br#"{"decision":"allow","clientAuthenticationName":""}"#,
        br#"{"decision":"allow","attributes":[]}"#,
        br#"{"decision":"allow","expiration":"soon"}"#,
        br#"{"decision":"allow","expiration":-5}"#,
    ] {
        assert!(
            matches!(read_reply(bad, &creds(), NOW), Err(Denied::Unavailable(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!(
        r#"{{"decision":"allow","clientAuthenticationName":"{}"}}"#,
        "a".repeat(129)
    );
    assert!(matches!(
        read_reply(long.as_bytes(), &creds(), NOW),
        Err(Denied::Unavailable(_))
    ));
}
