//! Shared counters, latency histograms and CPU accounting.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Highest latency recorded: one hour, in nanoseconds.
const MAX_NS: u64 = 3_600_000_000_000;

fn new_hist() -> Histogram<u64> {
    // 3 significant digits from 1 ns to one hour
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("constant histogram bounds are valid")
}

/// A histogram shared by many connection tasks.
#[derive(Debug, Clone)]
pub struct SharedHist(Arc<Mutex<Histogram<u64>>>);

impl Default for SharedHist {
    fn default() -> Self {
        SharedHist(Arc::new(Mutex::new(new_hist())))
    }
}

impl SharedHist {
    pub fn record(&self, ns: u64) {
        let mut h = lock(&self.0);
        h.saturating_record(ns.clamp(1, MAX_NS));
    }
    fn record_many(&self, v: &[u64]) {
        let mut h = lock(&self.0);
        for &ns in v {
            h.saturating_record(ns.clamp(1, MAX_NS));
        }
    }
    pub fn snapshot(&self) -> Histogram<u64> {
        lock(&self.0).clone()
    }
    /// The report's figures of what was recorded so far.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary::from_hist(&self.snapshot())
    }
    pub fn recorder(&self) -> LatBuf {
        LatBuf {
            buf: Vec::new(),
            target: self.clone(),
        }
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Task-local buffer of latency samples flushed into a [`SharedHist`] in
/// batches, so that the shared lock is taken once per 1024 samples.
#[derive(Debug)]
pub struct LatBuf {
    buf: Vec<u64>,
    target: SharedHist,
}

impl LatBuf {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(1024);
        }
        self.buf.push(ns);
        if self.buf.len() >= 1024 {
            self.flush();
        }
    }
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.target.record_many(&self.buf);
            self.buf.clear();
        }
    }
}

impl Drop for LatBuf {
    fn drop(&mut self) {
        self.flush();
    }
}

/// All histograms of a run.
#[derive(Debug, Clone, Default)]
pub struct Hists {
    pub connack: SharedHist,
    pub suback: SharedHist,
    pub puback: SharedHist,
    pub e2e: SharedHist,
    pub rtt: SharedHist,
    /// open loop: actual send time minus scheduled time (generator lag)
    pub send_lag: SharedHist,
}

/// Counters updated by connection tasks (in batches) and read by the
/// sampler for progress and the per-second time series.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub expected: AtomicU64,
    pub received: AtomicU64,
    /// clock time (`Clock::now_ns`) of the newest read that delivered a counted message
    pub last_received_ns: AtomicU64,
    pub acked: AtomicU64,
    pub pub_failed: AtomicU64,
    pub requests_received: AtomicU64,
    pub connected: AtomicU64,
    pub conn_failed: AtomicU64,
    pub disconnected: AtomicU64,
    /// publishers still publishing or waiting for acks
    pub pubs_active: AtomicU64,
    pub os_limit_hit: AtomicBool,
}

