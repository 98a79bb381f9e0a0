//! The HTTP modes against an Event Grid namespace (evgrid's or any other speaking the same data
//! plane, docs/eventgrid.md §6.2 / §9.3):
//!
//! - `http-publish`: C keep-alive connections, each POSTing `application/cloudevents-batch+json`
//!   arrays of `--batch` CloudEvents to `{url}/topics/{T}:publish`, one request in flight per
//!   connection; closed loop, or open loop at `--rate` events/s with latency measured from each
//!   request's scheduled send time (as the MQTT modes do).
//! - `pull`: N consumers, each looping `:receive` (long poll) then `:acknowledge` of every lock
//!   token it got.
//!
//! Every event carries its publish stamp (`data.ts`, ns since the Unix epoch as a string), so
//! `pull` also reports the age of what it receives (publish stamp → received).
//!
//! - This module: the state the workers share, connecting, the per-second series, and the run
//!   skeleton both modes drive.
//! - `publish`: the publishers and the event bodies they write (the stamps `pull` and
//!   `webhook-sink` read back).
//! - `pull`: the consumers (also the consumer side of `e2e`, counting routed MQTT messages).
//! - `mqtt_messages`: the HTTP publishers of `http-mqtt` (HTTP publish to MQTT topics).
//! - `report`: the JSON report and summary of either mode.
//!
//! The workers never check what the server stored and never interpret an event they pull
//! beyond its stamp: only the server's answers and their timing are measured.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cli::{HttpArgs, TlsFlags, parse_duration};
use crate::clock::{Clock, unix_now_ns};
use crate::http::h1::{self, Conn, HttpError, Response, Url};
use crate::report::stats::{self, CpuSample, SharedHist, lock};
use crate::report::{Cpu, round3, write_json};
use crate::transport::TlsClient;

mod report;

use report::{Events, HttpLatencies, HttpThroughput, Requests};
pub use report::{HttpBucket, HttpReport};

/// Counters shared by the workers.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    events_ok: AtomicU64,
    events_failed: AtomicU64,
    not_sent: AtomicU64,
    received: AtomicU64,
    acked: AtomicU64,
    failed_tokens: AtomicU64,
    redelivered: AtomicU64,
    empty_receives: AtomicU64,
    abandoned_receives: AtomicU64,
    reconnects: AtomicU64,
    /// tracked pulls (`e2e`): events without the generator's payload header
    unmarked: AtomicU64,
    /// tracked pulls: per consumer, events below the highest sequence of their publisher seen
    reordered: AtomicU64,
}

#[derive(Default)]
struct Hists {
    request: SharedHist,
    receive: SharedHist,
    ack: SharedHist,
    e2e: SharedHist,
    send_lag: SharedHist,
}

struct Shared {
    clock: Clock,
    url: Url,
    addr: SocketAddr,
    /// https: the TLS client every connection uses
    tls: Option<TlsClient>,
    connect_timeout: Duration,
    timeout: Duration,
    c: Counters,
    h: Hists,
    errors: Mutex<BTreeMap<String, u64>>,
    token_errors: Mutex<BTreeMap<String, u64>>,
    first_error: Mutex<Option<String>>,
    fatal: Mutex<Option<String>>,
    ok_seen: AtomicBool,
    /// clock ns of the last successful response
    last_ok_ns: AtomicU64,
    /// no new requests
    stop: watch::Sender<bool>,
    /// abandon receives still waiting
    hard_stop: watch::Sender<bool>,
}

impl Shared {
    fn ok(&self, at_ns: u64) {
        self.ok_seen.store(true, Ordering::Relaxed);
        self.last_ok_ns.fetch_max(at_ns, Ordering::Relaxed);
    }

    fn error(&self, key: String, detail: String) {
        *lock(&self.errors).entry(key).or_insert(0) += 1;
        let mut f = lock(&self.first_error);
        if f.is_none() {
            *f = Some(detail);
        }
    }

    /// A non-2xx answer. Before anything succeeded, answers that will not change by retrying
    /// (bad key, unknown topic, bad request) end the run with that message.
    fn status_error(&self, what: &str, r: &Response) {
        let detail = match r.error_message() {
            Some(m) => format!("{what}: {} ({m})", r.status_text()),
            None => format!("{what}: {}", r.status_text()),
        };
        if !self.ok_seen.load(Ordering::Relaxed)
            && matches!(r.status, 400 | 401 | 403 | 404 | 405 | 413 | 415)
        {
            self.set_fatal(format!("{} answered {detail}", self.url));
        }
        self.error(r.status_text(), detail);
    }

