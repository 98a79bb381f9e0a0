//! Encoding: every packet the generator sends, appended to one `BytesMut` so that a
//! connection's pending packets go out in a single write. Never allocates per packet beyond
//! the buffer's growth, and never checks sizes a caller already checked (see [`check_field`]).

use bytes::{BufMut, BytesMut};

use super::*;

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
