//! The event grid: resources and ingest. Namespaces (the namespace tier) and custom topics,
//! domains and domain topics (the basic tier), their event subscriptions, the topic actors
//! that take publishes, and the handle the HTTP edge uses.
//!
//! Ontology:
//! - **Namespace**: a name, ARM properties and two access keys. Holds topics, and its identity
//!   resources (clients, CA certificates, client groups, topic spaces, permission bindings;
//!   `identities`), published to the MQTT side as one [`Grid::directory`] per namespace with a
//!   watch ([`Grid::identity_changes`]) that moves on at every change.
//! - **System topic** (basic tier): takes the MQTT client lifecycle events of a namespace, fed
//!   by the bridge through [`Grid::system_topics_of_namespace`] (docs/eventgrid.md §7.7).
//! - **Topic** ([`topic::TopicActor`], one actor per namespace topic, custom topic and domain):
//!   takes publish batches, filters (and, in the basic tier, converts) them per subscription,
//!   commits them, hands them on.
//! - **Subscription** (one actor each): in Queue delivery mode a [`crate::delivery::queue::QueueSub`], the pull
//!   queue; in Push mode a [`crate::delivery::push::PushSub`], the webhook engine both tiers share
//!   (namespace subscriptions: CloudEvents handshake, namespace retry schedule).
//! - **Grid** ([`Grid`]): the handle over both tiers' registries (`namespaces`, [`basic`]),
//!   rebuilt from the store at start-up and swept for expired subscriptions (`registry`). Every
//!   change is committed to the store before a registry shows it. Management changes are
//!   serialised by one async lock; the data plane only takes a read lock for a lookup.
//!
//! Pure parts: [`resource`] (ARM validation), [`filter`], [`schema`]. Errors: [`GridError`],
//! whose sentences are Event Grid's. Must never: expose a resource before its commit, keep an
//! actor for a resource the store no longer has, or depend on the broker side (only the bridge
//! may join the two).

pub mod basic;
pub mod error;
pub mod filter;
mod identities;
mod identity_events;
mod namespaces;
mod registry;
pub mod resource;
pub mod schema;
mod shared;
pub mod topic;

use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use crate::delivery::queue::QueueSub;
use crate::identity::directory::Directory;
use crate::store::{StoreError, Writer};
use basic::{Basic, Kind, PublishTarget, Scope};
use namespaces::Namespaces;
use resource::identity::Kind as IdKind;
use resource::topic_spaces::{RouteTopic, TopicSpaces};
use shared::Shared;
use topic::TopicActor;

pub use error::{GridError, HANDSHAKE_FAILED};
pub use shared::{GridConfig, Keys};

struct Inner {
    shared: Shared,
    namespaces: Namespaces,
    basic: Basic,
}

/// Shared handle to the grid. Cheap to clone. Each method is one call into the tier that owns
/// the resource.
#[derive(Clone)]
pub struct Grid(Arc<Inner>);

impl Grid {
    /// Rebuilds the registries from the store and starts every topic and subscription actor.
    /// Creates the `default` namespace the first time. Must run inside an actix system.
    pub async fn start(
        writer: Writer,
        arbiters: Vec<ArbiterHandle>,
        cfg: GridConfig,
    ) -> Result<Grid, StoreError> {
        let grid = Grid(Arc::new(Inner {
            shared: Shared::new(writer, arbiters, cfg),
            namespaces: Namespaces::default(),
            basic: Basic::default(),
        }));
        registry::load(&grid.0.shared, &grid.0.namespaces, &grid.0.basic).await?;
        let g = grid.clone();
        actix::spawn(async move {
            loop {
                tokio::time::sleep(registry::SWEEP_EVERY).await;
                registry::sweep(&g.0.shared, &g.0.namespaces, &g.0.basic).await;
            }
        });
        Ok(grid)
    }

    /// `Ok` while the store can commit; the error that stops it otherwise (for readiness).
    pub fn store_health(&self) -> Result<(), String> {
        self.0.shared.writer.health()
    }

    // ---- data plane ----

