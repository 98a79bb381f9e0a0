//! The records of the MQTT broker's durable state in the store's `mqtt` table: retained
//! messages (`retained/TOPIC`), persistent sessions (`session/CLIENT-ID` → session id and expiry
//! interval), their subscriptions (`sub/SESSION-ID/FILTER` → options), the QoS 1/2 messages they
//! hold (`msg/SESSION-ID/N`, N the message's number in the session's journal: written once held
//! for a journal interval and as its state changes, deleted when acknowledged), their inbound
//! QoS 2 packet ids awaiting PUBREL (`inq2/SESSION-ID`, committed before each PUBREC and
//! PUBCOMP), and the will of a disconnected session
//! that waits for its will delay (`will/SESSION-ID`, framed like a retained message whose time
//! is when the will is due). Session ids are 16 hex digits, so one session's records are one key
//! range.
//!
//! Owns the keys and the framing, and nothing else: the routing shard that owns a topic writes
//! its retained message's record when it is set and deletes it when it is cleared; a session
//! writes its own record and its subscriptions' while its expiry interval is above zero; start-up
//! reads them all back. Pure: no I/O, no clock; times come in and go out as wall-clock milliseconds (an
//! `Instant` does not survive a restart). A record that does not decode is reported, never
//! guessed at.
//!
//! Layout (integers little-endian): version (1) · flags (bit 0 payload is UTF-8, bit 1 MQTT 5
//! properties follow, bit 2 an expiry follows) · QoS · set at (u64 ms) · [expires at (u64 ms)] ·
//! topic · [response topic? · correlation data? · content type? · user-property count (u32) ·
//! (name · value)*] · payload (the rest). Strings and byte strings are a u32 length and the
//! bytes; an optional one is a presence byte first.

use ntex_bytes::{ByteString, Bytes};

use crate::mqtt::message::{AppMessage, Delivery, Properties};

/// The key of `topic`'s retained message.
pub fn retained_key(topic: &str) -> String {
    let mut k = String::with_capacity(RETAINED.len() + topic.len());
    k.push_str(RETAINED);
    k.push_str(topic);
    k
}

/// The prefix of every retained message's key.
pub const RETAINED: &str = "retained/";

/// The prefix of every session record's key.
pub const SESSIONS: &str = "session/";
/// The prefix of every subscription record's key.
pub const SUBS: &str = "sub/";

/// The key of `client_id`'s session record.
pub fn session_key(client_id: &str) -> String {
    format!("{SESSIONS}{client_id}")
}

/// The prefix of session `sid`'s subscription records.
pub fn subs_prefix(sid: u64) -> String {
    format!("{SUBS}{sid:016x}/")
}

/// The key of session `sid`'s subscription to `filter`.
pub fn sub_key(sid: u64, filter: &str) -> String {
    let mut k = subs_prefix(sid);
    k.push_str(filter);
    k
}

/// A persistent session as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub sid: u64,
    pub expiry_secs: u32,
}

pub fn encode_session(r: SessionRecord) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(&r.sid.to_le_bytes());
    out.extend_from_slice(&r.expiry_secs.to_le_bytes());
    out
}

pub fn decode_session(rec: &[u8]) -> Option<SessionRecord> {
    let mut r = Reader(rec);
    if r.u8()? != VERSION {
        return None;
    }
    let out = SessionRecord {
        sid: r.u64()?,
        expiry_secs: r.u32()?,
    };
    r.0.is_empty().then_some(out)
}

/// The prefix of every pending will's key.
pub const WILLS: &str = "will/";

/// The key of session `sid`'s pending will.
pub fn will_key(sid: u64) -> String {
    format!("{WILLS}{sid:016x}")
}

/// Frames a will due at `due_ms`.
pub fn encode_will(msg: &AppMessage, due_ms: u64) -> Vec<u8> {
    encode_retained(msg, due_ms, None)
}

