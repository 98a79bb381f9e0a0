//! A small MQTT 3.1 / 3.1.1 / 5.0 codec covering what a load generator needs.
//!
//! Encoding appends to a `BytesMut` so that many packets can be batched into a
//! single buffer and written with one `write_all`. Decoding is incremental and
//! zero-copy: [`decode`] looks at the front of a byte slice and either returns a
//! complete packet borrowing from that slice together with its length, or
//! `Ok(None)` when more bytes are needed.
//!
//! It only frames: it never touches a socket or a clock, and never enforces broker policy
//! (limits, QoS downgrades) beyond refusing malformed input.

mod decode;
mod encode;

pub use decode::decode;
pub use encode::{
    check_field, encode_ack, encode_connect, encode_disconnect, encode_pingreq, encode_publish,
    encode_publish_with, encode_subscribe, publish_size,
};

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
mod tests;
