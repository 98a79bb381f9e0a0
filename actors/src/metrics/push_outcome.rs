//! Webhook delivery failures by Event Grid outcome (`lastDeliveryOutcome`): how many attempts
//! failed on a status, a timeout, a socket error or a refused certificate. Like every counter,
//! must never block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// The outcome names, as the delivery layer names them (`WebhookOutcome::name`).
const OUTCOMES: [&str; 11] = [
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "TimedOut",
    "Busy",
    "Aborted",
    "SocketError",
    "ResolutionError",
    "CertificateError",
];

/// `evgrid_push_failures_by_outcome_total{outcome}`.
#[derive(Debug)]
pub struct PushOutcomeMetrics([Counter; 11]);

#[allow(clippy::declare_interior_mutable_const)]
const C: Counter = Counter::new();

pub static PUSH_OUTCOMES: PushOutcomeMetrics = PushOutcomeMetrics([C; 11]);

impl PushOutcomeMetrics {
    /// Counts a failed attempt; an outcome not in the table is not counted (a test catches it).
    pub fn failed(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.0[i].inc();
        }
    }

    pub fn get(&self, outcome: &str) -> u64 {
        OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.0[i].get())
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_push_failures_by_outcome_total";
        header(
            s,
            "counter",
            name,
            "Failed webhook delivery attempts, by outcome (lastDeliveryOutcome).",
        );
        for (o, c) in OUTCOMES.iter().zip(&self.0) {
            let _ = writeln!(s, "{name}{{outcome=\"{o}\"}} {}", c.get());
        }
    }
}