    fn transport_error(&self, what: &str, e: &HttpError) {
        // before anything succeeded, a transport failure means the wrong port or a server
        // that cannot serve this at all: stop with what happened
        if !self.ok_seen.load(Ordering::Relaxed) {
            let (url, addr) = (&self.url, self.addr);
            self.set_fatal(match e {
                HttpError::Protocol(m) => {
                    format!("{url} ({addr}) does not answer like an HTTP server: {m}")
                }
                HttpError::Io(m) => format!(
                    "{url} ({addr}) dropped the connection without answering ({m}); is it an HTTP listener?"
                ),
                HttpError::Timeout => format!(
                    "{url} ({addr}) did not answer a {what} within {:.1} s (--timeout)",
                    self.timeout.as_secs_f64()
                ),
                HttpError::Connect(m) => format!("cannot connect to {url} ({addr}): {m}"),
            });
        }
        self.error(e.kind(), format!("{what}: {e}"));
    }

    /// After a transport failure: a short pause so a broken server is not hammered.
    async fn backoff(&self) {
        if !self.stopped() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn set_fatal(&self, msg: String) {
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(msg);
        }
        drop(f);
        self.stop.send_replace(true);
        self.hard_stop.send_replace(true);
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// A connection, reconnecting if `conn` is gone. None once the run stops.
    async fn conn<'a>(&self, conn: &'a mut Option<Conn>) -> Option<&'a mut Conn> {
        if conn.as_ref().is_some_and(|c| c.closed) {
            *conn = None;
        }
        while conn.is_none() {
            if self.stopped() {
                return None;
            }
            self.c.reconnects.fetch_add(1, Ordering::Relaxed);
            match Conn::open(self.addr, self.connect_timeout, self.tls.as_ref()).await {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    self.error(e.kind(), format!("reconnect: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        conn.as_mut()
    }
}

/// The api-version a namespace data plane gets unless --api-version says otherwise (the SDK's).
const NAMESPACE_API_VERSION: &str = "2024-06-01";
/// The only basic-tier data-plane api-version (docs/eventgrid.md §2.1).
const BASIC_API_VERSION: &str = "2018-01-01";

/// The TLS client of an `https://` URL (None for `http://`); TLS files with an `http://` URL
/// are an error rather than silently unused.
pub fn https_client(url: &Url, f: &TlsFlags) -> Result<Option<TlsClient>, String> {
    if !url.tls {
        f.check_used(false, "use an https:// URL or add --tls")?;
        return Ok(None);
    }
    TlsClient::new(f, &url.host, &[b"http/1.1"]).map(Some)
}

/// The value of an option a mode requires (clap cannot: the modes share the flag).
fn required<'a>(v: &'a Option<String>, flag: &str) -> Result<&'a str, String> {
    v.as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{flag} is required"))
}

// ---- the run ----

struct Setup {
    sh: Arc<Shared>,
    conns: Vec<Conn>,
    duration: Duration,
    progress: bool,
}

/// Checks the common arguments and connects `n` connections to `url` (given as `flag`).
async fn setup(
    a: &HttpArgs,
    (flag, url): (&str, &str),
    n: usize,
    what: &str,
) -> Result<Setup, String> {
    if n == 0 {
        return Err(format!("--{what} must be at least 1"));
    }
    let duration = parse_duration(&a.duration)?;
    if duration <= 0.0 {
        return Err("--duration must be above 0".into());
    }
    if !(a.connect_timeout > 0.0 && a.timeout > 0.0) {
        return Err("--connect-timeout and --timeout must be above 0".into());
    }
    a.run.check()?;
    let mut url = h1::parse_url(flag, url)?;
    url.tls |= a.tls.tls;
    let tls = https_client(&url, &a.tls)?;
    let addr = crate::net::resolve(&url.host, url.port).await?;
    let connect_timeout = Duration::from_secs_f64(a.connect_timeout);
    // connect everything first: an unreachable server is one clear error
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let tls = tls.clone();
            tokio::spawn(async move { Conn::open(addr, connect_timeout, tls.as_ref()).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        match t.await {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(HttpError::Connect(e))) => {
                return Err(format!("cannot connect to {url} ({addr}): {e}"));
            }
            Ok(Err(e)) => return Err(format!("cannot connect to {url} ({addr}): {e}")),
            Err(e) => return Err(format!("connect task failed: {e}")),
        }
    }
    let (stop, _) = watch::channel(false);
    let (hard_stop, _) = watch::channel(false);
    Ok(Setup {
        sh: Arc::new(Shared {
            clock: Clock::new(),
            url,
            addr,
            tls,
            connect_timeout,
            timeout: Duration::from_secs_f64(a.timeout),
            c: Counters::default(),
            h: Hists::default(),
            errors: Mutex::new(BTreeMap::new()),
            token_errors: Mutex::new(BTreeMap::new()),
            first_error: Mutex::new(None),
            fatal: Mutex::new(None),
            ok_seen: AtomicBool::new(false),
            last_ok_ns: AtomicU64::new(0),
            stop,
            hard_stop,
        }),
        conns,
        duration: Duration::from_secs_f64(duration),
        progress: a.run.progress(),
    })
}

/// Per-second series and the progress line, until `stop` says so.
async fn sampler(
    sh: Arc<Shared>,
    pull: bool,
    progress: bool,
    stop: watch::Receiver<bool>,
) -> Vec<HttpBucket> {
    let (mode, word) = if pull {
        ("pull", "acked")
    } else {
        ("http-publish", "published")
    };
    timeseries(stop, progress, (mode, word), || {
        let c = &sh.c;
        [
            if pull { &c.acked } else { &c.events_ok }.load(Ordering::Relaxed),
            c.requests_ok.load(Ordering::Relaxed),
            c.requests_failed.load(Ordering::Relaxed),
        ]
    })
    .await
}

/// The per-second series of the HTTP modes, and their progress line `[mode 12s] word N
/// events/s ...` (`names`), until `stop`: `read` gives the running totals of (events, requests
/// ok, requests failed).
pub(crate) async fn timeseries(
    stop: watch::Receiver<bool>,
    progress: bool,
    (mode, word): (&str, &str),
    read: impl Fn() -> [u64; 3],
) -> Vec<HttpBucket> {
    let mut series = Vec::new();
    let mut last = [0u64; 3];
    stats::per_second(stop, progress, |t| {
        let cur = read();
        let b = HttpBucket {
            t_s: round3(t.t_s),
            secs: round3(t.secs),
            events: cur[0] - last[0],
            requests_ok: cur[1] - last[1],
            requests_failed: cur[2] - last[2],
        };
        last = cur;
        let line = format!(
            "[{mode} {:>4.0}s] {word} {:>9.0} events/s  {:>7.0} req/s  failed {}  total {}",
            t.elapsed_s,
            b.events as f64 / t.secs.max(1e-9),
            b.requests_ok as f64 / t.secs.max(1e-9),
            cur[2],
            cur[0]
        );
        series.push(b);
        line
    })
    .await;
    series
}

/// Waits for the end of the run (duration, Ctrl-C, or a worker stopping it); returns whether
/// it was interrupted.
async fn wait_end(sh: &Shared, end: Instant, mut int_rx: watch::Receiver<bool>) -> bool {
    let mut stop_rx = sh.stop.subscribe();
    if *int_rx.borrow() {
        sh.stop.send_replace(true);
        return true;
    }
    let interrupted = tokio::select! {
        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(end)) => false,
        _ = int_rx.changed() => true,
        _ = stop_rx.wait_for(|s| *s) => false,
    };
    sh.stop.send_replace(true);
    interrupted
}

