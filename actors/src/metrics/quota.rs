//! The counters of MQTT quotas (a namespace's `topicSpacesConfiguration.quotas`): publishes and
//! CONNECTs refused for a quota, by kind, and v3.1.1 connections closed for one (v3.1.1 has no
//! negative acknowledgement). Like every counter, must never block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// Which quota was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Inbound PUBLISH packets per second of one session.
    SessionMessages = 0,
    /// Inbound PUBLISH payload bytes per second of one session.
    SessionBytes = 1,
    /// CONNECTs per second in the namespace.
    Connects = 2,
}

const KINDS: [&str; 3] = ["session_messages", "session_bytes", "connects"];

impl QuotaKind {
    pub fn label(self) -> &'static str {
        KINDS[self as usize]
    }
}

/// `evgrid_mqtt_quota_exceeded_total{kind}` and `evgrid_mqtt_quota_disconnects_total`.
#[derive(Debug)]
pub struct QuotaMetrics {
    exceeded: [Counter; 3],
    disconnects: Counter,
}

// Only array-repeat initialisers of the static below: each use is a fresh counter.
#[allow(clippy::declare_interior_mutable_const)]
const C: Counter = Counter::new();

pub static QUOTA: QuotaMetrics = QuotaMetrics {
    exceeded: [C; 3],
    disconnects: C,
};

impl QuotaMetrics {
    /// One PUBLISH (or CONNECT) refused for `kind`.
    pub fn exceeded(&self, kind: QuotaKind) {
        self.exceeded[kind as usize].inc();
    }

    pub fn exceeded_count(&self, kind: QuotaKind) -> u64 {
        self.exceeded[kind as usize].get()
    }

    /// A v3.1.1 connection closed because it exceeded a session quota.
    pub fn disconnected(&self) {
        self.disconnects.inc();
    }

    pub fn disconnects(&self) -> u64 {
        self.disconnects.get()
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_mqtt_quota_exceeded_total";
        header(
            s,
            "counter",
            name,
            "MQTT PUBLISH packets and CONNECTs refused for a namespace quota, by kind.",
        );
        for (k, c) in KINDS.iter().zip(&self.exceeded) {
            let _ = writeln!(s, "{name}{{kind=\"{k}\"}} {}", c.get());
        }
        let name = "evgrid_mqtt_quota_disconnects_total";
        header(
            s,
            "counter",
            name,
            "MQTT 3.1.1 connections closed for exceeding a session quota (3.1.1 has no negative acknowledgement).",
        );
        let _ = writeln!(s, "{name} {}", self.disconnects.get());
    }
}
