//! evgrid's core: the actors and the pure code behind both edges (`src/mqtt`, `src/http` in the
//! `evgrid` crate). This file is the map; it holds no code. ARCHITECTURE.md tells the same story
//! with the life of each kind of message and a table of where things happen.
//!
//! # Flows
//!
//! - **MQTT** ([`mqtt`]): the edge hands each connection's publishes, one batch per event-loop
//!   turn, to the [`mqtt::broker::Broker`], which splits it by topic hash into one
//!   [`mqtt::router::PublishBatch`] per routing shard. A shard matches the batch against its
//!   subscription trie and sends one [`mqtt::session::Deliver`] per subscribing session. The
//!   session actor applies QoS, the receive window and its queue limits and pushes into the
//!   connection's [`mqtt::outbox`], which the edge's writer task drains into the socket.
//! - **Events in** ([`grid`]): the edge parses and authenticates a publish and sends one
//!   [`grid::topic::Publish`] per request to the topic's [`grid::topic::TopicActor`] (namespace
//!   topics, custom topics and domains alike). The topic actor filters per subscription,
//!   converts schemas, commits every copy to the [`store`] as one batch and only then answers and
//!   hands the copies on.
//! - **Events out** ([`delivery`]): a pull subscription's [`delivery::queue::QueueSub`] takes
//!   [`delivery::queue::QueueAppend`] and answers the edge's `Receive` / `Settle`; a push
//!   subscription's [`delivery::push::PushSub`] takes [`delivery::push::PushAppend`], batches,
//!   and sends each request as an [`delivery::shard::Attempt`] to the endpoint's
//!   [`delivery::shard::DeliveryShard`]; [`delivery::retry`] decides what an outcome means.
//! - **Bridge** ([`bridge`]): MQTT into the event grid and back. The MQTT edge hands each
//!   connection batch to [`bridge::Bridge::prepare`] too, which converts it into CloudEvents; the
//!   batches of one ntex worker's turn go to the route topic as one [`bridge::Bridge::submit`],
//!   one [`grid::topic::Publish`]; QoS 1/2 PUBACKs wait for that commit. HTTP publishes to MQTT
//!   topics go through [`bridge::Bridge::publish`]. The edge queues client connects and
//!   disconnects into [`mqtt::lifecycle`]'s bounded channel without waiting;
//!   [`bridge::lifecycle`] drains it in batches into the namespace's system topics.
//!
//! # Layers (checked by `scripts/check-layers`)
//!
//! - [`model`]: shared and pure — the CloudEvent, time formats, the one clock, access keys.
//!   Everything may use it; it uses nothing of the core.
//! - [`mqtt`] never names `grid`, `delivery` or `bridge`.
//! - [`grid`] never names `mqtt`. It starts and feeds delivery's actors, so it may name
//!   [`delivery`].
//! - [`delivery`] never names `grid` or `mqtt`: it gets settings types of its own, built by grid.
//! - [`bridge`] is the only module that may name both `mqtt` and `grid`.
//! - [`store`] names neither; the edges (`src/http`, `src/mqtt`) never name the store.
//! - [`cluster`] (the NATS link of cluster mode) may name `mqtt`; only the root (`src/app.rs`)
//!   and the configuration name it: the MQTT engine sees it as [`mqtt::remote::Remote`].
//! - Pure modules — [`model`] (but for the clock and key generator), `grid::resource`,
//!   `grid::filter`, `grid::schema`, `delivery::retry`, `delivery::request`, `store::record`,
//!   `mqtt::trie`, `identity`, and the edge's body parsers and SAS code — use no actix, tokio, awc,
//!   randomness or clock: `now` and random numbers come in as arguments, so tests choose them.
//! - [`lifecycle`], [`budget`] and [`metrics`] are shared infrastructure at the root: the one
//!   `Shutdown` message, the process-wide memory budget, the Prometheus counters.
//!
//! # What crosses which boundary
//!
//! | from → to | messages |
//! |---|---|
//! | MQTT edge → mqtt | `Broker::{open, route, route_detached, publish, subscribe, unsubscribe}`; `session::{Attach, Detach, Acked, Received, Discard}` |
//! | mqtt → MQTT edge | `message::Out` items through the connection's `outbox` |
//! | inside mqtt | `router::{PublishBatch, Subscribe, Unsubscribe, RemoveSession}`, `session::Deliver` |
//! | HTTP edge → grid | `Grid` methods (management, lookups), `topic::Publish` |
//! | HTTP edge → delivery | `queue::{Receive, Settle}` to the subscription the grid looked up |
//! | grid → delivery | `queue::{QueueAppend, ReconfigureQueue}`, `push::{PushAppend, ReconfigurePush}`, `shard::Validate`, `lifecycle::Shutdown` |
//! | inside grid | `topic::{SetRoutes, SetNextSeq}`, `lifecycle::Shutdown` |
//! | inside delivery | `shard::Attempt` (push → shard, answered with a `retry::Outcome`) |
//! | MQTT edge, HTTP edge → bridge | `Bridge::{prepare, submit, route, publish}`; `mqtt::lifecycle::SessionEvent` through its channel |
//! | bridge → mqtt, grid | `Broker::route`; `Grid::{generation, topic_spaces, route_target, system_topics_of_namespace, directory, identity_changes}`, `topic::Publish` |
//! | grid, delivery → store | batches of `store::Op` through the `store::Writer`, answered after the commit |
//!
//! Data crosses a mailbox in batches: one mailbox message per batch, per shard or per session,
//! never one per event.

pub mod bridge;
pub mod budget;
pub mod cluster;
pub mod delivery;
pub mod grid;
pub mod identity;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod mqtt;
pub mod store;
