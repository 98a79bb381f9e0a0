//! A small MQTT 3.1 / 3.1.1 / 5.0 codec covering what a load generator needs.
//!
//! Encoding appends to a `BytesMut` so that many packets can be batched into a
//! single buffer and written with one `write_all`. Decoding is incremental and
//! zero-copy: [`decode`] looks at the front of a byte slice and either returns a
//! complete packet borrowing from that slice together with its length, or
//! `Ok(None)` when more bytes are needed.

use bytes::{BufMut, BytesMut};
use std::fmt;

/// Protocol level sent in CONNECT for MQTT 3.1 ("MQIsdp").
pub const LEVEL_V31: u8 = 3;
/// Protocol level for MQTT 3.1.1.
pub const LEVEL_V311: u8 = 4;
/// Protocol level for MQTT 5.0.
pub const LEVEL_V5: u8 = 5;

/// Largest value a variable byte integer can hold (268,435,455).
pub const MAX_REMAINING: usize = 268_435_455;

// MQTT 5 property identifiers used here.
const PROP_PAYLOAD_FORMAT: u8 = 0x01;
const PROP_MESSAGE_EXPIRY: u8 = 0x02;
const PROP_CONTENT_TYPE: u8 = 0x03;
const PROP_RESPONSE_TOPIC: u8 = 0x08;
const PROP_CORRELATION_DATA: u8 = 0x09;
const PROP_SUBSCRIPTION_ID: u8 = 0x0B;
const PROP_SESSION_EXPIRY: u8 = 0x11;
const PROP_ASSIGNED_CLIENT_ID: u8 = 0x12;
const PROP_SERVER_KEEP_ALIVE: u8 = 0x13;
const PROP_AUTH_METHOD: u8 = 0x15;
const PROP_AUTH_DATA: u8 = 0x16;
const PROP_REQUEST_PROBLEM_INFO: u8 = 0x17;
const PROP_WILL_DELAY: u8 = 0x18;
const PROP_REQUEST_RESPONSE_INFO: u8 = 0x19;
const PROP_RESPONSE_INFO: u8 = 0x1A;
const PROP_SERVER_REFERENCE: u8 = 0x1C;
const PROP_REASON_STRING: u8 = 0x1F;
const PROP_RECEIVE_MAXIMUM: u8 = 0x21;
const PROP_TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const PROP_TOPIC_ALIAS: u8 = 0x23;
const PROP_MAXIMUM_QOS: u8 = 0x24;
const PROP_RETAIN_AVAILABLE: u8 = 0x25;
const PROP_USER_PROPERTY: u8 = 0x26;
const PROP_MAXIMUM_PACKET_SIZE: u8 = 0x27;
const PROP_WILDCARD_SUB_AVAILABLE: u8 = 0x28;
const PROP_SUB_ID_AVAILABLE: u8 = 0x29;
const PROP_SHARED_SUB_AVAILABLE: u8 = 0x2A;

/// Control packet types (upper nibble of the fixed header).
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
    pub const AUTH: u8 = 15;
}

/// A malformed packet. Decoding errors are fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed MQTT packet: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// Options for a CONNECT packet.
#[derive(Debug, Clone, Default)]
pub struct ConnectOpts<'a> {
    /// 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0).
    pub level: u8,
    pub client_id: &'a str,
    pub keep_alive: u16,
    pub clean: bool,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// MQTT 5 session expiry interval in seconds.
    pub session_expiry: Option<u32>,
    /// MQTT 5 receive maximum we announce.
    pub receive_maximum: Option<u16>,
}

/// MQTT 5 properties of a PUBLISH that we care about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubProps<'a> {
    pub response_topic: Option<&'a [u8]>,
    pub correlation_data: Option<&'a [u8]>,
    pub topic_alias: Option<u16>,
}

/// A decoded PUBLISH borrowing from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: &'a [u8],
    /// Packet identifier, present for QoS 1 and 2.
    pub pid: u16,
    pub props: PubProps<'a>,
    pub payload: &'a [u8],
}

