//! MQTT session actor: one per client id, outliving the connections that attach to it.
//!
//! Owns everything MQTT keeps per session: the attached connection (if any), QoS 1/2 messages in
//! flight with their packet ids (redelivered with DUP on resume), the queue of messages waiting
//! for window space or for the client to come back (bounded by count, and in bytes together with
//! what is in flight, per session and against the process's memory budget), the will message
//! and its delay, and the session expiry, and the packet ids of inbound QoS 2 messages routed but
//! not yet released (shared with the connection, so a PUBLISH resent after a reconnect is
//! acknowledged without being routed twice). Subscriptions themselves live in the routing shards,
//! keyed by this session's id.
//!
//! Durable broker (`mqtt.persistence = durable`): a persistent session's record and its
//! subscriptions' are written by the broker before CONNACK and SUBACK; the session deletes them
//! when it ends (not when the broker shuts down), answers [`Save`] with the records of what it
//! holds at a graceful stop, and takes them back with [`Restore`] at start. Nothing is written per
//! message.
//!
//! Writes to the client only through the connection's writer channel (the ntex sink is not `Send`),
//! in batches: one channel message per mailbox message. Must never wait on a connection or on the
//! routers while handling a message.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use ntex_bytes::ByteString;

use crate::budget::{BUDGET, BufferKind};
use crate::metrics::{DropReason, METRICS};
use crate::model::clock::now_ms;
use crate::mqtt::broker::Broker;
use crate::mqtt::journal::Journal;
use crate::mqtt::message::{AppMessage, CloseReason, ConnId, Delivery, Out, OutMsg, SessionId};
use crate::mqtt::outbox::OutboxTx;
use crate::mqtt::persist;
use crate::store::Op;

mod handover;
pub use handover::{Handed, Handover};

/// Messages routed to this session, in routing order. Sent by routing shards (with `held`) and by
/// the connection for retained messages on subscribe (without).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub list: Vec<Delivery>,
    /// What `list` counts in the session's [`Mailbox`]; released when the session has handled it
    /// (or when the message is dropped with a stopped session).
    pub held: Option<MailboxHeld>,
    /// Held until what `list` added to an offline session's journal is committed (dropped at
    /// once otherwise): the publisher's PUBACK waits for every clone to go.
    pub journaled: Option<JournalAck>,
}

impl Deliver {
    pub fn unbounded(list: Vec<Delivery>) -> Self {
        Deliver {
            list,
            held: None,
            journaled: None,
        }
    }
}

/// One routed batch's wait for the journals of the offline persistent sessions it reached: the
/// routing shard keeps the receiver and hands clones of this to those sessions; the receiver
/// resolves when the last clone is dropped.
pub type JournalAck = Arc<tokio::sync::oneshot::Sender<()>>;

/// The bytes of deliveries routed to one session and not yet handled by it, shared by every
/// routing shard that delivers to it.
///
/// Routers never wait on a session, so without this bound a session whose thread falls behind
/// (a saturated fan-in) gathers an unbounded mailbox: measured at 4–6 million messages and
/// 1.5–2 GB in six seconds, past the memory budget, with delivery collapsing as the kernel zeroed
/// fresh pages. Past the bound a shard drops what it would add, as the session would: QoS 0 once
/// the mailbox holds the outbound bound (`outbound_full`), QoS 1/2 once it holds the backlog bound
/// (`queue_full`).
#[derive(Debug)]
pub struct Mailbox {
    bytes: AtomicUsize,
    qos0_limit: usize,
    limit: usize,
    /// Set by the session while it is persistent (journaled) and offline: what a shard delivers
    /// to it is written before the publisher's PUBACK.
    offline_journaled: std::sync::atomic::AtomicBool,
}

