//! Fuzz harnesses: one function per `cargo fuzz` target in `tests/fuzz/fuzz_targets/`.
//!
//! Each takes arbitrary bytes and drives one parser the way evgrid's edges do, with evgrid's
//! settings: the vendored MQTT v3.1.1 and v5 decoders, the CloudEvents and Event Grid publish
//! parsers, CloudEvents binary mode and the MQTT → CloudEvent conversion of routing, SAS token
//! extraction and verification, filter compilation and evaluation, the management (ARM) bodies,
//! and MQTT over WebSockets' upgrade and frames. They live here, not in the fuzz crate, because
//! they need crate-private items and evgrid's own dependencies (the codec trait, `ntex-bytes`,
//! `serde_json`), and so that the stable toolchain builds and lints them: the fuzz crate only
//! forwards its input.
//!
//! A harness panics only when evgrid's code would: hostile input must give an `Err`, never a
//! panic, a hang or an unbounded allocation. The management harness also asserts that what a PUT
//! stores validates again, unchanged, when the store is loaded at start (a PUT that stored a
//! document the next start refuses would keep the server down).
//!
//! Not part of the API: hidden from the docs, free to change with the targets. Must never be
//! called by the server itself.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use evgrid_actors::bridge::Client;
use evgrid_actors::bridge::convert::to_cloudevent;
use evgrid_actors::grid::filter::{EventView, Filter};
use evgrid_actors::grid::resource::basic::{self as basic_res, Field, InputSchema, Mapping};
use evgrid_actors::grid::resource::namespace::{self as resource, TopicCfg};
use evgrid_actors::grid::resource::topic_spaces::{self, Enrichments};
use evgrid_actors::grid::topic::TopicEvent;
use evgrid_actors::model::event::CloudEvent;
use evgrid_actors::model::structured;
use evgrid_actors::mqtt::message::{AppMessage, Properties};
use ntex_bytes::{ByteString, Bytes, BytesMut};
use ntex_codec::Decoder;
use ntex_mqtt::error::DecodeError;
use serde_json::Value;

use crate::config::{EventsConfig, MqttConfig};
use crate::http::auth::{self, Credential};
use crate::http::mgmt;
use crate::http::schema::cloudevents::binary;
use crate::http::schema::eventgrid::{self, PostedTo};
use crate::http::schema::{ParseError, ParseLimits, cloudevents};

/// Feeds `wire` to `codec` as a connection's reads would arrive: in chunks of `ctl` bytes (all at
/// once when `ctl` is 0), decoding after each chunk until the codec wants more. A decode error
/// ends the connection, as in the dispatcher. Answers how many items were decoded, or the error.
fn drive<D: Decoder<Error = DecodeError>>(codec: &D, data: &[u8]) -> Result<usize, DecodeError> {
    let Some((&ctl, wire)) = data.split_first() else {
        return Ok(0);
    };
    let step = if ctl == 0 {
        wire.len().max(1)
    } else {
        usize::from(ctl)
    };
    let mut buf = BytesMut::new();
    let mut items = 0;
    for chunk in wire.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec.decode(&mut buf)? {
            std::hint::black_box(&item);
            items += 1;
        }
    }
    Ok(items)
}

/// The MQTT v3.1.1 decoder with the limits every evgrid connection's codec gets.
pub fn mqtt_v3(data: &[u8]) -> Result<usize, DecodeError> {
    let (max_size, min_chunk) = crate::mqtt::codec_limits(&MqttConfig::default());
    let codec = ntex_mqtt::v3::codec::Codec::default();
    codec.set_max_size(max_size);
    codec.set_min_chunk_size(min_chunk);
    drive(&codec, data)
}

