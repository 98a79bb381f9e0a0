//! The basic tier's registry: custom topics and domains (each with its topic actor), domain
//! topics and push subscriptions, with the helpers every management operation shares, and
//! how the tier is rebuilt from the store at start-up.
//!
//! Owns [`Basic`]; [`super::sources`] and [`super::subscriptions`] hold its management
//! operations. Must never route events to a subscription whose endpoint has not been validated.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use serde_json::{Value, json};

use crate::delivery::push::{Names, PushSub};
use crate::grid::error::GridError;
use crate::grid::resource::basic::{self as resource, PushCfg, SourceCfg};
use crate::grid::resource::system_topic::SystemTopicCfg;
use crate::grid::shared::{Keys, Shared, bad, lc};
use crate::grid::topic::{Conversion, Route, Routes, SetNextSeq, SetRoutes, Target, TopicActor};
use crate::model::clock::now_ms;
use crate::store::{Op, StoreError};

/// A custom topic or a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Topic,
    Domain,
}

impl Kind {
    pub(super) fn plural(self) -> &'static str {
        match self {
            Kind::Topic => "topics",
            Kind::Domain => "domains",
        }
    }
    pub(super) fn what(self) -> &'static str {
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
    /// A system topic (docs/eventgrid.md §7.7): its subscriptions are push subscriptions like a
    /// custom topic's.
    SystemTopic(&'a str),
}

pub(super) enum Activation {
    Active(Addr<PushSub>),
    Awaiting { token: String, until_ms: u64 },
    Failed(String),
}

impl Activation {
    pub(super) fn state(&self) -> &'static str {
        match self {
            Activation::Active(_) => "Succeeded",
            Activation::Awaiting { .. } => "AwaitingManualAction",
            Activation::Failed(_) => "Failed",
        }
    }
}

pub(super) struct PSub {
    pub(super) name: String,
    pub(super) key: u64,
    pub(super) cfg: PushCfg,
    /// As stored (secrets included); GET shows [`resource::redacted`].
    pub(super) props: Value,
    pub(super) act: Activation,
}

pub(super) struct Source {
    pub(super) name: String,
    pub(super) cfg: SourceCfg,
    pub(super) props: Value,
    pub(super) keys: [String; 2],
    pub(super) addr: Addr<TopicActor>,
    pub(super) subs: BTreeMap<String, PSub>,
}

pub(super) struct DomainTopic {
    pub(super) name: String,
    pub(super) subs: BTreeMap<String, PSub>,
}

/// A system topic: a source without keys or publish endpoint, fed by the bridge with the MQTT
/// client lifecycle events of the namespace `cfg` names (see `super::system_topics`).
pub(super) struct SysTopic {
    pub(super) src: Source,
    pub(super) cfg: SystemTopicCfg,
}

#[derive(Default)]
pub(super) struct BasicState {
    pub(super) topics: BTreeMap<String, Source>,
    pub(super) domains: BTreeMap<String, (Source, BTreeMap<String, DomainTopic>)>,
    pub(super) system_topics: BTreeMap<String, SysTopic>,
}

/// The basic tier's registry.
#[derive(Default)]
pub(crate) struct Basic {
    pub(super) state: RwLock<BasicState>,
}

/// What the publish edge needs of a topic or domain.
pub struct PublishTarget {
    pub addr: Addr<TopicActor>,
    pub keys: Keys,
    pub cfg: SourceCfg,
    /// The ARM id events get as `topic` (custom topics); for domains, the domain's id prefix.
    pub topic_id: String,
    /// Domains: the domain topics that exist (lowercased).
    pub domain_topics: Option<std::collections::HashSet<String>>,
}

pub(super) fn source_id(kind: Kind, name: &str) -> String {
    format!("/providers/Microsoft.EventGrid/{}/{name}", kind.plural())
}

