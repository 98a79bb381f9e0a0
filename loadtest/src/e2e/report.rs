//! The report of `e2e` and `http-mqtt`: the figures across the two protocols (what was
//! published on one side and arrived on the other: loss, duplicates, end-to-end latency,
//! delivered/s), with the full report of each side inside (`mqtt`: the MQTT scenarios' report;
//! `http`: the HTTP modes' report). Formats only, plus the pure accounting both scenarios share.

use std::fmt::Write as _;

use serde::Serialize;

use crate::http::load::HttpReport;
use crate::report::stats::LatencySummary;
use crate::report::{Accounting, Report, Thresholds, write_latency_table};

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub tool: String,
    pub tool_version: String,
    /// "e2e" (MQTT → routed topic → pull or push) or "http-mqtt" (HTTP → MQTT subscribers)
    pub scenario: String,
    /// the namespace endpoint (`--url`)
    pub namespace_url: String,
    pub mqtt_target: String,
    /// e2e: the route topic; http-mqtt: the first MQTT topic
    pub topic: String,
    /// e2e: the subscription consumed
    pub subscription: Option<String>,
    /// e2e: "pull", "push" (measured by the webhook sink) or "none"; http-mqtt: "mqtt"
    pub consumer: String,
    /// what --setup made, if it ran
    pub setup: Option<String>,
    pub interrupted: bool,
    /// published on one side, arrived on the other
    pub delivered: Delivered,
    pub throughput: E2eThroughput,
    pub latency_us: E2eLatencies,
    pub thresholds: Thresholds,
    pub notes: Vec<String>,
    /// the MQTT side alone (e2e: the publishers, PUBACK latency; http-mqtt: the subscribers)
    pub mqtt: Report,
    /// the HTTP side alone (e2e: the pull consumers; http-mqtt: the publishers); absent when
    /// there was none
    pub http: Option<HttpReport>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Delivered {
    /// e2e: MQTT messages published (QoS 0: written; QoS 1/2: acknowledged with success);
    /// http-mqtt: HTTP publishes answered 2xx
    pub published: u64,
    /// what `published` counts
    pub published_basis: String,
    /// deliveries received in all (duplicates included)
    pub received: u64,
    #[serde(flatten)]
    pub acct: Accounting,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct E2eThroughput {
    /// messages published/s (e2e: MQTT PUBLISHes sent; http-mqtt: HTTP publishes answered 2xx)
    pub published_per_s: f64,
    /// distinct deliveries/s, from the start of publishing to the last one received (e2e:
    /// routed events received by the consumers; http-mqtt: messages at the MQTT subscribers)
    pub delivered_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct E2eLatencies {
    /// send stamp in the payload → received on the other side
    pub e2e: LatencySummary,
    /// e2e: PUBLISH → PUBACK (QoS 1/2); http-mqtt: request → response
    pub publish: LatencySummary,
}

/// What the published count is for MQTT publishers at `qos`: (count, basis).
pub fn mqtt_published(qos: u8, sent: u64, acked: u64) -> (u64, &'static str) {
    if qos == 0 {
        (sent, "MQTT PUBLISHes written (QoS 0)")
    } else {
        (acked, "MQTT PUBLISHes acknowledged with success")
    }
}

/// The accounting of deliveries against `expected`.
pub fn accounting(
    (expected, basis): (u64, &str),
    unique: u64,
    duplicated: u64,
    reordered: u64,
    foreign: u64,
) -> Accounting {
    let mut a = Accounting {
        expected,
        expected_basis: basis.into(),
        unique,
        duplicated,
        reordered,
        foreign,
        ..Default::default()
    };
    a.settle();
    a
}

/// Distinct deliveries per second over `window_ns` (0 when nothing arrived).
pub fn per_s(n: u64, window_ns: u64) -> f64 {
    if n == 0 || window_ns == 0 {
        return 0.0;
    }
    crate::report::round3(n as f64 / (window_ns as f64 / 1e9))
}

impl E2eReport {
    /// Both sides' summaries, then the figures across them.
    pub fn summary(&self) -> String {
        let mut s = self.mqtt.summary();
        if let Some(h) = &self.http {
            s.push_str(&h.summary());
        }
        let _ = writeln!(
            s,
            "\n== evgrid-loadtest {}: {} ==",
            self.scenario,
            match self.scenario.as_str() {
                "e2e" => format!(
                    "MQTT {} -> topic {} -> {} ({})",
                    self.mqtt_target,
                    self.topic,
                    self.consumer,
                    self.subscription.as_deref().unwrap_or("-")
                ),
                _ => format!(
                    "HTTP {} -> MQTT {} subscribers",
                    self.namespace_url, self.mqtt_target
                ),
            }
        );
        if let Some(setup) = &self.setup {
            let _ = writeln!(s, "setup         {setup}");
        }
        if self.interrupted {
            let _ = writeln!(
                s,
                "status        INTERRUPTED (Ctrl-C): figures cover the run so far"
            );
        }
        let d = &self.delivered;
        let _ = writeln!(
            s,
            "delivered     published {} ({}), received {}",
            d.published, d.published_basis, d.received
        );
        d.acct.write(&mut s, "");
        let _ = writeln!(
            s,
            "throughput    published {:.0}/s  delivered {:.0}/s",
            self.throughput.published_per_s, self.throughput.delivered_per_s
        );
        write_latency_table(
            &mut s,
            &[
                ("end-to-end", &self.latency_us.e2e),
                (
                    if self.scenario == "e2e" {
                        "PUBACK"
                    } else {
                        "HTTP publish"
                    },
                    &self.latency_us.publish,
                ),
            ],
        );
        self.thresholds.write(&mut s);
        for n in &self.notes {
            let _ = writeln!(s, "note          {n}");
        }
        s
    }
}