struct Outcome {
    sh: Arc<Shared>,
    interrupted: bool,
    series: Vec<HttpBucket>,
    duration_s: f64,
    start_ns: u64,
    stop_ns: u64,
    wall0: Instant,
    started_unix_ms: u64,
    cpu0: CpuSample,
    broker_pid: Option<u32>,
}

/// The report of what `o` measured; `topic` and `api_version` as the mode resolved them.
fn base_report(o: &Outcome, scenario: &str, topic: &str, api_version: &str) -> HttpReport {
    let sh = &o.sh;
    let c = &sh.c;
    let last_ok = sh.last_ok_ns.load(Ordering::Relaxed);
    let elapsed_ns = if last_ok > o.start_ns {
        last_ok - o.start_ns
    } else {
        o.stop_ns.saturating_sub(o.start_ns)
    };
    let elapsed_s = (elapsed_ns as f64 / 1e9).max(1e-9);
    let wall_s = o.wall0.elapsed().as_secs_f64();
    let pull = scenario == "pull";
    let events = if pull {
        c.acked.load(Ordering::Relaxed)
    } else {
        c.events_ok.load(Ordering::Relaxed)
    };
    let cpu1 = CpuSample::take(o.broker_pid);
    let peak = o
        .series
        .iter()
        .filter(|b| b.secs > 0.5)
        .map(|b| b.events as f64 / b.secs)
        .fold(0.0, f64::max);
    HttpReport {
        tool: "evgrid-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: scenario.into(),
        target: sh.url.to_string(),
        transport: if sh.url.tls { "https" } else { "http" }.into(),
        topic: topic.into(),
        api_version: api_version.into(),
        duration_s: round3(o.duration_s),
        elapsed_s: round3(elapsed_s),
        wall_s: round3(wall_s),
        started_unix_ms: o.started_unix_ms,
        interrupted: o.interrupted,
        requests: Requests {
            sent: c.requests.load(Ordering::Relaxed),
            ok: c.requests_ok.load(Ordering::Relaxed),
            failed: c.requests_failed.load(Ordering::Relaxed),
            errors: lock(&sh.errors).clone(),
            first_error: lock(&sh.first_error).clone(),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            not_sent: c.not_sent.load(Ordering::Relaxed),
        },
        events: Events {
            published: c.events_ok.load(Ordering::Relaxed),
            publish_failed: c.events_failed.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            failed_tokens: c.failed_tokens.load(Ordering::Relaxed),
            failed_token_codes: lock(&sh.token_errors).clone(),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            empty_receives: c.empty_receives.load(Ordering::Relaxed),
            abandoned_receives: c.abandoned_receives.load(Ordering::Relaxed),
            unmarked: c.unmarked.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
        },
        throughput: HttpThroughput {
            events_per_s: round3(events as f64 / elapsed_s),
            received_per_s: if pull {
                round3(c.received.load(Ordering::Relaxed) as f64 / elapsed_s)
            } else {
                0.0
            },
            requests_per_s: round3(c.requests_ok.load(Ordering::Relaxed) as f64 / elapsed_s),
            peak_events_per_s: round3(peak),
        },
        latency_us: HttpLatencies {
            publish: sh.h.request.summary(),
            receive: sh.h.receive.summary(),
            ack: sh.h.ack.summary(),
            e2e: sh.h.e2e.summary(),
            send_lag: sh.h.send_lag.summary(),
        },
        timeseries: o.series.clone(),
        cpu: Cpu::between(o.broker_pid, o.cpu0, cpu1, wall_s, events, None),
        ..Default::default()
    }
}

