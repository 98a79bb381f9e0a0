//! Management of system topics (docs/eventgrid.md §7.7): create, read, list, delete, and the
//! lookup the bridge feeds MQTT client lifecycle events through.
//!
//! A system topic is a basic-tier source without keys or publish endpoint: its topic actor takes
//! Event Grid schema events (so CloudEvents subscriptions get the conversion of §2.5), and its
//! event subscriptions are the tier's push subscriptions ([`Scope::SystemTopic`]). One system
//! topic per source, as Azure allows. Deleting the namespace its source names leaves it in
//! place (Azure keeps it too); the bridge's lookup then finds nothing, so no events flow until a
//! namespace of that name exists again. Every change is committed before the registry shows it,
//! under the grid's management lock. Must never accept a publish from outside: only the bridge
//! puts events into a system topic.

use std::collections::BTreeMap;

use actix::Addr;
use serde_json::{Value, json};

use super::registry::{
    Basic, Scope, Source, SysTopic, check_name, scope_path, stop_subs, sub_delete_ops,
    system_topic_id, uuid,
};
use crate::grid::error::GridError;
use crate::grid::resource::basic::{InputSchema, SourceCfg};
use crate::grid::resource::system_topic::{self as resource, SystemTopicCfg};
use crate::grid::shared::{Shared, lc};
use crate::grid::topic::TopicActor;
use crate::lifecycle::Shutdown;
use crate::store::Op;

impl SysTopic {
    /// A system topic with a fresh topic actor and no subscriptions yet.
    pub(super) fn new(sh: &Shared, name: String, cfg: SystemTopicCfg, props: Value) -> SysTopic {
        SysTopic {
            src: Source {
                name,
                cfg: SourceCfg {
                    input: InputSchema::EventGrid,
                    mapping: None,
                },
                props,
                // No publish endpoint, so no keys (docs/eventgrid.md §7.7).
                keys: [String::new(), String::new()],
                addr: sh.start_topic(),
                subs: BTreeMap::new(),
            },
            cfg,
        }
    }

    fn doc(&self) -> Value {
        json!({
            "id": system_topic_id(&self.src.name),
            "name": self.src.name,
            "type": "Microsoft.EventGrid/systemTopics",
            "properties": self.src.props,
        })
    }
}

impl Basic {
    /// Creates or updates a system topic; `namespace_exists` is asked, under the management
    /// lock, whether the namespace its source names exists.
    pub(crate) async fn put_system_topic(
        &self,
        sh: &Shared,
        name: &str,
        props: &Value,
        namespace_exists: impl Fn(&str) -> bool,
    ) -> Result<(Value, bool), GridError> {
        check_name("system topic", name, 128)?;
        let (cfg, mut props) = resource::system_topic(props).map_err(GridError::BadRequest)?;
        let _g = sh.mgmt.lock().await;
        if !namespace_exists(&cfg.namespace) {
            return Err(GridError::BadRequest(format!(
                "The namespace '{}' that properties.source '{}' names does not exist.",
                cfg.namespace, cfg.source
            )));
        }
        let existing = {
            let st = self.state.read().expect("grid lock");
            if let Some(o) = st
                .system_topics
                .iter()
                .find(|(k, o)| **k != lc(name) && o.cfg.namespace == cfg.namespace)
                .map(|(_, o)| o)
            {
                return Err(GridError::BadRequest(format!(
                    "The system topic '{}' already has the source '{}'; a source can have only one system topic.",
                    o.src.name, o.cfg.source
                )));
            }
            st.system_topics.get(&lc(name)).map(|s| {
                (
                    s.src.name.clone(),
                    s.cfg.clone(),
                    s.src.props["metricResourceId"].clone(),
                )
            })
        };
        let created = existing.is_none();
        let (display, metric_id) = match existing {
            Some((display, old, metric_id)) => {
                if old.namespace != cfg.namespace {
                    return Err(GridError::BadRequest(format!(
                        "properties.source cannot be changed from '{}' to '{}' on an existing system topic; delete it and create it again.",
                        old.source, cfg.source
                    )));
                }
                (display, metric_id)
            }
            None => (name.to_string(), json!(uuid()?)),
        };
        props["metricResourceId"] = metric_id;
        let doc = json!({"name": display, "properties": props});
        sh.writer
            .submit(vec![Op::PutResource {
                path: scope_path(Scope::SystemTopic(name)),
                json: doc.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let t = st
            .system_topics
            .entry(lc(name))
            .or_insert_with(|| SysTopic::new(sh, display, cfg.clone(), Value::Null));
        t.cfg = cfg;
        t.src.props = props;
        Ok((t.doc(), created))
    }

    pub(crate) fn get_system_topic(&self, name: &str) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        st.system_topics
            .get(&lc(name))
            .map(SysTopic::doc)
            .ok_or_else(|| GridError::not_found("system topic", name))
    }

    pub(crate) fn list_system_topics(&self) -> Vec<Value> {
        let st = self.state.read().expect("grid lock");
        st.system_topics.values().map(SysTopic::doc).collect()
    }

    /// Deletes a system topic with its subscriptions; false if it did not exist.
    pub(crate) async fn delete_system_topic(
        &self,
        sh: &Shared,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        let prefix = scope_path(Scope::SystemTopic(name));
        let mut ops = Vec::new();
        {
            let st = self.state.read().expect("grid lock");
            let Some(t) = st.system_topics.get(&lc(name)) else {
                return Ok(false);
            };
            sub_delete_ops(&prefix, &t.src.subs, &mut ops);
        }
        ops.push(Op::DeleteResource { path: prefix });
        sh.writer.submit(ops).await?;
        let removed = self
            .state
            .write()
            .expect("grid lock")
            .system_topics
            .remove(&lc(name));
        if let Some(t) = removed {
            stop_subs(t.src.subs);
            t.src.addr.do_send(Shutdown);
        }
        Ok(true)
    }

    /// The system topics whose source names namespace `ns`: each one's source (the `topic` its
    /// events carry) and topic actor. A read lock and a scan of the system topics (one per
    /// namespace at most).
    pub(crate) fn system_topics_of_namespace(&self, ns: &str) -> Vec<(String, Addr<TopicActor>)> {
        let st = self.state.read().expect("grid lock");
        st.system_topics
            .values()
            .filter(|t| t.cfg.namespace.eq_ignore_ascii_case(ns))
            .map(|t| (t.cfg.source.clone(), t.src.addr.clone()))
            .collect()
    }
}
