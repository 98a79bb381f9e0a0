//! `webhook-sink`: an Event Grid webhook endpoint that measures what a push-delivering server
//! (evgrid's basic tier, or Azure's through a tunnel) sends it (docs/eventgrid.md §5).
//!
//! It owns its listening socket and every connection accepted on it, the answers (validation
//! handshakes, scripted delivery statuses) and the accounting of what arrived: events, their
//! end-to-end latency from the `data.ts` stamp http-publish writes (or the payload header of an
//! MQTT message routed into a namespace topic, `e2e --push`), duplicates by event id,
//! loss and reorder per publisher sequence, the `aeg-*` headers seen. It never retries, stores
//! or forwards an event, and never judges the server: a delivery it answers with a failure is
//! simply counted as rejected (the server is expected to retry it).
//!
//! - `server`: one task per connection, HTTP/1.1 keep-alive with pipelined requests answered
//!   in order, and the request handlers.
//! - `script`: which status each delivery gets.
//! - `report`: the JSON report and summary, built once at the end.
//! - `tls`: HTTPS (`--tls-cert`, `--tls-key`).

mod report;
mod script;
mod server;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{SinkArgs, Validation, parse_duration};
use crate::clock::{Clock, unix_now_ns};
use crate::http::load::{HttpBucket, timeseries};
use crate::report::stats::{CpuSample, SharedHist, lock};
use crate::report::track::{Dedup, DedupRef, SubTracker};
use crate::report::{Cpu, Thresholds, round3, write_json};

use script::Responder;

/// Distinct values kept per header table; further ones are counted under `(other)` so a
/// server sending a fresh value per request cannot grow the report without bound.
const MAX_KEYS: usize = 64;
/// Event ids not in http-publish's format that are kept for duplicate detection; beyond this
/// they are still counted, but no longer checked for duplicates.
const MAX_FOREIGN_IDS: usize = 1_000_000;

/// Counters shared by the connection tasks.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    deliveries: AtomicU64,
    deliveries_accepted: AtomicU64,
    deliveries_rejected: AtomicU64,
    bad_requests: AtomicU64,
    bytes: AtomicU64,
    events: AtomicU64,
    events_accepted: AtomicU64,
    events_rejected: AtomicU64,
    unstamped: AtomicU64,
    /// by `Handshake as usize`
    handshakes: [AtomicU64; Handshake::ALL.len()],
}

/// The requests other than deliveries the sink answers, as the report counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Handshake {
    /// SubscriptionValidation answered with the code
    ValidationSync,
    /// answered 200 without the code; the validationUrl GET follows
    ValidationAsync,
    ValidationRefused,
    /// a validation request without a usable validation event (answered 400)
    ValidationBad,
    /// the validationUrl GET of --validation async
    AsyncGetOk,
    AsyncGetFailed,
    /// CloudEvents abuse-protection OPTIONS answered with the origin allowed
    OptionsAllowed,
    OptionsRefused,
    /// `aeg-event-type: SubscriptionDeletion`
    Deletion,
}

impl Handshake {
    const ALL: [Handshake; 9] = [
        Handshake::ValidationSync,
        Handshake::ValidationAsync,
        Handshake::ValidationRefused,
        Handshake::ValidationBad,
        Handshake::AsyncGetOk,
        Handshake::AsyncGetFailed,
        Handshake::OptionsAllowed,
        Handshake::OptionsRefused,
        Handshake::Deletion,
    ];

    /// The report's name (the serde one, so the summary and the JSON agree).
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }
}

/// Values seen, by table.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<String, u64>,
    delivery_count: BTreeMap<String, u64>,
    subscription_name: BTreeMap<String, u64>,
    event_type: BTreeMap<String, u64>,
    content_type: BTreeMap<String, u64>,
    auth: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

