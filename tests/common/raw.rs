//! A minimal blocking MQTT 3.1.1 / 5.0 client for tests: encodes what a test asks for, decodes
//! what the broker sends, and hides nothing (no automatic acks, no keep-alive pings).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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

#[derive(Debug, Clone)]
pub struct Pkt {
    pub ty: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

/// A v5 property as decoded: numbers as u32, strings/binary as bytes, user properties as pairs.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    Num(u8, u32),
    Bytes(u8, Vec<u8>),
    User(String, String),
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub topic: String,
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    pub pid: u16,
    pub props: Vec<Prop>,
    pub payload: Vec<u8>,
}

impl Publish {
    pub fn num(&self, id: u8) -> Option<u32> {
        num(&self.props, id)
    }
    pub fn nums(&self, id: u8) -> Vec<u32> {
        self.props
            .iter()
            .filter_map(|p| match p {
                Prop::Num(i, v) if *i == id => Some(*v),
                _ => None,
            })
            .collect()
    }
    pub fn bytes(&self, id: u8) -> Option<Vec<u8>> {
        bytes(&self.props, id)
    }
}

pub fn num(props: &[Prop], id: u8) -> Option<u32> {
    props.iter().find_map(|p| match p {
        Prop::Num(i, v) if *i == id => Some(*v),
        _ => None,
    })
}

pub fn bytes(props: &[Prop], id: u8) -> Option<Vec<u8>> {
    props.iter().find_map(|p| match p {
        Prop::Bytes(i, v) if *i == id => Some(v.clone()),
        _ => None,
    })
}

pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

pub fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Encodes v5 properties given as (id, value) where the value's width follows the id.
pub fn props(list: &[Prop]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in list {
        match p {
            Prop::Num(id, v) => {
                body.push(*id);
                match id {
                    0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => body.push(*v as u8),
                    0x13 | 0x21 | 0x22 | 0x23 => body.extend_from_slice(&(*v as u16).to_be_bytes()),
                    0x0B => varint(*v as usize, &mut body),
                    _ => body.extend_from_slice(&v.to_be_bytes()),
                }
            }
            Prop::Bytes(id, v) => {
                body.push(*id);
                string(v, &mut body);
            }
            Prop::User(k, v) => {
                body.push(0x26);
                string(k.as_bytes(), &mut body);
                string(v.as_bytes(), &mut body);
            }
        }
    }
    let mut out = Vec::new();
    varint(body.len(), &mut out);
    out.extend(body);
    out
}

fn parse_props(b: &[u8]) -> (Vec<Prop>, usize) {
    let (len, mut i) = read_varint(b);
    let end = i + len;
    let mut out = Vec::new();
    while i < end {
        let id = b[i];
        i += 1;
        let rd16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                out.push(Prop::Num(id, b[i] as u32));
                i += 1;
            }
            0x13 | 0x21 | 0x22 | 0x23 => {
                out.push(Prop::Num(id, rd16(i) as u32));
                i += 2;
            }
            0x0B => {
                let (v, n) = read_varint(&b[i..]);
                out.push(Prop::Num(id, v as u32));
                i += n;
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                out.push(Prop::Num(
                    id,
                    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]),
                ));
                i += 4;
            }
            0x26 => {
                let kl = rd16(i);
                let k = String::from_utf8(b[i + 2..i + 2 + kl].to_vec()).unwrap();
                i += 2 + kl;
                let vl = rd16(i);
                let v = String::from_utf8(b[i + 2..i + 2 + vl].to_vec()).unwrap();
                i += 2 + vl;
                out.push(Prop::User(k, v));
            }
            _ => {
                let l = rd16(i);
                out.push(Prop::Bytes(id, b[i + 2..i + 2 + l].to_vec()));
                i += 2 + l;
            }
        }
    }
    (out, end)
}

fn read_varint(b: &[u8]) -> (usize, usize) {
    let (mut n, mut mul, mut i) = (0usize, 1usize, 0usize);
    loop {
        let byte = b[i];
        n += (byte & 0x7f) as usize * mul;
        mul *= 128;
        i += 1;
        if byte & 0x80 == 0 {
            return (n, i);
        }
    }
}

