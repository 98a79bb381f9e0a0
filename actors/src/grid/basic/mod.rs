//! The basic tier: custom topics, domains with their domain topics, and push (webhook) event
//! subscriptions under a topic, a domain or a domain topic.
//!
//! Ontology:
//! - **Source** ([`source::BasicSource`], one actor per custom topic and per domain): takes
//!   publish batches, filters and converts them per subscription, commits, hands them on.
//! - **Push subscription** ([`push::PushSub`], one actor per active subscription): pending
//!   events, retries, dead letters.
//! - **Delivery shards** ([`delivery::DeliveryShard`], a fixed number, endpoint → shard): the
//!   HTTP requests and each endpoint's health (probation).
//! - This module: the registry of sources, domain topics and subscriptions as `impl Grid`, and
//!   their management operations. As for namespaces, every change is committed before the
//!   registry shows it and management changes are serialised by the grid's one async lock.
//!
//! A new subscription is active only after its endpoint passed the validation handshake
//! (Event Grid schema: SubscriptionValidationEvent, answered synchronously or by a GET on the
//! `validationUrl`; CloudEvents: the OPTIONS abuse-protection handshake). The handshake runs
//! before the management lock is taken, so a slow endpoint never stalls other management calls.
//!
//! Store paths (names lowercased): `topics/{t}`, `topics/{t}/eventSubscriptions/{s}`,
//! `domains/{d}`, `domains/{d}/eventSubscriptions/{s}`, `domains/{d}/topics/{dt}`,
//! `domains/{d}/topics/{dt}/eventSubscriptions/{s}`. Must never route events to a subscription
//! whose endpoint has not been validated.

pub mod convert;
pub mod delivery;
pub mod push;
pub mod resource;
pub mod source;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use serde_json::{Value, json};

use super::{Grid, GridError, Keys, generate_key, lc, not_found};
use crate::store::{Op, StoreError, now_ms};
use delivery::{DeliveryShard, Handshake, Validate, Validation};
use push::{Names, PushSub};
use resource::{DeliverySchema, InputSchema, PushCfg, SourceCfg};
use source::{BasicSource, PushRoute, Routes, SetRoutes};

/// How the error of a refused validation handshake begins.
pub const HANDSHAKE_FAILED: &str = "Webhook validation handshake failed";

/// A custom topic or a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Topic,
    Domain,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::Topic => "topics",
            Kind::Domain => "domains",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Topic => "topic",
            Kind::Domain => "domain",
        }
    }
}

/// Where an event subscription hangs.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Topic(&'a str),
    Domain(&'a str),
    DomainTopic(&'a str, &'a str),
}

enum Activation {
    Active(Addr<PushSub>),
    Awaiting { token: String, until_ms: u64 },
    Failed(String),
}

impl Activation {
    fn state(&self) -> &'static str {
        match self {
            Activation::Active(_) => "Succeeded",
            Activation::Awaiting { .. } => "AwaitingManualAction",
            Activation::Failed(_) => "Failed",
        }
    }
}

struct PSub {
    name: String,
    key: u64,
    cfg: PushCfg,
    /// As stored (secrets included); GET shows [`resource::redacted`].
    props: Value,
    act: Activation,
}

struct Source {
    name: String,
    cfg: SourceCfg,
    props: Value,
    keys: [String; 2],
    addr: Addr<BasicSource>,
    subs: BTreeMap<String, PSub>,
}

struct DomainTopic {
    name: String,
    subs: BTreeMap<String, PSub>,
}

#[derive(Default)]
pub(super) struct BasicState {
    topics: BTreeMap<String, Source>,
    domains: BTreeMap<String, (Source, BTreeMap<String, DomainTopic>)>,
}

/// What the publish edge needs of a topic or domain.
pub struct PublishTarget {
    pub addr: Addr<BasicSource>,
    pub keys: Keys,
    pub cfg: SourceCfg,
    /// The ARM id events get as `topic` (custom topics); for domains, the domain's id prefix.
    pub topic_id: String,
    /// Domains: the domain topics that exist (lowercased).
    pub domain_topics: Option<std::collections::HashSet<String>>,
}

fn source_id(kind: Kind, name: &str) -> String {
    format!("/providers/Microsoft.EventGrid/{}/{name}", kind.plural())
}

fn scope_path(s: Scope<'_>) -> String {
    match s {
        Scope::Topic(t) => format!("topics/{}", lc(t)),
        Scope::Domain(d) => format!("domains/{}", lc(d)),
        Scope::DomainTopic(d, t) => format!("domains/{}/topics/{}", lc(d), lc(t)),
    }
}

fn sub_path(s: Scope<'_>, name: &str) -> String {
    format!("{}/eventSubscriptions/{}", scope_path(s), lc(name))
}

