//! MQTT over WebSocket on a [`Raw`] stream (TCP or TLS): the upgrade handshake, then every
//! write batch as one masked binary frame and the server's frames read back as the MQTT byte
//! stream. Pings are answered and a close is echoed as soon as they are read (a non-blocking
//! write; whatever does not fit goes out before the next batch).
//!
//! - `frame`: the pure part (upgrade request and answer check, frame encoding and decoding).
//!
//! It carries bytes only: it never looks inside the MQTT packets.

pub mod frame;

use std::io;

use base64::Engine as _;
use bytes::{Buf, BufMut, BytesMut};

use super::Raw;
use frame::Decoder;

const READ_CHUNK: usize = 64 * 1024;

/// The WebSocket state of one connection.
pub struct Ws {
    /// bytes read from the server, not yet decoded
    rbuf: BytesMut,
    dec: Decoder,
    /// control frames (pongs, the close answer) not yet written
    ctl: BytesMut,
    /// the frame being written
    out: BytesMut,
    rng: u64,
}

fn invalid(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {e}"))
}

impl Ws {
    /// Upgrades `raw` to a WebSocket for MQTT at `path` (`host`: the Host header).
    pub async fn handshake(raw: &mut Raw, path: &str, host: &str) -> Result<Ws, String> {
        let mut rng = super::random_seed();
        let mut key = [0u8; 16];
        for c in key.chunks_mut(4) {
            c.copy_from_slice(&frame::next_mask(&mut rng));
        }
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let mut req = Vec::with_capacity(256);
        frame::upgrade_request(&mut req, path, host, &key);
        raw.write_all(&req)
            .await
            .map_err(|e| format!("writing the upgrade request: {e}"))?;
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if let Some(n) = frame::check_upgrade(&rbuf, &key)? {
                rbuf.advance(n);
                return Ok(Ws {
                    rbuf,
                    dec: Decoder::default(),
                    ctl: BytesMut::new(),
                    out: BytesMut::with_capacity(READ_CHUNK),
                    rng,
                });
            }
            let n = raw
                .read_buf(&mut rbuf)
                .await
                .map_err(|e| format!("reading the upgrade answer: {e}"))?;
            if n == 0 {
                return Err("server closed the connection during the upgrade".into());
            }
        }
    }

    /// Decodes what was read into `b`; sends pending control frames without waiting.
    fn decode(&mut self, raw: &mut Raw, b: &mut impl BufMut) -> io::Result<usize> {
        let n = self
            .dec
            .decode(&mut self.rbuf, b, &mut self.ctl, &mut self.rng)
            .map_err(invalid)?;
        while !self.ctl.is_empty() {
            match raw.try_write(&self.ctl) {
                Ok(0) => break,
                Ok(w) => self.ctl.advance(w),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn make_room(&mut self) {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
    }

    /// Reads MQTT bytes into `b`: at least one, or 0 when the server closed (TCP or a close
    /// frame). Cancel-safe: what was read and not yet decoded stays in the state.
    pub async fn read_buf(&mut self, raw: &mut Raw, b: &mut impl BufMut) -> io::Result<usize> {
        loop {
            let n = self.decode(raw, b)?;
            if n > 0 || self.dec.closed() {
                return Ok(n);
            }
            self.make_room();
            if raw.read_buf(&mut self.rbuf).await? == 0 {
                return Ok(0);
            }
        }
    }

    /// [`Self::read_buf`] without waiting: `WouldBlock` when nothing is there.
    pub fn try_read_buf(&mut self, raw: &mut Raw, b: &mut impl BufMut) -> io::Result<usize> {
        loop {
            let n = self.decode(raw, b)?;
            if n > 0 || self.dec.closed() {
                return Ok(n);
            }
            self.make_room();
            if raw.try_read_buf(&mut self.rbuf)? == 0 {
                return Ok(0);
            }
        }
    }

    /// Writes `b` as one binary frame (after any pending control frames).
    pub async fn write_all(&mut self, raw: &mut Raw, b: &[u8]) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&self.ctl);
        self.ctl.clear();
        frame::encode(
            &mut self.out,
            frame::OP_BINARY,
            b,
            frame::next_mask(&mut self.rng),
        );
        raw.write_all(&self.out).await
    }

    /// Sends a close frame (normal closure) unless the server closed first, then shuts the
    /// stream down.
    pub async fn shutdown(&mut self, raw: &mut Raw) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(&self.ctl);
        self.ctl.clear();
        if !self.dec.closed() {
            let m = frame::next_mask(&mut self.rng);
            frame::encode(&mut self.out, frame::OP_CLOSE, &1000u16.to_be_bytes(), m);
        }
        if !self.out.is_empty() {
            raw.write_all(&self.out).await?;
        }
        raw.shutdown().await
    }
}
