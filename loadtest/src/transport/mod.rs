//! The byte streams every flow runs over: TCP, TLS (tokio-rustls), and for MQTT a WebSocket over
//! either. The MQTT client and the HTTP/1.1 client hold a [`Stream`] and never know which it is.
//!
//! - This module: [`Stream`] (reads, non-blocking reads, writes, shutdown), the [`Transport`]
//!   of a run (which kind, the TLS client, the WebSocket path) and how a connected socket
//!   becomes a stream ([`Transport::establish`]).
//! - `flags`: `--tls`, `--cafile`, `--cert`, `--cert-key`, `--ws`, `--ws-path`.
//! - `tls`: the rustls client configuration those flags describe.
//! - `ws`: MQTT over WebSocket (the upgrade, the framing).
//!
//! Plain TCP stays as it was before the others existed: the socket's own reads and writes,
//! no extra buffer or copy. This module never looks inside what it carries.

pub mod flags;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

use bytes::BufMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use flags::{TlsFlags, TransportFlags};
pub use tls::TlsClient;
use ws::Ws;

type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// What a run connects over; reports name it so figures over different transports are never
/// mixed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Kind {
    pub fn of(tls: bool, ws: bool) -> Kind {
        match (tls, ws) {
            (false, false) => Kind::Tcp,
            (true, false) => Kind::Tls,
            (false, true) => Kind::Ws,
            (true, true) => Kind::Wss,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }
}

/// A byte stream under WebSocket (or on its own): TCP or TLS over TCP.
pub enum Raw {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

/// Polls `f` once: tokio streams have no non-blocking read or write for TLS, so one poll with
/// a waker that does nothing stands in for it (the next real poll registers the real waker).
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Raw {
    async fn read_buf(&mut self, b: &mut impl BufMut) -> io::Result<usize> {
        match self {
            Raw::Tcp(s) => s.read_buf(b).await,
            Raw::Tls(s) => s.read_buf(b).await,
        }
    }

    fn try_read_buf(&mut self, b: &mut impl BufMut) -> io::Result<usize> {
        match self {
            Raw::Tcp(s) => s.try_read_buf(b),
            Raw::Tls(s) => poll_once(s.read_buf(b)).unwrap_or_else(|| Err(would_block())),
        }
    }

    async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Raw::Tcp(s) => s.write_all(b).await,
            Raw::Tls(s) => {
                s.write_all(b).await?;
                // rustls may keep the last records until flushed
                s.flush().await
            }
        }
    }

    /// Writes what fits now; `WouldBlock` when nothing does.
    fn try_write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Raw::Tcp(s) => s.try_write(b),
            Raw::Tls(s) => {
                let n = poll_once(s.write(b)).unwrap_or_else(|| Err(would_block()))?;
                // taken by the session: sent now if the socket takes it, else with the next write
                let _ = poll_once(s.flush());
                Ok(n)
            }
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Raw::Tcp(s) => s.shutdown().await,
            Raw::Tls(s) => s.shutdown().await,
        }
    }
}

/// One connection's stream.
pub struct Stream {
    raw: Raw,
    ws: Option<Box<Ws>>,
}

impl Stream {
    /// Plain TCP.
    pub fn tcp(s: TcpStream) -> Stream {
        Stream {
            raw: Raw::Tcp(s),
            ws: None,
        }
    }

    /// TLS over `s` (the handshake's error as rustls words it).
    pub async fn tls(s: TcpStream, tls: &TlsClient) -> io::Result<Stream> {
        let s = tls.connector.connect(tls.server_name.clone(), s).await?;
        Ok(Stream {
            raw: Raw::Tls(Box::new(s)),
            ws: None,
        })
    }

    /// The TLS session as negotiated: version, cipher suite, key exchange group (e.g.
    /// `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`); None without TLS.
    pub fn tls_session(&self) -> Option<String> {
        let Raw::Tls(s) = &self.raw else { return None };
        let c = s.get_ref().1;
        let mut out = format!("{:?}", c.protocol_version()?);
        if let Some(cs) = c.negotiated_cipher_suite() {
            out.push_str(&format!(" {:?}", cs.suite()));
        }
        if let Some(g) = c.negotiated_key_exchange_group() {
            out.push_str(&format!(" {:?}", g.name()));
        }
        Some(out)
    }

