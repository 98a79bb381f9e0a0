//! The bridge between the MQTT engine and the event grid: the only module of the core allowed to
//! name both [`crate::mqtt`] and [`crate::grid`].
//!
//! Owns what crosses between them (docs/eventgrid.md §7.6–§7.8): the [`Bridge`] handle both
//! edges use to publish MQTT messages into the namespace the broker serves, routing those
//! messages into the namespace's route topic as CloudEvents, and MQTT client lifecycle events.
//! Neither side learns the other's types: the MQTT engine must never name the grid, and the grid
//! must never name the MQTT engine; what crosses goes through here, in batches. Must never make
//! MQTT delivery wait on the grid: a route that fails is counted and reported to the publisher,
//! and MQTT subscribers get the message all the same.

pub mod auth;
pub mod convert;
pub mod lifecycle;
pub mod route;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use ntex_bytes::ByteString;

use crate::grid::Grid;
use crate::identity::directory::Directory;
use crate::mqtt::broker::Broker;
use crate::mqtt::message::AppMessage;

/// Who published a message, as routing enrichments see it (docs/eventgrid.md §7.6).
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's authentication name: the MQTT CONNECT user name (the client id when there
    /// is none); for HTTP publishes, the name the request authenticated as.
    pub auth_name: ByteString,
    /// The session name (MQTT client id); empty for HTTP publishes.
    pub session: ByteString,
}

/// Why a message accepted for MQTT delivery did not reach its route topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The actor system is shutting down: nothing was delivered.
    #[error("the broker is shutting down")]
    Unavailable,
    /// The route topic named by the namespace's `topicSpacesConfiguration` does not exist (any
    /// more); MQTT subscribers got the message.
    #[error("{0}")]
    NoRoute(String),
    /// The route topic refused or could not commit the event; MQTT subscribers got the message.
    #[error("{0}")]
    Failed(String),
    /// The store is at its free-space floor (`store.min_free_bytes`); MQTT subscribers got the
    /// message.
    #[error("{0}")]
    Full(String),
    /// The message's CloudEvent is larger than the grid takes (`events.max_event_bytes`); MQTT
    /// subscribers got the message.
    #[error("{0}")]
    TooLarge(String),
}

struct Inner {
    broker: Broker,
    grid: Grid,
    namespace: String,
    /// `events.max_event_bytes`: the largest routed CloudEvent.
    max_event_bytes: usize,
    /// QoS 0 events handed to the route topic and not committed yet (see [`route`]).
    best_effort: AtomicUsize,
    ids: route::Ids,
}

/// Shared handle over the broker and the grid, for the namespace the MQTT listener serves.
#[derive(Clone)]
pub struct Bridge(Arc<Inner>);

impl Bridge {
    pub fn new(broker: Broker, grid: Grid, namespace: String, max_event_bytes: usize) -> Bridge {
        Bridge(Arc::new(Inner {
            broker,
            grid,
            namespace,
            max_event_bytes,
            best_effort: AtomicUsize::new(0),
            ids: route::Ids::new(),
        }))
    }

    /// The identity configuration of the namespace the broker serves, as of now (an empty
    /// [`Directory`] when the namespace does not exist).
    pub fn directory(&self) -> Arc<Directory> {
        self.0.grid.directory(&self.0.namespace).unwrap_or_default()
    }

    /// Bumped whenever the served namespace's identity configuration changes (clients, CA
    /// certificates, groups, topic spaces, bindings, `clientAuthentication`, quotas).
    /// (The grid has one watch for every namespace: a change elsewhere wakes the receiver too,
    /// and the directory it reads then is the same.)
    pub fn identity_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.grid.identity_changes()
    }

    /// The namespace the MQTT broker serves (`mqtt.namespace`).
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    pub fn broker(&self) -> &Broker {
        &self.0.broker
    }

    pub fn grid(&self) -> &Grid {
        &self.0.grid
    }

    /// The namespace's cap on session expiry intervals, in seconds, while its
    /// `topicSpacesConfiguration` is enabled (`maximumSessionExpiryInHours`, docs/eventgrid.md
    /// §7.1, §7.9); the broker's own cap (`mqtt.max_session_expiry`) applies as well.
    pub fn max_session_expiry_secs(&self) -> Option<u32> {
        let ts = self.0.grid.topic_spaces(&self.0.namespace).ok()?;
        ts.enabled.then(|| ts.max_session_expiry_hours * 3600)
    }

    /// Publishes one message from outside MQTT (HTTP publish to MQTT, docs/eventgrid.md §7.8):
    /// resolves once MQTT subscribers have it queued and, when the namespace routes MQTT
    /// messages, once the routed event is committed to the route topic.
    pub async fn publish(&self, msg: AppMessage, client: &Client) -> Result<(), RouteError> {
        let msgs = [msg];
        let routing = self.route(&msgs, client, false);
        let [msg] = msgs;
        self.0
            .broker
            .route(vec![msg])
            .await
            .map_err(|_| RouteError::Unavailable)?;
        match routing {
            Some(h) => {
                let committed = h.commit.await;
                match h.too_large.is_empty() {
                    true => committed,
                    false => Err(RouteError::TooLarge(format!(
                        "the message's CloudEvent is larger than {} bytes, the largest event the namespace takes",
                        self.0.max_event_bytes
                    ))),
                }
            }
            None => Ok(()),
        }
    }
}
