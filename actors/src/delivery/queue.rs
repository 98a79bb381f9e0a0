//! The queue subscription actor: one per namespace event subscription in Queue (pull) mode.
//!
//! Owns the head of the subscription's queue in memory: the accepted events not yet settled that
//! its [`Pager`] window holds (the rest wait in the store and are read back in order as the
//! window drains; locked events stay in the window until settled), which of them are ready,
//! delayed (released with a delay) or locked (received and not yet settled), the receivers
//! waiting in a long poll, and the dead-letter sequence. The store holds every entry durably;
//! this actor writes to it through the [`Writer`] and answers a settlement only after the commit.
//!
//! Semantics (docs/eventgrid.md §6.2): a receive locks each event it returns for the subscription's lock
//! duration and reports `deliveryCount` = deliveries so far; acknowledge deletes; release makes
//! the event available again (after an optional delay); reject dead-letters (or drops, without a
//! dead-letter destination); renew extends a lock, up to one hour after the first lock; an
//! expired lock counts as a delivery that ended without settlement. After `maxDeliveryCount`
//! such deliveries, or when the event's time to live runs out, it is dead-lettered (or dropped).
//!
//! Lock tokens are `base64url(sequence ‖ 64 random bits)`: opaque, not guessable, and stale as
//! soon as the lock ends (a redelivery gets new random bits). Because a single actor hands out
//! events, two competing consumers never hold the same event at once.
//!
//! Durability: the delivery count is written when a delivery ends without settlement (release,
//! lock expiry), not on every receive; a delivery cut short by a crash is not counted, and the
//! event is delivered again after restart. Must never hand out an event that is not committed,
//! or answer a settlement before its commit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use ntex_bytes::Bytes;
use tokio::sync::oneshot;

use super::backlog::{Admit, Loaded, Paged, Pager, page_in};
use super::dead_letter::{NamespaceDeadLetter, Via, namespace_record};
use super::{Delayed, release_due, schedule};
use crate::lifecycle::Shutdown;
use crate::metrics::METRICS;
use crate::model::clock::{mono_ms, now_ms};
use crate::store::{EntryState, Op, Queued, StoreError, Writer};
pub use token::TokenError;
use token::{nonce, parse_token, token};

mod token;

/// Locks may be renewed for this long after the first lock (docs/eventgrid.md §6.2).
const MAX_LOCK_AGE_MS: u64 = 3_600_000;

/// A queue subscription's settings (from its resource definition, without the filter).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    pub lock_secs: u32,
    pub max_delivery_count: u32,
    pub ttl_secs: u64,
    /// Dead-letter events (reject, max deliveries, TTL) into the store; else they are dropped.
    pub dead_letter: bool,
}

/// One event handed to a consumer, locked until settled or the lock expires.
#[derive(Debug, Clone)]
pub struct LockedEvent {
    pub token: String,
    pub delivery_count: u32,
    /// The event's JSON as published.
    pub event: Bytes,
}

/// Events committed for this subscription, from its topic actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct QueueAppend(pub Vec<(u64, u64, Bytes)>);

/// A long-poll receive: answered with 1..=`max` events as soon as any is ready, or with none
/// after `wait`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Receive {
    pub max: usize,
    pub wait: Duration,
    pub reply: oneshot::Sender<Vec<LockedEvent>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Release { delay_secs: u32 },
    Reject,
    RenewLock,
}

#[derive(Debug, Default)]
pub struct Settled {
    pub succeeded: Vec<String>,
    pub failed: Vec<(String, TokenError)>,
}

/// Settles lock tokens; answered after the resulting changes are committed.
#[derive(Message)]
#[rtype(result = "Result<Settled, StoreError>")]
pub struct Settle {
    pub action: Action,
    pub tokens: Vec<String>,
}

/// New settings after a PUT on an existing subscription.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconfigureQueue(pub QueueSettings);

/// Why an event left the queue unacknowledged: the dead-letter record's reason and result.
#[derive(Debug, Clone, Copy)]
enum Why {
    TimeToLive,
    MaxDeliveries,
    Rejected,
}