fn check_name(kind: &str, name: &str, max: usize) -> Result<(), GridError> {
    super::resource::check_name(kind, name, max).map_err(GridError::BadRequest)?;
    let reserved = ["microsoft", "eventgrid", "system"];
    if matches!(kind, "topic" | "domain") && reserved.iter().any(|r| lc(name).starts_with(r)) {
        return Err(GridError::BadRequest(format!(
            "The {kind} name '{name}' is invalid: it must not start with 'Microsoft', 'EventGrid' or 'System'."
        )));
    }
    Ok(())
}

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| StoreError::Io(format!("no OS randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A random UUID-shaped id (for events published without one).
pub fn random_id() -> String {
    uuid().unwrap_or_else(|_| format!("{:x}", now_ms()))
}

fn uuid() -> Result<String, StoreError> {
    let h = random_hex(16)?;
    Ok(format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    ))
}

impl BasicState {
    fn source(&self, kind: Kind, name: &str) -> Option<&Source> {
        match kind {
            Kind::Topic => self.topics.get(&lc(name)),
            Kind::Domain => self.domains.get(&lc(name)).map(|d| &d.0),
        }
    }

    /// The subscriptions of a scope, with the display id of the scope.
    fn subs(&self, s: Scope<'_>) -> Result<(&BTreeMap<String, PSub>, String), GridError> {
        match s {
            Scope::Topic(t) => {
                let src = self.topics.get(&lc(t)).ok_or_else(|| not_found("topic"))?;
                Ok((&src.subs, source_id(Kind::Topic, &src.name)))
            }
            Scope::Domain(d) => {
                let (src, _) = self
                    .domains
                    .get(&lc(d))
                    .ok_or_else(|| not_found("domain"))?;
                Ok((&src.subs, source_id(Kind::Domain, &src.name)))
            }
            Scope::DomainTopic(d, t) => {
                let (src, topics) = self
                    .domains
                    .get(&lc(d))
                    .ok_or_else(|| not_found("domain"))?;
                let dt = topics
                    .get(&lc(t))
                    .ok_or_else(|| not_found("domain topic"))?;
                Ok((
                    &dt.subs,
                    format!("{}/topics/{}", source_id(Kind::Domain, &src.name), dt.name),
                ))
            }
        }
    }

    fn subs_mut(&mut self, s: Scope<'_>) -> Option<&mut BTreeMap<String, PSub>> {
        match s {
            Scope::Topic(t) => self.topics.get_mut(&lc(t)).map(|x| &mut x.subs),
            Scope::Domain(d) => self.domains.get_mut(&lc(d)).map(|x| &mut x.0.subs),
            Scope::DomainTopic(d, t) => self
                .domains
                .get_mut(&lc(d))
                .and_then(|x| x.1.get_mut(&lc(t)))
                .map(|x| &mut x.subs),
        }
    }

    /// Pushes the current routes of the source `s` belongs to.
    fn refresh_routes(&self, s: Scope<'_>) {
        let active = |subs: &BTreeMap<String, PSub>| -> Vec<PushRoute> {
            subs.values()
                .filter_map(|p| match &p.act {
                    Activation::Active(addr) => Some(PushRoute {
                        key: p.key,
                        filter: p.cfg.filter.clone(),
                        schema: p.cfg.schema,
                        addr: addr.clone(),
                    }),
                    _ => None,
                })
                .collect()
        };
        match s {
            Scope::Topic(t) => {
                if let Some(src) = self.topics.get(&lc(t)) {
                    src.addr.do_send(SetRoutes(Arc::new(Routes {
                        all: active(&src.subs),
                        by_topic: Default::default(),
                    })));
                }
            }
            Scope::Domain(d) | Scope::DomainTopic(d, _) => {
                if let Some((src, topics)) = self.domains.get(&lc(d)) {
                    let by_topic = topics
                        .iter()
                        .map(|(k, dt)| (k.clone(), active(&dt.subs)))
                        .filter(|(_, v)| !v.is_empty())
                        .collect();
                    src.addr.do_send(SetRoutes(Arc::new(Routes {
                        all: active(&src.subs),
                        by_topic,
                    })));
                }
            }
        }
    }
}

fn source_doc(kind: Kind, s: &Source, public: &str) -> Value {
    let mut props = s.props.clone();
    props["endpoint"] = json!(format!("{public}/{}/{}/api/events", kind.plural(), s.name));
    json!({
        "id": source_id(kind, &s.name),
        "name": s.name,
        "type": format!("Microsoft.EventGrid/{}", kind.plural()),
        "properties": props,
    })
}

fn sub_doc(scope_id: &str, p: &PSub) -> Value {
    let mut props = resource::redacted(&p.props, p.act.state());
    props["topic"] = json!(scope_id);
    json!({
        "id": format!("{scope_id}/providers/Microsoft.EventGrid/eventSubscriptions/{}", p.name),
        "name": p.name,
        "type": "Microsoft.EventGrid/eventSubscriptions",
        "properties": props,
    })
}

/// The stored document of a subscription; `act` None = active.
fn stored_doc(name: &str, key: u64, props: &Value, act: Option<&Activation>) -> Vec<u8> {
    let state = act.map_or("Succeeded", Activation::state);
    let mut doc = json!({"name": name, "key": key, "properties": props, "state": state});
    match act {
        Some(Activation::Awaiting { token, until_ms }) => {
            doc["token"] = json!(token);
            doc["until"] = json!(until_ms);
        }
        Some(Activation::Failed(why)) => doc["reason"] = json!(why),
        _ => {}
    }
    doc.to_string().into_bytes()
}

fn stop_subs(subs: BTreeMap<String, PSub>) {
    for p in subs.into_values() {
        if let Activation::Active(a) = p.act {
            a.do_send(push::Shutdown);
        }
    }
}

fn sub_delete_ops(prefix: &str, subs: &BTreeMap<String, PSub>, ops: &mut Vec<Op>) {
    for (k, p) in subs {
        ops.push(Op::DropSubscription { sub: p.key });
        ops.push(Op::DeleteResource {
            path: format!("{prefix}/eventSubscriptions/{k}"),
        });
    }
}

impl Grid {
    fn public_url(&self) -> &str {
        self.0.cfg.push.public_url.trim_end_matches('/')
    }

    pub(super) fn shard_for(&self, url: &str) -> Addr<DeliveryShard> {
        let n = delivery::shard_of(url, self.0.shards.len());
        self.0.shards[n].clone()
    }

    fn new_source(&self, input: InputSchema) -> Addr<BasicSource> {
        let w = self.0.writer.clone();
        BasicSource::start_in_arbiter(&self.arbiter(), move |_| BasicSource::new(w, input))
    }

    /// Starts the actor of an active subscription on what the store holds for it; answers the
    /// highest sequence it holds.
    pub(super) fn start_push(
        &self,
        key: u64,
        cfg: PushCfg,
        names: Names,
    ) -> Result<(Addr<PushSub>, u64), StoreError> {
        let store = self.0.writer.store();
        let queued = store.queue(key)?;
        let last = queued.last().map_or(0, |q| q.seq);
        let dl = store.last_dead_letter(key)?;
        let shard = self.shard_for(&cfg.endpoint);
        let (writer, tick, push) = (
            self.0.writer.clone(),
            self.0.cfg.tick,
            self.0.cfg.push.clone(),
        );
        let addr = PushSub::start_in_arbiter(&self.arbiter(), move |_| {
            PushSub::new(key, cfg, push, names, writer, shard, tick, queued, dl)
        });
        Ok((addr, last))
    }

    fn names(scope: Scope<'_>, sub: &str) -> Names {
        Names {
            subscription: sub.to_string(),
            source: match scope {
                Scope::Topic(t) => t.to_string(),
                Scope::Domain(d) => d.to_string(),
                Scope::DomainTopic(d, t) => format!("{d}/{t}"),
            },
        }
    }

    /// The CloudEvents abuse-protection handshake (namespace push subscriptions).
    pub(super) async fn validate_cloudevents_endpoint(&self, url: &str) -> Result<(), GridError> {
        let v = self
            .shard_for(url)
            .send(Validate {
                url: url.to_string(),
                handshake: Handshake::CloudEvents,
            })
            .await
            .map_err(|_| GridError::Store(StoreError::Closed))?;
        match v {
            Ok(_) => Ok(()),
            Err(why) => Err(GridError::BadRequest(format!(
                "{HANDSHAKE_FAILED} for {}: {why}.",
                url.split('?').next().unwrap_or_default()
            ))),
        }
    }

    // ---- loading ----

    /// Rebuilds the basic tier from its store documents (called by `load`). Collects the live
    /// subscription keys; answers the highest key seen.
    pub(super) fn load_basic(
        &self,
        docs: &[(String, Value)],
        live_keys: &mut Vec<u64>,
    ) -> Result<u64, StoreError> {
        let bad = |path: &str, e: String| {
            StoreError::Refused(format!("stored resource {path} is invalid: {e}"))
        };
        let mut st = BasicState::default();
        let mut max_key = 0;
        let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
        let mut subs: Vec<(&str, Vec<&str>, &Value)> = Vec::new();
        for (path, doc) in docs {
            let parts: Vec<&str> = path.split('/').collect();
            let name = doc["name"].as_str().unwrap_or_default().to_string();
            match parts.as_slice() {
                [kind @ ("topics" | "domains"), n] => {
                    let k = if *kind == "topics" {
                        Kind::Topic
                    } else {
                        Kind::Domain
                    };
                    let (cfg, props) = resource::source(&doc["properties"], k == Kind::Domain)
                        .map_err(|e| bad(path, e))?;
                    let keys = doc["keys"]
                        .as_array()
                        .and_then(|k| {
                            Some([
                                k.first()?.as_str()?.to_string(),
                                k.get(1)?.as_str()?.to_string(),
                            ])
                        })
                        .ok_or_else(|| bad(path, "no keys".into()))?;
                    let src = Source {
                        name,
                        addr: self.new_source(cfg.input),
                        cfg,
                        props,
                        keys,
                        subs: BTreeMap::new(),
                    };
                    match k {
                        Kind::Topic => {
                            st.topics.insert(n.to_string(), src);
                        }
                        Kind::Domain => {
                            st.domains.insert(n.to_string(), (src, BTreeMap::new()));
                        }
                    }
                }
                ["domains", d, "topics", t] => {
                    let dom = st
                        .domains
                        .get_mut(*d)
                        .ok_or_else(|| bad(path, "its domain is missing".into()))?;
                    dom.1.insert(
                        t.to_string(),
                        DomainTopic {
                            name,
                            subs: BTreeMap::new(),
                        },
                    );
                }
                _ if parts.len() >= 4 && parts[parts.len() - 2] == "eventSubscriptions" => {
                    subs.push((path.as_str(), parts, doc));
                }
                _ => return Err(bad(path, "unknown resource path".into())),
            }
        }
        for (path, parts, doc) in subs {
            let scope = match parts.as_slice() {
                ["topics", t, _, _] => Scope::Topic(t),
                ["domains", d, _, _] => Scope::Domain(d),
                ["domains", d, "topics", t, _, _] => Scope::DomainTopic(d, t),
                _ => return Err(bad(path, "unknown resource path".into())),
            };
            let src_key = match scope {
                Scope::Topic(t) => format!("topics/{t}"),
                Scope::Domain(d) | Scope::DomainTopic(d, _) => format!("domains/{d}"),
            };
            let input = match scope {
                Scope::Topic(t) => st.topics.get(t).map(|s| s.cfg.input),
                Scope::Domain(d) | Scope::DomainTopic(d, _) => {
                    st.domains.get(d).map(|s| s.0.cfg.input)
                }
            }
            .ok_or_else(|| bad(path, "its topic or domain is missing".into()))?;
            // Stored documents were valid when written; expiry is the sweep's job.
            let (cfg, _) =
                resource::subscription(&doc["properties"], input, 0).map_err(|e| bad(path, e))?;
            let key = doc["key"]
                .as_u64()
                .ok_or_else(|| bad(path, "no key".into()))?;
            let name = doc["name"].as_str().unwrap_or_default().to_string();
            max_key = max_key.max(key);
            live_keys.push(key);
            // Entries of a subscription waiting for validation stay in the store; the source
            // must continue above them too, or a later activation would reuse their sequences.
            let held = self
                .0
                .writer
                .store()
                .queue(key)?
                .last()
                .map_or(0, |q| q.seq);
            let top = last_seq.entry(src_key.clone()).or_insert(0);
            *top = (*top).max(held);
            let act = match doc["state"].as_str() {
                Some("AwaitingManualAction") => Activation::Awaiting {
                    token: doc["token"].as_str().unwrap_or_default().to_string(),
                    until_ms: doc["until"].as_u64().unwrap_or(0),
                },
                Some("Failed") => {
                    Activation::Failed(doc["reason"].as_str().unwrap_or_default().to_string())
                }
                _ => {
                    let (addr, _) = self.start_push(key, cfg.clone(), Self::names(scope, &name))?;
                    Activation::Active(addr)
                }
            };
            let p = PSub {
                name,
                key,
                cfg,
                props: doc["properties"].clone(),
                act,
            };
            st.subs_mut(scope)
                .ok_or_else(|| bad(path, "its domain topic is missing".into()))?
                .insert(parts[parts.len() - 1].to_string(), p);
        }
        for (k, src) in &st.topics {
            st.refresh_routes(Scope::Topic(k));
            let last = last_seq.get(&format!("topics/{k}")).copied().unwrap_or(0);
            src.addr.do_send(source::SetNextSeq(last + 1));
        }
        for (k, (src, _)) in &st.domains {
            st.refresh_routes(Scope::Domain(k));
            let last = last_seq.get(&format!("domains/{k}")).copied().unwrap_or(0);
            src.addr.do_send(source::SetNextSeq(last + 1));
        }
        *self.0.basic.write().expect("grid lock") = st;
        Ok(max_key)
    }

    // ---- topics and domains ----

    pub async fn put_source(
        &self,
        kind: Kind,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        check_name(kind.what(), name, 50)?;
        let (cfg, props) =
            resource::source(props, kind == Kind::Domain).map_err(GridError::BadRequest)?;
        let _g = self.0.mgmt.lock().await;
        let existing = {
            let st = self.0.basic.read().expect("grid lock");
            st.source(kind, name)
                .map(|s| (s.name.clone(), s.keys.clone(), s.cfg.input))
        };
        if let Some((_, _, input)) = &existing
            && *input != cfg.input
        {
            return Err(GridError::BadRequest(format!(
                "properties.inputSchema cannot be changed from '{}' to '{}' on an existing {}",
                input.name(),
                cfg.input.name(),
                kind.what()
            )));
        }
        let created = existing.is_none();
        let (display, keys) = match existing {
            Some((n, k, _)) => (n, k),
            None => (name.to_string(), [generate_key()?, generate_key()?]),
        };
        let doc = json!({"name": display, "properties": props, "keys": keys});
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: format!("{}/{}", kind.plural(), lc(name)),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let new = || Source {
            name: display.clone(),
            addr: self.new_source(cfg.input),
            cfg: cfg.clone(),
            props: Value::Null,
            keys: keys.clone(),
            subs: BTreeMap::new(),
        };
        let src = match kind {
            Kind::Topic => st.topics.entry(lc(name)).or_insert_with(new),
            Kind::Domain => {
                &mut st
                    .domains
                    .entry(lc(name))
                    .or_insert_with(|| (new(), BTreeMap::new()))
                    .0
            }
        };
        src.cfg = cfg;
        src.props = props;
        Ok((source_doc(kind, src, self.public_url()), created))
    }

    pub fn get_source(&self, kind: Kind, name: &str) -> Result<Value, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let s = st
            .source(kind, name)
            .ok_or_else(|| not_found(kind.what()))?;
        Ok(source_doc(kind, s, self.public_url()))
    }

    pub fn list_sources(&self, kind: Kind) -> Vec<Value> {
        let st = self.0.basic.read().expect("grid lock");
        match kind {
            Kind::Topic => st
                .topics
                .values()
                .map(|s| source_doc(kind, s, self.public_url()))
                .collect(),
            Kind::Domain => st
                .domains
                .values()
                .map(|s| source_doc(kind, &s.0, self.public_url()))
                .collect(),
        }
    }

    pub async fn delete_source(&self, kind: Kind, name: &str) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        let mut ops = Vec::new();
        let prefix = format!("{}/{}", kind.plural(), lc(name));
        {
            let st = self.0.basic.read().expect("grid lock");
            let Some(src) = st.source(kind, name) else {
                return Ok(false);
            };
            sub_delete_ops(&prefix, &src.subs, &mut ops);
            if let Some((_, topics)) = st.domains.get(&lc(name)).filter(|_| kind == Kind::Domain) {
                for (k, dt) in topics {
                    let p = format!("{prefix}/topics/{k}");
                    sub_delete_ops(&p, &dt.subs, &mut ops);
                    ops.push(Op::DeleteResource { path: p });
                }
            }
        }
        ops.push(Op::DeleteResource { path: prefix });
        self.0.writer.submit(ops).await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let removed = match kind {
            Kind::Topic => st.topics.remove(&lc(name)).map(|s| (s, BTreeMap::new())),
            Kind::Domain => st.domains.remove(&lc(name)),
        };
        if let Some((src, topics)) = removed {
            stop_subs(src.subs);
            for dt in topics.into_values() {
                stop_subs(dt.subs);
            }
            src.addr.do_send(source::Shutdown);
        }
        Ok(true)
    }

    pub fn source_keys(&self, kind: Kind, name: &str) -> Result<Keys, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let s = st
            .source(kind, name)
            .ok_or_else(|| not_found(kind.what()))?;
        Ok(Keys {
            key1: s.keys[0].clone(),
            key2: s.keys[1].clone(),
        })
    }

    pub async fn regenerate_source_key(
        &self,
        kind: Kind,
        name: &str,
        which: &str,
    ) -> Result<Keys, GridError> {
        let idx = super::key_index(which)?;
        let _g = self.0.mgmt.lock().await;
        let (display, props, mut keys) = {
            let st = self.0.basic.read().expect("grid lock");
            let s = st
                .source(kind, name)
                .ok_or_else(|| not_found(kind.what()))?;
            (s.name.clone(), s.props.clone(), s.keys.clone())
        };
        keys[idx] = generate_key()?;
        let doc = json!({"name": display, "properties": props, "keys": keys});
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: format!("{}/{}", kind.plural(), lc(name)),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let src = match kind {
            Kind::Topic => st.topics.get_mut(&lc(name)),
            Kind::Domain => st.domains.get_mut(&lc(name)).map(|d| &mut d.0),
        };
        if let Some(s) = src {
            s.keys = keys.clone();
        }
        let [key1, key2] = keys;
        Ok(Keys { key1, key2 })
    }

    // ---- domain topics ----

    fn domain_topic_doc(d: &str, dt: &DomainTopic) -> Value {
        json!({
            "id": format!("{}/topics/{}", source_id(Kind::Domain, d), dt.name),
            "name": dt.name,
            "type": "Microsoft.EventGrid/domains/topics",
            "properties": {"provisioningState": "Succeeded"},
        })
    }

    /// Creates domain topics that do not exist yet (no-op for those that do), under the lock.
    async fn create_domain_topics_locked(
        &self,
        d: &str,
        names: &[String],
    ) -> Result<(), GridError> {
        let missing: Vec<String> = {
            let st = self.0.basic.read().expect("grid lock");
            let (_, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
            let mut m: Vec<String> = names
                .iter()
                .filter(|n| !topics.contains_key(&lc(n)))
                .cloned()
                .collect();
            m.sort_by_key(|n| lc(n));
            m.dedup_by_key(|n| lc(n));
            m
        };
        if missing.is_empty() {
            return Ok(());
        }
        for n in &missing {
            check_name("domain topic", n, 50)?;
        }
        let ops = missing
            .iter()
            .map(|n| Op::PutResource {
                path: scope_path(Scope::DomainTopic(d, n)),
                json: json!({"name": n}).to_string().into_bytes(),
            })
            .collect();
        self.0.writer.submit(ops).await?;
        let mut st = self.0.basic.write().expect("grid lock");
        if let Some((_, topics)) = st.domains.get_mut(&lc(d)) {
            for n in missing {
                topics.entry(lc(&n)).or_insert(DomainTopic {
                    name: n,
                    subs: BTreeMap::new(),
                });
            }
        }
        Ok(())
    }

    /// Domain topics named by published events are created before the events are accepted.
    pub async fn ensure_domain_topics(&self, d: &str, names: &[String]) -> Result<(), GridError> {
        let _g = self.0.mgmt.lock().await;
        self.create_domain_topics_locked(d, names).await
    }

    pub async fn put_domain_topic(&self, d: &str, t: &str) -> Result<(Value, bool), GridError> {
        let _g = self.0.mgmt.lock().await;
        let existed = {
            let st = self.0.basic.read().expect("grid lock");
            let (_, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
            topics.contains_key(&lc(t))
        };
        self.create_domain_topics_locked(d, &[t.to_string()])
            .await?;
        Ok((self.get_domain_topic(d, t)?, !existed))
    }

    pub fn get_domain_topic(&self, d: &str, t: &str) -> Result<Value, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let (src, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
        let dt = topics
            .get(&lc(t))
            .ok_or_else(|| not_found("domain topic"))?;
        Ok(Self::domain_topic_doc(&src.name, dt))
    }

    pub fn list_domain_topics(&self, d: &str) -> Result<Vec<Value>, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let (src, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
        Ok(topics
            .values()
            .map(|dt| Self::domain_topic_doc(&src.name, dt))
            .collect())
    }

    pub async fn delete_domain_topic(&self, d: &str, t: &str) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        self.delete_domain_topic_locked(d, t).await
    }

    async fn delete_domain_topic_locked(&self, d: &str, t: &str) -> Result<bool, GridError> {
        let prefix = scope_path(Scope::DomainTopic(d, t));
        let mut ops = Vec::new();
        {
            let st = self.0.basic.read().expect("grid lock");
            let (_, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
            let Some(dt) = topics.get(&lc(t)) else {
                return Ok(false);
            };
            sub_delete_ops(&prefix, &dt.subs, &mut ops);
        }
        ops.push(Op::DeleteResource { path: prefix });
        self.0.writer.submit(ops).await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let removed = st.domains.get_mut(&lc(d)).and_then(|x| x.1.remove(&lc(t)));
        if let Some(dt) = removed {
            stop_subs(dt.subs);
        }
        st.refresh_routes(Scope::Domain(d));
        Ok(true)
    }

    // ---- event subscriptions ----

    fn source_input(&self, scope: Scope<'_>) -> Result<(InputSchema, bool), GridError> {
        let st = self.0.basic.read().expect("grid lock");
        match scope {
            Scope::Topic(t) => st
                .topics
                .get(&lc(t))
                .map(|s| (s.cfg.input, false))
                .ok_or_else(|| not_found("topic")),
            Scope::Domain(d) => st
                .domains
                .get(&lc(d))
                .map(|s| (s.0.cfg.input, false))
                .ok_or_else(|| not_found("domain")),
            Scope::DomainTopic(d, t) => {
                let (src, topics) = st.domains.get(&lc(d)).ok_or_else(|| not_found("domain"))?;
                let exists = topics.contains_key(&lc(t));
                let auto = src.props["autoCreateTopicWithFirstSubscription"]
                    .as_bool()
                    .unwrap_or(true);
                if !exists && !auto {
                    return Err(not_found("domain topic"));
                }
                Ok((src.cfg.input, !exists))
            }
        }
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
        check_name("event subscription", name, 64)?;
        let (input, _) = self.source_input(scope)?;
        let (cfg, stored) =
            resource::subscription(props, input, now_ms()).map_err(GridError::BadRequest)?;
        let previous = {
            let st = self.0.basic.read().expect("grid lock");
            st.subs(scope).ok().and_then(|(subs, _)| {
                subs.get(&lc(name)).map(|p| {
                    (
                        p.key,
                        p.cfg.endpoint.clone(),
                        p.cfg.schema,
                        p.name.clone(),
                        matches!(p.act, Activation::Active(_)),
                    )
                })
            })
        };
        if let Some((_, _, schema, _, _)) = &previous
            && *schema != cfg.schema
        {
            return Err(GridError::BadRequest(format!(
                "properties.eventDeliverySchema cannot be changed from '{}' to '{}' on an existing event subscription; delete it and create it again.",
                schema.name(),
                cfg.schema.name()
            )));
        }
        let needs_handshake = match &previous {
            None => true,
            Some((_, url, schema, _, active)) => {
                !active || *url != cfg.endpoint || *schema != cfg.schema
            }
        };
        let key = previous
            .as_ref()
            .map_or_else(|| self.0.next_key.fetch_add(1, Ordering::Relaxed), |p| p.0);
        let mut act_token = None;
        if needs_handshake {
            let token = random_hex(16)?;
            let handshake = match cfg.schema {
                DeliverySchema::CloudEvents => Handshake::CloudEvents,
                _ => Handshake::EventGrid {
                    code: uuid()?,
                    validation_url: format!(
                        "{}/eventsubscriptions/{name}/validate?id={key}&token={token}&apiVersion=2018-05-01-preview",
                        self.public_url()
                    ),
                    subscription: name.to_string(),
                },
            };
            let v = self
                .shard_for(&cfg.endpoint)
                .send(Validate {
                    url: cfg.endpoint.clone(),
                    handshake,
                })
                .await
                .map_err(|_| GridError::Store(StoreError::Closed))?;
            match v {
                Ok(Validation::Validated) => {}
                Ok(Validation::AwaitingManual) => act_token = Some(token),
                Err(why) => {
                    return Err(GridError::BadRequest(format!(
                        "{HANDSHAKE_FAILED} for {}: {why}. The attempt to validate the provided endpoint failed; see https://aka.ms/esvalidation.",
                        cfg.endpoint.split('?').next().unwrap_or_default()
                    )));
                }
            }
        }
        let _g = self.0.mgmt.lock().await;
        let (_, create_dt) = self.source_input(scope)?;
        if let (true, Scope::DomainTopic(d, t)) = (create_dt, scope) {
            self.create_domain_topics_locked(d, &[t.to_string()])
                .await?;
        }
        let existing = {
            let st = self.0.basic.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            subs.get(&lc(name)).map(|p| (p.name.clone(), p.key))
        };
        if existing.as_ref().is_some_and(|e| e.1 != key)
            || (existing.is_none() && previous.is_some())
        {
            return Err(GridError::BadRequest(format!(
                "The event subscription '{name}' was changed by another request meanwhile; try again."
            )));
        }
        let created = existing.is_none();
        let display = existing.map_or_else(|| name.to_string(), |e| e.0);
        let awaiting = act_token.map(|token| Activation::Awaiting {
            token,
            until_ms: now_ms() + self.0.cfg.push.manual_validation.as_millis() as u64,
        });
        let doc = stored_doc(&display, key, &stored, awaiting.as_ref());
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: sub_path(scope, name),
                json: doc,
            }])
            .await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let running = st
            .subs_mut(scope)
            .and_then(|subs| subs.remove(&lc(name)))
            .and_then(|old| match old.act {
                Activation::Active(a) => Some(a),
                _ => None,
            });
        let act = match (awaiting, running) {
            (Some(a), running) => {
                if let Some(r) = running {
                    r.do_send(push::Shutdown);
                }
                a
            }
            (None, Some(r)) => {
                r.do_send(push::Reconfigure(
                    cfg.clone(),
                    self.shard_for(&cfg.endpoint),
                ));
                Activation::Active(r)
            }
            (None, None) => Activation::Active(
                self.start_push(key, cfg.clone(), Self::names(scope, &display))?
                    .0,
            ),
        };
        let p = PSub {
            name: display,
            key,
            cfg,
            props: stored,
            act,
        };
        let subs = st.subs_mut(scope).ok_or_else(|| not_found("topic"))?;
        subs.insert(lc(name), p);
        st.refresh_routes(scope);
        let (subs, id) = st.subs(scope)?;
        Ok((sub_doc(&id, &subs[&lc(name)]), created))
    }

    pub fn get_push_subscription(&self, scope: Scope<'_>, name: &str) -> Result<Value, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let (subs, id) = st.subs(scope)?;
        let p = subs
            .get(&lc(name))
            .ok_or_else(|| not_found("event subscription"))?;
        Ok(sub_doc(&id, p))
    }

    pub fn list_push_subscriptions(&self, scope: Scope<'_>) -> Result<Vec<Value>, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let (subs, id) = st.subs(scope)?;
        Ok(subs.values().map(|p| sub_doc(&id, p)).collect())
    }

    pub async fn delete_push_subscription(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = self.0.mgmt.lock().await;
        self.delete_push_subscription_locked(scope, name).await
    }

    async fn delete_push_subscription_locked(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<bool, GridError> {
        let (key, last_of_topic) = {
            let st = self.0.basic.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            let Some(p) = subs.get(&lc(name)) else {
                return Ok(false);
            };
            let auto_delete = match scope {
                Scope::DomainTopic(d, _) => st.domains.get(&lc(d)).is_some_and(|x| {
                    x.0.props["autoDeleteTopicWithLastSubscription"]
                        .as_bool()
                        .unwrap_or(true)
                }),
                _ => false,
            };
            (p.key, auto_delete && subs.len() == 1)
        };
        self.0
            .writer
            .submit(vec![
                Op::DropSubscription { sub: key },
                Op::DeleteResource {
                    path: sub_path(scope, name),
                },
            ])
            .await?;
        {
            let mut st = self.0.basic.write().expect("grid lock");
            if let Some(p) = st.subs_mut(scope).and_then(|s| s.remove(&lc(name)))
                && let Activation::Active(a) = p.act
            {
                a.do_send(push::Shutdown);
            }
            st.refresh_routes(scope);
        }
        if let (true, Scope::DomainTopic(d, t)) = (last_of_topic, scope) {
            self.delete_domain_topic_locked(d, t).await?;
        }
        Ok(true)
    }

    /// The GET on a subscription's `validationUrl`: activates a subscription waiting for it.
    pub async fn complete_validation(&self, key: u64, token: &str) -> Result<(), GridError> {
        let _g = self.0.mgmt.lock().await;
        let found = {
            let st = self.0.basic.read().expect("grid lock");
            let mut found = None;
            st.for_each_sub(|scope, sk, p| {
                if p.key == key {
                    found = Some((
                        scope.clone(),
                        sk.to_string(),
                        match &p.act {
                            Activation::Awaiting { token: t, until_ms } => {
                                Some((t.clone(), *until_ms))
                            }
                            _ => None,
                        },
                    ));
                }
            });
            found
        };
        let Some((scope, sk, Some((expected, until_ms)))) = found else {
            return Err(GridError::NotFound(
                "No event subscription is waiting for this validation.".into(),
            ));
        };
        if !super::ct_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(GridError::BadRequest(
                "The validation token is not valid.".into(),
            ));
        }
        if until_ms < now_ms() {
            return Err(GridError::BadRequest(
                "The validation URL has expired.".into(),
            ));
        }
        let scope = scope.as_scope();
        let doc = {
            let st = self.0.basic.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            let p = &subs[&sk];
            stored_doc(&p.name, key, &p.props, None)
        };
        self.0
            .writer
            .submit(vec![Op::PutResource {
                path: sub_path(scope, &sk),
                json: doc,
            }])
            .await?;
        let mut st = self.0.basic.write().expect("grid lock");
        let Some(p) = st.subs_mut(scope).and_then(|s| s.get_mut(&sk)) else {
            return Ok(());
        };
        let (addr, _) = self.start_push(key, p.cfg.clone(), Self::names(scope, &p.name))?;
        p.act = Activation::Active(addr);
        st.refresh_routes(scope);
        Ok(())
    }

    /// Deletes expired subscriptions and fails those whose validation URL was never visited.
    pub(super) async fn sweep_basic(&self) {
        let now = now_ms();
        let mut expired = Vec::new();
        let mut lapsed = Vec::new();
        {
            let st = self.0.basic.read().expect("grid lock");
            st.for_each_sub(|scope, sk, p| {
                if p.cfg.expires_ms.is_some_and(|e| e <= now) {
                    expired.push((scope.clone(), sk.to_string()));
                } else if let Activation::Awaiting { until_ms, .. } = p.act
                    && until_ms <= now
                {
                    lapsed.push((scope.clone(), sk.to_string()));
                }
            });
        }
        if expired.is_empty() && lapsed.is_empty() {
            return;
        }
        let _g = self.0.mgmt.lock().await;
        for (scope, sk) in expired {
            // A PUT may have extended or recreated it while we waited for the lock.
            let still = {
                let st = self.0.basic.read().expect("grid lock");
                st.subs(scope.as_scope())
                    .ok()
                    .and_then(|(subs, _)| subs.get(&sk))
                    .is_some_and(|p| p.cfg.expires_ms.is_some_and(|e| e <= now_ms()))
            };
            if !still {
                continue;
            }
            if let Err(e) = self
                .delete_push_subscription_locked(scope.as_scope(), &sk)
                .await
            {
                tracing::warn!(error = %e, "could not delete an expired event subscription");
            } else {
                tracing::info!(subscription = %sk, "expired event subscription deleted");
            }
        }
        for (scope, sk) in lapsed {
            let scope = scope.as_scope();
            let doc = {
                let mut st = self.0.basic.write().expect("grid lock");
                let Some(p) = st.subs_mut(scope).and_then(|s| s.get_mut(&sk)) else {
                    continue;
                };
                if !matches!(p.act, Activation::Awaiting { until_ms, .. } if until_ms <= now_ms()) {
                    continue;
                }
                p.act = Activation::Failed("The validation URL was not visited in time.".into());
                (stored_doc(&p.name, p.key, &p.props, Some(&p.act)), p.key)
            };
            // What it held from before (an endpoint change) will never be delivered: dropped.
            let r = self
                .0
                .writer
                .submit(vec![
                    Op::PutResource {
                        path: sub_path(scope, &sk),
                        json: doc.0,
                    },
                    Op::DropSubscription { sub: doc.1 },
                ])
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not mark a subscription's validation as failed");
            }
        }
    }

    /// Dead letters of a push subscription: up to `limit` records after sequence `after`.
    pub fn push_dead_letters(
        &self,
        scope: Scope<'_>,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
        let key = {
            let st = self.0.basic.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            subs.get(&lc(name))
                .ok_or_else(|| not_found("event subscription"))?
                .key
        };
        Ok(self.0.writer.store().dead_letters(key, after, limit)?)
    }

    /// The source actor of a topic or domain, its keys and schema.
    pub fn publish_target(&self, kind: Kind, name: &str) -> Result<PublishTarget, GridError> {
        let st = self.0.basic.read().expect("grid lock");
        let s = st.source(kind, name).ok_or_else(|| {
            GridError::NotFound(format!("The {} '{name}' was not found.", kind.what()))
        })?;
        Ok(PublishTarget {
            addr: s.addr.clone(),
            keys: Keys {
                key1: s.keys[0].clone(),
                key2: s.keys[1].clone(),
            },
            cfg: s.cfg.clone(),
            topic_id: source_id(kind, &s.name),
            domain_topics: (kind == Kind::Domain)
                .then(|| st.domains[&lc(name)].1.keys().cloned().collect()),
        })
    }
}

/// An owned [`Scope`], for collecting across a lock.
#[derive(Debug, Clone)]
enum OwnedScope {
    Topic(String),
    Domain(String),
    DomainTopic(String, String),
}

impl OwnedScope {
    fn as_scope(&self) -> Scope<'_> {
        match self {
            OwnedScope::Topic(t) => Scope::Topic(t),
            OwnedScope::Domain(d) => Scope::Domain(d),
            OwnedScope::DomainTopic(d, t) => Scope::DomainTopic(d, t),
        }
    }
}

impl BasicState {
    fn for_each_sub(&self, mut f: impl FnMut(&OwnedScope, &str, &PSub)) {
        for (k, s) in &self.topics {
            let scope = OwnedScope::Topic(k.clone());
            for (sk, p) in &s.subs {
                f(&scope, sk, p);
            }
        }
        for (d, (s, topics)) in &self.domains {
            let scope = OwnedScope::Domain(d.clone());
            for (sk, p) in &s.subs {
                f(&scope, sk, p);
            }
            for (t, dt) in topics {
                let scope = OwnedScope::DomainTopic(d.clone(), t.clone());
                for (sk, p) in &dt.subs {
                    f(&scope, sk, p);
                }
            }
        }
    }
}
