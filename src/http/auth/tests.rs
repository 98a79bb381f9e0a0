//! Unit tests of `auth`.

use super::sas::{
    NANOS_PER_SEC, covers, decode_key, parse_expiry, quote, resource_covers, resource_path,
    signature,
};
use super::*;
use actix_web::http::header::{HeaderName, HeaderValue};
use std::time::Duration;

/// The fake key of docs/eventgrid.md §3 / §9.2 ("this is a fake key for testing only!").
const KEY: &str = "dGhpcyBpcyBhIGZha2Uga2V5IGZvciB0ZXN0aW5nIG9ubHkh";
const KEY2: &str = "c2Vjb25kIGZha2Uga2V5IGZvciB0ZXN0aW5nIG9ubHk=";
const OTHER: &str = "b3RoZXIgZmFrZSBrZXkgbm90IGNvbmZpZ3VyZWQ=";

const EX1_RESOURCE: &str = "https://mytopic.westus2-1.eventgrid.azure.net/api/events";
const EX1_STS: &str = "r=https%3A%2F%2Fmytopic.westus2-1.eventgrid.azure.net%2Fapi%2Fevents&e=2030-01-01T00%3A00%3A00Z";
const EX1_SIG: &str = "vJRqnR50yJ548hK/dHpiQzWzvXBZpeEzA2KQ98oCTgQ=";
const EX1_TOKEN: &str = "r=https%3A%2F%2Fmytopic.westus2-1.eventgrid.azure.net%2Fapi%2Fevents&e=2030-01-01T00%3A00%3A00Z&s=vJRqnR50yJ548hK%2FdHpiQzWzvXBZpeEzA2KQ98oCTgQ%3D";
const EX2_RESOURCE: &str = "https://myns.westus2-1.eventgrid.azure.net/topics/orders";
const EX2_TOKEN: &str = "r=https%3A%2F%2Fmyns.westus2-1.eventgrid.azure.net%2Ftopics%2Forders&e=2030-01-01T00%3A00%3A00Z&s=H4s3w5RecVTx2oNwRyibMY8ud%2FC%2FxgsH3wyMxKMmrow%3D";
const PY_RESOURCE: &str = "http://127.0.0.1:18765/api/events?apiVersion=2018-01-01";
const PY_TOKEN: &str = "r=http%3A%2F%2F127.0.0.1%3A18765%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2030-01-01%2000%3A00%3A00%2B00%3A00&s=jSXhvPe7xYdz%2FF0IrLS3UVV%2F5YuJ1EwLrt%2BBTEWnLFw%3D";
/// .NET-style (HttpUtility.UrlEncode: lowercase hex, '+' for space), signature from Python.
const DOTNET_TOKEN: &str = "r=https%3a%2f%2fmytopic.westus2-1.eventgrid.azure.net%2fapi%2fevents&e=6%2f15%2f2017+6%3a20%3a15+PM&s=rb6%2fjTlzmZEB1bUi5TQrDXeTen2V%2bd5qXUS0schGTFc%3d";

const Y2030: i128 = 1_893_456_000 * NANOS_PER_SEC;

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}
/// 2025-01-01T00:00:00Z
fn now() -> SystemTime {
    at(1_735_689_600)
}
fn sas(t: &str) -> Credential {
    Credential::Sas(t.to_string())
}
fn topic(t: &str) -> Result<(), AuthError> {
    verify(
        &sas(t),
        &[KEY, KEY2],
        "/topics/t1/api/events",
        "/topics/t1",
        now(),
    )
}
fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}
fn key(s: &str) -> Credential {
    Credential::Key(s.to_string())
}

// --- docs/eventgrid.md worked examples ----------------------------------------------------

#[test]
fn worked_example_1_signature_and_token() {
    assert_eq!(signature(EX1_STS, KEY), EX1_SIG);
    assert_eq!(
        sign_sas(EX1_RESOURCE, "2030-01-01T00:00:00Z", KEY),
        EX1_TOKEN
    );
    assert_eq!(topic(EX1_TOKEN), Ok(()));
    assert_eq!(
        verify(&sas(EX1_TOKEN), &[KEY], "/api/events", "", now()),
        Ok(())
    );
}