fn bump(m: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(v) = m.get_mut(key) {
        *v += 1;
    } else if m.len() < MAX_KEYS {
        m.insert(key.to_string(), 1);
    } else {
        *m.entry("(other)".to_string()).or_insert(0) += 1;
    }
}

/// Dedup and order of accepted events.
struct Tracking {
    /// events with http-publish ids, by (connection, sequence)
    ours: SubTracker,
    /// other ids, as strings
    foreign: HashSet<String>,
    foreign_events: u64,
    foreign_dups: u64,
}

impl Tracking {
    fn unique(&self) -> u64 {
        lock(self.ours.dedup.inner()).unique + self.foreign_events - self.foreign_dups
    }
}

/// What the connection tasks share.
struct Sink {
    clock: Clock,
    validation: Validation,
    responder: Responder,
    delay: Option<Duration>,
    c: Counters,
    e2e: SharedHist,
    seen: Mutex<Seen>,
    track: Mutex<Tracking>,
    /// clock ns of the first and the last request (0: none yet)
    first_request_ns: AtomicU64,
    last_request_ns: AtomicU64,
    expect: Option<u64>,
    /// the idle countdown may start: traffic began, or --expect is met
    armed: watch::Sender<bool>,
    /// the run is over: no more accepts, connections close
    stop: watch::Sender<bool>,
}

impl Sink {
    fn touch(&self) -> u64 {
        let now = self.clock.now_ns();
        let _ =
            self.first_request_ns
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_request_ns.fetch_max(now, Ordering::Relaxed);
        if self.expect.is_none() {
            self.armed.send_if_modified(|a| !std::mem::replace(a, true));
        }
        now
    }

