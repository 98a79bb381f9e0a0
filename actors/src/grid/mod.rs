//! The event grid's namespaces: resources, their actors, and the handle the HTTP edge uses.
//!
//! Ontology:
//! - **Namespace**: a name, ARM properties and two access keys. Holds topics.
//! - **Topic** ([`topic::NsTopic`], one actor each): takes publish batches, filters them per
//!   subscription, commits them, hands them on.
//! - **Subscription** (one actor each): in Queue delivery mode a [`crate::delivery::queue::QueueSub`], the pull
//!   queue; in Push mode a [`crate::delivery::push::PushSub`], the same webhook engine as the basic tier
//!   (CloudEvents handshake, namespace retry schedule).
//! - **Grid** ([`Grid`]): the registry of all three and the management operations on them. Every
//!   change is committed to the store before the registry shows it; at start-up the registry is
//!   rebuilt from the store. Management changes are serialised by one async lock; the data plane
//!   only takes a read lock for a lookup.
//!
//! Store paths: `namespaces/{ns}`, `namespaces/{ns}/topics/{t}`,
//! `namespaces/{ns}/topics/{t}/eventSubscriptions/{s}`, with names lowercased (Azure names are
//! case-insensitive); each document keeps the name as first given. Must never: expose a
//! resource before its commit, or keep an actor for a resource the store no longer has.

pub mod basic;
pub mod filter;
pub mod resource;
pub mod topic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};

use crate::delivery::queue::{QueueSub, ReconfigureQueue};
use crate::model::clock::now_ms;
use crate::store::{Op, StoreError, Writer};
use resource::{Limits, SubCfg, TopicCfg};
use topic::{NsTopic, Route, SetRoutes, Target};

/// Why a management or lookup call failed; the HTTP edge maps each to a status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GridError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Settings of the grid.
#[derive(Debug, Clone)]
pub struct GridConfig {
    pub limits: Limits,
    /// How often subscription actors check locks, delays, time to live and long polls.
    pub tick: Duration,
    /// Push (webhook) delivery.
    pub push: crate::delivery::PushConfig,
}

struct Sub {
    name: String,
    key: u64,
    cfg: SubCfg,
    props: Value,
    target: Target,
}

struct Topic {
    name: String,
    cfg: TopicCfg,
    props: Value,
    addr: Addr<NsTopic>,
    subs: BTreeMap<String, Sub>,
}

struct Namespace {
    name: String,
    props: Value,
    keys: [String; 2],
    topics: BTreeMap<String, Topic>,
}

impl Namespace {
    fn keys(&self) -> Keys {
        Keys {
            key1: self.keys[0].clone(),
            key2: self.keys[1].clone(),
        }
    }
}

struct Inner {
    writer: Writer,
    cfg: GridConfig,
    state: RwLock<BTreeMap<String, Namespace>>,
    mgmt: tokio::sync::Mutex<()>,
    next_key: AtomicU64,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    basic: RwLock<basic::BasicState>,
    shards: Vec<Addr<crate::delivery::shard::DeliveryShard>>,
}

/// Shared handle to the namespaces. Cheap to clone.
#[derive(Clone)]
pub struct Grid(Arc<Inner>);

/// Access keys of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub key1: String,
    pub key2: String,
}

/// A fresh access key; a store error when the OS has no randomness to give.
pub fn generate_key() -> Result<String, StoreError> {
    crate::model::keys::generate_key().map_err(|e| StoreError::Io(e.to_string()))
}

fn key_index(which: &str) -> Result<usize, GridError> {
    match which {
        "key1" => Ok(0),
        "key2" => Ok(1),
        other => Err(GridError::BadRequest(format!(
            "keyName must be 'key1' or 'key2', got '{other}'"
        ))),
    }
}

