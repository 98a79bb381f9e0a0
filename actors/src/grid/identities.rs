//! The identity resources of each namespace (docs/eventgrid.md §7.2–§7.5): clients, CA
//! certificates, client groups, topic spaces and permission bindings — their management
//! operations, their place in the namespace registry, and the [`Directory`] the MQTT side reads.
//!
//! Owns [`IdentityRes`] (one per [`Namespace`]) and the publication of a namespace's directory:
//! after every change a new `Arc<Directory>` replaces the namespace's whole, and the grid's one
//! identity watch moves on. Store paths: `namespaces/{ns}/clients/{c}`, `…/caCertificates/{c}`,
//! `…/clientGroups/{g}`, `…/topicSpaces/{t}`, `…/permissionBindings/{b}`, names lowercased, each
//! document keeping the name as first given (a client's also its password hash, which no GET
//! shows, and its creation time). Validation is [`resource::identity`]'s; the one file read
//! (a custom JWT issuer certificate given as a `file:` URL, [`read_issuer_files`]) happens here,
//! before validation. Must never expose a resource before its commit, nor show a password hash.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::GridError;
use super::namespaces::{Namespace, Namespaces};
use super::resource::identity::{self as resource, ALL_GROUP, Kind, PasswordChange};
use super::resource::topic_spaces::TopicSpaces;
use super::shared::{Shared, arm, lc};
use crate::identity::cert::CaCert;
use crate::identity::directory::{BindingDef, ClientDef, Directory, GroupDef, SpaceDef};
use crate::identity::fold;
use crate::identity::password::PasswordHash;
use crate::model::clock::now_ms;
use crate::store::{Op, StoreError};

/// One stored identity resource.
pub(super) struct Item<T> {
    /// As first given.
    pub name: String,
    /// What a GET shows.
    pub props: Value,
    pub def: T,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// A namespace's identity resources, by lowercased name.
#[derive(Default)]
pub(super) struct IdentityRes {
    pub clients: BTreeMap<String, Item<Arc<ClientDef>>>,
    pub cas: BTreeMap<String, Item<CaCert>>,
    pub groups: BTreeMap<String, Item<GroupDef>>,
    pub spaces: BTreeMap<String, Item<SpaceDef>>,
    pub bindings: BTreeMap<String, Item<BindingDef>>,
}

impl IdentityRes {
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Client => self.clients.len(),
            Kind::CaCertificate => self.cas.len(),
            Kind::ClientGroup => self.groups.len(),
            Kind::TopicSpace => self.spaces.len(),
            Kind::PermissionBinding => self.bindings.len(),
        }
    }

    /// Name as given, `properties`, creation and update time of one resource.
    fn shown(&self, kind: Kind, key: &str) -> Option<(&str, &Value, u64, u64)> {
        fn f<'a, T>(
            m: &'a BTreeMap<String, Item<T>>,
            k: &str,
        ) -> Option<(&'a str, &'a Value, u64, u64)> {
            m.get(k)
                .map(|i| (i.name.as_str(), &i.props, i.created_ms, i.updated_ms))
        }
        match kind {
            Kind::Client => f(&self.clients, key),
            Kind::CaCertificate => f(&self.cas, key),
            Kind::ClientGroup => f(&self.groups, key),
            Kind::TopicSpace => f(&self.spaces, key),
            Kind::PermissionBinding => f(&self.bindings, key),
        }
    }

    fn keys(&self, kind: Kind) -> Vec<String> {
        fn f<T>(m: &BTreeMap<String, Item<T>>) -> Vec<String> {
            m.keys().cloned().collect()
        }
        match kind {
            Kind::Client => f(&self.clients),
            Kind::CaCertificate => f(&self.cas),
            Kind::ClientGroup => f(&self.groups),
            Kind::TopicSpace => f(&self.spaces),
            Kind::PermissionBinding => f(&self.bindings),
        }
    }

    /// Store paths of every resource, for deleting the namespace.
    pub fn delete_ops(&self, ns: &str, ops: &mut Vec<Op>) {
        for kind in Kind::ALL {
            for k in self.keys(kind) {
                ops.push(Op::DeleteResource {
                    path: path(ns, kind, &k),
                });
            }
        }
    }
}

