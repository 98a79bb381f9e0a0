//! `http-publish`: keep-alive publishers of event batches, closed or open loop, to a namespace
//! topic (`{url}/topics/{T}:publish`, CloudEvents) or to a basic-tier topic endpoint
//! (`{endpoint}?api-version=2018-01-01`, Event Grid or CloudEvents schema). Authentication is a
//! key header or a SAS token the generator signs itself; success is exactly 200 either way.

use crate::cli::{HttpPublishArgs, Schema, parse_duration};
use crate::clock::unix_now_ns;
use crate::http::egwire;
use crate::http::h1::{self, Conn, encode_component};
use crate::report::stats::lock;
use crate::sched::OpenLoop;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

use super::*;

/// Appends one event of `size` bytes (exactly, unless `size` is below the minimum) in
/// `schema`. `id` is the connection and its sequence number, `data.ts` the send stamp (ns since
/// the Unix epoch, as a string); `time` is the Event Grid `eventTime` (same length for every
/// event, see [`event_time`]). A sink reads both back: `webhook-sink` and `pull` share them.
pub(super) fn put_event(out: &mut Vec<u8>, ev: &EventSpec, seq: u64, ts_ns: u64, time: &str) {
    let start = out.len();
    let conn = ev.conn;
    let tail: &[u8] = match ev.schema {
        Schema::Cloudevents => {
            let _ = write!(
                out,
                r#"{{"specversion":"1.0","id":"{conn:05}-{seq:012}","source":"/evgrid-loadtest","type":"evgrid.loadtest","datacontenttype":"application/json","data":{{"ts":"{ts_ns:019}","pad":""#
            );
            b"\"}}"
        }
        Schema::Eventgrid => {
            let _ = write!(
                out,
                r#"{{"id":"{conn:05}-{seq:012}","subject":"/evgrid-loadtest","eventType":"evgrid.loadtest","eventTime":"{time}","data":{{"ts":"{ts_ns:019}","pad":""#
            );
            br#""},"dataVersion":"1.0"}"#
        }
    };
    let fixed = out.len() - start + tail.len();
    out.resize(out.len() + ev.size.saturating_sub(fixed), b'x');
    out.extend_from_slice(tail);
}

/// What a connection's events look like.
pub(super) struct EventSpec {
    pub(super) schema: Schema,
    pub(super) conn: usize,
    pub(super) size: usize,
}

/// `eventTime` of an event stamped `ts_ns`: 7 fractional digits, as Azure writes them.
pub(super) fn event_time(ts_ns: u64) -> String {
    egwire::rfc3339_utc(ts_ns, 7)
}

/// The smallest event `put_event` writes in `schema`.
pub(super) fn min_event_size(schema: Schema) -> usize {
    let mut v = Vec::new();
    let ev = EventSpec {
        schema,
        conn: 0,
        size: 0,
    };
    put_event(&mut v, &ev, 0, 0, &event_time(0));
    v.len()
}

/// A JSON array of `n` events numbered from `*seq`, all stamped `ts_ns`.
pub(super) fn put_batch(out: &mut Vec<u8>, ev: &EventSpec, seq: &mut u64, n: usize, ts_ns: u64) {
    let time = match ev.schema {
        Schema::Eventgrid => event_time(ts_ns),
        Schema::Cloudevents => String::new(),
    };
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        put_event(out, ev, *seq, ts_ns, &time);
        *seq += 1;
    }
    out.push(b']');
}

struct PubCfg {
    path: String,
    content_type: &'static str,
    /// (header, value) that authenticates every request
    auth: (&'static str, String),
    schema: Schema,
    batch: usize,
    size: usize,
    /// requests/s per connection (open loop)
    rate: Option<f64>,
    connections: usize,
    /// --limit: events still to send, shared by the connections
    budget: Option<AtomicU64>,
}

impl PubCfg {
    /// Reserves up to a batch of events from --limit; 0 once it is spent.
    fn take(&self) -> usize {
        let Some(b) = &self.budget else {
            return self.batch;
        };
        let mut left = b.load(Ordering::Relaxed);
        loop {
            let n = left.min(self.batch as u64);
            if n == 0 {
                return 0;
            }
            match b.compare_exchange_weak(left, left - n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return n as usize,
                Err(now) => left = now,
            }
        }
    }
}

/// What the arguments say the requests go to, checked before anything connects.
struct Target<'a> {
    /// the URL flag and its value
    url: (&'static str, &'a str),
    basic: bool,
    /// namespace topic ("" for basic tier)
    topic: &'a str,
    schema: Schema,
    api_version: String,
    /// (header, value, how the report names it)
    auth: (&'static str, String, &'static str),
}

