//! The grid's registry across both tiers: rebuilding it from the store at start-up, the data
//! plane's lookups, and the one expiry sweep.
//!
//! Loading starts every topic and subscription actor on what the store holds, continues each
//! topic's sequence above what its subscriptions hold and the key counter above every key,
//! drops what the store still holds of subscriptions deleted while a publish was in flight,
//! and creates the `default` namespace the first time. The sweep deletes expired subscriptions
//! of both tiers and fails basic-tier subscriptions whose validation URL was never visited,
//! under the management lock. Must never expose a resource before its commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;

use super::basic::Basic;
use super::error::GridError;
use super::identities::{self, IdentityRes, build_directory};
use super::namespaces::{Namespace, Namespaces, Sub, Topic, find_sub, find_topic, namespace_props};
use super::resource::Limits;
use super::resource::basic::InputSchema;
use super::resource::identity::Kind as IdKind;
use super::resource::namespace as resource;
use super::resource::topic_spaces::{RouteTopic, TopicSpaces};
use super::shared::{Keys, Shared, bad, lc};
use super::topic::{SetNextSeq, SetRoutes, Target, TopicActor};
use crate::delivery::queue::QueueSub;
use crate::model::clock::now_ms;
use crate::store::{Op, StoreError};

/// How often the expiry sweep runs.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Rebuilds both tiers from the store and starts their actors.
pub(super) async fn load(sh: &Shared, ns: &Namespaces, basic: &Basic) -> Result<(), StoreError> {
    let store = sh.writer.store().clone();
    let resources = store.resources()?;
    // Documents written by this server were valid under the limits then in force; accept
    // them even if the configured minimum lock has been raised since.
    let lenient = Limits { min_lock_secs: 1 };
    let mut state = BTreeMap::new();
    let mut max_key = 0;
    let mut live_keys = Vec::new();
    let mut last_seq: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut basic_docs = Vec::new();
    for (path, json) in &resources {
        let doc: Value = serde_json::from_slice(json).map_err(|e| bad(path, e.to_string()))?;
        if path.starts_with("topics/")
            || path.starts_with("domains/")
            || path.starts_with("systemTopics/")
        {
            basic_docs.push((path.clone(), doc));
            continue;
        }
        let name = doc["name"].as_str().unwrap_or_default().to_string();
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["namespaces", n] => {
                let keys = doc["keys"]
                    .as_array()
                    .and_then(|k| Some([k.first()?.as_str()?, k.get(1)?.as_str()?]))
                    .ok_or_else(|| bad(path, "no keys".into()))?;
                state.insert(
                    n.to_string(),
                    Namespace {
                        name,
                        props: doc["properties"].clone(),
                        topic_spaces: Arc::new(
                            namespace_props(&doc["properties"], &sh.cfg.mqtt_hostname)
                                .map_err(|e| bad(path, e.to_string()))?
                                .1,
                        ),
                        keys: keys.map(str::to_string),
                        topics: BTreeMap::new(),
                        identity: IdentityRes::default(),
                        directory: Arc::default(),
                    },
                );
            }
            ["namespaces", n, "topics", t] => {
                let (cfg, props) = resource::topic(&doc["properties"]).map_err(|e| bad(path, e))?;
                let n = state
                    .get_mut(*n)
                    .ok_or_else(|| bad(path, "its namespace is missing".into()))?;
                n.topics.insert(
                    t.to_string(),
                    Topic {
                        name,
                        cfg,
                        props,
                        addr: sh.start_topic(),
                        subs: BTreeMap::new(),
                    },
                );
            }
            ["namespaces", n, "topics", t, "eventSubscriptions", s] => {
                let topic = state
                    .get_mut(*n)
                    .and_then(|x| x.topics.get_mut(*t))
                    .ok_or_else(|| bad(path, "its topic is missing".into()))?;
                let (cfg, props) =
                    resource::subscription(&doc["properties"], topic.cfg, lenient, 0)
                        .map_err(|e| bad(path, e))?;
                let key = doc["key"]
                    .as_u64()
                    .ok_or_else(|| bad(path, "no key".into()))?;
                max_key = max_key.max(key);
                live_keys.push(key);
                let (target, last) =
                    Namespaces::start_sub(sh, key, cfg.clone(), Namespaces::ns_names(n, t, &name))?;
                let top = last_seq.entry((n.to_string(), t.to_string())).or_insert(0);
                *top = (*top).max(last);
                topic.subs.insert(
                    s.to_string(),
                    Sub {
                        name,
                        key,
                        cfg,
                        props,
                        target,
                    },
                );
            }
            ["namespaces", n, kind, r] if IdKind::from_segment(kind).is_some() => {
                let kind = IdKind::from_segment(kind).expect("matched");
                let n = state
                    .get_mut(*n)
                    .ok_or_else(|| bad(path, "its namespace is missing".into()))?;
                identities::load(&mut n.identity, kind, r, &doc).map_err(|e| bad(path, e))?;
            }
            _ => return Err(bad(path, "unknown resource path".into())),
        }
    }
    for n in state.values_mut() {
        n.directory = Arc::new(build_directory(&n.identity, &n.topic_spaces));
    }
    // Topics continue their sequences above what their subscriptions hold.
    for (nk, n) in &state {
        for (tk, t) in &n.topics {
            let last = last_seq.get(&(nk.clone(), tk.clone())).copied();
            t.addr.do_send(SetRoutes(Namespaces::routes(t)));
            t.addr.do_send(SetNextSeq(last.unwrap_or(0) + 1));
        }
    }
    max_key = max_key.max(basic.load(sh, &basic_docs, &mut live_keys)?);
    sh.keys_above(max_key);
    // Entries of subscriptions deleted while a publish was in flight.
    let orphans: Vec<Op> = store
        .subscription_keys()?
        .into_iter()
        .filter(|k| !live_keys.contains(k))
        .map(|sub| Op::DropSubscription { sub })
        .collect();
    if !orphans.is_empty() {
        tracing::info!(
            count = orphans.len(),
            "dropping entries of deleted subscriptions"
        );
        sh.writer.submit(orphans).await?;
    }
    *ns.state.write().expect("grid lock") = state;
    if store.meta("default_namespace")?.is_none() {
        if ns.namespace("default").is_none() {
            ns.put_namespace(sh, "default", &Value::Null, |_| Ok(()))
                .await
                .map_err(GridError::into_store_error)?;
        }
        sh.writer
            .submit(vec![Op::PutMeta {
                key: "default_namespace".into(),
                value: b"created".to_vec(),
            }])
            .await?;
    }
    Ok(())
}