impl Counters {
    pub fn add(a: &AtomicU64, n: u64) {
        if n > 0 {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Seconds over which received/s is averaged: from `start_ns` to the end of publishing or to the
/// last message received, whichever is later, never to `now_ns`. Waiting in the drain phase for
/// messages that a broker dropped delivers nothing, so that wait is no part of its throughput;
/// a broker still draining a backlog is measured until its last message.
pub fn receive_window_s(
    start_ns: u64,
    publish_end_ns: u64,
    last_received_ns: u64,
    now_ns: u64,
) -> f64 {
    let end = publish_end_ns.max(last_received_ns).min(now_ns);
    end.saturating_sub(start_ns).max(1) as f64 / 1e9
}

/// One bucket of [`per_second`]: from `t_s` (seconds since the start) for `secs`.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub t_s: f64,
    pub secs: f64,
    /// seconds since the start at the end of the bucket
    pub elapsed_s: f64,
}

/// Calls `bucket` once a second until `stop` changes, then once more for the partial bucket
/// at the end (unless it is under 1 ms). What `bucket` returns is the live progress line,
/// printed on stderr (overwriting itself) when `progress`.
pub async fn per_second(
    mut stop: tokio::sync::watch::Receiver<bool>,
    progress: bool,
    mut bucket: impl FnMut(&Tick) -> String,
) {
    use std::io::Write as _;
    let t0 = std::time::Instant::now();
    let mut last_t = t0;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(1),
    );
    let mut printed = false;
    loop {
        let last = tokio::select! {
            biased;
            _ = stop.changed() => true,
            _ = tick.tick() => false,
        };
        let now = std::time::Instant::now();
        let t = Tick {
            t_s: last_t.duration_since(t0).as_secs_f64(),
            secs: now.duration_since(last_t).as_secs_f64(),
            elapsed_s: now.duration_since(t0).as_secs_f64(),
        };
        if t.secs > 0.001 || !last {
            let line = bucket(&t);
            if progress && !last {
                let mut err = std::io::stderr();
                let _ = write!(err, "\r{line}   ");
                let _ = err.flush();
                printed = true;
            }
        }
        last_t = now;
        if last {
            break;
        }
    }
    if printed {
        eprintln!();
    }
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// (percentile, microseconds) pairs for plotting
    pub percentiles: Vec<(f64, f64)>,
}

const PLOT_PCTS: &[f64] = &[
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0,
    98.0, 99.0, 99.5, 99.7, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

fn us(ns: u64) -> f64 {
    (ns as f64 / 1000.0 * 10.0).round() / 10.0
}

impl LatencySummary {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: (h.mean() / 100.0).round() / 10.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            percentiles: PLOT_PCTS
                .iter()
                .map(|&p| (p, us(h.value_at_quantile(p / 100.0))))
                .collect(),
        }
    }
}

/// CPU time of a process from /proc/PID/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    pub user_s: f64,
    pub system_s: f64,
}

impl CpuTimes {
    pub fn total(&self) -> f64 {
        self.user_s + self.system_s
    }
}

/// CPU times of this process and, with --broker-pid, of the measured one, read together: every
/// mode samples once when it starts and once when it ends (see `report::Cpu::between`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub generator: Option<CpuTimes>,
    pub broker: Option<CpuTimes>,
}

impl CpuSample {
    pub fn take(broker_pid: Option<u32>) -> CpuSample {
        CpuSample {
            generator: cpu_times(None),
            broker: broker_pid.and_then(|p| cpu_times(Some(p))),
        }
    }
}

