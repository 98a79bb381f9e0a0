//! Topic routing shard actor.
//!
//! Owns one shard of the routing state: the subscription trie (every shard holds every
//! subscription, because a wildcard filter can match a topic of any shard) and the retained
//! messages of the topics hashed to this shard (also read one at a time: [`GetRetained`]). Publishers' batches arrive already split by shard,
//! so messages of one topic always pass through one shard, in order.
//!
//! Turns one incoming batch into at most one `Deliver` mailbox message per subscribing session.
//! Must never block on a session: it uses `do_send`, bounded by the session's [`Mailbox`] count
//! (what does not fit is dropped here), and each session applies its own queue limits.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use ntex_bytes::ByteString;

use crate::metrics::METRICS;
use crate::model::clock::now_ms;
use crate::mqtt::message::{AppMessage, Delivery, IdMap, SessionId};
use crate::mqtt::persist::{StoredRetained, encode_retained, retained_key};
use crate::mqtt::retained::{RetainedIndex, RetainedMessage};
use crate::mqtt::session::{Deliver, JournalAck, Mailbox, Session};
use crate::mqtt::trie::{Matched, SubOpts, SubTrie, TopicLimits, parse_filter};
use crate::store::{Op, Writer};

/// A batch of messages from one publisher for this shard. Sent by connections (and by sessions for
/// wills); answered once every message is in the queues of its subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch {
    pub msgs: Vec<AppMessage>,
    /// Released once the batch is routed (or dropped unrouted), for batches sent without waiting
    /// for the answer.
    pub done: Option<InFlightGuard>,
    pub scope: Scope,
}

/// Which of the matching subscriptions a batch is for.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// All of them: a single node.
    #[default]
    All,
    /// All but shared ones: in a cluster, a shared group's messages come through the cluster,
    /// which picks one node per message ([`Scope::Shared`]).
    Direct,
    /// One member of the shared subscription named (`$share/{group}/{filter}`), the cluster
    /// having chosen this node for these messages. Retained messages are not kept from here
    /// (the [`Scope::Direct`] path keeps them).
    Shared(ByteString),
}

/// How many messages one connection has handed to the routers without waiting for the answer,
/// and a wake-up for when that number falls.
///
/// A connection routing QoS 0 batches does not await each reply: the reply would be a wake-up from
/// an actix thread, and tokio's `LocalSet` serves those only every 31st task while local work is
/// queued, so under load the writer tasks waiting for their sessions starved behind them. This
/// counter is the back-pressure instead: past a limit the connection stops reading.
#[derive(Debug, Default)]
pub struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    /// Stores a permit when nobody waits, so a release between a check and a wait is not lost.
    released: tokio::sync::Notify,
}

impl InFlight {
    /// Messages handed over and not yet routed.
    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Resolves when some messages have been routed since the last call (or at once, if some
    /// were routed with nobody waiting).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    /// Counts `n` messages as handed over until the guard is dropped.
    pub fn guard(self: &Arc<Self>, n: usize) -> InFlightGuard {
        self.count.fetch_add(n, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard {
            n,
            of: self.clone(),
        }
    }
}

/// Part of an [`InFlight`] count; released when dropped, so a batch lost with a stopped router
/// still releases its connection.
#[derive(Debug)]
pub struct InFlightGuard {
    n: usize,
    of: Arc<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.of
            .count
            .fetch_sub(self.n, std::sync::atomic::Ordering::AcqRel);
        self.of.released.notify_one();
    }
}

/// One filter of a SUBSCRIBE, already validated by the edge.
#[derive(Debug, Clone)]
pub struct SubReq {
    pub filter: ByteString,
    pub opts: SubOpts,
}

/// What a shard says about one filter of a SUBSCRIBE.
#[derive(Debug, Clone, Default)]
pub struct SubResult {
    /// The session had this filter before (it was replaced).
    pub existed: bool,
    /// Refused: the session already has the maximum number of subscriptions.
    pub quota_exceeded: bool,
    /// Retained messages of this shard's topics that match, already filtered by retain handling.
    pub retained: Vec<Arc<AppMessage>>,
}

/// Adds subscriptions for a session. Sent by connections to every shard.
#[derive(Message)]
#[rtype(result = "Vec<SubResult>")]
pub struct Subscribe {
    pub session: SessionId,
    pub addr: Addr<Session>,
    pub mailbox: Arc<Mailbox>,
    pub subs: Vec<SubReq>,
    pub max_subs: usize,
    /// Only shard 0 counts subscriptions in the metrics, so N shards do not count N times.
    pub count_metrics: bool,
}

/// Removes subscriptions; answers, per filter, whether it existed.
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct Unsubscribe {
    pub session: SessionId,
    pub filters: Vec<ByteString>,
    pub count_metrics: bool,
}

/// Asks the shard owning topic name `topic` for its live retained message (HTTP's retained read
/// API, docs/eventgrid.md §7.8). Named apart from the subscribe path's retained messages.
#[derive(Message)]
#[rtype(result = "Option<RetainedMessage>")]
pub struct GetRetained {
    pub topic: ByteString,
}

/// Sets (or, with an empty payload, clears) the retained message of `msg.topic` without
/// delivering it: the cluster's retained-message bucket changed (another node's publish, or
/// the bucket read at start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRetained {
    pub msg: AppMessage,
}