impl Mailbox {
    pub fn new(limits: &SessionLimits) -> Self {
        Mailbox {
            bytes: AtomicUsize::new(0),
            qos0_limit: limits.max_outbound_bytes,
            limit: limits.max_queued_bytes.max(limits.max_outbound_bytes),
            offline_journaled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the session journals what it is delivered before the publisher is answered.
    pub fn offline_journaled(&self) -> bool {
        self.offline_journaled.load(Ordering::Relaxed)
    }

    /// Bytes waiting in the mailbox now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Keeps the deliveries of `list` that fit (dropping and counting the rest) and counts what
    /// is kept until the returned guard is dropped. One delivery always fits an empty mailbox, so
    /// a message larger than the bound still gets through.
    pub fn admit(self: &Arc<Self>, list: &mut Vec<Delivery>) -> MailboxHeld {
        let base = self.bytes();
        // Read once per list: the shared counters stay off the per-message path.
        let room = BUDGET.limit().saturating_sub(BUDGET.total());
        let mut added = 0usize;
        let (mut full0, mut full, mut budget) = (0u64, 0u64, 0u64);
        list.retain(|d| {
            let w = d.msg.weight();
            let at = base + added;
            let limit = if d.qos == 0 {
                self.qos0_limit
            } else {
                self.limit
            };
            if at > 0 && at + w > limit {
                if d.qos == 0 {
                    full0 += 1;
                } else {
                    full += 1;
                }
                return false;
            }
            if added + w > room {
                budget += 1;
                return false;
            }
            added += w;
            true
        });
        for (reason, n) in [
            (DropReason::OutboundFull, full0),
            (DropReason::QueueFull, full),
            (DropReason::MemoryBudget, budget),
        ] {
            if n > 0 {
                METRICS.drop(reason, n);
            }
        }
        self.bytes.fetch_add(added, Ordering::AcqRel);
        BUDGET.take(BufferKind::MqttMailbox, added);
        MailboxHeld {
            bytes: added,
            of: self.clone(),
        }
    }
}

/// Part of a [`Mailbox`]'s count (and of the memory budget), released when dropped.
#[derive(Debug)]
pub struct MailboxHeld {
    bytes: usize,
    of: Arc<Mailbox>,
}

impl Drop for MailboxHeld {
    fn drop(&mut self) {
        self.of.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        BUDGET.give_back(BufferKind::MqttMailbox, self.bytes);
    }
}

/// The connection side of a session: where to write and how much it may have in flight.
#[derive(Debug)]
pub struct Link {
    pub conn: ConnId,
    /// The writer's channel; it also counts what the socket has not taken yet.
    pub tx: OutboxTx,
    /// QoS 1/2 messages in flight at once: min(server inflight limit, client receive maximum).
    pub window: usize,
}

/// A will message and when it is due after an ungraceful disconnect.
#[derive(Debug, Clone)]
pub struct Will {
    pub msg: AppMessage,
    pub delay_secs: u32,
}

/// Packet ids of inbound QoS 2 messages this session has routed and whose PUBREL has not arrived
/// yet. A PUBLISH with one of these ids is a resend [MQTT-4.3.3-10]: acknowledge it, do not route
/// it again. Held by the session so it survives reconnects; the connection's handlers (on an ntex
/// worker thread) check and update it directly, because the answer must come before the PUBREC.
pub type InboundQos2 = Arc<Mutex<HashSet<u16>>>;

/// What a connection gets from the session it attached to.
#[derive(Debug, Clone)]
pub struct Attached {
    /// State from an earlier connection was present (CONNACK's session present).
    pub present: bool,
    pub inbound_qos2: InboundQos2,
}

/// A connection attaches to this session (new or resumed). Answers with [`Attached`], or `None`
/// when this session is ending (its connection was not persistent) and a new one is needed.
#[derive(Message)]
#[rtype(result = "Option<Attached>")]
pub struct Attach {
    pub link: Link,
    pub expiry_secs: u32,
    pub will: Option<Will>,
    /// This actor was created for this very connection (so no state can be present).
    pub fresh: bool,
}

/// Start-up: this session was read back from the store; it waits offline for its client, with
/// `expiry_secs` counted from now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore {
    pub expiry_secs: u32,
    /// The QoS 1/2 messages it held when the broker last stopped gracefully: those in flight
    /// (resent with DUP and their packet ids when the client is back), then those queued.
    pub saved: Vec<persist::SavedDelivery>,
    /// Inbound QoS 2 packet ids whose PUBREL had not come.
    pub inbound_qos2: Vec<u16>,
    /// Its will, if it was waiting for its delay, and when it is due (ms since the epoch).
    pub will: Option<(AppMessage, u64)>,
}

/// Graceful stop: a recorded session submits its journal, brought fully up to date (QoS 1/2
/// messages in flight and queued, inbound QoS 2 packet ids awaiting PUBREL), itself, so that
/// its own later changes follow in the writer's order; answers how many messages it holds.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Save;

/// A connection ended. Sent by the connection's state when it is dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub conn: ConnId,
    /// The client sent DISCONNECT (and, in v5, not "disconnect with will").
    pub graceful: bool,
    /// A v5 DISCONNECT may change the session expiry interval.
    pub expiry_secs: Option<u32>,
}