/// A pending will and when it is due (ms since the epoch).
pub fn decode_will(rec: &[u8]) -> Option<(AppMessage, u64)> {
    decode_retained(rec).map(|r| (r.msg, r.modified_ms))
}

/// A persistent session as read back at start-up, with its subscriptions.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    pub client_id: ByteString,
    pub record: SessionRecord,
    pub subs: Vec<crate::mqtt::router::SubReq>,
    /// What it held when the broker last stopped gracefully, in order.
    pub saved: Vec<SavedDelivery>,
    pub inbound_qos2: Vec<u16>,
    /// Its will, if it was waiting for its delay, and when it is due (ms since the epoch).
    pub will: Option<(AppMessage, u64)>,
}

/// Pairs session records with their subscription records (both as read from the store, sorted
/// by key). Damaged records are skipped; answers the sessions and the keys of records that
/// belong to no session (left by a crash between two commits), for the caller to delete.
pub fn restore(
    sessions: Vec<(String, Vec<u8>)>,
    subs: Vec<(String, Vec<u8>)>,
    msgs: Vec<(String, Vec<u8>)>,
    inbound_qos2: Vec<(String, Vec<u8>)>,
    wills: Vec<(String, Vec<u8>)>,
) -> (Vec<RestoredSession>, Vec<String>) {
    let mut out: Vec<RestoredSession> = Vec::new();
    let mut by_sid = std::collections::HashMap::new();
    let mut orphans = Vec::new();
    for (key, rec) in sessions {
        let (Some(cid), Some(r)) = (key.strip_prefix(SESSIONS), decode_session(&rec)) else {
            orphans.push(key);
            continue;
        };
        by_sid.insert(r.sid, out.len());
        out.push(RestoredSession {
            client_id: ByteString::from(cid),
            record: r,
            subs: Vec::new(),
            saved: Vec::new(),
            inbound_qos2: Vec::new(),
            will: None,
        });
    }
    let sid_of = |key: &str, prefix: &str| -> Option<usize> {
        let hex = key.strip_prefix(prefix)?.get(..16)?;
        by_sid.get(&u64::from_str_radix(hex, 16).ok()?).copied()
    };
    for (key, rec) in msgs {
        let n = key
            .strip_prefix(MSGS)
            .and_then(|k| k.get(17..))
            .and_then(|n| u64::from_str_radix(n, 16).ok());
        match (sid_of(&key, MSGS), decode_delivery(&rec), n) {
            (Some(i), Some(mut d), Some(n)) => {
                d.delivery.journal = n;
                out[i].saved.push(d);
            }
            // Damaged, or of no session: deleted by the caller.
            _ => orphans.push(key),
        }
    }
    for (key, rec) in inbound_qos2 {
        match (sid_of(&key, INBOUND_QOS2), decode_pids(&rec)) {
            (Some(i), Some(p)) => out[i].inbound_qos2 = p,
            _ => orphans.push(key),
        }
    }
    for (key, rec) in wills {
        match (sid_of(&key, WILLS), decode_will(&rec)) {
            (Some(i), Some(w)) => out[i].will = Some(w),
            _ => orphans.push(key),
        }
    }
    for (key, rec) in subs {
        let parsed = parse_sub_key(&key).zip(decode_sub(&rec));
        match parsed.and_then(|((sid, f), o)| Some((by_sid.get(&sid)?, f, o))) {
            Some((&i, filter, opts)) => out[i].subs.push(crate::mqtt::router::SubReq {
                filter: ByteString::from(filter),
                opts,
            }),
            None => orphans.push(key),
        }
    }
    (out, orphans)
}

/// A subscription's options as recorded: QoS, no local, retain as published, retain handling,
/// subscription identifier (0: none).
pub fn encode_sub(o: &crate::mqtt::trie::SubOpts) -> Vec<u8> {
    let mut out = vec![
        VERSION,
        o.qos,
        u8::from(o.no_local),
        u8::from(o.retain_as_published),
        o.retain_handling,
    ];
    out.extend_from_slice(&o.sub_id.unwrap_or(0).to_le_bytes());
    out
}

