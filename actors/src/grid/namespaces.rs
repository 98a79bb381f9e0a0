//! The namespace tier: namespaces, their topics and their event subscriptions (Queue or Push
//! delivery), and their management operations.
//!
//! Owns [`Namespaces`], this tier's registry. Every change is committed to the store before the
//! registry shows it, under the grid's one management lock; the data plane only takes a read
//! lock for a lookup. Store paths: `namespaces/{ns}`, `namespaces/{ns}/topics/{t}`,
//! `namespaces/{ns}/topics/{t}/eventSubscriptions/{s}`, with names lowercased (Azure names are
//! case-insensitive); each document keeps the name as first given. Must never expose a resource
//! before its commit, or keep an actor for a resource the store no longer has.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use serde_json::{Value, json};

use super::error::GridError;
use super::identities::{IdentityRes, auth_changed, read_issuer_files};
use super::resource::basic::redact_destination;
use super::resource::namespace::{self as resource, SubCfg, TopicCfg};
use super::resource::topic_spaces::{self, TopicSpaces};
use super::shared::{Keys, Shared, arm, generate_key, key_index, lc};
use super::topic::{Conversion, Route, Routes, SetRoutes, Target, TopicActor};
use crate::delivery::push::{Names, ReconfigurePush};
use crate::delivery::queue::ReconfigureQueue;
use crate::identity::directory::Directory;
use crate::lifecycle::Shutdown;
use crate::model::clock::now_ms;
use crate::store::{Op, StoreError};

pub(super) struct Sub {
    pub name: String,
    pub key: u64,
    pub cfg: SubCfg,
    pub props: Value,
    pub target: Target,
}

pub(super) struct Topic {
    pub name: String,
    pub cfg: TopicCfg,
    pub props: Value,
    pub addr: Addr<TopicActor>,
    pub subs: BTreeMap<String, Sub>,
}

pub(super) struct Namespace {
    pub name: String,
    pub props: Value,
    /// `properties.topicSpacesConfiguration`, parsed (the bridge reads it per batch).
    pub topic_spaces: Arc<TopicSpaces>,
    pub keys: [String; 2],
    pub topics: BTreeMap<String, Topic>,
    /// Clients, CA certificates, groups, topic spaces, bindings ([`super::identities`]).
    pub identity: IdentityRes,
    /// What the MQTT side reads of them, rebuilt whole on every change.
    pub directory: Arc<Directory>,
}

impl Namespace {
    pub fn keys(&self) -> Keys {
        Keys::of(&self.keys)
    }
}

/// The namespace tier's registry, by lowercased name.
pub(crate) struct Namespaces {
    pub(super) state: RwLock<BTreeMap<String, Namespace>>,
    /// Moves on whenever any namespace's identity configuration changes (its directory).
    pub(super) identity_tx: tokio::sync::watch::Sender<u64>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            state: RwLock::default(),
            identity_tx: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Topic `topic` of namespace `ns` in the registry, or which of the two is missing.
pub(super) fn find_topic<'a>(
    st: &'a BTreeMap<String, Namespace>,
    ns: &str,
    topic: &str,
) -> Result<(&'a Namespace, &'a Topic), GridError> {
    let n = st
        .get(&lc(ns))
        .ok_or_else(|| GridError::not_found("namespace", ns))?;
    let t = n
        .topics
        .get(&lc(topic))
        .ok_or_else(|| GridError::not_found("topic", topic))?;
    Ok((n, t))
}

/// Subscription `name` of a namespace topic, or which part of the path is missing.
pub(super) fn find_sub<'a>(
    st: &'a BTreeMap<String, Namespace>,
    ns: &str,
    topic: &str,
    name: &str,
) -> Result<(&'a Namespace, &'a Topic, &'a Sub), GridError> {
    let (n, t) = find_topic(st, ns, topic)?;
    let s = t
        .subs
        .get(&lc(name))
        .ok_or_else(|| GridError::not_found("event subscription", name))?;
    Ok((n, t, s))
}