/// A will: (topic, payload, qos, retain, will properties).
pub type WillSpec = (String, Vec<u8>, u8, bool, Vec<Prop>);

/// CONNECT options.
#[derive(Clone)]
pub struct Opts {
    pub v5: bool,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub props: Vec<Prop>,
    pub will: Option<WillSpec>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl Opts {
    pub fn v5(id: &str) -> Opts {
        Opts {
            v5: true,
            client_id: id.into(),
            clean: true,
            keep_alive: 60,
            props: vec![],
            will: None,
            username: None,
            password: None,
        }
    }
    pub fn v3(id: &str) -> Opts {
        Opts {
            v5: false,
            ..Opts::v5(id)
        }
    }
    pub fn clean(mut self, c: bool) -> Opts {
        self.clean = c;
        self
    }
    pub fn prop(mut self, p: Prop) -> Opts {
        self.props.push(p);
        self
    }
    pub fn user(mut self, u: &str) -> Opts {
        self.username = Some(u.into());
        self
    }
    pub fn password(mut self, p: &[u8]) -> Opts {
        self.password = Some(p.to_vec());
        self
    }
    pub fn keep_alive(mut self, k: u16) -> Opts {
        self.keep_alive = k;
        self
    }
    pub fn will(
        mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        props: Vec<Prop>,
    ) -> Opts {
        self.will = Some((topic.into(), payload.to_vec(), qos, retain, props));
        self
    }
}

#[derive(Debug)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    pub props: Vec<Prop>,
}

pub struct Client {
    pub s: TcpStream,
    pub v5: bool,
    buf: Vec<u8>,
}

