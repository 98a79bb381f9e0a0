//! A minimal DER reader for the two things the MQTT edge shows of a client certificate: its
//! subject (as `CN=…, O=…`) and its subject alternative names (DNS names, IP addresses, URIs,
//! e-mail addresses).
//!
//! Owns nothing but parsing. Pure: no I/O, no clock. Must never panic or allocate in proportion
//! to anything but the input (every length is checked against what is left; a certificate that
//! does not parse gives `None`). The certificate was verified by rustls before this reads it;
//! `x509-parser` would bring a second `synstructure` into the tree for these few fields.

use std::fmt::Write;

use evgrid_actors::identity::cert::tlv;

/// The contents of the element at the front of `b` when its tag is `tag`, and what follows.
fn expect(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, c, rest) = tlv(b)?;
    (t == tag).then_some((c, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject and the extensions of a DER certificate's TBSCertificate (RFC 5280 §4.1).
fn subject_and_extensions(cert: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (cert, _) = expect(cert, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if let Some((0xa0, _, r)) = tlv(rest) {
        rest = r;
    }
    // serialNumber, signature, issuer, validity
    let (_, _, r) = tlv(rest)?;
    let (_, r) = expect(r, SEQUENCE)?;
    let (_, r) = expect(r, SEQUENCE)?;
    let (_, r) = expect(r, SEQUENCE)?;
    let (subject, r) = expect(r, SEQUENCE)?;
    let (_, mut rest) = expect(r, SEQUENCE)?; // subjectPublicKeyInfo
    let mut extensions = None;
    while let Some((tag, c, r)) = tlv(rest) {
        if tag == 0xa3 {
            extensions = Some(expect(c, SEQUENCE)?.0);
        }
        rest = r;
    }
    Some((subject, extensions))
}

/// The short names of the attribute types a subject usually holds (RFC 4514 §3).
fn attribute_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// An OID in dotted form (for attribute types without a short name).
fn dotted(oid: &[u8], out: &mut String) {
    let mut first = true;
    let mut v: u64 = 0;
    for &b in oid {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            if v > u64::MAX >> 8 {
                out.push('?');
                return;
            }
            continue;
        }
        if first {
            let (a, b) = if v < 80 {
                (v / 40, v % 40)
            } else {
                (2, v - 80)
            };
            let _ = write!(out, "{a}.{b}");
            first = false;
        } else {
            let _ = write!(out, ".{v}");
        }
        v = 0;
    }
}

/// A directory string's text: UTF8String, PrintableString, IA5String and TeletexString as
/// bytes (lossy), BMPString as UTF-16.
fn string_value(tag: u8, c: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x13 | 0x16 | 0x14 => Some(String::from_utf8_lossy(c).into_owned()),
        0x1e => {
            let units = c.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Appends `v` escaped as RFC 4514 §2.4 asks.
fn push_escaped(out: &mut String, v: &str) {
    // Counted once: a certificate's attribute can be tens of kilobytes (quadratic otherwise).
    let last = v.chars().count().saturating_sub(1);
    for (i, ch) in v.chars().enumerate() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(ch, '#' | ' '))
            || (i == last && ch == ' ');
        if special {
            out.push('\\');
        }
        out.push(ch);
    }
}

/// The subject of a DER certificate as `O=…, CN=…` (attributes in the certificate's order),
/// and its common name (the last CN).
pub fn subject(cert: &[u8]) -> Option<(String, Option<String>)> {
    let (mut rdns, _) = subject_and_extensions(cert)?;
    let mut out = String::new();
    let mut cn = None;
    while !rdns.is_empty() {
        let (mut set, r) = expect(rdns, SET)?;
        rdns = r;
        while !set.is_empty() {
            let (atv, r) = expect(set, SEQUENCE)?;
            set = r;
            let (oid, r) = expect(atv, OID)?;
            let (tag, value, _) = tlv(r)?;
            if !out.is_empty() {
                out.push_str(", ");
            }
            match attribute_name(oid) {
                Some(n) => out.push_str(n),
                None => dotted(oid, &mut out),
            }
            out.push('=');
            match string_value(tag, value) {
                Some(v) => {
                    push_escaped(&mut out, &v);
                    if oid == [0x55, 0x04, 0x03] {
                        cn = Some(v);
                    }
                }
                None => {
                    out.push('#');
                    for b in value {
                        let _ = write!(out, "{b:02x}");
                    }
                }
            }
        }
    }
    Some((out, cn))
}

/// The subject alternative names of a DER certificate, as `DNS:…`, `IP:…`, `URI:…` and
/// `email:…` (other kinds are left out); empty when it has none.
pub fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    let (_, exts) = subject_and_extensions(cert)?;
    let mut out = Vec::new();
    let Some(mut exts) = exts else {
        return Some(out);
    };
    while !exts.is_empty() {
        let (ext, r) = expect(exts, SEQUENCE)?;
        exts = r;
        let (oid, mut rest) = expect(ext, OID)?;
        if oid != [0x55, 0x1d, 0x11] {
            continue;
        }
        if let Some((0x01, _, r)) = tlv(rest) {
            rest = r; // critical
        }
        let (value, _) = expect(rest, 0x04)?;
        let (mut names, _) = expect(value, SEQUENCE)?;
        while !names.is_empty() {
            let (tag, c, r) = tlv(names)?;
            names = r;
            let text = String::from_utf8_lossy(c);
            match tag {
                0x81 => out.push(format!("email:{text}")),
                0x82 => out.push(format!("DNS:{text}")),
                0x86 => out.push(format!("URI:{text}")),
                0x87 => match c.len() {
                    4 => out.push(format!(
                        "IP:{}",
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(c).ok()?)
                    )),
                    16 => out.push(format!(
                        "IP:{}",
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(c).ok()?)
                    )),
                    _ => return None,
                },
                _ => {}
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_past_the_input_are_refused() {
        assert_eq!(tlv(&[0x30, 0x05, 1, 2]), None);
        assert_eq!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0]), None);
        assert_eq!(tlv(&[0x30, 0x80]), None, "indefinite length is not DER");
        assert_eq!(tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(tlv(&[0x1f, 0x01, 0x00]), None);
        assert_eq!(
            tlv(&[0x04, 0x81, 0x01, 9]),
            Some((0x04, &[9u8][..], &[][..]))
        );
    }

    #[test]
    fn every_prefix_and_every_flipped_byte_of_a_certificate_is_safe() {
        let ca = crate::tls::dev::DevCa::new("CA").expect("ca");
        let (pem, _) = ca
            .issue("dev", &["localhost", "10.0.0.1"], true)
            .expect("issue");
        let der = pem_der(&pem);
        for n in 0..der.len() {
            let _ = subject(&der[..n]);
            let _ = subject_alt_names(&der[..n]);
        }
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0xff;
            let _ = subject(&d);
            let _ = subject_alt_names(&d);
        }
    }

    #[test]
    fn oids_and_escapes() {
        let mut s = String::new();
        dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37], &mut s);
        assert_eq!(s, "1.3.6.1.4.1.311");
        let mut s = String::new();
        push_escaped(&mut s, "a,b+c ");
        assert_eq!(s, "a\\,b\\+c\\ ");
    }

    pub(crate) fn pem_der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("pem")
            .to_vec()
    }
}