/// The client acknowledged QoS 1 messages (PUBACK) or completed QoS 2 ones (PUBCOMP): the packet
/// ids, in the order they arrived. The connection sends every PUBACK of one read as one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Acked {
    pub conn: ConnId,
    pub pids: Vec<u16>,
}

/// The client received a QoS 2 message (PUBREC): it must not be sent again as a PUBLISH.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Received {
    pub conn: ConnId,
    pub pid: u16,
}

/// A new connection with the same client id asked for a clean start: this session ends now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discard;

/// Per-session limits from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// QoS 1/2 messages queued (beyond those in flight).
    pub max_queued_messages: usize,
    /// Bytes of QoS 1/2 messages a session holds, queued and in flight together.
    pub max_queued_bytes: usize,
    /// Messages buffered towards the socket (not yet taken by it) before QoS 0 ones are dropped.
    pub max_outbound: usize,
    /// The same bound in bytes ([`AppMessage::weight`]).
    pub max_outbound_bytes: usize,
    pub max_session_expiry_secs: u32,
    /// Sessions the broker holds at once, connected or not.
    pub max_sessions: usize,
    /// How often a recorded session's journal is brought up to date (`mqtt.journal_interval_ms`).
    pub journal_interval: Duration,
}

#[derive(Debug)]
struct Inflight {
    pid: u16,
    d: Delivery,
    /// PUBREC seen: only PUBREL/PUBCOMP remain.
    received: bool,
}

pub struct Session {
    id: SessionId,
    client_id: ByteString,
    broker: Broker,
    limits: SessionLimits,
    link: Option<Link>,
    inflight: VecDeque<Inflight>,
    next_pid: u16,
    inbound_qos2: InboundQos2,
    queue: VecDeque<Delivery>,
    /// Weight of everything queued and in flight.
    backlog_bytes: usize,
    /// What of `backlog_bytes` the memory budget has been told (it is told once per mailbox
    /// message, not per delivery).
    budgeted: usize,
    expiry_secs: u32,
    will: Option<Will>,
    will_timer: Option<SpawnHandle>,
    /// Its pending will has a record in the store (`will/SID`), to delete once it is published
    /// or cancelled.
    will_recorded: bool,
    /// Handed to another node ([`Handover`]): it ends without publishing its will.
    handed_over: bool,
    /// Recorded sessions only: the store's copy of the QoS 1/2 messages it holds.
    journal: Journal,
    /// Shared with the routing shards (its byte count, and whether it is offline and recorded).
    mailbox: Arc<Mailbox>,
    expiry_timer: Option<SpawnHandle>,
    /// Bumped on every attach/detach so a stale timer can tell it is stale.
    epoch: u64,
    /// A connection taking over the attached one, waiting for it to finish: the old connection
    /// may still report acknowledgements it read before it closed (it may be on another thread),
    /// and those must count before the new connection is sent what is unacknowledged.
    waiting: Option<Waiting>,
    /// Its record and its subscriptions' are in the store (a persistent session of a durable
    /// broker): they go when it ends.
    recorded: bool,
}

struct Waiting {
    attach: Attach,
    reply: tokio::sync::oneshot::Sender<Option<Attached>>,
}

/// How long a taking-over connection waits for the one it replaces to detach.
const TAKEOVER_WAIT: Duration = Duration::from_secs(2);

impl Session {
    pub fn new(
        id: SessionId,
        client_id: ByteString,
        broker: Broker,
        limits: SessionLimits,
        mailbox: Arc<Mailbox>,
    ) -> Self {
        Session {
            mailbox,
            id,
            client_id,
            broker,
            limits,
            link: None,
            inflight: VecDeque::new(),
            next_pid: 0,
            inbound_qos2: InboundQos2::default(),
            queue: VecDeque::new(),
            backlog_bytes: 0,
            budgeted: 0,
            expiry_secs: 0,
            will: None,
            will_timer: None,
            will_recorded: false,
            handed_over: false,
            journal: Journal::default(),
            expiry_timer: None,
            epoch: 0,
            waiting: None,
            recorded: false,
        }
    }

    /// Ends the session once `expiry_secs` pass without a connection.
    fn start_expiry(&mut self, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        let expiry = Duration::from_secs(u64::from(self.expiry_secs));
        self.expiry_timer = Some(ctx.run_later(expiry, move |s, ctx| {
            if s.epoch == epoch && s.link.is_none() {
                tracing::debug!(client_id = %s.client_id, "session expired");
                ctx.stop();
            }
        }));
    }

    fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            if self.next_pid != 0 && !self.inflight.iter().any(|i| i.pid == self.next_pid) {
                return self.next_pid;
            }
        }
    }

    fn enqueue(&mut self, d: Delivery) {
        let w = d.msg.weight();
        if self.queue.len() >= self.limits.max_queued_messages
            || self.backlog_bytes + w > self.limits.max_queued_bytes
        {
            METRICS.drop(DropReason::QueueFull, 1);
            return;
        }
        if !BUDGET.has_room(w) {
            METRICS.drop(DropReason::MemoryBudget, 1);
            return;
        }
        self.backlog_bytes += w;
        let mut d = d;
        if self.recorded {
            self.journal.number(&mut d);
            // Offline, nothing will acknowledge it soon: written at once, not an interval later.
            self.journal.urgent |= self.link.is_none();
        }
        self.queue.push_back(d);
    }

    /// Tells the routing shards whether this session is offline and journaled (see
    /// [`Mailbox::offline_journaled`]); called whenever either changes.
    fn publish_offline_journaled(&self) {
        self.mailbox
            .offline_journaled
            .store(self.recorded && self.link.is_none(), Ordering::Relaxed);
    }

    /// Brings the journal up to date once the interval has passed, if anything changed.
    fn arm_journal(&mut self, ctx: &mut Context<Self>) {
        if !self.recorded || !self.journal.dirty {
            return;
        }
        if self.journal.urgent && !self.journal.armed_now {
            // Right after this turn, with everything this turn queued.
            self.journal.armed_now = true;
            ctx.run_later(Duration::ZERO, |s, ctx| {
                s.journal.armed_now = false;
                drop(s.flush_new_queued());
                s.arm_journal(ctx);
            });
        }
        if self.journal.armed {
            return;
        }
        self.journal.armed = true;
        ctx.run_later(self.limits.journal_interval, |s, ctx| {
            s.journal.armed = false;
            drop(s.flush_journal(false));
            s.arm_journal(ctx);
        });
    }

    /// The store ops that bring the journal up to date with what the session holds (`all`:
    /// including messages first seen now).
    fn journal_ops(&mut self, all: bool) -> Vec<Op> {
        let held = self
            .inflight
            .iter()
            .map(|i| (&i.d, Some((i.pid, i.received))))
            .chain(self.queue.iter().map(|d| (d, None)));
        let mut ops = self.journal.diff(self.id.0, held, all);
        // Inbound QoS 2 ids are committed by the connection before each PUBREC and PUBCOMP
        // (`Broker::record_inbound_qos2`); a graceful stop (`all`) writes them once more.
        if all {
            let key = persist::inbound_qos2_key(self.id.0);
            let q2: Vec<u16> = {
                let q2 = self.inbound_qos2.lock().unwrap_or_else(|p| p.into_inner());
                q2.iter().copied().collect()
            };
            ops.push(if q2.is_empty() {
                Op::DeleteMqtt { key }
            } else {
                Op::PutMqtt {
                    key,
                    value: persist::encode_pids(&q2),
                }
            });
        }
        ops
    }

    /// Submits what an offline session queued since its journal was last written (see
    /// [`Journal::new_queued`]); answers the commit to wait for, if there was one.
    fn flush_new_queued(
        &mut self,
    ) -> Option<impl std::future::Future<Output = Result<(), crate::store::StoreError>> + 'static>
    {
        if !self.recorded {
            return None;
        }
        let ops = self.journal.new_queued(self.id.0, self.queue.iter());
        if ops.is_empty() {
            return None;
        }
        Some(self.broker.persist()?.submit(ops))
    }

    /// Submits the journal's changes; answers the commit to wait for, if there was one.
    fn flush_journal(
        &mut self,
        all: bool,
    ) -> Option<impl std::future::Future<Output = Result<(), crate::store::StoreError>> + 'static>
    {
        if !self.recorded {
            return None;
        }
        let ops = self.journal_ops(all);
        if ops.is_empty() {
            return None;
        }
        Some(self.broker.persist()?.submit(ops))
    }

    /// Tells the memory budget how the backlog changed since it was last told.
    fn settle_budget(&mut self) {
        if self.backlog_bytes > self.budgeted {
            BUDGET.take(BufferKind::MqttBacklog, self.backlog_bytes - self.budgeted);
        } else {
            BUDGET.give_back(BufferKind::MqttBacklog, self.budgeted - self.backlog_bytes);
        }
        self.budgeted = self.backlog_bytes;
    }

    /// Puts one delivery on its way: to the writer, into the window, or into the queue.
    /// `batch_bytes` is the weight of the QoS 0 messages `batch` holds so far.
    fn dispatch(
        &mut self,
        d: Delivery,
        now: Instant,
        batch: &mut Vec<OutMsg>,
        batch_bytes: &mut usize,
    ) {
        if d.msg.is_expired(now) {
            METRICS.drop(DropReason::Expired, 1);
            return;
        }
        let Some(link) = &self.link else {
            if d.qos == 0 {
                METRICS.drop(DropReason::Offline, 1);
            } else {
                self.enqueue(d);
            }
            return;
        };
        if d.qos == 0 {
            // What the writer has not handed to the socket yet, this batch included.
            let (held, held_bytes) = link.tx.held();
            let (n, bytes) = (held + batch.len(), held_bytes + *batch_bytes);
            let w = d.msg.weight();
            if n >= self.limits.max_outbound
                || (bytes > 0 && bytes + w > self.limits.max_outbound_bytes)
            {
                METRICS.drop(DropReason::OutboundFull, 1);
                return;
            }
            if !BUDGET.has_room(w) {
                METRICS.drop(DropReason::MemoryBudget, 1);
                return;
            }
            *batch_bytes += w;
            batch.push(OutMsg {
                msg: d.msg,
                qos: 0,
                pid: 0,
                dup: false,
                retain: d.retain,
                sub_ids: d.sub_ids,
                release: false,
            });
            return;
        }
        let w = d.msg.weight();
        // In flight counts towards the session's bytes too; one message always fits, so a
        // message larger than the bound is not stuck forever.
        if self.inflight.len() >= link.window
            || !self.queue.is_empty()
            || (!self.inflight.is_empty() && self.backlog_bytes + w > self.limits.max_queued_bytes)
        {
            self.enqueue(d);
            return;
        }
        if !BUDGET.has_room(w) {
            METRICS.drop(DropReason::MemoryBudget, 1);
            return;
        }
        self.backlog_bytes += w;
        self.send_first(d, batch);
    }

    /// Gives `d` a packet id, adds its first transmission to `batch` and keeps it in flight.
    fn send_first(&mut self, mut d: Delivery, batch: &mut Vec<OutMsg>) {
        let pid = self.alloc_pid();
        if self.recorded {
            self.journal.number(&mut d);
        }
        batch.push(OutMsg {
            msg: d.msg.clone(),
            qos: d.qos,
            pid,
            dup: false,
            retain: d.retain,
            sub_ids: d.sub_ids.clone(),
            release: false,
        });
        self.inflight.push_back(Inflight {
            pid,
            d,
            received: false,
        });
    }

    /// Moves queued messages into the window while it has room.
    fn fill_window(&mut self, now: Instant, batch: &mut Vec<OutMsg>) {
        let Some(window) = self.link.as_ref().map(|l| l.window) else {
            return;
        };
        while self.inflight.len() < window {
            let Some(d) = self.queue.pop_front() else {
                break;
            };
            if d.msg.is_expired(now) {
                self.backlog_bytes -= d.msg.weight();
                self.journal.dirty = true;
                METRICS.drop(DropReason::Expired, 1);
                continue;
            }
            self.send_first(d, batch);
        }
    }

    fn send(&mut self, batch: Vec<OutMsg>) {
        self.settle_budget();
        if batch.is_empty() {
            return;
        }
        if let Some(link) = &self.link {
            // Refused when the writer is gone; the Detach that follows will clear the link. QoS
            // 1/2 messages stay in flight and are redelivered on resume.
            let _ = link.tx.send(Out::Batch(batch));
        }
    }

    fn publish_will(&mut self) {
        if let Some(will) = self.will.take() {
            tracing::debug!(client_id = %self.client_id, topic = %will.msg.topic, "publishing will");
            self.broker.publish(will.msg);
        }
        self.forget_will_record();
    }

    /// Deletes the store's record of a pending will (published, or cancelled by a reconnect).
    fn forget_will_record(&mut self) {
        if std::mem::take(&mut self.will_recorded)
            && let Some(w) = self.broker.persist()
        {
            drop(w.submit(vec![Op::DeleteMqtt {
                key: persist::will_key(self.id.0),
            }]));
        }
    }

    /// Publishes the pending will once `delay` has passed, unless a connection attaches first.
    fn arm_will(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        self.will_timer = Some(ctx.run_later(delay, move |s, _| {
            if s.epoch == epoch {
                s.will_timer = None;
                s.publish_will();
            }
        }));
    }

    /// Closes the attached connection, if any, from the broker's side.
    fn close_link(&mut self, reason: CloseReason) {
        if let Some(link) = self.link.take() {
            let _ = link.tx.send(Out::Close(reason));
        }
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        METRICS.sessions.inc();
        // do_send ignores the capacity; this bounds only `send` callers (connections' control).
        ctx.set_mailbox_capacity(256);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        METRICS.sessions.dec();
        self.backlog_bytes = 0;
        self.settle_budget();
        // A will still waiting for its delay is due when the session ends [MQTT-3.1.3-9]. A
        // graceful stop of the broker does not end a persistent session: its recorded will
        // waits in the store, and the next start arms it again.
        if self.handed_over {
            self.will = None;
            self.forget_will_record();
        } else if !(self.broker.closing() && self.will_recorded) {
            self.publish_will();
        }
        let ours = self
            .broker
            .session_ended(&self.client_id, self.id, self.expiry_secs > 0);
        if self.recorded
            && !self.broker.closing()
            && let Some(w) = self.broker.persist()
        {
            let mut ops = vec![
                Op::DeleteMqttPrefix {
                    prefix: persist::subs_prefix(self.id.0),
                },
                Op::DeleteMqttPrefix {
                    prefix: persist::msgs_prefix(self.id.0),
                },
                Op::DeleteMqtt {
                    key: persist::inbound_qos2_key(self.id.0),
                },
            ];
            // A clean start that replaced this session owns the client id's record now.
            if ours {
                ops.push(Op::DeleteMqtt {
                    key: persist::session_key(&self.client_id),
                });
            }
            // Submitted now; nothing waits for it (a lost delete leaves records that the next
            // start reads as an offline session, which then expires).
            drop(w.submit(ops));
        } else if self.recorded {
            // The broker is stopping: the journal is kept, current to the last change.
            drop(self.flush_journal(true));
        }
        if self.queue.len() + self.inflight.len() > 0 {
            tracing::debug!(client_id = %self.client_id, queued = self.queue.len(),
                inflight = self.inflight.len(), "session expired with undelivered messages");
        }
    }
}

