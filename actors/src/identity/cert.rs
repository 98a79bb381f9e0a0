//! Client certificates (docs/eventgrid.md §7.3, §7.4 items 1–2): the fields a presented
//! certificate is matched on, thumbprint matching, chains to registered CA certificates, and
//! where the authentication name is read from.
//!
//! Chains are verified with `rustls-webpki` (signatures, validity at the `now` given, client-auth
//! usage where the leaf states usages), the registered CA certificates as trust anchors. Owns the
//! PEM reading and writing the identity module needs. Never reads the clock.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::{CertificateDer, UnixTime};

/// What the TLS layer read from the presented chain (built by the edge from its verified
/// handshake; the chain itself is checked here against registered CAs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// SHA-256 of the leaf's DER, uppercase hex.
    pub thumbprint: String,
    /// The leaf's subject, RFC 4514 (`O=…, CN=…`).
    pub subject: String,
    pub common_name: Option<String>,
    /// `DNS:…`, `IP:…`, `URI:…`, `email:…`.
    pub sans: Vec<String>,
}

/// `clientCertificateAuthentication.validationScheme` (with `allowedThumbprints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CertValidation {
    #[default]
    SubjectMatches,
    DnsMatches,
    UriMatches,
    IpMatches,
    EmailMatches,
    /// `ThumbprintMatch`: 1–2 thumbprints, uppercase hex.
    Thumbprints(Vec<String>),
}

/// `alternativeAuthenticationNameSources` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    Subject,
    Dns,
    Uri,
    Ip,
    Email,
}

/// A registered `caCertificates/{c}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    pub name: String,
    /// The certificate's DER.
    pub der: Vec<u8>,
}

/// Largest encoded certificate accepted (a chain of a few certificates fits many times).
const MAX_ENCODED: usize = 64 * 1024;

impl CaCert {
    /// A CA certificate from `encodedCertificate` (PEM, or base64 DER); `Err` names what is
    /// wrong.
    pub fn parse(name: &str, encoded: &str) -> Result<CaCert, String> {
        let encoded = encoded.trim();
        if encoded.is_empty() {
            return Err("encodedCertificate is empty".into());
        }
        let der = if encoded.contains("-----BEGIN") {
            let mut certs = pem_certificates(encoded)?;
            if certs.len() != 1 {
                return Err(format!(
                    "encodedCertificate must hold one certificate, not {}",
                    certs.len()
                ));
            }
            certs.pop().expect("one certificate")
        } else {
            decode_b64(encoded)
                .ok_or("encodedCertificate is neither PEM nor base64 DER".to_owned())?
        };
        let cd = CertificateDer::from(der.as_slice());
        webpki::anchor_from_trusted_cert(&cd)
            .map_err(|e| format!("encodedCertificate is not an X.509 certificate ({e})"))?;
        let fields = tbs_fields(&der).ok_or("encodedCertificate is not a DER certificate")?;
        match is_ca(&fields) {
            Some(false) => {
                return Err(
                    "encodedCertificate is not a CA certificate (its basicConstraints \
                            say cA is false)"
                        .into(),
                );
            }
            // RFC 5280 §4.2.1.9: a v3 CA certificate carries basicConstraints with cA true; only
            // a v1 certificate (no extensions at all) may be a CA without it.
            None if version(&fields) >= 2 => {
                return Err(
                    "encodedCertificate is not a CA certificate (a v3 certificate \
                            without basicConstraints cA true)"
                        .into(),
                );
            }
            _ => {}
        }
        if validity(&fields).is_none() {
            return Err("encodedCertificate's validity (notBefore/notAfter) cannot be read".into());
        }
        Ok(CaCert {
            name: name.to_owned(),
            der,
        })
    }

    /// The certificate's `notAfter`, ms since the epoch (the grid may refuse one already past).
    pub fn not_after_ms(&self) -> Option<u64> {
        validity(&tbs_fields(&self.der)?).map(|(_, na)| na)
    }