impl Client {
    pub fn tcp(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Connects and returns the client and the CONNACK (whatever its code).
    pub fn connect(addr: SocketAddr, o: Opts) -> (Client, ConnAck) {
        let mut c = Client {
            s: Self::tcp(addr),
            v5: o.v5,
            buf: Vec::new(),
        };
        let mut body = Vec::new();
        string(b"MQTT", &mut body);
        body.push(if o.v5 { 5 } else { 4 });
        let mut flags = 0u8;
        if o.clean {
            flags |= 0x02;
        }
        if let Some((_, _, q, r, _)) = &o.will {
            flags |= 0x04 | (q << 3) | if *r { 0x20 } else { 0 };
        }
        if o.username.is_some() {
            flags |= 0x80;
        }
        if o.password.is_some() {
            flags |= 0x40;
        }
        body.push(flags);
        body.extend_from_slice(&o.keep_alive.to_be_bytes());
        if o.v5 {
            body.extend(props(&o.props));
        }
        string(o.client_id.as_bytes(), &mut body);
        if let Some((t, p, _, _, wp)) = &o.will {
            if o.v5 {
                body.extend(props(wp));
            }
            string(t.as_bytes(), &mut body);
            string(p, &mut body);
        }
        if let Some(u) = &o.username {
            string(u.as_bytes(), &mut body);
        }
        if let Some(p) = &o.password {
            string(p, &mut body);
        }
        c.send(CONNECT << 4, &body);
        let p = c.recv().expect("CONNACK");
        assert_eq!(p.ty, CONNACK, "expected CONNACK, got {p:?}");
        let ack = ConnAck {
            session_present: p.body[0] & 1 == 1,
            code: p.body[1],
            props: if o.v5 && p.body.len() > 2 {
                parse_props(&p.body[2..]).0
            } else {
                vec![]
            },
        };
        (c, ack)
    }

    /// Connects and asserts success.
    pub fn ok(addr: SocketAddr, o: Opts) -> Client {
        let (c, ack) = Self::connect(addr, o);
        assert_eq!(ack.code, 0, "CONNACK refused: {ack:?}");
        c
    }

    pub fn send(&mut self, first: u8, body: &[u8]) {
        let mut out = vec![first];
        varint(body.len(), &mut out);
        out.extend_from_slice(body);
        self.s.write_all(&out).expect("write");
    }

    pub fn write_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    /// Next packet, or None on EOF/reset/timeout.
    pub fn recv(&mut self) -> Option<Pkt> {
        loop {
            if self.buf.len() >= 2 {
                let mut i = 1;
                let (mut len, mut mul) = (0usize, 1usize);
                let mut complete = false;
                while i < self.buf.len() && i <= 4 {
                    let b = self.buf[i];
                    len += (b & 0x7f) as usize * mul;
                    mul *= 128;
                    i += 1;
                    if b & 0x80 == 0 {
                        complete = true;
                        break;
                    }
                }
                if complete && self.buf.len() >= i + len {
                    let body = self.buf[i..i + len].to_vec();
                    let first = self.buf[0];
                    self.buf.drain(..i + len);
                    return Some(Pkt {
                        ty: first >> 4,
                        flags: first & 0x0f,
                        body,
                    });
                }
            }
            let mut tmp = [0u8; 65536];
            match self.s.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    pub fn set_timeout(&self, d: Duration) {
        self.s.set_read_timeout(Some(d)).unwrap();
    }

    /// Next packet of type `ty`, skipping PINGRESP; panics on anything else.
    pub fn expect(&mut self, ty: u8) -> Pkt {
        loop {
            let p = self
                .recv()
                .unwrap_or_else(|| panic!("expected packet type {ty}, got nothing"));
            if p.ty == PINGRESP && ty != PINGRESP {
                continue;
            }
            assert_eq!(
                p.ty,
                ty,
                "unexpected packet {p:?}; next bytes {:?}",
                &self.buf[..self.buf.len().min(40)]
            );
            return p;
        }
    }

    /// Asserts that nothing arrives within `d` (the connection stays open).
    pub fn expect_silence(&mut self, d: Duration) {
        self.set_timeout(d);
        let mut tmp = [0u8; 1];
        if self.buf.is_empty() {
            match self.s.read(&mut tmp) {
                Ok(0) => panic!("connection closed"),
                Ok(_) => panic!("unexpected data"),
                Err(_) => {}
            }
        } else {
            let p = self.recv();
            panic!("unexpected packet {p:?}");
        }
        self.set_timeout(Duration::from_secs(5));
    }

    /// True once the broker has closed the connection (within the read timeout).
    pub fn closed(&mut self) -> bool {
        loop {
            match self.recv() {
                None => return true,
                Some(p) if p.ty == DISCONNECT || p.ty == PINGRESP => continue,
                Some(_) => continue,
            }
        }
    }

    pub fn subscribe(&mut self, pid: u16, filters: &[(&str, u8)], props_: &[Prop]) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        if self.v5 {
            body.extend(props(props_));
        }
        for (f, opts) in filters {
            string(f.as_bytes(), &mut body);
            body.push(*opts);
        }
        self.send((SUBSCRIBE << 4) | 2, &body);
        let p = self.expect(SUBACK);
        assert_eq!(&p.body[..2], &pid.to_be_bytes());
        if self.v5 {
            let (_, n) = parse_props(&p.body[2..]);
            p.body[2 + n..].to_vec()
        } else {
            p.body[2..].to_vec()
        }
    }

    pub fn sub(&mut self, filter: &str, qos: u8) {
        let codes = self.subscribe(1, &[(filter, qos)], &[]);
        assert_eq!(codes, vec![qos], "SUBACK for {filter}");
    }

    pub fn unsubscribe(&mut self, pid: u16, filters: &[&str]) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        if self.v5 {
            body.push(0);
        }
        for f in filters {
            string(f.as_bytes(), &mut body);
        }
        self.send((UNSUBSCRIBE << 4) | 2, &body);
        let p = self.expect(UNSUBACK);
        if self.v5 {
            p.body[3..].to_vec()
        } else {
            vec![]
        }
    }

    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
        pid: u16,
        props_: &[Prop],
    ) {
        let mut body = Vec::new();
        string(topic.as_bytes(), &mut body);
        if qos > 0 {
            body.extend_from_slice(&pid.to_be_bytes());
        }
        if self.v5 {
            body.extend(props(props_));
        }
        body.extend_from_slice(payload);
        self.send((PUBLISH << 4) | (qos << 1) | u8::from(retain), &body);
    }