/// Properties of CONNACK that influence the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProps {
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub maximum_packet_size: Option<u32>,
    pub server_keep_alive: Option<u16>,
    pub assigned_client_id: Option<String>,
    pub reason_string: Option<String>,
    pub topic_alias_maximum: Option<u16>,
}

/// A decoded control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck {
        session_present: bool,
        code: u8,
        props: ConnAckProps,
    },
    Publish(Publish<'a>),
    PubAck {
        pid: u16,
        reason: u8,
    },
    PubRec {
        pid: u16,
        reason: u8,
    },
    PubRel {
        pid: u16,
        reason: u8,
    },
    PubComp {
        pid: u16,
        reason: u8,
    },
    SubAck {
        pid: u16,
        codes: &'a [u8],
    },
    UnsubAck {
        pid: u16,
    },
    PingReq,
    PingResp,
    Disconnect {
        reason: u8,
    },
    /// CONNECT, SUBSCRIBE, UNSUBSCRIBE and AUTH are not expected from a broker;
    /// they are reported by type only.
    Other {
        kind: u8,
    },
}

/// Number of bytes a variable byte integer takes.
pub fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends a variable byte integer. Values above [`MAX_REMAINING`] are clamped
/// by callers (see [`encode_publish`]) before getting here.
pub fn put_varint(buf: &mut BytesMut, mut v: usize) {
    loop {
        let mut byte = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

/// Reads a variable byte integer. `Ok(None)` means more bytes are needed.
pub fn get_varint(b: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    let mut mult = 1usize;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return Ok(None);
        };
        value += (byte & 0x7F) as usize * mult;
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
        mult *= 128;
    }
    err("variable byte integer longer than 4 bytes")
}

fn put_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s);
}

/// Checks that a string or binary field fits the 16-bit length prefix.
pub fn check_field(name: &str, len: usize) -> Result<(), String> {
    if len > u16::MAX as usize {
        Err(format!("{name} is {len} bytes, MQTT allows at most 65535"))
    } else {
        Ok(())
    }
}

/// Appends a CONNECT packet.
pub fn encode_connect(buf: &mut BytesMut, o: &ConnectOpts<'_>) {
    let (name, level): (&[u8], u8) = match o.level {
        LEVEL_V31 => (b"MQIsdp", LEVEL_V31),
        LEVEL_V5 => (b"MQTT", LEVEL_V5),
        _ => (b"MQTT", LEVEL_V311),
    };
    let v5 = level == LEVEL_V5;
    let mut props = BytesMut::new();
    if v5 {
        if let Some(e) = o.session_expiry {
            props.put_u8(PROP_SESSION_EXPIRY);
            props.put_u32(e);
        }
        if let Some(r) = o.receive_maximum {
            props.put_u8(PROP_RECEIVE_MAXIMUM);
            props.put_u16(r);
        }
    }
    let mut flags = 0u8;
    if o.clean {
        flags |= 0x02;
    }
    if o.username.is_some() {
        flags |= 0x80;
    }
    if o.password.is_some() {
        flags |= 0x40;
    }
    let mut rem = 2 + name.len() + 1 + 1 + 2 + 2 + o.client_id.len();
    if v5 {
        rem += varint_len(props.len()) + props.len();
    }
    if let Some(u) = o.username {
        rem += 2 + u.len();
    }
    if let Some(p) = o.password {
        rem += 2 + p.len();
    }
    buf.reserve(rem + 5);
    buf.put_u8(kind::CONNECT << 4);
    put_varint(buf, rem);
    put_str(buf, name);
    buf.put_u8(level);
    buf.put_u8(flags);
    buf.put_u16(o.keep_alive);
    if v5 {
        put_varint(buf, props.len());
        buf.put_slice(&props);
    }
    put_str(buf, o.client_id.as_bytes());
    if let Some(u) = o.username {
        put_str(buf, u.as_bytes());
    }
    if let Some(p) = o.password {
        put_str(buf, p);
    }
}

/// Length of the MQTT 5 property block for the given publish properties
/// (without the leading property-length varint).
fn pub_props_len(p: &PubProps<'_>) -> usize {
    let mut n = 0;
    if let Some(t) = p.response_topic {
        n += 1 + 2 + t.len();
    }
    if let Some(c) = p.correlation_data {
        n += 1 + 2 + c.len();
    }
    if p.topic_alias.is_some() {
        n += 3;
    }
    n
}

