//! `pull`: consumers looping receive (long poll) and acknowledge.

use crate::cli::PullArgs;
use crate::http::h1::{self, Conn, HttpError, encode_component};
use crate::http::routed::B64Mark;
use crate::report::stats::lock;
use crate::report::track::{Dedup, DedupRef, MAX_PUBLISHERS, SubTracker};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

use super::*;

#[derive(Deserialize)]
pub(super) struct ReceiveBody {
    pub(super) value: Vec<ReceiveItem>,
}

#[derive(Deserialize)]
pub(super) struct ReceiveItem {
    #[serde(rename = "brokerProperties")]
    pub(super) broker: BrokerProps,
    #[serde(default)]
    pub(super) event: Option<EventStamp>,
}

/// The only part of a received event the generator reads: `data.ts`. The rest is skipped
/// without being built (a receive answer is about 100 KiB of JSON, and the generator shares the
/// machine with the server).
#[derive(Deserialize, Default)]
pub(super) struct EventStamp {
    #[serde(default)]
    pub(super) data: Stamp,
    /// an MQTT message routed into the topic with a binary payload (docs/eventgrid.md §7.6)
    #[serde(default)]
    pub(super) data_base64: B64Mark,
}

impl EventStamp {
    /// The send stamp, and (publisher, sequence) when the event carries the generator's payload
    /// header (a routed MQTT message, `http::routed`).
    fn mark(&self) -> (Option<u64>, Option<(u32, u64)>) {
        match self.data_base64.0 {
            Some(h) => (Some(h.ts_ns), Some((h.publisher, h.seq))),
            None => (self.data.0, self.data.1),
        }
    }
}

