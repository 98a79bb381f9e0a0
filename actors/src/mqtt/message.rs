//! The data that crosses mailboxes on the MQTT data path.
//!
//! Owns: [`AppMessage`] (one application message, immutable once accepted), [`Delivery`] (a message
//! bound for one session with the QoS and flags that session gets), and the ids of sessions and
//! connections. Payloads are ntex `Bytes`; fan-out shares one `Arc<AppMessage>` between every
//! subscriber, so no payload is copied per subscriber. Never holds protocol codec types: the edges
//! translate to and from these.

use std::sync::Arc;
use std::time::Instant;

use ntex_bytes::{ByteString, Bytes};

/// Identifies one session actor for the lifetime of that actor (a resumed session keeps its id; a
/// clean start gets a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Identifies one network connection; a session outlives many of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// MQTT 5 properties that travel with a message from publisher to subscriber unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub response_topic: Option<ByteString>,
    pub correlation_data: Option<Bytes>,
    pub content_type: Option<ByteString>,
    pub payload_utf8: bool,
    pub user_properties: Vec<(ByteString, ByteString)>,
}

/// One MQTT Application Message as accepted from a publisher (or a will). Named for the MQTT term,
/// and so that it never shadows actix's `Message` (the mailbox trait) where both are in scope.
#[derive(Debug, Clone)]
pub struct AppMessage {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// `None` when the publisher set none (every v3 message): keeps the common case small.
    pub props: Option<Box<Properties>>,
    /// From the MQTT 5 message expiry interval; the remaining time is what subscribers are told.
    pub expires_at: Option<Instant>,
    /// The publishing session, for no-local subscriptions. `None` for messages from elsewhere.
    pub publisher: Option<SessionId>,
}

/// A copy of `s` that owns its bytes (inline when short). Strings and payloads decoded by
/// ntex-mqtt are slices of the connection's 16 KiB read buffer, and a slice keeps the whole buffer
/// alive: anything kept after its packet is handled (client ids, topic filters, wills, retained
/// messages) is copied, or every idle device pins 16 KiB.
pub fn owned_str(s: &ByteString) -> ByteString {
    ByteString::from(s.as_str())
}

/// [`owned_str`] for binary data.
pub fn owned_bytes(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

impl Properties {
    fn detached(&self) -> Properties {
        Properties {
            response_topic: self.response_topic.as_ref().map(owned_str),
            correlation_data: self.correlation_data.as_ref().map(owned_bytes),
            content_type: self.content_type.as_ref().map(owned_str),
            payload_utf8: self.payload_utf8,
            user_properties: self
                .user_properties
                .iter()
                .map(|(k, v)| (owned_str(k), owned_str(v)))
                .collect(),
        }
    }
}

impl AppMessage {
    /// A copy that shares no buffer with the packet it came from (see [`owned_str`]), for
    /// messages kept indefinitely: retained messages and wills.
    pub fn detached(&self) -> AppMessage {
        AppMessage {
            topic: owned_str(&self.topic),
            payload: owned_bytes(&self.payload),
            props: self.props.as_ref().map(|p| Box::new(p.detached())),
            ..self.clone()
        }
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Bytes a queued copy of this message accounts for against a session's queue limit.
    pub fn weight(&self) -> usize {
        self.topic.len() + self.payload.len() + 64
    }
}

/// A message bound for one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub msg: Arc<AppMessage>,
    /// min(publish QoS, granted QoS of the best matching subscription).
    pub qos: u8,
    /// The RETAIN flag this subscriber sees (retain-as-published, or a retained message sent on
    /// subscribe).
    pub retain: bool,
    /// MQTT 5 subscription identifiers of every matching subscription; empty when none.
    pub sub_ids: Vec<u32>,
    /// Its number in the session's journal (`msg/SID/N` in the store; 0: not journaled). Set by
    /// the session that holds it, never by the router.
    pub journal: u64,
}

/// What a session hands to its connection's writer.
#[derive(Debug, Clone)]
pub struct OutMsg {
    pub msg: Arc<AppMessage>,
    pub qos: u8,
    /// Packet id for QoS 1 and 2, owned by the session so redelivery after a reconnect reuses it.
    pub pid: u16,
    pub dup: bool,
    pub retain: bool,
    pub sub_ids: Vec<u32>,
    /// QoS 2 only: the client's PUBREC arrived on an earlier connection of this session, so the
    /// writer sends PUBREL for `pid`, not the PUBLISH [MQTT-4.4.0-1].
    pub release: bool,
}

/// Why the broker closes a connection from its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Another connection took over the client id (v5 reason 0x8E).
    SessionTakenOver,
    /// The broker is shutting down (v5 reason 0x8B).
    ServerShuttingDown,
    /// The client's socket took nothing for `mqtt.send_timeout` while the broker had messages
    /// for it (v5 reason 0x97, quota exceeded).
    SendTimeout,
    /// The client's authentication no longer holds: its client was disabled or deleted, or its
    /// token expired (v5 reason 0x87; Event Grid's `ClientAuthenticationError`,
    /// docs/eventgrid.md §7.4).
    NotAuthenticated,
    /// A change of the namespace's permissions took away what one of the client's
    /// subscriptions needs (v5 reason 0x87; Event Grid's `ClientAuthorizationError`,
    /// docs/eventgrid.md §7.5).
    NotAuthorized,
}

