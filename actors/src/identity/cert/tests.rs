//! Certificate tests, and the fixtures (`../testdata/`) other identity tests share.

use super::*;

pub(crate) const CA: &str = include_str!("../testdata/ca.pem");
pub(crate) const OTHER_CA: &str = include_str!("../testdata/other-ca.pem");
pub(crate) const LEAF: &str = include_str!("../testdata/leaf.pem");
pub(crate) const SELF: &str = include_str!("../testdata/self.pem");
/// 2027-01-15: inside every fixture's validity (generated 2026-12-07, valid 100 years).
pub(crate) const NOW_MS: u64 = 1_800_000_000_000;

fn der(pem: &str) -> Vec<u8> {
    pem_certificates(pem).unwrap().remove(0)
}

fn info(pem: &str, cn: &str, sans: &[&str]) -> CertInfo {
    let d = der(pem);
    CertInfo {
        thumbprint: hex_upper(ring::digest::digest(&ring::digest::SHA256, &d).as_ref()),
        chain: vec![d],
        subject: format!("CN={cn}"),
        common_name: Some(cn.to_owned()),
        sans: sans.iter().map(|s| s.to_string()).collect(),
    }
}

/// The leaf `device-1` signed by `CA`, with its SANs as the TLS layer reports them.
pub(crate) fn leaf() -> CertInfo {
    info(
        LEAF,
        "device-1",
        &[
            "DNS:device-1.example.com",
            "URI:urn:device:1",
            "IP:10.0.0.7",
            "email:device-1@example.com",
        ],
    )
}

/// The self-signed leaf `self-1`.
pub(crate) fn self_signed() -> CertInfo {
    info(SELF, "self-1", &[])
}

pub(crate) fn ca(name: &str, pem: &str) -> CaCert {
    CaCert::parse(name, pem).unwrap()
}

pub(crate) fn sha1_hex(pem: &str) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der(pem)).as_ref())
}

#[test]
fn ca_parse_pem_and_base64_der() {
    let a = ca("a", CA);
    assert_eq!(a.name, "a");
    let b64 = B64.encode(&a.der);
    assert_eq!(CaCert::parse("b", &b64).unwrap().der, a.der);
    // Wrapped base64 with line breaks.
    let wrapped: String = b64
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(CaCert::parse("c", &wrapped).unwrap().der, a.der);
}

#[test]
fn ca_parse_errors() {
    assert!(CaCert::parse("x", "").unwrap_err().contains("empty"));
    assert!(
        CaCert::parse("x", "not base64 !!")
            .unwrap_err()
            .contains("neither PEM")
    );
    assert!(
        CaCert::parse("x", "aGVsbG8=")
            .unwrap_err()
            .contains("not an X.509")
    );
    let two = format!("{CA}{OTHER_CA}");
    assert!(CaCert::parse("x", &two).unwrap_err().contains("not 2"));
    let broken = CA.replace("-----END CERTIFICATE-----", "");
    assert!(CaCert::parse("x", &broken).unwrap_err().contains("no END"));
    assert!(
        CaCert::parse(
            "x",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
        )
        .unwrap_err()
        .contains("not base64")
    );
    assert!(CaCert::parse("x", &"A".repeat(100_000)).is_err());
    // End-entity certificates (basicConstraints cA false) are not CAs.
    assert!(CaCert::parse("x", LEAF).unwrap_err().contains("not a CA"));
    assert!(CaCert::parse("x", SELF).unwrap_err().contains("not a CA"));
}

fn bc(d: &[u8]) -> Option<bool> {
    is_ca(&tbs_fields(d)?)
}

#[test]
fn basic_constraints() {
    assert_eq!(bc(&der(CA)), Some(true));
    assert_eq!(bc(&der(OTHER_CA)), Some(true));
    assert_eq!(bc(&der(LEAF)), Some(false));
    // The JWT issuer certificate is openssl's default self-signed v3 (cA true).
    assert_eq!(bc(&der(include_str!("../testdata/jwt.pem"))), Some(true));
    assert_eq!(bc(b""), None);
    assert_eq!(bc(&der(CA)[..200]), None);
}

const SHORT_CA: &str = include_str!("../testdata/short-ca.pem");
const SHORT_LEAF: &str = include_str!("../testdata/short-leaf.pem");

#[test]
fn v3_without_basic_constraints_is_no_ca() {
    let e = CaCert::parse("x", include_str!("../testdata/v3-no-bc.pem")).unwrap_err();
    assert!(e.contains("v3 certificate without basicConstraints"), "{e}");
    // A v1 certificate has no extensions at all and may still be a CA.
    CaCert::parse("x", include_str!("../testdata/v1.pem")).unwrap();
}

