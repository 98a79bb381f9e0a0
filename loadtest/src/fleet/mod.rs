//! `fleet`: the large-fleet scenario. --devices devices (100,000 by default) spread over
//! 127.0.0.x source addresses connect with persistent sessions and subscribe to `alerts/#`;
//! each publishes QoS 1 telemetry to `devices/{i}/telemetry` every --telemetry-interval; a
//! backend of --backend members reads `devices/+/telemetry` through one shared subscription;
//! an alert is broadcast to every device every --alert-interval; then every device drops its
//! connection within --storm-window and resumes its session (the reconnect storm).
//!
//! Reports the connect storm (time from the first connect to the last SUBACK, CONNACK
//! latency), the broker's CPU and RSS in the steady state (--broker-pid), telemetry end-to-end
//! latency, the broadcast spread (first to last device per alert), the storm's recovery time
//! (from its start to the last device back) and every message lost: telemetry the broker
//! acknowledged that the backend never got, and alerts a device never got (every device's
//! session is persistent and its subscription QoS 1, so none may be missing).
//!
//! Owns the schedule and the report; the roles are in `device` and `backend`, the lean
//! connection in `conn`. Plain TCP only: a device here costs a socket and a few hundred bytes,
//! so the generator reaches the fleet sizes the other scenarios' clients cannot.

mod backend;
mod conn;
mod device;

use crate::clock::Clock;
use crate::report::stats::{self, CpuTimes, LatencySummary, SharedHist};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

#[derive(clap::Args, Debug, Clone)]
pub struct FleetArgs {
    /// Broker host
    #[arg(short = 'h', long, default_value = "localhost")]
    pub host: String,
    /// Broker port
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT version: 4 (3.1.1) or 5 (5.0)
    #[arg(short = 'V', long = "version", default_value_t = 5, value_parser = clap::value_parser!(u8).range(4..=5))]
    pub version: u8,
    /// Devices (each one connection with a persistent session)
    #[arg(long, default_value_t = 100_000)]
    pub devices: u32,
    /// Members of the backend's shared subscription to devices/+/telemetry
    #[arg(long, default_value_t = 4)]
    pub backend: u32,
    /// Each device's telemetry period
    #[arg(long, default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub telemetry_interval: f64,
    /// The alert broadcast period
    #[arg(long, default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub alert_interval: f64,
    /// Connects (TCP + CONNECT + SUBSCRIBE) in flight at once during the connect storm
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Steady state, from the last device connected to the reconnect storm
    #[arg(long, default_value = "30s", value_parser = crate::cli::parse_duration)]
    pub steady: f64,
    /// Every device drops its connection at a random moment within this window, and reconnects
    #[arg(long, default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub storm_window: f64,
    /// Publishing goes on this long after the storm window; then 5 s more for what is in flight
    #[arg(long, default_value = "15s", value_parser = crate::cli::parse_duration)]
    pub after: f64,
    /// Payload size of telemetry and alerts, at least 16
    #[arg(short = 's', long, default_value_t = 64)]
    pub size: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N for the devices (loopback IPv4 targets only):
    /// each gives about 28,000 ephemeral ports
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Keep-alive announced by every client, seconds
    #[arg(long, default_value_t = 60)]
    pub keep_alive: u16,
    /// Client ids are PREFIX-{i}, PREFIX-backend-{m}, PREFIX-alerter [default: fleet-RANDOM]
    #[arg(long)]
    pub prefix: Option<String>,
    /// PID of the broker process: its CPU and RSS are reported
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the report as JSON to this file
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Runtime worker threads [default: cores]
    #[arg(long)]
    pub threads: Option<usize>,
}

/// When each phase starts, on the run clock (ns); sent to every role once every device is
/// connected.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub steady_ns: u64,
    pub storm_ns: u64,
    pub storm_window_ns: u64,
    pub end_publish_ns: u64,
    pub stop_ns: u64,
    pub telemetry_ns: u64,
    pub alert_ns: u64,
}