pub fn decode_sub(rec: &[u8]) -> Option<crate::mqtt::trie::SubOpts> {
    let mut r = Reader(rec);
    if r.u8()? != VERSION {
        return None;
    }
    let (qos, no_local, rap, rh) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
    let id = r.u32()?;
    if qos > 2 || no_local > 1 || rap > 1 || rh > 2 || !r.0.is_empty() {
        return None;
    }
    Some(crate::mqtt::trie::SubOpts {
        qos,
        no_local: no_local == 1,
        retain_as_published: rap == 1,
        retain_handling: rh,
        sub_id: (id != 0).then_some(id),
    })
}

/// Splits a subscription record's key into its session id and filter.
pub fn parse_sub_key(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(SUBS)?;
    let (sid, filter) = rest.split_at_checked(16)?;
    let filter = filter.strip_prefix('/')?;
    Some((u64::from_str_radix(sid, 16).ok()?, filter))
}

const VERSION: u8 = 1;
const UTF8: u8 = 1;
const PROPS: u8 = 2;
const EXPIRY: u8 = 4;

/// A retained message as read back.
#[derive(Debug, Clone)]
pub struct StoredRetained {
    pub msg: AppMessage,
    pub modified_ms: u64,
    /// When its message expiry interval ends (ms since the epoch), if it has one.
    pub expires_ms: Option<u64>,
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.push(1);
            put(out, b);
        }
        None => out.push(0),
    }
}

/// Frames `msg`, set at `modified_ms`, expiring at `expires_ms`.
pub fn encode_retained(msg: &AppMessage, modified_ms: u64, expires_ms: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + msg.topic.len() + msg.payload.len());
    encode_retained_into(&mut out, msg, modified_ms, expires_ms);
    out
}

/// [`encode_retained`], appended to `out` (the cluster link frames messages this way too, after
/// a header of its own).
pub fn encode_retained_into(
    out: &mut Vec<u8>,
    msg: &AppMessage,
    modified_ms: u64,
    expires_ms: Option<u64>,
) {
    let props = msg.props.as_deref();
    let mut flags = 0;
    if props.is_some_and(|p| p.payload_utf8) {
        flags |= UTF8;
    }
    if props.is_some() {
        flags |= PROPS;
    }
    if expires_ms.is_some() {
        flags |= EXPIRY;
    }
    out.extend_from_slice(&[VERSION, flags, msg.qos]);
    out.extend_from_slice(&modified_ms.to_le_bytes());
    if let Some(e) = expires_ms {
        out.extend_from_slice(&e.to_le_bytes());
    }
    put(out, msg.topic.as_str().as_bytes());
    if let Some(p) = props {
        put_opt(
            out,
            p.response_topic.as_ref().map(|s| s.as_str().as_bytes()),
        );
        put_opt(out, p.correlation_data.as_deref());
        put_opt(out, p.content_type.as_ref().map(|s| s.as_str().as_bytes()));
        out.extend_from_slice(&(p.user_properties.len() as u32).to_le_bytes());
        for (k, v) in &p.user_properties {
            put(out, k.as_str().as_bytes());
            put(out, v.as_str().as_bytes());
        }
    }
    out.extend_from_slice(&msg.payload);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<ByteString> {
        let b = self.bytes()?;
        std::str::from_utf8(b).ok().map(ByteString::from)
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.u8()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }
}