#[test]
fn worked_example_2_namespace_topic() {
    assert_eq!(
        sign_sas(EX2_RESOURCE, "2030-01-01T00:00:00Z", KEY),
        EX2_TOKEN
    );
    let v = |path: &str| verify(&sas(EX2_TOKEN), &[KEY], path, "/namespaces/myns", now());
    // Azure-style r relative to the namespace.
    assert_eq!(v("/namespaces/myns/topics/orders:publish"), Ok(()));
    assert_eq!(
        v("/namespaces/myns/topics/orders/eventsubscriptions/s1:receive"),
        Ok(())
    );
    assert_eq!(
        v("/namespaces/myns/topics/other:publish"),
        Err(AuthError::WrongResource)
    );
    assert_eq!(
        v("/namespaces/myns/topics/orders2:publish"),
        Err(AuthError::WrongResource)
    );
    // Literal prefix too (namespace served at the root).
    assert_eq!(
        verify(&sas(EX2_TOKEN), &[KEY], "/topics/orders:publish", "", now()),
        Ok(())
    );
}

#[test]
fn python_sdk_generate_sas_token() {
    assert_eq!(
        sign_sas(PY_RESOURCE, "2030-01-01 00:00:00+00:00", KEY),
        PY_TOKEN
    );
    assert_eq!(topic(PY_TOKEN), Ok(()));
    assert_eq!(
        verify(
            &sas(PY_TOKEN),
            &[KEY],
            "/topics/t1/api/events",
            "/topics/t1",
            at(1_893_455_999)
        ),
        Ok(())
    );
    assert_eq!(
        verify(
            &sas(PY_TOKEN),
            &[KEY],
            "/topics/t1/api/events",
            "/topics/t1",
            at(1_893_456_000)
        ),
        Err(AuthError::Expired)
    );
    assert_eq!(
        verify(
            &sas(PY_TOKEN),
            &[KEY],
            "/topics/t2/api/events",
            "/topics/t2",
            now()
        ),
        Ok(()),
        "host-only r covers any resource signed with its key"
    );
    // Naive datetime variant.
    let naive = sign_sas(PY_RESOURCE, "2030-01-01 00:00:00", KEY);
    assert!(naive.contains("&e=2030-01-01%2000%3A00%3A00&s="));
    assert_eq!(topic(&naive), Ok(()));
}

#[test]
fn dotnet_token_lowercase_hex_and_plus() {
    let v = |t| verify(&sas(DOTNET_TOKEN), &[KEY], "/api/events", "", at(t));
    assert_eq!(v(1_497_550_814), Ok(()));
    assert_eq!(v(1_497_550_815), Err(AuthError::Expired));
    assert_eq!(v(1_600_000_000), Err(AuthError::Expired));
}

// --- keys ---------------------------------------------------------------------------------

#[test]
fn access_keys() {
    let v = |c: &Credential| {
        verify(
            c,
            &[KEY, KEY2],
            "/topics/t1/api/events",
            "/topics/t1",
            now(),
        )
    };
    assert_eq!(v(&key(KEY)), Ok(()));
    assert_eq!(v(&key(KEY2)), Ok(()));
    assert_eq!(v(&key(OTHER)), Err(AuthError::WrongKey));
    assert_eq!(v(&key(&KEY[..KEY.len() - 1])), Err(AuthError::WrongKey));
    assert_eq!(v(&key(&format!("{KEY}x"))), Err(AuthError::WrongKey));
    assert_eq!(v(&key("")), Err(AuthError::Missing));
    assert_eq!(v(&Credential::Missing), Err(AuthError::Missing));
    assert_eq!(v(&Credential::Bearer), Err(AuthError::BearerUnsupported));
    // Empty configured keys never match.
    assert_eq!(
        verify(&key("x"), &["", ""], "/", "", now()),
        Err(AuthError::WrongKey)
    );
    assert_eq!(
        verify(&key("x"), &[], "/", "", now()),
        Err(AuthError::WrongKey)
    );
}