/// What every role shares.
pub struct Shared {
    pub clock: Clock,
    pub target: SocketAddr,
    sources: Vec<IpAddr>,
    pub v5: bool,
    pub keep_alive: u16,
    pub payload: usize,
    pub prefix: String,
    pub devices: u32,
    pub seed: u64,
    pub connect_timeout: Duration,
    pub connect_gate: Semaphore,
    pub connack: SharedHist,
    pub connected: AtomicUsize,
    pub connect_failed: AtomicUsize,
    pub last_connected_ns: AtomicU64,
    pub reconnected: AtomicUsize,
    pub last_reconnected_ns: AtomicU64,
    pub reconnect_errors: AtomicU64,
    pub first_reconnect_error: std::sync::Mutex<Option<String>>,
    pub unexpected_drops: AtomicU64,
    pub refused: AtomicU64,
    pub max_alerts: usize,
    pub alert_pub: Vec<AtomicU64>,
    pub alert_first: Vec<AtomicU64>,
    pub alert_last: Vec<AtomicU64>,
    pub alert_count: Vec<AtomicUsize>,
}

impl Shared {
    pub fn source(&self, i: u32) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[i as usize % self.sources.len()])
    }

    pub fn topic(&self, i: u32) -> String {
        format!("devices/{i}/telemetry")
    }
}