#[test]
fn validity_is_read() {
    // short-ca: 2026-12-07T06:55:05Z .. 2026-12-17T06:55:05Z.
    let c = ca("short", SHORT_CA);
    assert_eq!(c.not_after_ms(), Some(1_797_490_505_000));
    assert!(c.valid_at(1_797_490_505_000 - 1));
    assert!(!c.valid_at(1_797_490_505_000 + 1));
    assert!(!c.valid_at(1_796_626_505_000 - 1), "before notBefore");
    assert_eq!(time_ms(0x17, b"700101000000Z"), Some(0));
    assert_eq!(time_ms(0x18, b"20000229235960Z"), Some(951_868_800_000));
    assert_eq!(time_ms(0x17, b"491231235959Z"), Some(2_524_607_999_000));
    assert_eq!(time_ms(0x17, b"500101000000Z"), Some(0), "1950 counts as 0");
    assert_eq!(time_ms(0x17, b"701301000000Z"), None);
    assert_eq!(time_ms(0x17, b"7001010000Z"), None);
    assert_eq!(time_ms(0x18, b"19700101000000"), None);
}

#[test]
fn an_expired_registered_ca_is_no_anchor() {
    let l = info(SHORT_LEAF, "device-1", &[]);
    let c = ca("short", SHORT_CA);
    // The leaf is valid for 100 years; its CA expired after 10 days.
    assert!(chains_to(&l, std::slice::from_ref(&c), 1_797_000_000_000));
    assert!(!chains_to(&l, &[c], NOW_MS));
}

#[test]
fn leaf_validity_for_thumbprints() {
    let s = self_signed();
    assert!(leaf_valid_at(&s, NOW_MS));
    assert!(!leaf_valid_at(&s, 1_000), "before notBefore");
    assert!(
        !leaf_valid_at(&s, 9_000_000_000_000),
        "after notAfter (2255)"
    );
    assert!(!leaf_valid_at(&CertInfo { chain: vec![], ..s }, NOW_MS));
}

#[test]
fn pem_round_trip() {
    let d = der(CA);
    let mut s = String::new();
    to_pem(&d, &mut s);
    assert_eq!(pem_certificates(&s).unwrap(), vec![d]);
}

#[test]
fn thumbprints() {
    let t = "ab:cd".repeat(16).replace("dab", "d:ab");
    assert_eq!(normalize_thumbprint(&t).unwrap(), "ABCD".repeat(16));
    assert_eq!(
        normalize_thumbprint(&"a".repeat(40)).unwrap(),
        "A".repeat(40)
    );
    assert!(normalize_thumbprint(&"a".repeat(41)).is_err());
    assert!(normalize_thumbprint(&"g".repeat(64)).is_err());
    assert!(normalize_thumbprint("").is_err());

    let l = leaf();
    assert!(thumbprint_matches(&l, std::slice::from_ref(&l.thumbprint)));
    // Case does not matter (configured values are normalised, but be lenient anyway).
    assert!(thumbprint_matches(&l, &[l.thumbprint.to_ascii_lowercase()]));
    assert!(thumbprint_matches(&l, &["0".repeat(64), sha1_hex(LEAF)]));
    assert!(!thumbprint_matches(&l, &[self_signed().thumbprint]));
    assert!(!thumbprint_matches(&l, &[sha1_hex(SELF)]));
    assert!(!thumbprint_matches(&l, &[]));
    let mut empty = l.clone();
    empty.chain.clear();
    assert!(!thumbprint_matches(
        &empty,
        std::slice::from_ref(&l.thumbprint)
    ));
}

#[test]
fn chains() {
    let cas = [ca("ca", CA)];
    assert!(chains_to(&leaf(), &cas, NOW_MS));
    assert!(chains_to(
        &leaf(),
        &[ca("o", OTHER_CA), ca("ca", CA)],
        NOW_MS
    ));
    // An unrelated CA, no CA, a self-signed leaf.
    assert!(!chains_to(&leaf(), &[ca("o", OTHER_CA)], NOW_MS));
    assert!(!chains_to(&leaf(), &[], NOW_MS));
    assert!(!chains_to(&self_signed(), &cas, NOW_MS));
    // Not yet valid; expired (the CA and leaf both end in 2126).
    assert!(!chains_to(&leaf(), &cas, 1_700_000_000_000));
    assert!(!chains_to(&leaf(), &cas, 5_000_000_000_000));
    // A chain whose leaf is garbage, or empty.
    let mut bad = leaf();
    bad.chain[0].truncate(100);
    assert!(!chains_to(&bad, &cas, NOW_MS));
    bad.chain.clear();
    assert!(!chains_to(&bad, &cas, NOW_MS));
    // An extra (irrelevant) intermediate does not hurt.
    let mut extra = leaf();
    extra.chain.push(der(OTHER_CA));
    assert!(chains_to(&extra, &cas, NOW_MS));
}

#[test]
fn name_sources() {
    let l = leaf();
    assert_eq!(names(&l, NameSource::Subject), ["device-1"]);
    assert_eq!(names(&l, NameSource::Dns), ["device-1.example.com"]);
    assert_eq!(names(&l, NameSource::Uri), ["urn:device:1"]);
    assert_eq!(names(&l, NameSource::Ip), ["10.0.0.7"]);
    assert_eq!(names(&l, NameSource::Email), ["device-1@example.com"]);
    let mut none = l.clone();
    none.common_name = None;
    none.sans.clear();
    assert!(names(&none, NameSource::Subject).is_empty());
    assert!(names(&none, NameSource::Dns).is_empty());
}
