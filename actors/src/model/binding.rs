//! Building a CloudEvent's JSON object from parts, and the CloudEvents binary content mode: the
//! attributes carried outside the data (HTTP `ce-*` headers, MQTT 5 user properties) mapped to
//! one CloudEvents 1.0 JSON object (docs/eventgrid.md §6.2, §7.6).
//!
//! Owns [`EventJson`] (one buffer, members appended in order, the attributes routing needs
//! recorded as slices of that buffer) and [`binary`] / [`from_binary`]: the validation of
//! binary-mode attributes (the four required ones, `specversion` 1.0, `time` in RFC 3339,
//! extension names `[a-z0-9]{1,20}`, no duplicates) and the data rule: a JSON media type
//! (`application/json`, `*/json`, `*/*+json`) puts the payload in `data` as JSON, anything else
//! in `data_base64`. Shared by the HTTP edge (binary-mode publish) and the bridge (MQTT
//! messages that already are CloudEvents, and the conversion of every other MQTT message).
//!
//! Pure: no clock, no randomness; ids and times come in as arguments. Must never produce
//! invalid JSON or a duplicate member, and never panic on any input.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ntex_bytes::{ByteString, Bytes};
use serde::de::IgnoredAny;

use super::event::CloudEvent;
use super::json::{MAX_EVENT_DEPTH, json_depth, quoted, write_str};
use super::structured::is_extension_name;
use super::time::is_rfc3339;

/// Where a recorded string is: a range of the buffer (written without escapes) or a copy.
#[derive(Debug, Clone)]
enum Slot {
    At(usize, usize),
    Owned(ByteString),
}

/// One CloudEvent's JSON object under construction.
#[derive(Debug)]
pub struct EventJson {
    buf: Vec<u8>,
    members: usize,
    id: Option<Slot>,
    source: Option<Slot>,
    ty: Option<Slot>,
    subject: Option<Slot>,
    ext: Vec<(Slot, Slot)>,
}

/// What a member's name means for the attributes [`CloudEvent`] records.
enum Role {
    Id,
    Source,
    Type,
    Subject,
    /// Another context attribute or the data: kept only in `raw`.
    Unrecorded,
    Extension,
}

fn role(name: &str) -> Role {
    match name {
        "id" => Role::Id,
        "source" => Role::Source,
        "type" => Role::Type,
        "subject" => Role::Subject,
        "specversion" | "time" | "datacontenttype" | "dataschema" | "data" | "data_base64" => {
            Role::Unrecorded
        }
        _ => Role::Extension,
    }
}

impl EventJson {
    /// An empty object; `capacity` is a guess of the final size.
    pub fn new(capacity: usize) -> EventJson {
        let mut buf = Vec::with_capacity(capacity.max(64));
        buf.push(b'{');
        EventJson {
            buf,
            members: 0,
            id: None,
            source: None,
            ty: None,
            subject: None,
            ext: Vec::new(),
        }
    }

    /// Writes `"name":` and answers where the name is.
    fn key(&mut self, name: &str) -> Slot {
        if self.members > 0 {
            self.buf.push(b',');
        }
        self.members += 1;
        let start = self.buf.len() + 1;
        let slot = if write_str(&mut self.buf, name) {
            Slot::At(start, self.buf.len() - 1)
        } else {
            Slot::Owned(ByteString::from(name))
        };
        self.buf.push(b':');
        slot
    }

    /// Records a string-valued member for the attributes filters see.
    fn record(&mut self, name: Slot, role: Role, value: Slot) {
        match role {
            Role::Id => self.id = Some(value),
            Role::Source => self.source = Some(value),
            Role::Type => self.ty = Some(value),
            Role::Subject => self.subject = Some(value),
            Role::Unrecorded => {}
            Role::Extension => self.ext.push((name, value)),
        }
    }

    /// A string member.
    pub fn string(&mut self, name: &str, value: &str) {
        let k = self.key(name);
        let start = self.buf.len() + 1;
        let v = if write_str(&mut self.buf, value) {
            Slot::At(start, self.buf.len() - 1)
        } else {
            Slot::Owned(ByteString::from(value))
        };
        self.record(k, role(name), v);
    }

