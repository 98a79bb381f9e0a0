//! The event model shared by the HTTP edge and the event-grid actors.
//!
//! Owns [`CloudEvent`]: one published CloudEvent 1.0, kept as the exact JSON bytes the publisher
//! sent (`raw`) plus the few attributes routing needs (filters, dead-letter records). The
//! attribute strings are slices of the same buffer where the JSON had no escapes, so parsing a
//! batch allocates one buffer, not one string per attribute. Must never re-serialise `raw`: what
//! a consumer receives is byte for byte what was published.

use ntex_bytes::{ByteString, Bytes};

/// One CloudEvent as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    pub id: ByteString,
    pub source: ByteString,
    /// The `type` attribute.
    pub ty: ByteString,
    pub subject: Option<ByteString>,
    /// Extension attributes whose values are JSON strings (what string filters can match), in the
    /// order they appeared. Non-string extension values are kept only in `raw`.
    pub ext: Vec<(ByteString, ByteString)>,
    /// The event's JSON object, exactly as sent.
    pub raw: Bytes,
}

impl CloudEvent {
    /// The value of a context attribute or string extension, by its (lowercase) name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        match name {
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "type" => Some(&self.ty),
            "subject" => self.subject.as_deref(),
            "specversion" => Some("1.0"),
            _ => self
                .ext
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, v)| v.as_str()),
        }
    }
}