#[test]
fn sas_key2_accepted_and_wrong_key_rejected() {
    let t2 = sign_sas("http://localhost/topics/t1", "2030-01-01T00:00:00Z", KEY2);
    assert_eq!(topic(&t2), Ok(()));
    assert_eq!(
        verify(
            &sas(&t2),
            &[KEY2],
            "/topics/t1/api/events",
            "/topics/t1",
            now()
        ),
        Ok(())
    );
    let other = sign_sas("http://localhost/topics/t1", "2030-01-01T00:00:00Z", OTHER);
    assert_eq!(topic(&other), Err(AuthError::BadSignature));
    // Invalid configured keys are skipped, not fatal.
    assert_eq!(
        verify(
            &sas(&t2),
            &["!!notbase64!!", KEY2],
            "/topics/t1",
            "/topics/t1",
            now()
        ),
        Ok(())
    );
}

#[test]
fn expired_rejected() {
    let t = sign_sas("http://h/topics/t1", "2020-01-01 00:00:00+00:00", KEY);
    assert_eq!(topic(&t), Err(AuthError::Expired));
    let t = sign_sas("http://h/topics/t1", "1577836800", KEY);
    assert_eq!(topic(&t), Err(AuthError::Expired));
}

#[test]
fn tampered_token_rejected() {
    let tampered = EX1_TOKEN.replace("mytopic", "yourtopic");
    assert_eq!(topic(&tampered), Err(AuthError::BadSignature));
    let tampered = EX1_TOKEN.replace("2030", "2031");
    assert_eq!(topic(&tampered), Err(AuthError::BadSignature));
    // Re-encoding the prefix (even equivalently) breaks the signature: it is checked as sent.
    let reencoded = EX1_TOKEN.replace("%3A", "%3a");
    assert_eq!(topic(&reencoded), Err(AuthError::BadSignature));
    // Signature from another token.
    let mixed = format!(
        "{}&s={}",
        EX1_STS, "H4s3w5RecVTx2oNwRyibMY8ud%2FC%2FxgsH3wyMxKMmrow%3D"
    );
    assert_eq!(topic(&mixed), Err(AuthError::BadSignature));
}

#[test]
fn resource_mismatch_rejected() {
    for r in [
        "http://h/topics/t2",
        "http://h/topics/t1x",
        "http://h/topics/t1/api/events/more",
        "http://h/namespaces/ns1",
        "http://h/topics/t1/../t2",
    ] {
        let t = sign_sas(r, "2030-01-01T00:00:00Z", KEY);
        assert_eq!(topic(&t), Err(AuthError::WrongResource), "{r}");
    }
    for r in [
        "http://h/topics/t1",
        "HTTP://H:8080/TOPICS/T1/",
        "https://proxy.example/topics/t1/api/events?api-version=2018-01-01",
        "http://h/topics",
        "http://h/",
        "http://h",
        "/topics/t1",
        "h.example.net/api/events",
    ] {
        let t = sign_sas(r, "2030-01-01T00:00:00Z", KEY);
        assert_eq!(topic(&t), Ok(()), "{r}");
    }
}

#[test]
fn resource_segment_boundaries() {
    assert!(covers("/a/b", "/a/b"));
    assert!(covers("/a/b", "/a/b/c"));
    assert!(covers("/a/b", "/a/b:publish"));
    assert!(covers("/A/B", "/a/b"));
    assert!(!covers("/a/b", "/a/bc"));
    assert!(!covers("/a/b", "/a"));
    assert!(covers("", "/x"));
    assert_eq!(resource_path("https://h:1/x/y/?q=1#f"), "/x/y");
    assert_eq!(resource_path("https://h?q"), "");
    assert_eq!(resource_path("myns.eventgrid.azure.net"), "");
    assert_eq!(resource_path("/p?x=http://other/"), "/p");
    assert!(resource_covers(
        "https://myns.westus2-1.eventgrid.azure.net",
        "/namespaces/ns1/topics/t1:publish",
        "/namespaces/ns1"
    ));
    assert!(!resource_covers(
        "https://myns.westus2-1.eventgrid.azure.net",
        "/namespaces/ns2/topics/t1:publish",
        "/namespaces/ns1"
    ));
    assert!(resource_covers(
        "http://h/namespaces/ns1/topics/t1/eventsubscriptions/s1",
        "/namespaces/ns1/topics/t1/eventsubscriptions/s1:receive",
        "/namespaces/ns1/"
    ));
    assert!(!resource_covers(
        "http://h/namespaces/ns1/topics/t1/eventsubscriptions/s1",
        "/namespaces/ns1/topics/t1:publish",
        "/namespaces/ns1"
    ));
}