/// The namespace's directory, built from its resources and its `topicSpacesConfiguration`.
pub(super) fn build_directory(res: &IdentityRes, ts: &TopicSpaces) -> Directory {
    Directory {
        clients: res
            .clients
            .values()
            // The key `Directory::client` looks up by.
            .map(|c| (fold(&c.def.auth_name).into_owned(), c.def.clone()))
            .collect(),
        ca_certs: res.cas.values().map(|c| c.def.clone()).collect(),
        groups: res.groups.values().map(|g| g.def.clone()).collect(),
        spaces: res.spaces.values().map(|s| s.def.clone()).collect(),
        bindings: res.bindings.values().map(|b| b.def.clone()).collect(),
        auth: ts.auth.clone(),
        max_sessions_per_auth_name: ts.max_sessions_per_auth_name,
        quotas: ts.quotas,
    }
}

/// Whether a namespace PUT changed what the MQTT side reads of its configuration.
pub(super) fn auth_changed(old: &TopicSpaces, new: &TopicSpaces) -> bool {
    old.auth != new.auth
        || old.quotas != new.quotas
        || old.max_sessions_per_auth_name != new.max_sessions_per_auth_name
}

pub(super) fn path(ns: &str, kind: Kind, name: &str) -> String {
    format!("namespaces/{}/{}/{}", lc(ns), kind.segment(), lc(name))
}

fn doc(ns: &str, kind: Kind, name: &str, props: &Value) -> Value {
    arm(
        format!(
            "/providers/Microsoft.EventGrid/namespaces/{ns}/{}/{name}",
            kind.segment()
        ),
        name,
        kind.arm_type(),
        props,
    )
}

/// What a client change means for the namespace's lifecycle events (docs/eventgrid.md §7.7).
#[derive(Debug, Clone)]
pub(crate) enum ClientChange {
    CreatedOrUpdated {
        namespace: String,
        client: Arc<ClientDef>,
        created_ms: u64,
        updated_ms: u64,
    },
    Deleted {
        namespace: String,
        client: String,
        auth_name: String,
    },
}

/// Loads one stored identity document into `res` (references are not checked: the store held
/// them valid, and bindings sort before the topic spaces they name).
pub(super) fn load(
    res: &mut IdentityRes,
    kind: Kind,
    key: &str,
    doc: &Value,
) -> Result<(), String> {
    let name = doc["name"].as_str().unwrap_or(key).to_string();
    let props = &doc["properties"];
    let created_ms = doc["createdOn"].as_u64().unwrap_or(0);
    let updated_ms = doc["updatedOn"].as_u64().unwrap_or(created_ms);
    let meta = |props| Meta {
        name: &name,
        props,
        created_ms,
        updated_ms,
    };
    match kind {
        Kind::Client => {
            let pw = match doc["passwordHash"].as_str() {
                Some(h) => PasswordChange::Set(PasswordHash::parse(h)?),
                None => PasswordChange::Remove,
            };
            let (def, props) = resource::client(&name, props, None, pw)?;
            res.clients
                .insert(key.to_string(), meta(&props).item(Arc::new(def)));
        }
        Kind::CaCertificate => {
            let (def, props) = resource::ca_certificate(&name, props)?;
            res.cas.insert(key.to_string(), meta(&props).item(def));
        }
        Kind::ClientGroup => {
            let (def, props) = resource::client_group(&name, props)?;
            res.groups.insert(key.to_string(), meta(&props).item(def));
        }
        Kind::TopicSpace => {
            let (def, props) = resource::topic_space(&name, props)?;
            res.spaces.insert(key.to_string(), meta(&props).item(def));
        }
        Kind::PermissionBinding => {
            let (def, props) = resource::permission_binding(&name, props)?;
            res.bindings.insert(key.to_string(), meta(&props).item(def));
        }
    }
    Ok(())
}

/// Reads each custom JWT issuer certificate given as a `file:` `certificateUrl` into its entry's
/// `encodedCertificate` (evgrid's extension, docs/eventgrid.md §7.4): evgrid fetches nothing
/// from the network, and the stored namespace keeps the PEM so a restart does not need the file.
pub(super) fn read_issuer_files(props: &mut Value) -> Result<(), GridError> {
    let Some(Value::Array(certs)) = props.pointer_mut(
        "/topicSpacesConfiguration/clientAuthentication/customJwtAuthentication/issuerCertificates",
    ) else {
        return Ok(());
    };
    for (i, c) in certs.iter_mut().enumerate() {
        let Some(c) = c.as_object_mut() else {
            continue;
        };
        if c.get("encodedCertificate").is_some_and(|v| !v.is_null()) {
            continue;
        }
        let Some(url) = c.get("certificateUrl").and_then(Value::as_str) else {
            continue;
        };
        let Some(file) = url
            .strip_prefix("file://")
            .or_else(|| url.strip_prefix("file:"))
        else {
            continue;
        };
        let pem = std::fs::read_to_string(file).map_err(|e| {
            GridError::BadRequest(format!(
                "properties.topicSpacesConfiguration.clientAuthentication.customJwtAuthentication.issuerCertificates[{i}].certificateUrl '{url}' cannot be read: {e}"
            ))
        })?;
        c.insert("encodedCertificate".into(), Value::String(pem));
    }
    Ok(())
}

