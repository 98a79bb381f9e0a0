//! The push subscription actor: one per active webhook subscription, for both tiers (a basic
//! tier event subscription, or a namespace subscription in Push mode; its [`Profile`] says which).
//!
//! Owns the subscription's pending events its [`Pager`] window holds — each committed in the
//! store, already in the subscription's delivery schema; the rest wait in the store and are read
//! back as the window drains — and their retry state: which are ready, which wait for a
//! retry (and until when), how many requests are in flight. It fills requests ([`super::request`]:
//! batches, `aeg-*` headers, delivery attribute mappings), hands them to the endpoint's delivery
//! shard, and acts on the outcome as [`super::retry`] decides: delivered → removed; retryable →
//! the delivery count and next attempt time are committed and the event waits on the schedule
//! (with jitter from the OS's randomness); not retryable, attempts exhausted or time to live run
//! out (checked when the next attempt comes due, as Event Grid does) → dead-lettered
//! ([`super::dead_letter`]) or dropped without a dead-letter destination.
//!
//! Must never drop an event without a store commit saying so, or keep more than
//! `max_in_flight` requests open to its endpoint.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use ntex_bytes::{ByteString, Bytes};

use super::backlog::{Admit, Loaded, Paged, Pager, page_in};
use super::dead_letter::{self, BasicDeadLetter, NamespaceDeadLetter, Via};
use super::request::{self, BatchFill, DeliverySchema, First, HeaderValue};
use super::retry::{self, DeadLetterReason, Next, Outcome, Profile, WebhookOutcome};
use super::shard::{Attempt, DeliveryShard, Request};
use super::{Delayed, PushConfig, release_due, schedule};
use crate::lifecycle::Shutdown;
use crate::metrics::{METRICS, PUSH};
use crate::model::clock::now_ms;
use crate::store::{EntryState, Op, Queued, Writer};

/// A push subscription's delivery settings (from its resource definition, without the filter).
#[derive(Debug, Clone, PartialEq)]
pub struct PushSettings {
    pub endpoint: String,
    pub schema: DeliverySchema,
    /// Events per request (1 without batching).
    pub max_events: usize,
    /// Preferred request size in bytes (a single larger event still goes alone).
    pub preferred_bytes: usize,
    pub batching: bool,
    pub max_attempts: u32,
    pub ttl_secs: u64,
    pub dead_letter: bool,
    pub headers: Arc<Vec<(String, HeaderValue)>>,
    /// Which tier's retry policy and dead-letter record apply.
    pub profile: Profile,
}

/// One event for a push subscription, as committed.
#[derive(Debug, Clone)]
pub struct PushEntry {
    pub seq: u64,
    pub publish_ms: u64,
    /// The event in the subscription's delivery schema.
    pub body: Bytes,
    pub id: ByteString,
    pub data_version: ByteString,
}

impl PushEntry {
    /// An entry read back from the store (its id and data version parsed from the body).
    pub fn from_queued(q: &Queued) -> PushEntry {
        /// Only these members are read; the rest (`data` included) is skipped without being
        /// built, so no depth limit applies.
        #[derive(serde::Deserialize)]
        struct Ids<'a> {
            #[serde(borrow)]
            id: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "dataVersion")]
            eg_version: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "dataversion")]
            ce_version: Option<Cow<'a, str>>,
        }
        let (id, dv) = match serde_json::from_slice::<Ids<'_>>(&q.body) {
            Ok(v) => (
                ByteString::from(v.id.as_deref().unwrap_or("")),
                ByteString::from(v.eg_version.or(v.ce_version).as_deref().unwrap_or("")),
            ),
            Err(e) => {
                // Stored events were validated at publish; this is a damaged entry, delivered as
                // stored, without the id and data-version headers.
                tracing::warn!(seq = q.seq, error = %e, "a queued push event is not a JSON object with string id and data version");
                (ByteString::new(), ByteString::new())
            }
        };
        PushEntry {
            seq: q.seq,
            publish_ms: q.publish_ms,
            body: q.body.clone(),
            id,
            data_version: dv,
        }
    }
}