// --- expiry formats -----------------------------------------------------------------------

#[test]
fn expiry_formats() {
    let ms = |n: i128| n * 1_000_000;
    let cases: &[(&str, i128)] = &[
        ("2030-01-01T00:00:00Z", Y2030),
        ("2030-01-01T00:00:00z", Y2030),
        ("2030-01-01T00:00:00.123456", Y2030 + ms(123) + 456_000),
        (
            "2024-01-01T00:00:00.123456",
            1_704_067_200 * NANOS_PER_SEC + 123_456_000,
        ),
        ("2030-01-01T00:00:00.1234567Z", Y2030 + 123_456_700),
        ("2030-01-01T00:00:00.1234567891Z", Y2030 + 123_456_789),
        ("2030-01-01 00:00:00+00:00", Y2030),
        ("2030-01-01 00:00:00 00:00", Y2030), // '+' form-decoded to a space
        ("2030-01-01 00:00:00", Y2030),
        ("2030-01-01T02:00:00+02:00", Y2030),
        ("2030-01-01T02:00:00+0200", Y2030),
        ("2030-01-01T02:00:00+02", Y2030),
        ("2029-12-31T22:00:00-02:00", Y2030),
        ("2030-01-01T00:00Z", Y2030),
        ("2030-01-01", Y2030),
        ("2030-01-01T00:00:00 UTC", Y2030),
        ("6/15/2017 6:20:15 PM", 1_497_550_815 * NANOS_PER_SEC),
        ("06/15/2017 06:20:15 pm", 1_497_550_815 * NANOS_PER_SEC),
        ("6/15/2017 18:20:15", 1_497_550_815 * NANOS_PER_SEC),
        ("1/1/2030 12:00:00 AM", Y2030),
        ("12/31/2029 12:00:00 PM", Y2030 - 12 * 3600 * NANOS_PER_SEC),
        ("1/1/2030", Y2030),
        ("1893456000", Y2030),
        (" 1893456000 ", Y2030),
        ("0", 0),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -NANOS_PER_SEC),
        ("2000-02-29T00:00:00Z", 951_782_400 * NANOS_PER_SEC),
        ("2100-03-01T00:00:00Z", 4_107_542_400 * NANOS_PER_SEC),
    ];
    for (s, want) in cases {
        assert_eq!(parse_expiry(s), Some(*want), "{s}");
    }
    for bad in [
        "",
        " ",
        "tomorrow",
        "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:60:00Z",
        "2030-01-01T00:00:00+25:00",
        "2030-01-01T00:00:00X",
        "2030-01-01T00:00:00.Z",
        "2030-01-01T",
        "2030-1",
        "13/1/2030 1:00:00 PM",
        "6/15/2017 13:20:15 PM",
        "6/15/2017 0:20:15 AM",
        "6/15/2017 6:20:15 XM",
        "6/15/17 6:20:15 PM",
        "99999999999999999999999",
        "-5",
        "1e9",
        "２０３０-01-01",
    ] {
        assert_eq!(parse_expiry(bad), None, "{bad:?}");
    }
}

#[test]
fn every_expiry_format_verifies_in_a_token() {
    for e in [
        "2030-01-01T00:00:00Z",
        "2029-01-01T00:00:00.123456",
        "2030-01-01 00:00:00+00:00",
        "2030-01-01 00:00:00",
        "6/15/2029 6:20:15 PM",
        "1893456000",
    ] {
        let t = sign_sas("http://h/topics/t1", e, KEY);
        assert_eq!(topic(&t), Ok(()), "{e}");
        let later = verify(
            &sas(&t),
            &[KEY],
            "/topics/t1",
            "/topics/t1",
            at(1_900_000_000),
        );
        assert_eq!(later, Err(AuthError::Expired), "{e}");
    }
}

#[test]
fn unparseable_expiry_names_value() {
    let t = sign_sas("http://h/topics/t1", "next tuesday", KEY);
    match topic(&t) {
        Err(AuthError::Malformed(m)) => assert!(m.contains("\"next tuesday\""), "{m}"),
        other => panic!("{other:?}"),
    }
}

