//! Process-wide counters and gauges for Prometheus.
//!
//! Owns the atomics every actor and edge bumps, and their text rendering. Counters are relaxed
//! atomics bumped once per batch where the code has a batch. Must never block or allocate on the
//! bump path.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

mod auth;
mod cluster;
mod lifecycle;
mod push_outcome;
mod quota;
mod routing;
mod tls;
mod ws;
pub use auth::{AUTH, AuthMetrics, ConnectOutcome, DenialKind, RevokeKind};
pub use cluster::{CLUSTER, ClusterMetrics};
pub use lifecycle::{LIFECYCLE, LifecycleMetrics};
pub use push_outcome::{PUSH_OUTCOMES, PushOutcomeMetrics};
pub use quota::{QUOTA, QuotaKind, QuotaMetrics};
pub use routing::{ROUTED, RouteOutcome, RoutedMetrics};
pub use tls::{HandshakeFailure, TLS, TlsListenerKind, TlsMetrics};
pub use ws::{WS, WsMetrics, WsUpgrade};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn dec(&self) {
        self.add(-1);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Upper bounds (µs) of the commit-latency histogram's buckets.
const COMMIT_BUCKETS_US: [u64; 11] = [
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
];

/// A Prometheus histogram of durations with fixed buckets (cumulative when rendered).
#[derive(Debug)]
pub struct Histogram {
    buckets: [Counter; 12],
    sum_us: Counter,
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            buckets: [
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
                Counter::new(),
            ],
            sum_us: Counter::new(),
        }
    }

    pub fn observe_us(&self, us: u64) {
        let i = COMMIT_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(COMMIT_BUCKETS_US.len());
        self.buckets[i].inc();
        self.sum_us.add(us);
    }

    /// Total of every observed duration, in µs.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.get()
    }

    fn render(&self, s: &mut String, name: &str, help: &str) {
        header(s, "histogram", name, help);
        let mut cum = 0;
        for (i, b) in COMMIT_BUCKETS_US.iter().enumerate() {
            cum += self.buckets[i].get();
            let _ = writeln!(s, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
        }
        cum += self.buckets[COMMIT_BUCKETS_US.len()].get();
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(s, "{name}_sum {}", self.sum_us.get() as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {cum}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Why a message was not delivered to a subscriber.
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    /// A QoS 0 message for a subscriber whose outbound queue was full (slow subscriber).
    OutboundFull = 0,
    /// A QoS 1/2 message for a session whose queue reached its count or byte limit.
    QueueFull = 1,
    /// A QoS 0 message for a session with no connection.
    Offline = 2,
    /// The message expiry interval ran out before delivery.
    Expired = 3,
    /// Larger than the maximum packet size the client accepts.
    TooLarge = 4,
    /// The buffers the memory budget covers held `memory_budget_bytes` together
    /// ([`crate::budget`]).
    MemoryBudget = 5,
}

const DROP_LABELS: [&str; 6] = [
    "outbound_full",
    "queue_full",
    "offline_qos0",
    "expired",
    "too_large",
    "memory_budget",
];

#[derive(Debug)]
pub struct Metrics {
    pub connections: Gauge,
    pub connections_total: Counter,
    pub connections_refused: Counter,
    pub protocol_errors: Counter,
    /// Inbound QoS 2 PUBLISH packets resent for an id already routed: acknowledged, not routed.
    pub qos2_resends: Counter,
    /// PUBACK, PUBREC and PUBCOMP packets for a packet id with nothing outstanding: ignored.
    pub unknown_acks: Counter,
    pub sessions: Gauge,
    pub subscriptions: Gauge,
    pub retained: Gauge,
    pub messages_in: [Counter; 3],
    pub bytes_in: [Counter; 3],
    pub messages_out: [Counter; 3],
    pub bytes_out: [Counter; 3],
    pub dropped: [Counter; 6],
    /// Connections closed because their socket took nothing for `mqtt.send_timeout`.
    pub slow_consumer_disconnects: Counter,
    // Event grid (HTTP publish, pull delivery) and the store.
    pub events_published: Counter,
    pub events_unrouted: Counter,
    pub events_delivered: Counter,
    pub events_acknowledged: Counter,
    pub events_released: Counter,
    pub events_rejected: Counter,
    pub events_dead_lettered: Counter,
    pub events_dropped: Counter,
    pub lock_expirations: Counter,
    pub events_queued: Gauge,
    pub events_locked: Gauge,
    /// Pull and push backlogs: body bytes and events in memory windows, events on disk only.
    pub backlog_memory_bytes: Gauge,
    pub backlog_memory_events: Gauge,
    pub backlog_disk_events: Gauge,
    pub store_commits: Counter,
    pub store_ops: Counter,
    pub store_errors: Counter,
    pub store_commit: Histogram,
}

pub static METRICS: Metrics = Metrics {
    connections: Gauge::new(),
    connections_total: Counter::new(),
    connections_refused: Counter::new(),
    protocol_errors: Counter::new(),
    qos2_resends: Counter::new(),
    unknown_acks: Counter::new(),
    sessions: Gauge::new(),
    subscriptions: Gauge::new(),
    retained: Gauge::new(),
    messages_in: [Counter::new(), Counter::new(), Counter::new()],
    bytes_in: [Counter::new(), Counter::new(), Counter::new()],
    messages_out: [Counter::new(), Counter::new(), Counter::new()],
    bytes_out: [Counter::new(), Counter::new(), Counter::new()],
    dropped: [
        Counter::new(),
        Counter::new(),
        Counter::new(),
        Counter::new(),
        Counter::new(),
        Counter::new(),
    ],
    slow_consumer_disconnects: Counter::new(),
    events_published: Counter::new(),
    events_unrouted: Counter::new(),
    events_delivered: Counter::new(),
    events_acknowledged: Counter::new(),
    events_released: Counter::new(),
    events_rejected: Counter::new(),
    events_dead_lettered: Counter::new(),
    events_dropped: Counter::new(),
    lock_expirations: Counter::new(),
    events_queued: Gauge::new(),
    events_locked: Gauge::new(),
    backlog_memory_bytes: Gauge::new(),
    backlog_memory_events: Gauge::new(),
    backlog_disk_events: Gauge::new(),
    store_commits: Counter::new(),
    store_ops: Counter::new(),
    store_errors: Counter::new(),
    store_commit: Histogram::new(),
};

impl Metrics {
    pub fn drop(&self, reason: DropReason, n: u64) {
        self.dropped[reason as usize].add(n);
    }

    /// Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, v: i64| single(&mut s, "gauge", name, help, v);
        gauge(
            "evgrid_mqtt_connections",
            "Open MQTT connections.",
            self.connections.get(),
        );
        gauge(
            "evgrid_mqtt_sessions",
            "MQTT sessions, connected or not.",
            self.sessions.get(),
        );
        gauge(
            "evgrid_mqtt_subscriptions",
            "MQTT subscriptions across all sessions.",
            self.subscriptions.get(),
        );
        gauge(
            "evgrid_mqtt_retained_messages",
            "Retained MQTT messages.",
            self.retained.get(),
        );
        let mut counter = |name: &str, help: &str, v: u64| single(&mut s, "counter", name, help, v);
        counter(
            "evgrid_mqtt_connections_total",
            "MQTT connections accepted.",
            self.connections_total.get(),
        );
        counter(
            "evgrid_mqtt_connections_refused_total",
            "MQTT CONNECTs refused with a failure CONNACK.",
            self.connections_refused.get(),
        );
        counter(
            "evgrid_mqtt_protocol_errors_total",
            "MQTT connections closed for a protocol violation or malformed packet.",
            self.protocol_errors.get(),
        );
        counter(
            "evgrid_mqtt_qos2_resends_total",
            "Inbound QoS 2 PUBLISH packets resent before PUBREL, acknowledged without routing them again.",
            self.qos2_resends.get(),
        );
        counter(
            "evgrid_mqtt_unknown_acks_total",
            "MQTT PUBACK, PUBREC and PUBCOMP packets for a packet id with nothing outstanding, ignored.",
            self.unknown_acks.get(),
        );
        let per_qos = |s: &mut String, name: &str, help: &str, c: &[Counter; 3]| {
            header(s, "counter", name, help);
            for (q, c) in c.iter().enumerate() {
                let _ = writeln!(s, "{name}{{qos=\"{q}\"}} {}", c.get());
            }
        };
        per_qos(
            &mut s,
            "evgrid_mqtt_messages_received_total",
            "PUBLISH packets accepted from clients.",
            &self.messages_in,
        );
        per_qos(
            &mut s,
            "evgrid_mqtt_bytes_received_total",
            "Payload bytes accepted from clients.",
            &self.bytes_in,
        );
        per_qos(
            &mut s,
            "evgrid_mqtt_messages_sent_total",
            "PUBLISH packets written to clients.",
            &self.messages_out,
        );
        per_qos(
            &mut s,
            "evgrid_mqtt_bytes_sent_total",
            "Payload bytes written to clients.",
            &self.bytes_out,
        );
        let name = "evgrid_mqtt_messages_dropped_total";
        header(
            &mut s,
            "counter",
            name,
            "Messages not delivered to a subscriber, by reason.",
        );
        for (label, c) in DROP_LABELS.iter().zip(&self.dropped) {
            let _ = writeln!(s, "{name}{{reason=\"{label}\"}} {}", c.get());
        }
        ROUTED.render(&mut s);
        QUOTA.render(&mut s);
        TLS.render(&mut s);
        AUTH.render(&mut s);
        WS.render(&mut s);
        CLUSTER.render(&mut s);
        single(
            &mut s,
            "counter",
            "evgrid_mqtt_slow_consumer_disconnects_total",
            "Connections closed because their socket took nothing for mqtt.send_timeout.",
            self.slow_consumer_disconnects.get(),
        );
        crate::budget::BUDGET.render(&mut s);
        self.render_grid(&mut s);
        STORE.render(&mut s);
        PUSH.render(&mut s);
        PUSH_OUTCOMES.render(&mut s);
        LIFECYCLE.render(&mut s);
        s
    }

    fn render_grid(&self, s: &mut String) {
        let mut gauge = |name: &str, help: &str, v: i64| single(s, "gauge", name, help, v);
        gauge(
            "evgrid_events_queued",
            "Events waiting in pull subscriptions (locked or not).",
            self.events_queued.get(),
        );
        gauge(
            "evgrid_events_locked",
            "Events received and not yet settled.",
            self.events_locked.get(),
        );
        gauge(
            "evgrid_backlog_memory_bytes",
            "Bytes of event bodies pull and push subscriptions hold in memory.",
            self.backlog_memory_bytes.get(),
        );
        gauge(
            "evgrid_backlog_memory_events",
            "Events pull and push subscriptions hold in memory.",
            self.backlog_memory_events.get(),
        );
        gauge(
            "evgrid_backlog_disk_events",
            "Events of pull and push subscriptions waiting on disk only, read back as windows drain.",
            self.backlog_disk_events.get(),
        );
        self.store_commit.render(
            s,
            "evgrid_store_commit_seconds",
            "Store commits by duration (apply and fsync).",
        );
        let counters: &[(&str, &str, &Counter)] = &[
            (
                "evgrid_events_published_total",
                "Events accepted by publish requests.",
                &self.events_published,
            ),
            (
                "evgrid_events_unrouted_total",
                "Accepted events that matched no subscription.",
                &self.events_unrouted,
            ),
            (
                "evgrid_events_delivered_total",
                "Events handed to consumers by receive.",
                &self.events_delivered,
            ),
            (
                "evgrid_events_acknowledged_total",
                "Events acknowledged by consumers.",
                &self.events_acknowledged,
            ),
            (
                "evgrid_events_released_total",
                "Events released by consumers.",
                &self.events_released,
            ),
            (
                "evgrid_events_rejected_total",
                "Events rejected by consumers.",
                &self.events_rejected,
            ),
            (
                "evgrid_events_dead_lettered_total",
                "Events moved to a dead-letter store.",
                &self.events_dead_lettered,
            ),
            (
                "evgrid_events_dropped_total",
                "Events dropped (no dead-letter destination).",
                &self.events_dropped,
            ),
            (
                "evgrid_lock_expirations_total",
                "Receive locks that expired without settlement.",
                &self.lock_expirations,
            ),
            (
                "evgrid_store_commits_total",
                "Store commits (one fsync each).",
                &self.store_commits,
            ),
            (
                "evgrid_store_ops_total",
                "Store mutations committed.",
                &self.store_ops,
            ),
            (
                "evgrid_store_errors_total",
                "Store commits that failed.",
                &self.store_errors,
            ),
            (
                "evgrid_http_publish_requests_total",
                "Publish requests answered 200.",
                &HTTP.publish_ok,
            ),
            (
                "evgrid_http_mqtt_publish_requests_total",
                "HTTP publishes to MQTT topics answered 204.",
                &HTTP.mqtt_publish_ok,
            ),
            (
                "evgrid_http_errors_total",
                "HTTP requests answered with an error status.",
                &HTTP.errors,
            ),
            (
                "evgrid_http_body_timeouts_total",
                "Requests answered 408 because their body did not arrive within http.body_timeout_ms.",
                &HTTP.body_timeouts,
            ),
            (
                "evgrid_http_memory_budget_refusals_total",
                "Requests answered 503 because their body would have passed memory_budget_bytes.",
                &HTTP.budget_refusals,
            ),
        ];
        for (name, help, c) in counters {
            single(s, "counter", name, help, c.get());
        }
    }
}

/// Whether the store can commit, and how often it could not (see `store::Writer`).
#[derive(Debug)]
pub struct StoreMetrics {
    /// Commits that failed with an I/O error (each one makes the store unhealthy).
    pub commit_failures: Counter,
    /// Times the store became able to commit again after such a failure.
    pub recoveries: Counter,
    /// 1 while the store can commit, 0 while it refuses changes after an I/O error.
    pub healthy: Gauge,
    /// Batches of new events refused below the free-space floor.
    pub full_refusals: Counter,
    /// Free bytes of the data directory's file system at the last check.
    pub free_bytes: Gauge,
    /// Queue log (`store.backend = "log"`): segment files on disk, their bytes, segments
    /// deleted because everything in them was settled, bytes appended.
    pub log_segments: Gauge,
    pub log_bytes: Gauge,
    pub log_segments_reclaimed: Counter,
    pub log_appended_bytes: Counter,
}

pub static STORE: StoreMetrics = StoreMetrics {
    commit_failures: Counter::new(),
    recoveries: Counter::new(),
    healthy: Gauge(AtomicI64::new(1)),
    full_refusals: Counter::new(),
    free_bytes: Gauge::new(),
    log_segments: Gauge::new(),
    log_bytes: Gauge::new(),
    log_segments_reclaimed: Counter::new(),
    log_appended_bytes: Counter::new(),
};

impl StoreMetrics {
    fn render(&self, s: &mut String) {
        for (name, help, v) in [
            (
                "evgrid_store_commit_failures_total",
                "Store commits that failed with an I/O error (the store refuses changes until it recovers).",
                self.commit_failures.get(),
            ),
            (
                "evgrid_store_recoveries_total",
                "Times the store could commit again after an I/O error.",
                self.recoveries.get(),
            ),
            (
                "evgrid_store_full_refusals_total",
                "Batches of new events refused because the data directory's file system had less free space than store.min_free_bytes.",
                self.full_refusals.get(),
            ),
            (
                "evgrid_store_log_segments_reclaimed_total",
                "Queue log segments deleted because every event in them was settled (store.backend = log).",
                self.log_segments_reclaimed.get(),
            ),
            (
                "evgrid_store_log_appended_bytes_total",
                "Bytes appended to the queue log (store.backend = log).",
                self.log_appended_bytes.get(),
            ),
        ] {
            single(s, "counter", name, help, v);
        }
        single(
            s,
            "gauge",
            "evgrid_store_healthy",
            "1 while the store can commit, 0 after an I/O error until it recovers.",
            self.healthy.get(),
        );
        single(
            s,
            "gauge",
            "evgrid_store_free_bytes",
            "Free bytes of the data directory's file system when new events were last committed.",
            self.free_bytes.get(),
        );
        single(
            s,
            "gauge",
            "evgrid_store_log_segments",
            "Queue log segment files on disk (store.backend = log).",
            self.log_segments.get(),
        );
        single(
            s,
            "gauge",
            "evgrid_store_log_bytes",
            "Bytes in the queue log's segment files (store.backend = log).",
            self.log_bytes.get(),
        );
    }
}

/// HTTP-edge counters (kept apart so the MQTT struct literal stays readable).
#[derive(Debug)]
pub struct HttpMetrics {
    pub publish_ok: Counter,
    /// HTTP publishes to MQTT topics answered 204 (docs/eventgrid.md §7.8).
    pub mqtt_publish_ok: Counter,
    pub errors: Counter,
    pub body_timeouts: Counter,
    pub budget_refusals: Counter,
}

pub static HTTP: HttpMetrics = HttpMetrics {
    publish_ok: Counter::new(),
    mqtt_publish_ok: Counter::new(),
    errors: Counter::new(),
    body_timeouts: Counter::new(),
    budget_refusals: Counter::new(),
};

/// Push (webhook) delivery counters.
#[derive(Debug)]
pub struct PushMetrics {
    pub requests: Counter,
    pub failures: Counter,
    pub deferred: Counter,
    pub delivered: Counter,
    pub retries: Counter,
    pub latency: Histogram,
}

pub static PUSH: PushMetrics = PushMetrics {
    requests: Counter::new(),
    failures: Counter::new(),
    deferred: Counter::new(),
    delivered: Counter::new(),
    retries: Counter::new(),
    latency: Histogram::new(),
};

impl PushMetrics {
    fn render(&self, s: &mut String) {
        self.latency.render(
            s,
            "evgrid_push_request_seconds",
            "Webhook delivery requests by duration.",
        );
        let counters: [(&str, &str, &Counter); 5] = [
            (
                "evgrid_push_requests_total",
                "Webhook delivery requests sent.",
                &self.requests,
            ),
            (
                "evgrid_push_request_failures_total",
                "Webhook delivery requests that failed (status, timeout or socket error).",
                &self.failures,
            ),
            (
                "evgrid_push_deferred_total",
                "Deliveries deferred because the endpoint was on probation.",
                &self.deferred,
            ),
            (
                "evgrid_push_events_delivered_total",
                "Events delivered to webhooks (answered 200-204).",
                &self.delivered,
            ),
            (
                "evgrid_push_event_retries_total",
                "Event delivery attempts scheduled for retry.",
                &self.retries,
            ),
        ];
        for (name, help, c) in counters {
            single(s, "counter", name, help, c.get());
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a metric in the text exposition format; its samples follow.
pub(crate) fn header(s: &mut String, kind: &str, name: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric of one sample without labels.
pub(crate) fn single(
    s: &mut String,
    kind: &str,
    name: &str,
    help: &str,
    v: impl std::fmt::Display,
) {
    header(s, kind, name, help);
    let _ = writeln!(s, "{name} {v}");
}
