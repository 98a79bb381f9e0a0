//! Scenario plans and the run orchestrator.
//!
//! A run has four phases: connect every client at the connect rate
//! (subscribers first, each subscribing before it reports ready), start all
//! publishers on a common schedule, publish for `--duration` (or until `-L`),
//! drain until every expected delivery arrived (or `--drain` seconds), stop.

use crate::cli::{Args, parse_duration};
use crate::mqtt::client::{
    self, ClientCfg, ClientSpec, ClientStats, Expect, Go, PubSpec, Ready, Shared, SubTable,
};
use crate::mqtt::codec;
use crate::payload::{self, ClientVars, Clock, Rng, TopicGen};
use crate::report::stats::{self, Hists, LatencySummary, lock};
use crate::report::track::{Dedup, DedupRef, SubTracker};
use crate::report::{
    self, Bucket, Clients, Connections, CpuReport, Latencies, Messages, Report, Throughput, round3,
};
use crate::sched::{Pace, per_publisher_rate};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Conn,
    Sub,
    Pub,
    Fanin,
    Fanout,
    P2p,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Conn => "conn",
            Scenario::Sub => "sub",
            Scenario::Pub => "pub",
            Scenario::Fanin => "fanin",
            Scenario::Fanout => "fanout",
            Scenario::P2p => "p2p",
        }
    }
}

/// Everything a run needs besides the target.
pub struct Plan {
    pub scenario: Scenario,
    pub specs: Vec<ClientSpec>,
    pub clients: Clients,
    pub cfg: ClientCfg,
    pub pace: Pace,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub drain_s: f64,
    pub conn_interval: Duration,
    /// sub: stop after this many receptions
    pub recv_limit: Option<u64>,
    pub msg_limit: Option<u64>,
    pub expected_basis: &'static str,
}

/// Longest run accepted (about 115 days).
const MAX_SECS: f64 = 1e7;
/// Most clients of one kind in one process.
const MAX_CLIENTS: usize = 5_000_000;
/// Highest open-loop rate per publisher.
const MAX_RATE_PER_PUBLISHER: f64 = 1e8;

/// Seconds from the command line as a `Duration`, rejecting NaN, negative
/// and absurd values instead of panicking.
fn secs(name: &str, v: f64) -> Result<Duration, String> {
    if !(0.0..=MAX_SECS).contains(&v) {
        return Err(format!("{name}: {v} s is out of range (0 to {MAX_SECS})"));
    }
    Duration::try_from_secs_f64(v).map_err(|e| format!("{name}: {e}"))
}

struct Namer {
    prefix: String,
    short: bool,
    start: u64,
    global: u64,
}

impl Namer {
    fn id(&mut self, role: &str, i: u64) -> String {
        let g = self.start + self.global;
        self.global += 1;
        if self.short {
            format!("{}{}", self.prefix, g)
        } else {
            format!("{}_{}{}", self.prefix, role, self.start + i)
        }
    }
}

fn vars<'a>(seq: u64, client_id: &'a str, args: &'a Args) -> ClientVars<'a> {
    ClientVars {
        seq,
        client_id,
        username: args.username.as_deref().unwrap_or(""),
    }
}

fn spec(index: usize, client_id: String) -> ClientSpec {
    ClientSpec {
        index,
        client_id,
        subscribe: Vec::new(),
        group: None,
        tracker: None,
        publish: None,
        responder: false,
        rtt: false,
    }
}

fn own_tracker() -> Option<SubTracker> {
    Some(SubTracker::new(DedupRef::Own(Arc::new(Mutex::new(
        Dedup::default(),
    )))))
}