// --- credential extraction ----------------------------------------------------------------

#[test]
fn credential_from_headers() {
    let q = "";
    let c = |h: &[(&str, &[u8])]| credential(&headers(h), q);
    assert_eq!(c(&[("authorization", b"SharedAccessKey abc")]), key("abc"));
    assert_eq!(
        c(&[("Authorization", b"sharedaccesskey  abc ")]),
        key("abc")
    );
    assert_eq!(
        c(&[("AUTHORIZATION", b"SharedAccessSignature r=a&e=b&s=c")]),
        sas("r=a&e=b&s=c")
    );
    assert_eq!(
        c(&[("authorization", b"SHAREDACCESSSIGNATURE\tr=a&e=b&s=c")]),
        sas("r=a&e=b&s=c")
    );
    assert_eq!(
        c(&[("authorization", b"Bearer eyJfake.token.sig")]),
        Credential::Bearer
    );
    assert_eq!(c(&[("authorization", b"bearer")]), Credential::Bearer);
    assert_eq!(c(&[("aeg-sas-key", b"k1")]), key("k1"));
    assert_eq!(c(&[("AEG-SAS-KEY", b" k1 ")]), key("k1"));
    assert_eq!(
        c(&[("Aeg-Sas-Token", EX1_TOKEN.as_bytes())]),
        sas(EX1_TOKEN)
    );
    assert_eq!(c(&[]), Credential::Missing);
    assert_eq!(c(&[("aeg-sas-key", b"")]), Credential::Missing);
    assert_eq!(
        c(&[("authorization", b"SharedAccessKey")]),
        Credential::Missing
    );
    assert_eq!(
        c(&[("authorization", b"Basic dXNlcjpwdw==")]),
        Credential::Missing
    );
    // Non-UTF-8 header bytes do not panic and do not verify.
    let cred = c(&[("aeg-sas-key", b"\xff\xfe")]);
    assert!(matches!(cred, Credential::Key(_)));
    assert_eq!(
        verify(&cred, &[KEY], "/", "", now()),
        Err(AuthError::WrongKey)
    );
}

#[test]
fn credential_precedence() {
    let h = headers(&[
        ("aeg-sas-token", b"r=t&e=1&s=x"),
        ("aeg-sas-key", b"hk"),
        ("authorization", b"Bearer x"),
        ("authorization", b"SharedAccessSignature r=a&e=1&s=y"),
        ("authorization", b"SharedAccessKey ak"),
    ]);
    let q = "aeg-sas-key=qk&aeg-sas-token=qt";
    assert_eq!(credential(&h, q), key("ak"));
    let h = headers(&[
        ("aeg-sas-token", b"r=t&e=1&s=x"),
        ("aeg-sas-key", b"hk"),
        ("authorization", b"Bearer x"),
        ("authorization", b"SharedAccessSignature r=a&e=1&s=y"),
    ]);
    assert_eq!(credential(&h, q), sas("r=a&e=1&s=y"));
    let h = headers(&[
        ("aeg-sas-token", b"r=t&e=1&s=x"),
        ("aeg-sas-key", b"hk"),
        ("authorization", b"Bearer x"),
    ]);
    assert_eq!(credential(&h, q), Credential::Bearer);
    let h = headers(&[("aeg-sas-token", b"r=t&e=1&s=x"), ("aeg-sas-key", b"hk")]);
    assert_eq!(credential(&h, q), key("hk"));
    let h = headers(&[("aeg-sas-token", b"r=t&e=1&s=x")]);
    assert_eq!(credential(&h, q), sas("r=t&e=1&s=x"));
    let h = HeaderMap::new();
    assert_eq!(credential(&h, q), key("qk"));
    assert_eq!(credential(&h, "aeg-sas-token=qt&aeg-sas-key="), sas("qt"));
}

