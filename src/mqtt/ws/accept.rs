//! The service that upgrades an accepted connection to MQTT over WebSockets: reads the HTTP
//! request head within the handshake timeout, answers it, and on success hands the connection
//! on with the [`WsFilter`] layer. Counts every outcome (`evgrid_mqtt_ws_upgrades_total`).
//! Must never hold a connection past the timeout, nor let one client's upgrade touch another.

use std::io;

use evgrid_actors::metrics::{WS, WsUpgrade};
use ntex_bytes::{Bytes, BytesMut};
use ntex_io::{Filter, Io, Layer};
use ntex_service::{Ctx, Service};
use ntex_util::future::Either;
use ntex_util::time::{self, Millis};

use super::filter::WsFilter;
use super::handshake::{self, Refused};

/// Upgrades connections; `max_payload` bounds a client data frame.
#[derive(Debug, Clone)]
pub struct WsAcceptor {
    timeout: Millis,
    max_payload: u64,
}

impl WsAcceptor {
    pub fn new(timeout: Millis, max_payload: u64) -> Self {
        WsAcceptor {
            timeout,
            max_payload,
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
}

impl WsAcceptor {
    /// Sends the refusal and closes, within the handshake timeout (a client that reads
    /// nothing cannot keep the connection open).
    async fn refuse<F: Filter>(&self, io: &Io<F>, r: Refused) -> io::Error {
        WS.upgrade(r.outcome);
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