/// Builds the client list for a scenario from the command line.
pub fn build_plan(scenario: Scenario, args: &Args) -> Result<Plan, String> {
    let level = args.version.unwrap_or(5);
    let qos = args.qos.unwrap_or(0);
    let size = args.size.unwrap_or(256);
    if size < payload::HEADER_LEN {
        return Err(format!(
            "-s {size}: payload must be at least {} bytes (the header)",
            payload::HEADER_LEN
        ));
    }
    if size > codec::MAX_REMAINING - 70_000 {
        return Err(format!("-s {size}: payload too large for MQTT"));
    }
    if args.inflight == 0 {
        return Err("-F must be at least 1".into());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(format!("--rate {r}: must be a positive number of msgs/s"));
    }
    if let Some(i) = args.pub_interval
        && !(i.is_finite() && i > 0.0)
    {
        return Err(format!("-I {i}: must be a positive number of ms"));
    }
    if args.max_rate && args.rate.is_some() {
        return Err("--max-rate (closed loop) and --rate (open loop) exclude each other".into());
    }
    if let Some(u) = &args.username {
        codec::check_field("username", u.len())?;
    }
    if let Some(p) = &args.password {
        codec::check_field("password", p.len())?;
    }
    if args.session_expiry.is_some() && level != 5 {
        return Err("-x (session expiry) needs -V 5".into());
    }
    let duration_s = match &args.duration {
        Some(d) => parse_duration(d)?,
        None if args.limit.is_some()
            && matches!(
                scenario,
                Scenario::Pub | Scenario::Fanin | Scenario::Fanout | Scenario::P2p | Scenario::Sub
            ) =>
        {
            3600.0
        }
        None => 10.0,
    };
    if duration_s > MAX_SECS {
        return Err(format!("--duration: at most {MAX_SECS} s"));
    }
    let conn_interval = match (args.conn_rate, args.interval) {
        (Some(r), _) if r > 0.0 && r.is_finite() => secs("-R", 1.0 / r)?,
        (Some(r), _) => return Err(format!("-R {r}: must be a positive connections/s")),
        (None, Some(i)) if i >= 0.0 && i.is_finite() => secs("-i", i / 1000.0)?,
        (None, Some(i)) => return Err(format!("-i {i}: must be >= 0 ms")),
        (None, None) => Duration::from_millis(10),
    };
    let connect_timeout = secs("--connect-timeout", args.connect_timeout)?;
    if connect_timeout.is_zero() {
        return Err("--connect-timeout must be positive".into());
    }
    secs("--drain", args.drain)?;
    for (name, v) in [
        ("-c", args.count),
        ("--publishers", args.publishers),
        ("--subscribers", args.subscribers),
        ("--topics", args.topics),
        ("--pairs", args.pairs),
    ] {
        if v == Some(0) {
            return Err(format!("{name} must be at least 1"));
        }
        if v.is_some_and(|v| v > MAX_CLIENTS) {
            return Err(format!("{name}: at most {MAX_CLIENTS} per process"));
        }
    }
    for (name, t) in [
        ("-t", &args.topic),
        ("--sub-topic", &args.sub_topic),
        ("--resp-topic", &args.resp_topic),
    ] {
        if let Some(t) = t
            && t.len() > 60_000
        {
            return Err(format!(
                "{name}: topic templates are limited to 60000 bytes"
            ));
        }
    }
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("evlt-{}", std::process::id()));
    let mut namer = Namer {
        prefix,
        short: args.shortids,
        start: args.start,
        global: 0,
    };
    let mut rng = Rng::new(std::process::id() as u64);
    let cfg = ClientCfg {
        level,
        keep_alive: args.keepalive,
        clean: args.clean,
        session_expiry: args.session_expiry,
        username: args.username.clone(),
        password: args.password.clone(),
        qos,
        retain: args.retain,
        size,
        inflight: args.inflight.min(65_535),
        batch: args.batch,
        connect_timeout,
        sub_delay: args.sub_delay_ms.map(Duration::from_millis),
        accept_old: scenario == Scenario::Sub,
    };
    let mut specs: Vec<ClientSpec> = Vec::new();
    let mut clients = Clients::default();
    let publishers_n;
    let pace_for = |n: usize| -> Pace {
        if args.max_rate {
            Pace::Closed
        } else {
            Pace::Open {
                rate: per_publisher_rate(args.rate, args.pub_interval.unwrap_or(1000.0), n),
            }
        }
    };
    let mut expected_basis = "published";
    match scenario {
        Scenario::Conn => {
            let n = args.count.unwrap_or(100);
            for i in 0..n {
                let id = namer.id("c", i as u64);
                specs.push(spec(specs.len(), id));
            }
            clients.total = n;
            publishers_n = 0;
            expected_basis = "none";
        }
        Scenario::Sub => {
            let n = args.count.unwrap_or(1);
            let t = args.topic.clone().unwrap_or_else(|| "bench/#".into());
            for i in 0..n {
                let id = namer.id("s", i as u64);
                let filter = TopicGen::new(&t, vars(args.start + i as u64, &id, args))?
                    .resolve_once(&mut rng);
                let mut s = spec(specs.len(), id);
                s.subscribe = vec![filter];
                s.tracker = own_tracker();
                specs.push(s);
            }
            clients.subscribers = n;
            clients.total = n;
            publishers_n = 0;
            expected_basis = "sequence-span";
        }
        Scenario::Pub | Scenario::Fanin => {
            let (np, default_t) = if scenario == Scenario::Pub {
                (args.count.unwrap_or(1), "bench/%i")
            } else {
                (args.publishers.or(args.count).unwrap_or(10), "bench/%i")
            };
            let t = args.topic.clone().unwrap_or_else(|| default_t.into());
            if scenario == Scenario::Fanin {
                let filter = args
                    .sub_topic
                    .clone()
                    .unwrap_or_else(|| payload::wildcard_for(&t));
                if let Some(n) = args.shared {
                    if n == 0 {
                        return Err("--shared must be at least 1".into());
                    }
                    let d = Arc::new(Mutex::new(Dedup::default()));
                    for j in 0..n {
                        let id = namer.id("s", j as u64);
                        let mut s = spec(specs.len(), id);
                        s.subscribe = vec![format!("$share/{}/{}", args.group, filter)];
                        s.group = Some(args.group.clone());
                        s.tracker = Some(SubTracker::new(DedupRef::Group(
                            args.group.clone(),
                            d.clone(),
                        )));
                        specs.push(s);
                    }
                    clients.subscribers = n;
                    clients.shared_group_members = n;
                } else {
                    let ns = args.subscribers.unwrap_or(1);
                    for j in 0..ns {
                        let id = namer.id("s", j as u64);
                        let mut s = spec(specs.len(), id);
                        s.subscribe = vec![filter.clone()];
                        s.tracker = own_tracker();
                        specs.push(s);
                    }
                    clients.subscribers = ns;
                }
            }
            let pace = pace_for(np);
            for i in 0..np {
                let id = namer.id("p", i as u64);
                let topic = TopicGen::new(&t, vars(args.start + i as u64, &id, args))?;
                let mut s = spec(specs.len(), id);
                s.publish = Some(table_publisher(i, np, topic, &pace));
                specs.push(s);
            }
            clients.publishers = np;
            clients.total = specs.len();
            publishers_n = np;
            if scenario == Scenario::Pub {
                expected_basis = "none";
            }
        }
        Scenario::Fanout => {
            let np = args.publishers.unwrap_or(1);
            let ns = args.subscribers.or(args.count).unwrap_or(10);
            let nt = args.topics.unwrap_or(1).max(1);
            let t = args.topic.clone().unwrap_or_else(|| {
                if nt > 1 {
                    "bench/fanout/%i".into()
                } else {
                    "bench/fanout".into()
                }
            });
            if nt > 1 && !t.contains("%i") {
                return Err(format!(
                    "fanout with --topics {nt}: the topic template must contain %i (the topic index)"
                ));
            }
            if t.contains("%s") || t.contains("%rand_") {
                return Err("fanout topics must be fixed: %s and %rand_N are not allowed".into());
            }
            let topics: Vec<String> = (0..nt)
                .map(|k| {
                    TopicGen::new(&t, vars(k as u64, "", args))
                        .map(|mut g| g.resolve_once(&mut rng))
                })
                .collect::<Result<_, _>>()?;
            for j in 0..ns {
                let id = namer.id("s", j as u64);
                let mut s = spec(specs.len(), id);
                s.subscribe = topics.clone();
                s.tracker = own_tracker();
                specs.push(s);
            }
            let pace = pace_for(np);
            for i in 0..np {
                let id = namer.id("p", i as u64);
                let topic = TopicGen::new(&topics[i % nt], vars(i as u64, &id, args))?;
                let mut s = spec(specs.len(), id);
                s.publish = Some(table_publisher(i, np, topic, &pace));
                specs.push(s);
            }
            clients.publishers = np;
            clients.subscribers = ns;
            clients.topics = nt;
            clients.total = specs.len();
            publishers_n = np;
        }
        Scenario::P2p => {
            if level != 5 {
                return Err(
                    "p2p uses the MQTT 5 response topic and correlation data: use -V 5".into(),
                );
            }
            let n = args.pairs.or(args.count).unwrap_or(10);
            let req_t = args.topic.clone().unwrap_or_else(|| "p2p/%i/req".into());
            let resp_t = args
                .resp_topic
                .clone()
                .unwrap_or_else(|| "p2p/%i/resp".into());
            for k in 0..n {
                let id = namer.id("r", k as u64);
                let filter = TopicGen::new(&req_t, vars(args.start + k as u64, &id, args))?
                    .resolve_once(&mut rng);
                let mut s = spec(specs.len(), id);
                s.subscribe = vec![filter];
                s.responder = true;
                specs.push(s);
            }
            let pace = pace_for(n);
            for k in 0..n {
                let id = namer.id("q", k as u64);
                // the request topic must match what responder k subscribed to
                let rid = specs[k].subscribe[0].clone();
                let resp = TopicGen::new(&resp_t, vars(args.start + k as u64, &id, args))?
                    .resolve_once(&mut rng);
                let mut s = spec(specs.len(), id);
                s.subscribe = vec![resp.clone()];
                s.tracker = own_tracker();
                s.rtt = true;
                s.publish = Some(PubSpec {
                    publisher_id: k as u32,
                    topic: TopicGen::new(&rid, vars(0, "", args))?,
                    pace: pace.clone(),
                    phase: k as f64 / n.max(1) as f64,
                    response_topic: Some(resp),
                    expect: Expect::Fixed(1),
                });
                specs.push(s);
            }
            clients.publishers = n;
            clients.subscribers = n;
            clients.total = 2 * n;
            publishers_n = n;
        }
    }
    if let Pace::Open { rate } = pace_for(publishers_n.max(1))
        && !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_PER_PUBLISHER)
    {
        return Err(format!(
            "{rate:.4e} msgs/s per publisher is out of range (at most {MAX_RATE_PER_PUBLISHER:.0e}); use --max-rate for as fast as possible"
        ));
    }
    let pace = if publishers_n > 0 {
        pace_for(publishers_n)
    } else {
        Pace::Closed
    };
    let target_rate = match (&pace, publishers_n) {
        (Pace::Open { rate }, n) if n > 0 => Some(rate * n as f64),
        _ => None,
    };
    Ok(Plan {
        scenario,
        specs,
        clients,
        cfg,
        pace,
        target_rate,
        duration_s,
        drain_s: args.drain.max(0.0),
        conn_interval,
        recv_limit: if scenario == Scenario::Sub {
            args.limit
        } else {
            None
        },
        msg_limit: if scenario == Scenario::Sub {
            None
        } else {
            args.limit
        },
        expected_basis,
    })
}