impl Handler<Attach> for Session {
    type Result = ResponseFuture<Option<Attached>>;

    fn handle(&mut self, msg: Attach, ctx: &mut Self::Context) -> Self::Result {
        if !msg.fresh && self.expiry_secs == 0 {
            // The state belongs to a non-persistent connection (clean session / expiry 0) whose
            // Detach may still be on its way: that session ends with its connection, so the new
            // connection gets a new one [MQTT-3.1.2-6].
            self.close_link(CloseReason::SessionTakenOver);
            ctx.stop();
            return Box::pin(std::future::ready(None));
        }
        // A connection already waiting to take over is attached first; this one takes over
        // from it in turn.
        if let Some(w) = self.waiting.take() {
            self.link = None;
            let _ = w.reply.send(Some(self.attach(w.attach, ctx)));
        }
        let Some(link) = &self.link else {
            return Box::pin(std::future::ready(Some(self.attach(msg, ctx))));
        };
        // [MQTT-3.1.4-3]: the existing connection is closed (v5 says why, 0x8E). It stays the
        // session's link until its Detach, so what it acknowledged before it closed counts.
        let _ = link.tx.send(Out::Close(CloseReason::SessionTakenOver));
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.waiting = Some(Waiting { attach: msg, reply });
        let old = link.conn;
        ctx.run_later(TAKEOVER_WAIT, move |s, ctx| {
            if s.link.as_ref().is_some_and(|l| l.conn == old)
                && let Some(w) = s.waiting.take()
            {
                tracing::debug!(client_id = %s.client_id, "taken-over connection did not detach");
                s.link = None;
                let _ = w.reply.send(Some(s.attach(w.attach, ctx)));
            }
        });
        Box::pin(async move { rx.await.ok().flatten() })
    }
}