#[test]
fn credential_from_query() {
    let h = HeaderMap::new();
    let c = |q: &str| credential(&h, q);
    // Doc examples leave '+', '/', '=' unencoded.
    assert_eq!(c("aeg-sas-key=ab+c/d=="), key("ab+c/d=="));
    assert_eq!(c("?aeg-sas-key=ab%2Bc%2fd%3D%3D"), key("ab+c/d=="));
    assert_eq!(
        c("api-version=2018-01-01&AEG-SAS-KEY=ab+c/d==&x=1"),
        key("ab+c/d==")
    );
    assert_eq!(c("aeg-sas-key=bad%zz%"), key("bad%zz%"));
    assert_eq!(c(&format!("aeg-sas-key={KEY}")), key(KEY));
    // Token percent-encoded as a whole (as a URL builder would).
    let enc = quote(EX1_TOKEN);
    assert_eq!(
        c(&format!("api-version=2018-01-01&aeg-sas-token={enc}")),
        sas(EX1_TOKEN)
    );
    // Token pasted unencoded: its e= and s= parameters are reassembled.
    assert_eq!(
        c(&format!("aeg-sas-token={EX1_TOKEN}&api-version=2018-01-01")),
        sas(EX1_TOKEN)
    );
    assert_eq!(c(&format!("aeg-sas-token={PY_TOKEN}")), sas(PY_TOKEN));
    assert_eq!(c(""), Credential::Missing);
    assert_eq!(c("?"), Credential::Missing);
    assert_eq!(c("aeg-sas-key=&aeg-sas-token="), Credential::Missing);
    assert_eq!(c("aeg-sas-keyx=1&xaeg-sas-token=2"), Credential::Missing);
    // End to end: query-borne credentials verify.
    assert_eq!(
        verify(&c(&format!("aeg-sas-key={KEY}")), &[KEY], "/", "", now()),
        Ok(())
    );
    assert_eq!(
        verify(
            &c(&format!("aeg-sas-token={}", quote(PY_TOKEN))),
            &[KEY],
            "/topics/t1/api/events",
            "/topics/t1",
            now()
        ),
        Ok(())
    );
}

// --- malformed input ----------------------------------------------------------------------

#[test]
fn malformed_tokens() {
    let is_malformed = |t: &str| matches!(topic(t), Err(AuthError::Malformed(_)));
    assert!(is_malformed("r=a&e=b"));
    assert!(is_malformed("garbage"));
    assert!(is_malformed("r=a&e=b&s="));
    assert!(is_malformed("r=a&e=b&s=%%%"));
    assert!(is_malformed("r=a&e=b&s=%FF%FE"));
    assert_eq!(topic(""), Err(AuthError::Missing));
    assert_eq!(topic("r=a&e=b&s=AAAA"), Err(AuthError::BadSignature));
    // Signed but structurally incomplete.
    let no_r = format!("e=2030&s={}", quote(&signature("e=2030", KEY)));
    assert!(is_malformed(&no_r));
    let no_e = format!("r=x&s={}", quote(&signature("r=x", KEY)));
    assert!(is_malformed(&no_e));
    let bad_utf8 = "r=%FF%FE&e=2030-01-01";
    let t = format!("{bad_utf8}&s={}", quote(&signature(bad_utf8, KEY)));
    assert!(is_malformed(&t));
    let bad_utf8 = "r=x&e=%C3";
    let t = format!("{bad_utf8}&s={}", quote(&signature(bad_utf8, KEY)));
    assert!(is_malformed(&t));
}