/// The MQTT v5 decoder with the limits every evgrid connection's codec gets.
pub fn mqtt_v5(data: &[u8]) -> Result<usize, DecodeError> {
    let (max_size, min_chunk) = crate::mqtt::codec_limits(&MqttConfig::default());
    let codec = ntex_mqtt::v5::codec::Codec::default();
    codec.set_max_inbound_size(max_size);
    codec.set_min_chunk_size(min_chunk);
    drive(&codec, data)
}

/// MQTT over WebSockets as a client's connection reaches it: when the input starts `GET `, the
/// upgrade request (`mqtt::ws::handshake`: delimiting and checking the head), then the frames
/// that follow (`mqtt::ws::frame::FrameDecoder` with the default `mqtt.max_packet_size`), fed in
/// reads of `ctl` bytes (byte 0; 0: all at once) until the first violation or close, as the
/// connection's filter does. Answers the MQTT bytes the frames carried, or the violation.
pub fn ws_frames(data: &[u8]) -> Result<usize, crate::mqtt::ws::frame::Violation> {
    use crate::mqtt::ws::{frame, handshake, max_frame_payload};
    let Some((&ctl, mut wire)) = data.split_first() else {
        return Ok(0);
    };
    if wire.starts_with(b"GET ") {
        match handshake::head_len(wire) {
            Ok(Some(n)) => {
                if let Ok(a) = handshake::check(&wire[..n]) {
                    assert_eq!(a.accept.len(), 28, "a SHA-1 in base64");
                }
                wire = &wire[n..];
            }
            Ok(None) | Err(_) => return Ok(0),
        }
    }
    let step = if ctl == 0 {
        wire.len().max(1)
    } else {
        usize::from(ctl)
    };
    let mut dec =
        frame::FrameDecoder::new(max_frame_payload(MqttConfig::default().max_packet_size));
    let (mut src, mut out) = (BytesMut::new(), BytesMut::new());
    for chunk in wire.chunks(step) {
        src.extend_from_slice(chunk);
        loop {
            let before = src.len() + out.len();
            match dec.decode(&mut src, &mut out)? {
                None => break,
                Some(frame::Control::Close(_)) => return Ok(out.len()),
                Some(frame::Control::Ping(p)) => {
                    assert!(p.as_slice().len() <= frame::MAX_CONTROL);
                }
            }
            assert!(
                src.len() + out.len() < before,
                "a control frame consumed nothing"
            );
        }
    }
    // Unmasking copies payload bytes out; it never invents any.
    assert!(out.len() <= wire.len(), "more data out than in");
    Ok(out.len())
}

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/cloudevents-batch+json"),
    Some("application/cloudevents+json; charset=utf-8"),
    Some("application/json"),
    Some("Application/JSON ; charset=UTF-8"),
    Some("text/plain"),
    None,
];

/// evgrid's default limits (high bit of `ctl` clear) or small ones, so that inputs of a few KB
/// reach the limit checks too.
fn limits(ctl: u8, basic: bool) -> ParseLimits {
    if ctl & 0x80 == 0 {
        let d = EventsConfig::default();
        ParseLimits {
            max_event_bytes: d.max_event_bytes,
            max_events: if basic {
                d.max_events_per_basic_request
            } else {
                d.max_events_per_request
            },
        }
    } else {
        ParseLimits {
            max_event_bytes: 256,
            max_events: 4,
        }
    }
}