/// Reads a record framed by [`encode_retained`]; `None` if it is damaged or of another version.
pub fn decode_retained(rec: &[u8]) -> Option<StoredRetained> {
    let mut r = Reader(rec);
    if r.u8()? != VERSION {
        return None;
    }
    let flags = r.u8()?;
    let qos = r.u8()?;
    if qos > 2 {
        return None;
    }
    let modified_ms = r.u64()?;
    let expires_ms = if flags & EXPIRY != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    let topic = r.string()?;
    let props = if flags & PROPS != 0 {
        let response_topic = r.opt(|r| r.string())?;
        let correlation_data = r.opt(|r| r.bytes().map(Bytes::copy_from_slice))?;
        let content_type = r.opt(|r| r.string())?;
        let n = r.u32()? as usize;
        let mut user_properties = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            user_properties.push((r.string()?, r.string()?));
        }
        Some(Box::new(Properties {
            response_topic,
            correlation_data,
            content_type,
            payload_utf8: flags & UTF8 != 0,
            user_properties,
        }))
    } else {
        None
    };
    Some(StoredRetained {
        msg: AppMessage {
            topic,
            payload: Bytes::copy_from_slice(r.0),
            qos,
            retain: true,
            props,
            expires_at: None,
            publisher: None,
        },
        modified_ms,
        expires_ms,
    })
}

/// The prefix of every saved message's key (`msg/SESSION-ID/N`).
pub const MSGS: &str = "msg/";
/// The prefix of every saved set of inbound QoS 2 packet ids (`inq2/SESSION-ID`).
pub const INBOUND_QOS2: &str = "inq2/";

/// The key of message `n` of session `sid`'s journal (numbered in the order the session took
/// them, which is the order it sends them).
pub fn msg_key(sid: u64, n: u64) -> String {
    format!("{MSGS}{sid:016x}/{n:016x}")
}

/// The prefix of every journaled message of session `sid`.
pub fn msgs_prefix(sid: u64) -> String {
    format!("{MSGS}{sid:016x}/")
}

/// The key of session `sid`'s inbound QoS 2 packet ids awaiting PUBREL.
pub fn inbound_qos2_key(sid: u64) -> String {
    format!("{INBOUND_QOS2}{sid:016x}")
}

/// A QoS 1/2 message a session held when the broker stopped (its journal number in
/// `delivery.journal`).
#[derive(Debug, Clone)]
pub struct SavedDelivery {
    pub delivery: Delivery,
    /// In flight: its packet id, and whether its PUBREC came (only PUBREL/PUBCOMP remain).
    pub inflight: Option<(u16, bool)>,
    /// When its message expiry interval ends (ms since the epoch), if it has one.
    pub expires_ms: Option<u64>,
}

/// Frames a delivery: version · QoS · flags (bit 0 retain, bit 1 in flight, bit 2 PUBREC seen) ·
/// packet id (u16) · subscription-identifier count (u32) · identifiers (u32 each) · the
/// message as [`encode_retained`] frames it.
pub fn encode_delivery(
    d: &Delivery,
    inflight: Option<(u16, bool)>,
    expires_ms: Option<u64>,
) -> Vec<u8> {
    let mut flags = u8::from(d.retain);
    if let Some((_, received)) = inflight {
        flags |= 2 | (u8::from(received) << 2);
    }
    let mut out = vec![VERSION, d.qos, flags];
    out.extend_from_slice(&inflight.map_or(0, |(p, _)| p).to_le_bytes());
    out.extend_from_slice(&(d.sub_ids.len() as u32).to_le_bytes());
    for id in &d.sub_ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend(encode_retained(&d.msg, 0, expires_ms));
    out
}

pub fn decode_delivery(rec: &[u8]) -> Option<SavedDelivery> {
    let mut r = Reader(rec);
    if r.u8()? != VERSION {
        return None;
    }
    let (qos, flags) = (r.u8()?, r.u8()?);
    let pid = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
    let n = r.u32()? as usize;
    let mut sub_ids = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        sub_ids.push(r.u32()?);
    }
    if !(1..=2).contains(&qos) || (flags & 2 != 0 && pid == 0) {
        return None;
    }
    let m = decode_retained(r.0)?;
    let mut msg = m.msg;
    // The record keeps the message as published; the flag this subscriber sees is the one above.
    msg.retain = flags & 1 != 0;
    Some(SavedDelivery {
        delivery: Delivery {
            msg: std::sync::Arc::new(msg),
            qos,
            retain: flags & 1 != 0,
            sub_ids,
            journal: 0,
        },
        inflight: (flags & 2 != 0).then_some((pid, flags & 4 != 0)),
        expires_ms: m.expires_ms,
    })
}

