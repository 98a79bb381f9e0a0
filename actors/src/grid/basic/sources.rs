//! Management of custom topics, domains and domain topics: create, update, read, list, delete,
//! keys, and the domain topics a publish or a subscription creates on first use.
//!
//! Operations of the basic-tier registry ([`Basic`]); every change is committed before the registry
//! shows it, under the grid's management lock. Must never delete a topic's subscriptions
//! without dropping what the store holds for them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::registry::{
    Basic, DomainTopic, Kind, Scope, Source, check_name, scope_path, source_doc, source_id,
    stop_subs, sub_delete_ops,
};
use crate::grid::error::GridError;
use crate::grid::resource::basic as resource;
use crate::grid::shared::{Keys, Shared, generate_key, key_index, lc};
use crate::lifecycle::Shutdown;
use crate::store::Op;

impl Basic {
    /// Commits a topic's or domain's document (name as first given, properties, keys).
    async fn store_source(
        &self,
        sh: &Shared,
        kind: Kind,
        name: &str,
        display: &str,
        props: &Value,
        keys: &[String; 2],
    ) -> Result<(), GridError> {
        let doc = json!({"name": display, "properties": props, "keys": keys});
        sh.writer
            .submit(vec![Op::PutResource {
                path: format!("{}/{}", kind.plural(), lc(name)),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        Ok(())
    }

    // ---- topics and domains ----

    pub(crate) async fn put_source(
        &self,
        sh: &Shared,
        kind: Kind,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        check_name(kind.what(), name, 50)?;
        let (cfg, props) =
            resource::source(props, kind == Kind::Domain).map_err(GridError::BadRequest)?;
        let _g = sh.mgmt.lock().await;
        let existing = {
            let st = self.state.read().expect("grid lock");
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
        self.store_source(sh, kind, name, &display, &props, &keys)
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let new = || Source {
            name: display.clone(),
            addr: sh.start_topic(),
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
        Ok((source_doc(kind, src, sh.public_url()), created))
    }

    pub(crate) fn get_source(
        &self,
        sh: &Shared,
        kind: Kind,
        name: &str,
    ) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let s = st
            .source(kind, name)
            .ok_or_else(|| GridError::not_found(kind.what(), name))?;
        Ok(source_doc(kind, s, sh.public_url()))
    }

    pub(crate) fn list_sources(&self, sh: &Shared, kind: Kind) -> Vec<Value> {
        let st = self.state.read().expect("grid lock");
        match kind {
            Kind::Topic => st
                .topics
                .values()
                .map(|s| source_doc(kind, s, sh.public_url()))
                .collect(),
            Kind::Domain => st
                .domains
                .values()
                .map(|s| source_doc(kind, &s.0, sh.public_url()))
                .collect(),
        }
    }

    pub(crate) async fn delete_source(
        &self,
        sh: &Shared,
        kind: Kind,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        let mut ops = Vec::new();
        let prefix = format!("{}/{}", kind.plural(), lc(name));
        {
            let st = self.state.read().expect("grid lock");
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
        sh.writer.submit(ops).await?;
        let mut st = self.state.write().expect("grid lock");
        let removed = match kind {
            Kind::Topic => st.topics.remove(&lc(name)).map(|s| (s, BTreeMap::new())),
            Kind::Domain => st.domains.remove(&lc(name)),
        };
        if let Some((src, topics)) = removed {
            stop_subs(src.subs);
            for dt in topics.into_values() {
                stop_subs(dt.subs);
            }
            src.addr.do_send(Shutdown);
        }
        Ok(true)
    }

    pub(crate) fn source_keys(&self, kind: Kind, name: &str) -> Result<Keys, GridError> {
        let st = self.state.read().expect("grid lock");
        let s = st
            .source(kind, name)
            .ok_or_else(|| GridError::not_found(kind.what(), name))?;
        Ok(Keys::of(&s.keys))
    }

    pub(crate) async fn regenerate_source_key(
        &self,
        sh: &Shared,
        kind: Kind,
        name: &str,
        which: &str,
    ) -> Result<Keys, GridError> {
        let idx = key_index(which)?;
        let _g = sh.mgmt.lock().await;
        let (display, props, mut keys) = {
            let st = self.state.read().expect("grid lock");
            let s = st
                .source(kind, name)
                .ok_or_else(|| GridError::not_found(kind.what(), name))?;
            (s.name.clone(), s.props.clone(), s.keys.clone())
        };
        keys[idx] = generate_key()?;
        self.store_source(sh, kind, name, &display, &props, &keys)
            .await?;
        let mut st = self.state.write().expect("grid lock");
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
    pub(super) async fn create_domain_topics_locked(
        &self,
        sh: &Shared,
        d: &str,
        names: &[String],
    ) -> Result<(), GridError> {
        let missing: Vec<String> = {
            let st = self.state.read().expect("grid lock");
            let (_, topics) = st.domain(d)?;
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
        sh.writer.submit(ops).await?;
        let mut st = self.state.write().expect("grid lock");
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
    pub(crate) async fn ensure_domain_topics(
        &self,
        sh: &Shared,
        d: &str,
        names: &[String],
    ) -> Result<(), GridError> {
        let _g = sh.mgmt.lock().await;
        self.create_domain_topics_locked(sh, d, names).await
    }

    pub(crate) async fn put_domain_topic(
        &self,
        sh: &Shared,
        d: &str,
        t: &str,
    ) -> Result<(Value, bool), GridError> {
        let _g = sh.mgmt.lock().await;
        let existed = {
            let st = self.state.read().expect("grid lock");
            let (_, topics) = st.domain(d)?;
            topics.contains_key(&lc(t))
        };
        self.create_domain_topics_locked(sh, d, &[t.to_string()])
            .await?;
        Ok((self.get_domain_topic(d, t)?, !existed))
    }

    pub(crate) fn get_domain_topic(&self, d: &str, t: &str) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let (src, dt) = st.domain_topic(d, t)?;
        Ok(Self::domain_topic_doc(&src.name, dt))
    }

    pub(crate) fn list_domain_topics(&self, d: &str) -> Result<Vec<Value>, GridError> {
        let st = self.state.read().expect("grid lock");
        let (src, topics) = st.domain(d)?;
        Ok(topics
            .values()
            .map(|dt| Self::domain_topic_doc(&src.name, dt))
            .collect())
    }

    pub(crate) async fn delete_domain_topic(
        &self,
        sh: &Shared,
        d: &str,
        t: &str,
    ) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        self.delete_domain_topic_locked(sh, d, t).await
    }

    pub(super) async fn delete_domain_topic_locked(
        &self,
        sh: &Shared,
        d: &str,
        t: &str,
    ) -> Result<bool, GridError> {
        let prefix = scope_path(Scope::DomainTopic(d, t));
        let mut ops = Vec::new();
        {
            let st = self.state.read().expect("grid lock");
            let (_, topics) = st.domain(d)?;
            let Some(dt) = topics.get(&lc(t)) else {
                return Ok(false);
            };
            sub_delete_ops(&prefix, &dt.subs, &mut ops);
        }
        ops.push(Op::DeleteResource { path: prefix });
        sh.writer.submit(ops).await?;
        let mut st = self.state.write().expect("grid lock");
        let removed = st.domains.get_mut(&lc(d)).and_then(|x| x.1.remove(&lc(t)));
        if let Some(dt) = removed {
            stop_subs(dt.subs);
        }
        st.refresh_routes(Scope::Domain(d));
        Ok(true)
    }
}