impl Why {
    fn texts(self) -> (&'static str, &'static str) {
        match self {
            Why::TimeToLive => (
                "TimeToLiveExceeded",
                "The event's time to live expired before it was acknowledged.",
            ),
            Why::MaxDeliveries => (
                "Maximum delivery attempts was exceeded.",
                "Event was not acknowledged nor rejected.",
            ),
            Why::Rejected => ("Event was rejected by the receiver.", "Rejected"),
        }
    }
}

struct Entry {
    publish_ms: u64,
    raw: Bytes,
    deliveries: u32,
}

/// Lock times are on a monotonic clock ([`mono_ms`]): a wall-clock step must not expire or
/// stretch every lock at once. (Publish times, time to live and release delays are persisted,
/// so they stay on the wall clock.)
struct Lock {
    nonce: u64,
    expires_ms: u64,
    first_ms: u64,
}

struct Waiter {
    max: usize,
    deadline: Instant,
    reply: oneshot::Sender<Vec<LockedEvent>>,
}

pub struct QueueSub {
    key: u64,
    cfg: QueueSettings,
    writer: Writer,
    tick: Duration,
    entries: BTreeMap<u64, Entry>,
    ready: VecDeque<u64>,
    delayed: Delayed,
    locks: HashMap<u64, Lock>,
    lock_heap: BinaryHeap<Reverse<(u64, u64, u64)>>,
    waiters: VecDeque<Waiter>,
    dl_seq: u64,
    /// Which of the committed entries `entries` holds; the rest wait on disk.
    pager: Pager,
}

impl QueueSub {
    /// `pager` and `queued`: the subscription's window and the head of its backlog as
    /// [`Pager::open`] read them from the store; `dl_seq`: its last dead-letter sequence.
    pub fn new(
        key: u64,
        cfg: QueueSettings,
        writer: Writer,
        tick: Duration,
        (pager, queued): (Pager, Vec<Queued>),
        dl_seq: u64,
    ) -> QueueSub {
        let mut q = QueueSub {
            key,
            cfg,
            writer,
            tick,
            entries: BTreeMap::new(),
            ready: VecDeque::with_capacity(queued.len()),
            delayed: BinaryHeap::new(),
            locks: HashMap::new(),
            lock_heap: BinaryHeap::new(),
            waiters: VecDeque::new(),
            dl_seq,
            pager,
        };
        METRICS
            .events_queued
            .add(queued.len() as i64 + q.pager.on_disk() as i64);
        q.take_in(queued);
        q
    }

    /// Takes entries read from the store into memory (the pager has counted them).
    fn take_in(&mut self, queued: Vec<Queued>) {
        let now = now_ms();
        for e in queued {
            schedule(
                &mut self.ready,
                &mut self.delayed,
                e.seq,
                e.state.available_at_ms,
                now,
            );
            self.entries.insert(
                e.seq,
                Entry {
                    publish_ms: e.publish_ms,
                    raw: e.body,
                    deliveries: e.state.delivery_count,
                },
            );
        }
    }