impl Session {
    /// Attaches a connection to this session (no other is attached) and sends it what is due.
    fn attach(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Attached {
        let present = !msg.fresh;
        self.epoch += 1;
        if let Some(t) = self.expiry_timer.take() {
            ctx.cancel_future(t);
        }
        if let Some(t) = self.will_timer.take() {
            ctx.cancel_future(t);
        }
        // A will pending from the previous connection is not sent: the client is back.
        self.forget_will_record();
        self.will = msg.will;
        self.expiry_secs = msg.expiry_secs.min(self.limits.max_session_expiry_secs);
        // The broker records it before CONNACK (`Broker::open`).
        let was = self.recorded;
        self.recorded = self.expiry_secs > 0 && self.broker.persist().is_some();
        if was
            && !self.recorded
            && let Some(w) = self.broker.persist()
        {
            // No longer persistent (expiry 0 now): its journal goes; numbers already given are
            // harmless (a delete of one not on disk writes nothing).
            self.journal = Journal {
                last: self.journal.last,
                ..Journal::default()
            };
            drop(w.submit(vec![Op::DeleteMqttPrefix {
                prefix: persist::msgs_prefix(self.id.0),
            }]));
        }
        self.link = Some(msg.link);
        self.publish_offline_journaled();

        // [MQTT-4.4.0-1]: resend unacknowledged PUBLISH packets with DUP and their packet ids,
        // and PUBREL for QoS 2 messages the client has received, in their original order.
        let now = Instant::now();
        let mut batch = Vec::with_capacity(self.inflight.len());
        for i in &self.inflight {
            batch.push(OutMsg {
                msg: i.d.msg.clone(),
                qos: i.d.qos,
                pid: i.pid,
                dup: true,
                retain: i.d.retain,
                sub_ids: i.d.sub_ids.clone(),
                release: i.received,
            });
        }
        self.fill_window(now, &mut batch);
        self.send(batch);
        self.arm_journal(ctx);
        Attached {
            present,
            inbound_qos2: self.inbound_qos2.clone(),
        }
    }
}

impl Handler<Detach> for Session {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        if self.link.as_ref().is_none_or(|l| l.conn != msg.conn) {
            return; // a connection that was already taken over
        }
        self.link = None;
        self.publish_offline_journaled();
        if let Some(w) = self.waiting.take() {
            // Taken over: the new connection attaches now, as if this one had not detached by
            // itself (no will, no expiry).
            let _ = w.reply.send(Some(self.attach(w.attach, ctx)));
            return;
        }
        self.epoch += 1;
        if let Some(e) = msg.expiry_secs {
            let e = e.min(self.limits.max_session_expiry_secs);
            if self.recorded
                && e > 0
                && e != self.expiry_secs
                && let Some(w) = self.broker.persist()
            {
                let rec = persist::SessionRecord {
                    sid: self.id.0,
                    expiry_secs: e,
                };
                drop(w.submit(vec![Op::PutMqtt {
                    key: persist::session_key(&self.client_id),
                    value: persist::encode_session(rec),
                }]));
            }
            self.expiry_secs = e;
        }
        if msg.graceful {
            self.will = None; // [MQTT-3.1.2-10]
        }
        if self.expiry_secs == 0 {
            ctx.stop();
            return;
        }
        if let Some(w) = &self.will {
            if w.delay_secs == 0 {
                self.publish_will();
            } else {
                let delay = Duration::from_secs(u64::from(w.delay_secs));
                // Recorded so that a restart (or `kill -9`) before it is due does not lose it.
                if self.recorded
                    && let Some(st) = self.broker.persist()
                {
                    let due = now_ms() + delay.as_millis() as u64;
                    drop(st.submit(vec![Op::PutMqtt {
                        key: persist::will_key(self.id.0),
                        value: persist::encode_will(&w.msg, due),
                    }]));
                    self.will_recorded = true;
                }
                self.arm_will(delay, ctx);
            }
        }
        self.start_expiry(ctx);
    }
}

