//! The edge's registry of live connections (who each authenticated as, what it may do, until
//! when, and a way to close it) and of its sessions by authentication name (docs/eventgrid.md
//! §7.1). A connection's [`ConnAuth`] reads its policy through a one-entry cache; the registry
//! swaps policies in place, or closes connections, when the namespace's identity configuration
//! changes or an authentication expires.
//!
//! Never evaluates a query or a template itself: policies come compiled from the identity core.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use evgrid_actors::identity::directory::{Denied, Directory};
use evgrid_actors::identity::policy::ClientPolicy;
use evgrid_actors::identity::{AuthzMode, Identity};
use evgrid_actors::metrics::{AUTH, DenialKind, RevokeKind};
use evgrid_actors::mqtt::message::{CloseReason, ConnId, Out};
use evgrid_actors::mqtt::outbox::OutboxTx;
use ntex_bytes::ByteString;

use super::{Admitted, Refused};

/// What a connection shares with the registry: who it is, what it may do, until when.
pub(crate) struct Live {
    identity: RwLock<Arc<Identity>>,
    policy: RwLock<Arc<ClientPolicy>>,
    /// Bumped on every policy swap: connections' caches compare it.
    version: AtomicU64,
    /// ms since the epoch; 0: never.
    expires_ms: AtomicU64,
    client_id: ByteString,
    tx: OutboxTx,
}

impl Live {
    pub fn identity(&self) -> Arc<Identity> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn policy(&self) -> Arc<ClientPolicy> {
        self.policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, id: Arc<Identity>, policy: Arc<ClientPolicy>) {
        self.expires_ms
            .store(id.expires_ms.unwrap_or(0), Ordering::Relaxed);
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = id;
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = policy;
        self.version.fetch_add(1, Ordering::Release);
    }

    fn close(&self, why: CloseReason) {
        let _ = self.tx.send(Out::Close(why));
    }
}

/// A connection's authorization state: its [`Live`] entry and a one-entry cache of the last
/// PUBLISH topic's decision (fan-in with a constant topic pays one string compare).
pub(crate) struct ConnAuth {
    live: Arc<Live>,
    /// The CONNECT's user name, for re-authentication.
    pub username: Option<ByteString>,
    cache: RefCell<Option<(ByteString, u64, bool)>>,
    registry: Arc<Registry>,
    conn: ConnId,
}

impl ConnAuth {
    pub fn identity(&self) -> Arc<Identity> {
        self.live.identity()
    }

    /// Whether a PUBLISH to `topic` is allowed.
    pub fn may_publish(&self, topic: &ByteString) -> bool {
        let version = self.live.version.load(Ordering::Acquire);
        if let Some((t, v, ok)) = &*self.cache.borrow()
            && *v == version
            && t == topic
        {
            return *ok;
        }
        let ok = self.live.policy().may_publish(topic);
        *self.cache.borrow_mut() = Some((topic.clone(), version, ok));
        ok
    }

    /// Whether a SUBSCRIBE to `filter` is allowed (counted when not).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        let ok = self.live.policy().may_subscribe(filter);
        if !ok {
            AUTH.denied(DenialKind::Subscribe, 1);
        }
        ok
    }

    /// The session now holds subscriptions to `filters` (for revocation's check).
    pub fn subscribed(&self, filters: impl IntoIterator<Item = ByteString>) {
        self.registry
            .lock()
            .subs
            .entry(self.live.client_id.clone())
            .or_default()
            .extend(filters);
    }

    pub fn unsubscribed(&self, filters: &[ByteString]) {
        if let Some(s) = self.registry.lock().subs.get_mut(&self.live.client_id) {
            for f in filters {
                s.remove(f);
            }
        }
    }

    /// MQTT 5 re-authentication succeeded with `id` (the same authentication name): new
    /// expiry, attributes and policy.
    pub fn reauthenticated(&self, id: Identity, mode: AuthzMode, dir: &Directory) {
        let policy = Arc::new(dir.policy(&id, mode));
        self.live.set(Arc::new(id), policy);
    }
}