/// Filters covering each kind of condition, compiled once; parsed events are matched against
/// them, so evaluation sees hostile events too.
fn sample_filters() -> &'static [Filter] {
    static F: OnceLock<Vec<Filter>> = OnceLock::new();
    F.get_or_init(|| {
        let ns = [
            r#"{"includedEventTypes":["a.b","Contoso.Created"],"enableAdvancedFilteringOnArrays":true,"filters":[
                {"operatorType":"StringContains","key":"subject","values":["x","ÄÖ"]},
                {"operatorType":"NumberInRange","key":"data.n","values":[[1,10],[-5.5,0]]},
                {"operatorType":"StringBeginsWith","key":"ext1","values":["pre"]},
                {"operatorType":"IsNullOrUndefined","key":"data.a.b"}]}"#,
            r#"{"filters":[
                {"operatorType":"NumberIn","key":"data.v","values":[1,2.5]},
                {"operatorType":"BoolEquals","key":"data.flag","value":true},
                {"operatorType":"StringNotEndsWith","key":"source","values":["/z"]},
                {"operatorType":"StringIn","key":"type","values":["t"]},
                {"operatorType":"IsNotNull","key":"datacontenttype"}]}"#,
        ];
        let basic = [
            r#"{"subjectBeginsWith":"/a","subjectEndsWith":"Z","isSubjectCaseSensitive":true,"advancedFilters":[
                {"operatorType":"NumberGreaterThan","key":"data.x","value":3},
                {"operatorType":"StringNotIn","key":"data.s","values":["q"]}]}"#,
        ];
        let parse = |s: &str| serde_json::from_str::<Value>(s).expect("literal");
        ns.iter()
            .map(|s| Filter::compile(Some(&parse(s))))
            .chain(basic.iter().map(|s| Filter::compile_basic(Some(&parse(s)))))
            .map(|f| f.expect("the sample filters are valid"))
            .collect()
    })
}

fn match_all(ev: &CloudEvent) {
    let view = EventView::new(ev);
    for f in sample_filters() {
        std::hint::black_box(f.matches(&view));
    }
}

/// CloudEvents publish bodies: the namespace parser and the basic-tier one (domain target).
/// `data[0]` picks the Content-Type and the limits; the rest is the body.
pub fn cloudevents(data: &[u8]) {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let ct = CONTENT_TYPES[usize::from(ctl & 0x7f) % CONTENT_TYPES.len()];
    let body = Bytes::copy_from_slice(body);
    let lim = limits(ctl, false);
    let serde = cloudevents::parse_batch_with(body.clone(), ct, &lim, false);
    let simd = cloudevents::parse_batch_with(body.clone(), ct, &lim, true);
    assert_eq!(simd, serde, "the simd-json and serde_json paths differ");
    if let Ok(events) = simd {
        events.iter().for_each(match_all);
    }
    let target = PostedTo::Domain {
        domain_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/domains/d",
    };
    let _ = eventgrid::parse_cloudevents(body, ct, &limits(ctl, true), target);
}

/// The routing enrichments the `conversion` harness applies: one of each dynamic variable
/// (the quoted user-property form included) and a static one.
fn sample_enrichments() -> &'static Enrichments {
    static E: OnceLock<Enrichments> = OnceLock::new();
    E.get_or_init(|| {
        let v: Value = serde_json::from_str(
            r#"{"routingEnrichments":{"static":[{"key":"site","value":"b\"17"}],"dynamic":[
                {"key":"auth","value":"${client.authenticationName}"},
                {"key":"floor","value":"${client.attributes.floor}"},
                {"key":"unit","value":"${mqtt.message.userProperties.unit}"},
                {"key":"dotted","value":"${mqtt.message.userProperties['a.b']}"},
                {"key":"topic","value":"${mqtt.message.topicName}"},
                {"key":"reply","value":"${mqtt.message.responseTopic}"},
                {"key":"corr","value":"${mqtt.message.correlationData}"},
                {"key":"pfi","value":"${mqtt.message.pfi}"}]}}"#,
        )
        .expect("literal");
        topic_spaces::parse(Some(&v), "localhost")
            .expect("the sample enrichments are valid")
            .0
            .enrichments
    })
}

/// Content types the `conversion` harness picks from.
const CONVERSION_TYPES: [Option<&str>; 8] = [
    None,
    Some("application/json; charset=utf-8"),
    Some("application/cloudevents+json"),
    Some("application/octet-stream"),
    Some("text/plain"),
    Some("application/vnd.x+json"),
    Some("application/cloudevents-batch+json"),
    Some(""),
];

