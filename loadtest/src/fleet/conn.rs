//! One lean MQTT connection for the fleet's many devices: a plain TCP socket bound to a source
//! address, small buffers that grow only when a packet needs it, and the few packets a device,
//! a backend member and the alerter exchange. Owns the socket and its buffers; never keeps
//! per-message state (the roles in `device` and `backend` do).

use crate::mqtt::codec::{self, ConnectOpts, Packet, PubProps, kind};
use bytes::{Buf, BytesMut};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Read buffer a connection starts with: a device's packets are an alert or a PUBACK, tens of
/// bytes; 100,000 devices with the 64 KiB of the other scenarios' clients would hold 6.4 GB.
const READ_START: usize = 512;

/// What a role needs of a received packet, owned so the read buffer can move on.
#[derive(Debug)]
pub enum Ev {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    SubAck {
        code: u8,
    },
    /// A PUBLISH: its QoS, packet id, and the first bytes of its payload (the run's header).
    Publish {
        qos: u8,
        pid: u16,
        head: [u8; 16],
    },
    PubAck {
        pid: u16,
        reason: u8,
    },
    Disconnect {
        reason: u8,
    },
    Other,
}

pub struct Conn {
    s: TcpStream,
    rbuf: BytesMut,
    /// Packets that came before the SUBACK a subscribe waited for: the caller's, first.
    early: Vec<Ev>,
    pub wbuf: BytesMut,
    pub v5: bool,
}

/// How to open a connection.
pub struct Open<'a> {
    pub target: SocketAddr,
    pub source: Option<IpAddr>,
    pub client_id: &'a str,
    pub v5: bool,
    pub keep_alive: u16,
    /// MQTT 3.1.1: clean session; MQTT 5: clean start.
    pub clean: bool,
    /// MQTT 5 session expiry interval (a persistent session needs one).
    pub session_expiry: Option<u32>,
    pub deadline: Instant,
}

impl Conn {
    /// Connects and waits for CONNACK: the connection and whether the broker had a session.
    pub async fn open(o: &Open<'_>) -> Result<(Conn, bool), String> {
        let sock = match o.target {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = o.source {
            sock.bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let s = tokio::time::timeout_at(o.deadline, sock.connect(o.target))
            .await
            .map_err(|_| "timed out on TCP connect".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        let mut c = Conn {
            s,
            rbuf: BytesMut::with_capacity(READ_START),
            early: Vec::new(),
            wbuf: BytesMut::with_capacity(128),
            v5: o.v5,
        };
        codec::encode_connect(
            &mut c.wbuf,
            &ConnectOpts {
                level: if o.v5 { 5 } else { 4 },
                client_id: o.client_id,
                keep_alive: o.keep_alive,
                clean: o.clean,
                session_expiry: o.session_expiry,
                ..Default::default()
            },
        );
        c.flush().await.map_err(|e| format!("CONNECT: {e}"))?;
        loop {
            if let Some(ev) = c.next()? {
                match ev {
                    Ev::ConnAck {
                        session_present,
                        code: 0,
                    } => return Ok((c, session_present)),
                    Ev::ConnAck { code, .. } => {
                        return Err(format!(
                            "CONNACK refused: {}",
                            codec::connack_reason(code, o.v5)
                        ));
                    }
                    _ => return Err("a packet before CONNACK".into()),
                }
            }
            let n = tokio::time::timeout_at(o.deadline, c.read())
                .await
                .map_err(|_| "timed out waiting for CONNACK".to_string())?
                .map_err(|e| format!("reading CONNACK: {e}"))?;
            if n == 0 {
                return Err("closed before CONNACK".into());
            }
        }
    }

    /// Subscribes to one filter and waits for its SUBACK (packets before it are refused).
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: u8,
        deadline: Instant,
    ) -> Result<(), String> {
        codec::encode_subscribe(&mut self.wbuf, self.v5, 1, &[(filter, qos)]);
        self.flush().await.map_err(|e| format!("SUBSCRIBE: {e}"))?;
        loop {
            while let Some(ev) = self.next()? {
                match ev {
                    Ev::SubAck { code } if code >= 0x80 => {
                        return Err(format!("SUBSCRIBE {filter} refused with 0x{code:02x}"));
                    }
                    Ev::SubAck { .. } => return Ok(()),
                    other => self.early.push(other),
                }
            }
            let n = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| "timed out waiting for SUBACK".to_string())?
                .map_err(|e| format!("reading SUBACK: {e}"))?;
            if n == 0 {
                return Err("closed before SUBACK".into());
            }
        }
    }

    /// Reads what the socket has (0: closed).
    pub async fn read(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < 64 {
            self.rbuf.reserve(READ_START);
        }
        self.s.read_buf(&mut self.rbuf).await
    }

    /// The packets complete in the read buffer.
    pub fn take(&mut self) -> Result<Vec<Ev>, String> {
        let mut out = std::mem::take(&mut self.early);
        while let Some(ev) = self.next()? {
            out.push(ev);
        }
        Ok(out)
    }

    /// The next complete packet in the read buffer, leaving the rest there (what follows a
    /// CONNACK or SUBACK in the same read, a resumed session's messages, is the caller's next).
    pub fn next(&mut self) -> Result<Option<Ev>, String> {
        let Some((p, n)) = codec::decode(&self.rbuf, self.v5).map_err(|e| e.0)? else {
            return Ok(None);
        };
        let ev = match p {
            Packet::ConnAck {
                session_present,
                code,
                ..
            } => Ev::ConnAck {
                session_present,
                code,
            },
            Packet::SubAck { codes, .. } => Ev::SubAck {
                code: codes.first().copied().unwrap_or(0x80),
            },
            Packet::Publish(p) => {
                let mut head = [0u8; 16];
                let k = p.payload.len().min(16);
                head[..k].copy_from_slice(&p.payload[..k]);
                Ev::Publish {
                    qos: p.qos,
                    pid: p.pid,
                    head,
                }
            }
            Packet::PubAck { pid, reason } => Ev::PubAck { pid, reason },
            Packet::Disconnect { reason } => Ev::Disconnect { reason },
            _ => Ev::Other,
        };
        self.rbuf.advance(n);
        Ok(Some(ev))
    }

    /// Appends a PUBLISH whose payload is `head` padded with zeros to `size` bytes.
    pub fn publish(&mut self, topic: &str, qos: u8, pid: u16, dup: bool, head: &[u8], size: usize) {
        let pad = size.saturating_sub(head.len());
        codec::encode_publish_with(
            &mut self.wbuf,
            self.v5,
            topic.as_bytes(),
            qos,
            false,
            dup,
            pid,
            &PubProps::default(),
            head.len() + pad,
            |b| {
                b.extend_from_slice(head);
                b.resize(b.len() + pad, 0);
            },
        );
    }

    pub fn puback(&mut self, pid: u16) {
        codec::encode_ack(&mut self.wbuf, kind::PUBACK, pid);
    }

    /// Writes what is buffered.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.s.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Ends the connection with a DISCONNECT (best effort).
    pub async fn close(mut self) {
        codec::encode_disconnect(&mut self.wbuf);
        let _ = self.flush().await;
        let _ = self.s.shutdown().await;
    }
}
