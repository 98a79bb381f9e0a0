//! JWT tests, and the token signer other identity tests share.

use super::*;
use crate::identity::cert::tests::CA;
use serde_json::json;

pub(crate) const ISSUER_PEM: &str = include_str!("../testdata/jwt.pem");
const KEY: &[u8] = include_bytes!("../testdata/jwt.pk8");
const OTHER_KEY: &[u8] = include_bytes!("../testdata/jwt-other.pk8");
/// 2027-01-15, in seconds.
pub(crate) const NOW_S: u64 = 1_800_000_000;
const NOW_MS: u64 = NOW_S * 1000;

pub(crate) fn settings() -> JwtSettings {
    JwtSettings::new("https://issuer.example", "ns1.example", &[ISSUER_PEM]).unwrap()
}

fn sign_with(key: &[u8], header: &Value, claims: &Value) -> String {
    let h = B64URL.encode(serde_json::to_vec(header).unwrap());
    let p = B64URL.encode(serde_json::to_vec(claims).unwrap());
    let msg = format!("{h}.{p}");
    let kp = ring::signature::RsaKeyPair::from_pkcs8(key).unwrap();
    let mut sig = vec![0; kp.public().modulus_len()];
    kp.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{msg}.{}", B64URL.encode(sig))
}

/// A valid claim set for `sub`, to be adjusted.
pub(crate) fn claims(sub: &str) -> Value {
    json!({"iss": "https://issuer.example", "aud": "ns1.example", "sub": sub,
           "exp": NOW_S + 3600, "nbf": NOW_S - 10, "iat": NOW_S - 10, "jti": "j1"})
}

/// `claims` signed by the configured issuer's key.
pub(crate) fn token(claims: &Value) -> String {
    sign_with(KEY, &json!({"alg": "RS256", "typ": "JWT"}), claims)
}

fn err(t: &str) -> String {
    verify(t.as_bytes(), &settings(), NOW_MS).unwrap_err()
}

#[test]
fn valid_token() {
    let mut c = claims("device-1");
    c["floor"] = json!(3);
    c["site"] = json!("b");
    c["tags"] = json!(["x", "y"]);
    c["big"] = json!(5_000_000_000i64);
    c["f"] = json!(1.5);
    c["o"] = json!({"a": 1});
    c["mixed"] = json!([1, "a"]);
    c["on"] = json!(true);
    c["bad-key"] = json!("v");
    let got = verify(token(&c).as_bytes(), &settings(), NOW_MS).unwrap();
    assert_eq!(got.sub, "device-1");
    assert_eq!(got.expires_ms, (NOW_S + 3600) * 1000);
    let keys: Vec<&str> = got.attributes.keys().map(String::as_str).collect();
    assert_eq!(keys, ["floor", "site", "tags"]);
    assert_eq!(got.attributes["floor"], AttrValue::Int(3));
    assert_eq!(
        got.attributes["tags"],
        AttrValue::Strs(vec!["x".into(), "y".into()])
    );
}

#[test]
fn audience_array_and_absent_typ_and_nbf() {
    let mut c = claims("d");
    c["aud"] = json!(["other", "ns1.example"]);
    c.as_object_mut().unwrap().remove("nbf");
    let t = sign_with(KEY, &json!({"alg": "RS256"}), &c);
    assert!(verify(t.as_bytes(), &settings(), NOW_MS).is_ok());
    // nbf slightly ahead is within the skew.
    let mut c = claims("d");
    c["nbf"] = json!(NOW_S + 30);
    assert!(verify(token(&c).as_bytes(), &settings(), NOW_MS).is_ok());
}

#[test]
fn second_issuer_certificate() {
    let s = JwtSettings::new("https://issuer.example", "ns1.example", &[CA, ISSUER_PEM]).unwrap();
    assert!(verify(token(&claims("d")).as_bytes(), &s, NOW_MS).is_ok());
    let only_ca = JwtSettings::new("https://issuer.example", "ns1.example", &[CA]).unwrap();
    assert!(verify(token(&claims("d")).as_bytes(), &only_ca, NOW_MS).is_err());
}