#[derive(Debug, Serialize, Default)]
pub struct FleetReport {
    pub scenario: &'static str,
    pub target: String,
    pub mqtt_version: u8,
    pub devices: u32,
    pub sources: usize,
    pub connect_storm: ConnectStorm,
    pub steady: Steady,
    pub telemetry: TelemetryReport,
    pub broadcast: Broadcast,
    pub reconnect_storm: ReconnectStorm,
    pub lost: Lost,
    pub generator_cpu_s: f64,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct ConnectStorm {
    pub connected: usize,
    pub failed: usize,
    /// From the first connect to the last device's SUBACK.
    pub seconds: f64,
    pub connects_per_s: f64,
    pub connack_us: LatencySummary,
}

#[derive(Debug, Serialize, Default)]
pub struct Steady {
    pub seconds: f64,
    /// The broker's CPU over the steady state, in cores (--broker-pid).
    pub broker_cores: Option<f64>,
    /// The broker's RSS with every device connected, at the end of the steady state.
    pub broker_rss_mb: Option<f64>,
    pub broker_rss_kb_per_device: Option<f64>,
}

#[derive(Debug, Serialize, Default)]
pub struct TelemetryReport {
    pub sent: u64,
    pub acked: u64,
    pub received: u64,
    pub duplicates: u64,
    pub refused: u64,
    pub unacked_at_end: u64,
    /// Telemetry sent before the storm: first send → backend.
    pub e2e_steady_us: LatencySummary,
}

#[derive(Debug, Serialize, Default)]
pub struct Broadcast {
    pub alerts: usize,
    pub alerts_acked: usize,
    /// Alerts of the steady state that every connected device received.
    pub complete: usize,
    /// First to last device, per steady alert: median and worst.
    pub spread_p50_ms: f64,
    pub spread_max_ms: f64,
    /// Publish → last device, per steady alert: median and worst.
    pub last_device_p50_ms: f64,
    pub last_device_max_ms: f64,
    pub duplicates: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct ReconnectStorm {
    pub reconnected: usize,
    pub sessions_kept: usize,
    pub not_back: usize,
    /// From the storm's start to the last device back (CONNACK, session resumed).
    pub recovery_s: f64,
    pub reconnect_errors: u64,
    pub unexpected_drops: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct Lost {
    /// Acknowledged by the broker, never received by the backend.
    pub telemetry: u64,
    /// Published alerts that a device back from the storm had not received when the run stopped
    /// (its session, QoS 1, should have kept every one; the run waits 5 s after the last
    /// publish, so a broker still resuming sessions then shows its late ones here too).
    pub alerts: u64,
    /// Published alerts not received by the devices that were not back when the run stopped (the
    /// broker may still hold them for those sessions; reported apart).
    pub alerts_not_back: u64,
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ns(s: f64) -> u64 {
    (s * 1e9) as u64
}

pub async fn fleet(a: FleetArgs, nofile: Option<(u64, u64)>) -> u8 {
    match run(a, nofile).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

async fn run(a: FleetArgs, nofile: Option<(u64, u64)>) -> Result<u8, String> {
    if a.size < 16 {
        return Err("--size must be at least 16 (the run's header)".into());
    }
    if a.devices == 0 || a.backend == 0 {
        return Err("--devices and --backend must be at least 1".into());
    }
    if a.telemetry_interval <= 0.0 || a.alert_interval <= 0.0 {
        return Err("--telemetry-interval and --alert-interval must be above 0".into());
    }
    // A socket per client, and some to spare for the runtime.
    let need = u64::from(a.devices) + u64::from(a.backend) + 64;
    if let Some((soft, _)) = nofile
        && soft < need
    {
        return Err(format!(
            "{} devices need about {need} file descriptors; this process may open {soft} \
             (RLIMIT_NOFILE; raise the hard limit, or run fewer devices)",
            a.devices
        ));
    }
    let target = crate::net::resolve(&a.host, a.port).await?;
    let sources: Vec<IpAddr> = match target.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (1..=a.sources.max(1))
            .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, k)))
            .collect(),
        _ => Vec::new(),
    };
    let max_alerts = ((a.steady + a.storm_window + a.after) / a.alert_interval) as usize + 2;
    let seed = stats_seed();
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| format!("fleet-{:08x}", seed as u32));
    let sh = Arc::new(Shared {
        clock: Clock::new(),
        target,
        sources,
        v5: a.version == 5,
        keep_alive: a.keep_alive,
        payload: a.size,
        prefix,
        devices: a.devices,
        seed,
        connect_timeout: Duration::from_secs(30),
        connect_gate: Semaphore::new(a.connect_concurrency.max(1)),
        connack: SharedHist::default(),
        connected: AtomicUsize::new(0),
        connect_failed: AtomicUsize::new(0),
        last_connected_ns: AtomicU64::new(0),
        reconnected: AtomicUsize::new(0),
        last_reconnected_ns: AtomicU64::new(0),
        reconnect_errors: AtomicU64::new(0),
        first_reconnect_error: std::sync::Mutex::new(None),
        unexpected_drops: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        max_alerts,
        alert_pub: (0..max_alerts).map(|_| AtomicU64::new(0)).collect(),
        alert_first: (0..max_alerts).map(|_| AtomicU64::new(u64::MAX)).collect(),
        alert_last: (0..max_alerts).map(|_| AtomicU64::new(0)).collect(),
        alert_count: (0..max_alerts).map(|_| AtomicUsize::new(0)).collect(),
    });
    let gen_cpu0 = stats::cpu_times(None);
    let (sched_tx, sched_rx) = watch::channel(None::<Schedule>);

    // The cloud side first, so no telemetry goes unread.
    let mut members = Vec::new();
    for m in 0..a.backend {
        let c = backend::open_member(&sh, m)
            .await
            .map_err(|e| format!("backend member {m}: {e}"))?;
        members.push(tokio::spawn(backend::member(
            c,
            sh.clone(),
            sched_rx.clone(),
        )));
    }
    let alert_conn = backend::open_alerter(&sh)
        .await
        .map_err(|e| format!("alerter: {e}"))?;

