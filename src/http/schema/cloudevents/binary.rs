//! CloudEvents binary content mode on HTTP publish (docs/eventgrid.md §6.2): the attributes in
//! `ce-*` headers, the body the event's data under any content type.
//!
//! Owns what is HTTP about it: which requests are binary mode ([`is_binary`]), reading the
//! `ce-*` headers (names case-insensitive, values percent-decoded as the CloudEvents HTTP
//! binding says) and the per-event size limit. The attribute rules and the data mapping are
//! [`evgrid_actors::model::binding`]'s, shared with the MQTT CloudEvents binding.
//!
//! Pure and deterministic. Must never panic on any input.

use std::borrow::Cow;

use evgrid_actors::model::binding;
use evgrid_actors::model::event::CloudEvent;

use super::{BATCH_TYPE, SINGLE_TYPE};
use crate::http::schema::{ParseError, bad, quoted};

/// The headers that make a request binary mode when present.
const MARKERS: [&str; 4] = ["ce-specversion", "ce-id", "ce-source", "ce-type"];

/// Whether a publish with these header names and this content type is binary mode: a required
/// `ce-*` attribute header is present and the content type is not a structured one.
pub fn is_binary<'a>(mut names: impl Iterator<Item = &'a str>, content_type: Option<&str>) -> bool {
    let structured = content_type.is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case(SINGLE_TYPE) || media.eq_ignore_ascii_case(BATCH_TYPE)
    });
    !structured && names.any(|n| MARKERS.iter().any(|m| n.eq_ignore_ascii_case(m)))
}

/// One binary-mode event from the request's headers (name, raw value), content type and body.
pub fn parse_binary<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    content_type: Option<&str>,
    body: &[u8],
    max_event_bytes: usize,
) -> Result<CloudEvent, ParseError> {
    let mut attrs: Vec<(String, Cow<'a, str>)> = Vec::new();
    for (name, value) in headers {
        let Some(attr) = name
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("ce-"))
            .map(|_| name[3..].to_ascii_lowercase())
        else {
            continue;
        };
        let value = percent_decode(value).ok_or_else(|| {
            bad(format!(
                "Header 'ce-{attr}' is not valid: its value must be UTF-8 text, with any \
                 percent-encoding (%XX) well formed."
            ))
        })?;
        attrs.push((attr, value));
    }
    let ev = binding::from_binary(
        attrs.iter().map(|(k, v)| (k.as_str(), v.as_ref())),
        content_type,
        body,
        "ce-",
    )
    .map_err(|msg| bad(format!("Binary-mode event: {msg}")))?;
    if ev.raw.len() > max_event_bytes {
        return Err(ParseError::TooLarge(format!(
            "Binary-mode event (id {}) is {} bytes as a CloudEvent; the limit is \
             {max_event_bytes} bytes per event.",
            quoted(&ev.id),
            ev.raw.len()
        )));
    }
    Ok(ev)
}

/// A header value with `%XX` sequences decoded, if the result is UTF-8 and every `%` starts a
/// well-formed sequence.
fn percent_decode(v: &[u8]) -> Option<Cow<'_, str>> {
    if !v.contains(&b'%') {
        return std::str::from_utf8(v).ok().map(Cow::Borrowed);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hi = hex(*v.get(i + 1)?)?;
            let lo = hex(*v.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn h<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a [u8])> {
        let mut v: Vec<(&str, &[u8])> = vec![
            ("ce-specversion", b"1.0"),
            ("ce-id", b"e-1"),
            ("ce-source", b"/s"),
            ("ce-type", b"t"),
            ("content-length", b"2"),
        ];
        v.extend(extra.iter().map(|(k, val)| (*k, val.as_bytes())));
        v
    }

    fn parse(hs: Vec<(&str, &[u8])>, ct: Option<&str>, body: &[u8]) -> Result<Value, ParseError> {
        parse_binary(hs.into_iter(), ct, body, 1 << 20).map(|ev| {
            let v: Value = serde_json::from_slice(&ev.raw).unwrap();
            assert_eq!(
                (v["id"].as_str(), v["source"].as_str()),
                (Some(&*ev.id), Some(&*ev.source))
            );
            v
        })
    }

    #[test]
    fn detects_binary_mode() {
        let names = ["content-type", "CE-SpecVersion"];
        assert!(is_binary(names.into_iter(), Some("application/json")));
        assert!(is_binary(["ce-id"].into_iter(), None));
        assert!(!is_binary(
            ["ce-ext", "x-other"].into_iter(),
            Some("text/plain")
        ));
        for ct in [
            "application/cloudevents+json",
            "Application/CloudEvents-Batch+JSON; x=1",
        ] {
            assert!(!is_binary(names.into_iter(), Some(ct)), "{ct}");
        }
    }

    #[test]
    fn headers_to_event() {
        let v = parse(
            h(&[
                ("CE-Subject", "a%20b%25c%C3%A9"),
                ("ce-time", "2024-05-01T10:00:00Z"),
                ("ce-dataschema", "https://x"),
                ("ce-myext", "v"),
                ("x-other", "ignored"),
            ]),
            Some("text/plain"),
            b"hi",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t",
                   "subject": "a b%cé", "time": "2024-05-01T10:00:00Z",
                   "dataschema": "https://x", "myext": "v", "datacontenttype": "text/plain",
                   "data_base64": "aGk="})
        );
        let v = parse(h(&[]), Some("application/json"), br#"{"a":1}"#).unwrap();
        assert_eq!(v["data"], json!({"a": 1}));
    }

    #[test]
    fn errors() {
        let msg = |r: Result<Value, ParseError>| match r {
            Err(ParseError::BadRequest(m)) => m,
            other => panic!("{other:?}"),
        };
        let no_id: Vec<_> = h(&[]).into_iter().filter(|(k, _)| *k != "ce-id").collect();
        assert_eq!(
            msg(parse(no_id, None, b"")),
            "Binary-mode event: required attribute 'ce-id' is missing."
        );
        let mut bad_version = h(&[]);
        bad_version[0].1 = b"0.3";
        assert!(msg(parse(bad_version, None, b"")).contains("'ce-specversion' must be \"1.0\""));
        for bad_pct in ["%zz", "%4", "%ff"] {
            let m = msg(parse(h(&[("ce-x", bad_pct)]), None, b""));
            assert!(m.contains("Header 'ce-x' is not valid"), "{m}");
        }
        assert!(msg(parse(h(&[]), Some("application/json"), b"{")).contains("not valid JSON"));
        match parse_binary(h(&[]).into_iter(), None, &[0u8; 100], 100) {
            Err(ParseError::TooLarge(m)) => assert!(m.contains("the limit is 100 bytes"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
