//! The data that crosses mailboxes on the MQTT data path.
//!
//! Owns: [`Message`] (one application message, immutable once accepted), [`Delivery`] (a message
//! bound for one session with the QoS and flags that session gets), and the ids of sessions and
//! connections. Payloads are ntex `Bytes`; fan-out shares one `Arc<Message>` between every
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

/// One application message as accepted from a publisher (or a will).
#[derive(Debug, Clone)]
pub struct Message {
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

impl Message {
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
    pub msg: Arc<Message>,
    /// min(publish QoS, granted QoS of the best matching subscription).
    pub qos: u8,
    /// The RETAIN flag this subscriber sees (retain-as-published, or a retained message sent on
    /// subscribe).
    pub retain: bool,
    /// MQTT 5 subscription identifiers of every matching subscription; empty when none.
    pub sub_ids: Vec<u32>,
}

/// What a session hands to its connection's writer.
#[derive(Debug, Clone)]
pub struct OutMsg {
    pub msg: Arc<Message>,
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
}

/// Everything the session actor sends to the connection writer task, in order.
#[derive(Debug)]
pub enum Out {
    Batch(Vec<OutMsg>),
    Close(CloseReason),
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