    // The connect storm.
    let t0 = sh.clock.now_ns();
    let mut devices = Vec::with_capacity(a.devices as usize);
    for i in 0..a.devices {
        devices.push(tokio::spawn(device::run(i, sh.clone(), sched_rx.clone())));
    }
    let mut last_print = std::time::Instant::now();
    loop {
        let done = sh.connected.load(Ordering::Relaxed) + sh.connect_failed.load(Ordering::Relaxed);
        if done >= a.devices as usize {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "connect storm: {} connected, {} failed",
                sh.connected.load(Ordering::Relaxed),
                sh.connect_failed.load(Ordering::Relaxed)
            );
            last_print = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = sh.connected.load(Ordering::Relaxed);
    let failed = sh.connect_failed.load(Ordering::Relaxed);
    let storm_s = (sh
        .last_connected_ns
        .load(Ordering::Relaxed)
        .saturating_sub(t0)) as f64
        / 1e9;
    eprintln!("connect storm: {connected} connected, {failed} failed in {storm_s:.2} s");

    let start = sh.clock.now_ns() + 500_000_000;
    let s = Schedule {
        steady_ns: start,
        storm_ns: start + ns(a.steady),
        storm_window_ns: ns(a.storm_window),
        end_publish_ns: start + ns(a.steady) + ns(a.storm_window) + ns(a.after),
        stop_ns: start + ns(a.steady) + ns(a.storm_window) + ns(a.after) + 5_000_000_000,
        telemetry_ns: ns(a.telemetry_interval),
        alert_ns: ns(a.alert_interval),
    };
    let _ = sched_tx.send(Some(s));
    let alerter = tokio::spawn(backend::alerter(alert_conn, sh.clone(), s));

    // The steady state's broker CPU: from a second in (telemetry under way) to the storm.
    let at = |t: u64| tokio::time::sleep_until(sh.clock.instant_at(t).into());
    at(s.steady_ns + 1_000_000_000.min(ns(a.steady) / 2)).await;
    let cpu_a = a.broker_pid.and_then(|p| stats::cpu_times(Some(p)));
    let wall_a = sh.clock.now_ns();
    at(s.storm_ns).await;
    let cpu_b = a.broker_pid.and_then(|p| stats::cpu_times(Some(p)));
    let wall_b = sh.clock.now_ns();
    let rss = a.broker_pid.and_then(rss_kb);
    eprintln!("steady state over; reconnect storm");
    at(s.stop_ns).await;

    let mut r = FleetReport {
        scenario: "fleet",
        target: target.to_string(),
        mqtt_version: a.version,
        devices: a.devices,
        sources: sh.sources.len(),
        ..Default::default()
    };
    let mut acked_total = 0u64;
    let mut sent_total = 0u64;
    let mut unacked = 0u64;
    let mut acked: Vec<(u32, Vec<u32>)> = Vec::new();
    let mut alert_sets: Vec<(bool, Vec<u64>)> = Vec::new();
    let mut alert_dups = 0u64;
    let (mut reconnected, mut kept, mut not_back) = (0, 0, 0);
    for (i, h) in devices.into_iter().enumerate() {
        let Ok(d) = h.await else { continue };
        if !d.connected {
            if r.errors.len() < 10
                && let Some(e) = d.error
            {
                r.errors.push(format!("device {i}: {e}"));
            }
            continue;
        }
        unacked += d.unacked as u64;
        acked_total += d.acked.len() as u64;
        sent_total += (d.acked.len() + d.unacked) as u64;
        if d.reconnected {
            reconnected += 1;
            kept += d.session_kept as usize;
        } else {
            not_back += 1;
        }
        alert_dups += d.alert_dups;
        alert_sets.push((d.reconnected, d.alerts));
        acked.push((i as u32, d.acked));
    }
    let (alerts, alerts_acked, alert_err) =
        alerter
            .await
            .unwrap_or((0, 0, Some("alerter panicked".into())));
    if let Some(e) = alert_err {
        r.errors.push(format!("alerter: {e}"));
    }
    let mut got = std::collections::HashSet::new();
    let mut steady_hist = hdrhistogram::Histogram::<u64>::new(3).expect("3 digits");
    let mut dups = 0u64;
    for (m, h) in members.into_iter().enumerate() {
        let Ok(out) = h.await else { continue };
        if let Some(e) = out.error {
            r.errors.push(format!("backend member {m}: {e}"));
        }
        dups += out.dups;
        let _ = steady_hist.add(&out.steady);
        for k in out.got {
            if !got.insert(k) {
                dups += 1;
            }
        }
    }
    let mut lost_tel = 0u64;
    for (i, seqs) in &acked {
        for s in seqs {
            if !got.contains(&((u64::from(*i) << 32) | u64::from(*s))) {
                lost_tel += 1;
            }
        }
    }
    // Alerts: every published one must reach every connected device.
    let (mut lost_alerts, mut not_back_alerts) = (0u64, 0u64);
    for (back, set) in &alert_sets {
        let missing = (0..alerts)
            .filter(|k| set[k / 64] & (1u64 << (k % 64)) == 0)
            .count() as u64;
        match back {
            true => lost_alerts += missing,
            false => not_back_alerts += missing,
        }
    }
    let mut spreads = Vec::new();
    let mut lasts = Vec::new();
    let mut complete = 0;
    for k in 0..alerts {
        let p = sh.alert_pub[k].load(Ordering::Relaxed);
        if p >= s.storm_ns {
            continue;
        }
        if sh.alert_count[k].load(Ordering::Relaxed) >= connected {
            complete += 1;
            let (f, l) = (
                sh.alert_first[k].load(Ordering::Relaxed),
                sh.alert_last[k].load(Ordering::Relaxed),
            );
            spreads.push(l.saturating_sub(f) as f64 / 1e6);
            lasts.push(l.saturating_sub(p) as f64 / 1e6);
        }
    }
    let (sp50, spmax) = median_max(spreads);
    let (lp50, lpmax) = median_max(lasts);
    let steady_s = (wall_b - wall_a) as f64 / 1e9;
    r.connect_storm = ConnectStorm {
        connected,
        failed,
        seconds: storm_s,
        connects_per_s: if storm_s > 0.0 {
            connected as f64 / storm_s
        } else {
            0.0
        },
        connack_us: sh.connack.summary(),
    };
    r.steady = Steady {
        seconds: steady_s,
        broker_cores: match (cpu_a, cpu_b) {
            (Some(x), Some(y)) => Some(cores(x, y, steady_s)),
            _ => None,
        },
        broker_rss_mb: rss.map(|k| k as f64 / 1024.0),
        broker_rss_kb_per_device: rss.map(|k| k as f64 / connected.max(1) as f64),
    };
    r.telemetry = TelemetryReport {
        sent: sent_total,
        acked: acked_total,
        received: got.len() as u64,
        duplicates: dups,
        refused: sh.refused.load(Ordering::Relaxed),
        unacked_at_end: unacked,
        e2e_steady_us: LatencySummary::from_hist(&steady_hist),
    };
    r.broadcast = Broadcast {
        alerts,
        alerts_acked,
        complete,
        spread_p50_ms: spread_round(sp50),
        spread_max_ms: spread_round(spmax),
        last_device_p50_ms: spread_round(lp50),
        last_device_max_ms: spread_round(lpmax),
        duplicates: alert_dups,
    };
    r.reconnect_storm = ReconnectStorm {
        reconnected,
        sessions_kept: kept,
        not_back,
        recovery_s: sh
            .last_reconnected_ns
            .load(Ordering::Relaxed)
            .saturating_sub(s.storm_ns) as f64
            / 1e9,
        reconnect_errors: sh.reconnect_errors.load(Ordering::Relaxed),
        unexpected_drops: sh.unexpected_drops.load(Ordering::Relaxed),
    };
    if let Some(e) = stats::lock(&sh.first_reconnect_error).take() {
        r.errors.push(format!("first failed reconnect: {e}"));
    }
    r.lost = Lost {
        telemetry: lost_tel,
        alerts: lost_alerts,
        alerts_not_back: not_back_alerts,
    };
    r.generator_cpu_s = match (gen_cpu0, stats::cpu_times(None)) {
        (Some(x), Some(y)) => ((y.total() - x.total()) * 1000.0).round() / 1000.0,
        _ => 0.0,
    };
    print!("{}", summary(&r));
    if let Some(p) = &a.json {
        crate::report::write_json(p, &r)?;
    }
    Ok(0)
}

fn cores(a: CpuTimes, b: CpuTimes, wall_s: f64) -> f64 {
    ((b.total() - a.total()) / wall_s.max(1e-9) * 1000.0).round() / 1000.0
}

fn spread_round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn stats_seed() -> u64 {
    let t = crate::clock::unix_now_ns();
    device::mix(t ^ u64::from(std::process::id()))
}

fn summary(r: &FleetReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let c = &r.connect_storm;
    let _ = writeln!(
        s,
        "== evgrid-loadtest fleet: {} devices (MQTT {}), {} source addresses, {} ==",
        r.devices,
        if r.mqtt_version == 5 { "5" } else { "3.1.1" },
        r.sources,
        r.target
    );
    let _ = writeln!(
        s,
        "connect storm   {} connected, {} failed in {:.2} s ({:.0} connects/s); CONNACK p50 {:.1} ms p99 {:.1} ms",
        c.connected,
        c.failed,
        c.seconds,
        c.connects_per_s,
        c.connack_us.p50_us / 1000.0,
        c.connack_us.p99_us / 1000.0
    );
    let st = &r.steady;
    let _ = writeln!(
        s,
        "steady state    {:.1} s: broker CPU {} cores, RSS {} ({} KB per device)",
        st.seconds,
        st.broker_cores.map_or("-".into(), |v| format!("{v:.3}")),
        st.broker_rss_mb
            .map_or("-".into(), |v| format!("{v:.0} MB")),
        st.broker_rss_kb_per_device
            .map_or("-".into(), |v| format!("{v:.1}"))
    );
    let t = &r.telemetry;
    let _ = writeln!(
        s,
        "telemetry       sent {} acked {} received {} duplicates {} refused {} unacked at end {}; e2e (steady) p50 {:.1} ms p99 {:.1} ms",
        t.sent,
        t.acked,
        t.received,
        t.duplicates,
        t.refused,
        t.unacked_at_end,
        t.e2e_steady_us.p50_us / 1000.0,
        t.e2e_steady_us.p99_us / 1000.0
    );
    let b = &r.broadcast;
    let _ = writeln!(
        s,
        "broadcast       {} alerts ({} acked), {} steady ones complete; spread first→last device p50 {:.1} ms max {:.1} ms; publish→last device p50 {:.1} ms max {:.1} ms; duplicates {}",
        b.alerts,
        b.alerts_acked,
        b.complete,
        b.spread_p50_ms,
        b.spread_max_ms,
        b.last_device_p50_ms,
        b.last_device_max_ms,
        b.duplicates
    );
    let rs = &r.reconnect_storm;
    let _ = writeln!(
        s,
        "reconnect storm {} back ({} sessions kept), {} not back; recovery {:.2} s; {} reconnect attempts failed, {} unexpected drops",
        rs.reconnected,
        rs.sessions_kept,
        rs.not_back,
        rs.recovery_s,
        rs.reconnect_errors,
        rs.unexpected_drops
    );
    let _ = writeln!(
        s,
        "lost            telemetry {} (acknowledged, never received), alerts {} (missing at the end at devices back from the storm); {} alerts not received by devices not back",
        r.lost.telemetry, r.lost.alerts, r.lost.alerts_not_back
    );
    let _ = writeln!(s, "generator cpu   {:.2} s", r.generator_cpu_s);
    for e in &r.errors {
        let _ = writeln!(s, "error           {e}");
    }
    s
}
