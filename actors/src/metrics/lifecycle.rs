//! The counters of MQTT client lifecycle events (docs/eventgrid.md §7.7), kept apart from the
//! MQTT and grid structs: the MQTT edge drops, the bridge publishes or discards. Like every
//! counter, must never block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// MQTT client lifecycle events (docs/eventgrid.md §7.7), by what became of each.
#[derive(Debug)]
pub struct LifecycleMetrics {
    /// Committed to a system topic.
    pub published: Counter,
    /// Dropped at the MQTT edge: the backlog (`mqtt.lifecycle_backlog`) was full.
    pub backlog_full: Counter,
    /// Discarded: no system topic has the namespace as its source.
    pub no_system_topic: Counter,
    /// The system topic refused them or could not commit them.
    pub failed: Counter,
}

pub static LIFECYCLE: LifecycleMetrics = LifecycleMetrics {
    published: Counter::new(),
    backlog_full: Counter::new(),
    no_system_topic: Counter::new(),
    failed: Counter::new(),
};

impl LifecycleMetrics {
    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_mqtt_lifecycle_events_total";
        header(
            s,
            "counter",
            name,
            "MQTT client lifecycle events (session connected and disconnected; client created, updated, deleted) by outcome: published to a system topic, dropped because the backlog was full, discarded for want of a system topic, or failed.",
        );
        for (outcome, c) in [
            ("published", &self.published),
            ("backlog_full", &self.backlog_full),
            ("no_system_topic", &self.no_system_topic),
            ("failed", &self.failed),
        ] {
            let _ = writeln!(s, "{name}{{outcome=\"{outcome}\"}} {}", c.get());
        }
    }
}
