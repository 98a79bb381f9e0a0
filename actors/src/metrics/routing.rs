//! The counter of MQTT messages routed into the event grid (docs/eventgrid.md §7.6), by
//! outcome: the bridge counts each connection batch once. Like every counter, must never block
//! or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// What became of MQTT messages routed into the event grid (docs/eventgrid.md §7.6).
#[derive(Debug, Clone, Copy)]
pub enum RouteOutcome {
    /// Committed to the route topic.
    Routed = 0,
    /// The route topic named by the namespace does not exist (any more).
    NoRoute = 1,
    /// The route topic refused the batch or could not commit it.
    Failed = 2,
    /// QoS 0 messages dropped because too many were waiting for the route topic.
    Dropped = 3,
    /// Messages whose CloudEvent would be larger than `events.max_event_bytes`.
    TooLarge = 4,
    /// Refused by the store at its free-space floor (`store.min_free_bytes`).
    Full = 5,
}

const ROUTE_LABELS: [&str; 6] = [
    "routed",
    "no_route",
    "failed",
    "dropped",
    "too_large",
    "store_full",
];

impl RouteOutcome {
    pub fn label(self) -> &'static str {
        ROUTE_LABELS[self as usize]
    }
}

/// `evgrid_mqtt_routed_total{outcome}`.
#[derive(Debug)]
pub struct RoutedMetrics([Counter; 6]);

pub static ROUTED: RoutedMetrics = RoutedMetrics([
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
]);

impl RoutedMetrics {
    pub fn add(&self, outcome: RouteOutcome, n: u64) {
        self.0[outcome as usize].add(n);
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_mqtt_routed_total";
        header(
            s,
            "counter",
            name,
            "MQTT messages routed into the namespace's route topic, by outcome.",
        );
        for (label, c) in ROUTE_LABELS.iter().zip(&self.0) {
            let _ = writeln!(s, "{name}{{outcome=\"{label}\"}} {}", c.get());
        }
    }
}