/// Deletes expired subscriptions of both tiers and fails basic-tier subscriptions whose
/// validation URL was not visited in time.
pub(super) async fn sweep(sh: &Shared, ns: &Namespaces, basic: &Basic) {
    let now = now_ms();
    let expired_ns = ns_expired(ns, now);
    let (basic_expired, lapsed) = basic.due(now);
    if expired_ns.is_empty() && basic_expired.is_empty() && lapsed.is_empty() {
        return;
    }
    let _g = sh.mgmt.lock().await;
    // Each step checks again: a PUT may have extended or recreated it while we waited.
    for (n, t, s) in expired_ns {
        ns_delete_if_expired_locked(sh, ns, &n, &t, &s).await;
    }
    for (scope, s) in basic_expired {
        basic.delete_if_expired_locked(sh, &scope, &s).await;
    }
    for (scope, s) in lapsed {
        basic.fail_if_lapsed_locked(sh, &scope, &s).await;
    }
}

/// Namespace subscriptions past their expiry.
fn ns_expired(tier: &Namespaces, now: u64) -> Vec<(String, String, String)> {
    let mut expired = Vec::new();
    let st = tier.state.read().expect("grid lock");
    for (nk, n) in st.iter() {
        for (tk, t) in &n.topics {
            for (sk, s) in &t.subs {
                if s.cfg.expires_ms.is_some_and(|e| e <= now) {
                    expired.push((nk.clone(), tk.clone(), sk.clone()));
                }
            }
        }
    }
    expired
}

