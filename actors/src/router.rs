//! Topic routing shard actor.
//!
//! Owns one shard of the routing state: the subscription trie (every shard holds every
//! subscription, because a wildcard filter can match a topic of any shard) and the retained
//! messages of the topics hashed to this shard. Publishers' batches arrive already split by shard,
//! so messages of one topic always pass through one shard, in order.
//!
//! Turns one incoming batch into at most one `Deliver` mailbox message per subscribing session.
//! Must never block on a session: it uses `do_send`, and each session applies its own queue
//! limits.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use ntex_bytes::ByteString;

use crate::message::{Delivery, IdMap, Message, SessionId};
use crate::metrics::METRICS;
use crate::session::{Deliver, Session};
use crate::topic::{Matched, RetainedIndex, SubOpts, SubTrie, TopicLimits, parse_filter};

/// A batch of messages from one publisher for this shard. Sent by connections (and by sessions for
/// wills); answered once every message is in the queues of its subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishBatch {
    pub msgs: Vec<Message>,
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
    pub retained: Vec<Arc<Message>>,
}

/// Adds subscriptions for a session. Sent by connections to every shard.
#[derive(Message)]
#[rtype(result = "Vec<SubResult>")]
pub struct Subscribe {
    pub session: SessionId,
    pub addr: Addr<Session>,
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

/// Removes every subscription of a session that ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveSession {
    pub session: SessionId,
    pub count_metrics: bool,
}

struct SessionSubs {
    addr: Addr<Session>,
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
        }
    }

    fn route_one(&mut self, msg: Message) {
        if msg.retain {
            let kept = Arc::new(msg.detached());
            METRICS.retained.add(self.retained.set(kept) as i64);
        }
        let msg = Arc::new(msg);
        self.matched.clear();
        self.seen.clear();
        self.trie.matches(&msg.topic, &mut self.matched);
        for m in &self.matched {
            // [MQTT-3.8.3-3]: no-local subscriptions never get their own session's messages.
            if m.opts.no_local && msg.publisher == Some(m.session) {
                continue;
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
                continue;
            }
            if !m.shared {
                self.seen.insert(m.session, list.len());
            }
            list.push(Delivery {
                msg: msg.clone(),
                qos,
                retain,
                sub_ids: m.opts.sub_id.into_iter().collect(),
            });
        }
    }

    fn flush(&mut self) {
        for (sid, list) in self.out.drain() {
            if let Some(s) = self.sessions.get(&sid) {
                s.addr.do_send(Deliver(list));
            }
        }
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

impl Handler<PublishBatch> for Router {
    type Result = ();

    fn handle(&mut self, batch: PublishBatch, _: &mut Self::Context) {
        for m in batch.msgs {
            self.route_one(m);
        }
        self.flush();
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
                }
            }
            results.push(removed);
        }
        MessageResult(results)
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
                && req.count_metrics
            {
                METRICS.subscriptions.dec();
            }
        }
    }
}