/// The ARM id of a system topic.
pub(super) fn system_topic_id(name: &str) -> String {
    format!("/providers/Microsoft.EventGrid/systemTopics/{name}")
}

pub(super) fn scope_path(s: Scope<'_>) -> String {
    match s {
        Scope::Topic(t) => format!("topics/{}", lc(t)),
        Scope::Domain(d) => format!("domains/{}", lc(d)),
        Scope::DomainTopic(d, t) => format!("domains/{}/topics/{}", lc(d), lc(t)),
        Scope::SystemTopic(t) => format!("systemTopics/{}", lc(t)),
    }
}

pub(super) fn sub_path(s: Scope<'_>, name: &str) -> String {
    format!("{}/eventSubscriptions/{}", scope_path(s), lc(name))
}

pub(super) fn check_name(kind: &str, name: &str, max: usize) -> Result<(), GridError> {
    crate::grid::resource::check_name(kind, name, max).map_err(GridError::BadRequest)?;
    let reserved = ["microsoft", "eventgrid", "system"];
    if matches!(kind, "topic" | "domain") && reserved.iter().any(|r| lc(name).starts_with(r)) {
        return Err(GridError::BadRequest(format!(
            "The {kind} name '{name}' is invalid: it must not start with 'Microsoft', 'EventGrid' or 'System'."
        )));
    }
    Ok(())
}