/// Deletes a subscription [`ns_expired`] found, unless a PUT extended or recreated it meanwhile.
/// Runs under the management lock.
async fn ns_delete_if_expired_locked(sh: &Shared, tier: &Namespaces, ns: &str, t: &str, s: &str) {
    let still = {
        let st = tier.state.read().expect("grid lock");
        st.get(ns)
            .and_then(|n| n.topics.get(t))
            .and_then(|tp| tp.subs.get(s))
            .is_some_and(|sub| sub.cfg.expires_ms.is_some_and(|e| e <= now_ms()))
    };
    if !still {
        return;
    }
    match tier.delete_subscription_locked(sh, ns, t, s).await {
        Ok(_) => {
            tracing::info!(namespace = %ns, topic = %t, subscription = %s, "expired subscription deleted")
        }
        Err(e) => tracing::warn!(error = %e, "could not delete an expired subscription"),
    }
}

/// Dead letters of a subscription: up to `limit` records after sequence `after`.
pub(super) fn dead_letters(
    tier: &Namespaces,
    sh: &Shared,
    ns: &str,
    topic: &str,
    name: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
    let key = {
        let st = tier.state.read().expect("grid lock");
        find_sub(&st, ns, topic, name)?.2.key
    };
    Ok(sh.writer.store().dead_letters(key, after, limit)?)
}

/// Runs `f` on a namespace topic, or says which part of the path is missing.
fn with_topic<T>(
    ns: &Namespaces,
    n: &str,
    topic: &str,
    f: impl FnOnce(&Namespace, &Topic) -> Result<T, GridError>,
) -> Result<T, GridError> {
    let st = ns.state.read().expect("grid lock");
    let n = st
        .get(&lc(n))
        .ok_or_else(|| GridError::not_found("namespace", n))?;
    let t = n
        .topics
        .get(&lc(topic))
        .ok_or_else(|| GridError::NotFoundIn {
            kind: "topic",
            name: topic.to_string(),
            parent: Some(("namespace", n.name.clone())),
        })?;
    f(n, t)
}

/// The topic actor of a namespace topic and its namespace's keys.
pub(super) fn topic_for_publish(
    ns: &Namespaces,
    n: &str,
    topic: &str,
) -> Result<(Addr<TopicActor>, Keys), GridError> {
    with_topic(ns, n, topic, |n, t| Ok((t.addr.clone(), n.keys())))
}

/// A namespace's parsed `topicSpacesConfiguration`.
pub(super) fn topic_spaces(ns: &Namespaces, n: &str) -> Result<Arc<TopicSpaces>, GridError> {
    let st = ns.state.read().expect("grid lock");
    st.get(&lc(n))
        .map(|n| n.topic_spaces.clone())
        .ok_or_else(|| GridError::not_found("namespace", n))
}

/// The topic actor MQTT messages are routed into: a namespace topic, or a custom topic that
/// takes CloudEvents (docs/eventgrid.md §7.6).
pub(super) fn route_target(
    ns: &Namespaces,
    basic: &Basic,
    route: &RouteTopic,
) -> Result<Addr<TopicActor>, GridError> {
    match route {
        RouteTopic::Namespace { namespace, topic } => {
            let st = ns.state.read().expect("grid lock");
            find_topic(&st, namespace, topic).map(|(_, t)| t.addr.clone())
        }
        RouteTopic::Custom(name) => {
            let t = basic.publish_target(super::basic::Kind::Topic, name)?;
            if t.cfg.input != InputSchema::CloudEvents {
                return Err(GridError::BadRequest(format!(
                    "The route topic '{name}' takes {} input; MQTT messages are routed as CloudEvents, so it must take CloudEventSchemaV1_0.",
                    t.cfg.input.name()
                )));
            }
            Ok(t.addr.clone())
        }
    }
}

/// The pull queue of a namespace subscription and its namespace's keys.
pub(super) fn subscription_for_pull(
    ns: &Namespaces,
    n: &str,
    topic: &str,
    name: &str,
) -> Result<(Addr<QueueSub>, Keys), GridError> {
    with_topic(ns, n, topic, |n, t| {
        let s = t.subs.get(&lc(name)).ok_or_else(|| GridError::NotFoundIn {
            kind: "event subscription",
            name: name.to_string(),
            parent: Some(("topic", t.name.clone())),
        })?;
        match &s.target {
            Target::Queue(a) => Ok((a.clone(), n.keys())),
            Target::Push(_) => Err(GridError::BadRequest(format!(
                "The event subscription '{name}' delivers in Push mode; only Queue subscriptions can be received from."
            ))),
        }
    })
}