#[test]
fn signature_decoding_is_lenient() {
    // Unencoded base64 signature, missing padding, '+' turned into a space.
    let unenc = format!("{EX1_STS}&s={EX1_SIG}");
    assert_eq!(topic(&unenc), Ok(()));
    let unpadded = format!("{EX1_STS}&s={}", EX1_SIG.trim_end_matches('='));
    assert_eq!(topic(&unpadded), Ok(()));
    let (py_prefix, py_sig) = PY_TOKEN.split_at(PY_TOKEN.rfind("&s=").unwrap());
    let with_sig = |f: &dyn Fn(&str) -> String| format!("{py_prefix}{}", f(py_sig));
    assert_eq!(topic(&with_sig(&|s| s.replace("%2B", "+"))), Ok(()));
    assert_eq!(topic(&with_sig(&|s| s.replace("%2B", " "))), Ok(()));
    assert_eq!(
        topic(&with_sig(&|s| s.replace("%2F", "/").replace("%3D", "="))),
        Ok(())
    );
    assert_eq!(
        topic(&with_sig(&|s| s.replace("%2B", "-").replace("%2F", "_"))),
        Ok(())
    );
    // '+' in e is a space (form encoding) only when sent literally; %2B stays '+'.
    assert_eq!(
        topic(&PY_TOKEN.replace("%2B", "+")),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn quote_encodes_like_python() {
    // Percent-decoding is tested with the query parser (crate::http::request::query).
    assert_eq!(
        quote("a b/c:~()*!.'_-+=é"),
        "a%20b%2Fc%3A~()*!.'_-%2B%3D%C3%A9"
    );
}

#[test]
fn error_messages_are_sentences_without_secrets() {
    for e in [
        AuthError::Missing,
        AuthError::WrongKey,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::Malformed("it has no signature.".into()),
        AuthError::WrongResource,
        AuthError::BearerUnsupported,
    ] {
        let m = e.to_string();
        assert!(m.starts_with("The ") || m.starts_with("No ") || m.starts_with("Bearer "));
        assert!(m.ends_with('.'), "{m}");
    }
    let t = sign_sas("http://h/topics/t1", "garbage-expiry", KEY);
    let m = topic(&t).unwrap_err().to_string();
    assert!(!m.contains(KEY) && !m.contains(&t[t.rfind("&s=").unwrap() + 3..]));
    let long = "x".repeat(500);
    let t = sign_sas("http://h/topics/t1", &long, KEY);
    assert!(topic(&t).unwrap_err().to_string().len() < 400);
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "&",
        "&s=",
        "s=",
        "&s=&s=&s=",
        "r=&e=&s=",
        "%",
        "%%",
        "%ZZ",
        "r=%&e=%&s=%",
        "r=%E2%82&e=%E2&s=%E2",
        "r=\u{0}&e=\u{0}&s=\u{0}",
        "r=é&e=ü&s=ß",
        "r=https%3A%2F%2F&e=9999-12-31T23:59:59Z&s=AAAA",
        "r=/&e=99999999999999&s====",
        "=====",
        "r===&e===&s===",
        "r=a&e=0001-01-01&s=xx",
        "::::",
        "https://",
        "://",
        "/../..",
    ];
    let h = headers(&[]);
    for s in samples {
        for cred in [key(s), sas(s)] {
            let _ = verify(&cred, &[KEY, s, ""], s, s, now());
            let _ = verify(&cred, &[s], "/", "", UNIX_EPOCH - Duration::from_secs(5));
        }
        let _ = credential(&h, s);
        let _ = parse_expiry(s);
        let _ = resource_covers(s, s, s);
        let _ = sign_sas(s, s, s);
        let _ = signature(s, s);
    }
    // Pseudo-random tokens over an alphabet of meaningful characters (deterministic LCG).
    let alphabet: Vec<char> = "rse=&%+/:.?#0123456789aAfFzZT- PMé\u{0}".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut s = String::new();
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let len = (x >> 58) as usize;
        for _ in 0..len {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s.push(alphabet[(x >> 33) as usize % alphabet.len()]);
        }
        let _ = verify(&sas(&s), &[KEY], &s, &s, now());
        let _ = parse_expiry(&s);
        let _ = credential(&h, &s);
        let _ = resource_covers(&s, "/topics/t1", "/topics/t1");
        // Validly signed garbage reaches the r/e parsing stage.
        let signed = format!("{s}&s={}", quote(&signature(&s, KEY)));
        let _ = verify(&sas(&signed), &[KEY], "/topics/t1", "/topics/t1", now());
    }
}

#[test]
fn generated_keys() {
    let a = evgrid_actors::model::keys::generate_key().unwrap();
    let b = evgrid_actors::model::keys::generate_key().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.len(), 44);
    assert_eq!(decode_key(&a).map(|k| k.len()), Some(32));
    // A generated key signs and verifies.
    let t = sign_sas("http://h/topics/t1", "2030-01-01T00:00:00Z", &a);
    assert_eq!(
        verify(
            &sas(&t),
            &[&b, &a],
            "/topics/t1/api/events",
            "/topics/t1",
            now()
        ),
        Ok(())
    );
}
