//! The memory budget: the bytes every kind of client-driven buffer holds (MQTT outbound, session
//! mailboxes and backlogs, HTTP request bodies), summed over all connections and sessions, against one
//! process-wide limit.
//!
//! Owns the per-kind totals and the limit (`memory_budget_bytes`); the buffers themselves (the
//! outbox of each connection, the backlog of each session, each request body being read) report
//! what they take and give back, or hold a [`Held`] guard that gives back when dropped. A message
//! counts at its full size in every buffer that holds it, even where fan-out shares one payload
//! between many: the bound must hold for the worst case, a payload held by one buffer only.
//! Updated once per batch, mailbox message or body chunk, never per message, so the shared
//! counters stay off the per-message path. Must never block, and never refuse what is already
//! held: only new bytes are refused, by the buffer that would take them.

use std::fmt::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::metrics::{header, single};

/// The kinds of buffer the budget covers, each reported as `evgrid_buffered_bytes{kind=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferKind {
    /// `mqtt_outbound`: messages handed to a connection's writer and not yet taken by its socket.
    MqttOutbound = 0,
    /// `mqtt_backlog`: QoS 1/2 messages a session holds: in flight (unacknowledged) or queued.
    MqttBacklog = 1,
    /// `http_body`: request bodies the HTTP edge is reading or holding, from the first byte that
    /// arrives until the handler is done with the body: the bytes that have arrived, never the
    /// declared `Content-Length` (the buffer's capacity may exceed them by up to its last growth
    /// step, which the count leaves out).
    HttpBody = 2,
    /// `mqtt_mailbox`: messages routed to a session and waiting in its mailbox for the session
    /// to take them (to its connection's writer or its backlog).
    MqttMailbox = 3,
}

const LABELS: [&str; KINDS] = ["mqtt_outbound", "mqtt_backlog", "http_body", "mqtt_mailbox"];
const KINDS: usize = 4;

#[derive(Debug)]
pub struct Budget {
    limit: AtomicUsize,
    held: [AtomicUsize; KINDS],
}

/// The process's budget. The limit is set once at start-up.
pub static BUDGET: Budget = Budget::new(usize::MAX);

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget {
            limit: AtomicUsize::new(limit),
            held: [
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ],
        }
    }

    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Relaxed)
    }

    /// What all kinds hold together.
    pub fn total(&self) -> usize {
        self.held.iter().map(|h| h.load(Relaxed)).sum()
    }

    /// Whether `bytes` more fit under the limit.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.total().saturating_add(bytes) <= self.limit()
    }

    pub fn held(&self, kind: BufferKind) -> usize {
        self.held[kind as usize].load(Relaxed)
    }

    pub fn take(&self, kind: BufferKind, bytes: usize) {
        if bytes > 0 {
            self.held[kind as usize].fetch_add(bytes, Relaxed);
        }
    }

    pub fn give_back(&self, kind: BufferKind, bytes: usize) {
        if bytes > 0 {
            self.held[kind as usize].fetch_sub(bytes, Relaxed);
        }
    }

    /// Counts `bytes` more for `kind` if they fit under the limit; otherwise counts nothing and
    /// answers false. One atomic add when they fit (and one subtract when they do not): the add
    /// comes first, so two takers racing for the last room cannot both get it, at worst both
    /// are refused.
    pub fn try_take(&self, kind: BufferKind, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let own = &self.held[kind as usize];
        let before = own.fetch_add(bytes, Relaxed);
        let others: usize = self
            .held
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != kind as usize)
            .map(|(_, h)| h.load(Relaxed))
            .sum();
        if others.saturating_add(before).saturating_add(bytes) <= self.limit() {
            return true;
        }
        own.fetch_sub(bytes, Relaxed);
        false
    }

    /// A guard for one buffer's bytes of `kind`, starting at none.
    pub fn hold(&self, kind: BufferKind) -> Held<'_> {
        Held {
            budget: self,
            kind,
            bytes: 0,
        }
    }

    /// Prometheus text: the limit and each kind's share.
    pub fn render(&self, s: &mut String) {
        let limit = self.limit();
        single(
            s,
            "gauge",
            "evgrid_memory_budget_bytes",
            "Limit on the bytes all client-driven buffers (MQTT outbound, mailboxes and backlogs, HTTP \
             request bodies) hold together (memory_budget_bytes).",
            limit,
        );
        header(
            s,
            "gauge",
            "evgrid_buffered_bytes",
            "Bytes held by each kind of buffer, counted against the memory budget.",
        );
        for (label, h) in LABELS.iter().zip(&self.held) {
            let _ = writeln!(
                s,
                "evgrid_buffered_bytes{{kind=\"{label}\"}} {}",
                h.load(Relaxed)
            );
        }
    }
}