    /// `seq` left memory for good (settled, dead-lettered, dropped).
    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        self.pager.left(e.raw.len());
        METRICS.events_queued.dec();
        Some(e)
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        e.publish_ms.saturating_add(self.cfg.ttl_secs * 1000) <= now
    }

    /// Removes `seq` and dead-letters it (or drops it without a dead-letter destination).
    fn dead_letter(&mut self, seq: u64, why: Why, now: u64, ops: &mut Vec<Op>) {
        let Some(e) = self.remove(seq) else {
            return;
        };
        if !self.cfg.dead_letter {
            METRICS.events_dropped.inc();
            ops.push(Op::Remove { sub: self.key, seq });
            return;
        }
        METRICS.events_dead_lettered.inc();
        self.dl_seq += 1;
        let (reason, result) = why.texts();
        let rec = namespace_record(
            &e.raw,
            &NamespaceDeadLetter {
                reason,
                attempts: e.deliveries,
                result: Some(result),
                via: Via::Pull,
                publish_ms: e.publish_ms,
                attempt_ms: now,
                sequence: self.dl_seq,
            },
        );
        ops.push(Op::DeadLetter {
            sub: self.key,
            seq,
            dl_seq: self.dl_seq,
            record: rec,
        });
    }

    /// A delivery of `seq` ended without settlement (release or lock expiry): count it, then
    /// make the event available again after `delay_ms`, or dead-letter it.
    fn unsettled(&mut self, seq: u64, delay_ms: u64, now: u64, ops: &mut Vec<Op>) {
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        if self.expired(e, now) {
            self.dead_letter(seq, Why::TimeToLive, now, ops);
            return;
        }
        if e.deliveries >= self.cfg.max_delivery_count {
            self.dead_letter(seq, Why::MaxDeliveries, now, ops);
            return;
        }
        let ttl_end = e.publish_ms.saturating_add(self.cfg.ttl_secs * 1000);
        let at = if delay_ms == 0 {
            0
        } else {
            (now + delay_ms).min(ttl_end)
        };
        ops.push(Op::SetState {
            sub: self.key,
            seq,
            state: EntryState {
                delivery_count: e.deliveries,
                available_at_ms: at,
            },
        });
        schedule(&mut self.ready, &mut self.delayed, seq, at, now);
    }

    /// Locks and returns up to `max` ready events.
    fn take(&mut self, max: usize, now: u64, ops: &mut Vec<Op>) -> Vec<LockedEvent> {
        let mut out = Vec::with_capacity(max.min(self.ready.len()));
        while out.len() < max {
            let Some(seq) = self.ready.pop_front() else {
                break;
            };
            if self.locks.contains_key(&seq) {
                continue;
            }
            let Some(e) = self.entries.get_mut(&seq) else {
                continue; // settled or expired since it became ready
            };
            if e.publish_ms.saturating_add(self.cfg.ttl_secs * 1000) <= now {
                self.unsettled(seq, 0, now, ops);
                continue;
            }
            if e.deliveries >= self.cfg.max_delivery_count {
                // Only reachable for entries recovered with a full count.
                self.dead_letter(seq, Why::MaxDeliveries, now, ops);
                continue;
            }
            e.deliveries += 1;
            let n = nonce();
            let mono = mono_ms();
            let expires_ms = mono + self.cfg.lock_secs as u64 * 1000;
            self.locks.insert(
                seq,
                Lock {
                    nonce: n,
                    expires_ms,
                    first_ms: mono,
                },
            );
            self.lock_heap.push(Reverse((expires_ms, seq, n)));
            out.push(LockedEvent {
                token: token(seq, n),
                delivery_count: e.deliveries,
                event: e.raw.clone(),
            });
        }
        METRICS.events_locked.add(out.len() as i64);
        METRICS.events_delivered.add(out.len() as u64);
        out
    }

    fn serve_waiters(&mut self, ops: &mut Vec<Op>) {
        let now = now_ms();
        while !self.ready.is_empty() {
            let Some(w) = self.waiters.pop_front() else {
                break;
            };
            if w.reply.is_closed() {
                continue;
            }
            let got = self.take(w.max, now, ops);
            if got.is_empty() {
                self.waiters.push_front(w);
                break;
            }
            if let Err(got) = w.reply.send(got) {
                // The receiver went away between the check and the send: unlock at once.
                self.unlock(got);
            }
        }
    }

    /// Undoes `take` for events whose receiver went away before they were handed over.
    fn unlock(&mut self, got: Vec<LockedEvent>) {
        for r in got {
            if let Some((seq, _)) = parse_token(&r.token)
                && self.locks.remove(&seq).is_some()
            {
                METRICS.events_locked.dec();
                if let Some(e) = self.entries.get_mut(&seq) {
                    e.deliveries -= 1;
                }
                self.ready.push_front(seq);
            }
        }
    }

    /// Puts settled entries back after their commit failed: the store still has them, so they
    /// must stay deliverable (their locks are gone; they are redelivered).
    fn restore(&mut self, undo: Vec<(u64, u64, Bytes, u32)>) {
        for (seq, publish_ms, raw, deliveries) in undo.into_iter().rev() {
            if self.entries.contains_key(&seq) {
                continue;
            }
            METRICS.events_queued.inc();
            self.pager.retake(raw.len());
            self.entries.insert(
                seq,
                Entry {
                    publish_ms,
                    raw,
                    deliveries,
                },
            );
            self.ready.push_front(seq);
        }
        let mut ops = Vec::new();
        self.serve_waiters(&mut ops);
        self.flush(ops);
    }

    fn flush(&self, ops: Vec<Op>) {
        self.writer.submit_detached(ops, "queue state change");
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        let mut ops = Vec::new();
        let mono = mono_ms();
        while let Some(Reverse((exp, seq, n))) = self.lock_heap.peek().copied() {
            if exp > mono {
                break;
            }
            self.lock_heap.pop();
            let current = self
                .locks
                .get(&seq)
                .is_some_and(|l| l.nonce == n && l.expires_ms == exp);
            if current {
                self.locks.remove(&seq);
                METRICS.events_locked.dec();
                METRICS.lock_expirations.inc();
                self.unsettled(seq, 0, now, &mut ops);
            }
        }
        release_due(&mut self.ready, &mut self.delayed, now, |seq| {
            self.entries.contains_key(&seq) && !self.locks.contains_key(&seq)
        });
        // Time to live: entries are in publish order, so only the expired head is visited.
        let ttl_ms = self.cfg.ttl_secs * 1000;
        let expired: Vec<u64> = self
            .entries
            .iter()
            .take_while(|(_, e)| e.publish_ms.saturating_add(ttl_ms) <= now)
            .filter(|(s, _)| !self.locks.contains_key(s))
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            self.dead_letter(seq, Why::TimeToLive, now, &mut ops);
        }
        // Waits differ per request, so a later deadline may sit before an earlier one.
        let t = Instant::now();
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].deadline <= t || self.waiters[i].reply.is_closed() {
                let w = self.waiters.remove(i).expect("index");
                let _ = w.reply.send(Vec::new());
            } else {
                i += 1;
            }
        }
        self.serve_waiters(&mut ops);
        self.flush(ops);
    }
}

