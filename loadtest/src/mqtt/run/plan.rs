//! Building a [`Plan`] from the command line: who connects, who subscribes to which filters,
//! who publishes where and at what pace, and how many deliveries each publish should produce.
//! Pure: no socket, no clock; every refusal is a message naming the flag.

use crate::cli::{Args, parse_duration};
use crate::mqtt::client::{ClientCfg, ClientSpec, Expect, PubSpec};
use crate::mqtt::codec;
use crate::mqtt::payload::{self, ClientVars, Rng, TopicGen};
use crate::report::Clients;
use crate::report::track::{Dedup, DedupRef, SubTracker};
use crate::sched::{Pace, per_publisher_rate};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

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
    if args.outstanding > 0 && !args.max_rate {
        return Err("--outstanding bounds the closed loop: it needs --max-rate".into());
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
        outstanding: args.outstanding,
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
