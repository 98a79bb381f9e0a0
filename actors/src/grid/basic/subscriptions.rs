//! Management of push event subscriptions under a topic, a domain or a domain topic: the
//! validation handshake that gates activation, updates, deletion (and a domain topic's
//! auto-deletion with its last subscription), manual validation, the expiry sweep, dead letters.
//!
//! Operations of the basic-tier registry ([`Basic`]). The handshake runs before the management lock
//! is taken; everything after it is committed before the registry shows it. Must never route
//! events to a subscription that has not passed its handshake.

use serde_json::Value;

use super::registry::{
    Activation, Basic, Kind, OwnedScope, PSub, PublishTarget, Scope, check_name, random_hex,
    source_id, stored_doc, sub_doc, sub_path, uuid,
};
use crate::delivery::push::ReconfigurePush;
use crate::delivery::request::DeliverySchema;
use crate::delivery::shard::{Handshake, Validation};
use crate::grid::error::GridError;
use crate::grid::resource::basic::{self as resource, InputSchema};
use crate::grid::shared::{Keys, Shared, lc, without_query};
use crate::model::clock::now_ms;
use crate::store::Op;

/// A subscription by scope and lowercased name.
pub(crate) type SubAt = (OwnedScope, String);

impl Basic {
    // ---- event subscriptions ----

    fn source_input(&self, scope: Scope<'_>) -> Result<(InputSchema, bool), GridError> {
        let st = self.state.read().expect("grid lock");
        match scope {
            Scope::Topic(t) => st
                .topics
                .get(&lc(t))
                .map(|s| (s.cfg.input, false))
                .ok_or_else(|| GridError::not_found("topic", t)),
            Scope::SystemTopic(t) => st
                .system_topics
                .get(&lc(t))
                .map(|s| (s.src.cfg.input, false))
                .ok_or_else(|| GridError::not_found("system topic", t)),
            Scope::Domain(d) => st
                .domains
                .get(&lc(d))
                .map(|s| (s.0.cfg.input, false))
                .ok_or_else(|| GridError::not_found("domain", d)),
            Scope::DomainTopic(d, t) => {
                let (src, topics) = st.domain(d)?;
                let exists = topics.contains_key(&lc(t));
                let auto = src.props["autoCreateTopicWithFirstSubscription"]
                    .as_bool()
                    .unwrap_or(true);
                if !exists && !auto {
                    return Err(GridError::not_found("domain topic", t));
                }
                Ok((src.cfg.input, !exists))
            }
        }
    }

