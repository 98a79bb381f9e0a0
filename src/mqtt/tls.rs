//! MQTT over TLS (`mqtt.tls`): the handshake in front of the MQTT service, its outcome counted
//! by reason, what the handshake tells about the client handed to the connection, and the plain
//! listener's count of clients that start a TLS handshake on it.
//!
//! Owns the handshake's timeout and error classification. Must never let one client's handshake
//! hold up another's (each runs in its connection's task, bounded by `handshake_timeout_ms`), and
//! never add work to the plain listener's packets: its check runs once, when a connection ends in
//! a handshake error.

use std::sync::Arc;

use evgrid_actors::metrics::{HandshakeFailure, TLS, TlsListenerKind};
use ntex_io::{Filter, Io, IoRef, Layer};
use ntex_mqtt::{MqttConnectError, MqttError};
use ntex_service::{Ctx, Service};
use ntex_tls::rustls::{PeerCertChain, TlsServerFilter};
use ntex_util::time::Millis;

use super::EdgeError;
use crate::tls::failure::classify;
use crate::tls::peer::{ClientCert, PeerTls};

/// The TLS handshake of a connection on the MQTT TLS listener, counted; then the connection goes
/// to the MQTT service as on the plain listener. Not ntex-tls's `TlsAcceptor`: its timeout comes
/// in whole seconds, and it stops accepting at 256 handshakes in progress per worker, so that
/// many stalled clients would hold every new one back until they time out.
#[derive(Clone)]
pub(crate) struct Acceptor {
    pub config: Arc<rustls::ServerConfig>,
    pub timeout: Millis,
}

impl<St, F: Filter> Service<St, Io<F>> for Acceptor {
    type Res = Io<Layer<TlsServerFilter, F>>;
    type Error = MqttError<EdgeError>;

    async fn call(&self, io: Io<F>, _: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        let r = io.get_ref();
        match TlsServerFilter::create(io, self.config.clone(), self.timeout).await {
            Ok(io) => {
                TLS.handshake(TlsListenerKind::Mqtt);
                Ok(io)
            }
            Err(e) => {
                // A record rustls refused ends the connection from the read task, with rustls's
                // error kept on the connection; the handshake itself only sees it closed.
                let e = match r.with_write_buf(|_| ()) {
                    Err(kept) if kept.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => kept,
                    _ => e,
                };
                let why = classify(&e);
                TLS.failure(TlsListenerKind::Mqtt, why);
                tracing::debug!(reason = why.label(), error = %e, "mqtt tls handshake refused");
                Err(MqttError::Connect(MqttConnectError::Disconnected(Some(e))))
            }
        }
    }
}

/// What the handshake of a TLS connection told: SNI and the verified client certificate.
pub(crate) fn peer_tls(io: &IoRef) -> PeerTls {
    let sni = io
        .query::<ntex_tls::Servername>()
        .as_ref()
        .map(|s| s.0.clone());
    let chain = io
        .query::<PeerCertChain<'static>>()
        .as_ref()
        .map(|c| c.0.clone());
    PeerTls {
        sni,
        client_cert: chain.and_then(ClientCert::from_chain),
    }
}

/// One debug line per TLS connection: who it says it is.
pub(crate) fn log_peer(client_id: &str, p: &PeerTls) {
    let cert = p.client_cert.as_ref();
    tracing::debug!(
        client_id,
        sni = p.sni.as_deref().unwrap_or(""),
        subject = cert.map_or("", |c| c.subject.as_str()),
        thumbprint = cert.map_or("", |c| c.thumbprint.as_str()),
        sans = ?cert.map(|c| &c.sans),
        "mqtt tls client"
    );
}

/// The plain listener's MQTT service, counting connections that ended in an error with a TLS
/// record header as their first bytes (a ClientHello: 0x16 0x03): a client that wanted the TLS
/// port. The MQTT service refuses them as it does any first packet that is not CONNECT.
pub(crate) struct SniffTls<S>(pub S);

/// A TLS handshake record's first bytes.
pub(crate) fn looks_like_tls(first: &[u8]) -> bool {
    first.starts_with(&[0x16, 0x03])
}

impl<St, S> Service<St, Io> for SniffTls<S>
where
    S: Service<St, Io>,
{
    type Res = S::Res;
    type Error = S::Error;

    async fn ready(&self, ctx: Ctx<'_, Self, St>) -> Result<(), Self::Error> {
        ctx.ready(&self.0).await
    }

    async fn call(&self, io: Io, ctx: Ctx<'_, Self, St>) -> Result<Self::Res, Self::Error> {
        let r = io.get_ref();
        let res = ctx.call(&self.0, io).await;
        if res.is_err() && r.with_read_buf(|b| looks_like_tls(b)) {
            TLS.failure(TlsListenerKind::MqttPlain, HandshakeFailure::TlsOnPlainPort);
            tracing::debug!("tls handshake on the plain mqtt port refused");
        }
        res
    }

    async fn shutdown(&self, ctx: Ctx<'_, Self, St>) {
        ctx.shutdown(&self.0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_told_from_mqtt() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!looks_like_tls(&[0x10, 0x10, 0x00, 0x04]));
        assert!(!looks_like_tls(&[0x16]));
    }
}