    /// Publishes and completes the QoS 1/2 handshake; returns the PUBACK/PUBREC reason (v5).
    pub fn pub_wait(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> u8 {
        self.publish(topic, payload, qos, retain, 7, &[]);
        match qos {
            0 => 0,
            1 => {
                let p = self.expect(PUBACK);
                p.body.get(2).copied().unwrap_or(0)
            }
            _ => {
                let p = self.expect(PUBREC);
                self.ack(PUBREL, 7);
                self.expect(PUBCOMP);
                p.body.get(2).copied().unwrap_or(0)
            }
        }
    }

    pub fn ack(&mut self, ty: u8, pid: u16) {
        let flags = if ty == PUBREL { 2 } else { 0 };
        self.send((ty << 4) | flags, &pid.to_be_bytes());
    }

    pub fn decode_publish(&self, p: &Pkt) -> Publish {
        assert_eq!(p.ty, PUBLISH, "not a PUBLISH: {p:?}");
        let b = &p.body;
        let tl = u16::from_be_bytes([b[0], b[1]]) as usize;
        let topic = String::from_utf8(b[2..2 + tl].to_vec()).unwrap();
        let qos = (p.flags >> 1) & 3;
        let mut i = 2 + tl;
        let mut pid = 0;
        if qos > 0 {
            pid = u16::from_be_bytes([b[i], b[i + 1]]);
            i += 2;
        }
        let mut props = vec![];
        if self.v5 {
            let (pr, n) = parse_props(&b[i..]);
            props = pr;
            i += n;
        }
        Publish {
            topic,
            qos,
            dup: p.flags & 8 != 0,
            retain: p.flags & 1 != 0,
            pid,
            props,
            payload: b[i..].to_vec(),
        }
    }

    /// Next PUBLISH, acknowledging QoS 1 and 2 as a well-behaved client does.
    pub fn next_msg(&mut self) -> Publish {
        let p = self.expect(PUBLISH);
        let m = self.decode_publish(&p);
        match m.qos {
            1 => self.ack(PUBACK, m.pid),
            2 => {
                self.ack(PUBREC, m.pid);
                self.expect(PUBREL);
                self.ack(PUBCOMP, m.pid);
            }
            _ => {}
        }
        m
    }

    /// Next PUBLISH, not acknowledged.
    pub fn next_raw(&mut self) -> Publish {
        let p = self.expect(PUBLISH);
        self.decode_publish(&p)
    }

    pub fn disconnect(mut self) {
        if self.v5 {
            self.send(DISCONNECT << 4, &[0, 0]);
        } else {
            self.send(DISCONNECT << 4, &[]);
        }
    }

    pub fn disconnect_reason(&self, p: &Pkt) -> u8 {
        assert_eq!(p.ty, DISCONNECT);
        p.body.first().copied().unwrap_or(0)
    }

    pub fn ping(&mut self) {
        self.send(PINGREQ << 4, &[]);
    }
}

impl Client {
    /// The socket, for a test that reads it as bytes.
    pub fn into_stream(self) -> TcpStream {
        self.s
    }

    /// Wraps a socket on which no CONNECT was sent (for bad-input tests).
    pub fn from_stream(s: TcpStream) -> Client {
        Client {
            s,
            v5: false,
            buf: Vec::new(),
        }
    }
}

impl Client {
    /// Reads until the broker closes the connection and returns the packets sent before; panics
    /// if the connection is still open after `within` (a read timeout is not a close).
    pub fn until_closed(&mut self, within: Duration) -> Vec<Pkt> {
        let end = std::time::Instant::now() + within;
        let mut got = Vec::new();
        loop {
            while let Some(p) = self.buffered() {
                got.push(p);
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "connection still open after {within:?}; received {got:?}"
            );
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("connection still open after {within:?}; received {got:?}")
                }
                Err(_) => break, // reset
            }
        }
        while let Some(p) = self.buffered() {
            got.push(p);
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        got
    }

    /// A whole packet from what has been read already, if there is one.
    fn buffered(&mut self) -> Option<Pkt> {
        let mut i = 1;
        let (mut len, mut mul) = (0usize, 1usize);
        loop {
            let b = *self.buf.get(i)?;
            len += (b & 0x7f) as usize * mul;
            mul *= 128;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            if i > 4 {
                return None;
            }
        }
        if self.buf.len() < i + len {
            return None;
        }
        let body = self.buf[i..i + len].to_vec();
        let first = self.buf[0];
        self.buf.drain(..i + len);
        Some(Pkt {
            ty: first >> 4,
            flags: first & 0x0f,
            body,
        })
    }
}