    /// The topic actor of a namespace topic and its namespace's keys.
    pub fn topic_for_publish(
        &self,
        ns: &str,
        topic: &str,
    ) -> Result<(Addr<TopicActor>, Keys), GridError> {
        registry::topic_for_publish(&self.0.namespaces, ns, topic)
    }

    /// Moves on with every management change: what was looked up under one generation holds
    /// until it changes (load it before the lookups it guards).
    pub fn generation(&self) -> u64 {
        self.0.shared.mgmt.generation()
    }

    /// A namespace's parsed `topicSpacesConfiguration` (the bridge reads it per batch).
    pub fn topic_spaces(&self, ns: &str) -> Result<Arc<TopicSpaces>, GridError> {
        registry::topic_spaces(&self.0.namespaces, ns)
    }

    /// A namespace's identity configuration as the MQTT side reads it (docs/eventgrid.md
    /// §7.2–§7.5): rebuilt whole on every change of its clients, CA certificates, groups, topic
    /// spaces, bindings or `topicSpacesConfiguration` authentication settings.
    pub fn directory(&self, ns: &str) -> Result<Arc<Directory>, GridError> {
        self.0.namespaces.directory(ns)
    }

    /// Moves on whenever the identity configuration of any namespace changes (its
    /// [`Grid::directory`]), and when a namespace is created or deleted.
    pub fn identity_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.namespaces.identity_tx.subscribe()
    }

    /// The topic actor a namespace's MQTT messages are routed into.
    pub fn route_target(&self, route: &RouteTopic) -> Result<Addr<TopicActor>, GridError> {
        registry::route_target(&self.0.namespaces, &self.0.basic, route)
    }

    /// The pull queue of a namespace subscription and its namespace's keys.
    pub fn subscription_for_pull(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<(Addr<QueueSub>, Keys), GridError> {
        registry::subscription_for_pull(&self.0.namespaces, ns, topic, name)
    }

    /// Dead letters of a namespace subscription: up to `limit` records after sequence `after`.
    pub fn dead_letters(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
        registry::dead_letters(
            &self.0.namespaces,
            &self.0.shared,
            ns,
            topic,
            name,
            after,
            limit,
        )
    }

    // ---- management ----

    /// Creates or updates a namespace; answers its document and whether it was created.
    pub async fn put_namespace(
        &self,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        let inner = &self.0;
        // The route topic must exist (and take CloudEvents) when the namespace names it.
        let check = |ts: &TopicSpaces| {
            match &ts.route {
            Some(r) => registry::route_target(&inner.namespaces, &inner.basic, r)
                .map(drop)
                .map_err(|e| match e {
                    GridError::BadRequest(m) => GridError::BadRequest(m),
                    _ => GridError::BadRequest(format!(
                        "properties.topicSpacesConfiguration.routeTopicResourceId names {r}, which does not exist; create the topic first."
                    )),
                }),
            None => Ok(()),
        }
        };
        inner
            .namespaces
            .put_namespace(&inner.shared, name, props, check)
            .await
    }

    pub fn get_namespace(&self, name: &str) -> Result<Value, GridError> {
        self.0.namespaces.get_namespace(name)
    }

    pub fn list_namespaces(&self) -> Vec<Value> {
        self.0.namespaces.list_namespaces()
    }

    /// Deletes a namespace with all its topics and subscriptions; false if it did not exist.
    pub async fn delete_namespace(&self, name: &str) -> Result<bool, GridError> {
        self.0
            .namespaces
            .delete_namespace(&self.0.shared, name)
            .await
    }

    pub fn keys(&self, ns: &str) -> Result<Keys, GridError> {
        self.0.namespaces.keys(ns)
    }

    /// Creates or updates a client, CA certificate, client group, topic space or permission
    /// binding of namespace `ns`; answers its document and whether it was created. A client
    /// change is announced on the namespace's system topics (docs/eventgrid.md §7.7).
    pub async fn put_identity(
        &self,
        ns: &str,
        kind: IdKind,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        let (doc, created, change) = self
            .0
            .namespaces
            .put_identity(&self.0.shared, ns, kind, name, props)
            .await?;
        if let Some(c) = change {
            identity_events::announce(&self.0.basic, c).await;
        }
        Ok((doc, created))
    }

    pub fn get_identity(&self, ns: &str, kind: IdKind, name: &str) -> Result<Value, GridError> {
        self.0.namespaces.get_identity(ns, kind, name)
    }

    pub fn list_identity(&self, ns: &str, kind: IdKind) -> Result<Vec<Value>, GridError> {
        self.0.namespaces.list_identity(ns, kind)
    }

    /// Deletes an identity resource; false if it did not exist.
    pub async fn delete_identity(
        &self,
        ns: &str,
        kind: IdKind,
        name: &str,
    ) -> Result<bool, GridError> {
        let (existed, change) = self
            .0
            .namespaces
            .delete_identity(&self.0.shared, ns, kind, name)
            .await?;
        if let Some(c) = change {
            identity_events::announce(&self.0.basic, c).await;
        }
        Ok(existed)
    }

    /// Replaces `key1` or `key2` with a fresh key; the other stays valid.
    pub async fn regenerate_key(&self, ns: &str, which: &str) -> Result<Keys, GridError> {
        self.0
            .namespaces
            .regenerate_key(&self.0.shared, ns, which)
            .await
    }

    pub async fn put_topic(
        &self,
        ns: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        self.0
            .namespaces
            .put_topic(&self.0.shared, ns, name, props)
            .await
    }

    pub fn get_topic(&self, ns: &str, name: &str) -> Result<Value, GridError> {
        self.0.namespaces.get_topic(ns, name)
    }

    pub fn list_topics(&self, ns: &str) -> Result<Vec<Value>, GridError> {
        self.0.namespaces.list_topics(ns)
    }

    pub async fn delete_topic(&self, ns: &str, name: &str) -> Result<bool, GridError> {
        self.0
            .namespaces
            .delete_topic(&self.0.shared, ns, name)
            .await
    }

    pub async fn put_subscription(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        self.0
            .namespaces
            .put_subscription(&self.0.shared, ns, topic, name, props)
            .await
    }

    pub fn get_subscription(&self, ns: &str, topic: &str, name: &str) -> Result<Value, GridError> {
        self.0.namespaces.get_subscription(ns, topic, name)
    }

    pub fn list_subscriptions(&self, ns: &str, topic: &str) -> Result<Vec<Value>, GridError> {
        self.0.namespaces.list_subscriptions(ns, topic)
    }

    pub async fn delete_subscription(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<bool, GridError> {
        self.0
            .namespaces
            .delete_subscription(&self.0.shared, ns, topic, name)
            .await
    }

    pub async fn put_source(
        &self,
        kind: Kind,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        self.0
            .basic
            .put_source(&self.0.shared, kind, name, props)
            .await
    }

    pub fn get_source(&self, kind: Kind, name: &str) -> Result<Value, GridError> {
        self.0.basic.get_source(&self.0.shared, kind, name)
    }

    pub fn list_sources(&self, kind: Kind) -> Vec<Value> {
        self.0.basic.list_sources(&self.0.shared, kind)
    }

    pub async fn delete_source(&self, kind: Kind, name: &str) -> Result<bool, GridError> {
        self.0.basic.delete_source(&self.0.shared, kind, name).await
    }

    pub fn source_keys(&self, kind: Kind, name: &str) -> Result<Keys, GridError> {
        self.0.basic.source_keys(kind, name)
    }

    pub async fn regenerate_source_key(
        &self,
        kind: Kind,
        name: &str,
        which: &str,
    ) -> Result<Keys, GridError> {
        self.0
            .basic
            .regenerate_source_key(&self.0.shared, kind, name, which)
            .await
    }

    /// Domain topics named by published events are created before the events are accepted.
    pub async fn ensure_domain_topics(&self, d: &str, names: &[String]) -> Result<(), GridError> {
        self.0
            .basic
            .ensure_domain_topics(&self.0.shared, d, names)
            .await
    }

    pub async fn put_domain_topic(&self, d: &str, t: &str) -> Result<(Value, bool), GridError> {
        self.0.basic.put_domain_topic(&self.0.shared, d, t).await
    }

    pub fn get_domain_topic(&self, d: &str, t: &str) -> Result<Value, GridError> {
        self.0.basic.get_domain_topic(d, t)
    }

    pub fn list_domain_topics(&self, d: &str) -> Result<Vec<Value>, GridError> {
        self.0.basic.list_domain_topics(d)
    }

    pub async fn delete_domain_topic(&self, d: &str, t: &str) -> Result<bool, GridError> {
        self.0.basic.delete_domain_topic(&self.0.shared, d, t).await
    }

    /// Creates or updates a push subscription. A new endpoint (or a new delivery schema) must
    /// pass the validation handshake first; its answer decides whether the subscription is
    /// active now, waits for its validation URL, or is refused.
    pub async fn put_push_subscription(
        &self,
        scope: Scope<'_>,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        self.0
            .basic
            .put_push_subscription(&self.0.shared, scope, name, props)
            .await
    }

    pub fn get_push_subscription(&self, scope: Scope<'_>, name: &str) -> Result<Value, GridError> {
        self.0.basic.get_push_subscription(scope, name)
    }

    pub fn list_push_subscriptions(&self, scope: Scope<'_>) -> Result<Vec<Value>, GridError> {
        self.0.basic.list_push_subscriptions(scope)
    }

    pub async fn delete_push_subscription(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<bool, GridError> {
        self.0
            .basic
            .delete_push_subscription(&self.0.shared, scope, name)
            .await
    }

    /// The GET on a subscription's `validationUrl`: activates a subscription waiting for it.
    pub async fn complete_validation(&self, key: u64, token: &str) -> Result<(), GridError> {
        self.0
            .basic
            .complete_validation(&self.0.shared, key, token)
            .await
    }

    /// Dead letters of a push subscription: up to `limit` records after sequence `after`.
    pub fn push_dead_letters(
        &self,
        scope: Scope<'_>,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
        self.0
            .basic
            .push_dead_letters(&self.0.shared, scope, name, after, limit)
    }

    /// Creates or updates a system topic (docs/eventgrid.md §7.7); its source must name a
    /// namespace that exists and that no other system topic has.
    pub async fn put_system_topic(
        &self,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        let ns = &self.0.namespaces;
        let exists = |n: &str| ns.state.read().expect("grid lock").contains_key(n);
        self.0
            .basic
            .put_system_topic(&self.0.shared, name, props, exists)
            .await
    }

    pub fn get_system_topic(&self, name: &str) -> Result<Value, GridError> {
        self.0.basic.get_system_topic(name)
    }

    pub fn list_system_topics(&self) -> Vec<Value> {
        self.0.basic.list_system_topics()
    }

    /// Deletes a system topic with its subscriptions; false if it did not exist.
    pub async fn delete_system_topic(&self, name: &str) -> Result<bool, GridError> {
        self.0.basic.delete_system_topic(&self.0.shared, name).await
    }

    /// Where the MQTT client lifecycle events of namespace `ns` go: each system topic whose
    /// source names it, as (source, the `topic` its events carry; topic actor taking Event Grid
    /// schema batches). Empty while the namespace does not exist (a system topic outlives its
    /// namespace, but no events flow). Two read locks and a scan of the system topics: cheap
    /// enough per batch.
    pub fn system_topics_of_namespace(&self, ns: &str) -> Vec<(String, Addr<TopicActor>)> {
        let exists = self
            .0
            .namespaces
            .state
            .read()
            .expect("grid lock")
            .contains_key(&ns.to_ascii_lowercase());
        if !exists {
            return Vec::new();
        }
        self.0.basic.system_topics_of_namespace(ns)
    }

    /// The topic actor of a custom topic or domain, its keys and schema.
    pub fn publish_target(&self, kind: Kind, name: &str) -> Result<PublishTarget, GridError> {
        self.0.basic.publish_target(kind, name)
    }
}