/// Parses utime and stime (fields 14 and 15) from the text of /proc/PID/stat.
pub fn parse_proc_stat(text: &str, ticks_per_s: f64) -> Option<CpuTimes> {
    // the command name (field 2) is in parentheses and may contain spaces
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after the name: field 3 is at index 0, so field 14 is at index 11
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(CpuTimes {
        user_s: utime / ticks_per_s,
        system_s: stime / ticks_per_s,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// CPU times of `pid`, or of this process when `None`.
pub fn cpu_times(pid: Option<u32>) -> Option<CpuTimes> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    parse_proc_stat(&text, clock_ticks())
}

/// A process counts as idle when it used less than this share of one core over a sample.
pub const IDLE_CPU_SHARE: f64 = 0.05;

/// True when `cpu_s` seconds of CPU over `window_s` seconds of wall time is idle.
pub fn is_idle(cpu_s: f64, window_s: f64) -> bool {
    cpu_s < window_s * IDLE_CPU_SHARE
}

/// Waits until every process in `pids` is idle over one 250 ms sample, or `max_s` has passed,
/// or a process has gone (it is then no longer waited for). Returns the seconds waited.
///
/// A saturated broker can go on working for seconds after a run ends (mosquitto: about 5 s of
/// a full core after a 5 s fan-in at 2M msgs/s offered, reading what its sockets still hold).
/// The next round, against the other broker, would share the cores with that work.
pub async fn settle(pids: &[u32], max_s: f64) -> f64 {
    const SAMPLE: std::time::Duration = std::time::Duration::from_millis(250);
    if pids.is_empty() {
        return 0.0;
    }
    let t0 = std::time::Instant::now();
    loop {
        let before: Vec<Option<f64>> = pids
            .iter()
            .map(|p| cpu_times(Some(*p)).map(|t| t.total()))
            .collect();
        tokio::time::sleep(SAMPLE).await;
        let busy = pids.iter().zip(&before).any(|(p, b)| {
            match (b, cpu_times(Some(*p)).map(|t| t.total())) {
                (Some(b), Some(a)) => !is_idle(a - b, SAMPLE.as_secs_f64()),
                _ => false,
            }
        });
        let waited = t0.elapsed().as_secs_f64();
        if !busy || waited >= max_s {
            return waited;
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit. Returns (soft, hard)
/// after the change.
pub fn raise_nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_parsing_handles_spaces_in_name() {
        let text = "1234 (my (weird) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 100 1000000 200";
        let t = parse_proc_stat(text, 100.0).unwrap();
        assert_eq!(t.user_s, 2.5);
        assert_eq!(t.system_s, 0.75);
        assert!(parse_proc_stat("garbage", 100.0).is_none());
        assert!(cpu_times(None).is_some());
    }

    #[test]
    fn summaries() {
        let h = SharedHist::default();
        let mut r = h.recorder();
        for i in 1..=1000u64 {
            r.record(i * 1000);
        }
        drop(r);
        let s = LatencySummary::from_hist(&h.snapshot());
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1.0);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{}", s.p50_us);
        assert!((s.p99_us - 990.0).abs() < 1.5, "{}", s.p99_us);
        assert!((s.max_us - 1000.0).abs() < 1.0);
        assert_eq!(s.percentiles.len(), PLOT_PCTS.len());
        assert_eq!(LatencySummary::from_hist(&new_hist()).count, 0);
    }

    #[test]
    fn receive_window_ends_at_the_later_of_publishing_and_the_last_receipt() {
        let s = 1_000_000_000;
        // Everything arrived while publishing, then the drain waited 3 s for dropped messages.
        assert_eq!(
            receive_window_s(s, s + 5_000_000_000, s + 4_999_000_000, s + 8_000_000_000),
            5.0
        );
        // A backlog drained until 7 s: measured until its last message.
        assert_eq!(
            receive_window_s(s, s + 5_000_000_000, s + 7_000_000_000, s + 8_000_000_000),
            7.0
        );
        // A broker that stopped delivering early is still measured over the whole publishing.
        assert_eq!(
            receive_window_s(s, s + 5_000_000_000, s + 1_000_000_000, s + 8_000_000_000),
            5.0
        );
        // Nothing received at all: the publishing phase.
        assert_eq!(
            receive_window_s(s, s + 5_000_000_000, 0, s + 8_000_000_000),
            5.0
        );
        // Never past now, never zero.
        assert_eq!(
            receive_window_s(s, s + 5_000_000_000, 0, s + 2_000_000_000),
            2.0
        );
        assert!(receive_window_s(s, s, 0, s) > 0.0);
    }

    #[test]
    fn idle_is_under_five_percent_of_a_core() {
        assert!(is_idle(0.0, 0.25));
        assert!(is_idle(0.01, 0.25));
        assert!(!is_idle(0.0125, 0.25));
        assert!(!is_idle(0.25, 0.25));
    }

    #[tokio::test]
    async fn settle_waits_for_a_busy_process_and_not_for_an_idle_one() {
        // This test process is busy while a thread spins; settle gives up at max_s.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let spin = std::thread::spawn(move || {
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let me = std::process::id();
        let waited = settle(&[me], 0.6).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spin.join().unwrap();
        assert!(waited >= 0.6, "waited {waited}");
        // A process that does not exist is not waited for; nor is none.
        assert!(settle(&[u32::MAX], 5.0).await < 1.0);
        assert!(settle(&[], 5.0).await < 1.0);
    }
}