fn lc(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn ns_path(ns: &str) -> String {
    format!("namespaces/{}", lc(ns))
}
fn topic_path(ns: &str, t: &str) -> String {
    format!("namespaces/{}/topics/{}", lc(ns), lc(t))
}
fn sub_path(ns: &str, t: &str, s: &str) -> String {
    format!(
        "namespaces/{}/topics/{}/eventSubscriptions/{}",
        lc(ns),
        lc(t),
        lc(s)
    )
}

/// The ARM document a GET returns.
fn arm(id: String, name: &str, ty: &str, props: &Value) -> Value {
    json!({"id": id, "name": name, "type": ty, "properties": props})
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
        basic::resource::redact_destination(d);
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

fn not_found(what: &str) -> GridError {
    GridError::NotFound(format!("The {what} was not found."))
}

fn namespace_props(props: &Value) -> Result<Value, GridError> {
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
    Ok(p)
}

impl Grid {
    /// Rebuilds the registry from the store and starts every topic and subscription actor.
    /// Creates the `default` namespace the first time. Must run inside an actix system.
    pub async fn start(
        writer: Writer,
        arbiters: Vec<ArbiterHandle>,
        cfg: GridConfig,
    ) -> Result<Grid, StoreError> {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        let shards = (0..cfg.push.shards.max(1))
            .map(|i| {
                let c = cfg.push.clone();
                crate::delivery::shard::DeliveryShard::start_in_arbiter(
                    &arbiters[i % arbiters.len()],
                    move |_| crate::delivery::shard::DeliveryShard::new(c),
                )
            })
            .collect();
        let grid = Grid(Arc::new(Inner {
            writer,
            cfg,
            state: RwLock::new(BTreeMap::new()),
            mgmt: tokio::sync::Mutex::new(()),
            next_key: AtomicU64::new(1),
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            basic: RwLock::new(basic::BasicState::default()),
            shards,
        }));
        grid.load().await?;
        let g = grid.clone();
        actix::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                g.delete_expired_subscriptions().await;
                g.sweep_basic().await;
            }
        });
        Ok(grid)
    }

    fn arbiter(&self) -> ArbiterHandle {
        let n = self.0.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.0.arbiters.len();
        self.0.arbiters[n].clone()
    }

    /// Starts a subscription actor on what the store holds for `key`; also answers the highest
    /// sequence it holds (0 if none).
    fn start_sub(
        &self,
        key: u64,
        cfg: SubCfg,
        names: crate::delivery::push::Names,
    ) -> Result<(Target, u64), StoreError> {
        if let Some(pc) = cfg.push {
            let (addr, last) = self.start_push(key, pc, names)?;
            return Ok((Target::Push(addr), last));
        }
        let store = self.0.writer.store();
        let queued = store.queue(key)?;
        let last = queued.last().map_or(0, |q| q.seq);
        let dl = store.last_dead_letter(key)?;
        let (writer, tick) = (self.0.writer.clone(), self.0.cfg.tick);
        let addr = QueueSub::start_in_arbiter(&self.arbiter(), move |_| {
            QueueSub::new(key, cfg.queue, writer, tick, queued, dl)
        });
        Ok((Target::Queue(addr), last))
    }

    fn ns_names(ns: &str, topic: &str, sub: &str) -> crate::delivery::push::Names {
        crate::delivery::push::Names {
            subscription: sub.to_string(),
            source: format!(
                "namespaces/{}/{}",
                ns.to_ascii_uppercase(),
                topic.to_ascii_uppercase()
            ),
        }
    }

    fn routes(t: &Topic) -> Arc<Vec<Route>> {
        Arc::new(
            t.subs
                .values()
                .map(|s| Route {
                    key: s.key,
                    filter: s.cfg.filter.clone(),
                    target: s.target.clone(),
                })
                .collect(),
        )
    }

    async fn load(&self) -> Result<(), StoreError> {
        let store = self.0.writer.store().clone();
        let resources = store.resources()?;
        // Documents written by this server were valid under the limits then in force; accept
        // them even if the configured minimum lock has been raised since.
        let lenient = Limits { min_lock_secs: 1 };
        let bad = |path: &str, e: String| {
            StoreError::Refused(format!("stored resource {path} is invalid: {e}"))
        };
        let mut state = BTreeMap::new();
        let mut max_key = 0;
        let mut live_keys = Vec::new();
        let mut last_seq: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut basic_docs = Vec::new();
        for (path, json) in &resources {
            let doc: Value = serde_json::from_slice(json).map_err(|e| bad(path, e.to_string()))?;
            if path.starts_with("topics/") || path.starts_with("domains/") {
                basic_docs.push((path.clone(), doc));
                continue;
            }
            let name = doc["name"].as_str().unwrap_or_default().to_string();
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                ["namespaces", ns] => {
                    let keys = doc["keys"]
                        .as_array()
                        .and_then(|k| Some([k.first()?.as_str()?, k.get(1)?.as_str()?]))
                        .ok_or_else(|| bad(path, "no keys".into()))?;
                    state.insert(
                        ns.to_string(),
                        Namespace {
                            name,
                            props: doc["properties"].clone(),
                            keys: keys.map(str::to_string),
                            topics: BTreeMap::new(),
                        },
                    );
                }
                ["namespaces", ns, "topics", t] => {
                    let (cfg, props) =
                        resource::topic(&doc["properties"]).map_err(|e| bad(path, e))?;
                    let n = state
                        .get_mut(*ns)
                        .ok_or_else(|| bad(path, "its namespace is missing".into()))?;
                    let addr = {
                        let w = self.0.writer.clone();
                        NsTopic::start_in_arbiter(&self.arbiter(), move |_| {
                            NsTopic::new(w, Arc::new(Vec::new()), 1)
                        })
                    };
                    n.topics.insert(
                        t.to_string(),
                        Topic {
                            name,
                            cfg,
                            props,
                            addr,
                            subs: BTreeMap::new(),
                        },
                    );
                }
                ["namespaces", ns, "topics", t, "eventSubscriptions", s] => {
                    let topic = state
                        .get_mut(*ns)
                        .and_then(|n| n.topics.get_mut(*t))
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
                        self.start_sub(key, cfg.clone(), Self::ns_names(ns, t, &name))?;
                    let top = last_seq.entry((ns.to_string(), t.to_string())).or_insert(0);
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
                _ => return Err(bad(path, "unknown resource path".into())),
            }
        }
        // Topics continue their sequences above what their subscriptions hold.
        for (nk, n) in &state {
            for (tk, t) in &n.topics {
                let last = last_seq.get(&(nk.clone(), tk.clone())).copied();
                t.addr.do_send(SetRoutes(Self::routes(t)));
                t.addr.do_send(topic::SetNextSeq(last.unwrap_or(0) + 1));
            }
        }
        max_key = max_key.max(self.load_basic(&basic_docs, &mut live_keys)?);
        self.0.next_key.store(max_key + 1, Ordering::Relaxed);
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
            self.0.writer.submit(orphans).await?;
        }
        *self.0.state.write().expect("grid lock") = state;
        if store.meta("default_namespace")?.is_none() {
            if self.namespace("default").is_none() {
                self.put_namespace("default", &Value::Null)
                    .await
                    .map_err(|e| match e {
                        GridError::Store(s) => s,
                        other => StoreError::Refused(other.to_string()),
                    })?;
            }
            self.0
                .writer
                .submit(vec![Op::PutMeta {
                    key: "default_namespace".into(),
                    value: b"created".to_vec(),
                }])
                .await?;
        }
        Ok(())
    }

    fn namespace(&self, ns: &str) -> Option<Value> {
        let st = self.0.state.read().expect("grid lock");
        st.get(&lc(ns)).map(ns_doc)
    }

    // ---- namespaces ----

    /// Creates or updates a namespace; answers its document and whether it was created.
    pub async fn put_namespace(
        &self,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        resource::check_name("namespace", name, 50).map_err(GridError::BadRequest)?;
        let props = namespace_props(props)?;
        let _g = self.0.mgmt.lock().await;
        let existing = {
            let st = self.0.state.read().expect("grid lock");
            st.get(&lc(name)).map(|n| (n.name.clone(), n.keys.clone()))
        };
        let created = existing.is_none();
        let (display, keys) = match existing {
            Some(e) => e,
            None => (name.to_string(), [generate_key()?, generate_key()?]),
        };
        let doc = json!({"name": display, "properties": props, "keys": keys});
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: ns_path(name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.0.state.write().expect("grid lock");
        let n = st.entry(lc(name)).or_insert_with(|| Namespace {
            name: display,
            props: Value::Null,
            keys,
            topics: BTreeMap::new(),
        });
        n.props = props;
        Ok((ns_doc(n), created))
    }

    pub fn get_namespace(&self, name: &str) -> Result<Value, GridError> {
        self.namespace(name).ok_or_else(|| not_found("namespace"))
    }

    pub fn list_namespaces(&self) -> Vec<Value> {
        self.0
            .state
            .read()
            .expect("grid lock")
            .values()
            .map(ns_doc)
            .collect()
    }

    /// Deletes a namespace with all its topics and subscriptions; false if it did not exist.
    pub async fn delete_namespace(&self, name: &str) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        let mut ops = Vec::new();
        {
            let st = self.0.state.read().expect("grid lock");
            let Some(n) = st.get(&lc(name)) else {
                return Ok(false);
            };
            for (tk, t) in &n.topics {
                Self::topic_delete_ops(name, tk, t, &mut ops);
            }
        }
        ops.push(Op::DeleteResource {
            path: ns_path(name),
        });
        self.0.writer.submit(ops).await?;
        let n = self.0.state.write().expect("grid lock").remove(&lc(name));
        if let Some(n) = n {
            for t in n.topics.into_values() {
                Self::stop_topic(t);
            }
        }
        Ok(true)
    }

    pub fn keys(&self, ns: &str) -> Result<Keys, GridError> {
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        Ok(n.keys())
    }

    /// Replaces `key1` or `key2` with a fresh key; the other stays valid.
    pub async fn regenerate_key(&self, ns: &str, which: &str) -> Result<Keys, GridError> {
        let idx = key_index(which)?;
        let _g = self.0.mgmt.lock().await;
        let (name, props, mut keys) = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            (n.name.clone(), n.props.clone(), n.keys.clone())
        };
        keys[idx] = generate_key()?;
        let doc = json!({"name": name, "properties": props, "keys": keys});
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: ns_path(ns),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        if let Some(n) = self.0.state.write().expect("grid lock").get_mut(&lc(ns)) {
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
        t.addr.do_send(topic::Shutdown);
    }

    pub async fn put_topic(
        &self,
        ns: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        resource::check_name("topic", name, 50).map_err(GridError::BadRequest)?;
        let (cfg, props) = resource::topic(props).map_err(GridError::BadRequest)?;
        let _g = self.0.mgmt.lock().await;
        let existing = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
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
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: topic_path(ns, name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.0.state.write().expect("grid lock");
        let n = st.get_mut(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let created = !n.topics.contains_key(&lc(name));
        let t = n.topics.entry(lc(name)).or_insert_with(|| {
            let w = self.0.writer.clone();
            Topic {
                name: display,
                cfg,
                props: Value::Null,
                addr: NsTopic::start_in_arbiter(&self.arbiter(), move |_| {
                    NsTopic::new(w, Arc::new(Vec::new()), 1)
                }),
                subs: BTreeMap::new(),
            }
        });
        t.cfg = cfg;
        t.props = props;
        Ok((topic_doc(&n.name, t), created))
    }

    pub fn get_topic(&self, ns: &str, name: &str) -> Result<Value, GridError> {
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let t = n.topics.get(&lc(name)).ok_or_else(|| not_found("topic"))?;
        Ok(topic_doc(&n.name, t))
    }

    pub fn list_topics(&self, ns: &str) -> Result<Vec<Value>, GridError> {
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        Ok(n.topics.values().map(|t| topic_doc(&n.name, t)).collect())
    }

    pub async fn delete_topic(&self, ns: &str, name: &str) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        let mut ops = Vec::new();
        {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            let Some(t) = n.topics.get(&lc(name)) else {
                return Ok(false);
            };
            Self::topic_delete_ops(ns, &lc(name), t, &mut ops);
        }
        self.0.writer.submit(ops).await?;
        let t = self
            .0
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
        ns: &str,
        topic: &str,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        resource::check_name("event subscription", name, 64).map_err(GridError::BadRequest)?;
        // A push endpoint passes its handshake before the management lock is taken.
        let (tcfg, old_endpoint) = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
            let old = t
                .subs
                .get(&lc(name))
                .and_then(|s| s.cfg.push.as_ref())
                .map(|p| p.delivery.endpoint.clone());
            (t.cfg, old)
        };
        let (cfg, props) = resource::subscription(props, tcfg, self.0.cfg.limits, now_ms())
            .map_err(GridError::BadRequest)?;
        if let Some(pc) = &cfg.push
            && old_endpoint.as_deref() != Some(pc.delivery.endpoint.as_str())
        {
            self.validate_cloudevents_endpoint(&pc.delivery.endpoint)
                .await?;
        }
        let _g = self.0.mgmt.lock().await;
        let existing = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
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
        let (display, key) = existing.unwrap_or_else(|| {
            (
                name.to_string(),
                self.0.next_key.fetch_add(1, Ordering::Relaxed),
            )
        });
        let doc = json!({"name": display, "key": key, "properties": props});
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: sub_path(ns, topic, name),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let addr = if created {
            Some(
                self.start_sub(key, cfg.clone(), Self::ns_names(ns, topic, &display))?
                    .0,
            )
        } else {
            None
        };
        let mut st = self.0.state.write().expect("grid lock");
        let n = st.get_mut(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let t = n
            .topics
            .get_mut(&lc(topic))
            .ok_or_else(|| not_found("topic"))?;
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
                    (Target::Push(a), Some(pc)) => {
                        a.do_send(crate::delivery::push::ReconfigurePush(
                            pc.delivery.clone(),
                            self.shard_for(&pc.delivery.endpoint),
                        ))
                    }
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
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
        let s = t
            .subs
            .get(&lc(name))
            .ok_or_else(|| not_found("event subscription"))?;
        Ok(sub_doc(&n.name, &t.name, s))
    }

    pub fn list_subscriptions(&self, ns: &str, topic: &str) -> Result<Vec<Value>, GridError> {
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
        Ok(t.subs
            .values()
            .map(|s| sub_doc(&n.name, &t.name, s))
            .collect())
    }

    pub async fn delete_subscription(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        self.delete_subscription_locked(ns, topic, name).await
    }

    async fn delete_subscription_locked(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<bool, GridError> {
        let key = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
            match t.subs.get(&lc(name)) {
                Some(s) => s.key,
                None => return Ok(false),
            }
        };
        self.0
            .writer
            .submit(vec![
                Op::DropSubscription { sub: key },
                Op::DeleteResource {
                    path: sub_path(ns, topic, name),
                },
            ])
            .await?;
        let mut st = self.0.state.write().expect("grid lock");
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

    async fn delete_expired_subscriptions(&self) {
        let now = now_ms();
        let mut expired: Vec<(String, String, String)> = Vec::new();
        {
            let st = self.0.state.read().expect("grid lock");
            for (nk, n) in st.iter() {
                for (tk, t) in &n.topics {
                    for (sk, s) in &t.subs {
                        if s.cfg.expires_ms.is_some_and(|e| e <= now) {
                            expired.push((nk.clone(), tk.clone(), sk.clone()));
                        }
                    }
                }
            }
        }
        if expired.is_empty() {
            return;
        }
        let _g = self.0.mgmt.lock().await;
        for (ns, t, s) in expired {
            // A PUT may have extended or recreated it while we waited for the lock.
            let still = {
                let st = self.0.state.read().expect("grid lock");
                st.get(&ns)
                    .and_then(|n| n.topics.get(&t))
                    .and_then(|tp| tp.subs.get(&s))
                    .is_some_and(|sub| sub.cfg.expires_ms.is_some_and(|e| e <= now_ms()))
            };
            if !still {
                continue;
            }
            match self.delete_subscription_locked(&ns, &t, &s).await {
                Ok(_) => {
                    tracing::info!(namespace = %ns, topic = %t, subscription = %s, "expired subscription deleted")
                }
                Err(e) => tracing::warn!(error = %e, "could not delete an expired subscription"),
            }
        }
    }

    /// `Ok` while the store can commit; the error that stops it otherwise (for readiness).
    pub fn store_health(&self) -> Result<(), String> {
        self.0.writer.health()
    }

    /// Dead letters of a subscription: up to `limit` records after sequence `after`.
    pub fn dead_letters(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
        let key = {
            let st = self.0.state.read().expect("grid lock");
            let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
            let t = n.topics.get(&lc(topic)).ok_or_else(|| not_found("topic"))?;
            t.subs
                .get(&lc(name))
                .ok_or_else(|| not_found("event subscription"))?
                .key
        };
        Ok(self.0.writer.store().dead_letters(key, after, limit)?)
    }

    // ---- data plane lookups ----

    /// Runs `f` on a namespace topic, or says which part of the path is missing.
    fn with_topic<T>(
        &self,
        ns: &str,
        topic: &str,
        f: impl FnOnce(&Namespace, &Topic) -> Result<T, GridError>,
    ) -> Result<T, GridError> {
        let st = self.0.state.read().expect("grid lock");
        let n = st.get(&lc(ns)).ok_or_else(|| not_found("namespace"))?;
        let t = n.topics.get(&lc(topic)).ok_or_else(|| {
            GridError::NotFound(format!(
                "The topic '{topic}' was not found in namespace '{}'.",
                n.name
            ))
        })?;
        f(n, t)
    }

    /// The topic actor and its namespace's keys.
    pub fn topic_for_publish(
        &self,
        ns: &str,
        topic: &str,
    ) -> Result<(Addr<NsTopic>, Keys), GridError> {
        self.with_topic(ns, topic, |n, t| Ok((t.addr.clone(), n.keys())))
    }

    /// The subscription actor and its namespace's keys.
    pub fn subscription_for_pull(
        &self,
        ns: &str,
        topic: &str,
        name: &str,
    ) -> Result<(Addr<QueueSub>, Keys), GridError> {
        self.with_topic(ns, topic, |n, t| {
            let s = t.subs.get(&lc(name)).ok_or_else(|| {
                GridError::NotFound(format!(
                    "The event subscription '{name}' was not found on topic '{}'.",
                    t.name
                ))
            })?;
            match &s.target {
                Target::Queue(a) => Ok((a.clone(), n.keys())),
                Target::Push(_) => Err(GridError::BadRequest(format!(
                    "The event subscription '{name}' delivers in Push mode; only Queue subscriptions can be received from."
                ))),
            }
        })
    }
}