    /// Whether `now_ms` is within the certificate's notBefore..=notAfter. webpki checks the
    /// validity of the leaf and intermediates, never of the trust anchor, so an expired
    /// registered CA is dropped here.
    pub fn valid_at(&self, now_ms: u64) -> bool {
        der_valid_at(&self.der, now_ms)
    }
}

/// Whether the leaf of `cert` is within its notBefore..=notAfter at `now_ms` (a thumbprint
/// match skips the chain verification that would check it).
pub fn leaf_valid_at(cert: &CertInfo, now_ms: u64) -> bool {
    cert.chain
        .first()
        .is_some_and(|leaf| der_valid_at(leaf, now_ms))
}

fn der_valid_at(der: &[u8], now_ms: u64) -> bool {
    tbs_fields(der)
        .and_then(|f| validity(&f))
        .is_some_and(|(nb, na)| nb <= now_ms && now_ms <= na)
}

/// One DER element: (tag, contents, what follows); `None` when malformed, and for high tag
/// numbers, which no certificate field read here (nor by the TLS edge's reader) uses. Every
/// length is checked against what is left. The one DER element reader of evgrid.
pub fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;

/// The fields of a certificate's TBSCertificate in order, as (tag, contents); `None` when the
/// DER does not parse this far.
fn tbs_fields(der: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let (_, cert, _) = tlv(der).filter(|t| t.0 == SEQUENCE)?;
    let (_, tbs, _) = tlv(cert).filter(|t| t.0 == SEQUENCE)?;
    let mut out = Vec::with_capacity(10);
    let mut rest = tbs;
    while !rest.is_empty() {
        let (tag, c, r) = tlv(rest)?;
        out.push((tag, c));
        rest = r;
    }
    Some(out)
}

/// The certificate's version field (0: v1, 2: v3); absent means v1.
fn version(fields: &[(u8, &[u8])]) -> u8 {
    match fields.first() {
        Some((0xa0, c)) => match tlv(c) {
            Some((0x02, [v], _)) => *v,
            _ => u8::MAX,
        },
        _ => 0,
    }
}

/// notBefore and notAfter, ms since the epoch (before 1970 counts as 0).
fn validity(fields: &[(u8, &[u8])]) -> Option<(u64, u64)> {
    let skip = usize::from(fields.first()?.0 == 0xa0);
    // serial, signature, issuer, validity
    let &(tag, v) = fields.get(skip + 3)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, nb, rest) = tlv(v)?;
    let (t2, na, _) = tlv(rest)?;
    Some((time_ms(t1, nb)?, time_ms(t2, na)?))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, RFC 5280 §4.1.2.5.1) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time_ms(tag: u8, text: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from the civil date (the proleptic Gregorian calendar, day 0 = 1970-01-01).
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(u64::try_from(secs).unwrap_or(0).saturating_mul(1000))
}

/// What a certificate's basicConstraints say about `cA` (RFC 5280 §4.2.1.9): `None` when the
/// extension is absent (a v1 CA certificate has none) or the DER does not parse this far.
fn is_ca(fields: &[(u8, &[u8])]) -> Option<bool> {
    const BASIC_CONSTRAINTS: [u8; 3] = [0x55, 0x1d, 0x13];
    let &(_, c) = fields.iter().find(|f| f.0 == 0xa3)?;
    let (_, mut exts, _) = tlv(c).filter(|t| t.0 == SEQUENCE)?;
    while let Some((_, ext, r)) = tlv(exts) {
        exts = r;
        let (_, oid, mut fields) = tlv(ext)?;
        if oid != BASIC_CONSTRAINTS {
            continue;
        }
        // critical BOOLEAN (optional), then the OCTET STRING holding the value.
        if let Some((0x01, _, r)) = tlv(fields) {
            fields = r;
        }
        let (_, value, _) = tlv(fields).filter(|t| t.0 == 0x04)?;
        let (_, bc, _) = tlv(value).filter(|t| t.0 == SEQUENCE)?;
        return Some(matches!(tlv(bc), Some((0x01, [v], _)) if *v != 0));
    }
    None
}