fn target(a: &HttpPublishArgs, run_s: f64) -> Result<Target<'_>, String> {
    let basic = a.endpoint.is_some();
    let (url, topic) = match &a.endpoint {
        Some(e) => (("--endpoint", e.as_str()), ""),
        None => (
            ("--url", a.http.url.as_str()),
            required(&a.http.topic, "--topic")?,
        ),
    };
    let schema = match (a.schema, basic) {
        (Some(Schema::Eventgrid), false) => {
            return Err(
                "--schema eventgrid: namespace topics take CloudEvents only (docs/eventgrid.md §6.2); give a basic-tier topic's --endpoint for Event Grid events"
                    .into(),
            );
        }
        (Some(s), _) => s,
        (None, true) => Schema::Eventgrid,
        (None, false) => Schema::Cloudevents,
    };
    let api_version = a.http.api_version.clone().unwrap_or_else(|| {
        if basic {
            BASIC_API_VERSION
        } else {
            NAMESPACE_API_VERSION
        }
        .into()
    });
    let auth = match (&a.sas_key, &a.http.key) {
        (Some(sas), _) => {
            // the token names the resource as the server sees it: the topic endpoint, or the
            // namespace topic (docs/eventgrid.md §3); valid for the whole run and an hour more
            let base = h1::parse_url(url.0, url.1)?.to_string();
            let resource = if basic {
                base
            } else {
                format!("{base}/topics/{topic}")
            };
            let now = unix_now_ns();
            let expiry = egwire::rfc3339_utc(now + ((run_s + 3600.0) * 1e9) as u64, 0);
            let token = egwire::sas_token(&resource, &expiry, sas)?;
            if basic {
                ("aeg-sas-token", token, "aeg-sas-token")
            } else {
                (
                    "Authorization",
                    format!("SharedAccessSignature {token}"),
                    "Authorization: SharedAccessSignature",
                )
            }
        }
        (None, Some(k)) if basic => ("aeg-sas-key", k.clone(), "aeg-sas-key"),
        (None, Some(k)) => (
            "Authorization",
            format!("SharedAccessKey {k}"),
            "Authorization: SharedAccessKey",
        ),
        (None, None) => return Err("--key or --sas-key is required".into()),
    };
    Ok(Target {
        url,
        basic,
        topic,
        schema,
        api_version,
        auth,
    })
}

pub async fn http_publish(a: HttpPublishArgs, int_rx: watch::Receiver<bool>) -> u8 {
    let fail = |m: String| {
        eprintln!("error: {m}");
        crate::EXIT_FATAL
    };
    if !(1..=1000).contains(&a.batch) {
        return fail(format!(
            "--batch {}: must be 1 to 1000 (Event Grid's limit)",
            a.batch
        ));
    }
    if let Some(r) = a.rate
        && !(r.is_finite() && r > 0.0)
    {
        return fail(format!("--rate {r}: must be above 0"));
    }
    if a.limit == Some(0) {
        return fail("--limit must be at least 1".into());
    }
    let run_s = match parse_duration(&a.http.duration) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let t = match target(&a, run_s) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let s = match setup(&a.http, t.url, a.connections, "connections").await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut notes = Vec::new();
    let min = min_event_size(t.schema);
    let size = a.size.max(min);
    if a.size < min {
        notes.push(format!(
            "--size {} is below the smallest event this generator writes; events are {min} B",
            a.size
        ));
    }
    let body_bytes = 2 + a.batch * (size + 1) - 1;
    if body_bytes > 1024 * 1024 {
        notes.push(format!(
            "requests are {body_bytes} B, above Event Grid's 1 MB request limit"
        ));
    }
    let base = &s.sh.url.base_path;
    let v = encode_component(&t.api_version);
    let cfg = Arc::new(PubCfg {
        path: if t.basic {
            format!("{base}?api-version={v}")
        } else {
            format!(
                "{base}/topics/{}:publish?api-version={v}",
                encode_component(t.topic)
            )
        },
        content_type: match t.schema {
            Schema::Eventgrid => "application/json; charset=utf-8",
            Schema::Cloudevents => "application/cloudevents-batch+json; charset=utf-8",
        },
        auth: (t.auth.0, t.auth.1.clone()),
        schema: t.schema,
        batch: a.batch,
        size,
        rate: a.rate.map(|r| r / a.batch as f64 / a.connections as f64),
        connections: a.connections,
        budget: a.limit.map(AtomicU64::new),
    });
    let o = drive(
        s,
        &a.http,
        false,
        Duration::ZERO,
        int_rx,
        |sh, conns, start_ns, end_ns| {
            per_connection(conns, |i, c| {
                publisher(sh.clone(), cfg.clone(), i, c, start_ns, end_ns)
            })
        },
    )
    .await;
    let fatal = lock(&o.sh.fatal).clone();
    let mut r = base_report(&o, "http-publish", t.topic, &t.api_version);
    r.tier = if t.basic { "basic" } else { "namespace" }.into();
    r.schema = Some(t.schema.name().into());
    r.auth = t.auth.2.into();
    r.connections = a.connections;
    r.batch_events = a.batch;
    r.event_bytes = Some(size);
    r.request_body_bytes = Some(body_bytes);
    match a.rate {
        Some(rate) => {
            r.mode = "open-loop".into();
            r.mode_note = format!(
                "({rate} events/s = {:.1} requests/s over {} connections; latency from each request's scheduled send time)",
                rate / a.batch as f64,
                a.connections
            );
            r.target_rate_events_per_s = Some(rate);
            if r.latency_us.send_lag.p99_us > 10_000.0 {
                r.notes.push(
                    "p99 send lag is above 10 ms: the connections could not keep up with the schedule (more --connections, or a lower --rate)".into(),
                );
            }
        }
        None => {
            r.mode = "closed-loop".into();
            r.mode_note = "(each connection sends its next request when the previous one is answered; latency from the actual send)".into();
        }
    }
    if let Some(limit) = a.limit
        && cfg
            .budget
            .as_ref()
            .is_some_and(|b| b.load(Ordering::Relaxed) == 0)
    {
        notes.push(format!("stopped at --limit {limit} events sent"));
    }
    r.notes.extend(notes);
    finish(r, a.http.run.json.as_deref(), fatal)
}

