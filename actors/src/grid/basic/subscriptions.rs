//! Management of push event subscriptions under a topic, a domain or a domain topic: the
//! validation handshake that gates activation, updates, deletion (and a domain topic's
//! auto-deletion with its last subscription), manual validation, the expiry sweep, dead letters.
//!
//! Part of the basic-tier registry ([`super`]). The handshake runs before the management lock
//! is taken; everything after it is committed before the registry shows it. Must never route
//! events to a subscription that has not passed its handshake.

use super::*;

impl Grid {
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
        let key = previous
            .as_ref()
            .map_or_else(|| self.0.next_key.fetch_add(1, Ordering::Relaxed), |p| p.0);
        let mut act_token = None;
        if needs_handshake {
            let token = random_hex(16)?;
            let handshake = match cfg.delivery.schema {
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
                .shard_for(&cfg.delivery.endpoint)
                .send(Validate {
                    url: cfg.delivery.endpoint.clone(),
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
                        cfg.delivery.endpoint.split('?').next().unwrap_or_default()
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
                    r.do_send(Shutdown);
                }
                a
            }
            (None, Some(r)) => {
                r.do_send(ReconfigurePush(
                    cfg.delivery.clone(),
                    self.shard_for(&cfg.delivery.endpoint),
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
                a.do_send(Shutdown);
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
    pub(in crate::grid) async fn sweep_basic(&self) {
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
