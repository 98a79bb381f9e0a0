//! The broker handle: the one entry point the MQTT edge uses to open sessions and route batches.
//!
//! Owns the client-id registry (which session actor holds each client id, and the session cap),
//! the routing shards' addresses, and the spreading of sessions and shards over the actor
//! threads. Holds no per-message state and must never wait on a session while holding a registry
//! entry.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix::prelude::*;
use dashmap::DashMap;
use ntex_bytes::ByteString;

use crate::mqtt::message::{AppMessage, SessionId};
use crate::mqtt::persist;
use crate::mqtt::remote::{Forwarded, Moved, Remote};
use crate::mqtt::retained::RetainedMessage;
use crate::mqtt::router::{
    self, ExportSubs, GetRetained, PublishBatch, RemoveSession, Router, Scope, SetRetained, SubReq,
    SubResult, Subscribe, Unsubscribe,
};
use crate::mqtt::session::{self, Attach, Discard, Handover, Mailbox, Session, SessionLimits};
use crate::store::Op;

struct Entry {
    id: SessionId,
    addr: Addr<Session>,
    mailbox: Arc<Mailbox>,
    /// When a connection last attached (µs since the epoch): a takeover announced by another
    /// node for an earlier connect is stale and ends nothing ([`Broker::evict`]).
    attached_us: u64,
}

struct Inner {
    registry: DashMap<ByteString, Entry>,
    routers: Vec<Addr<Router>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    next_id: AtomicU64,
    /// Entries in `registry`, kept exactly (changed only with the entry's shard locked) so the
    /// session cap holds under concurrent connects.
    sessions: AtomicUsize,
    limits: SessionLimits,
    hasher: std::collections::hash_map::RandomState,
    /// Where persistent sessions, their subscriptions and retained messages are kept
    /// (`mqtt.persistence = durable`).
    persist: Option<crate::store::Writer>,
    /// Set by [`Broker::save_sessions`]: sessions stopping from now on are stopped by the
    /// shutdown, not ended, and keep their records.
    closing: std::sync::atomic::AtomicBool,
    /// The other nodes of a cluster (`cluster.urls`); set once, before the listeners open.
    remote: RemoteSlot,
}

/// Where the broker and its shards find the cluster link, if there is one.
pub type RemoteSlot = Arc<std::sync::OnceLock<Arc<dyn Remote>>>;

/// The topic's routing shard.
fn shard_index(
    hasher: &std::collections::hash_map::RandomState,
    shards: usize,
    topic: &str,
) -> usize {
    if shards == 1 {
        return 0;
    }
    (hasher.hash_one(topic) % shards as u64) as usize
}

/// What a broker that keeps its retained messages needs.
pub struct Durable {
    pub writer: crate::store::Writer,
    /// The retained messages read back from the store ([`crate::mqtt::persist`]).
    pub retained: Vec<crate::mqtt::persist::StoredRetained>,
}

/// Shared handle to the routing shards and the session registry.
#[derive(Clone)]
pub struct Broker(Arc<Inner>);

/// What opening a session gives a connection.
pub struct Opened {
    pub id: SessionId,
    pub addr: Addr<Session>,
    /// The session's mailbox count, which routing shards bound (passed back with `subscribe`).
    pub mailbox: Arc<Mailbox>,
    pub present: bool,
    pub inbound_qos2: session::InboundQos2,
    /// The session outlives the connection (expiry interval above zero): its subscriptions are
    /// recorded with [`Broker::record_subscriptions`].
    pub persistent: bool,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The actor system is shutting down.
    Unavailable,
    /// The broker holds `max_sessions` sessions already.
    TooManySessions,
}

impl Broker {
    /// Starts `shards` routing shards spread over `arbiters`; sessions are spread over them too.
    /// Must be called inside a running actix system.
    pub fn start(arbiters: Vec<ArbiterHandle>, shards: usize, limits: SessionLimits) -> Broker {
        Broker::start_with(arbiters, shards, limits, None)
    }

