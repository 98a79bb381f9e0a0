//! Executing a [`Plan`]: the four phases against one target, the per-second sampler, and the
//! [`Report`] the counters and histograms add up to. Owns the client tasks it spawns and stops
//! every one of them before it returns.

use crate::clock::{Clock, unix_now_ns};
use crate::mqtt::client::{self, ClientStats, Go, Ready, Shared, SubTable};
use crate::report::stats::{self, CpuSample, Hists, lock};
use crate::report::track::{Dedup, DedupRef};
use crate::report::{self, Bucket, Connections, Latencies, Messages, Report, Throughput, round3};
use crate::sched::Pace;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use super::*;

/// Executes a plan against `target`.
pub async fn execute(
    plan: Plan,
    target: SocketAddr,
    opts: RunOpts,
    mut interrupt: watch::Receiver<bool>,
) -> Result<Report, Fatal> {
    let wall0 = Instant::now();
    let started_unix_ms = unix_now_ns() / 1_000_000;
    let cpu0 = CpuSample::take(opts.broker_pid);
    let sh = Arc::new(Shared {
        clock: Clock::new(),
        cfg: plan.cfg.clone(),
        target,
        transport: opts.transport.clone(),
        tls_session: Default::default(),
        ifaddrs: opts.ifaddrs.clone(),
        hists: Hists::default(),
        counters: Default::default(),
        errors: Mutex::new(BTreeMap::new()),
        first_error: Mutex::new(None),
        budget: plan.msg_limit.map(AtomicU64::new),
        nofile: opts.nofile,
        os_limit_warned: Default::default(),
    });
    if let Some(h) = &opts.hook {
        let _ = h.shared.set(sh.clone());
    }
    let c = &sh.counters;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Ready>();
    let (go_tx, go_rx) = watch::channel::<Option<Arc<Go>>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (sampler_stop_tx, sampler_stop_rx) = watch::channel(false);
    let interrupted = |i: &watch::Receiver<bool>| *i.borrow();

    // sampler: per-second time series and the live progress line
    let sampler = {
        let sh = sh.clone();
        let progress = opts.progress;
        let total = plan.specs.len() as u64;
        let scen = plan.scenario.name();
        tokio::spawn(sampler(sh, sampler_stop_rx, progress, total, scen))
    };

    // phase 1: connect everything at the connect rate
    let n = plan.specs.len();
    let mut handles = Vec::with_capacity(n);
    let mut specs = plan.specs.into_iter();
    let t0 = tokio::time::Instant::now();
    let mut launched = 0usize;
    let mut readies = 0usize;
    let mut subs: Vec<(String, Option<String>)> = Vec::new();
    let mut ready_pubs = 0u64;
    let mut fatal: Option<String> = None;
    let mut ok_count = 0usize;
    while readies < n {
        let next_launch = t0 + plan.conn_interval.mul_f64(launched as f64);
        tokio::select! {
            biased;
            _ = interrupt.changed() => break,
            Some(r) = ready_rx.recv() => {
                readies += 1;
                match r.result {
                    Ok(s) => {
                        ok_count += 1;
                        subs.extend(s);
                        if r.publisher {
                            ready_pubs += 1;
                        }
                    }
                    Err(e) => {
                        if ok_count == 0 && readies == 1 {
                            fatal = Some(e);
                            break;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next_launch), if launched < n => {
                // launch everything that is due (high connect rates)
                let now = tokio::time::Instant::now();
                while launched < n && t0 + plan.conn_interval.mul_f64(launched as f64) <= now {
                    if let Some(spec) = specs.next() {
                        handles.push(tokio::spawn(client::client_task(
                            sh.clone(),
                            spec,
                            ready_tx.clone(),
                            go_rx.clone(),
                            stop_rx.clone(),
                        )));
                    }
                    launched += 1;
                }
            }
        }
        if interrupted(&interrupt) {
            break;
        }
    }
    drop(ready_tx);

    // phase 2: go
    let table = SubTable::new(&subs);
    c.pubs_active.store(ready_pubs, Ordering::Relaxed);
    let start_ns = sh.clock.now_ns() + 20_000_000;
    let deadline_ns = start_ns + (plan.duration_s * 1e9) as u64;
    let mut publish_s = 0.0;
    if fatal.is_none() && !interrupted(&interrupt) {
        let _ = go_tx.send(Some(Arc::new(Go {
            start_ns,
            deadline_ns,
            table,
        })));
        if let Some(h) = &opts.hook {
            h.go.notify_one();
        }
        // phase 3: publish / hold
        let start_i = sh.clock.instant_at(start_ns);
        let deadline_i = sh.clock.instant_at(deadline_ns);
        loop {
            tokio::select! {
                biased;
                _ = interrupt.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            if interrupted(&interrupt) || Instant::now() >= deadline_i {
                break;
            }
            if ready_pubs > 0 && c.pubs_active.load(Ordering::Relaxed) == 0 {
                break;
            }
            if let Some(l) = plan.recv_limit
                && c.received.load(Ordering::Relaxed) >= l
            {
                break;
            }
        }
        publish_s = Instant::now()
            .saturating_duration_since(start_i)
            .as_secs_f64();
        // phase 4: drain
        if !interrupted(&interrupt) && ready_pubs > 0 {
            let drain_end = Instant::now() + Duration::from_secs_f64(plan.drain_s);
            loop {
                let done = c.pubs_active.load(Ordering::Relaxed) == 0
                    && c.received.load(Ordering::Relaxed) >= c.expected.load(Ordering::Relaxed);
                if done || Instant::now() >= drain_end || interrupted(&interrupt) {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = interrupt.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        }
    }
    let recv_window_s = stats::receive_window_s(
        start_ns,
        start_ns + (publish_s * 1e9) as u64,
        c.last_received_ns.load(Ordering::Relaxed),
        sh.clock.now_ns(),
    );

    // stop and collect
    let _ = stop_tx.send(true);
    let collect_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut results: Vec<ClientStats> = Vec::with_capacity(handles.len());
    let mut stuck = 0;
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(collect_deadline, h).await {
            Ok(Ok(s)) => results.push(s),
            Ok(Err(_)) => stuck += 1,
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    let _ = sampler_stop_tx.send(true);
    let series = sampler.await.unwrap_or_default();
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu1 = CpuSample::take(opts.broker_pid);

    if let Some(f) = fatal {
        return Err(Fatal(f));
    }

    // aggregate
    let mut m = Messages::default();
    m.acct.expected_basis = plan.expected_basis.to_string();
    let mut groups: HashMap<String, Arc<Mutex<Dedup>>> = HashMap::new();
    let mut succeeded = 0;
    for r in &results {
        if r.connected {
            succeeded += 1;
        }
        m.sent += r.sent;
        m.acked += r.acked;
        m.publish_failed += r.pub_failed;
        m.unacked += r.unacked;
        m.acct.expected += r.expected;
        m.received += r.received;
        m.acct.foreign += r.foreign;
        m.requests_received += r.requests_received;
        if let Some(t) = &r.tracker {
            m.acct.reordered += t.reordered;
            match &t.dedup {
                DedupRef::Own(d) => {
                    let d = lock(d);
                    m.acct.unique += d.unique;
                    m.acct.duplicated += d.duplicated;
                    if plan.expected_basis == "sequence-span" {
                        m.acct.expected += d.span_total();
                    }
                }
                DedupRef::Group(g, d) => {
                    groups.entry(g.clone()).or_insert_with(|| d.clone());
                }
            }
        }
    }
    for d in groups.values() {
        let d = lock(d);
        m.acct.unique += d.unique;
        m.acct.duplicated += d.duplicated;
        if plan.expected_basis == "sequence-span" {
            m.acct.expected += d.span_total();
        }
    }
    if plan.expected_basis == "none" {
        m.acct.expected = 0;
    }
    m.acct.settle();

    let mut notes = Vec::new();
    if stuck > 0 {
        notes.push(format!(
            "{stuck} connection tasks did not stop within 5 s; their counts are missing"
        ));
    }
    if m.acct.lost < 0 {
        notes.push(
            "more unique messages than expected: another publisher is using the same topics?"
                .into(),
        );
    }
    if m.acct.foreign > 0 {
        notes.push(format!(
            "{} received messages had no header from this run (other publishers or retained messages) and were not counted",
            m.acct.foreign
        ));
    }
    let interrupted_flag = interrupted(&interrupt);
    let latency = Latencies {
        connack: sh.hists.connack.summary(),
        suback: sh.hists.suback.summary(),
        puback: sh.hists.puback.summary(),
        e2e: sh.hists.e2e.summary(),
        rtt: sh.hists.rtt.summary(),
        send_lag: sh.hists.send_lag.summary(),
    };
    let handled = m.sent + m.received + m.requests_received;
    let cpu = report::Cpu::between(
        opts.broker_pid,
        cpu0,
        cpu1,
        wall_s,
        handled,
        Some(m.received),
    );
    if opts.broker_pid.is_some() && (cpu0.broker.is_none() || cpu1.broker.is_none()) {
        notes.push("could not read the broker's /proc/PID/stat".into());
    }
    let peak = |f: fn(&Bucket) -> u64| {
        series
            .iter()
            .filter(|b| b.secs > 0.5)
            .map(|b| f(b) as f64 / b.secs)
            .fold(0.0, f64::max)
    };
    let (mode, mode_note) = match (&plan.pace, plan.clients.publishers) {
        (_, 0) => ("none".to_string(), "(no publishers)".to_string()),
        (Pace::Closed, _) => (
            "closed-loop".to_string(),
            "(--max-rate: each publisher sends as fast as its connection and in-flight window allow; latency is measured from the actual send time, so it is closed-loop latency and hides queueing at the generator)".to_string(),
        ),
        (Pace::Open { rate }, n) => (
            "open-loop".to_string(),
            format!(
                "(target {:.1} msgs/s = {n} publishers x {:.3}/s; latency is measured from the scheduled send time)",
                rate * n as f64,
                rate
            ),
        ),
    };
    let errors = lock(&sh.errors).clone();
    let conn_failed = sh.counters.conn_failed.load(Ordering::Relaxed);
    let mut r = Report {
        tool: "evgrid-loadtest".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scenario: plan.scenario.name().into(),
        target: target.to_string(),
        transport: sh.transport.kind().name().into(),
        tls_session: sh.tls_session.get().cloned(),
        mqtt_version: plan.cfg.level,
        qos: plan.cfg.qos,
        payload_bytes: plan.cfg.size,
        mode,
        mode_note,
        target_rate_msgs_per_s: plan.target_rate,
        clients: plan.clients,
        duration_s: plan.duration_s,
        publish_s: round3(publish_s),
        wall_s: round3(wall_s),
        started_unix_ms,
        interrupted: interrupted_flag,
        connections: Connections {
            attempted: launched as u64,
            succeeded,
            failed: conn_failed,
            lost_during_run: sh.counters.disconnected.load(Ordering::Relaxed),
            errors,
            first_error: lock(&sh.first_error).clone(),
            os_limit_hit: sh.counters.os_limit_hit.load(Ordering::Relaxed),
            nofile_soft_limit: opts.nofile.map(|n| n.0),
        },
        throughput: Throughput {
            sent_per_s: round3(m.sent as f64 / publish_s.max(1e-9)),
            received_per_s: round3(m.received as f64 / recv_window_s),
            peak_sent_per_s: round3(peak(|b| b.sent)),
            peak_received_per_s: round3(peak(|b| b.received)),
        },
        messages: m,
        latency_us: latency,
        timeseries: series,
        cpu,
        thresholds: Default::default(),
        notes,
    };
    if r.connections.os_limit_hit {
        let which = r
            .connections
            .errors
            .keys()
            .find_map(|k| {
                ["EMFILE", "ENFILE", "EADDRNOTAVAIL", "EADDRINUSE"]
                    .into_iter()
                    .find(|e| k.contains(e))
            })
            .unwrap_or("EMFILE");
        r.notes.push(client::os_limit_advice(which, &sh));
    }
    Ok(r)
}

async fn sampler(
    sh: Arc<Shared>,
    stop: watch::Receiver<bool>,
    progress: bool,
    total: u64,
    scen: &'static str,
) -> Vec<Bucket> {
    let c = &sh.counters;
    let mut series = Vec::new();
    let mut last = (0u64, 0u64);
    stats::per_second(stop, progress, |t| {
        let sent = c.sent.load(Ordering::Relaxed);
        let recv = c.received.load(Ordering::Relaxed);
        let conn = c.connected.load(Ordering::Relaxed);
        let b = Bucket {
            t_s: round3(t.t_s),
            secs: round3(t.secs),
            sent: sent - last.0,
            received: recv - last.1,
            connected: conn,
        };
        last = (sent, recv);
        let line = format!(
            "[{scen} {:>4.0}s] conns {}/{} fail {}  sent {:>9.0}/s  recv {:>9.0}/s  total sent {} recv {}",
            t.elapsed_s,
            conn,
            total,
            c.conn_failed.load(Ordering::Relaxed),
            b.sent as f64 / t.secs.max(1e-9),
            b.received as f64 / t.secs.max(1e-9),
            sent,
            recv
        );
        series.push(b);
        line
    })
    .await;
    series
}