    /// Reads into `b`: at least one byte, or 0 when the peer closed.
    pub async fn read_buf(&mut self, b: &mut impl BufMut) -> io::Result<usize> {
        match &mut self.ws {
            None => self.raw.read_buf(b).await,
            Some(ws) => ws.read_buf(&mut self.raw, b).await,
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is.
    pub fn try_read_buf(&mut self, b: &mut impl BufMut) -> io::Result<usize> {
        match &mut self.ws {
            None => self.raw.try_read_buf(b),
            Some(ws) => ws.try_read_buf(&mut self.raw, b),
        }
    }

    /// Writes all of `b` (TLS: flushed; WebSocket: as one frame).
    pub async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match &mut self.ws {
            None => self.raw.write_all(b).await,
            Some(ws) => ws.write_all(&mut self.raw, b).await,
        }
    }

    /// Closes the write side (TLS: close_notify; WebSocket: a close frame first).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.ws {
            None => self.raw.shutdown().await,
            Some(ws) => ws.shutdown(&mut self.raw).await,
        }
    }
}

/// Why a connected socket did not become a stream.
#[derive(Debug)]
pub enum SetupError {
    /// the stage ran past the deadline
    Timeout(&'static str),
    /// the stage failed: why
    Failed(&'static str, String),
}

/// The WebSocket request of a run.
#[derive(Debug)]
struct WsTarget {
    path: String,
    /// the Host header
    host: String,
}

/// How every connection of a run gets from a TCP socket to its stream.
#[derive(Debug, Default)]
pub struct Transport {
    kind: Kind,
    tls: Option<TlsClient>,
    ws: Option<WsTarget>,
}

impl Transport {
    /// The transport the flags ask for, to `host`:`port` (the TLS server name, the Host header).
    /// TLS files without --tls are the caller's to refuse (`e2e` may use them for HTTPS only).
    pub fn new(f: &TransportFlags, host: &str, port: u16) -> Result<Transport, String> {
        let tls = match f.tls.tls {
            // wss goes through an HTTP/1.1 server: say so, as browsers do
            true if f.ws => Some(TlsClient::new(&f.tls, host, &[b"http/1.1"])?),
            true => Some(TlsClient::new(&f.tls, host, &[])?),
            false => None,
        };
        let ws = match f.ws {
            true => {
                let path = f.ws_path.clone().unwrap_or_else(|| "/mqtt".into());
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    return Err(format!("--ws-path {path:?}: must start with / (no spaces)"));
                }
                let h = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                Some(WsTarget {
                    path,
                    host: format!("{h}:{port}"),
                })
            }
            false => None,
        };
        Ok(Transport {
            kind: f.kind(),
            tls,
            ws,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Turns a connected socket into the run's stream (TLS handshake, WebSocket upgrade),
    /// each stage bounded by `deadline`.
    pub async fn establish(&self, s: TcpStream, deadline: Instant) -> Result<Stream, SetupError> {
        let mut raw = match &self.tls {
            None => Raw::Tcp(s),
            Some(tls) => {
                const STAGE: &str = "TLS handshake";
                let fut = tls.connector.connect(tls.server_name.clone(), s);
                let s = tokio::time::timeout_at(deadline, fut)
                    .await
                    .map_err(|_| SetupError::Timeout(STAGE))?
                    .map_err(|e| SetupError::Failed(STAGE, e.to_string()))?;
                Raw::Tls(Box::new(s))
            }
        };
        let ws = match &self.ws {
            None => None,
            Some(t) => {
                const STAGE: &str = "WebSocket upgrade";
                let fut = Ws::handshake(&mut raw, &t.path, &t.host);
                let ws = tokio::time::timeout_at(deadline, fut)
                    .await
                    .map_err(|_| SetupError::Timeout(STAGE))?
                    .map_err(|e| SetupError::Failed(STAGE, e))?;
                Some(Box::new(ws))
            }
        };
        Ok(Stream { raw, ws })
    }
}

/// A seed for the WebSocket keys and masks: the standard library's per-process random hash
/// keys, mixed with the time.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() | 1
}

#[cfg(test)]
mod tests;