/// A session's subscriptions with their options, for handing it to another node.
#[derive(Message)]
#[rtype(result = "Vec<SubReq>")]
pub struct ExportSubs {
    pub session: SessionId,
}

/// Removes every subscription of a session that ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveSession {
    pub session: SessionId,
    pub count_metrics: bool,
    /// This shard tells the cluster link of the filters that go: shard 0, the one that told it
    /// of them when they came, so that the link sees each filter's add before its remove.
    pub interest: bool,
}

struct SessionSubs {
    addr: Addr<Session>,
    mailbox: Arc<Mailbox>,
    filters: HashSet<ByteString>,
}

/// One routing shard.
pub struct Router {
    trie: SubTrie,
    retained: RetainedIndex,
    sessions: IdMap<SessionSubs>,
    // Scratch space reused across batches so routing allocates only the deliveries themselves.
    matched: Vec<Matched>,
    seen: IdMap<usize>,
    out: IdMap<Vec<Delivery>>,
    /// Where retained messages are kept across restarts (`mqtt.persistence = durable`).
    persist: Option<Writer>,
    /// Retained-message changes of the batch being routed, committed before it is answered.
    ops: Vec<Op>,
    /// The cluster link, told of filters gained and lost by the shard that counts them.
    remote: crate::mqtt::broker::RemoteSlot,
}

impl Router {
    pub fn new() -> Self {
        Router {
            trie: SubTrie::default(),
            retained: RetainedIndex::default(),
            sessions: IdMap::default(),
            matched: Vec::new(),
            seen: IdMap::default(),
            out: IdMap::default(),
            persist: None,
            ops: Vec::new(),
            remote: Default::default(),
        }
    }

    /// This shard tells `remote`'s link (once set) of the filters it counts.
    pub fn with_remote(mut self, remote: crate::mqtt::broker::RemoteSlot) -> Self {
        self.remote = remote;
        self
    }

    fn interest(&self, filter: &ByteString, added: bool) {
        if let Some(r) = self.remote.get() {
            r.interest(filter, added);
        }
    }

    /// A shard that keeps its retained messages in the store, starting with `retained` (those
    /// of its topics, as read back at start-up; expired ones are left out).
    pub fn durable(persist: Writer, retained: Vec<StoredRetained>) -> Self {
        let mut r = Router::new();
        let (now, mono) = (now_ms(), Instant::now());
        let mut gone = Vec::new();
        for s in retained {
            let mut msg = s.msg;
            if let Some(e) = s.expires_ms {
                if e <= now {
                    // Expired while the broker was down.
                    gone.push(Op::DeleteMqtt {
                        key: retained_key(&msg.topic),
                    });
                    continue;
                }
                msg.expires_at = Some(mono + std::time::Duration::from_millis(e - now));
            }
            METRICS
                .retained
                .add(r.retained.set(Arc::new(msg), s.modified_ms) as i64);
        }
        if !gone.is_empty() {
            // Submitted now; nobody needs to wait for it (a lost delete is redone next start).
            drop(persist.submit(gone));
        }
        r.persist = Some(persist);
        r
    }