pub(super) fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| StoreError::Io(format!("no OS randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A random UUID-shaped id (for events published without one).
pub fn random_id() -> String {
    uuid().unwrap_or_else(|_| format!("{:x}", now_ms()))
}

pub(super) fn uuid() -> Result<String, StoreError> {
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
    /// Domain `d` and its topics, or `not_found`.
    pub(super) fn domain(
        &self,
        d: &str,
    ) -> Result<&(Source, BTreeMap<String, DomainTopic>), GridError> {
        self.domains
            .get(&lc(d))
            .ok_or_else(|| GridError::not_found("domain", d))
    }

    /// Topic `t` of domain `d`, with the domain, or which of the two is missing.
    pub(super) fn domain_topic(
        &self,
        d: &str,
        t: &str,
    ) -> Result<(&Source, &DomainTopic), GridError> {
        let (src, topics) = self.domain(d)?;
        let dt = topics
            .get(&lc(t))
            .ok_or_else(|| GridError::not_found("domain topic", t))?;
        Ok((src, dt))
    }

    pub(super) fn source(&self, kind: Kind, name: &str) -> Option<&Source> {
        match kind {
            Kind::Topic => self.topics.get(&lc(name)),
            Kind::Domain => self.domains.get(&lc(name)).map(|d| &d.0),
        }
    }

    /// The subscriptions of a scope, with the display id of the scope.
    pub(super) fn subs(
        &self,
        s: Scope<'_>,
    ) -> Result<(&BTreeMap<String, PSub>, String), GridError> {
        match s {
            Scope::Topic(t) => {
                let src = self
                    .topics
                    .get(&lc(t))
                    .ok_or_else(|| GridError::not_found("topic", t))?;
                Ok((&src.subs, source_id(Kind::Topic, &src.name)))
            }
            Scope::Domain(d) => {
                let (src, _) = self.domain(d)?;
                Ok((&src.subs, source_id(Kind::Domain, &src.name)))
            }
            Scope::DomainTopic(d, t) => {
                let (src, dt) = self.domain_topic(d, t)?;
                Ok((
                    &dt.subs,
                    format!("{}/topics/{}", source_id(Kind::Domain, &src.name), dt.name),
                ))
            }
            Scope::SystemTopic(t) => {
                let st = self
                    .system_topics
                    .get(&lc(t))
                    .ok_or_else(|| GridError::not_found("system topic", t))?;
                Ok((&st.src.subs, system_topic_id(&st.src.name)))
            }
        }
    }

    pub(super) fn subs_mut(&mut self, s: Scope<'_>) -> Option<&mut BTreeMap<String, PSub>> {
        match s {
            Scope::Topic(t) => self.topics.get_mut(&lc(t)).map(|x| &mut x.subs),
            Scope::Domain(d) => self.domains.get_mut(&lc(d)).map(|x| &mut x.0.subs),
            Scope::DomainTopic(d, t) => self
                .domains
                .get_mut(&lc(d))
                .and_then(|x| x.1.get_mut(&lc(t)))
                .map(|x| &mut x.subs),
            Scope::SystemTopic(t) => self.system_topics.get_mut(&lc(t)).map(|x| &mut x.src.subs),
        }
    }

    /// Pushes the current routes of the source `s` belongs to.
    pub(super) fn refresh_routes(&self, s: Scope<'_>) {
        let active = |subs: &BTreeMap<String, PSub>, src: &Source| -> Vec<Route> {
            subs.values()
                .filter_map(|p| match &p.act {
                    Activation::Active(addr) => Some(Route {
                        key: p.key,
                        filter: p.cfg.filter.clone(),
                        conversion: Conversion::for_schemas(p.cfg.delivery.schema, src.cfg.input),
                        target: Target::Push(addr.clone()),
                    }),
                    _ => None,
                })
                .collect()
        };
        let flat = |src: &Source| {
            src.addr.do_send(SetRoutes(Arc::new(Routes {
                all: active(&src.subs, src),
                by_topic: Default::default(),
            })));
        };
        match s {
            Scope::SystemTopic(t) => {
                if let Some(st) = self.system_topics.get(&lc(t)) {
                    flat(&st.src);
                }
            }
            Scope::Topic(t) => {
                if let Some(src) = self.topics.get(&lc(t)) {
                    flat(src);
                }
            }
            Scope::Domain(d) | Scope::DomainTopic(d, _) => {
                if let Some((src, topics)) = self.domains.get(&lc(d)) {
                    let by_topic = topics
                        .iter()
                        .map(|(k, dt)| (k.clone(), active(&dt.subs, src)))
                        .filter(|(_, v)| !v.is_empty())
                        .collect();
                    src.addr.do_send(SetRoutes(Arc::new(Routes {
                        all: active(&src.subs, src),
                        by_topic,
                    })));
                }
            }
        }
    }
}

pub(super) fn source_doc(kind: Kind, s: &Source, public: &str) -> Value {
    let mut props = s.props.clone();
    props["endpoint"] = json!(format!("{public}/{}/{}/api/events", kind.plural(), s.name));
    json!({
        "id": source_id(kind, &s.name),
        "name": s.name,
        "type": format!("Microsoft.EventGrid/{}", kind.plural()),
        "properties": props,
    })
}

pub(super) fn sub_doc(scope_id: &str, p: &PSub) -> Value {
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
pub(super) fn stored_doc(name: &str, key: u64, props: &Value, act: Option<&Activation>) -> Vec<u8> {
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

pub(super) fn stop_subs(subs: BTreeMap<String, PSub>) {
    for p in subs.into_values() {
        if let Activation::Active(a) = p.act {
            a.do_send(crate::lifecycle::Shutdown);
        }
    }
}

pub(super) fn sub_delete_ops(prefix: &str, subs: &BTreeMap<String, PSub>, ops: &mut Vec<Op>) {
    for (k, p) in subs {
        ops.push(Op::DropSubscription { sub: p.key });
        ops.push(Op::DeleteResource {
            path: format!("{prefix}/eventSubscriptions/{k}"),
        });
    }
}

impl Basic {
    pub(super) fn names(scope: Scope<'_>, sub: &str) -> Names {
        let up = |s: &str| s.to_ascii_uppercase();
        Names {
            subscription: sub.to_string(),
            // A lower-case kind first: topic X, domain X and their subscriptions of the same
            // name must not share a directory (resource names are upper-cased, so a kind can
            // never be mistaken for one).
            source: match scope {
                Scope::Topic(t) => format!("topics/{}", up(t)),
                Scope::Domain(d) => format!("domains/{}", up(d)),
                Scope::DomainTopic(d, t) => format!("domaintopics/{}/{}", up(d), up(t)),
                Scope::SystemTopic(t) => format!("systemtopics/{}", up(t)),
            },
        }
    }

    // ---- loading ----

    /// Rebuilds the tier from its store documents (at start-up, by the grid's registry).
    /// Collects the live subscription keys; answers the highest key seen.
    pub(crate) fn load(
        &self,
        sh: &Shared,
        docs: &[(String, Value)],
        live_keys: &mut Vec<u64>,
    ) -> Result<u64, StoreError> {
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
                        addr: sh.start_topic(),
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
                ["systemTopics", n] => {
                    let (cfg, props) =
                        crate::grid::resource::system_topic::system_topic(&doc["properties"])
                            .map_err(|e| bad(path, e))?;
                    let mut props = props;
                    props["metricResourceId"] = doc["properties"]["metricResourceId"].clone();
                    st.system_topics
                        .insert(n.to_string(), SysTopic::new(sh, name, cfg, props));
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
                ["systemTopics", t, _, _] => Scope::SystemTopic(t),
                _ => return Err(bad(path, "unknown resource path".into())),
            };
            let src_key = match scope {
                Scope::Topic(t) => format!("topics/{t}"),
                Scope::Domain(d) | Scope::DomainTopic(d, _) => format!("domains/{d}"),
                Scope::SystemTopic(t) => format!("systemTopics/{t}"),
            };
            let input = match scope {
                Scope::Topic(t) => st.topics.get(t).map(|s| s.cfg.input),
                Scope::Domain(d) | Scope::DomainTopic(d, _) => {
                    st.domains.get(d).map(|s| s.0.cfg.input)
                }
                Scope::SystemTopic(t) => st.system_topics.get(t).map(|s| s.src.cfg.input),
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
            let held = sh.writer.store().queue_last(key)?;
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
                    let (addr, _) = sh.start_push(key, cfg.clone(), Self::names(scope, &name))?;
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
            src.addr.do_send(SetNextSeq(last + 1));
        }
        for (k, (src, _)) in &st.domains {
            st.refresh_routes(Scope::Domain(k));
            let last = last_seq.get(&format!("domains/{k}")).copied().unwrap_or(0);
            src.addr.do_send(SetNextSeq(last + 1));
        }
        for (k, s) in &st.system_topics {
            st.refresh_routes(Scope::SystemTopic(k));
            let last = last_seq
                .get(&format!("systemTopics/{k}"))
                .copied()
                .unwrap_or(0);
            s.src.addr.do_send(SetNextSeq(last + 1));
        }
        *self.state.write().expect("grid lock") = st;
        Ok(max_key)
    }
}

/// An owned [`Scope`], for collecting across a lock.
#[derive(Debug, Clone)]
pub(crate) enum OwnedScope {
    Topic(String),
    Domain(String),
    DomainTopic(String, String),
    SystemTopic(String),
}

impl OwnedScope {
    pub(super) fn as_scope(&self) -> Scope<'_> {
        match self {
            OwnedScope::Topic(t) => Scope::Topic(t),
            OwnedScope::Domain(d) => Scope::Domain(d),
            OwnedScope::DomainTopic(d, t) => Scope::DomainTopic(d, t),
            OwnedScope::SystemTopic(t) => Scope::SystemTopic(t),
        }
    }
}

impl BasicState {
    pub(super) fn for_each_sub(&self, mut f: impl FnMut(&OwnedScope, &str, &PSub)) {
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
        for (k, s) in &self.system_topics {
            let scope = OwnedScope::SystemTopic(k.clone());
            for (sk, p) in &s.src.subs {
                f(&scope, sk, p);
            }
        }
    }
}
