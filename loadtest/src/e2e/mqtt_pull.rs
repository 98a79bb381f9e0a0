//! `e2e`: MQTT publishers → the namespace routes every PUBLISH into a topic as a CloudEvent
//! (docs/eventgrid.md §7.6) → pull consumers on a Queue subscription of that topic (or a push
//! subscription to a webhook sink).
//!
//! The consumers connect and start receiving first; then the MQTT run (the `pub` scenario, or
//! `fanin` with --subscribers) publishes for --duration and waits for its acknowledgements;
//! then the consumers get --drain seconds to receive everything that was published before
//! they are stopped. Loss is what was published (QoS 0: written; QoS 1: PUBACKed with success)
//! and never received by then.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::args::{E2eArgs, Switch};
use super::report::{self, Delivered, E2eLatencies, E2eReport, E2eThroughput};
use super::{Ctl, fail, finish, http_args};
use crate::cli::{Args, PullArgs};
use crate::http::h1;
use crate::http::load::PullRun;
use crate::mqtt::run::{self, RunHook, Scenario};
use crate::report::stats::lock;
use crate::report::track::Dedup;
use crate::report::{Thresholds, round3};

/// The MQTT side's arguments: the e2e defaults filled in.
pub fn mqtt_args(a: &Args) -> (Scenario, Args) {
    let mut m = a.clone();
    m.topic = m.topic.or_else(|| Some("e2e/%i".into()));
    let publishers = m.publishers.or(m.count).unwrap_or(10);
    m.publishers = Some(publishers);
    m.count = Some(publishers);
    let scenario = if m.subscribers.is_some() || m.shared.is_some() {
        Scenario::Fanin
    } else {
        Scenario::Pub
    };
    (scenario, m)
}

pub async fn e2e(a: E2eArgs, nofile: Option<(u64, u64)>, int_rx: watch::Receiver<bool>) -> u8 {
    match run_e2e(a, nofile, int_rx).await {
        Ok((r, json)) => finish(&r, json.as_deref()),
        Err(e) => fail(&e),
    }
}

