//! HTTP publish to MQTT topics, the request's side (docs/eventgrid.md §7.8): the topic, QoS,
//! RETAIN and MQTT 5 properties read from the query and the `mqtt-*` headers ([`parse`]), the
//! payload checked against them ([`with_payload`]), the `api-version`s of the two operations
//! ([`api_version`]), and the encodings the retained read API answers with
//! ([`encode_topic`], [`encode_user_properties`], [`expiry_secs_left`]).
//!
//! Pure: no HTTP framework, no clock (the current `Instant` comes in), no I/O. Must never panic on
//! any input, and must refuse every field it cannot carry to an MQTT subscriber exactly (a
//! wildcard or NUL in a topic, bytes that are not UTF-8 in a string, QoS 2), with a sentence
//! naming the field and, where it is short, the value.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use evgrid_actors::mqtt::message::{AppMessage, Properties};
use evgrid_actors::mqtt::trie::{TopicError, TopicLimits, validate_topic};
use ntex_bytes::{ByteString, Bytes};

use crate::http::request::query::{percent_decode, raw_pairs};

/// `api-version`s of `POST …/mqtt/messages`.
pub const PUBLISH_API_VERSIONS: [&str; 2] = ["2025-02-15-preview", "2025-08-01-preview"];
/// `api-version`s of `GET …/mqtt/retainedMessages/message`.
pub const RETAINED_API_VERSIONS: [&str; 1] = ["2025-11-16-preview"];

/// The request headers that carry MQTT fields (docs/eventgrid.md §7.8).
pub const H_QOS: &str = "mqtt-qos";
pub const H_RETAIN: &str = "mqtt-retain";
pub const H_RESPONSE_TOPIC: &str = "mqtt-response-topic";
pub const H_CORRELATION_DATA: &str = "mqtt-correlation-data";
pub const H_USER_PROPERTIES: &str = "mqtt-user-properties";
pub const H_MESSAGE_EXPIRY: &str = "mqtt-message-expiry";
pub const H_PFI: &str = "mqtt-payload-format-indicator";

/// Standard alphabet, padding optional: clients differ in whether they pad.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest value quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// The broker's limits, the ones the MQTT edge enforces (config `mqtt.*`).
#[derive(Debug, Clone, Copy)]
pub struct MqttLimits {
    /// `mqtt.max_topic_length`, `mqtt.max_topic_levels`.
    pub topic: TopicLimits,
    /// `mqtt.max_qos`.
    pub max_qos: u8,
    /// `mqtt.max_packet_size`: the largest PUBLISH the message may become.
    pub max_packet_size: usize,
}

/// Raw header values (`None`: absent), as the handler found them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Headers<'a> {
    pub qos: Option<&'a [u8]>,
    pub retain: Option<&'a [u8]>,
    pub response_topic: Option<&'a [u8]>,
    pub correlation_data: Option<&'a [u8]>,
    pub user_properties: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub message_expiry: Option<&'a [u8]>,
    pub payload_format_indicator: Option<&'a [u8]>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 400.
    BadRequest(String),
    /// 403: the topic is not one a message may be published to (docs/eventgrid.md §7.8: "403
    /// topic not permitted/invalid").
    Forbidden(String),
    /// 413: the message would not fit in the broker's maximum packet size.
    TooLarge(String),
}

fn bad(msg: impl Into<String>) -> Refused {
    Refused::BadRequest(msg.into())
}

/// `s`, cut to [`MAX_QUOTED`] characters for an error message.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The request's `api-version`, which must be one of `supported`.
pub fn api_version(query: &str, supported: &[&str]) -> Result<(), Refused> {
    match query_value(query, "api-version") {
        None => Err(bad(format!(
            "The api-version query parameter is required. Supported versions: {}.",
            supported.join(", ")
        ))),
        Some(v) if supported.iter().any(|s| s.as_bytes() == v.as_slice()) => Ok(()),
        Some(v) => Err(bad(format!(
            "The api-version '{}' is not supported. Supported versions: {}.",
            quoted(&String::from_utf8_lossy(&v)),
            supported.join(", ")
        ))),
    }
}

/// The first value of query parameter `name` (ASCII case-insensitive), percent-decoded (`+` stays
/// `+`), as bytes: whether they are UTF-8 is the caller's question.
fn query_value(query: &str, name: &str) -> Option<Vec<u8>> {
    raw_pairs(query)
        .into_iter()
        .find(|(k, _)| percent_decode(k, false).eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| percent_decode(v, false))
}

/// The `topic` query parameter: required, percent-decoded, UTF-8, and a valid topic name under
/// the broker's limits (no `+` or `#`).
pub fn topic(query: &str, limits: &MqttLimits) -> Result<ByteString, Refused> {
    let raw = query_value(query, "topic").ok_or_else(|| {
        bad("The topic query parameter is required (percent-encoded, e.g. ?topic=devices%2Fd1%2Fcmd).")
    })?;
    topic_name("topic query parameter", raw, limits).map_err(|e| match e {
        Refused::BadRequest(m) => Refused::Forbidden(m),
        other => other,
    })
}