#[test]
fn claim_failures() {
    let mut c = claims("d");
    c["exp"] = json!(NOW_S);
    assert_eq!(err(&token(&c)), "the token has expired");
    c["exp"] = json!(NOW_S - 1);
    assert_eq!(err(&token(&c)), "the token has expired");
    let mut c = claims("d");
    c["nbf"] = json!(NOW_S + 61);
    assert!(err(&token(&c)).contains("not valid yet"));
    let mut c = claims("d");
    c["aud"] = json!("ns2.example");
    assert!(err(&token(&c)).contains("aud"));
    c["aud"] = json!(["ns2.example"]);
    assert!(err(&token(&c)).contains("aud"));
    let mut c = claims("d");
    c["iss"] = json!("https://evil.example");
    assert!(err(&token(&c)).contains("iss"));
    let mut c = claims("d");
    c.as_object_mut().unwrap().remove("exp");
    assert!(err(&token(&c)).contains("exp"));
    for sub in [json!(""), json!(5), json!("x".repeat(129))] {
        let mut c = claims("d");
        c["sub"] = sub;
        assert!(err(&token(&c)).contains("sub"));
    }
}

#[test]
fn header_and_signature_failures() {
    let c = claims("d");
    // alg none, unsigned.
    let h = B64URL.encode(br#"{"alg":"none"}"#);
    let p = B64URL.encode(serde_json::to_vec(&c).unwrap());
    assert_eq!(err(&format!("{h}.{p}.")), "only RS256 tokens are accepted");
    // HS256 with the certificate as a secret would be the classic confusion: refused by alg.
    let t = sign_with(KEY, &json!({"alg": "HS256"}), &c);
    assert_eq!(err(&t), "only RS256 tokens are accepted");
    let t = sign_with(KEY, &json!({"alg": "RS256", "typ": "JOSE+X"}), &c);
    assert!(err(&t).contains("typ"));
    let t = sign_with(KEY, &json!({"alg": "RS256", "crit": ["x"]}), &c);
    assert!(err(&t).contains("critical"));
    // Another key.
    let t = sign_with(OTHER_KEY, &json!({"alg": "RS256"}), &c);
    assert!(err(&t).contains("signature does not verify"));
    // A payload swapped under a valid signature.
    let good = token(&c);
    let mut evil = claims("admin");
    evil["exp"] = json!(NOW_S + 3600);
    let forged_payload = B64URL.encode(serde_json::to_vec(&evil).unwrap());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert!(err(&forged).contains("signature does not verify"));
}

#[test]
fn malformed_tokens() {
    let good = token(&claims("d"));
    for bad in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.e30.AAAA",
        "e30.e30.AAAA",
        "W10.e30.AAAA",
        &format!("{good}.x"),
        &good.replacen('.', "!.", 1),
    ] {
        assert!(
            verify(bad.as_bytes(), &settings(), NOW_MS).is_err(),
            "{bad}"
        );
    }
    let sig_bad = format!("{}!", good);
    assert!(err(&sig_bad).contains("signature"));
    assert!(verify(&[0xff, 0xfe], &settings(), NOW_MS).is_err());
    let huge = format!("{}{}", good, "A".repeat(MAX_TOKEN));
    assert!(err(&huge).contains("longer than"));
}

#[test]
fn settings_errors() {
    assert!(
        JwtSettings::new("", "a", &[ISSUER_PEM])
            .unwrap_err()
            .contains("tokenIssuer")
    );
    assert!(JwtSettings::new("i", "", &[ISSUER_PEM]).is_err());
    assert!(
        JwtSettings::new("i", "a", &[])
            .unwrap_err()
            .contains("1 or 2")
    );
    assert!(JwtSettings::new("i", "a", &[ISSUER_PEM, ISSUER_PEM, ISSUER_PEM]).is_err());
    let e = JwtSettings::new("i", "a", &[ISSUER_PEM, "junk"]).unwrap_err();
    assert!(e.starts_with("issuer certificate 2:"), "{e}");
    let two = format!("{ISSUER_PEM}{CA}");
    assert!(
        JwtSettings::new("i", "a", &[&two])
            .unwrap_err()
            .contains("found 2")
    );
    let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    assert!(
        JwtSettings::new("i", "a", &[garbage])
            .unwrap_err()
            .contains("not an X.509")
    );
}