    fn handshake(&self, h: Handshake) {
        self.c.handshakes[h as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, key: &str, detail: String) {
        let mut s = lock(&self.seen);
        bump(&mut s.errors, key);
        if s.first_error.is_none() {
            s.first_error = Some(detail);
        }
    }
}

/// Parses the arguments that need more than clap gives.
struct Settings {
    responder: Responder,
    delay: Option<Duration>,
    duration: Duration,
    idle: Option<Duration>,
}

fn settings(a: &SinkArgs) -> Result<Settings, String> {
    let secs = |flag: &str, v: &str| {
        parse_duration(v)
            .map(Duration::from_secs_f64)
            .map_err(|e| format!("{flag}: {e}"))
    };
    let responder = Responder::new(a.status, a.script.as_deref(), a.fail_every, a.fail_status)?;
    let duration = secs("--duration", &a.duration)?;
    if duration.is_zero() {
        return Err("--duration must be above 0".into());
    }
    let delay = a.delay.as_deref().map(|d| secs("--delay", d)).transpose()?;
    if delay.is_some_and(|d| d > Duration::from_secs(600)) {
        return Err("--delay must be at most 10 minutes (Event Grid gives up after 30 s)".into());
    }
    let idle = match (&a.idle, a.expect) {
        (Some(i), _) => Some(secs("--idle", i)?),
        (None, Some(_)) => Some(Duration::from_secs(2)),
        (None, None) => None,
    };
    if a.expect == Some(0) {
        return Err("--expect must be at least 1".into());
    }
    a.run.check()?;
    a.limits.check()?;
    Ok(Settings {
        responder,
        delay,
        duration,
        idle,
    })
}

pub async fn webhook_sink(a: SinkArgs, mut int_rx: watch::Receiver<bool>) -> u8 {
    let fail = |m: String| {
        eprintln!("error: {m}");
        crate::EXIT_FATAL
    };
    let set = match settings(&a) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => match tls::acceptor(c, k) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        _ => None,
    };
    let listener = match TcpListener::bind(&a.bind).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", a.bind)),
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| a.bind.clone(), |x| x.to_string());
    let wall0 = Instant::now();
    let started_unix_ms = unix_now_ns() / 1_000_000;
    let cpu0 = CpuSample::take(a.run.broker_pid);
    let (armed, _) = watch::channel(false);
    let (stop, _) = watch::channel(false);
    let sink = Arc::new(Sink {
        clock: Clock::new(),
        validation: a.validation,
        responder: set.responder.clone(),
        delay: set.delay,
        c: Counters::default(),
        e2e: SharedHist::default(),
        seen: Mutex::new(Seen::default()),
        track: Mutex::new(Tracking {
            ours: SubTracker::new(DedupRef::Own(Arc::new(Mutex::new(Dedup::default())))),
            foreign: HashSet::new(),
            foreign_events: 0,
            foreign_dups: 0,
        }),
        first_request_ns: AtomicU64::new(0),
        last_request_ns: AtomicU64::new(0),
        expect: a.expect,
        armed,
        stop,
    });
    // stderr, always: with --bind ...:0 this is the only place the port is told
    eprintln!(
        "webhook-sink listening on {}://{local}/ (validation {}, deliveries answered {})",
        if tls.is_some() { "https" } else { "http" },
        a.validation.name(),
        sink.responder.describe()
    );
    tokio::spawn(server::accept(sink.clone(), listener, tls));
    let progress = a.run.progress();
    let (sampler_tx, sampler_rx) = watch::channel(false);
    let sampler = tokio::spawn(sampler(sink.clone(), progress, sampler_rx));

    let end = tokio::time::Instant::now() + set.duration;
    let ended_by = tokio::select! {
        _ = tokio::time::sleep_until(end) => "duration",
        _ = int_rx.wait_for(|i| *i) => "interrupted",
        by = idle_end(&sink, set.idle) => by,
    };
    sink.stop.send_replace(true);
    let _ = sampler_tx.send(true);
    let series = sampler.await.unwrap_or_default();
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu1 = CpuSample::take(a.run.broker_pid);
    let accepted = sink.c.events_accepted.load(Ordering::Relaxed);
    let mut r = report::build(&sink, &a, &set, &local, series);
    r.ended_by = ended_by.into();
    r.interrupted = ended_by == "interrupted";
    r.wall_s = round3(wall_s);
    r.started_unix_ms = started_unix_ms;
    r.cpu = Cpu::between(a.run.broker_pid, cpu0, cpu1, wall_s, accepted, None);
    r.thresholds = Thresholds::check(
        a.limits.max_p99,
        a.limits.max_loss,
        ("end-to-end", &r.latency_us.e2e),
        r.events.acct.loss(),
    );
    print!("{}", r.summary());
    if let Some(path) = &a.run.json
        && let Err(e) = write_json(path, &r)
    {
        return fail(e);
    }
    if r.interrupted {
        return crate::EXIT_INTERRUPTED;
    }
    if !r.thresholds.passed {
        return crate::EXIT_THRESHOLD;
    }
    0
}

/// Resolves once the run has been idle for `idle` after it was armed (never without `idle`).
async fn idle_end(sink: &Sink, idle: Option<Duration>) -> &'static str {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    let _ = sink.armed.subscribe().wait_for(|a| *a).await;
    loop {
        let due = sink.last_request_ns.load(Ordering::Relaxed) + idle.as_nanos() as u64;
        if sink.clock.now_ns() >= due {
            return if sink.expect.is_some() {
                "expect"
            } else {
                "idle"
            };
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(sink.clock.instant_at(due))).await;
    }
}

/// Per-second series (accepted events, accepted and rejected deliveries) and the progress line.
async fn sampler(sink: Arc<Sink>, progress: bool, stop: watch::Receiver<bool>) -> Vec<HttpBucket> {
    timeseries(stop, progress, ("webhook-sink", "accepted"), || {
        let c = &sink.c;
        [
            c.events_accepted.load(Ordering::Relaxed),
            c.deliveries_accepted.load(Ordering::Relaxed),
            c.deliveries_rejected.load(Ordering::Relaxed),
        ]
    })
    .await
}