/// Parses --ifaddr values and checks they fit the target's address family.
pub fn parse_ifaddrs(list: &[String], target: SocketAddr) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("--ifaddr: '{s}' is not an IP address"))?;
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(format!(
                "--ifaddr {ip} is not of the same address family as the target {target}"
            ));
        }
        out.push(ip);
    }
    Ok(out)
}

/// Options of one run that are not part of the plan.
#[derive(Debug, Clone, Default)]
pub struct RunOpts {
    pub progress: bool,
    pub broker_pid: Option<u32>,
    pub ifaddrs: Vec<IpAddr>,
    pub nofile: Option<(u64, u64)>,
}

/// A run could not produce a report (e.g. the broker is unreachable).
#[derive(Debug)]
pub struct Fatal(pub String);

/// Executes a plan against `target`.
pub async fn execute(
    plan: Plan,
    target: SocketAddr,
    opts: RunOpts,
    mut interrupt: watch::Receiver<bool>,
) -> Result<Report, Fatal> {
    let wall0 = Instant::now();
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let cpu0 = stats::cpu_times(None);
    let bcpu0 = opts.broker_pid.and_then(|p| stats::cpu_times(Some(p)));
    let sh = Arc::new(Shared {
        clock: Clock::new(),
        cfg: plan.cfg.clone(),
        target,
        ifaddrs: opts.ifaddrs.clone(),
        hists: Hists::default(),
        counters: Default::default(),
        errors: Mutex::new(BTreeMap::new()),
        first_error: Mutex::new(None),
        budget: plan.msg_limit.map(AtomicU64::new),
        nofile: opts.nofile,
        os_limit_warned: Default::default(),
    });
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
    let cpu1 = stats::cpu_times(None);
    let bcpu1 = opts.broker_pid.and_then(|p| stats::cpu_times(Some(p)));

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
    let hist = |h: &stats::SharedHist| LatencySummary::from_hist(&h.snapshot());
    let latency = Latencies {
        connack: hist(&sh.hists.connack),
        suback: hist(&sh.hists.suback),
        puback: hist(&sh.hists.puback),
        e2e: hist(&sh.hists.e2e),
        rtt: hist(&sh.hists.rtt),
        send_lag: hist(&sh.hists.send_lag),
    };
    let handled = m.sent + m.received + m.requests_received;
    let cpu_report = |pid, a, b| CpuReport::between(pid, a, b, wall_s, handled, Some(m.received));
    let generator = cpu_report(None, cpu0, cpu1);
    let broker = opts.broker_pid.map(|p| cpu_report(Some(p), bcpu0, bcpu1));
    if opts.broker_pid.is_some() && (bcpu0.is_none() || bcpu1.is_none()) {
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
        cpu: report::Cpu { generator, broker },
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

/// Publisher `i` of `np` whose messages are checked against the expected-count table; phases are
/// spread evenly so the publishers do not fire in step.
fn table_publisher(i: usize, np: usize, topic: TopicGen, pace: &Pace) -> PubSpec {
    PubSpec {
        publisher_id: i as u32,
        topic,
        pace: pace.clone(),
        phase: i as f64 / np.max(1) as f64,
        response_topic: None,
        expect: Expect::Table,
    }
}
