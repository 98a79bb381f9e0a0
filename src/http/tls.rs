//! HTTPS (`http.tls`): the same API as the plain listener behind a rustls handshake, with every
//! handshake counted — completed, or refused by reason (`evgrid_tls_handshake_failures_total`).
//!
//! Owns the HTTPS listener's service stack: actix-tls's acceptor (bounded by
//! `handshake_timeout_ms`), the count, then actix-http serving the App. actix-web's own
//! `listen_rustls_0_23` is this stack without a way to see a refused handshake, which it drops.
//! Must never serve anything but what [`super::configure`] routes, and never fall back to
//! plaintext.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::{HttpService, Protocol};
use actix_service::{ServiceFactoryExt, map_config};
use actix_tls::accept::TlsError;
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::dev::{AppConfig, Server};
use actix_web::rt::net::TcpStream;
use actix_web::{App, web};
use evgrid_actors::metrics::{TLS, TlsListenerKind};

use super::State;
use crate::tls::ServerTls;
use crate::tls::failure::classify;

/// Handshakes in progress per HTTPS worker before it stops accepting: far above what a stalled
/// client flood within one handshake timeout could reach without also hitting the fd limit.
const MAX_HANDSHAKES_PER_WORKER: usize = 1 << 20;

/// What the HTTPS listener takes from the configuration.
pub struct HttpsSettings {
    pub workers: usize,
    /// How long a client has to send a request's headers (`http.header_timeout_ms`).
    pub request_timeout: Duration,
    /// How long a client has to finish the TLS handshake (`http.tls.handshake_timeout_ms`).
    pub handshake_timeout: Duration,
}

/// The HTTPS server on `listener`: started by the caller's runtime, stopped through its handle
/// (it handles no signals of its own).
pub fn server(
    listener: TcpListener,
    tls: &ServerTls,
    settings: HttpsSettings,
    state: web::Data<State>,
) -> std::io::Result<Server> {
    // A clone shares the certificate resolver, so a reload reaches it.
    let config = (*tls.server_config()).clone();
    let HttpsSettings {
        workers,
        request_timeout,
        handshake_timeout,
    } = settings;
    // actix-tls stops accepting at 256 handshakes in progress per worker (by default): that many
    // clients that connect and send nothing would lock every other HTTPS client out until they
    // time out. Each one is bounded by the handshake timeout already, which is what frees them.
    actix_tls::accept::max_concurrent_tls_connect(MAX_HANDSHAKES_PER_WORKER);
    Ok(Server::build()
        .workers(workers)
        .disable_signals()
        .listen("https", listener, move || {
            let st = state.clone();
            let app = App::new().configure(move |c| super::configure(c, Some(st)));
            let mut acceptor = Acceptor::new(config.clone());
            acceptor.set_handshake_timeout(handshake_timeout);
            acceptor
                .map_init_err(|()| ())
                .map_err(|e: TlsError<std::io::Error, std::convert::Infallible>| {
                    let why = match &e {
                        TlsError::Timeout => evgrid_actors::metrics::HandshakeFailure::Timeout,
                        TlsError::Tls(io) => classify(io),
                        TlsError::Service(never) => match *never {},
                    };
                    TLS.failure(TlsListenerKind::Https, why);
                    tracing::debug!(reason = why.label(), "https handshake refused");
                })
                .and_then(|io: TlsStream<TcpStream>| async move {
                    TLS.handshake(TlsListenerKind::Https);
                    let peer = io.get_ref().0.peer_addr().ok();
                    Ok::<_, ()>((io, Protocol::Http1, peer))
                })
                .and_then(
                    HttpService::build()
                        .client_request_timeout(request_timeout)
                        // Nothing evgrid serves reads the scheme or host from it (URLs come from
                        // push.public_url), so the default is the plain listener's as well.
                        .finish(map_config(app, |_| AppConfig::default()))
                        .map_err(|_| ()),
                )
        })?
        .run())
}