/// Appends a PUBLISH packet whose payload is produced by `fill`, which must
/// append exactly `payload_len` bytes. This lets callers write the payload
/// header and padding directly into the batch buffer without an intermediate
/// allocation.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_with(
    buf: &mut BytesMut,
    v5: bool,
    topic: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    pid: u16,
    props: &PubProps<'_>,
    payload_len: usize,
    fill: impl FnOnce(&mut BytesMut),
) {
    let plen = if v5 { pub_props_len(props) } else { 0 };
    let mut rem = 2 + topic.len() + payload_len;
    if qos > 0 {
        rem += 2;
    }
    if v5 {
        rem += varint_len(plen) + plen;
    }
    let mut first = (kind::PUBLISH << 4) | ((qos & 3) << 1);
    if retain {
        first |= 1;
    }
    if dup {
        first |= 0x08;
    }
    buf.reserve(rem + 5);
    buf.put_u8(first);
    put_varint(buf, rem);
    put_str(buf, topic);
    if qos > 0 {
        buf.put_u16(pid);
    }
    if v5 {
        put_varint(buf, plen);
        if let Some(t) = props.response_topic {
            buf.put_u8(PROP_RESPONSE_TOPIC);
            put_str(buf, t);
        }
        if let Some(c) = props.correlation_data {
            buf.put_u8(PROP_CORRELATION_DATA);
            put_str(buf, c);
        }
        if let Some(a) = props.topic_alias {
            buf.put_u8(PROP_TOPIC_ALIAS);
            buf.put_u16(a);
        }
    }
    let before = buf.len();
    fill(buf);
    debug_assert_eq!(buf.len() - before, payload_len);
}

/// Appends a PUBLISH packet with a ready payload.
pub fn encode_publish(buf: &mut BytesMut, v5: bool, p: &Publish<'_>) {
    encode_publish_with(
        buf,
        v5,
        p.topic,
        p.qos,
        p.retain,
        p.dup,
        p.pid,
        &p.props,
        p.payload.len(),
        |b| b.put_slice(p.payload),
    );
}

/// Size in bytes of a PUBLISH with these parameters; used to reject payloads
/// that exceed the broker's maximum packet size or the protocol limit.
pub fn publish_size(
    v5: bool,
    topic_len: usize,
    qos: u8,
    props: &PubProps<'_>,
    payload: usize,
) -> usize {
    let plen = if v5 { pub_props_len(props) } else { 0 };
    let mut rem = 2 + topic_len + payload;
    if qos > 0 {
        rem += 2;
    }
    if v5 {
        rem += varint_len(plen) + plen;
    }
    1 + varint_len(rem) + rem
}

/// Appends PUBACK / PUBREC / PUBREL / PUBCOMP (success reason, short form).
pub fn encode_ack(buf: &mut BytesMut, packet_kind: u8, pid: u16) {
    let first = if packet_kind == kind::PUBREL {
        (kind::PUBREL << 4) | 0x02
    } else {
        packet_kind << 4
    };
    buf.put_slice(&[first, 2, (pid >> 8) as u8, pid as u8]);
}

/// Appends a SUBSCRIBE for the given (filter, qos) pairs.
pub fn encode_subscribe(buf: &mut BytesMut, v5: bool, pid: u16, filters: &[(&str, u8)]) {
    let mut rem = 2;
    if v5 {
        rem += 1;
    }
    for (f, _) in filters {
        rem += 2 + f.len() + 1;
    }
    buf.reserve(rem + 5);
    buf.put_u8((kind::SUBSCRIBE << 4) | 0x02);
    put_varint(buf, rem);
    buf.put_u16(pid);
    if v5 {
        buf.put_u8(0);
    }
    for (f, q) in filters {
        put_str(buf, f.as_bytes());
        buf.put_u8(q & 3);
    }
}

/// Appends a PINGREQ.
pub fn encode_pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[kind::PINGREQ << 4, 0]);
}