/// Panics unless `ev.raw` is a valid CloudEvent whose recorded attributes are its own.
fn assert_valid_cloudevent(ev: &CloudEvent, what: &str) {
    let text = std::str::from_utf8(&ev.raw).expect("raw is UTF-8");
    let parsed = match structured::parse_object(&ev.raw, text) {
        Ok(p) => p,
        Err(e) => panic!("{what} made an invalid CloudEvent ({e:?}): {text}"),
    };
    assert_eq!(
        (
            &parsed.id,
            &parsed.source,
            &parsed.ty,
            &parsed.subject,
            &parsed.ext
        ),
        (&ev.id, &ev.source, &ev.ty, &ev.subject, &ev.ext),
        "{what}: recorded attributes differ from raw: {text}"
    );
    match_all(ev);
}

/// CloudEvents binary content mode and the MQTT → CloudEvent conversion of routing: the HTTP
/// edge's `parse_binary` and the bridge's `to_cloudevent` (with every kind of enrichment). Byte 0:
/// bit 0 the payload format indicator, bits 1–3 the content type; then `name: value` lines (HTTP
/// headers, and MQTT user properties), an empty line, and the body / payload. Whatever either
/// makes must be a valid CloudEvent (what a consumer or the store reads back).
pub fn conversion(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let ct = CONVERSION_TYPES[usize::from(ctl >> 1 & 7)];
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (&rest[..0], rest),
    };
    let lines: Vec<(&[u8], &[u8])> = head
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            let at = l.iter().position(|&b| b == b':')?;
            Some((&l[..at], l[at + 1..].trim_ascii()))
        })
        .collect();
    let headers: Vec<(String, &[u8])> = lines
        .iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v))
        .collect();
    let names = headers.iter().map(|(k, _)| k.as_str());
    if binary::is_binary(names, ct)
        && let Ok(ev) = binary::parse_binary(
            headers.iter().map(|(k, v)| (k.as_str(), *v)),
            ct,
            body,
            1 << 20,
        )
    {
        assert_valid_cloudevent(&ev, "parse_binary");
    }
    let text = |b: &[u8]| ByteString::from(String::from_utf8_lossy(b).into_owned());
    let msg = AppMessage {
        topic: ByteString::from_static("devices/d1"),
        payload: Bytes::copy_from_slice(body),
        qos: 1,
        retain: false,
        props: Some(Box::new(Properties {
            response_topic: lines.first().map(|(_, v)| text(v)),
            correlation_data: lines.get(1).map(|(_, v)| Bytes::copy_from_slice(v)),
            content_type: ct.map(ByteString::from),
            payload_utf8: ctl & 1 == 1,
            user_properties: lines.iter().map(|(k, v)| (text(k), text(v))).collect(),
        })),
        expires_at: None,
        publisher: None,
    };
    let client = Client {
        auth_name: ByteString::from_static("dev\"1"),
        session: ByteString::from_static("s"),
    };
    let ev = to_cloudevent(&msg, &client, "ns", sample_enrichments(), 1, "id-1");
    assert_valid_cloudevent(&ev, "to_cloudevent");
}

/// A custom-schema mapping with sources, defaults and a dotted path.
fn sample_mapping() -> &'static Mapping {
    static M: OnceLock<Mapping> = OnceLock::new();
    M.get_or_init(|| {
        let f = |source: Option<&str>, default: Option<&str>| Field {
            source: source.map(str::to_string),
            default: default.map(str::to_string),
        };
        Mapping {
            id: f(Some("myId"), None),
            topic: f(Some("where.topic"), None),
            event_time: f(Some("when"), None),
            event_type: f(Some("kind"), Some("Default.Type")),
            subject: f(Some("a.b.c"), Some("/none")),
            data_version: f(None, Some("1.0")),
        }
    })
}

