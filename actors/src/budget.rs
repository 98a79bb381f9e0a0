//! The memory budget: the bytes every kind of MQTT buffer holds, summed over all connections and
//! sessions, against one process-wide limit.
//!
//! Owns the per-kind totals and the limit (`mqtt.max_buffered_bytes`); the buffers themselves
//! (the outbox of each connection, the backlog of each session) report what they take and give
//! back. A message counts at its full size in every buffer that holds it, even where fan-out
//! shares one payload between many: the bound must hold for the worst case, a payload held by one
//! buffer only. Updated once per batch or mailbox message, never per message, so the shared
//! counters stay off the per-message path. Must never block, and never refuse what is already
//! held: only a new message is refused, by the buffer that would take it.

use std::fmt::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// The kinds of buffer the budget covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Messages handed to a connection's writer and not yet taken by its socket.
    MqttOutbound = 0,
    /// QoS 1/2 messages a session holds: in flight (unacknowledged) or queued.
    MqttBacklog = 1,
}

const LABELS: [&str; 2] = ["mqtt_outbound", "mqtt_backlog"];

#[derive(Debug)]
pub struct Budget {
    limit: AtomicUsize,
    held: [AtomicUsize; 2],
}

/// The process's budget. The limit is set once at start-up.
pub static BUDGET: Budget = Budget {
    limit: AtomicUsize::new(usize::MAX),
    held: [AtomicUsize::new(0), AtomicUsize::new(0)],
};

impl Budget {
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

    pub fn held(&self, kind: Kind) -> usize {
        self.held[kind as usize].load(Relaxed)
    }

    pub fn take(&self, kind: Kind, bytes: usize) {
        if bytes > 0 {
            self.held[kind as usize].fetch_add(bytes, Relaxed);
        }
    }

    pub fn give_back(&self, kind: Kind, bytes: usize) {
        if bytes > 0 {
            self.held[kind as usize].fetch_sub(bytes, Relaxed);
        }
    }

    /// Prometheus text: the limit and each kind's share.
    pub fn render(&self, s: &mut String) {
        let limit = self.limit();
        let _ = writeln!(
            s,
            "# HELP evgrid_memory_budget_bytes Limit on the bytes all MQTT buffers hold together \
             (mqtt.max_buffered_bytes).\n# TYPE evgrid_memory_budget_bytes gauge\n\
             evgrid_memory_budget_bytes {limit}"
        );
        let _ = writeln!(
            s,
            "# HELP evgrid_buffered_bytes Bytes held by each kind of buffer, counted against \
             the memory budget.\n# TYPE evgrid_buffered_bytes gauge"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_the_limit_less_every_kind() {
        let b = Budget {
            limit: AtomicUsize::new(100),
            held: [AtomicUsize::new(0), AtomicUsize::new(0)],
        };
        b.take(Kind::MqttOutbound, 60);
        b.take(Kind::MqttBacklog, 30);
        assert!(b.has_room(10));
        assert!(!b.has_room(11));
        b.give_back(Kind::MqttOutbound, 60);
        assert!(b.has_room(70));
        let mut s = String::new();
        b.render(&mut s);
        assert!(
            s.contains("evgrid_buffered_bytes{kind=\"mqtt_backlog\"} 30"),
            "{s}"
        );
        assert!(s.contains("evgrid_memory_budget_bytes 100"), "{s}");
    }
}