/// What every stored item has besides its parsed form.
struct Meta<'a> {
    name: &'a str,
    props: &'a Value,
    created_ms: u64,
    updated_ms: u64,
}

impl Meta<'_> {
    fn item<T>(&self, def: T) -> Item<T> {
        Item {
            name: self.name.to_string(),
            props: self.props.clone(),
            def,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }
}

/// A parsed resource ready to be stored.
enum Parsed {
    Client(Arc<ClientDef>),
    Ca(CaCert),
    Group(GroupDef),
    Space(SpaceDef),
    Binding(BindingDef),
}

fn find<'a>(st: &'a BTreeMap<String, Namespace>, ns: &str) -> Result<&'a Namespace, GridError> {
    st.get(&lc(ns))
        .ok_or_else(|| GridError::not_found("namespace", ns))
}

fn bad(e: String) -> GridError {
    GridError::BadRequest(e)
}

/// 16 random bytes for a password's salt.
fn salt() -> Result<[u8; 16], GridError> {
    let mut s = [0u8; 16];
    getrandom::fill(&mut s).map_err(|e| StoreError::Io(format!("no randomness: {e}")))?;
    Ok(s)
}

impl Namespaces {
    /// Publishes `n`'s directory anew and moves the identity watch on.
    pub(super) fn republish(&self, n: &mut Namespace) {
        n.directory = Arc::new(build_directory(&n.identity, &n.topic_spaces));
        self.identity_tx.send_modify(|g| *g += 1);
    }

    /// A namespace's directory.
    pub fn directory(&self, ns: &str) -> Result<Arc<Directory>, GridError> {
        let st = self.state.read().expect("grid lock");
        Ok(find(&st, ns)?.directory.clone())
    }