/// Event Grid and custom-schema publish bodies for a custom topic and a domain. `data[0]`: bit 0
/// the target, bits 1–6 the Content-Type (mostly `application/json`), bit 7 the limits.
pub fn eventgrid(data: &[u8]) {
    let Some((&ctl, body)) = data.split_first() else {
        return;
    };
    let ct = match (ctl >> 1) & 0x3f {
        0 => None,
        1 => Some("application/cloudevents+json"),
        2 => Some("text/json"),
        _ => Some("application/json; charset=utf-8"),
    };
    let target = if ctl & 1 == 0 {
        PostedTo::Topic {
            topic_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/t",
        }
    } else {
        PostedTo::Domain {
            domain_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/domains/d",
        }
    };
    let limits = limits(ctl, true);
    let body = Bytes::copy_from_slice(body);
    let serde = eventgrid::parse_eventgrid_with(body.clone(), ct, &limits, target, false);
    let simd = eventgrid::parse_eventgrid_with(body.clone(), ct, &limits, target, true);
    let fields = |r: &Result<Vec<TopicEvent>, ParseError>| {
        r.as_ref().map_err(ParseError::clone).map(|evs| {
            let f = |e: &TopicEvent| {
                let t = (
                    e.data_version.clone(),
                    e.custom.clone(),
                    e.domain_topic.clone(),
                );
                (e.ev.clone(), t)
            };
            evs.iter().map(f).collect::<Vec<_>>()
        })
    };
    assert_eq!(
        fields(&simd),
        fields(&serde),
        "the simd-json and serde_json paths differ"
    );
    if let Ok(events) = simd {
        events.iter().for_each(|e| match_all(&e.ev));
    }
    // A fixed clock and id keep a run reproducible (the server passes its clock and random ids).
    let (now_ms, new_id) = (1_800_000_000_000, || "fuzz-id".to_string());
    if let Ok(events) =
        eventgrid::parse_custom(body, ct, &limits, target, sample_mapping(), now_ms, new_id)
    {
        events.iter().for_each(|e| match_all(&e.ev));
    }
}

/// Key material of the SAS harness (any base64 key works; this one is 32 zero bytes).
const KEY1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY2: &str = "not base64 %";

/// SAS tokens and access keys. The input is up to four lines: a token (or key), the request path,
/// the resource scope and the query string. The token is extracted from each place a client can
/// put it and verified as sent; then its `r=..&e=..` part is signed with the resource's key, so
/// verification also reaches the resource, expiry and scope checks behind the signature.
pub fn sas(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let token = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or("/topics/t/api/events");
    let scope = lines.next().unwrap_or("/topics/t");
    let query = lines.next().unwrap_or_default();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let keys = [KEY1, KEY2];

    let mut headers = HeaderMap::new();
    for scheme in ["SharedAccessSignature", "sharedaccesskey", "Bearer"] {
        if let Ok(v) = HeaderValue::from_str(&format!("{scheme} {token}")) {
            headers.append(AUTHORIZATION, v);
        }
        let cred = auth::credential(&headers, query);
        let _ = auth::verify(&cred, &keys, path, scope, now);
        headers.clear();
    }
    for name in ["aeg-sas-token", "aeg-sas-key"] {
        if let Ok(v) = HeaderValue::from_bytes(token.as_bytes()) {
            headers.insert(HeaderName::from_static(name), v);
        }
        let cred = auth::credential(&headers, query);
        let _ = auth::verify(&cred, &keys, path, scope, now);
        headers.clear();
    }
    let cred = auth::credential(&headers, query);
    let _ = auth::verify(&cred, &keys, path, scope, now);

    let prefix = token.rsplit_once("&s=").map_or(token, |(p, _)| p);
    let signed = auth::sign_prefix(prefix, KEY1);
    let _ = auth::verify(&Credential::Sas(signed), &keys, path, scope, now);
    let _ = auth::verify(
        &Credential::Sas(signed_sas(token, path)),
        &keys,
        path,
        scope,
        now,
    );
}

