//! The basic tier: custom topics, domains with their domain topics, system topics (MQTT client
//! lifecycle events, docs/eventgrid.md §7.7), and push (webhook) event subscriptions under a
//! topic, a domain, a domain topic or a system topic.
//!
//! Ontology:
//! - **Topic actor** ([`crate::grid::topic::TopicActor`], one per custom topic and per domain,
//!   the same actor as a namespace topic's): takes publish batches, filters and converts them
//!   per subscription, commits, hands them on.
//! - **Push subscription** ([`crate::delivery::push::PushSub`], one actor per active subscription): pending
//!   events, retries, dead letters.
//! - **Delivery shards** ([`crate::delivery::shard::DeliveryShard`], a fixed number, endpoint → shard): the
//!   HTTP requests and each endpoint's health (probation).
//! - **Registry** (`registry`): sources, domain topics and subscriptions; their management
//!   operations are in `sources` (topics, domains, domain topics) and `subscriptions`. As for
//!   namespaces, every change is committed before the registry shows it and management
//!   changes are serialised by the grid's one async lock.
//!
//! A new subscription is active only after its endpoint passed the validation handshake
//! (Event Grid schema: SubscriptionValidationEvent, answered synchronously or by a GET on the
//! `validationUrl`; CloudEvents: the OPTIONS abuse-protection handshake). The handshake runs
//! before the management lock is taken, so a slow endpoint never stalls other management calls.
//!
//! Store paths (names lowercased): `topics/{t}`, `topics/{t}/eventSubscriptions/{s}`,
//! `domains/{d}`, `domains/{d}/eventSubscriptions/{s}`, `domains/{d}/topics/{dt}`,
//! `domains/{d}/topics/{dt}/eventSubscriptions/{s}`, `systemTopics/{t}`,
//! `systemTopics/{t}/eventSubscriptions/{s}`. Must never route events to a subscription
//! whose endpoint has not been validated.

mod registry;
mod sources;
mod subscriptions;
mod system_topics;

pub(crate) use registry::Basic;
pub use registry::{Kind, PublishTarget, Scope, random_id};