/// `raw` as a topic name, or why it is not one; `what` names the field in the message.
fn topic_name(what: &str, raw: Vec<u8>, limits: &MqttLimits) -> Result<ByteString, Refused> {
    let s = String::from_utf8(raw).map_err(|_| {
        bad(format!(
            "The {what} is not valid UTF-8 once percent-decoded."
        ))
    })?;
    validate_topic(&s, limits.topic).map_err(|e| {
        bad(match e {
            TopicError::Empty => format!("The {what} is empty; MQTT topic names have at least one character."),
            TopicError::TooLong => format!(
                "The {what} is {} bytes long; the broker's limit is {} bytes (mqtt.max_topic_length).",
                s.len(),
                limits.topic.max_len
            ),
            TopicError::TooManyLevels => format!(
                "The {what} has {} levels; the broker's limit is {} (mqtt.max_topic_levels).",
                s.split('/').count(),
                limits.topic.max_levels
            ),
            TopicError::Wildcard | TopicError::SharedSyntax => format!(
                "The {what} '{}' contains a wildcard ('+' or '#'); a message is published to a \
                 topic name, not a filter.",
                quoted(&s)
            ),
            TopicError::NulChar => format!("The {what} contains the character U+0000."),
        })
    })?;
    Ok(ByteString::from(s))
}

/// A header value as text: trimmed, and `None` when empty (an empty header counts as absent).
fn text<'a>(name: &str, v: Option<&'a [u8]>) -> Result<Option<&'a str>, Refused> {
    let Some(v) = v else { return Ok(None) };
    let s = std::str::from_utf8(v)
        .map_err(|_| bad(format!("The {name} header is not valid UTF-8.")))?
        .trim();
    Ok((!s.is_empty()).then_some(s))
}

/// A 0/1 flag from the query parameter `param` or else the header `header`.
fn flag(query: &str, param: &str, header: &str, h: Option<&[u8]>) -> Result<Option<u8>, Refused> {
    let (from, value) = match query_value(query, param) {
        Some(v) => (format!("{param} query parameter"), v),
        None => match text(header, h)? {
            Some(v) => (format!("{header} header"), v.as_bytes().to_vec()),
            None => return Ok(None),
        },
    };
    match value.as_slice() {
        b"0" => Ok(Some(0)),
        b"1" => Ok(Some(1)),
        b"2" if param == "qos" => Err(bad(format!(
            "The {from} is 2; HTTP publish to MQTT supports QoS 0 and 1 only."
        ))),
        v => Err(bad(format!(
            "The {from} is '{}'; it must be 0 or 1.",
            quoted(&String::from_utf8_lossy(v))
        ))),
    }
}

/// Reads the topic, QoS, RETAIN and MQTT 5 properties of a publish (query parameters win over
/// headers) into a message with an empty payload; `now` dates the message expiry. Defaults:
/// QoS 1 (0 if the broker's maximum is 0), RETAIN 0, no properties.
pub fn parse(
    query: &str,
    h: &Headers<'_>,
    limits: &MqttLimits,
    now: Instant,
) -> Result<AppMessage, Refused> {
    let topic = topic(query, limits)?;
    let qos = match flag(query, "qos", H_QOS, h.qos)? {
        Some(q) if q > limits.max_qos => {
            return Err(bad(format!(
                "QoS {q} is above the broker's maximum QoS {} (mqtt.max_qos).",
                limits.max_qos
            )));
        }
        Some(q) => q,
        None => 1.min(limits.max_qos),
    };
    let retain = flag(query, "retain", H_RETAIN, h.retain)? == Some(1);
    let response_topic = match text(H_RESPONSE_TOPIC, h.response_topic)? {
        Some(v) => Some(topic_name(
            "mqtt-response-topic header",
            percent_decode(v, false),
            limits,
        )?),
        None => None,
    };
    let correlation_data = match text(H_CORRELATION_DATA, h.correlation_data)? {
        Some(v) => Some(Bytes::from(B64.decode(v).map_err(|_| {
            bad("The mqtt-correlation-data header is not valid base64.")
        })?)),
        None => None,
    };
    let user_properties = match text(H_USER_PROPERTIES, h.user_properties)? {
        Some(v) => user_properties(v)?,
        None => Vec::new(),
    };
    let content_type = match text("Content-Type", h.content_type)? {
        Some(v) if v.contains('\0') => {
            return Err(bad(
                "The Content-Type header contains the character U+0000.",
            ));
        }
        Some(v) => Some(ByteString::from(v)),
        None => None,
    };
    let expires_at = match text(H_MESSAGE_EXPIRY, h.message_expiry)? {
        // 0 cannot be sent in MQTT (the property is absent or positive): no expiry.
        Some("0") | None => None,
        Some(v) => {
            let secs: u32 = v.parse().map_err(|_| {
                bad(format!(
                    "The mqtt-message-expiry header is '{}'; it must be a number of seconds \
                     from 0 to 4294967295.",
                    quoted(v)
                ))
            })?;
            Some(now + Duration::from_secs(u64::from(secs)))
        }
    };
    let payload_utf8 = match text(H_PFI, h.payload_format_indicator)? {
        None | Some("0") => false,
        Some("1") => true,
        Some(v) => {
            return Err(bad(format!(
                "The mqtt-payload-format-indicator header is '{}'; it must be 0 or 1.",
                quoted(v)
            )));
        }
    };
    let props = Properties {
        response_topic,
        correlation_data,
        content_type,
        payload_utf8,
        user_properties,
    };
    Ok(AppMessage {
        topic,
        payload: Bytes::new(),
        qos,
        retain,
        // As at the MQTT edge: no box for a message without properties.
        props: (props != Properties::default()).then(|| Box::new(props)),
        expires_at,
        publisher: None,
    })
}