/// A token the way the SDKs make one, with `token` as the expiry and `path` as the resource.
fn signed_sas(expiry: &str, path: &str) -> String {
    auth::sign_sas(&format!("https://h.example{path}"), expiry, KEY1)
}

/// Filter compilation (both front ends) and, for a filter that compiles, its evaluation on a
/// few events. The input is the filter's JSON.
pub fn filter(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for f in [Filter::compile(Some(&v)), Filter::compile_basic(Some(&v))]
        .into_iter()
        .flatten()
    {
        for ev in sample_events() {
            std::hint::black_box(f.matches(&EventView::new(ev)));
        }
    }
}

/// Events with context attributes, extensions, nested data, arrays and numbers.
fn sample_events() -> &'static [CloudEvent] {
    static E: OnceLock<Vec<CloudEvent>> = OnceLock::new();
    E.get_or_init(|| {
        let body = r#"[
            {"specversion":"1.0","id":"1","source":"/a/b","type":"Contoso.Created","subject":"/a/ÄÖZ",
             "ext1":"prefix","n1":5,"data":{"n":3,"v":[1,2.5,"x"],"flag":true,"s":"q","a":{"b":null}}},
            {"specversion":"1.0","id":"2","source":"s","type":"t","data_base64":"AAE="},
            {"specversion":"1.0","id":"3","source":"s","type":"t","subject":"","data":[{"x":1e308},-0.0]}
        ]"#;
        let limits = limits(0, false);
        cloudevents::parse_batch(
            Bytes::from_static(body.as_bytes()),
            Some("application/cloudevents-batch+json"),
            &limits,
        )
            .expect("the sample events are valid")
    })
}

/// Management (ARM) PUT bodies: `properties` extraction and `keyName`, then every validator a
/// PUT can reach (namespace topic and subscription, custom topic and domain, basic-tier
/// subscription for each input schema). What a validator accepts must validate again, to the same
/// settings, the way the store is loaded at start.
pub fn mgmt(data: &[u8]) {
    let _ = mgmt::key_name(data);
    let Ok(props) = mgmt::properties(data) else {
        return;
    };
    let now_ms = 1_800_000_000_000;

    if let Ok((cfg, out)) = resource::topic(&props) {
        assert_eq!(
            resource::topic(&out),
            Ok((cfg, out.clone())),
            "topic reload"
        );
    }
    let tcfg = TopicCfg { retention_days: 7 };
    let lenient = evgrid_actors::grid::resource::Limits { min_lock_secs: 1 };
    if let Ok((cfg, out)) = resource::subscription(
        &props,
        tcfg,
        EventsConfig::default().resource_limits(),
        now_ms,
    ) {
        let again = resource::subscription(&out, tcfg, lenient, 0);
        assert_eq!(
            again.as_ref().map(|r| &r.0),
            Ok(&cfg),
            "subscription reload: {out}"
        );
        std::hint::black_box(out.to_string());
    }
    for domain in [false, true] {
        if let Ok((cfg, out)) = basic_res::source(&props, domain) {
            let again = basic_res::source(&out, domain);
            assert_eq!(
                again.as_ref().map(|r| &r.0),
                Ok(&cfg),
                "source reload: {out}"
            );
        }
    }
    for input in [
        InputSchema::EventGrid,
        InputSchema::CloudEvents,
        InputSchema::Custom,
    ] {
        if let Ok((cfg, stored)) = basic_res::subscription(&props, input, now_ms) {
            let again = basic_res::subscription(&stored, input, 0);
            assert_eq!(
                again.as_ref().map(|r| &r.0),
                Ok(&cfg),
                "push subscription reload: {stored}"
            );
            std::hint::black_box(basic_res::redacted(&stored, "Succeeded").to_string());
        }
    }
}

