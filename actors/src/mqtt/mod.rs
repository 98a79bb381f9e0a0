//! evgrid's actor engine for MQTT: sessions, routing shards, and the broker handle that ties them
//! together.
//!
//! Ontology:
//! - **Session** ([`session::Session`]): one actor per client id; outlives connections.
//! - **Router** ([`router::Router`]): a routing shard actor; topics are hashed to shards.
//! - **Broker** ([`broker::Broker`]): a cheap, `Send + Sync` handle the edges use to open sessions
//!   and to route batches. It owns the client-id registry; it holds no per-message state.
//! - **Outbox** ([`outbox`]): the channel from a session actor to its connection's writer task.
//! - **Application Message** ([`message::AppMessage`]): one accepted PUBLISH (or will), shared by
//!   every subscriber it fans out to.
//! - **Trie** ([`trie`]) and **retained index** ([`retained`]): the pure matching structures a
//!   routing shard holds.
//!
//! Data moves in batches ([`router::PublishBatch`], [`session::Deliver`], [`message::Out`]); one
//! mailbox message per batch, never per message. Nothing here knows the MQTT wire format, and
//! nothing here imports another flow of the core (the layer rules in ARCHITECTURE.md): whatever
//! joins MQTT to the rest of the core depends on this engine, never the other way round.

pub mod broker;
pub mod journal;
pub mod lifecycle;
pub mod message;
pub mod outbox;
pub mod persist;
pub mod remote;
pub mod retained;
pub mod router;
pub mod session;
pub mod trie;
