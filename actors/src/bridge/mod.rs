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

pub mod lifecycle;

use std::sync::Arc;

use ntex_bytes::ByteString;

use crate::grid::Grid;
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
}

struct Inner {
    broker: Broker,
    grid: Grid,
    namespace: String,
}

/// Shared handle over the broker and the grid, for the namespace the MQTT listener serves.
#[derive(Clone)]
pub struct Bridge(Arc<Inner>);

impl Bridge {
    pub fn new(broker: Broker, grid: Grid, namespace: String) -> Bridge {
        Bridge(Arc::new(Inner {
            broker,
            grid,
            namespace,
        }))
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

    /// Publishes one message from outside MQTT (HTTP publish to MQTT, docs/eventgrid.md §7.8):
    /// resolves once MQTT subscribers have it queued and, when the namespace routes MQTT
    /// messages, once the routed event is committed to the route topic.
    pub async fn publish(&self, msg: AppMessage, _client: &Client) -> Result<(), RouteError> {
        self.0
            .broker
            .route(vec![msg])
            .await
            .map_err(|_| RouteError::Unavailable)
    }
}