/// Packet ids, two bytes each.
pub fn encode_pids(pids: &[u16]) -> Vec<u8> {
    let mut out = vec![VERSION];
    for p in pids {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

pub fn decode_pids(rec: &[u8]) -> Option<Vec<u16>> {
    let (&v, rest) = rec.split_first()?;
    if v != VERSION || rest.len() % 2 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(props: Option<Properties>) -> AppMessage {
        AppMessage {
            topic: ByteString::from("plant/α/temp"),
            payload: Bytes::from_static(b"21.5\x00\xff"),
            qos: 1,
            retain: true,
            props: props.map(Box::new),
            expires_at: None,
            publisher: None,
        }
    }

    #[test]
    fn records_round_trip_with_and_without_properties() {
        let full = Properties {
            response_topic: Some(ByteString::from("reply/1")),
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            content_type: Some(ByteString::from("application/json")),
            payload_utf8: true,
            user_properties: vec![
                (ByteString::from("a"), ByteString::from("1")),
                (ByteString::from("a"), ByteString::from("2")),
            ],
        };
        for (m, exp) in [(msg(None), None), (msg(Some(full)), Some(99))] {
            let rec = encode_retained(&m, 1234, exp);
            let got = decode_retained(&rec).expect("decodes");
            assert_eq!(got.modified_ms, 1234);
            assert_eq!(got.expires_ms, exp);
            assert_eq!(got.msg.topic, m.topic);
            assert_eq!(got.msg.payload, m.payload);
            assert_eq!(got.msg.qos, 1);
            assert!(got.msg.retain);
            assert_eq!(got.msg.props, m.props);
        }
    }

    #[test]
    fn session_and_subscription_records_round_trip() {
        let r = SessionRecord {
            sid: 0x1234,
            expiry_secs: 3600,
        };
        assert_eq!(decode_session(&encode_session(r)), Some(r));
        assert_eq!(decode_session(&encode_session(r)[..12]), None);
        let o = crate::mqtt::trie::SubOpts {
            qos: 2,
            no_local: true,
            retain_as_published: false,
            retain_handling: 1,
            sub_id: Some(7),
        };
        let got = decode_sub(&encode_sub(&o)).unwrap();
        assert_eq!(
            (
                got.qos,
                got.no_local,
                got.retain_as_published,
                got.retain_handling,
                got.sub_id
            ),
            (2, true, false, 1, Some(7))
        );
        let mut bad = encode_sub(&o);
        bad[1] = 3;
        assert!(decode_sub(&bad).is_none());
        let k = sub_key(0x1234, "a/+/#");
        assert_eq!(k, "sub/0000000000001234/a/+/#");
        assert_eq!(parse_sub_key(&k), Some((0x1234, "a/+/#")));
        assert_eq!(parse_sub_key("sub/12/a"), None);
        assert_eq!(session_key("dev-1"), "session/dev-1");
    }

    #[test]
    fn damaged_records_are_refused() {
        let rec = encode_retained(&msg(Some(Properties::default())), 1, Some(2));
        // Every truncation inside the header and properties, another version, a bad QoS.
        let payload_at = rec.len() - 6;
        for n in 0..payload_at {
            assert!(decode_retained(&rec[..n]).is_none(), "truncated at {n}");
        }
        let mut v = rec.clone();
        v[0] = 2;
        assert!(decode_retained(&v).is_none());
        let mut q = rec.clone();
        q[2] = 3;
        assert!(decode_retained(&q).is_none());
        assert_eq!(retained_key("a/b"), "retained/a/b");
    }
}
