//! `http-mqtt`: HTTP publishers of MQTT messages (`POST {url}/mqtt/messages`, docs/eventgrid.md
//! §7.8) → MQTT subscribers on the topics.
//!
//! The subscribers connect and subscribe first (the `sub` scenario); once they are all in, the
//! publishers run for --duration; then the subscribers get --drain seconds to receive what was
//! published before they are stopped. Every subscriber's filter covers every publisher's
//! topic, so each message answered 2xx is expected once per subscriber.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::args::HttpMqttArgs;
use super::report::{self, Delivered, E2eLatencies, E2eReport, E2eThroughput};
use super::{Ctl, fail, finish, http_args};
use crate::cli::Args;
use crate::http::load::{MqttMessagesArgs, MqttMessagesRun};
use crate::mqtt::payload::{self, ClientVars, Rng, TopicGen};
use crate::mqtt::run::{self, RunHook, Scenario};
use crate::report::Thresholds;

/// The publishers' topics (one per connection, `%i` being the connection) and the subscribers'
/// filter.
pub fn topics(
    template: &str,
    filter: Option<&str>,
    n: usize,
) -> Result<(Vec<String>, String), String> {
    let mut rng = Rng::new(1);
    let topics = (0..n)
        .map(|i| {
            let vars = ClientVars {
                seq: i as u64,
                client_id: "",
                username: "",
            };
            TopicGen::new(template, vars).map(|mut t| t.resolve_once(&mut rng))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(t) = topics.iter().find(|t| t.contains(['+', '#'])) {
        return Err(format!(
            "-t {template}: '{t}' has a wildcard; publish topics cannot"
        ));
    }
    let filter = filter.map_or_else(|| payload::wildcard_for(template), str::to_string);
    if let Some(t) = topics.iter().find(|t| !payload::topic_matches(&filter, t)) {
        return Err(format!(
            "--sub-topic {filter} does not match the publish topic {t}: every subscriber must get every message"
        ));
    }
    Ok((topics, filter))
}

pub async fn http_mqtt(
    a: HttpMqttArgs,
    nofile: Option<(u64, u64)>,
    int_rx: watch::Receiver<bool>,
) -> u8 {
    match run_http_mqtt(a, nofile, int_rx).await {
        Ok((r, json)) => finish(&r, json.as_deref()),
        Err(e) => fail(&e),
    }
}

async fn run_http_mqtt(
    a: HttpMqttArgs,
    nofile: Option<(u64, u64)>,
    int_rx: watch::Receiver<bool>,
) -> Result<(E2eReport, Option<std::path::PathBuf>), String> {
    if a.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    super::check_tls_files(&a.ns, &a.mqtt)?;
    let template = a.mqtt.topic.clone().unwrap_or_else(|| "cmd/%i".into());
    let (topics, filter) = topics(&template, a.mqtt.sub_topic.as_deref(), a.connections)?;
    let qos = a.mqtt.qos.unwrap_or(0);
    if qos > 1 {
        return Err(format!(
            "-q {qos}: HTTP publish to MQTT takes QoS 0 or 1 (docs/eventgrid.md §7.8)"
        ));
    }
    let subscribers = a.mqtt.subscribers.or(a.mqtt.count).unwrap_or(1);
    let m = Args {
        topic: Some(filter),
        count: Some(subscribers),
        duration: Some(super::UNTIL_STOPPED.into()),
        limit: None,
        ..a.mqtt.clone()
    };
    let plan = run::build_plan(Scenario::Sub, &m)?;
    let size = plan.cfg.size;
    let (target, mut opts) = crate::prepare(&m, nofile).await?;
    let progress = opts.progress;
    opts.progress = false;
    let hook = Arc::new(RunHook::default());
    opts.hook = Some(hook.clone());
    let mut http = http_args(&a.ns, &m, progress);
    http.duration = a.mqtt.duration.clone().unwrap_or_else(|| "10s".into());
    let publishers = MqttMessagesRun::prepare(MqttMessagesArgs {
        http,
        connections: a.connections,
        topics,
        qos,
        size,
        rate: a.mqtt.rate,
    })
    .await?;

    let ctl = Ctl::new(int_rx);
    let mut mqtt = tokio::spawn(run::execute(plan, target, opts, ctl.mqtt.subscribe()));
    tokio::select! {
        _ = hook.go.notified() => {}
        r = &mut mqtt => {
            return Err(match r {
                Ok(Err(run::Fatal(e))) => e,
                Ok(Ok(_)) => "the subscribers stopped before publishing began".into(),
                Err(e) => format!("the MQTT run failed: {e}"),
            });
        }
    }
    let start_ns = ctl.clock.now_ns();
    let mut pubs = tokio::spawn(publishers.run(ctl.http.subscribe()));
    let http_done = loop {
        tokio::select! {
            r = &mut pubs => break r,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if mqtt.is_finished() {
                    ctl.http.send_replace(true);
                }
            }
        }
    };
    let (h, fatal) = match http_done {
        Ok(x) => x,
        Err(e) => (
            Default::default(),
            Some(format!("the publishers failed: {e}")),
        ),
    };
    if let Some(f) = fatal {
        ctl.stop_all();
        return Err(f);
    }
    let published = h.events.published;
    let expected = published * subscribers as u64;
    let drain_end = ctl.clock.now_ns() + (m.drain.max(0.0) * 1e9) as u64;
    while hook.received() < expected
        && ctl.clock.now_ns() < drain_end
        && !ctl.interrupted()
        && !mqtt.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ctl.mqtt.send_replace(true);
    let mut mr = match mqtt.await {
        Ok(Ok(r)) => r,
        Ok(Err(run::Fatal(e))) => return Err(e),
        Err(e) => return Err(format!("the MQTT run failed: {e}")),
    };
    let interrupted = ctl.interrupted();
    mr.interrupted = interrupted;
    let ma = &mr.messages.acct;
    let acct = report::accounting(
        (
            expected,
            "HTTP publishes answered 2xx, times the subscribers",
        ),
        ma.unique,
        ma.duplicated,
        ma.reordered,
        ma.foreign,
    );
    let thresholds = Thresholds::check(
        m.limits.max_p99,
        m.limits.max_loss,
        ("end-to-end", &mr.latency_us.e2e),
        acct.loss(),
    );
    let mut notes = Vec::new();
    if acct.lost > 0 && !interrupted {
        notes.push(format!(
            "{} deliveries had not arrived {:.1} s after publishing ended (--drain)",
            acct.lost, m.drain
        ));
    }
    let r = E2eReport {
        tool: "evgrid-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "http-mqtt".into(),
        namespace_url: h.target.clone(),
        mqtt_target: mr.target.clone(),
        topic: h.topic.clone(),
        subscription: None,
        consumer: "mqtt".into(),
        setup: None,
        interrupted,
        delivered: Delivered {
            published,
            published_basis: "HTTP publishes answered 2xx".into(),
            received: mr.messages.received,
            acct,
        },
        throughput: E2eThroughput {
            published_per_s: h.throughput.events_per_s,
            delivered_per_s: report::per_s(
                mr.messages.received,
                hook.last_received_ns().saturating_sub(start_ns),
            ),
        },
        latency_us: E2eLatencies {
            e2e: mr.latency_us.e2e.clone(),
            publish: h.latency_us.publish.clone(),
        },
        thresholds,
        notes,
        mqtt: mr,
        http: Some(h),
    };
    Ok((r, m.run.json.clone()))
}
