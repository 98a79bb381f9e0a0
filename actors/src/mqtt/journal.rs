//! A persistent session's journal: the store's copy of the QoS 1/2 messages it holds, kept by
//! comparison rather than per change (see [`Journal`]); an offline session's new messages are
//! written at once, from the queue's tail ([`Journal::new_queued`]).
//!
//! Owns the bookkeeping and the records' keys; never submits anything itself and never waits:
//! the session hands the ops it answers to the store's writer.

use std::collections::HashSet;
use std::time::Instant;

use crate::model::clock::now_ms;
use crate::mqtt::message::Delivery;
use crate::mqtt::persist;
use crate::store::Op;

/// A recorded session's journal: the store's copy (`msg/SID/N`) of the QoS 1/2 messages it
/// holds, queued or in flight, so that they survive `kill -9`. The hot path only numbers a
/// message and marks the journal dirty; every `mqtt.journal_interval_ms` a dirty journal is
/// compared with what the session holds, and the difference (messages held since the previous
/// comparison, changed packet ids or PUBREC states, messages gone) is submitted to the group
/// commit, unawaited. A message is written once it is still held at its second comparison, so
/// one delivered and acknowledged within an interval (the normal case for a connected client)
/// never reaches the store, and `kill -9` loses what arrived in the last two intervals. A message
/// queued while the session is offline is written in the same turn instead (nothing will
/// acknowledge it soon), and the routing shard's answer to its publisher waits for that commit
/// ([`JournalAck`]).
#[derive(Debug, Default)]
pub struct Journal {
    /// The last number given to a message.
    pub(crate) last: u64,
    /// What the store has (once the submitted changes commit): number → in-flight state
    /// written, and the flush that last saw it held.
    pub(crate) on_disk: std::collections::HashMap<u64, (Option<(u16, bool)>, u64)>,
    /// Flushes so far.
    pub(crate) flushes: u64,
    /// Messages held at the last comparison but not written yet: written if still held at
    /// the next one.
    pub(crate) seen_once: HashSet<u64>,
    /// A message was queued while offline: the next comparison comes at once and writes
    /// everything new.
    pub(crate) urgent: bool,
    pub(crate) armed_now: bool,
    pub(crate) dirty: bool,
    pub(crate) armed: bool,
}

impl Journal {
    /// Gives `d` a number if it has none (QoS 1/2 only).
    pub(crate) fn number(&mut self, d: &mut Delivery) {
        if d.qos > 0 && d.journal == 0 {
            self.last += 1;
            d.journal = self.last;
        }
        self.dirty = true;
    }

    /// Puts for the newest queued messages not written yet (`queue` newest last): what an
    /// offline session took this turn. Stops at the first one already written, so it costs what
    /// is new, not the queue's length.
    pub(crate) fn new_queued<'a>(
        &mut self,
        sid: u64,
        queue: impl DoubleEndedIterator<Item = &'a Delivery>,
    ) -> Vec<Op> {
        self.urgent = false;
        let (wall, mono) = (now_ms(), Instant::now());
        let mut ops = Vec::new();
        for d in queue.rev() {
            if d.journal == 0 {
                continue;
            }
            if self.on_disk.contains_key(&d.journal) {
                break;
            }
            ops.push(put(sid, d, None, wall, mono));
            self.on_disk.insert(d.journal, (None, self.flushes));
        }
        // Written in order (oldest first), as a full comparison would.
        ops.reverse();
        ops
    }

    /// The store ops that make the journal match `held` (messages with their in-flight state,
    /// in order); with `all`, messages seen for the first time are written too (a graceful
    /// stop).
    pub(crate) fn diff<'a>(
        &mut self,
        sid: u64,
        held: impl Iterator<Item = (&'a Delivery, Option<(u16, bool)>)>,
        all: bool,
    ) -> Vec<Op> {
        self.flushes += 1;
        self.dirty = false;
        self.urgent = false;
        let now = self.flushes;
        let (wall, mono) = (now_ms(), Instant::now());
        let mut ops = Vec::new();
        let seen_before = std::mem::take(&mut self.seen_once);
        for (d, state) in held {
            if d.journal == 0 {
                continue;
            }
            match self.on_disk.get_mut(&d.journal) {
                Some((s, seen)) if *s == state => *seen = now,
                None if !all && !seen_before.contains(&d.journal) => {
                    // New since the last comparison: written if it is still here at the next.
                    self.seen_once.insert(d.journal);
                    self.dirty = true;
                }
                _ => {
                    ops.push(put(sid, d, state, wall, mono));
                    self.on_disk.insert(d.journal, (state, now));
                }
            }
        }
        self.on_disk.retain(|n, (_, seen)| {
            if *seen == now {
                return true;
            }
            ops.push(Op::DeleteMqtt {
                key: persist::msg_key(sid, *n),
            });
            false
        });
        ops
    }
}

/// The record of `d` (in flight with this state, or queued), its expiry as wall-clock time.
fn put(sid: u64, d: &Delivery, state: Option<(u16, bool)>, wall: u64, mono: Instant) -> Op {
    let expires = d
        .msg
        .expires_at
        .map(|t| wall + t.saturating_duration_since(mono).as_millis() as u64);
    Op::PutMqtt {
        key: persist::msg_key(sid, d.journal),
        value: persist::encode_delivery(d, state, expires),
    }
}