    fn route_one(&mut self, msg: AppMessage, scope: &Scope) {
        if let Scope::Shared(filter) = scope {
            let Ok(f) = parse_filter(filter, TopicLimits::UNLIMITED) else {
                return;
            };
            // [MQTT-4.7.2-1]: NATS's wildcards do not know that a leading MQTT wildcard never
            // matches a `$` topic.
            if msg.topic.starts_with('$') && f.filter.starts_with(['+', '#']) {
                return;
            }
            if let Some(m) = self.trie.pick_shared(f) {
                let msg = Arc::new(msg);
                self.add(&msg, m);
            }
            return;
        }
        if msg.retain {
            self.keep_retained(&msg);
        }
        let msg = Arc::new(msg);
        let direct = matches!(scope, Scope::Direct);
        let mut matched = std::mem::take(&mut self.matched);
        matched.clear();
        self.seen.clear();
        self.trie.matches(&msg.topic, &mut matched);
        for m in &matched {
            if direct && m.shared {
                continue;
            }
            self.add(&msg, *m);
        }
        self.matched = matched;
    }

    /// Keeps `msg` as its topic's retained message (an empty payload clears it), in the store
    /// too on a durable shard (committed with the batch).
    fn keep_retained(&mut self, msg: &AppMessage) {
        let kept = Arc::new(msg.detached());
        // A clock read per retained message only: retained ones are the rare case.
        let now = now_ms();
        if self.persist.is_some() {
            let key = retained_key(&kept.topic);
            self.ops.push(if kept.payload.is_empty() {
                Op::DeleteMqtt { key }
            } else {
                let expires = kept
                    .expires_at
                    .map(|t| now + t.saturating_duration_since(Instant::now()).as_millis() as u64);
                Op::PutMqtt {
                    key,
                    value: encode_retained(&kept, now, expires),
                }
            });
        }
        METRICS.retained.add(self.retained.set(kept, now) as i64);
    }

    /// Adds `msg`'s delivery for match `m` to the batch of `m`'s session.
    fn add(&mut self, msg: &Arc<AppMessage>, m: Matched) {
        // [MQTT-3.8.3-3]: no-local subscriptions never get their own session's messages.
        if m.opts.no_local && msg.publisher == Some(m.session) {
            return;
        }
        let qos = msg.qos.min(m.opts.qos);
        let retain = m.opts.retain_as_published && msg.retain;
        let list = self.out.entry(m.session).or_default();
        // Overlapping non-shared subscriptions deliver once, with the highest QoS and every
        // subscription identifier [MQTT-3.3.4-2], [MQTT-3.3.4-3].
        if !m.shared
            && let Some(&i) = self.seen.get(&m.session)
        {
            let d = &mut list[i];
            d.qos = d.qos.max(qos);
            d.retain |= retain;
            d.sub_ids.extend(m.opts.sub_id);
            return;
        }
        if !m.shared {
            self.seen.insert(m.session, list.len());
        }
        list.push(Delivery {
            msg: msg.clone(),
            qos,
            retain,
            sub_ids: m.opts.sub_id.into_iter().collect(),
            journal: 0,
        });
    }

    /// Hands the routed deliveries to their sessions. On a durable shard, QoS 1/2 deliveries
    /// to offline persistent sessions carry a [`JournalAck`]: the answer waits for the returned
    /// receiver, which resolves once those sessions have journaled them.
    fn flush(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let mut ack: Option<(JournalAck, tokio::sync::oneshot::Receiver<()>)> = None;
        let durable = self.persist.is_some();
        for (sid, mut list) in self.out.drain() {
            if let Some(s) = self.sessions.get(&sid) {
                let held = s.mailbox.admit(&mut list);
                if !list.is_empty() {
                    let journaled = (durable
                        && s.mailbox.offline_journaled()
                        && list.iter().any(|d| d.qos > 0))
                    .then(|| {
                        ack.get_or_insert_with(|| {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            (Arc::new(tx), rx)
                        })
                        .0
                        .clone()
                    });
                    s.addr.do_send(Deliver {
                        list,
                        held: Some(held),
                        journaled,
                    });
                }
            }
        }
        // The shard's own clone goes now: the sessions' clones decide.
        ack.map(|(_, rx)| rx)
    }
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Connections await the reply to each batch, so the mailbox bound is the back-pressure
        // publishers feel; 16 (actix's default) is too few for thousands of publishers.
        ctx.set_mailbox_capacity(1024);
    }
}