impl Drop for ConnAuth {
    fn drop(&mut self) {
        self.registry.lock().live.remove(&self.conn);
    }
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) live: HashMap<ConnId, Arc<Live>>,
    /// Session name → folded ([`evgrid_actors::identity::fold`]) authentication name of the sessions opened through this edge.
    pub(super) by_client: HashMap<ByteString, String>,
    /// Folded authentication name → its session names.
    pub(super) by_auth: HashMap<String, HashSet<ByteString>>,
    /// Session name → the filters it subscribed to through this edge.
    pub(super) subs: HashMap<ByteString, HashSet<ByteString>>,
}

/// The edge's connections by id, and its sessions by authentication name.
#[derive(Default)]
pub(crate) struct Registry(Mutex<Inner>);

impl Registry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section is a few map operations: a poisoned map is still valid.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims session `client_id` for `auth_name` (docs/eventgrid.md §7.1): the same name may
    /// take its own session over; another name may not use it while it exists; a name may hold
    /// at most `max` sessions, connected or not. `exists`: whether the broker holds a session.
    /// `max = None` (anonymous clients, whose name is only what they claim): the session is
    /// neither counted nor owned, but may not take one an authenticated name holds.
    pub fn claim(
        &self,
        client_id: &ByteString,
        auth_name: &str,
        max: Option<u32>,
        exists: impl Fn(&str) -> bool,
    ) -> Result<(), Refused> {
        let auth = evgrid_actors::identity::fold(auth_name).into_owned();
        let mut g = self.lock();
        let inner = &mut *g;
        // `by_client` records only authenticated sessions: an anonymous client, whose name is
        // only what it claims, may take none of them over, even under the holder's name.
        if let Some(holder) = inner.by_client.get(client_id)
            && (max.is_none() || *holder != auth)
        {
            if exists(client_id) {
                return Err(Refused::Denied(Denied::NotAuthorized(
                    "the session belongs to another authentication name".into(),
                )));
            }
            let holder = holder.clone();
            forget(inner, client_id, &holder);
        }
        let Some(max) = max else {
            // Nor may it pass for a name an authenticated session holds (it would get that
            // name's `${client.authenticationName}` topics).
            if inner
                .by_auth
                .get(&auth)
                .is_some_and(|held| held.iter().any(|c| exists(c)))
            {
                return Err(Refused::Denied(Denied::NotAuthorized(
                    "the name belongs to an authenticated client".into(),
                )));
            }
            return Ok(());
        };
        let held = inner.by_auth.entry(auth.clone()).or_default();
        let subs = &mut inner.subs;
        held.retain(|c| {
            let keep = c == client_id || exists(c);
            if !keep {
                subs.remove(c);
            }
            keep
        });
        if !held.contains(client_id) && held.len() >= max.max(1) as usize {
            return Err(Refused::Quota);
        }
        held.insert(client_id.clone());
        inner.by_client.insert(client_id.clone(), auth);
        Ok(())
    }

    /// A subscription the existing session `client_id` holds that `policy` no longer allows:
    /// resuming it would keep what a revocation took away while the client was offline.
    pub fn lost_subscription(
        &self,
        client_id: &ByteString,
        policy: &ClientPolicy,
    ) -> Option<ByteString> {
        let g = self.lock();
        g.subs
            .get(client_id)?
            .iter()
            .find(|f| !policy.may_subscribe(f))
            .cloned()
    }

    /// Forgets what it records of sessions the broker no longer holds and no connection uses
    /// (a name's session set, a session's owner and filters), so that clients coming and going
    /// with ever new client ids or names leave nothing behind.
    pub fn sweep(&self, exists: impl Fn(&str) -> bool) {
        let mut g = self.lock();
        let inner = &mut *g;
        let used: HashSet<ByteString> = inner.live.values().map(|l| l.client_id.clone()).collect();
        let gone = |c: &ByteString| !used.contains(c) && !exists(c);
        inner.subs.retain(|c, _| !gone(c));
        inner.by_client.retain(|c, _| !gone(c));
        inner.by_auth.retain(|_, held| {
            held.retain(|c| !gone(c));
            !held.is_empty()
        });
    }

    /// Registers an accepted connection; the returned state unregisters it when dropped.
    pub fn enter(
        self: &Arc<Self>,
        conn: ConnId,
        client_id: ByteString,
        clean_start: bool,
        Admitted { id, policy }: Admitted,
        tx: OutboxTx,
        username: Option<ByteString>,
    ) -> ConnAuth {
        let live = Arc::new(Live {
            expires_ms: AtomicU64::new(id.expires_ms.unwrap_or(0)),
            identity: RwLock::new(Arc::new(id)),
            policy: RwLock::new(Arc::new(policy)),
            version: AtomicU64::new(0),
            client_id: client_id.clone(),
            tx,
        });
        {
            let mut g = self.lock();
            if clean_start {
                g.subs.remove(&client_id);
            }
            g.live.insert(conn, live.clone());
        }
        ConnAuth {
            live,
            username,
            cache: RefCell::new(None),
            registry: self.clone(),
            conn,
        }
    }

    /// Applies a new directory to every live connection: a client that is no longer valid is
    /// closed (authentication error); one whose new policy no longer covers a subscription it
    /// holds is closed (authorization error); the others get the new policy.
    pub fn revise(&self, dir: &Directory, mode: AuthzMode) {
        let (live, subs): (Vec<Arc<Live>>, HashMap<ByteString, Vec<ByteString>>) = {
            let g = self.lock();
            let live: Vec<_> = g.live.values().cloned().collect();
            let subs = live
                .iter()
                .filter_map(|l| {
                    let s = g.subs.get(&l.client_id)?;
                    Some((l.client_id.clone(), s.iter().cloned().collect()))
                })
                .collect();
            (live, subs)
        };
        for l in live {
            let id = l.identity();
            if let Err(why) = dir.still_valid(&id) {
                tracing::info!(client_id = ?l.client_id, auth_name = ?id.auth_name,
                    reason = %why, "disconnecting a client whose authentication was revoked");
                AUTH.disconnected(RevokeKind::Revoked);
                l.close(CloseReason::NotAuthenticated);
                continue;
            }
            let policy = dir.policy(&id, mode);
            let lost = subs
                .get(&l.client_id)
                .and_then(|s| s.iter().find(|f| !policy.may_subscribe(f)));
            if let Some(f) = lost {
                tracing::info!(client_id = ?l.client_id, auth_name = ?id.auth_name,
                    filter = ?f, "disconnecting a client whose subscription is no longer authorized");
                AUTH.disconnected(RevokeKind::Narrowed);
                l.close(CloseReason::NotAuthorized);
                continue;
            }
            if *l.policy() != policy {
                l.set(id, Arc::new(policy));
            }
        }
    }

    /// Closes the connections whose authentication expired by `now_ms`.
    pub fn expire(&self, now_ms: u64) {
        let g = self.lock();
        for l in g.live.values() {
            let at = l.expires_ms.load(Ordering::Relaxed);
            if at != 0 && at <= now_ms {
                // Once: a later pass finds it at 0 while the connection closes.
                l.expires_ms.store(0, Ordering::Relaxed);
                tracing::info!(client_id = ?l.client_id, "disconnecting a client whose authentication expired");
                AUTH.disconnected(RevokeKind::Expired);
                l.close(CloseReason::NotAuthenticated);
            }
        }
    }
}

fn forget(inner: &mut Inner, client_id: &ByteString, auth: &str) {
    inner.by_client.remove(client_id);
    if let Some(s) = inner.by_auth.get_mut(auth) {
        s.remove(client_id);
        if s.is_empty() {
            inner.by_auth.remove(auth);
        }
    }
}