    /// A string member whose value is `values` joined with commas (repeated MQTT user
    /// properties, docs/eventgrid.md §7.6); `""` when there are none.
    pub fn joined<'a>(&mut self, name: &str, mut values: impl Iterator<Item = &'a str>) {
        let first = values.next().unwrap_or("");
        match values.next() {
            None => self.string(name, first),
            Some(second) => {
                let mut all = String::with_capacity(first.len() + second.len() + 1);
                all.push_str(first);
                for v in std::iter::once(second).chain(values) {
                    all.push(',');
                    all.push_str(v);
                }
                self.string(name, &all);
            }
        }
    }

    /// A string member holding `data` in base64 (standard alphabet, padded).
    pub fn base64(&mut self, name: &str, data: &[u8]) {
        let k = self.key(name);
        self.buf.push(b'"');
        let start = self.buf.len();
        let len = base64::encoded_len(data.len(), true).unwrap_or(0);
        self.buf.resize(start + len, 0);
        // The slice has exactly the encoded length, so encoding cannot fail.
        let _ = STANDARD.encode_slice(data, &mut self.buf[start..]);
        self.buf.push(b'"');
        self.record(k, role(name), Slot::At(start, start + len));
    }

    /// A whole-number member (kept only in `raw`: filters match strings).
    pub fn number(&mut self, name: &str, n: u64) {
        self.key(name);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.buf.extend_from_slice(&digits[i..]);
    }

    /// A member whose value is `json`, valid JSON the caller vouches for, copied as it is. A
    /// JSON string value is recorded like [`EventJson::string`]'s (its unescaped text `value`).
    pub fn raw(&mut self, name: &str, json: &str, value: Option<Cow<'_, str>>) {
        let k = self.key(name);
        let start = self.buf.len();
        self.buf.extend_from_slice(json.as_bytes());
        if let Some(v) = value {
            let slot = if json.len() == v.len() + 2 {
                Slot::At(start + 1, self.buf.len() - 1)
            } else {
                Slot::Owned(ByteString::from(v.as_ref()))
            };
            self.record(k, role(name), slot);
        }
    }

    /// The event's time attribute: RFC 3339 UTC with milliseconds.
    pub fn time_ms(&mut self, name: &str, ms: u64) {
        self.key(name);
        self.buf.push(b'"');
        super::time::write_rfc3339_ms(&mut self.buf, ms);
        self.buf.push(b'"');
    }

    /// The data by the binary-mode rule (module doc): `data` when `content_type` is a JSON
    /// media type, `data_base64` otherwise; nothing when `data` is empty. A JSON media type on
    /// data that is not JSON (or nests deeper than an event may) is an error.
    pub fn binary_data(&mut self, content_type: Option<&str>, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            return Ok(());
        }
        if content_type.is_some_and(is_json_media) {
            let Some(json) = as_json(data) else {
                return Err(format!(
                    "the data is not valid JSON (or nests deeper than {} levels) although its \
                     content type {} says it is.",
                    MAX_EVENT_DEPTH - 1,
                    quoted(content_type.unwrap_or_default())
                ));
            };
            self.raw("data", json, None);
        } else {
            self.base64("data_base64", data);
        }
        Ok(())
    }

    /// Closes the object. `id`, `source` and `type` are empty when they were never written.
    pub fn finish(mut self) -> CloudEvent {
        self.buf.push(b'}');
        let raw = Bytes::from(self.buf);
        let get = |s: Slot| match s {
            // SAFETY: every `At` range holds exactly the bytes of a `&str` written by
            // `write_str` without escapes, or base64 text: valid UTF-8 either way.
            Slot::At(a, b) => unsafe { ByteString::from_bytes_unchecked(raw.slice(a..b)) },
            Slot::Owned(s) => s,
        };
        CloudEvent {
            id: self.id.map(get).unwrap_or_default(),
            source: self.source.map(get).unwrap_or_default(),
            ty: self.ty.map(get).unwrap_or_default(),
            subject: self.subject.map(get),
            ext: self
                .ext
                .into_iter()
                .map(|(k, v)| (get(k), get(v)))
                .collect(),
            raw: raw.clone(),
        }
    }
}