/// The answer to a [`PublishBatch`]: at once, or after the commit of the retained-message changes
/// it made (without a task per batch in the common case, which `ResponseFuture` would spawn).
pub struct Routed(Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>);

impl actix::dev::MessageResponse<Router, PublishBatch> for Routed {
    fn handle(self, _: &mut Context<Router>, tx: Option<actix::dev::OneshotSender<()>>) {
        match self.0 {
            None => {
                if let Some(tx) = tx {
                    let _ = tx.send(());
                }
            }
            Some(commit) => {
                actix::spawn(async move {
                    commit.await;
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                });
            }
        }
    }
}

impl Handler<PublishBatch> for Router {
    type Result = Routed;

    /// Answered once the batch is routed and, when it changed retained messages of a durable
    /// shard, once those changes are committed: a retained QoS 1/2 PUBLISH is acknowledged only
    /// after its retained message would survive a crash.
    fn handle(&mut self, batch: PublishBatch, _: &mut Self::Context) -> Self::Result {
        let PublishBatch { msgs, done, scope } = batch;
        for m in msgs {
            self.route_one(m, &scope);
        }
        let journaled = self.flush();
        drop(done);
        let commit = match (&self.persist, self.ops.is_empty()) {
            (Some(w), false) => Some(w.submit(std::mem::take(&mut self.ops))),
            _ => None,
        };
        if commit.is_none() && journaled.is_none() {
            return Routed(None);
        }
        Routed(Some(Box::pin(async move {
            if let Some(commit) = commit
                && let Err(e) = commit.await
            {
                tracing::warn!(error = %e, "a retained message change was not stored");
            }
            if let Some(rx) = journaled {
                // Resolves (as closed) once every session holding a clone has let it go.
                let _ = rx.await;
            }
        })))
    }
}

impl Handler<Subscribe> for Router {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, req: Subscribe, _: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let entry = self
            .sessions
            .entry(req.session)
            .or_insert_with(|| SessionSubs {
                addr: req.addr.clone(),
                mailbox: req.mailbox.clone(),
                filters: HashSet::new(),
            });
        let mut results = Vec::with_capacity(req.subs.len());
        for s in req.subs {
            let mut r = SubResult::default();
            let Ok(f) = parse_filter(&s.filter, TopicLimits::UNLIMITED) else {
                // The edge validated it; a filter that fails here is refused, not routed.
                r.quota_exceeded = true;
                results.push(r);
                continue;
            };
            if !entry.filters.contains(&s.filter) && entry.filters.len() >= req.max_subs {
                r.quota_exceeded = true;
                results.push(r);
                continue;
            }
            r.existed = self.trie.insert(f, req.session, s.opts);
            if !r.existed {
                entry.filters.insert(s.filter.clone());
                if req.count_metrics {
                    METRICS.subscriptions.inc();
                    if let Some(link) = self.remote.get() {
                        link.interest(&s.filter, true);
                    }
                }
            }
            // [MQTT-3.8.4-4..6], retain handling; shared subscriptions get no retained messages.
            let send_retained = f.group.is_none()
                && match s.opts.retain_handling {
                    0 => true,
                    1 => !r.existed,
                    _ => false,
                };
            if send_retained {
                self.retained.matches(f.filter, now, &mut r.retained);
            }
            results.push(r);
        }
        MessageResult(results)
    }
}

impl Handler<Unsubscribe> for Router {
    type Result = MessageResult<Unsubscribe>;

