//! The services that upgrade an accepted connection to MQTT over WebSockets: [`WssAcceptor`]
//! completes TLS first, [`WsAcceptor`] reads the HTTP request head within the handshake
//! timeout, answers it, and on success hands the connection on with the [`WsFilter`] layer.
//! Counts every outcome (`evgrid_mqtt_ws_upgrades_total`, `evgrid_tls_handshake*`). Must never
//! hold a connection past its timeouts, nor let one client's upgrade touch another.

use std::io;
use std::sync::Arc;

use evgrid_actors::metrics::{HandshakeFailure, TLS, TlsListenerKind, WS, WsUpgrade};
use ntex_bytes::{Bytes, BytesMut};
use ntex_io::{Filter, Io, Layer};
use ntex_service::{Ctx, Service};
use ntex_tls::rustls::TlsServerFilter;
use ntex_util::future::Either;
use ntex_util::time::{self, Millis};

use super::filter::WsFilter;
use super::handshake::{self, Refused};

/// Upgrades connections; `max_payload` bounds a client data frame.
#[derive(Debug, Clone)]
pub struct WsAcceptor {
    timeout: Millis,
    max_payload: u64,
    /// On the plain `ws` listener (not under TLS): a ClientHello there is counted as a TLS
    /// handshake on a plain port.
    plain: bool,
}

impl WsAcceptor {
    pub fn new(timeout: Millis, max_payload: u64) -> Self {
        WsAcceptor {
            timeout,
            max_payload,
            plain: true,
        }
    }

    /// The same, for upgrades arriving over TLS (`wss`).
    pub fn behind_tls(self) -> Self {
        WsAcceptor {
            plain: false,
            ..self
        }
    }
}

/// Delimits the request head in the read buffer.
struct HeadCodec;

impl ntex_codec::Decoder for HeadCodec {
    type Item = Bytes;
    type Error = Refused;

    fn decode(&self, src: &mut BytesMut) -> Result<Option<Bytes>, Refused> {
        Ok(handshake::head_len(src)?.map(|n| src.split_to(n)))
    }
}

impl<F: Filter, St> Service<St, Io<F>> for WsAcceptor {
    type Res = Io<Layer<WsFilter, F>>;
    type Error = io::Error;

    async fn call(&self, io: Io<F>, _: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        self.upgrade(io).await
    }
}

impl WsAcceptor {
    async fn upgrade<F: Filter>(&self, io: Io<F>) -> io::Result<Io<Layer<WsFilter, F>>> {
        let head = match time::timeout(self.timeout, io.recv(&HeadCodec)).await {
            Ok(Ok(Some(head))) => head,
            Ok(Err(Either::Left(r))) => return Err(self.refuse(&io, r).await),
            Err(()) => {
                WS.upgrade(WsUpgrade::Timeout);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "websocket upgrade timeout",
                ));
            }
            Ok(Ok(None)) => {
                WS.upgrade(WsUpgrade::PeerClosed);
                return Err(io::Error::new(io::ErrorKind::NotConnected, "disconnected"));
            }
            Ok(Err(Either::Right(e))) => {
                WS.upgrade(WsUpgrade::PeerClosed);
                return Err(e);
            }
        };
        match handshake::check(&head) {
            Ok(a) => {
                io.encode_slice(handshake::switching(&a).as_bytes())?;
                WS.upgrade(WsUpgrade::Accepted);
                // Anything the client sent after the head (frames already) is in the read
                // buffer: the new layer decodes it first.
                Ok(io.add_filter(WsFilter::new(self.max_payload)))
            }
            Err(r) => Err(self.refuse(&io, r).await),
        }
    }

    /// Sends the refusal and closes, within the handshake timeout (a client that reads
    /// nothing cannot keep the connection open).
    async fn refuse<F: Filter>(&self, io: &Io<F>, r: Refused) -> io::Error {
        WS.upgrade(r.outcome);
        if self.plain && r.reason == handshake::TLS_ON_PLAIN {
            TLS.failure(TlsListenerKind::MqttPlain, HandshakeFailure::TlsOnPlainPort);
        }
        tracing::debug!(
            status = r.status,
            reason = r.reason,
            "websocket upgrade refused"
        );
        if io.encode_slice(handshake::refusal(&r).as_bytes()).is_ok() {
            let _ = time::timeout(self.timeout, async {
                io.flush(true).await?;
                io.shutdown().await
            })
            .await;
        }
        io::Error::new(io::ErrorKind::InvalidData, r.reason)
    }
}

/// TLS (`mqtt.tls`'s certificate), then the WebSocket upgrade.
#[derive(Debug, Clone)]
pub struct WssAcceptor {
    tls: Arc<rustls::ServerConfig>,
    timeout: Millis,
    ws: WsAcceptor,
}

impl WssAcceptor {
    pub fn new(tls: Arc<rustls::ServerConfig>, timeout: Millis, ws: WsAcceptor) -> Self {
        WssAcceptor { tls, timeout, ws }
    }
}

impl<F: Filter, St> Service<St, Io<F>> for WssAcceptor {
    type Res = Io<Layer<WsFilter, Layer<TlsServerFilter, F>>>;
    type Error = io::Error;

    async fn call(&self, io: Io<F>, _: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        let r = io.get_ref();
        let io = match TlsServerFilter::create(io, self.tls.clone(), self.timeout).await {
            Ok(io) => io,
            Err(e) => {
                // As on the TLS listener (mqtt::tls::Acceptor): rustls's refusal is kept on the
                // connection; the handshake itself only sees it closed.
                let e = match r.with_write_buf(|_| ()) {
                    Err(kept) if kept.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => kept,
                    _ => e,
                };
                let why = crate::tls::failure::classify(&e);
                TLS.failure(TlsListenerKind::MqttWss, why);
                tracing::debug!(reason = why.label(), error = %e, "wss handshake refused");
                return Err(e);
            }
        };
        TLS.handshake(TlsListenerKind::MqttWss);
        self.ws.upgrade(io).await
    }
}