/// `mqtt-user-properties`: base64 of a JSON array of single-pair objects with string values,
/// e.g. `[{"Urgency":"alert"},{"RequestId":"55f4"}]`; a name may repeat, order is kept.
fn user_properties(v: &str) -> Result<Vec<(ByteString, ByteString)>, Refused> {
    const SHAPE: &str = "it must be base64 of a JSON array of objects with one string member each, \
                         e.g. [{\"Urgency\":\"alert\"}]";
    let json = B64.decode(v).map_err(|_| {
        bad(format!(
            "The mqtt-user-properties header is not valid base64; {SHAPE}."
        ))
    })?;
    let items: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(&json)
        .map_err(|e| {
            bad(format!(
                "The mqtt-user-properties header is not usable ({e}); {SHAPE}."
            ))
        })?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let mut members = item.into_iter();
        let (Some((name, serde_json::Value::String(value))), None) =
            (members.next(), members.next())
        else {
            return Err(bad(format!(
                "Item {i} of the mqtt-user-properties header is not an object with exactly one \
                 string member; {SHAPE}."
            )));
        };
        if name.contains('\0') || value.contains('\0') {
            return Err(bad(format!(
                "Item {i} of the mqtt-user-properties header contains the character U+0000."
            )));
        }
        out.push((ByteString::from(name), ByteString::from(value)));
    }
    Ok(out)
}

/// Bytes an MQTT 5 PUBLISH carrying `m` takes on the wire, at most (a 4-byte remaining length,
/// a packet id, and every property, the message expiry included).
pub fn packet_size(m: &AppMessage) -> usize {
    let mut props = 0;
    if let Some(p) = &m.props {
        props += p.response_topic.as_ref().map_or(0, |t| 3 + t.len());
        props += p.correlation_data.as_ref().map_or(0, |d| 3 + d.len());
        props += p.content_type.as_ref().map_or(0, |c| 3 + c.len());
        props += if p.payload_utf8 { 2 } else { 0 };
        props += p
            .user_properties
            .iter()
            .map(|(k, v)| 5 + k.len() + v.len())
            .sum::<usize>();
    }
    props += if m.expires_at.is_some() { 5 } else { 0 };
    1 + 4 + 2 + m.topic.len() + 2 + 4 + props + m.payload.len()
}

/// The message with its payload, refused if the payload format indicator says UTF-8 and it is
/// not, or if the PUBLISH would exceed the broker's maximum packet size.
pub fn with_payload(
    mut m: AppMessage,
    payload: Bytes,
    limits: &MqttLimits,
) -> Result<AppMessage, Refused> {
    if m.props.as_ref().is_some_and(|p| p.payload_utf8) && std::str::from_utf8(&payload).is_err() {
        return Err(bad(
            "The payload is not valid UTF-8, but mqtt-payload-format-indicator is 1 (UTF-8 text).",
        ));
    }
    m.payload = payload;
    let size = packet_size(&m);
    if size > limits.max_packet_size {
        return Err(Refused::TooLarge(format!(
            "The MQTT message would be {size} bytes (payload {} bytes), above the broker's \
             maximum packet size of {} bytes (mqtt.max_packet_size).",
            m.payload.len(),
            limits.max_packet_size
        )));
    }
    Ok(m)
}

/// `topic` percent-encoded for a header or a query: every byte but `A-Z a-z 0-9 - . _ ~ /`.
pub fn encode_topic(topic: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(topic.len());
    for &b in topic.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// User properties the way `mqtt-user-properties` carries them (the inverse of the parser).
pub fn encode_user_properties(props: &[(ByteString, ByteString)]) -> String {
    let items: Vec<serde_json::Value> = props
        .iter()
        .map(|(k, v)| serde_json::json!({ k.as_str(): v.as_str() }))
        .collect();
    B64.encode(serde_json::Value::Array(items).to_string())
}

/// Correlation data the way `mqtt-correlation-data` carries it.
pub fn encode_base64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Whole seconds left before `expires_at` at `now`, at least 1 while it is live (as the MQTT edge
/// tells subscribers); `None` without an expiry.
pub fn expiry_secs_left(expires_at: Option<Instant>, now: Instant) -> Option<u64> {
    expires_at.map(|at| at.saturating_duration_since(now).as_secs().max(1))
}

#[cfg(test)]
mod tests;
