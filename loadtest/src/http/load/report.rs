//! The JSON report and human summary of an HTTP run (`http-publish` or `pull`): requests,
//! events, throughput, latencies, the per-second series. Formats only: the run fills it in.

use crate::report::stats::LatencySummary;
use crate::report::{Cpu, write_latency_table};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpReport {
    pub tool: String,
    pub tool_version: String,
    /// "http-publish" or "pull"
    pub scenario: String,
    pub target: String,
    /// http or https
    pub transport: String,
    /// namespace topic ("" for a basic-tier topic: its endpoint is `target`)
    pub topic: String,
    pub subscription: Option<String>,
    pub api_version: String,
    /// "namespace" (`{url}/topics/{topic}:publish`, pull) or "basic" (http-publish --endpoint)
    pub tier: String,
    /// http-publish: "cloudevents" or "eventgrid"
    pub schema: Option<String>,
    /// the header requests authenticate with (`aeg-sas-key`, `aeg-sas-token`,
    /// `Authorization: SharedAccessKey`, ...); the secret itself is never reported
    pub auth: String,
    /// "closed-loop" or "open-loop"
    pub mode: String,
    pub mode_note: String,
    pub target_rate_events_per_s: Option<f64>,
    /// publish: connections; pull: consumers (one connection each)
    pub connections: usize,
    /// publish: events per request; pull: maxEvents per receive
    pub batch_events: usize,
    /// publish: bytes per event and per request body
    pub event_bytes: Option<usize>,
    pub request_body_bytes: Option<usize>,
    pub duration_s: f64,
    /// from the start to the last successful response: what the rates are over
    pub elapsed_s: f64,
    pub wall_s: f64,
    pub started_unix_ms: u64,
    pub interrupted: bool,
    pub requests: Requests,
    pub events: Events,
    pub throughput: HttpThroughput,
    pub latency_us: HttpLatencies,
    pub timeseries: Vec<HttpBucket>,
    pub cpu: Cpu,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Requests {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// failures by status ("503 Service Unavailable") or transport error ("io: ...", "timeout")
    pub errors: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    pub reconnects: u64,
    /// open loop: requests due before the end that the connections had no time to send
    pub not_sent: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Events {
    /// publish: events in requests answered 200
    pub published: u64,
    /// publish: events in requests that failed
    pub publish_failed: u64,
    pub received: u64,
    pub acked: u64,
    /// lock tokens the acknowledge did not settle (or whose acknowledge request failed)
    pub failed_tokens: u64,
    pub failed_token_codes: BTreeMap<String, u64>,
    /// received with deliveryCount > 1
    pub redelivered: u64,
    pub empty_receives: u64,
    /// receives still waiting when the run ended (their events come back when the locks expire)
    pub abandoned_receives: u64,
    /// `e2e`: received events without the generator's payload header (not in the accounting)
    #[serde(skip_serializing_if = "is_zero")]
    pub unmarked: u64,
    /// `e2e`: per consumer, events below the highest sequence of their publisher it had seen
    #[serde(skip_serializing_if = "is_zero")]
    pub reordered: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpThroughput {
    /// publish: events published/s; pull: events acknowledged/s
    pub events_per_s: f64,
    /// pull: events received/s
    pub received_per_s: f64,
    /// successful requests/s (pull: receives + acknowledges)
    pub requests_per_s: f64,
    pub peak_events_per_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpLatencies {
    /// publish request → response (open loop: from the scheduled send time)
    pub publish: LatencySummary,
    /// receives that returned events
    pub receive: LatencySummary,
    pub ack: LatencySummary,
    /// pull: publish stamp in the event → received (queue age)
    pub e2e: LatencySummary,
    /// open loop: how late requests left relative to their schedule
    pub send_lag: LatencySummary,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpBucket {
    pub t_s: f64,
    pub secs: f64,
    /// publish: events published; pull: events acknowledged; webhook-sink: events accepted
    pub events: u64,
    /// webhook-sink: deliveries accepted
    pub requests_ok: u64,
    /// webhook-sink: deliveries rejected (answered other than 2xx)
    pub requests_failed: u64,
}

impl HttpReport {
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let pull = self.scenario == "pull";
        let what = if self.tier == "basic" {
            format!(
                "basic-tier topic, {} events, {}",
                self.schema.as_deref().unwrap_or(""),
                self.auth
            )
        } else {
            format!("topic {}", self.topic)
        };
        let _ = writeln!(
            s,
            "\n== evgrid-loadtest {} -> {} {what}{} ==",
            self.scenario,
            self.target,
            match (&self.subscription, self.event_bytes) {
                (Some(sub), _) => format!(" subscription {sub} (maxEvents {})", self.batch_events),
                (None, Some(b)) => format!(" ({} events x {b} B per request)", self.batch_events),
                _ => String::new(),
            }
        );
        let _ = writeln!(s, "mode          {} {}", self.mode, self.mode_note);
        if self.interrupted {
            let _ = writeln!(
                s,
                "status        INTERRUPTED (Ctrl-C): figures cover the run so far"
            );
        }
        let r = &self.requests;
        let _ = writeln!(
            s,
            "connections   {} keep-alive {}, {} reconnects",
            self.connections,
            if pull { "consumers" } else { "publishers" },
            r.reconnects
        );
        let _ = writeln!(
            s,
            "time          {:.2} s run, {:.2} s to the last response, {:.2} s wall",
            self.duration_s, self.elapsed_s, self.wall_s
        );
        let _ = writeln!(
            s,
            "requests      sent {}  ok {}  failed {}{}",
            r.sent,
            r.ok,
            r.failed,
            if r.not_sent > 0 {
                format!("  not sent (connections behind schedule) {}", r.not_sent)
            } else {
                String::new()
            }
        );
        for (k, v) in &r.errors {
            let _ = writeln!(s, "  error       {v} x {k}");
        }
        if let Some(e) = &r.first_error {
            let _ = writeln!(s, "  first error {e}");
        }
        let e = &self.events;
        let t = &self.throughput;
        if pull {
            let _ = writeln!(
                s,
                "events        received {}  acked {}  failed tokens {}  redelivered {}  empty receives {}{}",
                e.received,
                e.acked,
                e.failed_tokens,
                e.redelivered,
                e.empty_receives,
                if e.abandoned_receives > 0 {
                    format!("  abandoned receives {}", e.abandoned_receives)
                } else {
                    String::new()
                }
            );
            for (k, v) in &e.failed_token_codes {
                let _ = writeln!(s, "  token error {v} x {k}");
            }
            let _ = writeln!(
                s,
                "throughput    acked {:.0} events/s  received {:.0} events/s  {:.0} requests/s  (peak 1 s: {:.0} acked/s)",
                t.events_per_s, t.received_per_s, t.requests_per_s, t.peak_events_per_s
            );
        } else {
            let _ = writeln!(
                s,
                "events        published {}  failed {}",
                e.published, e.publish_failed
            );
            let _ = writeln!(
                s,
                "throughput    {:.0} events/s  {:.0} requests/s  (peak 1 s: {:.0} events/s)",
                t.events_per_s, t.requests_per_s, t.peak_events_per_s
            );
        }
        let l = &self.latency_us;
        write_latency_table(
            &mut s,
            &[
                ("publish", &l.publish),
                ("receive", &l.receive),
                ("ack", &l.ack),
                ("e2e", &l.e2e),
                ("send lag", &l.send_lag),
            ],
        );
        self.cpu
            .write(&mut s, ("generator", "server"), "events", false);
        for n in &self.notes {
            let _ = writeln!(s, "note          {n}");
        }
        s
    }
}