/// Events committed for this subscription, from its topic or domain actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushAppend(pub Vec<PushEntry>);

/// New settings after a PUT on an existing subscription, with the shard that owns its endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconfigurePush(pub PushSettings, pub Addr<DeliveryShard>);

/// (`lastDeliveryOutcome`, HTTP status, attempt time ms, `lastDeliveryError`) of an event's last
/// attempt.
type LastAttempt = (WebhookOutcome, Option<u16>, u64, Option<Arc<str>>);

struct Pending {
    entry: PushEntry,
    state: EntryState,
    last: Option<LastAttempt>,
    in_flight: bool,
}

/// Identity of the subscription, for headers and dead-letter files.
pub struct Names {
    /// As given, e.g. `orders-hook`.
    pub subscription: String,
    /// Where its dead-letter files go under `dead_letter_dir`: `topics/TOPIC`,
    /// `domains/DOMAIN`, `domaintopics/DOMAIN/TOPIC` or `namespaces/NAMESPACE/TOPIC`.
    pub source: String,
}

pub struct PushSub {
    key: u64,
    cfg: PushSettings,
    push: PushConfig,
    names: Names,
    header_name: ByteString,
    /// `cfg.endpoint`, shared by every request.
    endpoint: Arc<str>,
    writer: Writer,
    shard: Addr<DeliveryShard>,
    tick: Duration,
    pending: HashMap<u64, Pending>,
    ready: VecDeque<u64>,
    delayed: Delayed,
    in_flight: usize,
    dl_seq: u64,
    /// Which of the committed entries `pending` holds; the rest wait on disk.
    pager: Pager,
}

#[allow(clippy::too_many_arguments)]
impl PushSub {
    pub fn new(
        key: u64,
        cfg: PushSettings,
        push: PushConfig,
        names: Names,
        writer: Writer,
        shard: Addr<DeliveryShard>,
        tick: Duration,
        (pager, queued): (Pager, Vec<Queued>),
        last_dead_letter: u64,
    ) -> PushSub {
        let mut s = PushSub {
            endpoint: Arc::from(cfg.endpoint.as_str()),
            key,
            cfg,
            push,
            header_name: ByteString::from(names.subscription.to_ascii_uppercase()),
            names,
            writer,
            shard,
            tick,
            pending: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            in_flight: 0,
            dl_seq: last_dead_letter,
            pager,
        };
        s.take_in(queued);
        s
    }

    /// Takes entries read from the store into memory (the pager has counted them).
    fn take_in(&mut self, queued: Vec<Queued>) {
        let now = now_ms();
        for q in queued {
            let entry = PushEntry::from_queued(&q);
            schedule(
                &mut self.ready,
                &mut self.delayed,
                q.seq,
                q.state.available_at_ms,
                now,
            );
            self.pending.insert(
                q.seq,
                Pending {
                    entry,
                    state: q.state,
                    last: None,
                    in_flight: false,
                },
            );
        }
    }

