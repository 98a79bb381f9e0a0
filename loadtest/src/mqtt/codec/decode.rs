//! Decoding: one packet from the front of a byte slice, borrowing from it (zero-copy), or
//! `Ok(None)` when more bytes are needed. Only what a broker sends is parsed in full; packets
//! a broker never sends are reported by type. Never reads past the packet it decodes.

use super::*;

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
