//! The sink's JSON report and human summary: requests by outcome, events and their
//! accounting, the handshakes answered, the `aeg-*` headers seen, latency and the per-second
//! series. Formats only: the sink's counters are read once, at the end.

use crate::cli::SinkArgs;
use crate::http::load::HttpBucket;
use crate::report::stats::{LatencySummary, lock};
use crate::report::{Accounting, Cpu, Thresholds, round3, write_latency_table};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkReport {
    pub tool: String,
    pub tool_version: String,
    /// "webhook-sink"
    pub scenario: String,
    /// the address listened on
    pub listen: String,
    /// "sync", "async" or "refuse"
    pub validation: String,
    /// the statuses deliveries got, as the script reads ("503*3,200; every 10th 500")
    pub answers: String,
    pub delay_ms: Option<f64>,
    /// --duration
    pub duration_s: f64,
    /// from the first request to the last: what the rates are over
    pub elapsed_s: f64,
    pub wall_s: f64,
    pub started_unix_ms: u64,
    pub interrupted: bool,
    /// "duration", "expect" (--expect met, then --idle), "idle" or "interrupted"
    pub ended_by: String,
    pub connections: u64,
    pub requests: SinkRequests,
    /// every kind, 0 included
    pub handshakes: BTreeMap<Handshake, u64>,
    /// what the deliveries carried, and the loss accounting of the accepted ones
    pub events: SinkEvents,
    /// `aeg-*` and other headers of the deliveries, by value
    pub headers: SeenHeaders,
    /// rates over `elapsed_s`
    pub throughput: SinkThroughput,
    pub latency_us: SinkLatency,
    /// `generator` is the sink itself; `broker` the --broker-pid process
    pub cpu: Cpu,
    /// --max-p99 (end-to-end) and --max-loss: exit code 3 when missed
    pub thresholds: Thresholds,
    pub notes: Vec<String>,
    /// per second: events accepted (`events`), deliveries accepted (`requests_ok`) and
    /// rejected (`requests_failed`)
    pub timeseries: Vec<HttpBucket>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkRequests {
    /// every request, handshakes included
    pub total: u64,
    /// POSTs of events (`aeg-event-type: Notification`, or none)
    pub deliveries: u64,
    /// deliveries answered 2xx
    pub accepted: u64,
    /// deliveries answered otherwise (the script)
    pub rejected: u64,
    /// requests that could not be parsed, or deliveries whose body is not JSON (answered 400)
    pub bad: u64,
    /// body bytes of the deliveries
    pub bytes: u64,
    /// every answer, by status
    pub by_status: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkEvents {
    /// events in every delivery
    pub received: u64,
    /// events in deliveries answered 2xx
    pub accepted: u64,
    pub rejected: u64,
    /// accepted events without a `data.ts` stamp (counted, not timed)
    pub unstamped: u64,
    /// of the accepted events, by id. expected_basis: "expect" (--expect), "sequence" (per
    /// publisher, sequence 0 to the highest accepted, plus the distinct foreign ids) or "none";
    /// foreign: ids not in http-publish's `CCCCC-SSSSSSSSSSSS`
    #[serde(flatten)]
    pub acct: Accounting,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SeenHeaders {
    /// `aeg-delivery-count` of the deliveries ("(none)" when absent)
    pub delivery_count: BTreeMap<String, u64>,
    pub subscription_name: BTreeMap<String, u64>,
    /// `aeg-event-type` of every POST
    pub event_type: BTreeMap<String, u64>,
    pub content_type: BTreeMap<String, u64>,
    /// which credential header the deliveries carried (the name only; never the value)
    pub auth: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkThroughput {
    /// accepted events/s
    pub events_per_s: f64,
    pub received_per_s: f64,
    pub requests_per_s: f64,
    /// best one-second bucket of accepted events
    pub peak_events_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SinkLatency {
    /// `data.ts` stamp → arrival at the sink, per accepted event
    pub e2e: LatencySummary,
}

/// Everything but the run's timing and CPU, which the caller adds.
pub(super) fn build(
    sink: &Sink,
    a: &SinkArgs,
    set: &Settings,
    local: &str,
    series: Vec<HttpBucket>,
) -> SinkReport {
    let c = &sink.c;
    let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
    let first = n(&sink.first_request_ns);
    let elapsed_s = if first > 0 {
        n(&sink.last_request_ns).saturating_sub(first) as f64 / 1e9
    } else {
        0.0
    };
    let per_s = |v: u64| {
        if elapsed_s > 0.0 {
            round3(v as f64 / elapsed_s)
        } else {
            0.0
        }
    };
    let t = lock(&sink.track);
    let unique = t.unique();
    let d = lock(t.ours.dedup.inner());
    let distinct_foreign = t.foreign_events - t.foreign_dups;
    let (expected, basis) = match a.expect {
        Some(e) => (e, "expect"),
        None if unique > 0 => (d.upto_total() + distinct_foreign, "sequence"),
        None => (0, "none"),
    };
    let mut acct = Accounting {
        expected,
        expected_basis: basis.into(),
        unique,
        duplicated: d.duplicated + t.foreign_dups,
        reordered: t.ours.reordered,
        foreign: t.foreign_events,
        ..Default::default()
    };
    acct.settle();
    let events = SinkEvents {
        received: n(&c.events),
        accepted: n(&c.events_accepted),
        rejected: n(&c.events_rejected),
        unstamped: n(&c.unstamped),
        acct,
    };
    let mut notes = Vec::new();
    if t.foreign.len() >= MAX_FOREIGN_IDS {
        notes.push(format!(
            "more than {MAX_FOREIGN_IDS} events with ids not written by http-publish: later ones were not checked for duplicates"
        ));
    }
    drop(d);
    drop(t);
    let s = lock(&sink.seen);
    SinkReport {
        tool: "evgrid-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "webhook-sink".into(),
        listen: local.into(),
        validation: a.validation.name().into(),
        answers: sink.responder.describe(),
        delay_ms: set.delay.map(|d| round3(d.as_secs_f64() * 1e3)),
        duration_s: round3(set.duration.as_secs_f64()),
        elapsed_s: round3(elapsed_s),
        connections: n(&c.connections),
        requests: SinkRequests {
            total: n(&c.requests),
            deliveries: n(&c.deliveries),
            accepted: n(&c.deliveries_accepted),
            rejected: n(&c.deliveries_rejected),
            bad: n(&c.bad_requests),
            bytes: n(&c.bytes),
            by_status: s.statuses.clone(),
            errors: s.errors.clone(),
            first_error: s.first_error.clone(),
        },
        handshakes: Handshake::ALL
            .iter()
            .map(|&h| (h, n(&c.handshakes[h as usize])))
            .collect(),
        headers: SeenHeaders {
            delivery_count: s.delivery_count.clone(),
            subscription_name: s.subscription_name.clone(),
            event_type: s.event_type.clone(),
            content_type: s.content_type.clone(),
            auth: s.auth.clone(),
        },
        throughput: SinkThroughput {
            events_per_s: per_s(events.accepted),
            received_per_s: per_s(events.received),
            requests_per_s: per_s(n(&c.requests)),
            peak_events_per_s: round3(
                series
                    .iter()
                    .filter(|b| b.secs > 0.5)
                    .map(|b| b.events as f64 / b.secs)
                    .fold(0.0, f64::max),
            ),
        },
        events,
        latency_us: SinkLatency {
            e2e: sink.e2e.summary(),
        },
        timeseries: series,
        notes,
        ..Default::default()
    }
}

/// `name a x 3, b x 1` for a header table; None when empty.
fn table(name: &str, m: &BTreeMap<String, u64>) -> Option<String> {
    (!m.is_empty()).then(|| {
        let items: Vec<String> = m.iter().map(|(k, v)| format!("{k} x {v}")).collect();
        format!("  {name:<22} {}", items.join(", "))
    })
}

impl SinkReport {
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== evgrid-loadtest webhook-sink on http://{} (validation {}; deliveries answered {}{}) ==",
            self.listen,
            self.validation,
            self.answers,
            self.delay_ms
                .map(|d| format!(" after {d} ms"))
                .unwrap_or_default()
        );
        let ended = match self.ended_by.as_str() {
            "expect" => format!(
                "--expect {} met, then idle (no request for --idle)",
                self.events.acct.expected
            ),
            "idle" => "idle (no request for --idle)".to_string(),
            "interrupted" => "INTERRUPTED (Ctrl-C): figures cover the run so far".to_string(),
            _ => format!("--duration {:.2} s", self.duration_s),
        };
        let _ = writeln!(s, "ended         {ended}");
        let _ = writeln!(
            s,
            "time          {:.2} s wall, {:.2} s from the first request to the last",
            self.wall_s, self.elapsed_s
        );
        let r = &self.requests;
        let _ = writeln!(
            s,
            "requests      {} total on {} connections: {} deliveries ({} accepted, {} rejected), {} bad; {} body bytes",
            r.total, self.connections, r.deliveries, r.accepted, r.rejected, r.bad, r.bytes
        );
        for (k, v) in &r.by_status {
            let code = k.parse().unwrap_or(0);
            let _ = writeln!(
                s,
                "  answered    {v} x {k} {}",
                crate::http::h1::reason_phrase(code)
            );
        }
        for (k, v) in &r.errors {
            let _ = writeln!(s, "  error       {v} x {k}");
        }
        if let Some(e) = &r.first_error {
            let _ = writeln!(s, "  first error {e}");
        }
        let seen: Vec<String> = self
            .handshakes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(h, n)| format!("{} {n}", h.name()))
            .collect();
        if !seen.is_empty() {
            let _ = writeln!(s, "handshakes    {}", seen.join(", "));
        }
        let e = &self.events;
        let _ = writeln!(
            s,
            "events        received {}  accepted {}  rejected {}  unstamped {}",
            e.received, e.accepted, e.rejected, e.unstamped
        );
        let basis = format!("expected {} ({})  ", e.acct.expected, e.acct.expected_basis);
        e.acct.write(&mut s, &basis);
        let hd = &self.headers;
        let tables = [
            table("aeg-delivery-count", &hd.delivery_count),
            table("aeg-subscription-name", &hd.subscription_name),
            table("aeg-event-type", &hd.event_type),
            table("content-type", &hd.content_type),
            table("credential header", &hd.auth),
        ];
        if tables.iter().any(Option::is_some) {
            let _ = writeln!(s, "headers");
            for t in tables.into_iter().flatten() {
                let _ = writeln!(s, "{t}");
            }
        }
        let t = &self.throughput;
        let _ = writeln!(
            s,
            "throughput    accepted {:.0} events/s  received {:.0} events/s  {:.0} requests/s  (peak 1 s: {:.0} events/s)",
            t.events_per_s, t.received_per_s, t.requests_per_s, t.peak_events_per_s
        );
        write_latency_table(&mut s, &[("e2e", &self.latency_us.e2e)]);
        self.cpu.write(&mut s, ("sink", "server"), "events", true);
        for n in &self.notes {
            let _ = writeln!(s, "note          {n}");
        }
        self.thresholds.write(&mut s);
        s
    }
}