pub(super) fn ns_path(ns: &str) -> String {
    format!("namespaces/{}", lc(ns))
}
pub(super) fn topic_path(ns: &str, t: &str) -> String {
    format!("namespaces/{}/topics/{}", lc(ns), lc(t))
}
pub(super) fn sub_path(ns: &str, t: &str, s: &str) -> String {
    format!(
        "namespaces/{}/topics/{}/eventSubscriptions/{}",
        lc(ns),
        lc(t),
        lc(s)
    )
}

fn ns_doc(n: &Namespace) -> Value {
    arm(
        format!("/providers/Microsoft.EventGrid/namespaces/{}", n.name),
        &n.name,
        "Microsoft.EventGrid/namespaces",
        &n.props,
    )
}
fn topic_doc(ns: &str, t: &Topic) -> Value {
    arm(
        format!(
            "/providers/Microsoft.EventGrid/namespaces/{ns}/topics/{}",
            t.name
        ),
        &t.name,
        "Microsoft.EventGrid/namespaces/topics",
        &t.props,
    )
}
fn sub_doc(ns: &str, t: &str, s: &Sub) -> Value {
    let mut props = s.props.clone();
    if let Some(d) = props.pointer_mut("/deliveryConfiguration/push/destination") {
        redact_destination(d);
    }
    arm(
        format!(
            "/providers/Microsoft.EventGrid/namespaces/{ns}/topics/{t}/eventSubscriptions/{}",
            s.name
        ),
        &s.name,
        "Microsoft.EventGrid/namespaces/topics/eventSubscriptions",
        &props,
    )
}

/// Validates a namespace's `properties`: answers them normalised, with the parsed
/// `topicSpacesConfiguration`. `hostname` is the server's `mqtt.hostname`.
pub(super) fn namespace_props(
    props: &Value,
    hostname: &str,
) -> Result<(Value, TopicSpaces), GridError> {
    let mut p = match props {
        Value::Null => json!({}),
        Value::Object(_) => props.clone(),
        _ => {
            return Err(GridError::BadRequest(
                "'properties' must be a JSON object".into(),
            ));
        }
    };
    p["provisioningState"] = json!("Succeeded");
    let (ts, out) = topic_spaces::parse(p.get("topicSpacesConfiguration"), hostname)
        .map_err(GridError::BadRequest)?;
    p["topicSpacesConfiguration"] = out;
    Ok((p, ts))
}

impl Namespaces {
    /// Where a push subscription of this tier keeps its dead-letter files.
    pub(super) fn ns_names(ns: &str, topic: &str, sub: &str) -> Names {
        Names {
            subscription: sub.to_string(),
            source: format!(
                "namespaces/{}/{}",
                ns.to_ascii_uppercase(),
                topic.to_ascii_uppercase()
            ),
        }
    }

    pub(super) fn routes(t: &Topic) -> Arc<Routes> {
        Arc::new(Routes {
            all: t
                .subs
                .values()
                .map(|s| Route {
                    key: s.key,
                    filter: s.cfg.filter.clone(),
                    conversion: Conversion::AsPublished,
                    target: s.target.clone(),
                })
                .collect(),
            by_topic: Default::default(),
        })
    }

    /// Starts a subscription actor on what the store holds for `key`; also answers the highest
    /// sequence it holds (0 if none).
    pub(super) fn start_sub(
        sh: &Shared,
        key: u64,
        cfg: SubCfg,
        names: Names,
    ) -> Result<(Target, u64), StoreError> {
        if let Some(pc) = cfg.push {
            let (addr, last) = sh.start_push(key, pc, names)?;
            return Ok((Target::Push(addr), last));
        }
        let (addr, last) = sh.start_queue(key, cfg)?;
        Ok((Target::Queue(addr), last))
    }

    pub(super) fn namespace(&self, ns: &str) -> Option<Value> {
        let st = self.state.read().expect("grid lock");
        st.get(&lc(ns)).map(ns_doc)
    }

    // ---- namespaces ----