/// A client certificate's DER, read as the MQTT TLS listener reads a verified one
/// (`tls::peer::ClientCert::from_chain`: subject, SANs, thumbprint).
pub fn client_cert(data: &[u8]) {
    let chain = vec![rustls::pki_types::CertificateDer::from(data.to_vec())];
    if let Some(c) = crate::tls::peer::ClientCert::from_chain(chain) {
        assert_eq!(c.thumbprint.len(), 64);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed seeds of `target`, by file name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/corpus")
            .join(target);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let p = e.expect("dir entry").path();
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, std::fs::read(&p).expect("seed"))
            })
            .collect();
        out.sort();
        assert!(out.len() >= 3, "{target}: too few seeds");
        out
    }

    /// Every seed goes through its harness on the stable toolchain (the harnesses' own sample
    /// filters and events are valid, or they panic), and the MQTT seeds are valid packet streams:
    /// a fuzz run starts from inputs that reach past the first length check.
    #[test]
    fn seed_corpora_run_through_their_harnesses() {
        for (name, data) in seeds("mqtt_v3") {
            let n = super::mqtt_v3(&data).unwrap_or_else(|e| panic!("v3 {name}: {e:?}"));
            assert!(n >= 2, "v3 {name}: {n} items");
        }
        for (name, data) in seeds("mqtt_v5") {
            let n = super::mqtt_v5(&data).unwrap_or_else(|e| panic!("v5 {name}: {e:?}"));
            assert!(n >= 2, "v5 {name}: {n} items");
        }
        // The valid WebSocket seeds carry MQTT bytes; the `bad_*` ones end in a violation.
        for (name, data) in seeds("ws_frames") {
            let r = super::ws_frames(&data);
            if name.starts_with("bad_") {
                assert!(r.is_err(), "ws {name}: {r:?}");
            } else {
                let n = r.unwrap_or_else(|e| panic!("ws {name}: {e:?}"));
                assert!(n > 0, "ws {name}: no MQTT bytes");
            }
        }
        type Harness = (&'static str, fn(&[u8]));
        let harnesses: [Harness; 7] = [
            ("cloudevents", super::cloudevents),
            ("conversion", super::conversion),
            ("eventgrid", super::eventgrid),
            ("sas", super::sas),
            ("filter", super::filter),
            ("mgmt", super::mgmt),
            ("client_cert", super::client_cert),
        ];
        for (target, harness) in harnesses {
            for (_, data) in seeds(target) {
                harness(&data);
            }
        }
        assert_eq!(super::sample_filters().len(), 3);
        assert_eq!(super::sample_events().len(), 3);
        assert_eq!(super::sample_enrichments().dynamics.len(), 8);
    }

    /// The conversion harness on every cut and every byte flip of its seeds: whatever binary
    /// mode or the MQTT conversion makes of them is a valid CloudEvent (a short stand-in for a
    /// fuzz run on the stable toolchain).
    #[test]
    fn conversion_survives_cuts_and_flips() {
        for (_, data) in seeds("conversion") {
            for cut in 0..=data.len() {
                super::conversion(&data[..cut]);
            }
            for i in 0..data.len() {
                for flip in [0x01, 0x20, 0x80] {
                    let mut d = data.clone();
                    d[i] ^= flip;
                    super::conversion(&d);
                }
            }
        }
    }

    /// The WebSocket harness on every cut and every byte flip of its seeds (a short stand-in
    /// for a fuzz run on the stable toolchain): an error or bytes out, never a panic.
    #[test]
    fn ws_frames_survive_cuts_and_flips() {
        for (_, data) in seeds("ws_frames") {
            for cut in 0..=data.len() {
                let _ = super::ws_frames(&data[..cut]);
            }
            for i in 0..data.len() {
                for flip in [0x01, 0x08, 0x40, 0x80] {
                    let mut d = data.clone();
                    d[i] ^= flip;
                    let _ = super::ws_frames(&d);
                }
            }
        }
    }
}