/// The bytes one buffer holds against the budget, given back exactly once, when the guard is
/// dropped: whatever path the owner leaves by (an error, a timeout, a dropped future), the
/// budget cannot leak.
#[derive(Debug)]
#[must_use = "dropping the guard gives its bytes back at once"]
pub struct Held<'a> {
    budget: &'a Budget,
    kind: BufferKind,
    bytes: usize,
}

impl Held<'_> {
    /// Counts `bytes` more if they fit under the budget's limit ([`Budget::try_take`]); when
    /// they do not, nothing changes and the answer is false.
    pub fn try_take(&mut self, bytes: usize) -> bool {
        let ok = self.budget.try_take(self.kind, bytes);
        if ok {
            self.bytes += bytes;
        }
        ok
    }

    /// What this guard holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.kind, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_the_limit_less_every_kind() {
        let b = Budget::new(100);
        b.take(BufferKind::MqttOutbound, 60);
        b.take(BufferKind::MqttBacklog, 30);
        assert!(b.has_room(10));
        assert!(!b.has_room(11));
        b.give_back(BufferKind::MqttOutbound, 60);
        assert!(b.has_room(70));
        let mut s = String::new();
        b.render(&mut s);
        assert!(
            s.contains("evgrid_buffered_bytes{kind=\"mqtt_backlog\"} 30"),
            "{s}"
        );
        assert!(s.contains("evgrid_memory_budget_bytes 100"), "{s}");
    }

    #[test]
    fn a_held_guard_takes_within_the_limit_and_gives_back_once_on_drop() {
        let b = Budget::new(100);
        b.take(BufferKind::MqttBacklog, 40);
        let mut g = b.hold(BufferKind::HttpBody);
        assert!(g.try_take(30));
        assert!(g.try_take(30));
        assert_eq!((g.bytes(), b.held(BufferKind::HttpBody)), (60, 60));
        // 40 + 60 + 1 > 100: refused, and the refusal leaves nothing behind.
        assert!(!g.try_take(1));
        assert_eq!((g.bytes(), b.held(BufferKind::HttpBody)), (60, 60));
        assert!(!b.has_room(1));
        drop(g);
        assert_eq!(b.held(BufferKind::HttpBody), 0);
        assert_eq!(b.total(), 40);
        let mut s = String::new();
        b.render(&mut s);
        assert!(
            s.contains("evgrid_buffered_bytes{kind=\"http_body\"} 0"),
            "{s}"
        );
    }

    #[test]
    fn a_guard_dropped_on_an_error_path_gives_its_bytes_back() {
        fn read(b: &Budget, chunks: &[usize]) -> Result<usize, usize> {
            let mut g = b.hold(BufferKind::HttpBody);
            for (i, c) in chunks.iter().enumerate() {
                if !g.try_take(*c) {
                    return Err(i);
                }
            }
            Ok(g.bytes())
        }
        let b = Budget::new(100);
        // The third chunk does not fit: the early return drops the guard holding 80.
        assert_eq!(read(&b, &[40, 40, 40]), Err(2));
        assert_eq!(b.held(BufferKind::HttpBody), 0);
        // A guard moved into a future that is dropped unfinished, as a handler's future is when
        // its connection closes.
        let mut g = b.hold(BufferKind::HttpBody);
        assert!(g.try_take(100));
        let pending = std::future::ready(g);
        assert_eq!(b.held(BufferKind::HttpBody), 100);
        drop(pending);
        assert_eq!(b.held(BufferKind::HttpBody), 0);
        assert_eq!(read(&b, &[50, 50]), Ok(100));
        assert_eq!(b.total(), 0);
    }
}