    /// Creates or updates a namespace; answers its document and whether it was created.
    /// `check` runs under the management lock, before the commit: the route topic must exist.
    pub async fn put_namespace(
        &self,
        sh: &Shared,
        name: &str,
        props: &Value,
        check: impl FnOnce(&TopicSpaces) -> Result<(), GridError>,
    ) -> Result<(Value, bool), GridError> {
        crate::grid::resource::check_name("namespace", name, 50).map_err(GridError::BadRequest)?;
        let mut props = props.clone();
        read_issuer_files(&mut props)?;
        let (props, ts) = namespace_props(&props, &sh.cfg.mqtt_hostname)?;
        let _g = sh.mgmt.lock().await;
        check(&ts)?;
        let existing = {
            let st = self.state.read().expect("grid lock");
            st.get(&lc(name)).map(|n| (n.name.clone(), n.keys.clone()))
        };
        let created = existing.is_none();
        let (display, keys) = match existing {
            Some(e) => e,
            None => (name.to_string(), [generate_key()?, generate_key()?]),
        };
        let doc = json!({"name": display, "properties": props, "keys": keys});
        sh.writer
            .submit(vec![Op::PutResource {
                path: ns_path(name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let n = st.entry(lc(name)).or_insert_with(|| Namespace {
            name: display,
            props: Value::Null,
            topic_spaces: Arc::default(),
            keys,
            topics: BTreeMap::new(),
            identity: IdentityRes::default(),
            directory: Arc::default(),
        });
        n.props = props;
        let changed = created || auth_changed(&n.topic_spaces, &ts);
        n.topic_spaces = Arc::new(ts);
        if changed {
            self.republish(n);
        }
        Ok((ns_doc(n), created))
    }

    pub fn get_namespace(&self, name: &str) -> Result<Value, GridError> {
        self.namespace(name)
            .ok_or_else(|| GridError::not_found("namespace", name))
    }

    pub fn list_namespaces(&self) -> Vec<Value> {
        self.state
            .read()
            .expect("grid lock")
            .values()
            .map(ns_doc)
            .collect()
    }

    /// Deletes a namespace with all its topics and subscriptions; false if it did not exist.
    pub async fn delete_namespace(&self, sh: &Shared, name: &str) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        let mut ops = Vec::new();
        {
            let st = self.state.read().expect("grid lock");
            let Some(n) = st.get(&lc(name)) else {
                return Ok(false);
            };
            for (tk, t) in &n.topics {
                Self::topic_delete_ops(name, tk, t, &mut ops);
            }
            n.identity.delete_ops(name, &mut ops);
        }
        ops.push(Op::DeleteResource {
            path: ns_path(name),
        });
        sh.writer.submit(ops).await?;
        let n = self.state.write().expect("grid lock").remove(&lc(name));
        self.identity_tx.send_modify(|g| *g += 1);
        if let Some(n) = n {
            for t in n.topics.into_values() {
                Self::stop_topic(t);
            }
        }
        Ok(true)
    }

    pub fn keys(&self, ns: &str) -> Result<Keys, GridError> {
        let st = self.state.read().expect("grid lock");
        let n = st
            .get(&lc(ns))
            .ok_or_else(|| GridError::not_found("namespace", ns))?;
        Ok(n.keys())
    }

    /// Replaces `key1` or `key2` with a fresh key; the other stays valid.
    pub async fn regenerate_key(
        &self,
        sh: &Shared,
        ns: &str,
        which: &str,
    ) -> Result<Keys, GridError> {
        let idx = key_index(which)?;
        let _g = sh.mgmt.lock().await;
        let (name, props, mut keys) = {
            let st = self.state.read().expect("grid lock");
            let n = st
                .get(&lc(ns))
                .ok_or_else(|| GridError::not_found("namespace", ns))?;
            (n.name.clone(), n.props.clone(), n.keys.clone())
        };
        keys[idx] = generate_key()?;
        let doc = json!({"name": name, "properties": props, "keys": keys});
        sh.writer
            .submit(vec![Op::PutResource {
                path: ns_path(ns),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        if let Some(n) = self.state.write().expect("grid lock").get_mut(&lc(ns)) {
            n.keys = keys.clone();
        }
        let [key1, key2] = keys;
        Ok(Keys { key1, key2 })
    }

    // ---- topics ----

    fn topic_delete_ops(ns: &str, tk: &str, t: &Topic, ops: &mut Vec<Op>) {
        for (sk, s) in &t.subs {
            ops.push(Op::DropSubscription { sub: s.key });
            ops.push(Op::DeleteResource {
                path: sub_path(ns, tk, sk),
            });
        }
        ops.push(Op::DeleteResource {
            path: topic_path(ns, tk),
        });
    }

    fn stop_topic(t: Topic) {
        for s in t.subs.into_values() {
            s.target.shutdown();
        }
        t.addr.do_send(Shutdown);
    }

    pub async fn put_topic(
        &self,
        sh: &Shared,
        ns: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        crate::grid::resource::check_name("topic", name, 50).map_err(GridError::BadRequest)?;
        let (cfg, props) = resource::topic(props).map_err(GridError::BadRequest)?;
        let _g = sh.mgmt.lock().await;
        let existing = {
            let st = self.state.read().expect("grid lock");
            let n = st
                .get(&lc(ns))
                .ok_or_else(|| GridError::not_found("namespace", ns))?;
            n.topics.get(&lc(name)).map(|t| {
                let longest_ttl = t.subs.values().map(|s| s.cfg.queue.ttl_secs).max();
                (t.name.clone(), longest_ttl)
            })
        };
        if let Some((_, Some(ttl))) = &existing
            && *ttl > cfg.retention_days as u64 * 86_400
        {
            return Err(GridError::BadRequest(format!(
                "properties.eventRetentionInDays {} is shorter than the time to live of a subscription of this topic",
                cfg.retention_days
            )));
        }
        let display = existing
            .as_ref()
            .map_or_else(|| name.to_string(), |e| e.0.clone());
        let doc = json!({"name": display, "properties": props});
        sh.writer
            .submit(vec![Op::PutResource {
                path: topic_path(ns, name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let n = st
            .get_mut(&lc(ns))
            .ok_or_else(|| GridError::not_found("namespace", ns))?;
        let created = !n.topics.contains_key(&lc(name));
        let t = n.topics.entry(lc(name)).or_insert_with(|| Topic {
            name: display,
            cfg,
            props: Value::Null,
            addr: sh.start_topic(),
            subs: BTreeMap::new(),
        });
        t.cfg = cfg;
        t.props = props;
        Ok((topic_doc(&n.name, t), created))
    }

    pub fn get_topic(&self, ns: &str, name: &str) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let (n, t) = find_topic(&st, ns, name)?;
        Ok(topic_doc(&n.name, t))
    }

    pub fn list_topics(&self, ns: &str) -> Result<Vec<Value>, GridError> {
        let st = self.state.read().expect("grid lock");
        let n = st
            .get(&lc(ns))
            .ok_or_else(|| GridError::not_found("namespace", ns))?;
        Ok(n.topics.values().map(|t| topic_doc(&n.name, t)).collect())
    }

    pub async fn delete_topic(&self, sh: &Shared, ns: &str, name: &str) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        let mut ops = Vec::new();
        {
            let st = self.state.read().expect("grid lock");
            let n = st
                .get(&lc(ns))
                .ok_or_else(|| GridError::not_found("namespace", ns))?;
            let Some(t) = n.topics.get(&lc(name)) else {
                return Ok(false);
            };
            Self::topic_delete_ops(ns, &lc(name), t, &mut ops);
        }
        sh.writer.submit(ops).await?;
        let t = self
            .state
            .write()
            .expect("grid lock")
            .get_mut(&lc(ns))
            .and_then(|n| n.topics.remove(&lc(name)));
        if let Some(t) = t {
            Self::stop_topic(t);
        }
        Ok(true)
    }

    // ---- subscriptions ----

    pub async fn put_subscription(
        &self,
        sh: &Shared,
        ns: &str,
        topic: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        crate::grid::resource::check_name("event subscription", name, 64)
            .map_err(GridError::BadRequest)?;
        // A push endpoint passes its handshake before the management lock is taken.
        let (tcfg, old_endpoint) = {
            let st = self.state.read().expect("grid lock");
            let (_, t) = find_topic(&st, ns, topic)?;
            let old = t
                .subs
                .get(&lc(name))
                .and_then(|s| s.cfg.push.as_ref())
                .map(|p| p.delivery.endpoint.clone());
            (t.cfg, old)
        };
        let (cfg, props) = resource::subscription(props, tcfg, sh.cfg.limits, now_ms())
            .map_err(GridError::BadRequest)?;
        if let Some(pc) = &cfg.push
            && old_endpoint.as_deref() != Some(pc.delivery.endpoint.as_str())
        {
            sh.validate_cloudevents_endpoint(&pc.delivery.endpoint)
                .await?;
        }
        let _g = sh.mgmt.lock().await;
        let existing = {
            let st = self.state.read().expect("grid lock");
            let (_, t) = find_topic(&st, ns, topic)?;
            match t.subs.get(&lc(name)) {
                Some(s) if s.cfg.push.is_some() != cfg.push.is_some() => {
                    return Err(GridError::BadRequest(format!(
                        "The deliveryMode of event subscription '{name}' cannot be changed; delete it and create it again."
                    )));
                }
                Some(s) => Some((s.name.clone(), s.key)),
                None => None,
            }
        };
        let created = existing.is_none();
        let (display, key) = existing.unwrap_or_else(|| (name.to_string(), sh.new_key()));
        let doc = json!({"name": display, "key": key, "properties": props});
        sh.writer
            .submit(vec![Op::PutResource {
                path: sub_path(ns, topic, name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let addr = if created {
            Some(Self::start_sub(sh, key, cfg.clone(), Self::ns_names(ns, topic, &display))?.0)
        } else {
            None
        };
        let mut st = self.state.write().expect("grid lock");
        let n = st
            .get_mut(&lc(ns))
            .ok_or_else(|| GridError::not_found("namespace", ns))?;
        let t = n
            .topics
            .get_mut(&lc(topic))
            .ok_or_else(|| GridError::not_found("topic", topic))?;
        match addr {
            Some(addr) => {
                t.subs.insert(
                    lc(name),
                    Sub {
                        name: display,
                        key,
                        cfg,
                        props,
                        target: addr,
                    },
                );
            }
            None => {
                let s = t.subs.get_mut(&lc(name)).expect("existed under the lock");
                match (&s.target, &cfg.push) {
                    (Target::Push(a), Some(pc)) => a.do_send(ReconfigurePush(
                        pc.delivery.clone(),
                        sh.shard_for(&pc.delivery.endpoint),
                    )),
                    (Target::Queue(a), _) => a.do_send(ReconfigureQueue(cfg.queue.clone())),
                    (Target::Push(_), None) => {}
                }
                s.cfg = cfg;
                s.props = props;
            }
        }
        t.addr.do_send(SetRoutes(Self::routes(t)));
        let s = &t.subs[&lc(name)];
        Ok((sub_doc(&n.name, &t.name, s), created))
    }

    pub fn get_subscription(&self, ns: &str, topic: &str, name: &str) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let (n, t, s) = find_sub(&st, ns, topic, name)?;
        Ok(sub_doc(&n.name, &t.name, s))
    }

    pub fn list_subscriptions(&self, ns: &str, topic: &str) -> Result<Vec<Value>, GridError> {
        let st = self.state.read().expect("grid lock");
        let (n, t) = find_topic(&st, ns, topic)?;
        Ok(t.subs
            .values()
            .map(|s| sub_doc(&n.name, &t.name, s))
            .collect())
    }

    pub async fn delete_subscription(
        &self,
        sh: &Shared,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        self.delete_subscription_locked(sh, ns, topic, name).await
    }

    pub(super) async fn delete_subscription_locked(
        &self,
        sh: &Shared,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<bool, GridError> {
        let key = {
            let st = self.state.read().expect("grid lock");
            let (_, t) = find_topic(&st, ns, topic)?;
            match t.subs.get(&lc(name)) {
                Some(s) => s.key,
                None => return Ok(false),
            }
        };
        sh.writer
            .submit(vec![
                Op::DropSubscription { sub: key },
                Op::DeleteResource {
                    path: sub_path(ns, topic, name),
                },
            ])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        if let Some(t) = st
            .get_mut(&lc(ns))
            .and_then(|n| n.topics.get_mut(&lc(topic)))
        {
            if let Some(s) = t.subs.remove(&lc(name)) {
                s.target.shutdown();
            }
            t.addr.do_send(SetRoutes(Self::routes(t)));
        }
        Ok(true)
    }
}