    /// Creates or updates an identity resource; answers its document, whether it was created,
    /// and the client change to announce.
    pub async fn put_identity(
        &self,
        sh: &Shared,
        ns: &str,
        kind: Kind,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool, Option<ClientChange>), GridError> {
        resource::check_name(kind, name).map_err(bad)?;
        // Hashing is slow on purpose: done before the lock.
        let pw = if kind == Kind::Client {
            let salt = match props.get("password") {
                Some(Value::String(_)) => salt()?,
                _ => [0; 16],
            };
            Some(resource::password_change(props, salt).map_err(bad)?)
        } else {
            None
        };
        let _g = sh.mgmt.lock().await;
        let key = lc(name);
        let (display, created_ms, parsed, shown) = {
            let st = self.state.read().expect("grid lock");
            let n = find(&st, ns)?;
            let existing = n.identity.shown(kind, &key);
            if existing.is_none() {
                resource::check_limit(kind, n.identity.count(kind)).map_err(bad)?;
            }
            let display = existing.map_or(name, |e| e.0).to_string();
            let created_ms = existing.map(|e| e.2);
            let (parsed, shown) = match kind {
                Kind::Client => {
                    let old = n.identity.clients.get(&key).map(|c| &*c.def);
                    let pw = pw.unwrap_or(PasswordChange::Keep);
                    let (def, shown) = resource::client(&display, props, old, pw).map_err(bad)?;
                    resource::check_auth_name_free(&n.directory, &display, &def.auth_name)
                        .map_err(bad)?;
                    (Parsed::Client(Arc::new(def)), shown)
                }
                Kind::CaCertificate => {
                    let (def, shown) = resource::ca_certificate(&display, props).map_err(bad)?;
                    (Parsed::Ca(def), shown)
                }
                Kind::ClientGroup => {
                    let (def, shown) = resource::client_group(&display, props).map_err(bad)?;
                    (Parsed::Group(def), shown)
                }
                Kind::TopicSpace => {
                    let (def, shown) = resource::topic_space(&display, props).map_err(bad)?;
                    (Parsed::Space(def), shown)
                }
                Kind::PermissionBinding => {
                    let (def, shown) =
                        resource::permission_binding(&display, props).map_err(bad)?;
                    resource::check_binding_refs(&n.directory, &def).map_err(bad)?;
                    (Parsed::Binding(def), shown)
                }
            };
            (display, created_ms, parsed, shown)
        };
        let now = now_ms();
        let created = created_ms.is_none();
        let created_ms = created_ms.unwrap_or(now);
        let mut stored = json!({
            "name": display,
            "properties": shown,
            "createdOn": created_ms,
            "updatedOn": now,
        });
        if let Parsed::Client(c) = &parsed
            && let Some(h) = &c.password
        {
            stored["passwordHash"] = json!(h.0);
        }
        sh.writer
            .submit(vec![Op::PutResource {
                path: path(ns, kind, name),
                json: stored.to_string().into_bytes(),
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let n = st
            .get_mut(&lc(ns))
            .ok_or_else(|| GridError::not_found("namespace", ns))?;
        let meta = Meta {
            name: &display,
            props: &shown,
            created_ms,
            updated_ms: now,
        };
        let mut change = None;
        match parsed {
            Parsed::Client(def) => {
                change = Some(ClientChange::CreatedOrUpdated {
                    namespace: n.name.clone(),
                    client: def.clone(),
                    created_ms,
                    updated_ms: now,
                });
                n.identity.clients.insert(key, meta.item(def));
            }
            Parsed::Ca(def) => drop(n.identity.cas.insert(key, meta.item(def))),
            Parsed::Group(def) => drop(n.identity.groups.insert(key, meta.item(def))),
            Parsed::Space(def) => drop(n.identity.spaces.insert(key, meta.item(def))),
            Parsed::Binding(def) => drop(n.identity.bindings.insert(key, meta.item(def))),
        }
        self.republish(n);
        Ok((doc(&n.name, kind, &display, &shown), created, change))
    }

    pub fn get_identity(&self, ns: &str, kind: Kind, name: &str) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let n = find(&st, ns)?;
        if kind == Kind::ClientGroup && name.eq_ignore_ascii_case(ALL_GROUP) {
            return Ok(doc(&n.name, kind, ALL_GROUP, &resource::all_group_props()));
        }
        let (display, props, _, _) = n
            .identity
            .shown(kind, &lc(name))
            .ok_or_else(|| GridError::not_found(kind.noun(), name))?;
        Ok(doc(&n.name, kind, display, props))
    }

    pub fn list_identity(&self, ns: &str, kind: Kind) -> Result<Vec<Value>, GridError> {
        let st = self.state.read().expect("grid lock");
        let n = find(&st, ns)?;
        let mut out = Vec::new();
        if kind == Kind::ClientGroup {
            out.push(doc(&n.name, kind, ALL_GROUP, &resource::all_group_props()));
        }
        for k in n.identity.keys(kind) {
            if let Some((display, props, _, _)) = n.identity.shown(kind, &k) {
                out.push(doc(&n.name, kind, display, props));
            }
        }
        Ok(out)
    }

    /// Deletes an identity resource; false if it did not exist. A group or space that a binding
    /// names cannot be deleted; `$all` cannot be.
    pub async fn delete_identity(
        &self,
        sh: &Shared,
        ns: &str,
        kind: Kind,
        name: &str,
    ) -> Result<(bool, Option<ClientChange>), GridError> {
        if kind == Kind::ClientGroup && name.eq_ignore_ascii_case(ALL_GROUP) {
            return Err(bad(resource::builtin_all()));
        }
        let _g = sh.mgmt.lock().await;
        let key = lc(name);
        {
            let st = self.state.read().expect("grid lock");
            let n = find(&st, ns)?;
            if n.identity.shown(kind, &key).is_none() {
                return Ok((false, None));
            }
            resource::check_unbound(&n.directory, kind, name).map_err(bad)?;
        }
        sh.writer
            .submit(vec![Op::DeleteResource {
                path: path(ns, kind, name),
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let Some(n) = st.get_mut(&lc(ns)) else {
            return Ok((true, None));
        };
        let mut change = None;
        match kind {
            Kind::Client => {
                if let Some(c) = n.identity.clients.remove(&key) {
                    change = Some(ClientChange::Deleted {
                        namespace: n.name.clone(),
                        client: c.name,
                        auth_name: c.def.auth_name.clone(),
                    });
                }
            }
            Kind::CaCertificate => drop(n.identity.cas.remove(&key)),
            Kind::ClientGroup => drop(n.identity.groups.remove(&key)),
            Kind::TopicSpace => drop(n.identity.spaces.remove(&key)),
            Kind::PermissionBinding => drop(n.identity.bindings.remove(&key)),
        }
        self.republish(n);
        Ok((true, change))
    }
}

#[cfg(test)]
mod tests;
