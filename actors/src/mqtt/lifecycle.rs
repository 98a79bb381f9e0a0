//! Client lifecycle as the MQTT engine reports it: a connection was accepted, a connection
//! ended and why. The edge pushes a [`SessionEvent`] into a bounded queue ([`LifecycleTx`]);
//! whoever wants them (today the bridge, which turns them into the namespace's lifecycle events)
//! drains the other end ([`LifecycleRx`]) in batches.
//!
//! Owns the reasons a connection ends ([`EndReason`], in MQTT's terms) and the queue. Must never
//! block or slow the edge: a push is one `try_send`; when the queue is full (a storm of
//! reconnecting clients outrunning the consumer) the event is dropped, counted
//! (`evgrid_mqtt_lifecycle_events_total{outcome="backlog_full"}`) and logged at most once per
//! [`LOG_EVERY_MS`]. Knows nothing of what the events become.

use std::sync::atomic::{AtomicU64, Ordering};

use ntex_bytes::ByteString;
use tokio::sync::mpsc;

use crate::metrics::LIFECYCLE;
use crate::model::clock::mono_ms;
use crate::mqtt::message::{CloseReason, ConnId};

/// Why a connection ended, as the MQTT edge saw it. The first cause recorded wins: a client's
/// DISCONNECT followed by its socket closing is a client disconnect, not a lost connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// The socket closed or failed without a DISCONNECT.
    ConnectionLost,
    /// Nothing arrived within 1.5 times the keep-alive [MQTT-3.1.2-24].
    KeepAliveTimeout,
    /// Another connection took the client id over [MQTT-3.1.4-3].
    TakenOver,
    /// A malformed packet or a breach of the protocol.
    ProtocolError,
    /// The broker is shutting down.
    ServerShutdown,
    /// The client's socket took nothing for `mqtt.send_timeout` (a slow consumer).
    SendTimeout,
    /// The broker failed the connection (an internal error).
    ServerError,
    /// The client's authentication was refused or no longer holds (revoked, expired, failed
    /// re-authentication).
    AuthenticationError,
    /// The client did what it is not authorized to (v3.1.1 PUBLISH), or lost an authorization a
    /// subscription needs.
    AuthorizationError,
    /// An MQTT 3.1.1 client went over a session quota: it has no negative acknowledgement, so
    /// the broker closes the connection.
    QuotaExceeded,
}

impl EndReason {
    /// Why a connection the broker closed from its side ended.
    pub fn of_close(reason: CloseReason) -> EndReason {
        match reason {
            CloseReason::SessionTakenOver => EndReason::TakenOver,
            CloseReason::ServerShuttingDown => EndReason::ServerShutdown,
            CloseReason::SendTimeout => EndReason::SendTimeout,
            CloseReason::NotAuthenticated => EndReason::AuthenticationError,
            CloseReason::NotAuthorized => EndReason::AuthorizationError,
        }
    }
}

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// The CONNECT was accepted: the session is open and the CONNACK on its way.
    Connected,
    /// A connection reported as [`Happened::Connected`] ended.
    Disconnected(EndReason),
}

/// One connection's lifecycle step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub what: Happened,
    /// Pairs a connection's Disconnected with its Connected.
    pub conn: ConnId,
    /// The CONNECT user name; the client id when there is none.
    pub auth_name: ByteString,
    /// The client id (the session's name).
    pub session: ByteString,
    /// When it happened (ms since the Unix epoch).
    pub at_ms: u64,
}

/// How often at most a full queue is logged.
pub const LOG_EVERY_MS: u64 = 10_000;

/// The edge's end of the lifecycle queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LifecycleTx(Option<mpsc::Sender<SessionEvent>>);

/// The consumer's end: drain with `recv_many`.
pub type LifecycleRx = mpsc::Receiver<SessionEvent>;

/// A queue holding at most `backlog` events (at least 1).
pub fn channel(backlog: usize) -> (LifecycleTx, LifecycleRx) {
    let (tx, rx) = mpsc::channel(backlog.max(1));
    (LifecycleTx(Some(tx)), rx)
}

static DROPPED_SINCE_LOG: AtomicU64 = AtomicU64::new(0);
static LAST_LOG_MS: AtomicU64 = AtomicU64::new(0);

impl LifecycleTx {
    /// A queue nobody reads: every push is a no-op (no consumer configured).
    pub fn disabled() -> LifecycleTx {
        LifecycleTx(None)
    }

    /// Queues `ev` without waiting; a full queue drops it (counted, logged at a bounded rate).
    pub fn push(&self, ev: SessionEvent) {
        let Some(tx) = &self.0 else {
            return;
        };
        match tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                LIFECYCLE.backlog_full.inc();
                let dropped = DROPPED_SINCE_LOG.fetch_add(1, Ordering::Relaxed) + 1;
                let now = mono_ms();
                let last = LAST_LOG_MS.load(Ordering::Relaxed);
                if (last == 0 || now.saturating_sub(last) >= LOG_EVERY_MS)
                    && LAST_LOG_MS
                        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    DROPPED_SINCE_LOG.fetch_sub(dropped, Ordering::Relaxed);
                    tracing::warn!(
                        dropped,
                        "MQTT lifecycle events dropped: the backlog (mqtt.lifecycle_backlog) is full"
                    );
                }
            }
            // The consumer is gone (shutting down): nothing to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> SessionEvent {
        SessionEvent {
            what: Happened::Connected,
            conn: ConnId(n),
            auth_name: ByteString::from_static("a"),
            session: ByteString::from_static("s"),
            at_ms: 0,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, mut rx) = channel(2);
        let before = LIFECYCLE.backlog_full.get();
        for n in 0..5 {
            tx.push(ev(n));
        }
        // Other tests may push into their own queues meanwhile: at least these three.
        assert!(LIFECYCLE.backlog_full.get() - before >= 3);
        assert_eq!(rx.try_recv().map(|e| e.conn), Ok(ConnId(0)));
        assert_eq!(rx.try_recv().map(|e| e.conn), Ok(ConnId(1)));
        assert!(rx.try_recv().is_err());
        LifecycleTx::disabled().push(ev(9));
    }

    #[test]
    fn broker_side_closes_map_to_their_reasons() {
        assert_eq!(
            EndReason::of_close(CloseReason::SessionTakenOver),
            EndReason::TakenOver
        );
        assert_eq!(
            EndReason::of_close(CloseReason::ServerShuttingDown),
            EndReason::ServerShutdown
        );
        assert_eq!(
            EndReason::of_close(CloseReason::SendTimeout),
            EndReason::SendTimeout
        );
        assert_eq!(
            EndReason::of_close(CloseReason::NotAuthenticated),
            EndReason::AuthenticationError
        );
        assert_eq!(
            EndReason::of_close(CloseReason::NotAuthorized),
            EndReason::AuthorizationError
        );
    }
}