async fn publisher(
    sh: Arc<Shared>,
    cfg: Arc<PubCfg>,
    idx: usize,
    conn: Conn,
    start_ns: u64,
    end_ns: u64,
) {
    let mut conn = Some(conn);
    let mut sched = cfg
        .rate
        .map(|r| OpenLoop::new(start_ns, r, idx as f64 / cfg.connections as f64));
    let mut stop = sh.stop.subscribe();
    let events = EventSpec {
        schema: cfg.schema,
        conn: idx,
        size: cfg.size,
    };
    let mut body = Vec::with_capacity(cfg.batch * (cfg.size + 1) + 2);
    let mut req = Vec::with_capacity(body.capacity() + 512);
    let mut seq = 0u64;
    let timeout = sh.timeout;
    loop {
        if sh.stopped() {
            break;
        }
        let scheduled = match &mut sched {
            Some(s) => {
                let due = s.next_due_ns();
                if due >= end_ns {
                    break;
                }
                let now = sh.clock.now_ns();
                if due > now {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sh.clock.instant_at(due))) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                s.take();
                sh.h.send_lag.record(sh.clock.now_ns().saturating_sub(due));
                Some(due)
            }
            None => None,
        };
        let Some(c) = sh.conn(&mut conn).await else {
            break;
        };
        let n = cfg.take();
        if n == 0 {
            // --limit is spent: the run is over once the requests in flight are answered
            sh.stop.send_replace(true);
            break;
        }
        let sent_ns = sh.clock.now_ns();
        let from = scheduled.unwrap_or(sent_ns);
        body.clear();
        put_batch(&mut body, &events, &mut seq, n, from);
        req.clear();
        h1::write_request(
            &mut req,
            "POST",
            &cfg.path,
            &sh.url.authority,
            &[
                ("Content-Type", cfg.content_type),
                ("Accept", "application/json"),
                (cfg.auth.0, &cfg.auth.1),
            ],
            &body,
        );
        sh.c.requests.fetch_add(1, Ordering::Relaxed);
        let res = c.roundtrip(&req, timeout).await;
        let done = sh.clock.now_ns();
        match res {
            Ok(r) if r.status == 200 => {
                sh.h.request.record(done.saturating_sub(from));
                sh.c.requests_ok.fetch_add(1, Ordering::Relaxed);
                sh.c.events_ok.fetch_add(n as u64, Ordering::Relaxed);
                sh.ok(done);
            }
            Ok(r) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed.fetch_add(n as u64, Ordering::Relaxed);
                sh.status_error("publish", &r);
            }
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed.fetch_add(n as u64, Ordering::Relaxed);
                sh.transport_error("publish", &e);
                sh.backoff().await;
            }
        }
    }
    if let Some(s) = &sched
        && end_ns > 0
    {
        sh.c.not_sent
            .fetch_add(s.due(end_ns - 1), Ordering::Relaxed);
    }
}