fn decode_b64(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_ENCODED {
        return None;
    }
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(compact).ok()
}

/// The DER of every `CERTIFICATE` block of `pem`; `Err` when there is none or one is malformed.
pub(crate) fn pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    if pem.len() > MAX_ENCODED {
        return Err(format!("the PEM text is longer than {MAX_ENCODED} bytes"));
    }
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body
            .find(END)
            .ok_or("a PEM certificate has no END line".to_owned())?;
        let der =
            decode_b64(&body[..end]).ok_or("a PEM certificate's body is not base64".to_owned())?;
        out.push(der);
        rest = &body[end + END.len()..];
    }
    if out.is_empty() {
        return Err("no '-----BEGIN CERTIFICATE-----' block".into());
    }
    Ok(out)
}

/// `der` as one PEM `CERTIFICATE` block (64-character lines).
pub(crate) fn to_pem(der: &[u8], out: &mut String) {
    let b64 = B64.encode(der);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
}

/// A thumbprint as configured (hex, any case, optional `:` separators), normalised to uppercase
/// hex; SHA-256 (64 digits) or SHA-1 (40 digits).
pub fn normalize_thumbprint(s: &str) -> Result<String, String> {
    let hex: String = s.chars().filter(|&c| c != ':').collect();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a thumbprint is hexadecimal (optionally separated by ':')".into());
    }
    if hex.len() != 64 && hex.len() != 40 {
        return Err(format!(
            "a thumbprint is 64 hex digits (SHA-256) or 40 (SHA-1), not {}",
            hex.len()
        ));
    }
    Ok(hex.to_ascii_uppercase())
}

fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Whether the leaf of `cert` has one of the `allowed` (normalised) thumbprints: SHA-256, or
/// SHA-1 for a 40-digit entry (docs/eventgrid.md §7.3).
pub fn thumbprint_matches(cert: &CertInfo, allowed: &[String]) -> bool {
    let Some(leaf) = cert.chain.first() else {
        return false;
    };
    let sha256 = hex_upper(ring::digest::digest(&ring::digest::SHA256, leaf).as_ref());
    let mut sha1 = None;
    allowed.iter().any(|a| {
        if a.len() == 40 {
            let s = sha1.get_or_insert_with(|| {
                hex_upper(
                    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf).as_ref(),
                )
            });
            a.eq_ignore_ascii_case(s)
        } else {
            a.eq_ignore_ascii_case(&sha256)
        }
    })
}

/// The signature algorithms a chain may use.
static ALGS: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// Whether `cert`'s chain leads to one of `cas` (signatures, validity at `now_ms` of every
/// certificate including the registered CA, client-auth usage where the certificate states
/// usages).
pub fn chains_to(cert: &CertInfo, cas: &[CaCert], now_ms: u64) -> bool {
    let Some((leaf, rest)) = cert.chain.split_first() else {
        return false;
    };
    let ca_ders: Vec<CertificateDer<'_>> = cas
        .iter()
        .filter(|c| c.valid_at(now_ms))
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    let anchors: Vec<_> = ca_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    if anchors.is_empty() {
        return false;
    }
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let Ok(ee) = webpki::EndEntityCert::try_from(&leaf_der) else {
        return false;
    };
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    ee.verify_for_usage(
        ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(Duration::from_millis(now_ms)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .is_ok()
}

/// The values of `cert` a name source reads (subject: the common name; SANs of that kind).
pub fn names(cert: &CertInfo, source: NameSource) -> Vec<&str> {
    let prefix = match source {
        NameSource::Subject => return cert.common_name.iter().map(String::as_str).collect(),
        NameSource::Dns => "DNS:",
        NameSource::Uri => "URI:",
        NameSource::Ip => "IP:",
        NameSource::Email => "email:",
    };
    cert.sans
        .iter()
        .filter_map(|s| s.strip_prefix(prefix))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
