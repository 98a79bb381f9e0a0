//! The HTTP side of `http-mqtt`: keep-alive publishers each POSTing one MQTT message per request
//! to `{url}/mqtt/messages?topic=..&qos=..&api-version=..` (docs/eventgrid.md §7.8), the body
//! being the payload, closed loop or open loop at a total rate. Success is any 2xx (Event Grid
//! answers 204 or 202). The payload carries the generator's header (connection as publisher,
//! sequence, send stamp; `mqtt::payload`), so the MQTT subscribers of the same run account for
//! every message as they do for MQTT publishers.

use crate::cli::HttpArgs;
use crate::http::h1::{self, Conn, encode_component};
use crate::mqtt::payload::put_payload;
use crate::report::stats::lock;
use crate::sched::OpenLoop;
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

use super::*;

/// The api-version of HTTP publish to MQTT (docs/eventgrid.md §7.8).
pub(crate) const MQTT_MESSAGES_API_VERSION: &str = "2025-02-15-preview";

/// What the publishers send: `topics[i]` is connection i's MQTT topic.
pub(crate) struct MqttMessagesArgs {
    pub(crate) http: HttpArgs,
    pub(crate) connections: usize,
    pub(crate) topics: Vec<String>,
    pub(crate) qos: u8,
    pub(crate) size: usize,
    /// total messages/s (open loop); None: closed loop
    pub(crate) rate: Option<f64>,
}

struct Cfg {
    /// request target per connection
    paths: Vec<String>,
    auth: String,
    size: usize,
    /// messages/s per connection
    rate: Option<f64>,
    connections: usize,
}

/// The publishers, connected and not yet sending.
pub(crate) struct MqttMessagesRun {
    a: MqttMessagesArgs,
    s: Setup,
    cfg: Arc<Cfg>,
    api_version: String,
}

/// `{base}/mqtt/messages?topic=..&qos=..&api-version=..` for one topic.
pub(crate) fn message_path(base: &str, topic: &str, qos: u8, api_version: &str) -> String {
    format!(
        "{base}/mqtt/messages?topic={}&qos={qos}&api-version={}",
        encode_component(topic),
        encode_component(api_version)
    )
}

impl MqttMessagesRun {
    pub(crate) async fn prepare(a: MqttMessagesArgs) -> Result<MqttMessagesRun, String> {
        let key = required(&a.http.key, "--key")?.to_string();
        if a.topics.len() != a.connections {
            return Err("one topic per connection".into());
        }
        if let Some(r) = a.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!("--rate {r}: must be above 0"));
        }
        let api_version = a
            .http
            .api_version
            .clone()
            .unwrap_or_else(|| MQTT_MESSAGES_API_VERSION.into());
        let s = setup(
            &a.http,
            ("--url", &a.http.url),
            a.connections,
            "connections",
        )
        .await?;
        let base = &s.sh.url.base_path;
        let cfg = Arc::new(Cfg {
            paths: a
                .topics
                .iter()
                .map(|t| message_path(base, t, a.qos, &api_version))
                .collect(),
            auth: format!("SharedAccessKey {key}"),
            size: a.size,
            rate: a.rate.map(|r| r / a.connections as f64),
            connections: a.connections,
        });
        Ok(MqttMessagesRun {
            a,
            s,
            cfg,
            api_version,
        })
    }

    /// Publishes until --duration or `int_rx`; the report and the fatal error, if any.
    pub(crate) async fn run(self, int_rx: watch::Receiver<bool>) -> (HttpReport, Option<String>) {
        let MqttMessagesRun {
            a,
            s,
            cfg,
            api_version,
        } = self;
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
        let topic = match a.topics.as_slice() {
            [one] => one.clone(),
            [first, ..] => format!("{first} (one topic per connection)"),
            [] => String::new(),
        };
        let mut r = base_report(&o, "http-mqtt", &topic, &api_version);
        r.tier = "namespace".into();
        r.auth = "Authorization: SharedAccessKey".into();
        r.connections = a.connections;
        r.batch_events = 1;
        r.event_bytes = Some(a.size);
        r.request_body_bytes = Some(a.size);
        match a.rate {
            Some(rate) => {
                r.mode = "open-loop".into();
                r.mode_note = format!(
                    "({rate} messages/s over {} connections; latency from each request's scheduled send time)",
                    a.connections
                );
                r.target_rate_events_per_s = Some(rate);
            }
            None => {
                r.mode = "closed-loop".into();
                r.mode_note =
                    "(each connection sends its next message when the previous one is answered)"
                        .into();
            }
        }
        (r, fatal)
    }
}

async fn publisher(
    sh: Arc<Shared>,
    cfg: Arc<Cfg>,
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
    let mut body = BytesMut::with_capacity(cfg.size);
    let mut req = Vec::with_capacity(cfg.size + 512);
    let mut seq = 0u64;
    let path = &cfg.paths[idx];
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
                if due > sh.clock.now_ns() {
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
        let from = scheduled.unwrap_or_else(|| sh.clock.now_ns());
        body.clear();
        put_payload(&mut body, cfg.size, from, idx as u32, seq);
        seq += 1;
        req.clear();
        h1::write_request(
            &mut req,
            "POST",
            path,
            &sh.url.authority,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Authorization", &cfg.auth),
            ],
            &body,
        );
        sh.c.requests.fetch_add(1, Ordering::Relaxed);
        let res = c.roundtrip(&req, sh.timeout).await;
        let done = sh.clock.now_ns();
        match res {
            Ok(r) if (200..300).contains(&r.status) => {
                sh.h.request.record(done.saturating_sub(from));
                sh.c.requests_ok.fetch_add(1, Ordering::Relaxed);
                sh.c.events_ok.fetch_add(1, Ordering::Relaxed);
                sh.ok(done);
            }
            Ok(r) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed.fetch_add(1, Ordering::Relaxed);
                sh.status_error("publish to MQTT", &r);
            }
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed.fetch_add(1, Ordering::Relaxed);
                sh.transport_error("publish to MQTT", &e);
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