    fn handle(&mut self, req: Unsubscribe, _: &mut Self::Context) -> Self::Result {
        let mut results = Vec::with_capacity(req.filters.len());
        for filter in &req.filters {
            let removed = match parse_filter(filter, TopicLimits::UNLIMITED) {
                Ok(f) => self.trie.remove(f, req.session),
                Err(_) => false,
            };
            if removed {
                if let Some(s) = self.sessions.get_mut(&req.session) {
                    s.filters.remove(filter);
                }
                if req.count_metrics {
                    METRICS.subscriptions.dec();
                    self.interest(filter, false);
                }
            }
            results.push(removed);
        }
        MessageResult(results)
    }
}

impl Handler<SetRetained> for Router {
    type Result = ();

    fn handle(&mut self, req: SetRetained, _: &mut Self::Context) {
        self.keep_retained(&req.msg);
        if let Some(w) = &self.persist
            && !self.ops.is_empty()
        {
            // Nobody waits: the bucket, not this node's store, is the cluster's record.
            drop(w.submit(std::mem::take(&mut self.ops)));
        }
    }
}

impl Handler<ExportSubs> for Router {
    type Result = MessageResult<ExportSubs>;

    fn handle(&mut self, req: ExportSubs, _: &mut Self::Context) -> Self::Result {
        let Some(s) = self.sessions.get(&req.session) else {
            return MessageResult(Vec::new());
        };
        let subs = s
            .filters
            .iter()
            .filter_map(|f| {
                let opts = self
                    .trie
                    .opts_of(parse_filter(f, TopicLimits::UNLIMITED).ok()?, req.session)?;
                Some(SubReq {
                    filter: f.clone(),
                    opts,
                })
            })
            .collect();
        MessageResult(subs)
    }
}

impl Handler<GetRetained> for Router {
    type Result = Option<RetainedMessage>;

    fn handle(&mut self, req: GetRetained, _: &mut Self::Context) -> Self::Result {
        self.retained.get(&req.topic, Instant::now())
    }
}

impl Handler<RemoveSession> for Router {
    type Result = ();