impl Paged for QueueSub {
    fn pager(&mut self) -> &mut Pager {
        &mut self.pager
    }
    fn store(&self) -> std::sync::Arc<dyn crate::store::Store> {
        self.writer.store().clone()
    }
    fn paged(&mut self, got: Loaded, _: &mut Context<Self>) {
        self.take_in(got.entries);
        METRICS.events_queued.add(got.unheard as i64);
        let mut ops = Vec::new();
        self.serve_waiters(&mut ops);
        self.flush(ops);
    }
}

impl Actor for QueueSub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `send` waits (back-pressure on the HTTP edge) only when this many requests queue up.
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(self.tick, |act, ctx| {
            act.on_tick();
            page_in(act, ctx);
        });
        page_in(self, ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        METRICS
            .events_queued
            .add(-(self.entries.len() as i64 + self.pager.on_disk() as i64));
        METRICS.events_locked.add(-(self.locks.len() as i64));
        self.pager.close();
    }
}

impl Handler<QueueAppend> for QueueSub {
    type Result = ();
    fn handle(&mut self, msg: QueueAppend, ctx: &mut Context<Self>) {
        for (seq, publish_ms, raw) in msg.0 {
            match self.pager.admit(seq, raw.len()) {
                Admit::Seen => continue,
                Admit::Disk => {
                    METRICS.events_queued.inc();
                    continue;
                }
                Admit::Memory => METRICS.events_queued.inc(),
            }
            self.entries.insert(
                seq,
                Entry {
                    publish_ms,
                    raw,
                    deliveries: 0,
                },
            );
            self.ready.push_back(seq);
        }
        let mut ops = Vec::new();
        self.serve_waiters(&mut ops);
        self.flush(ops);
        page_in(self, ctx);
    }
}