    /// [`Broker::start`]; with `durable`, retained messages are kept in its store and the ones
    /// it read back at start-up are in place before the first client connects.
    pub fn start_with(
        arbiters: Vec<ArbiterHandle>,
        shards: usize,
        limits: SessionLimits,
        durable: Option<Durable>,
    ) -> Broker {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        let shards = shards.max(1);
        let hasher = std::collections::hash_map::RandomState::default();
        let persist = durable.as_ref().map(|d| d.writer.clone());
        let remote = RemoteSlot::default();
        let routers = match durable {
            None => (0..shards)
                .map(|i| {
                    let remote = remote.clone();
                    Router::start_in_arbiter(&arbiters[i % arbiters.len()], move |_| {
                        Router::new().with_remote(remote)
                    })
                })
                .collect(),
            Some(d) => {
                let mut per: Vec<Vec<_>> = (0..shards).map(|_| Vec::new()).collect();
                for r in d.retained {
                    per[shard_index(&hasher, shards, &r.msg.topic)].push(r);
                }
                per.into_iter()
                    .enumerate()
                    .map(|(i, retained)| {
                        let w = d.writer.clone();
                        let remote = remote.clone();
                        Router::start_in_arbiter(&arbiters[i % arbiters.len()], move |_| {
                            Router::durable(w, retained).with_remote(remote)
                        })
                    })
                    .collect()
            }
        };
        Broker(Arc::new(Inner {
            registry: DashMap::new(),
            routers,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            sessions: AtomicUsize::new(0),
            limits,
            hasher,
            persist,
            closing: Default::default(),
            remote,
        }))
    }

    /// Joins this broker to a cluster: from now on what is published here is forwarded, and
    /// subscriptions and connects are announced, through `remote`. Set once, before clients
    /// connect; a second call is refused.
    pub fn set_remote(&self, remote: Arc<dyn Remote>) -> Result<(), Arc<dyn Remote>> {
        self.0.remote.set(remote)
    }

    fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.0.remote.get()
    }

    /// Hands `msgs` to the cluster link, if any; answers what QoS 1/2 acknowledgements wait for.
    fn forward(&self, msgs: &[AppMessage]) -> Option<Forwarded> {
        let r = self.remote()?;
        r.forward(msgs, msgs.iter().any(|m| m.qos > 0))
    }

    /// Routes a batch another node forwarded, to this node's subscribers only (never forwarded
    /// again); resolves once it is queued for them. Messages of one topic keep their order.
    pub async fn route_remote(&self, msgs: Vec<AppMessage>) -> Result<(), MailboxError> {
        self.route_local(msgs, Scope::Direct).await
    }

    /// Routes a batch the cluster chose this node for, to one member each of the shared
    /// subscription `filter` (`$share/{group}/{f}`) here.
    pub async fn route_shared(
        &self,
        filter: &ByteString,
        msgs: Vec<AppMessage>,
    ) -> Result<(), MailboxError> {
        self.route_local(msgs, Scope::Shared(filter.clone())).await
    }

    /// Another node's client resumes the persistent session of `client_id`: it leaves this
    /// node (out of the registry, its records deleted, a connection still attached closed with
    /// Session taken over, its will not published) and is answered with what it held. `None`
    /// when this node holds no such session, or holds one that is not persistent (then it just
    /// ends, as a takeover would end it).
    pub async fn hand_over(&self, client_id: &str) -> Option<Moved> {
        let (id, addr) = {
            let e = self.0.registry.get(client_id)?;
            (e.id, e.addr.clone())
        };
        let subs = self.0.routers[0]
            .send(ExportSubs { session: id })
            .await
            .unwrap_or_default();
        self.0.registry.remove_if(client_id, |_, e| e.id == id)?;
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
        if let Some(w) = &self.0.persist {
            drop(w.submit(vec![Op::DeleteMqtt {
                key: persist::session_key(client_id),
            }]));
        }
        let handed = addr.send(Handover).await.ok()?;
        (handed.expiry_secs > 0).then_some(Moved {
            expiry_secs: handed.expiry_secs,
            subs,
            saved: handed.saved,
            inbound_qos2: handed.inbound_qos2,
        })
    }

    /// Puts a session handed over by another node in place (offline, as a restored one is),
    /// with its subscriptions, its messages and its records in this node's store; the connection
    /// that asked for it attaches next. Nothing happens if a session of `client_id` appeared here
    /// meanwhile.
    async fn adopt(&self, client_id: &ByteString, moved: Moved) {
        let entry = self.spawn_session(client_id);
        let (id, addr, mailbox) = (entry.id, entry.addr.clone(), entry.mailbox.clone());
        {
            use dashmap::mapref::entry::Entry as E;
            match self.0.registry.entry(client_id.clone()) {
                E::Occupied(_) => {
                    addr.do_send(Discard);
                    return;
                }
                E::Vacant(v) => {
                    v.insert(entry);
                    self.0.sessions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        addr.do_send(session::Restore {
            expiry_secs: moved.expiry_secs,
            saved: moved.saved,
            inbound_qos2: moved.inbound_qos2,
            will: None,
        });
        if !moved.subs.is_empty() {
            match self
                .subscribe(id, &addr, &mailbox, moved.subs.clone(), usize::MAX)
                .await
            {
                Ok(results) => {
                    self.record_subscriptions(id, true, &moved.subs, &results)
                        .await
                }
                Err(_) => tracing::warn!(%client_id, "a moved session's subscriptions were lost"),
            }
        }
    }

    /// Sets (empty payload: clears) a retained message without delivering it, on the shard
    /// that owns its topic (the cluster's retained-message bucket changed).
    pub fn set_retained(&self, msg: AppMessage) {
        let shard = self.shard_of(&msg.topic);
        self.0.routers[shard].do_send(SetRetained { msg });
    }

    /// A client connected to another node with `client_id` at `at_us` (µs since the epoch):
    /// its session here ends, as a local takeover would end it (the connection is closed with
    /// Session taken over), unless a connection attached here since (the announcement is stale:
    /// the client moved back first). Answers whether one ended.
    pub fn evict(&self, client_id: &str, at_us: u64) -> bool {
        let Some((_, e)) = self
            .0
            .registry
            .remove_if(client_id, |_, e| e.attached_us < at_us)
        else {
            return false;
        };
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
        // The session's own records go when it stops; the client id's record is no longer its
        // to delete then (it is not in the registry), so it goes here, before any later
        // reconnect here writes it again (one writer, in order).
        if let Some(w) = &self.0.persist {
            drop(w.submit(vec![Op::DeleteMqtt {
                key: persist::session_key(client_id),
            }]));
        }
        e.addr.do_send(Discard);
        true
    }

    /// The broker is shutting down: sessions that stop now keep their records.
    pub(crate) fn closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    /// The store that keeps the broker's durable state, if any.
    pub(crate) fn persist(&self) -> Option<&crate::store::Writer> {
        self.0.persist.as_ref()
    }

    /// Records a persistent session's inbound QoS 2 packet ids awaiting PUBREL (deleted when
    /// none); resolves after the commit (at once on a broker that keeps nothing). The caller
    /// sends PUBREC or PUBCOMP only then, so the ids survive `kill -9` exactly as the client was
    /// told.
    pub async fn record_inbound_qos2(&self, session: SessionId, ids: &[u16]) {
        let key = persist::inbound_qos2_key(session.0);
        let op = if ids.is_empty() {
            Op::DeleteMqtt { key }
        } else {
            Op::PutMqtt {
                key,
                value: persist::encode_pids(ids),
            }
        };
        self.commit(vec![op], "inbound QoS 2 packet ids").await;
    }

    /// Commits `ops` if the broker is durable, logging a failure (the state then lives in
    /// memory only until it changes again).
    async fn commit(&self, ops: Vec<Op>, what: &'static str) {
        if let Some(w) = &self.0.persist
            && !ops.is_empty()
            && let Err(e) = w.submit(ops).await
        {
            tracing::warn!(error = %e, "{what} not stored");
        }
    }

    /// Records (persistent) or forgets the subscriptions a SUBSCRIBE added, once the routers
    /// have them, so that they survive a restart; resolves after the commit. `results` are the
    /// routers' answers, in `subs`' order.
    pub async fn record_subscriptions(
        &self,
        session: SessionId,
        persistent: bool,
        subs: &[SubReq],
        results: &[SubResult],
    ) {
        if !persistent || self.0.persist.is_none() {
            return;
        }
        let ops = subs
            .iter()
            .zip(results)
            .filter(|(_, r)| !r.quota_exceeded)
            .map(|(s, _)| Op::PutMqtt {
                key: persist::sub_key(session.0, &s.filter),
                value: persist::encode_sub(&s.opts),
            })
            .collect();
        self.commit(ops, "MQTT subscriptions").await;
    }

    /// Forgets the recorded subscriptions an UNSUBSCRIBE removed.
    pub async fn forget_subscriptions(
        &self,
        session: SessionId,
        persistent: bool,
        filters: &[ByteString],
    ) {
        if !persistent || self.0.persist.is_none() {
            return;
        }
        let ops = filters
            .iter()
            .map(|f| Op::DeleteMqtt {
                key: persist::sub_key(session.0, f),
            })
            .collect();
        self.commit(ops, "MQTT unsubscriptions").await;
    }

    /// Graceful stop, after the listeners closed: every persistent session's QoS 1/2 messages
    /// (in flight and queued) and inbound QoS 2 packet ids are committed, for [`Broker::restore`]
    /// to put back. Answers how many messages were saved.
    pub async fn save_sessions(&self) -> usize {
        self.0.closing.store(true, Ordering::Release);
        if self.0.persist.is_none() {
            return 0;
        }
        let addrs: Vec<Addr<Session>> = self
            .0
            .registry
            .iter()
            .map(|e| e.value().addr.clone())
            .collect();
        let mut n = 0;
        for a in addrs {
            n += a.send(session::Save).await.unwrap_or(0);
        }
        // Each session submitted its own journal; the writer commits in submission order, so
        // once this later commit returns, theirs have too.
        self.commit(
            vec![Op::PutMeta {
                key: "mqtt_saved_at_ms".into(),
                value: crate::model::clock::now_ms().to_le_bytes().to_vec(),
            }],
            "MQTT session messages",
        )
        .await;
        n
    }

    /// Start-up: puts the persistent sessions read back from the store in place, offline, each
    /// with its subscriptions in the routers and its expiry running (from now), before any
    /// client connects. Retained messages are not sent: they were when the client subscribed.
    pub async fn restore(&self, sessions: Vec<persist::RestoredSession>) {
        // Subscriptions are put back this many sessions at a time, concurrently: one at a time,
        // 100,000 sessions took seconds of round trips to the routers.
        const AT_ONCE: usize = 512;
        let mut top = 0;
        let mut pending = Vec::with_capacity(AT_ONCE);
        for r in sessions {
            top = top.max(r.record.sid);
            let id = SessionId(r.record.sid);
            let entry = self.spawn_session_as(id, &r.client_id);
            let (addr, mailbox) = (entry.addr.clone(), entry.mailbox.clone());
            if self.0.registry.insert(r.client_id.clone(), entry).is_none() {
                self.0.sessions.fetch_add(1, Ordering::Relaxed);
            }
            addr.do_send(session::Restore {
                expiry_secs: r.record.expiry_secs,
                saved: r.saved,
                inbound_qos2: r.inbound_qos2,
                will: r.will,
            });
            if !r.subs.is_empty() {
                let cid = r.client_id;
                pending.push(async move {
                    if self
                        .subscribe(id, &addr, &mailbox, r.subs, usize::MAX)
                        .await
                        .is_err()
                    {
                        tracing::warn!(client_id = %cid, "restoring subscriptions failed");
                    }
                });
                if pending.len() == AT_ONCE {
                    futures_util::future::join_all(pending.drain(..)).await;
                }
            }
        }
        futures_util::future::join_all(pending).await;
        self.0.next_id.fetch_max(top + 1, Ordering::Relaxed);
    }

    pub fn shards(&self) -> usize {
        self.0.routers.len()
    }

    fn shard_of(&self, topic: &str) -> usize {
        shard_index(&self.0.hasher, self.0.routers.len(), topic)
    }

    fn spawn_session(&self, client_id: &ByteString) -> Entry {
        let id = SessionId(self.0.next_id.fetch_add(1, Ordering::Relaxed));
        self.spawn_session_as(id, client_id)
    }

    fn spawn_session_as(&self, id: SessionId, client_id: &ByteString) -> Entry {
        let n = self.0.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.0.arbiters.len();
        let (broker, cid, limits) = (self.clone(), client_id.clone(), self.0.limits);
        let mailbox = Arc::new(Mailbox::new(&self.0.limits));
        let m = mailbox.clone();
        let addr = Session::start_in_arbiter(&self.0.arbiters[n], move |_| {
            Session::new(id, cid, broker, limits, m)
        });
        Entry {
            id,
            addr,
            mailbox,
            attached_us: 0,
        }
    }

    /// Opens (or resumes, unless `clean_start`) the session of `client_id` and attaches a
    /// connection to it. An existing connection with that client id is closed.
    pub async fn open(
        &self,
        client_id: &ByteString,
        clean_start: bool,
        mut attach: impl FnMut() -> Attach,
    ) -> Result<Opened, OpenError> {
        // Set when this call gave back a session slot (its client's ending session): the new
        // session takes it again without the cap check, so a client replacing its own session is
        // never refused because another took the slot meanwhile.
        let mut slot_given_back = false;
        // A clean start replaced a session of this client id: its record (if any) goes.
        let mut replaced = false;
        // In a cluster, a session this node does not hold may be another's: it moves here.
        if !clean_start
            && let Some(r) = self.remote()
            && !self.0.registry.contains_key(client_id)
            && let Some(moved) = r.fetch(client_id).await
        {
            self.adopt(client_id, moved).await;
        }
        for _ in 0..8 {
            let (id, addr, mailbox, fresh) = {
                use dashmap::mapref::entry::Entry as E;
                match self.0.registry.entry(client_id.clone()) {
                    E::Occupied(mut e) if clean_start => {
                        replaced = true;
                        let new = self.spawn_session(client_id);
                        let old = std::mem::replace(e.get_mut(), new);
                        old.addr.do_send(Discard);
                        let e = e.get();
                        (e.id, e.addr.clone(), e.mailbox.clone(), true)
                    }
                    E::Occupied(e) => {
                        let e = e.get();
                        (e.id, e.addr.clone(), e.mailbox.clone(), false)
                    }
                    E::Vacant(e) => {
                        let full = self.0.sessions.fetch_add(1, Ordering::Relaxed)
                            >= self.0.limits.max_sessions;
                        let carried = std::mem::take(&mut slot_given_back);
                        if full && !carried {
                            self.0.sessions.fetch_sub(1, Ordering::Relaxed);
                            return Err(OpenError::TooManySessions);
                        }
                        let new = self.spawn_session(client_id);
                        let r = (new.id, new.addr.clone(), new.mailbox.clone(), true);
                        e.insert(new);
                        r
                    }
                }
            };
            let mut a = attach();
            a.fresh = fresh;
            let expiry = a.expiry_secs.min(self.0.limits.max_session_expiry_secs);
            match addr.send(a).await {
                Ok(Some(a)) => {
                    let persistent = expiry > 0;
                    let key = || persist::session_key(client_id);
                    let ops = if persistent {
                        // Before CONNACK: a session the client was told about survives a crash.
                        let rec = persist::SessionRecord {
                            sid: id.0,
                            expiry_secs: expiry,
                        };
                        vec![Op::PutMqtt {
                            key: key(),
                            value: persist::encode_session(rec),
                        }]
                    } else if a.present {
                        // Resumed without an expiry: it ends with this connection.
                        vec![
                            Op::DeleteMqtt { key: key() },
                            Op::DeleteMqttPrefix {
                                prefix: persist::subs_prefix(id.0),
                            },
                        ]
                    } else if replaced {
                        vec![Op::DeleteMqtt { key: key() }]
                    } else {
                        Vec::new()
                    };
                    self.commit(ops, "MQTT session record").await;
                    if let Some(r) = self.remote() {
                        let now = crate::model::clock::now_us();
                        if let Some(mut e) = self.0.registry.get_mut(client_id)
                            && e.id == id
                        {
                            e.attached_us = now;
                        }
                        r.claim(client_id, now, persistent);
                    }
                    return Ok(Opened {
                        id,
                        addr,
                        mailbox,
                        present: a.present,
                        inbound_qos2: a.inbound_qos2,
                        persistent,
                    });
                }
                // The session is ending (non-persistent) or stopped (expired) between lookup
                // and attach: drop it, try again with a new one.
                Ok(None) | Err(_) => slot_given_back |= self.forget(client_id, id),
            }
        }
        Err(OpenError::Unavailable)
    }

    /// Called by a session actor when it stops.
    /// A session stopped; whether it was still its client id's session in the registry.
    pub(crate) fn session_ended(
        &self,
        client_id: &ByteString,
        id: SessionId,
        persistent: bool,
    ) -> bool {
        let ours = self.forget(client_id, id);
        // A graceful stop keeps persistent sessions here for the next start.
        if ours
            && persistent
            && !self.closing()
            && let Some(r) = self.remote()
        {
            r.released(client_id);
        }
        let last = self.0.routers.len() - 1;
        for (i, r) in self.0.routers.iter().enumerate() {
            r.do_send(RemoveSession {
                session: id,
                count_metrics: i == last,
                interest: i == 0,
            });
        }
        ours
    }

    /// Removes `client_id`'s registry entry if it is still session `id`; whether it was.
    fn forget(&self, client_id: &ByteString, id: SessionId) -> bool {
        let removed = self
            .0
            .registry
            .remove_if(client_id, |_, e| e.id == id)
            .is_some();
        if removed {
            self.0.sessions.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Routes a batch from one publisher; resolves once every message is queued for its
    /// subscribers. Messages of one topic keep their order.
    pub async fn route(&self, msgs: Vec<AppMessage>) -> Result<(), MailboxError> {
        let forwarded = self.forward(&msgs);
        self.route_local(msgs, self.local_scope()).await?;
        if let Some(f) = forwarded {
            // Bounded: the link answers within its own timeouts; this one only guards a link
            // that stopped answering altogether.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), f).await;
        }
        Ok(())
    }

    /// Which subscriptions a message published here goes to directly: all of them on a single
    /// node; in a cluster, shared groups get it through the cluster, like every node's.
    fn local_scope(&self) -> Scope {
        match self.remote() {
            Some(r) if r.connected() => Scope::Direct,
            _ => Scope::All,
        }
    }

    async fn route_local(&self, msgs: Vec<AppMessage>, scope: Scope) -> Result<(), MailboxError> {
        if self.0.routers.len() == 1 {
            return self.0.routers[0]
                .send(PublishBatch {
                    msgs,
                    done: None,
                    scope,
                })
                .await;
        }
        let mut per: Vec<Vec<AppMessage>> = (0..self.0.routers.len()).map(|_| Vec::new()).collect();
        for m in msgs {
            per[self.shard_of(&m.topic)].push(m);
        }
        let mut waits = Vec::new();
        for (i, msgs) in per.into_iter().enumerate() {
            if !msgs.is_empty() {
                waits.push(self.0.routers[i].send(PublishBatch {
                    msgs,
                    done: None,
                    scope: scope.clone(),
                }));
            }
        }
        for w in waits {
            w.await?;
        }
        Ok(())
    }

    /// Routes a batch from one publisher without waiting for the routers; `in_flight` counts its
    /// messages until they are routed. Messages of one topic keep their order, also relative to
    /// batches sent with [`Broker::route`] (one mailbox per shard).
    pub fn route_detached(&self, msgs: Vec<AppMessage>, in_flight: &Arc<router::InFlight>) {
        drop(self.forward(&msgs));
        let scope = self.local_scope();
        if self.0.routers.len() == 1 {
            let done = Some(in_flight.guard(msgs.len()));
            self.0.routers[0].do_send(PublishBatch { msgs, done, scope });
            return;
        }
        let mut per: Vec<Vec<AppMessage>> = (0..self.0.routers.len()).map(|_| Vec::new()).collect();
        for m in msgs {
            per[self.shard_of(&m.topic)].push(m);
        }
        for (i, msgs) in per.into_iter().enumerate() {
            if !msgs.is_empty() {
                let done = Some(in_flight.guard(msgs.len()));
                self.0.routers[i].do_send(PublishBatch {
                    msgs,
                    done,
                    scope: scope.clone(),
                });
            }
        }
    }

    /// Routes one message without waiting (wills).
    pub fn publish(&self, msg: AppMessage) {
        drop(self.forward(std::slice::from_ref(&msg)));
        let shard = self.shard_of(&msg.topic);
        self.0.routers[shard].do_send(PublishBatch {
            msgs: vec![msg],
            done: None,
            scope: self.local_scope(),
        });
    }

    /// The live retained message of topic name `topic` and when it was set, asked of the one
    /// shard that owns the topic (HTTP's retained read API, docs/eventgrid.md §7.8).
    pub async fn retained(&self, topic: &str) -> Result<Option<RetainedMessage>, MailboxError> {
        let shard = self.shard_of(topic);
        self.0.routers[shard]
            .send(GetRetained {
                topic: ByteString::from(topic),
            })
            .await
    }

    /// Adds subscriptions on every shard; the results merge the shards' retained messages.
    pub async fn subscribe(
        &self,
        session: SessionId,
        addr: &Addr<Session>,
        mailbox: &Arc<Mailbox>,
        subs: Vec<SubReq>,
        max_subs: usize,
    ) -> Result<Vec<SubResult>, MailboxError> {
        let mut waits = Vec::with_capacity(self.0.routers.len());
        for (i, r) in self.0.routers.iter().enumerate() {
            waits.push(r.send(Subscribe {
                session,
                addr: addr.clone(),
                mailbox: mailbox.clone(),
                subs: subs.clone(),
                max_subs,
                count_metrics: i == 0,
            }));
        }
        let mut merged: Option<Vec<SubResult>> = None;
        for w in waits {
            let res = w.await?;
            match &mut merged {
                None => merged = Some(res),
                Some(m) => {
                    for (a, b) in m.iter_mut().zip(res) {
                        a.retained.extend(b.retained);
                    }
                }
            }
        }
        // New filters reach the other nodes before the SUBACK (bounded: NATS may be away).
        if let Some(r) = self.remote()
            && merged
                .iter()
                .flatten()
                .any(|r| !r.existed && !r.quota_exceeded)
            && let Some(settled) = r.settled()
        {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), settled).await;
        }
        Ok(merged.unwrap_or_default())
    }

    /// Removes subscriptions on every shard; answers, per filter, whether it existed.
    pub async fn unsubscribe(
        &self,
        session: SessionId,
        filters: Vec<ByteString>,
    ) -> Result<Vec<bool>, MailboxError> {
        let mut waits = Vec::with_capacity(self.0.routers.len());
        for (i, r) in self.0.routers.iter().enumerate() {
            waits.push(r.send(Unsubscribe {
                session,
                filters: filters.clone(),
                count_metrics: i == 0,
            }));
        }
        let mut first = None;
        for w in waits {
            let res = w.await?;
            first.get_or_insert(res);
        }
        Ok(first.unwrap_or_default())
    }

    /// Number of sessions in the registry.
    pub fn session_count(&self) -> usize {
        self.0.registry.len()
    }

    /// Whether the broker holds a session (connected or persistent) named `client_id`.
    pub fn has_session(&self, client_id: &str) -> bool {
        self.0.registry.contains_key(client_id)
    }
}