    /// `seq` left memory for good (delivered, dead-lettered, dropped).
    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let p = self.pending.remove(&seq)?;
        self.pager.left(p.entry.body.len());
        Some(p)
    }

    fn submit(&self, ops: Vec<Op>) {
        // On a failed commit the entries stay in the store as they were: after a restart they
        // are delivered again (at least once), never lost.
        self.writer.submit_detached(ops, "push subscription state");
    }

    fn due(&mut self) {
        release_due(&mut self.ready, &mut self.delayed, now_ms(), |seq| {
            self.pending.get(&seq).is_some_and(|p| !p.in_flight)
        });
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let mut ops = Vec::new();
        while self.in_flight < self.push.max_in_flight.max(1) && !self.ready.is_empty() {
            let mut seqs = Vec::new();
            let mut fill = BatchFill::default();
            while let Some(&seq) = self.ready.front() {
                let Some(p) = self.pending.get(&seq) else {
                    self.ready.pop_front();
                    continue;
                };
                if p.in_flight {
                    self.ready.pop_front();
                    continue;
                }
                if retry::ttl_exceeded(p.entry.publish_ms, self.cfg.ttl_secs, now) {
                    self.ready.pop_front();
                    self.dead_letter(seq, DeadLetterReason::TimeToLiveExceeded, &mut ops);
                    continue;
                }
                let len = p.entry.body.len();
                if !fill.admits(len, self.cfg.max_events, self.cfg.preferred_bytes) {
                    break;
                }
                self.ready.pop_front();
                if seqs.contains(&seq) {
                    continue;
                }
                fill.add(len);
                seqs.push(seq);
            }
            if seqs.is_empty() {
                break;
            }
            let req = self.request(&seqs);
            for s in &seqs {
                if let Some(p) = self.pending.get_mut(s) {
                    p.in_flight = true;
                }
            }
            self.in_flight += 1;
            ctx.spawn(
                self.shard
                    .send(Attempt(req))
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        act.in_flight -= 1;
                        let out = res.unwrap_or(Outcome::Deferred {
                            until_ms: now_ms() + act.push.unit().as_millis() as u64,
                        });
                        act.finish(seqs, out);
                        act.pump(ctx);
                        page_in(act, ctx);
                    }),
            );
        }
        self.submit(ops);
    }

    fn request(&self, seqs: &[u64]) -> Request {
        let first = &self.pending[&seqs[0]];
        let events: Vec<&[u8]> = seqs
            .iter()
            .map(|s| &self.pending[s].entry.body[..])
            .collect();
        let (body, content_type) = request::body(self.cfg.schema, self.cfg.batching, &events);
        let headers = request::headers(
            self.cfg.schema,
            &self.header_name,
            &First {
                seq: first.entry.seq,
                body: &first.entry.body,
                id: &first.entry.id,
                data_version: &first.entry.data_version,
                delivery_count: first.state.delivery_count,
            },
            &self.cfg.headers,
        );
        Request {
            url: self.endpoint.clone(),
            content_type,
            headers,
            body,
            profile: self.cfg.profile,
        }
    }

    fn finish(&mut self, seqs: Vec<u64>, out: Outcome) {
        let now = now_ms();
        let mut ops = Vec::new();
        match out {
            Outcome::Delivered => {
                for seq in seqs {
                    if self.remove(seq).is_some() {
                        ops.push(Op::Remove { sub: self.key, seq });
                    }
                }
                PUSH.delivered.add(ops.len() as u64);
            }
            Outcome::Deferred { until_ms } => {
                for seq in seqs {
                    if let Some(p) = self.pending.get_mut(&seq) {
                        p.in_flight = false;
                        self.delayed.push(Reverse((until_ms, seq)));
                    }
                }
            }
            Outcome::Failed {
                status,
                outcome,
                retry,
                detail,
            } => {
                let schedule = self.push.schedule(self.cfg.profile);
                for seq in seqs {
                    let Some(p) = self.pending.get_mut(&seq) else {
                        continue;
                    };
                    p.in_flight = false;
                    p.state.delivery_count += 1;
                    p.last = Some((outcome, status, now, detail.clone()));
                    // Without OS randomness the retry comes due without jitter.
                    let random = getrandom::u64().unwrap_or(0);
                    let at = match retry::after_failure(
                        self.cfg.profile,
                        &schedule,
                        self.cfg.max_attempts,
                        p.state.delivery_count,
                        retry,
                        now,
                        random,
                    ) {
                        Next::RetryAt(at) => at,
                        Next::DeadLetter(reason) => {
                            self.dead_letter(seq, reason, &mut ops);
                            continue;
                        }
                    };
                    p.state.available_at_ms = at;
                    ops.push(Op::SetState {
                        sub: self.key,
                        seq,
                        state: p.state,
                    });
                    PUSH.retries.inc();
                    self.delayed.push(Reverse((at, seq)));
                }
            }
        }
        self.submit(ops);
    }

    /// Moves an event to the dead letters (or drops it without a dead-letter destination).
    fn dead_letter(&mut self, seq: u64, reason: DeadLetterReason, ops: &mut Vec<Op>) {
        let Some(p) = self.remove(seq) else {
            return;
        };
        if !self.cfg.dead_letter {
            METRICS.events_dropped.inc();
            ops.push(Op::Remove { sub: self.key, seq });
            return;
        }
        self.dl_seq += 1;
        let record = self.record(&p, reason);
        METRICS.events_dead_lettered.inc();
        if let Some(dir) = &self.push.dead_letter_dir {
            dead_letter::write_file(
                dir.clone(),
                &self.names.source,
                &self.names.subscription,
                p.entry.publish_ms,
                self.dl_seq,
                &record,
            );
        }
        ops.push(Op::DeadLetter {
            sub: self.key,
            seq,
            dl_seq: self.dl_seq,
            record,
        });
    }

    /// The dead-letter record of the subscription's tier.
    fn record(&self, p: &Pending, reason: DeadLetterReason) -> Vec<u8> {
        // No attempt since start-up (the outcome before a restart is not stored): none to report.
        let (outcome, status, at, error) = match &p.last {
            Some((o, s, at, e)) => (Some(o.name()), *s, *at, e.as_deref()),
            None => (None, None, now_ms(), None),
        };
        match self.cfg.profile {
            Profile::Namespace => dead_letter::namespace_record(
                &p.entry.body,
                &NamespaceDeadLetter {
                    reason: reason.name(),
                    attempts: p.state.delivery_count,
                    result: outcome,
                    via: Via::Push { status, error },
                    publish_ms: p.entry.publish_ms,
                    attempt_ms: at,
                    sequence: self.dl_seq,
                },
            ),
            Profile::Basic => dead_letter::basic_record(
                &p.entry.body,
                self.cfg.schema,
                &BasicDeadLetter {
                    reason: reason.name(),
                    attempts: p.state.delivery_count,
                    outcome,
                    status,
                    publish_ms: p.entry.publish_ms,
                    attempt_ms: at,
                    error,
                },
            ),
        }
    }
}