    fn handle(&mut self, req: RemoveSession, _: &mut Self::Context) {
        let Some(s) = self.sessions.remove(&req.session) else {
            return;
        };
        for filter in &s.filters {
            if let Ok(f) = parse_filter(filter, TopicLimits::UNLIMITED)
                && self.trie.remove(f, req.session)
            {
                if req.count_metrics {
                    METRICS.subscriptions.dec();
                }
                if req.interest {
                    self.interest(filter, false);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix::Arbiter;
    use ntex_bytes::{ByteString, Bytes};

    use super::*;
    use crate::mqtt::broker::{Broker, Opened};
    use crate::mqtt::message::{ConnId, Out};
    use crate::mqtt::outbox::{OutboxTx, outbox};
    use crate::mqtt::session::{Attach, Link, SessionLimits};

    /// Bounds that no test here comes near (evgrid's default settings).
    const TEST_LIMITS: SessionLimits = SessionLimits {
        max_queued_messages: 1000,
        max_queued_bytes: 16 * 1024 * 1024,
        max_outbound: 10_000,
        max_outbound_bytes: 8 * 1024 * 1024,
        max_session_expiry_secs: 3600,
        max_sessions: 100_000,
        journal_interval: std::time::Duration::from_millis(100),
    };

    /// Opens session `client_id` writing to `tx`, subscribed to `t/#` at QoS 1.
    async fn subscriber(broker: &Broker, client_id: &'static str, tx: &OutboxTx) -> Opened {
        let opened = broker
            .open(&ByteString::from_static(client_id), true, || Attach {
                link: Link {
                    conn: ConnId(1),
                    tx: tx.clone(),
                    window: 1000,
                },
                expiry_secs: 0,
                will: None,
                fresh: false,
            })
            .await
            .unwrap();
        let req = vec![SubReq {
            filter: ByteString::from_static("t/#"),
            opts: SubOpts {
                qos: 1,
                ..SubOpts::default()
            },
        }];
        broker
            .subscribe(opened.id, &opened.addr, &opened.mailbox, req, 10)
            .await
            .unwrap();
        opened
    }

    fn msg(topic: &'static str, n: u8, qos: u8) -> AppMessage {
        AppMessage {
            topic: ByteString::from_static(topic),
            payload: Bytes::from(vec![n]),
            qos,
            retain: false,
            props: None,
            expires_at: None,
            publisher: None,
        }
    }

    /// A retained message routed without a publishing session (HTTP publish to MQTT) is stored on
    /// its topic's shard, read back through the broker with when it was set, and cleared by an
    /// empty retained payload.
    #[test]
    fn retained_lookup_asks_the_owning_shard() {
        actix::System::new().block_on(async {
            let arb = Arbiter::new();
            let broker = Broker::start(vec![arb.handle()], 3, TEST_LIMITS);
            let before = now_ms();
            let topics = ["r/a", "r/b", "r/c", "r/d"];
            let retained: Vec<AppMessage> = topics
                .iter()
                .map(|t| AppMessage {
                    retain: true,
                    ..msg(t, 7, 1)
                })
                .collect();
            broker.route(retained).await.unwrap();
            for t in topics {
                let got = broker.retained(t).await.unwrap().expect(t);
                assert_eq!(
                    (got.msg.topic.as_str(), &got.msg.payload[..]),
                    (t, &[7u8][..])
                );
                assert!(got.modified_ms >= before && got.modified_ms <= now_ms());
            }
            assert!(broker.retained("r/x").await.unwrap().is_none());
            let clear = AppMessage {
                retain: true,
                payload: Bytes::new(),
                ..msg("r/b", 0, 0)
            };
            broker.route(vec![clear]).await.unwrap();
            assert!(broker.retained("r/b").await.unwrap().is_none());
            assert!(broker.retained("r/a").await.unwrap().is_some());
            actix::System::current().stop();
        });
    }

    #[test]
    fn in_flight_guards_count_and_wake_on_release() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let f = Arc::new(InFlight::default());
            let a = f.guard(3);
            let b = f.guard(2);
            assert_eq!(f.count(), 5);
            drop(a);
            assert_eq!(f.count(), 2);
            // The release with nobody waiting left a permit: the next wait returns at once.
            tokio::time::timeout(Duration::from_secs(1), f.released())
                .await
                .expect("a release before the wait is not lost");
            let waiter = tokio::spawn({
                let f = f.clone();
                async move { f.released().await }
            });
            tokio::task::yield_now().await;
            drop(b);
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .expect("a waiting connection is woken")
                .unwrap();
            assert_eq!(f.count(), 0);
        });
    }

    /// Detached (QoS 0) batches and awaited (QoS 1) batches from one connection reach the
    /// subscriber in the order they were sent, and every detached message is released once routed
    /// (also when its shard's router is gone).
    #[test]
    fn detached_and_awaited_batches_keep_their_order() {
        actix::System::new().block_on(async {
            let arb = Arbiter::new();
            let broker = Broker::start(vec![arb.handle()], 3, TEST_LIMITS);
            let (tx, mut rx) = outbox();
            subscriber(&broker, "sub", &tx).await;
            let f = Arc::new(InFlight::default());
            let topics = ["t/a", "t/b", "t/c"];
            let mut sent = Vec::new();
            for round in 0..20u8 {
                let detached: Vec<AppMessage> = topics.iter().map(|t| msg(t, round, 0)).collect();
                broker.route_detached(detached, &f);
                let awaited: Vec<AppMessage> =
                    topics.iter().map(|t| msg(t, round + 100, 1)).collect();
                broker.route(awaited).await.unwrap();
                sent.push(round);
            }
            let mut got: std::collections::HashMap<&str, Vec<u8>> = Default::default();
            let mut buf = Vec::new();
            while got.values().map(Vec::len).sum::<usize>() < 20 * 2 * topics.len() {
                let more = tokio::time::timeout(Duration::from_secs(5), rx.recv_all(&mut buf))
                    .await
                    .expect("every routed message arrives");
                assert!(more);
                for out in buf.drain(..) {
                    if let Out::Batch(msgs) = out {
                        for m in msgs {
                            let t = topics.iter().find(|t| **t == m.msg.topic.as_str()).unwrap();
                            got.entry(t).or_default().push(m.msg.payload[0]);
                        }
                    }
                }
            }
            for t in topics {
                let want: Vec<u8> = sent.iter().flat_map(|r| [*r, r + 100]).collect();
                assert_eq!(got[t], want, "order of {t}");
            }
            assert_eq!(f.count(), 0, "routed messages are released");

            // A batch for a router that is gone is released when actix drops it.
            arb.stop();
            arb.join().unwrap();
            broker.route_detached(vec![msg("t/a", 1, 0)], &f);
            tokio::time::timeout(Duration::from_secs(5), async {
                while f.count() != 0 {
                    f.released().await;
                }
            })
            .await
            .expect("a lost batch releases its connection");
            actix::System::current().stop();
        });
    }

    /// A session whose thread is stuck gathers no more in its mailbox than its bounds: QoS 0 up
    /// to the outbound bound, QoS 1 up to the backlog bound; the rest is dropped at the shard and
    /// counted, and what was admitted is released (mailbox and memory budget) once handled.
    #[test]
    fn a_stuck_session_mailbox_is_bounded() {
        const LIMITS: SessionLimits = SessionLimits {
            max_outbound_bytes: 4096,
            max_queued_bytes: 8192,
            ..TEST_LIMITS
        };
        actix::System::new().block_on(async {
            let arbs = [Arbiter::new(), Arbiter::new()];
            let broker = Broker::start(arbs.iter().map(|a| a.handle()).collect(), 1, LIMITS);
            let (tx, mut rx) = outbox();
            // Sessions go round the arbiters: the first lands beside the router, the second
            // (the subscriber) on an arbiter of its own, which the test then blocks.
            let (beside_tx, _beside_rx) = outbox();
            subscriber(&broker, "beside", &beside_tx).await;
            let opened = subscriber(&broker, "sub", &tx).await;
            let (unblock, blocked) = std::sync::mpsc::channel::<()>();
            arbs[1].spawn(async move {
                let _ = blocked.recv();
            });

            let w = msg("t/a", 0, 0).weight();
            let drops = |r| METRICS.dropped[r as usize].get();
            let (full0, full1) = (
                drops(crate::metrics::DropReason::OutboundFull),
                drops(crate::metrics::DropReason::QueueFull),
            );
            for round in 0..50u8 {
                let batch = (0..10)
                    .map(|i| msg("t/a", round.wrapping_add(i), 0))
                    .collect();
                broker.route(batch).await.unwrap();
            }
            let after0 = opened.mailbox.bytes();
            assert!(after0 <= 4096 && after0 + w > 4096, "QoS 0 held {after0}");
            assert!(
                drops(crate::metrics::DropReason::OutboundFull) - full0 >= 500 - 4096 / w as u64
            );
            assert!(crate::budget::BUDGET.held(crate::budget::BufferKind::MqttMailbox) >= after0);
            for round in 0..50u8 {
                let batch = (0..10)
                    .map(|i| msg("t/a", round.wrapping_add(i), 1))
                    .collect();
                broker.route(batch).await.unwrap();
            }
            let after1 = opened.mailbox.bytes();
            assert!(
                after1 <= 8192 && after1 + w > 8192,
                "QoS 0 and 1 held {after1}"
            );
            assert!(drops(crate::metrics::DropReason::QueueFull) - full1 >= 500 - 8192 / w as u64);

            unblock.send(()).unwrap();
            let (mut qos0, mut qos1) = (0, 0);
            let mut buf = Vec::new();
            while qos0 * w < after0 || (qos0 + qos1) * w < after1 {
                let more = tokio::time::timeout(Duration::from_secs(5), rx.recv_all(&mut buf))
                    .await
                    .expect("the admitted messages arrive once the session runs");
                assert!(more);
                for out in buf.drain(..) {
                    if let Out::Batch(msgs) = out {
                        for m in msgs {
                            if m.qos == 0 {
                                qos0 += 1;
                            } else {
                                qos1 += 1;
                            }
                        }
                    }
                }
            }
            assert_eq!((qos0 * w, (qos0 + qos1) * w), (after0, after1));
            assert_eq!(opened.mailbox.bytes(), 0, "handled deliveries are released");
            actix::System::current().stop();
        });
    }
}