    /// Creates or updates a push subscription. A new endpoint (or a new delivery schema) must
    /// pass the validation handshake first; its answer decides whether the subscription is
    /// active now, waits for its validation URL, or is refused.
    pub(crate) async fn put_push_subscription(
        &self,
        sh: &Shared,
        scope: Scope<'_>,
        name: &str,
        props: &Value,
    ) -> Result<(Value, bool), GridError> {
        check_name("event subscription", name, 64)?;
        let (input, _) = self.source_input(scope)?;
        let (cfg, stored) =
            resource::subscription(props, input, now_ms()).map_err(GridError::BadRequest)?;
        let previous = {
            let st = self.state.read().expect("grid lock");
            st.subs(scope).ok().and_then(|(subs, _)| {
                subs.get(&lc(name)).map(|p| {
                    (
                        p.key,
                        p.cfg.delivery.endpoint.clone(),
                        p.cfg.delivery.schema,
                        p.name.clone(),
                        matches!(p.act, Activation::Active(_)),
                    )
                })
            })
        };
        if let Some((_, _, schema, _, _)) = &previous
            && *schema != cfg.delivery.schema
        {
            return Err(GridError::BadRequest(format!(
                "properties.eventDeliverySchema cannot be changed from '{}' to '{}' on an existing event subscription; delete it and create it again.",
                schema.name(),
                cfg.delivery.schema.name()
            )));
        }
        let needs_handshake = match &previous {
            None => true,
            Some((_, url, schema, _, active)) => {
                !active || *url != cfg.delivery.endpoint || *schema != cfg.delivery.schema
            }
        };
        let key = previous.as_ref().map_or_else(|| sh.new_key(), |p| p.0);
        let mut act_token = None;
        if needs_handshake {
            let token = random_hex(16)?;
            let handshake = match cfg.delivery.schema {
                DeliverySchema::CloudEvents => Handshake::CloudEvents,
                _ => Handshake::EventGrid {
                    code: uuid()?,
                    validation_url: format!(
                        "{}/eventsubscriptions/{name}/validate?id={key}&token={token}&apiVersion=2018-05-01-preview",
                        sh.public_url()
                    ),
                    subscription: name.to_string(),
                },
            };
            let v = sh.handshake(&cfg.delivery.endpoint, handshake).await?;
            match v {
                Ok(Validation::Validated) => {}
                Ok(Validation::AwaitingManual) => act_token = Some(token),
                Err(why) => {
                    return Err(GridError::Handshake {
                        url: without_query(&cfg.delivery.endpoint).to_string(),
                        why,
                        guide: true,
                    });
                }
            }
        }
        let _g = sh.mgmt.lock().await;
        let (_, create_dt) = self.source_input(scope)?;
        if let (true, Scope::DomainTopic(d, t)) = (create_dt, scope) {
            self.create_domain_topics_locked(sh, d, &[t.to_string()])
                .await?;
        }
        let existing = {
            let st = self.state.read().expect("grid lock");
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
            until_ms: now_ms() + sh.cfg.push.manual_validation.as_millis() as u64,
        });
        let doc = stored_doc(&display, key, &stored, awaiting.as_ref());
        sh.writer
            .submit(vec![Op::PutResource {
                path: sub_path(scope, name),
                json: doc,
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
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
                    r.do_send(crate::lifecycle::Shutdown);
                }
                a
            }
            (None, Some(r)) => {
                r.do_send(ReconfigurePush(
                    cfg.delivery.clone(),
                    sh.shard_for(&cfg.delivery.endpoint),
                ));
                Activation::Active(r)
            }
            (None, None) => Activation::Active(
                sh.start_push(key, cfg.clone(), Self::names(scope, &display))?
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
        let subs = st
            .subs_mut(scope)
            .ok_or_else(|| GridError::not_found("topic", name))?;
        subs.insert(lc(name), p);
        st.refresh_routes(scope);
        let (subs, id) = st.subs(scope)?;
        Ok((sub_doc(&id, &subs[&lc(name)]), created))
    }

    pub(crate) fn get_push_subscription(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<Value, GridError> {
        let st = self.state.read().expect("grid lock");
        let (subs, id) = st.subs(scope)?;
        let p = subs
            .get(&lc(name))
            .ok_or_else(|| GridError::not_found("event subscription", name))?;
        Ok(sub_doc(&id, p))
    }

    pub(crate) fn list_push_subscriptions(
        &self,
        scope: Scope<'_>,
    ) -> Result<Vec<Value>, GridError> {
        let st = self.state.read().expect("grid lock");
        let (subs, id) = st.subs(scope)?;
        Ok(subs.values().map(|p| sub_doc(&id, p)).collect())
    }

    pub(crate) async fn delete_push_subscription(
        &self,
        sh: &Shared,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<bool, GridError> {
        let _g = sh.mgmt.lock().await;
        self.delete_push_subscription_locked(sh, scope, name).await
    }

    async fn delete_push_subscription_locked(
        &self,
        sh: &Shared,
        scope: Scope<'_>,
        name: &str,
    ) -> Result<bool, GridError> {
        let (key, last_of_topic) = {
            let st = self.state.read().expect("grid lock");
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
        sh.writer
            .submit(vec![
                Op::DropSubscription { sub: key },
                Op::DeleteResource {
                    path: sub_path(scope, name),
                },
            ])
            .await?;
        {
            let mut st = self.state.write().expect("grid lock");
            if let Some(p) = st.subs_mut(scope).and_then(|s| s.remove(&lc(name)))
                && let Activation::Active(a) = p.act
            {
                a.do_send(crate::lifecycle::Shutdown);
            }
            st.refresh_routes(scope);
        }
        if let (true, Scope::DomainTopic(d, t)) = (last_of_topic, scope) {
            self.delete_domain_topic_locked(sh, d, t).await?;
        }
        Ok(true)
    }

    /// The GET on a subscription's `validationUrl`: activates a subscription waiting for it.
    pub(crate) async fn complete_validation(
        &self,
        sh: &Shared,
        key: u64,
        token: &str,
    ) -> Result<(), GridError> {
        let _g = sh.mgmt.lock().await;
        let found = {
            let st = self.state.read().expect("grid lock");
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
            return Err(GridError::NoPendingValidation);
        };
        if !crate::model::keys::ct_eq(expected.as_bytes(), token.as_bytes()) {
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
            let st = self.state.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            let p = &subs[&sk];
            stored_doc(&p.name, key, &p.props, None)
        };
        sh.writer
            .submit(vec![Op::PutResource {
                path: sub_path(scope, &sk),
                json: doc,
            }])
            .await?;
        let mut st = self.state.write().expect("grid lock");
        let Some(p) = st.subs_mut(scope).and_then(|s| s.get_mut(&sk)) else {
            return Ok(());
        };
        let (addr, _) = sh.start_push(key, p.cfg.clone(), Self::names(scope, &p.name))?;
        p.act = Activation::Active(addr);
        st.refresh_routes(scope);
        Ok(())
    }

    /// Subscriptions past their expiry, and those whose validation URL was not visited in time
    /// (for the grid's one expiry sweep).
    pub(crate) fn due(&self, now: u64) -> (Vec<SubAt>, Vec<SubAt>) {
        let mut expired = Vec::new();
        let mut lapsed = Vec::new();
        let st = self.state.read().expect("grid lock");
        st.for_each_sub(|scope, sk, p| {
            if p.cfg.expires_ms.is_some_and(|e| e <= now) {
                expired.push((scope.clone(), sk.to_string()));
            } else if let Activation::Awaiting { until_ms, .. } = p.act
                && until_ms <= now
            {
                lapsed.push((scope.clone(), sk.to_string()));
            }
        });
        (expired, lapsed)
    }

    /// Deletes a subscription [`Basic::due`] found expired, unless a PUT extended or recreated
    /// it meanwhile. Runs under the management lock.
    pub(crate) async fn delete_if_expired_locked(&self, sh: &Shared, scope: &OwnedScope, sk: &str) {
        let still = {
            let st = self.state.read().expect("grid lock");
            st.subs(scope.as_scope())
                .ok()
                .and_then(|(subs, _)| subs.get(sk))
                .is_some_and(|p| p.cfg.expires_ms.is_some_and(|e| e <= now_ms()))
        };
        if !still {
            return;
        }
        if let Err(e) = self
            .delete_push_subscription_locked(sh, scope.as_scope(), sk)
            .await
        {
            tracing::warn!(error = %e, "could not delete an expired event subscription");
        } else {
            tracing::info!(subscription = %sk, "expired event subscription deleted");
        }
    }

    /// Marks as failed a subscription [`Basic::due`] found waiting too long for its validation
    /// URL, unless it was validated meanwhile. Runs under the management lock.
    pub(crate) async fn fail_if_lapsed_locked(&self, sh: &Shared, scope: &OwnedScope, sk: &str) {
        let scope = scope.as_scope();
        let doc = {
            let mut st = self.state.write().expect("grid lock");
            let Some(p) = st.subs_mut(scope).and_then(|s| s.get_mut(sk)) else {
                return;
            };
            if !matches!(p.act, Activation::Awaiting { until_ms, .. } if until_ms <= now_ms()) {
                return;
            }
            p.act = Activation::Failed("The validation URL was not visited in time.".into());
            (stored_doc(&p.name, p.key, &p.props, Some(&p.act)), p.key)
        };
        // What it held from before (an endpoint change) will never be delivered: dropped.
        let r = sh
            .writer
            .submit(vec![
                Op::PutResource {
                    path: sub_path(scope, sk),
                    json: doc.0,
                },
                Op::DropSubscription { sub: doc.1 },
            ])
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "could not mark a subscription's validation as failed");
        }
    }

    /// Dead letters of a push subscription: up to `limit` records after sequence `after`.
    pub(crate) fn push_dead_letters(
        &self,
        sh: &Shared,
        scope: Scope<'_>,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, GridError> {
        let key = {
            let st = self.state.read().expect("grid lock");
            let (subs, _) = st.subs(scope)?;
            subs.get(&lc(name))
                .ok_or_else(|| GridError::not_found("event subscription", name))?
                .key
        };
        Ok(sh.writer.store().dead_letters(key, after, limit)?)
    }

    /// The topic actor of a custom topic or domain, its keys and schema.
    pub(crate) fn publish_target(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<PublishTarget, GridError> {
        let st = self.state.read().expect("grid lock");
        let s = st.source(kind, name).ok_or_else(|| GridError::NotFoundIn {
            kind: kind.what(),
            name: name.to_string(),
            parent: None,
        })?;
        Ok(PublishTarget {
            addr: s.addr.clone(),
            keys: Keys::of(&s.keys),
            cfg: s.cfg.clone(),
            topic_id: source_id(kind, &s.name),
            domain_topics: (kind == Kind::Domain)
                .then(|| st.domains[&lc(name)].1.keys().cloned().collect()),
        })
    }
}