impl Paged for PushSub {
    fn pager(&mut self) -> &mut Pager {
        &mut self.pager
    }
    fn store(&self) -> Arc<dyn crate::store::Store> {
        self.writer.store().clone()
    }
    fn paged(&mut self, got: Loaded, ctx: &mut Context<Self>) {
        self.take_in(got.entries);
        self.pump(ctx);
    }
}

impl Actor for PushSub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(self.tick, |act, ctx| {
            act.due();
            act.pump(ctx);
            page_in(act, ctx);
        });
        self.pump(ctx);
        page_in(self, ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.pager.close();
    }
}

impl Handler<PushAppend> for PushSub {
    type Result = ();
    fn handle(&mut self, msg: PushAppend, ctx: &mut Context<Self>) {
        for entry in msg.0 {
            if self.pager.admit(entry.seq, entry.body.len()) != Admit::Memory {
                continue;
            }
            self.ready.push_back(entry.seq);
            self.pending.insert(
                entry.seq,
                Pending {
                    entry,
                    state: EntryState::default(),
                    last: None,
                    in_flight: false,
                },
            );
        }
        self.pump(ctx);
        page_in(self, ctx);
    }
}

impl Handler<ReconfigurePush> for PushSub {
    type Result = ();
    fn handle(&mut self, msg: ReconfigurePush, _: &mut Context<Self>) {
        self.endpoint = Arc::from(msg.0.endpoint.as_str());
        self.cfg = msg.0;
        // The endpoint may have changed, and with it the shard that owns it.
        self.shard = msg.1;
    }
}

impl Handler<Shutdown> for PushSub {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