impl Handler<Receive> for QueueSub {
    type Result = ();
    fn handle(&mut self, msg: Receive, ctx: &mut Context<Self>) {
        let mut ops = Vec::new();
        // Earlier waiters first: a new receive must not overtake them.
        self.serve_waiters(&mut ops);
        if self.waiters.is_empty() {
            let got = self.take(msg.max, now_ms(), &mut ops);
            if !got.is_empty() {
                if let Err(got) = msg.reply.send(got) {
                    self.unlock(got);
                }
                self.flush(ops);
                page_in(self, ctx);
                return;
            }
        }
        self.waiters.push_back(Waiter {
            max: msg.max,
            deadline: Instant::now() + msg.wait,
            reply: msg.reply,
        });
        self.flush(ops);
        page_in(self, ctx);
    }
}

impl Handler<Settle> for QueueSub {
    type Result = ResponseActFuture<Self, Result<Settled, StoreError>>;
    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let mono = mono_ms();
        let mut ops = Vec::new();
        let mut res = Settled::default();
        // What acknowledge and reject take out of memory, to put back if the commit fails.
        let mut undo = Vec::new();
        for t in msg.tokens {
            let Some((seq, n)) = parse_token(&t) else {
                res.failed.push((t, TokenError::BadToken));
                continue;
            };
            let valid = self
                .locks
                .get(&seq)
                .is_some_and(|l| l.nonce == n && l.expires_ms > mono);
            if !valid {
                res.failed.push((t, TokenError::TokenLost));
                continue;
            }
            if let Action::RenewLock = msg.action {
                let lock = self.locks.get_mut(&seq).expect("checked");
                if mono.saturating_sub(lock.first_ms) > MAX_LOCK_AGE_MS {
                    res.failed.push((t, TokenError::LockAgeExceeded));
                    continue;
                }
                lock.expires_ms = mono + self.cfg.lock_secs as u64 * 1000;
                self.lock_heap.push(Reverse((lock.expires_ms, seq, n)));
                res.succeeded.push(t);
                continue;
            }
            self.locks.remove(&seq);
            METRICS.events_locked.dec();
            if matches!(msg.action, Action::Acknowledge | Action::Reject)
                && let Some(e) = self.entries.get(&seq)
            {
                undo.push((seq, e.publish_ms, e.raw.clone(), e.deliveries));
            }
            match msg.action {
                Action::Acknowledge => {
                    self.remove(seq);
                    METRICS.events_acknowledged.inc();
                    ops.push(Op::Remove { sub: self.key, seq });
                }
                Action::Release { delay_secs } => {
                    METRICS.events_released.inc();
                    self.unsettled(seq, delay_secs as u64 * 1000, now, &mut ops);
                }
                Action::Reject => {
                    METRICS.events_rejected.inc();
                    self.dead_letter(seq, Why::Rejected, now, &mut ops);
                }
                Action::RenewLock => unreachable!("handled above"),
            }
            res.succeeded.push(t);
        }
        self.serve_waiters(&mut ops);
        page_in(self, ctx);
        if ops.is_empty() {
            return Box::pin(actix::fut::ready(Ok(res)));
        }
        let commit = self.writer.submit(ops);
        Box::pin(
            async move { commit.await.map(|_| res) }
                .into_actor(self)
                .map(move |r, act, _| {
                    if r.is_err() {
                        act.restore(undo);
                    }
                    r
                }),
        )
    }
}

impl Handler<ReconfigureQueue> for QueueSub {
    type Result = ();
    fn handle(&mut self, msg: ReconfigureQueue, _: &mut Context<Self>) {
        self.cfg = msg.0;
    }
}

impl Handler<Shutdown> for QueueSub {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        for w in self.waiters.drain(..) {
            drop(w.reply);
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