/// `ts` of an object `data`, as `put_event` writes it (a decimal string; a number is taken
/// too), and (`pub`, `seq`) when both are there (a routed JSON MQTT payload, `http::routed`);
/// any other `data` is no stamp.
#[derive(Default, Debug, PartialEq)]
pub(crate) struct Stamp(pub(crate) Option<u64>, pub(crate) Option<(u32, u64)>);

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Key {
            Ts,
            Pub,
            Seq,
            #[serde(other)]
            Other,
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Stamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Stamp, A::Error> {
                let (mut ts, mut publisher, mut seq) = (None, None, None);
                let num = |v: serde_json::Value| match v {
                    serde_json::Value::String(s) => s.parse().ok(),
                    v => v.as_u64(),
                };
                while let Some(k) = m.next_key::<Key>()? {
                    match k {
                        Key::Ts => ts = num(m.next_value()?),
                        Key::Pub => {
                            publisher = num(m.next_value()?)
                                .and_then(|p| u32::try_from(p).ok())
                                .filter(|&p| p < MAX_PUBLISHERS)
                        }
                        Key::Seq => seq = num(m.next_value()?),
                        Key::Other => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Stamp(ts, publisher.zip(seq)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Stamp, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Stamp(None, None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
            fn visit_unit<E>(self) -> Result<Stamp, E> {
                Ok(Stamp(None, None))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
pub(super) struct BrokerProps {
    #[serde(rename = "lockToken")]
    pub(super) lock_token: String,
    #[serde(rename = "deliveryCount", default)]
    pub(super) delivery_count: u64,
}

#[derive(Deserialize)]
pub(super) struct SettleBody {
    #[serde(rename = "failedLockTokens", default)]
    pub(super) failed: Vec<FailedToken>,
    #[serde(rename = "succeededLockTokens", default)]
    pub(super) succeeded: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct FailedToken {
    #[serde(default)]
    pub(super) error: Option<TokenError>,
}

#[derive(Deserialize)]
pub(super) struct TokenError {
    #[serde(default)]
    pub(super) code: String,
}

struct PullCfg {
    receive_path: String,
    ack_path: String,
    key_header: String,
    receive_timeout: Duration,
    until_empty: bool,
    /// loss and duplicate accounting of events carrying the generator's payload header (the
    /// `e2e` scenario: routed MQTT messages), shared by the consumers
    track: Option<Arc<Mutex<Dedup>>>,
}

pub async fn pull(a: PullArgs, int_rx: watch::Receiver<bool>) -> u8 {
    let json = a.http.run.json.clone();
    match PullRun::prepare(a, None).await {
        Ok(p) => {
            let (r, fatal) = p.run(int_rx).await;
            finish(r, json.as_deref(), fatal)
        }
        Err(e) => {
            eprintln!("error: {e}");
            crate::EXIT_FATAL
        }
    }
}

/// A pull run with its consumers connected, not yet receiving: `pull`, and the consumer side
/// of the `e2e` scenario (which ends it through `int_rx` once what was published arrived).
pub(crate) struct PullRun {
    a: PullArgs,
    s: Setup,
    cfg: Arc<PullCfg>,
    topic: String,
    api_version: String,
}

impl PullRun {
    /// Checks the arguments and connects the consumers; `track` counts what they receive.
    pub(crate) async fn prepare(
        a: PullArgs,
        track: Option<Arc<Mutex<Dedup>>>,
    ) -> Result<PullRun, String> {
        if !(1..=100).contains(&a.max_events) {
            return Err(format!("--max-events {}: must be 1 to 100", a.max_events));
        }
        if !(a.drain.is_finite() && a.drain >= 0.0) {
            return Err(format!("--drain {}: must be 0 or more", a.drain));
        }
        let topic = required(&a.http.topic, "--topic")?.to_string();
        let key = required(&a.http.key, "--key")?;
        let api_version = a
            .http
            .api_version
            .clone()
            .unwrap_or_else(|| NAMESPACE_API_VERSION.into());
        let s = setup(&a.http, ("--url", &a.http.url), a.consumers, "consumers").await?;
        let sub_base = format!(
            "{}/topics/{}/eventsubscriptions/{}",
            s.sh.url.base_path,
            encode_component(&topic),
            encode_component(&a.subscription)
        );
        let v = encode_component(&api_version);
        let cfg = Arc::new(PullCfg {
            receive_path: format!(
                "{sub_base}:receive?api-version={v}&maxEvents={}&maxWaitTime={}",
                a.max_events, a.max_wait
            ),
            ack_path: format!("{sub_base}:acknowledge?api-version={v}"),
            key_header: format!("SharedAccessKey {key}"),
            receive_timeout: s.sh.timeout.max(Duration::from_secs(a.max_wait + 5)),
            until_empty: a.until_empty,
            track,
        });
        Ok(PullRun {
            a,
            s,
            cfg,
            topic,
            api_version,
        })
    }

    /// Receives until --duration, `int_rx` or a fatal answer; the report and the fatal error.
    pub(crate) async fn run(self, int_rx: watch::Receiver<bool>) -> (HttpReport, Option<String>) {
        let PullRun {
            a,
            s,
            cfg,
            topic,
            api_version,
        } = self;
        let o = drive(
            s,
            &a.http,
            true,
            Duration::from_secs_f64(a.drain),
            int_rx,
            |sh, conns, _, _| {
                conns
                    .into_iter()
                    .map(|c| tokio::spawn(consumer(sh.clone(), cfg.clone(), c)))
                    .collect()
            },
        )
        .await;
        let fatal = lock(&o.sh.fatal).clone();
        let mut r = base_report(&o, "pull", &topic, &api_version);
        r.tier = "namespace".into();
        r.auth = "Authorization: SharedAccessKey".into();
        r.subscription = Some(a.subscription.clone());
        r.connections = a.consumers;
        r.batch_events = a.max_events;
        r.mode = "closed-loop".into();
        r.mode_note = format!(
            "(each consumer: receive maxEvents={} maxWaitTime={} s, then acknowledge every lock token; rates over the time to the last successful response)",
            a.max_events, a.max_wait
        );
        if r.events.abandoned_receives > 0 {
            r.notes.push(format!(
            "{} receives were still waiting at the end and were abandoned; events they may have locked come back when the lock expires",
            r.events.abandoned_receives
        ));
        }
        (r, fatal)
    }
}

async fn consumer(sh: Arc<Shared>, cfg: Arc<PullCfg>, conn: Conn) {
    let mut conn = Some(conn);
    let mut hard = sh.hard_stop.subscribe();
    let mut recv_req = Vec::new();
    h1::write_request(
        &mut recv_req,
        "POST",
        &cfg.receive_path,
        &sh.url.authority,
        &[
            ("Accept", "application/json"),
            ("Authorization", &cfg.key_header),
        ],
        b"",
    );
    let mut ack_body = Vec::new();
    let mut ack_req = Vec::new();
    let mut e2e = sh.h.e2e.recorder();
    let mut tracker = cfg
        .track
        .clone()
        .map(|d| SubTracker::new(DedupRef::Group("consumers".into(), d)));
    loop {
        if sh.stopped() {
            break;
        }
        let Some(c) = sh.conn(&mut conn).await else {
            break;
        };
        let t0 = sh.clock.now_ns();
        sh.c.requests.fetch_add(1, Ordering::Relaxed);
        let res = tokio::select! {
            r = c.roundtrip(&recv_req, cfg.receive_timeout) => r,
            _ = hard.wait_for(|h| *h) => {
                sh.c.abandoned_receives.fetch_add(1, Ordering::Relaxed);
                sh.c.requests.fetch_sub(1, Ordering::Relaxed);
                break;
            }
        };
        let done = sh.clock.now_ns();
        let resp = match res {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.status_error("receive", &r);
                continue;
            }
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.transport_error("receive", &e);
                sh.backoff().await;
                continue;
            }
        };
        let got: ReceiveBody = match serde_json::from_slice(&resp.body) {
            Ok(g) => g,
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.transport_error(
                    "receive",
                    &HttpError::Protocol(format!("receive body is not {{\"value\":[...]}}: {e}")),
                );
                continue;
            }
        };
        sh.c.requests_ok.fetch_add(1, Ordering::Relaxed);
        if got.value.is_empty() {
            // an empty long poll says the queue is drained: it does not extend the time the
            // rates are over
            sh.ok_seen.store(true, Ordering::Relaxed);
            sh.c.empty_receives.fetch_add(1, Ordering::Relaxed);
            if cfg.until_empty {
                sh.stop.send_replace(true);
            }
            continue;
        }
        sh.ok(done);
        sh.h.receive.record(done.saturating_sub(t0));
        let n = got.value.len() as u64;
        sh.c.received.fetch_add(n, Ordering::Relaxed);
        let (mut redelivered, mut unmarked) = (0, 0);
        for item in &got.value {
            if item.broker.delivery_count > 1 {
                redelivered += 1;
            }
            let (ts, mark) = item.event.as_ref().map_or((None, None), EventStamp::mark);
            if let Some(ts) = ts
                && ts > 0
            {
                e2e.record(done.saturating_sub(ts));
            }
            if let Some(t) = &mut tracker {
                match mark {
                    Some((publisher, seq)) => t.push(publisher, seq),
                    None => unmarked += 1,
                }
            }
        }
        if let Some(t) = &mut tracker {
            t.flush();
        }
        sh.c.redelivered.fetch_add(redelivered, Ordering::Relaxed);
        sh.c.unmarked.fetch_add(unmarked, Ordering::Relaxed);

        ack_body.clear();
        ack_body.extend_from_slice(b"{\"lockTokens\":[");
        for (i, item) in got.value.iter().enumerate() {
            if i > 0 {
                ack_body.push(b',');
            }
            let _ = serde_json::to_writer(&mut ack_body, &item.broker.lock_token);
        }
        ack_body.extend_from_slice(b"]}");
        ack_req.clear();
        h1::write_request(
            &mut ack_req,
            "POST",
            &cfg.ack_path,
            &sh.url.authority,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
                ("Authorization", &cfg.key_header),
            ],
            &ack_body,
        );
        // an acknowledge is never abandoned: the events are ours until it returns
        let Some(c) = sh.conn(&mut conn).await else {
            sh.c.failed_tokens.fetch_add(n, Ordering::Relaxed);
            break;
        };
        let t1 = sh.clock.now_ns();
        sh.c.requests.fetch_add(1, Ordering::Relaxed);
        let res = c.roundtrip(&ack_req, sh.timeout).await;
        let done = sh.clock.now_ns();
        let token_failure = |code: String, k: u64| {
            sh.c.failed_tokens.fetch_add(k, Ordering::Relaxed);
            *lock(&sh.token_errors).entry(code).or_insert(0) += k;
        };
        match res {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<SettleBody>(&r.body) {
                Ok(b) => {
                    sh.h.ack.record(done.saturating_sub(t1));
                    sh.c.requests_ok.fetch_add(1, Ordering::Relaxed);
                    sh.c.acked
                        .fetch_add(b.succeeded.len() as u64, Ordering::Relaxed);
                    for f in b.failed {
                        token_failure(f.error.map(|e| e.code).unwrap_or_default(), 1);
                    }
                    sh.ok(done);
                }
                Err(e) => {
                    sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                    token_failure("bad acknowledge response".into(), n);
                    sh.transport_error(
                        "acknowledge",
                        &HttpError::Protocol(format!("acknowledge body: {e}")),
                    );
                }
            },
            Ok(r) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                token_failure(format!("acknowledge answered {}", r.status_text()), n);
                sh.status_error("acknowledge", &r);
            }
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                token_failure(format!("acknowledge failed: {}", e.kind()), n);
                sh.transport_error("acknowledge", &e);
                sh.backoff().await;
            }
        }
    }
    if let Some(t) = &tracker {
        sh.c.reordered.fetch_add(t.reordered, Ordering::Relaxed);
    }
}