impl Handler<Restore> for Session {
    type Result = ();

    fn handle(&mut self, msg: Restore, ctx: &mut Self::Context) {
        self.expiry_secs = msg.expiry_secs.min(self.limits.max_session_expiry_secs);
        self.recorded = true;
        self.publish_offline_journaled();
        self.epoch += 1;
        self.start_expiry(ctx);
        if let Some((msg, due_ms)) = msg.will {
            self.will = Some(Will { msg, delay_secs: 0 });
            self.will_recorded = true;
            self.arm_will(Duration::from_millis(due_ms.saturating_sub(now_ms())), ctx);
        }
        let (now, mono) = (now_ms(), Instant::now());
        let top = msg.saved.iter().map(|s| s.delivery.journal).max();
        self.journal.last = self.journal.last.max(top.unwrap_or(0));
        // A record numbered 0 (saved by an evgrid before the journal) gets a number of its own;
        // its old key is deleted by the comparison right after restoring.
        let mut renumbered = false;
        for s in msg.saved {
            let mut d = s.delivery;
            self.journal.on_disk.insert(d.journal, (s.inflight, 0));
            if d.journal == 0 {
                self.journal.number(&mut d);
                renumbered = true;
            }
            if let Some(e) = s.expires_ms {
                if e <= now {
                    // Deleted from the store at the first flush (no longer held).
                    self.journal.dirty = true;
                    METRICS.drop(DropReason::Expired, 1);
                    continue;
                }
                let mut m = (*d.msg).clone();
                m.expires_at = Some(mono + Duration::from_millis(e - now));
                d.msg = Arc::new(m);
            }
            self.backlog_bytes += d.msg.weight();
            match s.inflight {
                Some((pid, received)) => {
                    self.next_pid = self.next_pid.max(pid);
                    self.inflight.push_back(Inflight { pid, d, received });
                }
                None => self.queue.push_back(d),
            }
        }
        self.settle_budget();
        if renumbered {
            drop(self.flush_journal(true));
        }
        self.arm_journal(ctx);
        if !msg.inbound_qos2.is_empty() {
            let mut q2 = self.inbound_qos2.lock().unwrap_or_else(|p| p.into_inner());
            q2.extend(msg.inbound_qos2);
        }
    }
}