/// Appends a DISCONNECT (normal disconnection in all versions).
pub fn encode_disconnect(buf: &mut BytesMut) {
    buf.put_slice(&[kind::DISCONNECT << 4, 0]);
}

/// A cursor over a packet body.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Rd { b, pos: 0 }
    }
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        let v = *self
            .b
            .get(self.pos)
            .ok_or_else(|| DecodeError("truncated byte".into()))?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.left() < n {
            return err(format!("field of {n} bytes but only {} left", self.left()));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn bin(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn varint(&mut self) -> Result<usize, DecodeError> {
        match get_varint(&self.b[self.pos..])? {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None => err("truncated variable byte integer"),
        }
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
}

/// Walks an MQTT 5 property block, calling `f` for each (id, reader) pair.
/// `f` must consume the property value from the reader.
fn read_props<'a>(
    r: &mut Rd<'a>,
    mut f: impl FnMut(u8, &mut Rd<'a>) -> Result<bool, DecodeError>,
) -> Result<(), DecodeError> {
    let len = r.varint()?;
    let block = r.take(len)?;
    let mut p = Rd::new(block);
    while p.left() > 0 {
        let id = p.varint()? as u8;
        if !f(id, &mut p)? {
            skip_prop(id, &mut p)?;
        }
    }
    Ok(())
}

/// Skips the value of a property we do not interpret.
fn skip_prop(id: u8, p: &mut Rd<'_>) -> Result<(), DecodeError> {
    match id {
        PROP_PAYLOAD_FORMAT
        | PROP_REQUEST_PROBLEM_INFO
        | PROP_REQUEST_RESPONSE_INFO
        | PROP_MAXIMUM_QOS
        | PROP_RETAIN_AVAILABLE
        | PROP_WILDCARD_SUB_AVAILABLE
        | PROP_SUB_ID_AVAILABLE
        | PROP_SHARED_SUB_AVAILABLE => {
            p.u8()?;
        }
        PROP_SERVER_KEEP_ALIVE
        | PROP_RECEIVE_MAXIMUM
        | PROP_TOPIC_ALIAS_MAXIMUM
        | PROP_TOPIC_ALIAS => {
            p.u16()?;
        }
        PROP_MESSAGE_EXPIRY | PROP_SESSION_EXPIRY | PROP_WILL_DELAY | PROP_MAXIMUM_PACKET_SIZE => {
            p.u32()?;
        }
        PROP_SUBSCRIPTION_ID => {
            p.varint()?;
        }
        PROP_CONTENT_TYPE
        | PROP_RESPONSE_TOPIC
        | PROP_CORRELATION_DATA
        | PROP_ASSIGNED_CLIENT_ID
        | PROP_AUTH_METHOD
        | PROP_AUTH_DATA
        | PROP_RESPONSE_INFO
        | PROP_SERVER_REFERENCE
        | PROP_REASON_STRING => {
            p.bin()?;
        }
        PROP_USER_PROPERTY => {
            p.bin()?;
            p.bin()?;
        }
        other => return err(format!("unknown property identifier 0x{other:02x}")),
    }
    Ok(())
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Tries to decode one packet from the front of `b`.
///
/// Returns `Ok(Some((packet, consumed)))` for a complete packet, `Ok(None)` if
/// `b` holds only part of a packet, and an error for malformed input. `v5`
/// selects MQTT 5 parsing of reason codes and properties.
pub fn decode(b: &[u8], v5: bool) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    if b.len() < 2 {
        return Ok(None);
    }
    let first = b[0];
    let Some((rem, vlen)) = get_varint(&b[1..])? else {
        return Ok(None);
    };
    let total = 1 + vlen + rem;
    if b.len() < total {
        return Ok(None);
    }
    let body = &b[1 + vlen..total];
    let pkt = decode_body(first, body, v5)?;
    Ok(Some((pkt, total)))
}

fn decode_body(first: u8, body: &[u8], v5: bool) -> Result<Packet<'_>, DecodeError> {
    let ty = first >> 4;
    let flags = first & 0x0F;
    let mut r = Rd::new(body);
    let pkt = match ty {
        kind::CONNACK => {
            let ack_flags = r.u8()?;
            let code = r.u8()?;
            let mut props = ConnAckProps::default();
            if v5 && r.left() > 0 {
                read_props(&mut r, |id, p| {
                    match id {
                        PROP_RECEIVE_MAXIMUM => props.receive_maximum = Some(p.u16()?),
                        PROP_MAXIMUM_QOS => props.maximum_qos = Some(p.u8()?),
                        PROP_MAXIMUM_PACKET_SIZE => props.maximum_packet_size = Some(p.u32()?),
                        PROP_SERVER_KEEP_ALIVE => props.server_keep_alive = Some(p.u16()?),
                        PROP_ASSIGNED_CLIENT_ID => props.assigned_client_id = Some(utf8(p.bin()?)),
                        PROP_REASON_STRING => props.reason_string = Some(utf8(p.bin()?)),
                        PROP_TOPIC_ALIAS_MAXIMUM => props.topic_alias_maximum = Some(p.u16()?),
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
            }
            Packet::ConnAck {
                session_present: ack_flags & 1 == 1,
                code,
                props,
            }
        }
        kind::PUBLISH => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return err("PUBLISH with QoS 3");
            }
            let topic = r.bin()?;
            let pid = if qos > 0 { r.u16()? } else { 0 };
            let mut props = PubProps::default();
            if v5 {
                read_props(&mut r, |id, p| {
                    match id {
                        PROP_RESPONSE_TOPIC => props.response_topic = Some(p.bin()?),
                        PROP_CORRELATION_DATA => props.correlation_data = Some(p.bin()?),
                        PROP_TOPIC_ALIAS => props.topic_alias = Some(p.u16()?),
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
            }
            Packet::Publish(Publish {
                dup: flags & 0x08 != 0,
                qos,
                retain: flags & 1 != 0,
                topic,
                pid,
                props,
                payload: r.rest(),
            })
        }
        kind::PUBACK | kind::PUBREC | kind::PUBREL | kind::PUBCOMP => {
            let pid = r.u16()?;
            let reason = if r.left() > 0 { r.u8()? } else { 0 };
            match ty {
                kind::PUBACK => Packet::PubAck { pid, reason },
                kind::PUBREC => Packet::PubRec { pid, reason },
                kind::PUBREL => Packet::PubRel { pid, reason },
                _ => Packet::PubComp { pid, reason },
            }
        }
        kind::SUBACK => {
            let pid = r.u16()?;
            if v5 {
                read_props(&mut r, |_, _| Ok(false))?;
            }
            Packet::SubAck {
                pid,
                codes: r.rest(),
            }
        }
        kind::UNSUBACK => Packet::UnsubAck { pid: r.u16()? },
        kind::PINGREQ => Packet::PingReq,
        kind::PINGRESP => Packet::PingResp,
        kind::DISCONNECT => {
            let reason = if r.left() > 0 { r.u8()? } else { 0 };
            Packet::Disconnect { reason }
        }
        kind::CONNECT | kind::SUBSCRIBE | kind::UNSUBSCRIBE | kind::AUTH => {
            Packet::Other { kind: ty }
        }
        _ => return err(format!("reserved packet type {ty}")),
    };
    Ok(pkt)
}

/// Human-readable text for a CONNACK return/reason code.
pub fn connack_reason(code: u8, v5: bool) -> &'static str {
    if !v5 {
        return match code {
            0 => "accepted",
            1 => "unacceptable protocol version",
            2 => "identifier rejected",
            3 => "server unavailable",
            4 => "bad user name or password",
            5 => "not authorized",
            _ => "unknown return code",
        };
    }
    match code {
        0x00 => "success",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x90 => "topic name invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9F => "connection rate exceeded",
        _ => "unknown reason code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(b: &[u8], v5: bool) -> (Packet<'_>, usize) {
        decode(b, v5).expect("decodes").expect("complete")
    }

    #[test]
    fn varint_round_trip() {
        for v in [
            0usize,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING,
        ] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b).unwrap(), Some((v, b.len())));
            // every strict prefix is incomplete
            for cut in 0..b.len() {
                assert_eq!(get_varint(&b[..cut]).unwrap(), None);
            }
        }
        assert!(get_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]).is_err());
    }

    #[test]
    fn publish_round_trip_all_versions_and_qos() {
        for v5 in [false, true] {
            for qos in 0..=2u8 {
                let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
                let props = if v5 {
                    PubProps {
                        response_topic: Some(b"resp/7"),
                        correlation_data: Some(&[1, 2, 3, 4, 5, 6, 7, 8]),
                        topic_alias: None,
                    }
                } else {
                    PubProps::default()
                };
                let p = Publish {
                    dup: qos > 0,
                    qos,
                    retain: true,
                    topic: b"bench/1/x",
                    pid: if qos > 0 { 4242 } else { 0 },
                    props,
                    payload: &payload,
                };
                let mut b = BytesMut::new();
                encode_publish(&mut b, v5, &p);
                assert_eq!(
                    b.len(),
                    publish_size(v5, p.topic.len(), qos, &props, payload.len())
                );
                let (got, n) = one(&b, v5);
                assert_eq!(n, b.len());
                assert_eq!(got, Packet::Publish(p));
            }
        }
    }

    #[test]
    fn acks_round_trip() {
        for (k, expect) in [
            (kind::PUBACK, Packet::PubAck { pid: 7, reason: 0 }),
            (kind::PUBREC, Packet::PubRec { pid: 7, reason: 0 }),
            (kind::PUBREL, Packet::PubRel { pid: 7, reason: 0 }),
            (kind::PUBCOMP, Packet::PubComp { pid: 7, reason: 0 }),
        ] {
            let mut b = BytesMut::new();
            encode_ack(&mut b, k, 7);
            assert_eq!(one(&b, true).0, expect);
            assert_eq!(one(&b, false).0, expect);
        }
        // MQTT 5 ack with a failure reason code and a property block
        // property block: length 2 containing PAYLOAD_FORMAT(0x01)=0
        let raw = [0x40, 0x06, 0x00, 0x09, 0x97, 0x02, 0x01, 0x00];
        let (p, n) = one(&raw, true);
        assert_eq!(n, 8);
        assert_eq!(
            p,
            Packet::PubAck {
                pid: 9,
                reason: 0x97
            }
        );
    }

    #[test]
    fn connect_encodes_expected_bytes() {
        let mut b = BytesMut::new();
        encode_connect(
            &mut b,
            &ConnectOpts {
                level: LEVEL_V311,
                client_id: "c1",
                keep_alive: 60,
                clean: true,
                username: Some("u"),
                password: Some(b"pw"),
                ..Default::default()
            },
        );
        let expect: &[u8] = &[
            0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 2, b'c', b'1', 0, 1, b'u',
            0, 2, b'p', b'w',
        ];
        assert_eq!(&b[..], expect);
        assert_eq!(
            one(&b, false).0,
            Packet::Other {
                kind: kind::CONNECT
            }
        );

        let mut b = BytesMut::new();
        encode_connect(
            &mut b,
            &ConnectOpts {
                level: LEVEL_V31,
                client_id: "x",
                keep_alive: 10,
                clean: false,
                ..Default::default()
            },
        );
        assert_eq!(&b[2..10], &[0, 6, b'M', b'Q', b'I', b's', b'd', b'p']);
        assert_eq!(b[10], 3);
        assert_eq!(b[11], 0);

        let mut b = BytesMut::new();
        encode_connect(
            &mut b,
            &ConnectOpts {
                level: LEVEL_V5,
                client_id: "x",
                keep_alive: 10,
                clean: true,
                session_expiry: Some(300),
                ..Default::default()
            },
        );
        // props: len 5, 0x11, u32 300
        assert_eq!(&b[12..18], &[5, 0x11, 0, 0, 1, 44]);
    }

    #[test]
    fn connack_v5_properties() {
        // CONNACK, flags 0, reason 0, props: receive max 20, max qos 1, assigned id "ab", reason string "ok"
        let props: &[u8] = &[
            0x21, 0, 20, 0x24, 1, 0x12, 0, 2, b'a', b'b', 0x1F, 0, 2, b'o', b'k', 0x26, 0, 1, b'k',
            0, 1, b'v',
        ];
        let mut raw = vec![0x20, (2 + 1 + props.len()) as u8, 0, 0, props.len() as u8];
        raw.extend_from_slice(props);
        let (p, _) = one(&raw, true);
        let Packet::ConnAck { code, props, .. } = p else {
            panic!("not a connack: {p:?}");
        };
        assert_eq!(code, 0);
        assert_eq!(props.receive_maximum, Some(20));
        assert_eq!(props.maximum_qos, Some(1));
        assert_eq!(props.assigned_client_id.as_deref(), Some("ab"));
        assert_eq!(props.reason_string.as_deref(), Some("ok"));
        // v3 CONNACK
        let (p, _) = one(&[0x20, 2, 1, 5], false);
        assert_eq!(
            p,
            Packet::ConnAck {
                session_present: true,
                code: 5,
                props: ConnAckProps::default()
            }
        );
    }

    #[test]
    fn suback_and_misc() {
        assert_eq!(
            one(&[0x90, 4, 0, 1, 0, 0x80], false).0,
            Packet::SubAck {
                pid: 1,
                codes: &[0, 0x80]
            }
        );
        assert_eq!(
            one(&[0x90, 4, 0, 1, 0, 1], true).0,
            Packet::SubAck {
                pid: 1,
                codes: &[1]
            }
        );
        assert_eq!(one(&[0xD0, 0], true).0, Packet::PingResp);
        assert_eq!(one(&[0xE0, 0], true).0, Packet::Disconnect { reason: 0 });
        assert_eq!(
            one(&[0xE0, 1, 0x8B], true).0,
            Packet::Disconnect { reason: 0x8B }
        );
        assert!(decode(&[0x00, 0], false).is_err());
        assert!(decode(&[0x36, 2, 0, 0], false).is_err(), "QoS 3");
        assert!(
            decode(&[0x30, 1, 0], false).is_err(),
            "truncated topic length"
        );
        let mut b = BytesMut::new();
        encode_subscribe(&mut b, true, 3, &[("a/#", 1), ("$share/g/b/+", 2)]);
        assert_eq!(
            one(&b, true).0,
            Packet::Other {
                kind: kind::SUBSCRIBE
            }
        );
        assert_eq!(b[0], 0x82);
        let mut b = BytesMut::new();
        encode_pingreq(&mut b);
        encode_disconnect(&mut b);
        assert_eq!(&b[..], &[0xC0, 0, 0xE0, 0]);
    }

    #[test]
    fn split_reads_decode_incrementally() {
        // Build a stream of many packets, then feed it in chunks of every size
        // from 1 byte up, decoding as data arrives like the client loop does.
        let mut stream = BytesMut::new();
        let payload = vec![0xAB; 200];
        let mut expected = 0;
        for i in 0..50u16 {
            let p = Publish {
                dup: false,
                qos: (i % 3) as u8,
                retain: false,
                topic: b"t/x",
                pid: if i % 3 > 0 { i + 1 } else { 0 },
                props: PubProps {
                    response_topic: Some(b"r"),
                    correlation_data: Some(&[9; 8]),
                    topic_alias: None,
                },
                payload: &payload,
            };
            encode_publish(&mut stream, true, &p);
            encode_ack(&mut stream, kind::PUBACK, i);
            expected += 2;
        }
        // a large packet that needs a 2-byte remaining length
        let big = vec![1u8; 70_000];
        encode_publish(
            &mut stream,
            true,
            &Publish {
                dup: false,
                qos: 0,
                retain: false,
                topic: b"big",
                pid: 0,
                props: PubProps::default(),
                payload: &big,
            },
        );
        expected += 1;
        for chunk in [1usize, 2, 3, 7, 64, 1000, 65_536] {
            let mut buf = BytesMut::new();
            let mut got = 0;
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                let mut off = 0;
                while let Some((pkt, n)) = decode(&buf[off..], true).unwrap() {
                    if let Packet::Publish(p) = pkt {
                        assert!(p.payload.len() == 200 || p.payload.len() == 70_000);
                    }
                    off += n;
                    got += 1;
                }
                let _ = buf.split_to(off);
            }
            assert_eq!(got, expected, "chunk size {chunk}");
            assert!(buf.is_empty());
        }
    }
}