/// `data` as JSON text, when it is valid JSON an event can hold (its own object adds a level).
pub fn as_json(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    if json_depth(data) + 1 > MAX_EVENT_DEPTH {
        return None;
    }
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    Some(text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r')))
}

/// `application/json`, `*/json` or `*/*+json`, parameters ignored, in any case.
pub fn is_json_media(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let Some((_, sub)) = media.split_once('/') else {
        return false;
    };
    // Bytes, not a str slice: a content type is untrusted and may end in a multi-byte
    // character, where a str index would panic.
    let sub = sub.as_bytes();
    sub.eq_ignore_ascii_case(b"json")
        || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json")
}

/// Maps binary-mode attributes (names without their `ce-` prefix) and the data to a CloudEvent
/// JSON object, left open so the caller may add members (the bridge's enrichments). `label` is
/// put before attribute names in errors (`ce-` for HTTP headers). The content type becomes
/// `datacontenttype`; see [`EventJson::binary_data`] for the data.
pub fn binary<'a>(
    attrs: impl Iterator<Item = (&'a str, &'a str)>,
    content_type: Option<&str>,
    data: &[u8],
    label: &str,
) -> Result<EventJson, String> {
    let mut ev = EventJson::new(256 + data.len() * 4 / 3);
    let mut seen = 0u8;
    // A set, not a list: an MQTT message may carry many thousands of user properties.
    let mut exts: HashSet<&str> = HashSet::new();
    for (name, value) in attrs {
        let bit = match name {
            "specversion" => 1,
            "id" => 2,
            "source" => 4,
            "type" => 8,
            "subject" => 16,
            "time" => 32,
            "dataschema" => 64,
            _ => 0,
        };
        let duplicate = if bit == 0 {
            exts.contains(&name)
        } else {
            seen & bit != 0
        };
        if duplicate {
            return Err(format!(
                "attribute '{label}{name}' is given more than once."
            ));
        }
        seen |= bit;
        match name {
            "specversion" if value != "1.0" => {
                return Err(format!(
                    "'{label}specversion' must be \"1.0\", got {}.",
                    quoted(value)
                ));
            }
            "id" | "source" | "type" if value.is_empty() => {
                return Err(format!(
                    "required attribute '{label}{name}' must be a non-empty string."
                ));
            }
            "time" if !is_rfc3339(value) => {
                return Err(format!(
                    "attribute '{label}time' must be an RFC 3339 timestamp such as \
                     \"2024-05-01T10:00:00Z\", got {}.",
                    quoted(value)
                ));
            }
            "datacontenttype" => {
                return Err(format!(
                    "attribute '{label}datacontenttype' is not taken in binary mode: the \
                     content type carries it."
                ));
            }
            "data" | "data_base64" => {
                return Err(format!(
                    "attribute '{label}{name}' is not taken in binary mode: the body is the data."
                ));
            }
            _ if bit == 0 && !is_extension_name(name) => {
                return Err(format!(
                    "invalid extension attribute name {}: extension names must be 1 to 20 \
                     lowercase letters (a-z) or digits.",
                    quoted(&format!("{label}{name}"))
                ));
            }
            _ => {}
        }
        if bit == 0 {
            exts.insert(name);
        }
        ev.string(name, value);
    }
    for (bit, name) in [(1, "specversion"), (2, "id"), (4, "source"), (8, "type")] {
        if seen & bit == 0 {
            return Err(format!("required attribute '{label}{name}' is missing."));
        }
    }
    if let Some(ct) = content_type {
        ev.string("datacontenttype", ct);
    }
    ev.binary_data(content_type, data)?;
    Ok(ev)
}

/// [`binary`], closed: the event exactly as published.
pub fn from_binary<'a>(
    attrs: impl Iterator<Item = (&'a str, &'a str)>,
    content_type: Option<&str>,
    data: &[u8],
    label: &str,
) -> Result<CloudEvent, String> {
    binary(attrs, content_type, data, label).map(EventJson::finish)
}

#[cfg(test)]
mod tests;
