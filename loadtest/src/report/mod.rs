//! Measuring and reporting, shared by every mode: what a run counts while it runs and what it
//! writes when it ends.
//!
//! - This module: the MQTT run report (JSON structure, human summary, threshold checks) and the
//!   pieces the HTTP and sink reports reuse (CPU figures, loss accounting, latency tables).
//! - `stats`: shared counters, HDR latency histograms, the per-second sampler, CPU and
//!   file-descriptor accounting of this process and of the broker.
//! - `track`: loss / duplicate / reorder accounting per subscriber and publisher.
//! - `svg`: the hand-written SVG report.
//! - `compare`: the A/B comparison of `compare` rounds.
//!
//! It never opens a connection and never decides what to send: the flows (`mqtt/`, `http/`,
//! `sink/`) measure, this module only aggregates and formats what they measured.

pub mod compare;
pub mod stats;
pub mod svg;
pub mod track;

use self::stats::{CpuSample, CpuTimes, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub tool: String,
    pub tool_version: String,
    pub scenario: String,
    pub target: String,
    /// what the connections ran over: tcp, tls, ws or wss
    pub transport: String,
    /// with TLS: the session the first connection negotiated (version, cipher suite, key
    /// exchange group), e.g. "TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519"
    pub tls_session: Option<String>,
    pub mqtt_version: u8,
    pub qos: u8,
    pub payload_bytes: usize,
    /// "open-loop" or "closed-loop"
    pub mode: String,
    pub mode_note: String,
    pub target_rate_msgs_per_s: Option<f64>,
    pub clients: Clients,
    pub duration_s: f64,
    pub publish_s: f64,
    pub wall_s: f64,
    pub started_unix_ms: u64,
    pub interrupted: bool,
    pub connections: Connections,
    pub messages: Messages,
    pub throughput: Throughput,
    pub latency_us: Latencies,
    pub timeseries: Vec<Bucket>,
    pub cpu: Cpu,
    pub thresholds: Thresholds,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Clients {
    pub total: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub shared_group_members: usize,
    pub topics: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Connections {
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub lost_during_run: u64,
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub os_limit_hit: bool,
    pub nofile_soft_limit: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Messages {
    pub sent: u64,
    pub acked: u64,
    pub publish_failed: u64,
    pub unacked: u64,
    pub received: u64,
    pub requests_received: u64,
    /// expected_basis: "published" (deliveries the subscriptions imply), "sequence-span"
    /// (standalone sub: ranges of sequence numbers seen) or "none"
    #[serde(flatten)]
    pub acct: Accounting,
}

/// What a receiver's counts say about loss, duplicates and order; the MQTT report's `messages`
/// and the webhook sink's `events` both flatten it in, so the JSON keys are the same in both.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Accounting {
    pub expected: u64,
    /// what `expected` is based on (each report lists its bases)
    pub expected_basis: String,
    /// distinct messages or events received
    pub unique: u64,
    /// expected − unique (negative: more arrived than expected)
    pub lost: i64,
    pub loss_fraction: f64,
    /// received again after the first time
    pub duplicated: u64,
    /// per publisher, received with a sequence below the highest already received
    pub reordered: u64,
    /// not from this tool's publishers (not in the sequence accounting)
    pub foreign: u64,
}

impl Accounting {
    /// Sets `lost` and `loss_fraction` from `expected` and `unique`.
    pub fn settle(&mut self) {
        self.lost = self.expected as i64 - self.unique as i64;
        self.loss_fraction = if self.expected > 0 {
            self.lost.max(0) as f64 / self.expected as f64
        } else {
            0.0
        };
    }

    /// The `accounting` line of a summary, `head` first (may be empty).
    pub fn write(&self, s: &mut String, head: &str) {
        let _ = write!(
            s,
            "accounting    {head}unique {}  lost {} ({:.4}%)  duplicated {}  reordered {}",
            self.unique,
            self.lost,
            self.loss_fraction * 100.0,
            self.duplicated,
            self.reordered
        );
        if self.foreign > 0 {
            let _ = write!(s, "  foreign {}", self.foreign);
        }
        s.push('\n');
    }

    /// (loss fraction, lost, expected), as [`Thresholds::check`] takes them.
    pub fn loss(&self) -> (f64, i64, u64) {
        (self.loss_fraction, self.lost, self.expected)
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Throughput {
    pub sent_per_s: f64,
    pub received_per_s: f64,
    pub peak_sent_per_s: f64,
    pub peak_received_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latencies {
    pub connack: LatencySummary,
    pub suback: LatencySummary,
    pub puback: LatencySummary,
    pub e2e: LatencySummary,
    pub rtt: LatencySummary,
    /// open loop only: how late messages left the generator relative to
    /// their schedule (0 for messages sent up to 2 ms early)
    pub send_lag: LatencySummary,
}

/// One second of the run (the last bucket may be shorter, see `secs`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Bucket {
    /// start of the bucket, seconds since the run started
    pub t_s: f64,
    pub secs: f64,
    pub sent: u64,
    pub received: u64,
    pub connected: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CpuReport {
    pub pid: Option<u32>,
    pub cpu_seconds: f64,
    pub user_s: f64,
    pub system_s: f64,
    /// of one core; can exceed 100 with several threads
    pub cpu_percent: f64,
    /// CPU seconds per million messages handled (sent + received)
    pub cpu_s_per_million_msgs: Option<f64>,
    /// CPU seconds per million messages delivered (received)
    pub cpu_s_per_million_delivered: Option<f64>,
}

impl CpuReport {
    /// CPU used between two samples over `wall_s`; `handled` and `delivered` give the
    /// per-million figures (none when zero or unknown). Without both samples: only the pid.
    pub fn between(
        pid: Option<u32>,
        a: Option<CpuTimes>,
        b: Option<CpuTimes>,
        wall_s: f64,
        handled: u64,
        delivered: Option<u64>,
    ) -> CpuReport {
        let (Some(a), Some(b)) = (a, b) else {
            return CpuReport {
                pid,
                ..Default::default()
            };
        };
        let secs = (b.total() - a.total()).max(0.0);
        let per_million = |n: u64| (n > 0).then(|| round3(secs / n as f64 * 1e6));
        CpuReport {
            pid,
            cpu_seconds: round3(secs),
            user_s: round3(b.user_s - a.user_s),
            system_s: round3(b.system_s - a.system_s),
            cpu_percent: round3(secs / wall_s.max(1e-9) * 100.0),
            cpu_s_per_million_msgs: per_million(handled),
            cpu_s_per_million_delivered: delivered.and_then(per_million),
        }
    }
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The latency table of a summary: a header, then one row per histogram that has samples.
pub fn write_latency_table(s: &mut String, rows: &[(&str, &LatencySummary)]) {
    let _ = writeln!(
        s,
        "\nlatency (us)  {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, h) in rows {
        if h.count > 0 {
            let _ = writeln!(
                s,
                "  {:<11} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                name, h.count, h.p50_us, h.p90_us, h.p99_us, h.p999_us, h.max_us
            );
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Cpu {
    pub generator: CpuReport,
    pub broker: Option<CpuReport>,
}

impl Cpu {
    /// The CPU this process and, with `broker_pid`, the broker used between two samples over
    /// `wall_s`; per-million figures as [`CpuReport::between`] computes them.
    pub fn between(
        broker_pid: Option<u32>,
        a: CpuSample,
        b: CpuSample,
        wall_s: f64,
        handled: u64,
        delivered: Option<u64>,
    ) -> Cpu {
        let report = |pid, x, y| CpuReport::between(pid, x, y, wall_s, handled, delivered);
        Cpu {
            generator: report(None, a.generator, b.generator),
            broker: broker_pid.map(|p| report(Some(p), a.broker, b.broker)),
        }
    }

    /// The cpu lines of a summary: this process as `names.0`, the measured one (--broker-pid)
    /// as `names.1`; per-million figures in `unit`, for this process only with `own_per_million`.
    pub fn write(&self, s: &mut String, names: (&str, &str), unit: &str, own_per_million: bool) {
        let per_million = |r: &CpuReport| {
            r.cpu_s_per_million_msgs
                .map(|v| format!(", {v:.2} s per million {unit}"))
                .unwrap_or_default()
        };
        let g = &self.generator;
        let _ = writeln!(
            s,
            "\ncpu           {} {:.2} s ({:.0}% of one core){}",
            names.0,
            g.cpu_seconds,
            g.cpu_percent,
            if own_per_million {
                per_million(g)
            } else {
                String::new()
            }
        );
        if let Some(b) = &self.broker {
            let _ = writeln!(
                s,
                "              {} pid {} {:.2} s ({:.0}% of one core){}",
                names.1,
                b.pid.unwrap_or(0),
                b.cpu_seconds,
                b.cpu_percent,
                per_million(b)
            );
        }
    }
}

/// Writes `report` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &std::path::Path, report: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot serialize the report: {e}"))?;
    std::fs::write(path, s + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Thresholds {
    pub max_p99_us: Option<f64>,
    pub max_loss: Option<f64>,
    pub passed: bool,
    pub failures: Vec<String>,
}

impl Thresholds {
    /// --max-p99 against `latency` (its name, its summary) and --max-loss against `loss`
    /// (fraction, lost, expected).
    pub fn check(
        max_p99: Option<f64>,
        max_loss: Option<f64>,
        latency: (&str, &LatencySummary),
        loss: (f64, i64, u64),
    ) -> Thresholds {
        let (name, l) = latency;
        let mut failures = Vec::new();
        if let Some(limit) = max_p99 {
            if l.count == 0 {
                failures.push(format!("p99 {name} latency: no samples (limit {limit} us)"));
            } else if l.p99_us > limit {
                failures.push(format!(
                    "p99 {name} latency {:.1} us > limit {limit} us",
                    l.p99_us
                ));
            }
        }
        let (fraction, lost, expected) = loss;
        if let Some(limit) = max_loss
            && fraction > limit
        {
            failures.push(format!(
                "loss {fraction:.6} ({lost} of {expected}) > limit {limit}"
            ));
        }
        Thresholds {
            max_p99_us: max_p99,
            max_loss,
            passed: failures.is_empty(),
            failures,
        }
    }

    /// The threshold lines of a summary (none when no threshold was set).
    pub fn write(&self, s: &mut String) {
        if self.max_p99_us.is_none() && self.max_loss.is_none() {
            return;
        }
        if self.passed {
            let _ = writeln!(s, "thresholds    passed");
        }
        for f in &self.failures {
            let _ = writeln!(s, "THRESHOLD MISSED  {f}");
        }
    }
}

impl Report {
    /// The latency the thresholds and comparisons look at: round trip for
    /// p2p, PUBACK for pub, CONNACK for conn, end to end otherwise.
    pub fn main_latency(&self) -> &LatencySummary {
        match self.scenario.as_str() {
            "p2p" => &self.latency_us.rtt,
            "pub" => &self.latency_us.puback,
            "conn" => &self.latency_us.connack,
            _ => &self.latency_us.e2e,
        }
    }

    /// Name of [`Report::main_latency`].
    pub fn main_latency_name(&self) -> &'static str {
        match self.scenario.as_str() {
            "p2p" => "round-trip",
            "pub" => "PUBACK",
            "conn" => "CONNACK",
            _ => "end-to-end",
        }
    }

    /// Applies --max-p99 / --max-loss.
    pub fn check_thresholds(&mut self, max_p99: Option<f64>, max_loss: Option<f64>) {
        self.thresholds = Thresholds::check(
            max_p99,
            max_loss,
            (self.main_latency_name(), self.main_latency()),
            self.messages.acct.loss(),
        );
    }

    /// Human-readable summary table.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let m = &self.messages;
        let c = &self.connections;
        let _ = writeln!(
            s,
            "\n== evgrid-loadtest {} -> {} (MQTT {} over {}, QoS {}, {} B payload) ==",
            self.scenario,
            self.target,
            match self.mqtt_version {
                3 => "3.1",
                4 => "3.1.1",
                _ => "5.0",
            },
            self.transport,
            self.qos,
            self.payload_bytes
        );
        let _ = writeln!(s, "mode          {} {}", self.mode, self.mode_note);
        if let Some(t) = &self.tls_session {
            let _ = writeln!(s, "tls           {t}");
        }
        if self.interrupted {
            let _ = writeln!(
                s,
                "status        INTERRUPTED (Ctrl-C): figures cover the run so far"
            );
        }
        let _ = writeln!(
            s,
            "clients       {} total: {} publishers, {} subscribers{}",
            self.clients.total,
            self.clients.publishers,
            self.clients.subscribers,
            if self.clients.shared_group_members > 0 {
                format!(" ({} in a shared group)", self.clients.shared_group_members)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "connections   {} ok, {} failed, {} lost during run{}",
            c.succeeded,
            c.failed,
            c.lost_during_run,
            if c.os_limit_hit {
                "  [OS limit hit]"
            } else {
                ""
            }
        );
        for (k, v) in &c.errors {
            let _ = writeln!(s, "  error       {v} x {k}");
        }
        let _ = writeln!(
            s,
            "time          {:.2} s {}, {:.2} s wall",
            self.publish_s,
            if self.clients.publishers > 0 {
                "publishing"
            } else {
                "holding"
            },
            self.wall_s
        );
        if self.clients.publishers > 0 || m.received > 0 {
            let _ = writeln!(
                s,
                "messages      sent {}  received {}  expected {}  ({})",
                m.sent, m.received, m.acct.expected, m.acct.expected_basis
            );
            m.acct.write(&mut s, "");
            if self.qos > 0 && self.clients.publishers > 0 {
                let _ = writeln!(
                    s,
                    "acks          acked {}  failed {}  unacked at end {}",
                    m.acked, m.publish_failed, m.unacked
                );
            }
            if m.requests_received > 0 {
                let _ = writeln!(
                    s,
                    "requests      {} received by responders",
                    m.requests_received
                );
            }
            let _ = writeln!(
                s,
                "throughput    sent {:.0}/s  received {:.0}/s  (peak 1 s: sent {:.0}/s, received {:.0}/s)",
                self.throughput.sent_per_s,
                self.throughput.received_per_s,
                self.throughput.peak_sent_per_s,
                self.throughput.peak_received_per_s
            );
        }
        let l = &self.latency_us;
        write_latency_table(
            &mut s,
            &[
                ("connack", &l.connack),
                ("suback", &l.suback),
                ("puback", &l.puback),
                ("e2e", &l.e2e),
                ("rtt", &l.rtt),
                ("send lag", &l.send_lag),
            ],
        );
        self.cpu.write(
            &mut s,
            ("generator", "broker"),
            "msgs (sent+received)",
            true,
        );
        for n in &self.notes {
            let _ = writeln!(s, "note          {n}");
        }
        self.thresholds.write(&mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let mut r = Report {
            scenario: "fanin".into(),
            ..Default::default()
        };
        r.latency_us.e2e = LatencySummary {
            count: 10,
            p99_us: 500.0,
            ..Default::default()
        };
        r.messages.acct.loss_fraction = 0.01;
        r.check_thresholds(Some(1000.0), Some(0.02));
        assert!(r.thresholds.passed);
        r.check_thresholds(Some(100.0), Some(0.001));
        assert!(!r.thresholds.passed);
        assert_eq!(r.thresholds.failures.len(), 2);
        assert!(r.summary().contains("THRESHOLD MISSED"));
    }
}