impl Handler<Save> for Session {
    type Result = MessageResult<Save>;

    fn handle(&mut self, _: Save, _: &mut Self::Context) -> Self::Result {
        if !self.recorded {
            return MessageResult(0);
        }
        // Messages taken while the session was not recorded are numbered now; the journal is
        // brought up to date with this commit.
        for i in self.inflight.iter_mut() {
            self.journal.number(&mut i.d);
        }
        for d in self.queue.iter_mut() {
            self.journal.number(d);
        }
        drop(self.flush_journal(true));
        MessageResult(self.inflight.len() + self.queue.len())
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let now = Instant::now();
        let Deliver {
            list,
            held,
            journaled,
        } = msg;
        let mut batch = Vec::with_capacity(list.len());
        let mut batch_bytes = 0;
        for d in list {
            self.dispatch(d, now, &mut batch, &mut batch_bytes);
        }
        // Released before sending: from here the writer's or the backlog's count holds them.
        drop(held);
        self.send(batch);
        if let Some(ack) = journaled
            && self.journal.urgent
            && let Some(commit) = self.flush_new_queued()
        {
            // The publisher's PUBACK waits for this commit (the shard holds the other end).
            actix::spawn(async move {
                if let Err(e) = commit.await {
                    tracing::warn!(error = %e, "an offline session's messages were not journaled");
                }
                drop(ack);
            });
        }
        self.arm_journal(ctx);
    }
}

impl Handler<Acked> for Session {
    type Result = ();

    fn handle(&mut self, msg: Acked, ctx: &mut Self::Context) {
        if self.link.as_ref().is_none_or(|l| l.conn != msg.conn) {
            return;
        }
        for pid in msg.pids {
            // Acknowledgements come in sending order, so this is nearly always the front.
            if let Some(pos) = self.inflight.iter().position(|i| i.pid == pid)
                && let Some(i) = self.inflight.remove(pos)
            {
                self.backlog_bytes -= i.d.msg.weight();
                self.journal.dirty = true;
            }
        }
        let mut batch = Vec::new();
        self.fill_window(Instant::now(), &mut batch);
        self.send(batch);
        self.arm_journal(ctx);
    }
}

impl Handler<Received> for Session {
    type Result = ();

    fn handle(&mut self, msg: Received, ctx: &mut Self::Context) {
        if self.link.as_ref().is_none_or(|l| l.conn != msg.conn) {
            return;
        }
        if let Some(i) = self.inflight.iter_mut().find(|i| i.pid == msg.pid) {
            i.received = true;
            // After a restart the session sends PUBREL for it, not the message again.
            self.journal.dirty = true;
        }
        self.arm_journal(ctx);
    }
}

impl Handler<Discard> for Session {
    type Result = ();

    fn handle(&mut self, _: Discard, ctx: &mut Self::Context) {
        // A connected client is closed (its will, if any, is published when the session stops,
        // as is a will still waiting for its delay).
        self.close_link(CloseReason::SessionTakenOver);
        ctx.stop();
    }
}