/// One task per connection, given its index: what `drive`'s publishers are started with.
fn per_connection<Fut>(
    conns: Vec<Conn>,
    f: impl Fn(usize, Conn) -> Fut,
) -> Vec<tokio::task::JoinHandle<()>>
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(f(i, c)))
        .collect()
}

/// Runs `workers` (given the setup) to the end and collects what the report needs.
async fn drive<F>(
    s: Setup,
    a: &HttpArgs,
    pull: bool,
    drain: Duration,
    int_rx: watch::Receiver<bool>,
    spawn: F,
) -> Outcome
where
    F: FnOnce(&Arc<Shared>, Vec<Conn>, u64, u64) -> Vec<tokio::task::JoinHandle<()>>,
{
    let wall0 = Instant::now();
    let started_unix_ms = unix_now_ns() / 1_000_000;
    let cpu0 = CpuSample::take(a.run.broker_pid);
    let sh = s.sh;
    let (sampler_tx, sampler_rx) = watch::channel(false);
    let sampler = tokio::spawn(sampler(sh.clone(), pull, s.progress, sampler_rx));
    let start_ns = sh.clock.now_ns();
    let end_ns = start_ns + s.duration.as_nanos() as u64;
    let handles = spawn(&sh, s.conns, start_ns, end_ns);
    let interrupted = wait_end(&sh, sh.clock.instant_at(end_ns), int_rx).await;
    let stop_ns = sh.clock.now_ns();
    // receives still long-polling get `drain` to come back, then are abandoned
    let hard = {
        let sh = sh.clone();
        tokio::spawn(async move {
            tokio::time::sleep(if interrupted { Duration::ZERO } else { drain }).await;
            sh.hard_stop.send_replace(true);
        })
    };
    for h in handles {
        let _ = h.await;
    }
    hard.abort();
    let _ = sampler_tx.send(true);
    let series = sampler.await.unwrap_or_default();
    Outcome {
        sh,
        interrupted,
        series,
        duration_s: s.duration.as_secs_f64(),
        start_ns,
        stop_ns,
        wall0,
        started_unix_ms,
        cpu0,
        broker_pid: a.run.broker_pid,
    }
}

/// Prints the summary, writes --json; the exit code.
fn finish(report: HttpReport, json: Option<&std::path::Path>, fatal: Option<String>) -> u8 {
    if let Some(msg) = fatal {
        eprintln!("error: {msg}");
        return crate::EXIT_FATAL;
    }
    print!("{}", report.summary());
    if let Some(path) = json
        && let Err(e) = write_json(path, &report)
    {
        eprintln!("error: {e}");
        return crate::EXIT_FATAL;
    }
    if report.interrupted {
        return crate::EXIT_INTERRUPTED;
    }
    if report.requests.ok == 0 {
        eprintln!("error: no request succeeded");
        return crate::EXIT_FATAL;
    }
    0
}

mod mqtt_messages;
mod publish;
mod pull;

pub(crate) use mqtt_messages::{MqttMessagesArgs, MqttMessagesRun};
pub use publish::http_publish;
pub(crate) use pull::PullRun;
/// The send stamp `data.ts` as a reader finds it; the webhook sink reads the same stamp.
pub(crate) use pull::Stamp;
pub use pull::pull;

#[cfg(test)]
mod tests;