/// Everything the session actor sends to the connection writer task, in order.
#[derive(Debug)]
pub enum Out {
    Batch(Vec<OutMsg>),
    Close(CloseReason),
}

impl Out {
    /// (messages, bytes) this item holds, as the outbox and the memory budget count them.
    pub fn size(&self) -> (usize, usize) {
        match self {
            Out::Batch(b) => (b.len(), b.iter().map(|m| m.msg.weight()).sum()),
            Out::Close(_) => (0, 0),
        }
    }
}

/// Hasher for maps keyed by [`SessionId`]: ids are sequential integers, so a multiply spreads
/// them well and costs a fraction of SipHash on the routing hot path.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by session id with [`IdHasher`].
pub type IdMap<V> =
    std::collections::HashMap<SessionId, V, std::hash::BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40-byte slice of a 16 KiB buffer, as ntex-mqtt decodes a topic from a read buffer.
    fn slice_of_big_buffer() -> (Bytes, Bytes) {
        let big = Bytes::from(vec![b'a'; 16 * 1024]);
        let part = big.slice(100..140);
        (big, part)
    }

    fn shares(a: &[u8], big: &[u8]) -> bool {
        big.as_ptr_range().contains(&a.as_ptr())
    }

    #[test]
    fn owned_copies_do_not_pin_the_read_buffer() {
        let (big, part) = slice_of_big_buffer();
        assert!(shares(&part, &big), "the slice itself shares the buffer");
        assert!(!shares(&owned_bytes(&part), &big));
        let s = ByteString::try_from(part.clone()).unwrap();
        assert!(!shares(owned_str(&s).as_bytes(), &big));
        assert_eq!(owned_str(&s), s);

        let m = AppMessage {
            topic: s.clone(),
            payload: part.clone(),
            qos: 1,
            retain: true,
            props: Some(Box::new(Properties {
                response_topic: Some(s.clone()),
                correlation_data: Some(part.clone()),
                content_type: Some(s.clone()),
                payload_utf8: true,
                user_properties: vec![(s.clone(), s.clone())],
            })),
            expires_at: None,
            publisher: None,
        };
        let d = m.detached();
        let p = d.props.as_deref().unwrap();
        for b in [
            d.topic.as_bytes(),
            &d.payload,
            p.response_topic.as_ref().unwrap().as_bytes(),
            p.correlation_data.as_ref().unwrap(),
            p.content_type.as_ref().unwrap().as_bytes(),
            p.user_properties[0].0.as_bytes(),
            p.user_properties[0].1.as_bytes(),
        ] {
            assert!(!shares(b, &big), "detached message still shares the buffer");
            assert_eq!(b, &part[..]);
        }
        assert_eq!((d.qos, d.retain, p.payload_utf8), (1, true, true));
    }
}