async fn run_e2e(
    a: E2eArgs,
    nofile: Option<(u64, u64)>,
    int_rx: watch::Receiver<bool>,
) -> Result<(E2eReport, Option<std::path::PathBuf>), String> {
    super::check_tls_files(&a.ns, &a.mqtt)?;
    let (scenario, margs) = mqtt_args(&a.mqtt);
    let plan = run::build_plan(scenario, &margs)?;
    let qos = plan.cfg.qos;
    let url = h1::parse_url("--url", &a.ns.url)?;
    let namespace = super::setup::namespace_of(&url)?;
    let consumers = if a.push.is_some() { 0 } else { a.consumers };
    if a.push.is_some() && !a.setup {
        return Err("--push names the webhook --setup subscribes: give --setup --admin-key".into());
    }
    let mut key = a.ns.key.clone();
    let mut setup = None;
    if a.setup {
        let admin = a.ns.admin_key.as_deref().unwrap_or_default();
        let timeout = Duration::from_secs_f64(a.ns.http_timeout.max(1.0));
        let http_tls =
            crate::http::load::https_client(&url, &http_args(&a.ns, &a.mqtt, false).tls)?;
        let mut m = super::setup::Mgmt::connect(&url, http_tls.as_ref(), admin, timeout).await?;
        let p = super::setup::Plan {
            namespace: &namespace,
            topic: &a.route_topic,
            subscription: &a.subscription,
            push: a.push.as_deref(),
            routing: a.routing == Switch::On,
        };
        if let Some(k) = m.apply(&p, key.is_none()).await? {
            key = Some(k);
        }
        setup = Some(format!(
            "topic {}, {} subscription {}{}, routing {} in namespace {namespace}",
            a.route_topic,
            if a.push.is_some() { "Push" } else { "Queue" },
            a.subscription,
            a.push
                .as_deref()
                .map(|u| format!(" to {u}"))
                .unwrap_or_default(),
            if p.routing { "on" } else { "off" }
        ));
    }
    let (target, mut opts) = crate::prepare(&margs, nofile).await?;
    let progress = opts.progress;
    opts.progress = false;
    let hook = Arc::new(RunHook::default());
    opts.hook = Some(hook.clone());

    let ctl = Ctl::new(int_rx);
    let track = Arc::new(Mutex::new(Dedup::default()));
    let pull = if consumers > 0 {
        if key.is_none() {
            return Err("--key is required to pull (or --setup --admin-key to read it)".into());
        }
        let mut http = http_args(&a.ns, &margs, progress);
        http.topic = Some(a.route_topic.clone());
        http.key = key.clone();
        let p = PullArgs {
            http,
            subscription: a.subscription.clone(),
            consumers,
            max_events: a.max_events,
            max_wait: a.max_wait,
            until_empty: false,
            drain: 0.0,
        };
        let run = PullRun::prepare(p, Some(track.clone())).await?;
        Some(tokio::spawn(run.run(ctl.http.subscribe())))
    } else {
        None
    };
    let mut mqtt = tokio::spawn(run::execute(plan, target, opts, ctl.mqtt.subscribe()));
    // what the consumers have received, and when it last grew: delivered/s is over the time
    // from the start of publishing to then
    let (mut last_unique, mut last_ns) = (0, 0);
    let mut poll = |ctl: &Ctl| {
        let unique = lock(&track).unique;
        if unique != last_unique {
            (last_unique, last_ns) = (unique, ctl.clock.now_ns());
        }
        unique
    };
    let mut go_ns = None;
    let mqtt_report = loop {
        tokio::select! {
            r = &mut mqtt => break r,
            _ = hook.go.notified(), if go_ns.is_none() => go_ns = Some(ctl.clock.now_ns()),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                poll(&ctl);
                // the consumers stopping on their own (a fatal answer) ends the publishing too
                if pull.as_ref().is_some_and(|p| p.is_finished()) {
                    ctl.mqtt.send_replace(true);
                }
            }
        }
    };
    let mut m = match mqtt_report {
        Ok(Ok(r)) => r,
        Ok(Err(run::Fatal(e))) => {
            ctl.stop_all();
            return Err(e);
        }
        Err(e) => {
            ctl.stop_all();
            return Err(format!("the MQTT run failed: {e}"));
        }
    };
    let published = report::mqtt_published(qos, m.messages.sent, m.messages.acked);
    // the drain: until every published message was received, --drain, Ctrl-C, or the
    // consumers stopping
    let drain_end = ctl.clock.now_ns() + (margs.drain.max(0.0) * 1e9) as u64;
    if pull.is_some() {
        loop {
            let unique = poll(&ctl);
            if unique >= published.0
                || ctl.clock.now_ns() >= drain_end
                || ctl.interrupted()
                || pull.as_ref().is_some_and(|p| p.is_finished())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    ctl.http.send_replace(true);
    let (http, fatal) = match pull {
        Some(p) => match p.await {
            Ok((r, f)) => (Some(r), f),
            Err(e) => (None, Some(format!("the consumers failed: {e}"))),
        },
        None => (None, None),
    };
    if let Some(f) = fatal {
        return Err(f);
    }
    let interrupted = ctl.interrupted();
    m.interrupted = interrupted;
    let mut http = http;
    if let Some(h) = &mut http {
        // the consumers ran until stopped: their run is the wall time, not an interruption
        h.interrupted = interrupted;
        h.duration_s = h.wall_s;
        // receives waiting at the end are abandoned by design once everything arrived
        h.notes.retain(|n| !n.contains("abandoned"));
    }
    m.check_thresholds(None, None);
    let d = lock(&track);
    let (reordered, unmarked, received) = http.as_ref().map_or((0, 0, 0), |h| {
        (h.events.reordered, h.events.unmarked, h.events.received)
    });
    let expected = if consumers > 0 {
        published
    } else {
        (0, "none: no consumers in this run")
    };
    let acct = report::accounting(expected, d.unique, d.duplicated, reordered, unmarked);
    let unique = d.unique;
    drop(d);
    let e2e_lat = http
        .as_ref()
        .map(|h| h.latency_us.e2e.clone())
        .unwrap_or_default();
    let mut notes = Vec::new();
    match (&a.push, consumers) {
        (Some(u), _) => notes.push(format!(
            "push delivery to {u}: the webhook sink's own report has what arrived; {} were published",
            published.0
        )),
        (None, 0) => notes.push("no consumers (--consumers 0): the MQTT side only".into()),
        _ => {}
    }
    if unique < published.0 && !interrupted && consumers > 0 {
        notes.push(format!(
            "{} published messages had not arrived {:.1} s after publishing ended (--drain)",
            published.0 - unique,
            margs.drain
        ));
    }
    let thresholds = Thresholds::check(
        margs.limits.max_p99,
        margs.limits.max_loss,
        ("end-to-end", &e2e_lat),
        acct.loss(),
    );
    let r = E2eReport {
        tool: "evgrid-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: "e2e".into(),
        namespace_url: url.to_string(),
        mqtt_target: m.target.clone(),
        topic: a.route_topic.clone(),
        subscription: Some(a.subscription.clone()),
        consumer: match (&a.push, consumers) {
            (Some(_), _) => "push",
            (None, 0) => "none",
            _ => "pull",
        }
        .into(),
        setup,
        interrupted,
        delivered: Delivered {
            published: published.0,
            published_basis: published.1.into(),
            received,
            acct,
        },
        throughput: E2eThroughput {
            published_per_s: m.throughput.sent_per_s,
            delivered_per_s: round3(report::per_s(
                unique,
                last_ns.saturating_sub(go_ns.unwrap_or(last_ns)),
            )),
        },
        latency_us: E2eLatencies {
            e2e: e2e_lat,
            publish: m.latency_us.puback.clone(),
        },
        thresholds,
        notes,
        mqtt: m,
        http,
    };
    Ok((r, margs.run.json.clone()))
}
