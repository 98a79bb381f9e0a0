//! One MQTT connection: connect, subscribe, publish on schedule, receive.
//!
//! Each connection is one tokio task. Outgoing packets (publishes, acks,
//! echoes, pings) are accumulated in one buffer and written with a single
//! `write_all`; incoming bytes are read into a 64 KiB buffer and decoded
//! incrementally in place.

use crate::mqtt::codec::{self, ConnectOpts, Packet, PubProps, Publish, kind};
use crate::payload::{self, Clock, Rng, TopicGen};
use crate::report::stats::{Counters, Hists, LatBuf, lock};
use crate::report::track::{MAX_PUBLISHERS, SubTracker};
use crate::sched::{OpenLoop, Pace};
use bytes::{Buf, BytesMut};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

const READ_CHUNK: usize = 64 * 1024;
/// How early an open-loop publisher may send: tokio timers have 1 ms
/// granularity and fire 1-2 ms after the requested time.
const SEND_SLACK_NS: u64 = 2_000_000;

/// Connection settings common to all clients of a run.
#[derive(Debug, Clone)]
pub struct ClientCfg {
    pub level: u8,
    pub keep_alive: u16,
    pub clean: bool,
    pub session_expiry: Option<u32>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub qos: u8,
    pub retain: bool,
    pub size: usize,
    pub inflight: usize,
    pub batch: usize,
    pub connect_timeout: Duration,
    /// pause after each read (slow consumer simulation)
    pub sub_delay: Option<Duration>,
    /// accept messages stamped before this run started (standalone `sub`)
    pub accept_old: bool,
}

/// State shared by all connection tasks of a run.
pub struct Shared {
    pub clock: Clock,
    pub cfg: ClientCfg,
    pub target: SocketAddr,
    pub ifaddrs: Vec<IpAddr>,
    pub hists: Hists,
    pub counters: Counters,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub first_error: Mutex<Option<String>>,
    /// remaining messages of a global `-L` limit
    pub budget: Option<AtomicU64>,
    pub nofile: Option<(u64, u64)>,
    pub os_limit_warned: AtomicBool,
}

impl Shared {
    /// Counts an error by category and remembers the first full message.
    pub fn record_error(&self, key: String, full: String) {
        *lock(&self.errors).entry(key).or_insert(0) += 1;
        let mut f = lock(&self.first_error);
        if f.is_none() {
            *f = Some(full);
        }
    }

    fn reserve(&self, n: u64) -> u64 {
        let Some(b) = &self.budget else { return n };
        match b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
            if r == 0 { None } else { Some(r - r.min(n)) }
        }) {
            Ok(prev) => prev.min(n),
            Err(_) => 0,
        }
    }
}

/// Start signal for publishers.
#[derive(Debug)]
pub struct Go {
    pub start_ns: u64,
    pub deadline_ns: u64,
    pub table: SubTable,
}

/// The subscriptions that succeeded, used to compute how many deliveries
/// each published message should produce.
#[derive(Debug, Default, Clone)]
pub struct SubTable {
    /// (filter, number of non-shared subscriptions with that filter)
    plain: Vec<(String, u64)>,
    /// (group, filters of its members)
    groups: Vec<(String, Vec<String>)>,
}

impl SubTable {
    pub fn new(subs: &[(String, Option<String>)]) -> Self {
        let mut plain: BTreeMap<&str, u64> = BTreeMap::new();
        let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (f, g) in subs {
            match g {
                None => *plain.entry(f.as_str()).or_insert(0) += 1,
                Some(g) => {
                    // match on the filter inside $share/{group}/{filter}
                    let inner = payload::split_shared(f).map_or(f.as_str(), |(_, inner)| inner);
                    let v = groups.entry(g.as_str()).or_default();
                    if !v.iter().any(|x| x == inner) {
                        v.push(inner.to_string());
                    }
                }
            }
        }
        SubTable {
            plain: plain.into_iter().map(|(f, n)| (f.to_string(), n)).collect(),
            groups: groups
                .into_iter()
                .map(|(g, f)| (g.to_string(), f))
                .collect(),
        }
    }

    /// Deliveries expected for one message on `topic`: one per matching
    /// plain subscription plus one per shared group with a matching filter.
    pub fn factor(&self, topic: &str) -> u64 {
        let plain: u64 = self
            .plain
            .iter()
            .filter(|(f, _)| payload::topic_matches(f, topic))
            .map(|(_, n)| n)
            .sum();
        let groups = self
            .groups
            .iter()
            .filter(|(_, fs)| fs.iter().any(|f| payload::topic_matches(f, topic)))
            .count() as u64;
        plain + groups
    }
}

/// How a publisher works out the deliveries it should cause.
#[derive(Debug, Clone)]
pub enum Expect {
    /// from the subscription table
    Table,
    /// a fixed number per message (p2p: one response per request)
    Fixed(u64),
}

/// What a publisher does.
#[derive(Debug, Clone)]
pub struct PubSpec {
    pub publisher_id: u32,
    pub topic: TopicGen,
    pub pace: Pace,
    pub phase: f64,
    pub response_topic: Option<String>,
    pub expect: Expect,
}

/// One connection's job.
#[derive(Debug)]
pub struct ClientSpec {
    pub index: usize,
    pub client_id: String,
    pub subscribe: Vec<String>,
    /// shared-subscription group name of the filters, if any
    pub group: Option<String>,
    pub tracker: Option<SubTracker>,
    pub publish: Option<PubSpec>,
    pub responder: bool,
    /// incoming tracked messages are responses: record round-trip latency
    pub rtt: bool,
}

/// Setup outcome sent to the orchestrator.
#[derive(Debug)]
pub struct Ready {
    pub publisher: bool,
    pub result: Result<Vec<(String, Option<String>)>, String>,
}

/// What a connection task reports when it ends.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub connected: bool,
    pub sent: u64,
    pub acked: u64,
    pub pub_failed: u64,
    pub unacked: u64,
    pub expected: u64,
    pub received: u64,
    pub foreign: u64,
    pub requests_received: u64,
    pub tracker: Option<SubTracker>,
    pub error: Option<String>,
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum ConnError {
    Io(&'static str, io::Error),
    Timeout(&'static str),
    Rejected(u8, String),
    Protocol(String),
    Stopped,
}

impl ConnError {
    /// OS resource limits: out of file descriptors or local ports.
    pub fn os_limit(&self) -> Option<&'static str> {
        if let ConnError::Io(_, e) = self {
            match e.raw_os_error() {
                Some(libc::EMFILE) => return Some("EMFILE"),
                Some(libc::ENFILE) => return Some("ENFILE"),
                Some(libc::EADDRNOTAVAIL) => return Some("EADDRNOTAVAIL"),
                Some(libc::EADDRINUSE) => return Some("EADDRINUSE"),
                _ => {}
            }
        }
        None
    }

    /// Short category used to count errors.
    pub fn key(&self) -> String {
        match self {
            ConnError::Io(stage, e) => match self.os_limit() {
                Some(l) => format!("{stage}: {l} (OS limit)"),
                None => format!("{stage}: {}", io_kind(e)),
            },
            ConnError::Timeout(stage) => format!("{stage}: timed out"),
            ConnError::Rejected(code, reason) => format!("CONNACK rejected: 0x{code:02x} {reason}"),
            ConnError::Protocol(m) => format!("protocol: {m}"),
            ConnError::Stopped => "stopped before connected".into(),
        }
    }
}

fn io_kind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => {
            // "Connection refused (os error 111)" -> "Connection refused"
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
        None => format!("{:?}", e.kind()),
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(_, e) => write!(f, "{e}"),
            ConnError::Timeout(stage) => write!(f, "{stage} timed out"),
            ConnError::Rejected(code, reason) => {
                write!(f, "broker rejected CONNECT: {reason} (0x{code:02x})")
            }
            ConnError::Protocol(m) => write!(f, "protocol error: {m}"),
            ConnError::Stopped => write!(f, "stopped"),
        }
    }
}

struct Opened {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rbuf: BytesMut,
    v5: bool,
    recv_max: usize,
    keep_alive: u16,
    max_qos: u8,
    max_packet: Option<u32>,
}

async fn open(sh: &Shared, index: usize, client_id: &str) -> Result<Opened, ConnError> {
    let cfg = &sh.cfg;
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::from_std(t0 + cfg.connect_timeout);
    let sock = if sh.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ConnError::Io("socket", e))?;
    if !sh.ifaddrs.is_empty() {
        let ip = sh.ifaddrs[index % sh.ifaddrs.len()];
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|e| ConnError::Io("bind", e))?;
    }
    let stream = tokio::time::timeout_at(deadline, sock.connect(sh.target))
        .await
        .map_err(|_| ConnError::Timeout("TCP connect"))?
        .map_err(|e| ConnError::Io("connect", e))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let v5 = cfg.level == codec::LEVEL_V5;
    let mut wbuf = BytesMut::with_capacity(256);
    codec::encode_connect(
        &mut wbuf,
        &ConnectOpts {
            level: cfg.level,
            client_id,
            keep_alive: cfg.keep_alive,
            clean: cfg.clean,
            username: cfg.username.as_deref(),
            password: cfg.password.as_deref().map(str::as_bytes),
            session_expiry: if v5 { cfg.session_expiry } else { None },
            receive_maximum: None,
        },
    );
    tokio::time::timeout_at(deadline, wr.write_all(&wbuf))
        .await
        .map_err(|_| ConnError::Timeout("CONNECT write"))?
        .map_err(|e| ConnError::Io("CONNECT write", e))?;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let decoded = codec::decode(&rbuf, v5).map_err(|e| ConnError::Protocol(e.to_string()))?;
        if let Some((pkt, n)) = decoded {
            let Packet::ConnAck { code, props, .. } = pkt else {
                return Err(ConnError::Protocol(format!(
                    "expected CONNACK, got {pkt:?}"
                )));
            };
            if code != 0 {
                let mut reason = codec::connack_reason(code, v5).to_string();
                if let Some(r) = props.reason_string {
                    reason = format!("{reason}: {r}");
                }
                return Err(ConnError::Rejected(code, reason));
            }
            rbuf.advance(n);
            sh.hists.connack.record(t0.elapsed().as_nanos() as u64);
            return Ok(Opened {
                rd,
                wr,
                rbuf,
                v5,
                recv_max: props.receive_maximum.map_or(65_535, |r| r as usize),
                keep_alive: props.server_keep_alive.unwrap_or(cfg.keep_alive),
                max_qos: props.maximum_qos.unwrap_or(2),
                max_packet: props.maximum_packet_size,
            });
        }
        let n = tokio::time::timeout_at(deadline, rd.read_buf(&mut rbuf))
            .await
            .map_err(|_| ConnError::Timeout("waiting for CONNACK"))?
            .map_err(|e| ConnError::Io("reading CONNACK", e))?;
        if n == 0 {
            return Err(ConnError::Protocol(
                "broker closed the connection before CONNACK".into(),
            ));
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Inflight {
    sent_ns: u64,
    own: bool,
}

struct Echo {
    topic: Vec<u8>,
    corr: Option<Vec<u8>>,
    payload: Vec<u8>,
}

struct PubState {
    id: u32,
    topic: TopicGen,
    pace: Pace,
    phase: f64,
    sched: Option<OpenLoop>,
    deadline_ns: u64,
    started: bool,
    finished: bool,
    done_reported: bool,
    seq: u64,
    response_topic: Option<Vec<u8>>,
    expect: Expect,
    table: Option<Arc<Go>>,
    factor_cache: HashMap<Vec<u8>, u64>,
    /// the factor when the topic does not vary per message
    fixed_factor: Option<u64>,
}

/// When the loop should wake up next for publishing.
enum Wake {
    /// more can be sent right away (closed loop)
    Now,
    At(u64),
    Idle,
}

struct Client {
    sh: Arc<Shared>,
    v5: bool,
    qos: u8,
    window: usize,
    next_pid: u16,
    inflight: HashMap<u16, Inflight>,
    qos2_in: HashSet<u16>,
    tracker: Option<SubTracker>,
    rtt_mode: bool,
    responder: bool,
    echo_queue: VecDeque<Echo>,
    publ: Option<PubState>,
    e2e: LatBuf,
    rtt: LatBuf,
    puback: LatBuf,
    send_lag: LatBuf,
    rng: Rng,
    st: ClientStats,
    pending_sent: u64,
    pending_expected: u64,
    suback: Option<(u16, Vec<u8>)>,
    min_ts: u64,
}

impl Client {
    fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            if self.next_pid == 0 {
                self.next_pid = 1;
            }
            if !self.inflight.contains_key(&self.next_pid) {
                return self.next_pid;
            }
        }
    }

    fn room(&self) -> usize {
        if self.qos == 0 {
            usize::MAX
        } else {
            self.window.saturating_sub(self.inflight.len())
        }
    }

    fn start(&mut self, go: &Arc<Go>) {
        if let Some(p) = &mut self.publ {
            if p.started {
                return;
            }
            p.started = true;
            p.deadline_ns = go.deadline_ns;
            p.sched = match p.pace {
                Pace::Open { rate } => Some(OpenLoop::new(go.start_ns, rate, p.phase)),
                Pace::Closed => None,
            };
            p.table = Some(go.clone());
            if let Some(t) = p.topic.fixed() {
                let t = t.to_vec();
                p.fixed_factor = Some(Self::factor(&p.expect, &mut p.factor_cache, &p.table, &t));
            }
        }
    }

    /// Deliveries one message on `topic` should cause (see [`Expect`]).
    fn factor(
        expect: &Expect,
        cache: &mut HashMap<Vec<u8>, u64>,
        go: &Option<Arc<Go>>,
        topic: &[u8],
    ) -> u64 {
        match expect {
            Expect::Fixed(n) => *n,
            Expect::Table => {
                if let Some(&f) = cache.get(topic) {
                    return f;
                }
                let f = go
                    .as_ref()
                    .map_or(0, |g| g.table.factor(&String::from_utf8_lossy(topic)));
                if cache.len() < 100_000 {
                    cache.insert(topic.to_vec(), f);
                }
                f
            }
        }
    }

    /// Encodes queued echoes and due publishes into `wbuf`.
    fn produce(&mut self, now_ns: u64, wbuf: &mut BytesMut) -> Wake {
        // responses first: they are already late
        while !self.echo_queue.is_empty() && self.room() > 0 {
            if let Some(e) = self.echo_queue.pop_front() {
                self.encode_echo(now_ns, &e.topic, e.corr.as_deref(), &e.payload, wbuf);
            }
        }
        let batch = self.sh.cfg.batch;
        let size = self.sh.cfg.size;
        let retain = self.sh.cfg.retain;
        let room = self.room();
        let Some(p) = self.publ.as_mut() else {
            return Wake::Idle;
        };
        if !p.started || p.finished {
            return Wake::Idle;
        }
        if now_ns >= p.deadline_ns {
            p.finished = true;
            return Wake::Idle;
        }
        if room == 0 {
            return Wake::Idle;
        }
        // Open loop: tokio timers have 1 ms granularity, so wake up to
        // SEND_SLACK_NS early and send what is due by then. A message sent
        // early is stamped with its actual send time, a late one with its
        // scheduled time, so the stamp is never after the real send.
        let want = match &p.sched {
            Some(s) => {
                if s.next_due_ns() >= p.deadline_ns {
                    p.finished = true;
                    return Wake::Idle;
                }
                let horizon = (now_ns + SEND_SLACK_NS).min(p.deadline_ns - 1);
                s.due(horizon) as usize
            }
            None => batch,
        };
        let n = want.min(room).min(batch);
        if n == 0 {
            return match &p.sched {
                Some(s) => Wake::At(
                    s.next_due_ns()
                        .saturating_sub(SEND_SLACK_NS)
                        .min(p.deadline_ns),
                ),
                None => Wake::Idle,
            };
        }
        let n = self.sh.reserve(n as u64) as usize;
        if n == 0 {
            p.finished = true;
            return Wake::Idle;
        }
        let v5 = self.v5;
        let qos = self.qos;
        for _ in 0..n {
            let ts = match &mut p.sched {
                Some(s) => {
                    let t = s.take().min(now_ns);
                    self.send_lag.record(now_ns - t);
                    t
                }
                None => now_ns,
            };
            let seq = p.seq;
            p.seq += 1;
            let pid = if qos > 0 {
                // inline alloc_pid (self.publ is borrowed)
                loop {
                    self.next_pid = self.next_pid.wrapping_add(1);
                    if self.next_pid == 0 {
                        self.next_pid = 1;
                    }
                    if !self.inflight.contains_key(&self.next_pid) {
                        break;
                    }
                }
                self.inflight.insert(
                    self.next_pid,
                    Inflight {
                        sent_ns: now_ns,
                        own: true,
                    },
                );
                self.next_pid
            } else {
                0
            };
            let id = p.id;
            let topic = p.topic.topic(seq, &mut self.rng);
            let f = match p.fixed_factor {
                Some(f) => f,
                None => Self::factor(&p.expect, &mut p.factor_cache, &p.table, topic),
            };
            let corr = seq.to_be_bytes();
            let props = PubProps {
                response_topic: p.response_topic.as_deref(),
                correlation_data: if p.response_topic.is_some() {
                    Some(&corr)
                } else {
                    None
                },
                topic_alias: None,
            };
            codec::encode_publish_with(
                wbuf,
                v5,
                topic,
                qos,
                retain,
                false,
                pid,
                &props,
                size,
                |b| payload::put_payload(b, size, ts, id, seq),
            );
            self.pending_sent += 1;
            self.pending_expected += f;
        }
        let more = qos == 0 || self.inflight.len() < self.window;
        match (&p.sched, more) {
            (_, false) => Wake::Idle,
            (Some(s), true) => Wake::At(
                s.next_due_ns()
                    .saturating_sub(SEND_SLACK_NS)
                    .min(p.deadline_ns),
            ),
            (None, true) => Wake::Now,
        }
    }

    fn encode_echo(
        &mut self,
        now_ns: u64,
        topic: &[u8],
        corr: Option<&[u8]>,
        payload: &[u8],
        wbuf: &mut BytesMut,
    ) {
        let pid = if self.qos > 0 {
            let pid = self.alloc_pid();
            self.inflight.insert(
                pid,
                Inflight {
                    sent_ns: now_ns,
                    own: false,
                },
            );
            pid
        } else {
            0
        };
        let p = Publish {
            dup: false,
            qos: self.qos,
            retain: false,
            topic,
            pid,
            props: PubProps {
                response_topic: None,
                correlation_data: corr,
                topic_alias: None,
            },
            payload,
        };
        codec::encode_publish(wbuf, self.v5, &p);
    }

    /// Commits counts of publishes that were just written.
    fn commit_written(&mut self) {
        let c = &self.sh.counters;
        Counters::add(&c.sent, self.pending_sent);
        Counters::add(&c.expected, self.pending_expected);
        self.st.sent += self.pending_sent;
        self.st.expected += self.pending_expected;
        self.pending_sent = 0;
        self.pending_expected = 0;
    }

    /// Tells the orchestrator once that this publisher is done (finished
    /// publishing and every QoS 1/2 publish was acknowledged).
    fn check_done(&mut self) {
        let inflight_empty = self.inflight.values().all(|i| !i.own);
        if let Some(p) = &mut self.publ
            && p.finished
            && !p.done_reported
            && inflight_empty
        {
            p.done_reported = true;
            self.sh.counters.pubs_active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn abandon(&mut self) {
        if let Some(p) = &mut self.publ {
            p.finished = true;
            if p.started && !p.done_reported {
                p.done_reported = true;
                self.sh.counters.pubs_active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Decodes every complete packet in `rbuf`.
    fn process(&mut self, rbuf: &mut BytesMut, wbuf: &mut BytesMut) -> Result<(), String> {
        let now_ns = self.sh.clock.now_ns();
        let mut off = 0;
        let mut received = 0u64;
        while let Some((pkt, n)) =
            codec::decode(&rbuf[off..], self.v5).map_err(|e| e.to_string())?
        {
            off += n;
            match pkt {
                Packet::Publish(p) => {
                    if self.on_publish(&p, now_ns, wbuf) {
                        received += 1;
                    }
                }
                Packet::PubAck { pid, reason } => self.on_ack(pid, reason, now_ns),
                Packet::PubRec { pid, reason } => {
                    if reason >= 0x80 {
                        self.on_ack(pid, reason, now_ns);
                    } else {
                        codec::encode_ack(wbuf, kind::PUBREL, pid);
                    }
                }
                Packet::PubComp { pid, reason } => self.on_ack(pid, reason, now_ns),
                Packet::PubRel { pid, .. } => {
                    self.qos2_in.remove(&pid);
                    codec::encode_ack(wbuf, kind::PUBCOMP, pid);
                }
                Packet::SubAck { pid, codes } => self.suback = Some((pid, codes.to_vec())),
                Packet::PingResp | Packet::PingReq | Packet::UnsubAck { .. } => {}
                Packet::Disconnect { reason } => {
                    return Err(format!(
                        "broker sent DISCONNECT: reason 0x{reason:02x} ({})",
                        codec::connack_reason(reason, true)
                    ));
                }
                Packet::ConnAck { .. } => return Err("unexpected second CONNACK".into()),
                Packet::Other { kind } => {
                    return Err(format!("unexpected packet type {kind} from broker"));
                }
            }
        }
        rbuf.advance(off);
        if let Some(t) = &mut self.tracker {
            t.flush();
        }
        if received > 0 {
            Counters::add(&self.sh.counters.received, received);
            self.sh
                .counters
                .last_received_ns
                .fetch_max(now_ns, Ordering::Relaxed);
        }
        Ok(())
    }

    fn on_ack(&mut self, pid: u16, reason: u8, now_ns: u64) {
        if let Some(e) = self.inflight.remove(&pid)
            && e.own
        {
            if reason >= 0x80 {
                self.st.pub_failed += 1;
                Counters::add(&self.sh.counters.pub_failed, 1);
            } else {
                self.st.acked += 1;
                Counters::add(&self.sh.counters.acked, 1);
                self.puback.record(now_ns.saturating_sub(e.sent_ns));
            }
        }
    }

    /// Handles an incoming PUBLISH; returns true if it counts as received.
    fn on_publish(&mut self, p: &Publish<'_>, now_ns: u64, wbuf: &mut BytesMut) -> bool {
        match p.qos {
            1 => codec::encode_ack(wbuf, kind::PUBACK, p.pid),
            2 => {
                codec::encode_ack(wbuf, kind::PUBREC, p.pid);
                if !self.qos2_in.insert(p.pid) {
                    // redelivery of a QoS 2 message we already have
                    return false;
                }
            }
            _ => {}
        }
        if self.responder
            && let Some(rt) = p.props.response_topic
        {
            self.st.requests_received += 1;
            Counters::add(&self.sh.counters.requests_received, 1);
            if let Some(h) = payload::read_header(p.payload) {
                self.e2e.record(now_ns.saturating_sub(h.ts_ns));
            }
            if self.room() > 0 {
                self.encode_echo(now_ns, rt, p.props.correlation_data, p.payload, wbuf);
            } else {
                self.echo_queue.push_back(Echo {
                    topic: rt.to_vec(),
                    corr: p.props.correlation_data.map(<[u8]>::to_vec),
                    payload: p.payload.to_vec(),
                });
            }
            return false;
        }
        let Some(t) = &mut self.tracker else {
            return false;
        };
        match payload::read_header(p.payload) {
            Some(h)
                if h.publisher < MAX_PUBLISHERS
                    && h.ts_ns >= self.min_ts
                    && h.ts_ns <= now_ns + 60_000_000_000 =>
            {
                t.push(h.publisher, h.seq);
                self.st.received += 1;
                let lat = now_ns.saturating_sub(h.ts_ns);
                if self.rtt_mode {
                    self.rtt.record(lat);
                } else {
                    self.e2e.record(lat);
                }
                true
            }
            _ => {
                self.st.foreign += 1;
                false
            }
        }
    }
}

/// Runs one connection from connect to disconnect.
pub async fn client_task(
    sh: Arc<Shared>,
    spec: ClientSpec,
    ready: mpsc::UnboundedSender<Ready>,
    mut go: watch::Receiver<Option<Arc<Go>>>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let is_pub = spec.publish.is_some();
    let fail = |sh: &Shared, e: ConnError, stats: ClientStats| {
        let full = match &e {
            ConnError::Io("connect", _) | ConnError::Timeout("TCP connect") => {
                format!("cannot connect to {}: {e}", sh.target)
            }
            _ => format!("{} ({}): {e}", sh.target, spec.client_id),
        };
        // record before reporting, so the orchestrator sees the full message
        if !matches!(e, ConnError::Stopped) {
            Counters::add(&sh.counters.conn_failed, 1);
            if let Some(l) = e.os_limit() {
                sh.counters.os_limit_hit.store(true, Ordering::Relaxed);
                if !sh.os_limit_warned.swap(true, Ordering::Relaxed) {
                    eprintln!("warning: {}", os_limit_advice(l, sh));
                }
            }
            sh.record_error(e.key(), full.clone());
        }
        let _ = ready.send(Ready {
            publisher: is_pub,
            result: Err(full),
        });
        stats
    };
    let mut stats = ClientStats::default();
    let opened = tokio::select! {
        biased;
        _ = stop.changed() => Err(ConnError::Stopped),
        r = open(&sh, spec.index, &spec.client_id) => r,
    };
    let o = match opened {
        Ok(o) => o,
        Err(e) => {
            stats.tracker = spec.tracker;
            return fail(&sh, e, stats);
        }
    };
    stats.connected = true;
    Counters::add(&sh.counters.connected, 1);
    if sh.cfg.qos > o.max_qos && (is_pub || !spec.subscribe.is_empty()) {
        let e = ConnError::Protocol(format!(
            "broker supports at most QoS {}, asked for {}",
            o.max_qos, sh.cfg.qos
        ));
        return fail(&sh, e, stats);
    }
    if let (Some(maxp), Some(p)) = (o.max_packet, &spec.publish) {
        let tlen = p.topic.fixed().map_or(64, <[u8]>::len);
        if codec::publish_size(o.v5, tlen, sh.cfg.qos, &PubProps::default(), sh.cfg.size) + 32
            > maxp as usize
        {
            let e = ConnError::Protocol(format!(
                "broker maximum packet size is {maxp} bytes, too small for -s {}",
                sh.cfg.size
            ));
            return fail(&sh, e, stats);
        }
    }
    let Opened {
        mut rd,
        mut wr,
        mut rbuf,
        v5,
        recv_max,
        keep_alive,
        ..
    } = o;
    let mut cl = Client {
        sh: sh.clone(),
        v5,
        qos: sh.cfg.qos,
        window: sh.cfg.inflight.min(recv_max).clamp(1, 65_535),
        next_pid: 0,
        inflight: HashMap::new(),
        qos2_in: HashSet::new(),
        tracker: spec.tracker,
        rtt_mode: spec.rtt,
        responder: spec.responder,
        echo_queue: VecDeque::new(),
        publ: spec.publish.map(|p| PubState {
            id: p.publisher_id,
            topic: p.topic,
            pace: p.pace,
            phase: p.phase,
            sched: None,
            deadline_ns: 0,
            started: false,
            finished: false,
            done_reported: false,
            seq: 0,
            response_topic: p.response_topic.map(String::into_bytes),
            expect: p.expect,
            table: None,
            factor_cache: HashMap::new(),
            fixed_factor: None,
        }),
        e2e: sh.hists.e2e.recorder(),
        rtt: sh.hists.rtt.recorder(),
        puback: sh.hists.puback.recorder(),
        send_lag: sh.hists.send_lag.recorder(),
        rng: Rng::new(spec.index as u64 ^ sh.clock.start_ns()),
        st: stats,
        pending_sent: 0,
        pending_expected: 0,
        suback: None,
        min_ts: if sh.cfg.accept_old {
            0
        } else {
            sh.clock.start_ns()
        },
    };
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let ka = if keep_alive > 0 {
        Some(Duration::from_millis(keep_alive as u64 * 750))
    } else {
        None
    };

    // subscribe and wait for SUBACK
    if !spec.subscribe.is_empty() {
        let pid = cl.alloc_pid();
        let filters: Vec<(&str, u8)> = spec
            .subscribe
            .iter()
            .map(|f| (f.as_str(), sh.cfg.qos))
            .collect();
        codec::encode_subscribe(&mut wbuf, v5, pid, &filters);
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::from_std(t0 + sh.cfg.connect_timeout);
        let res: Result<(), ConnError> = async {
            wr.write_all(&wbuf)
                .await
                .map_err(|e| ConnError::Io("SUBSCRIBE write", e))?;
            wbuf.clear();
            loop {
                cl.process(&mut rbuf, &mut wbuf)
                    .map_err(ConnError::Protocol)?;
                if let Some((got, codes)) = cl.suback.take()
                    && got == pid
                {
                    sh.hists.suback.record(t0.elapsed().as_nanos() as u64);
                    if let Some(c) = codes.iter().find(|&&c| c >= 0x80) {
                        return Err(ConnError::Protocol(format!(
                            "SUBSCRIBE {:?} refused with code 0x{c:02x}",
                            spec.subscribe
                        )));
                    }
                    return Ok(());
                }
                if !wbuf.is_empty() {
                    wr.write_all(&wbuf)
                        .await
                        .map_err(|e| ConnError::Io("write", e))?;
                    wbuf.clear();
                }
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
                let n = tokio::select! {
                    biased;
                    _ = stop.changed() => return Err(ConnError::Stopped),
                    r = tokio::time::timeout_at(deadline, rd.read_buf(&mut rbuf)) => r
                        .map_err(|_| ConnError::Timeout("waiting for SUBACK"))?
                        .map_err(|e| ConnError::Io("reading SUBACK", e))?,
                };
                if n == 0 {
                    return Err(ConnError::Protocol(
                        "broker closed the connection before SUBACK".into(),
                    ));
                }
            }
        }
        .await;
        if let Err(e) = res {
            let mut st = std::mem::take(&mut cl.st);
            st.tracker = cl.tracker.take();
            return fail(&sh, e, st);
        }
    }
    let subs = spec
        .subscribe
        .iter()
        .map(|f| (f.clone(), spec.group.clone()))
        .collect();
    let _ = ready.send(Ready {
        publisher: is_pub,
        result: Ok(subs),
    });

    let mut last_write = Instant::now();
    let result: Result<(), String> = async {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let waiting_for_go = cl.publ.as_ref().is_some_and(|p| !p.started);
            if waiting_for_go {
                let g = go.borrow().clone();
                if let Some(g) = g {
                    cl.start(&g);
                }
            }
            let now_ns = sh.clock.now_ns();
            let wake = cl.produce(now_ns, &mut wbuf);
            cl.check_done();
            if let Some(k) = ka
                && wbuf.is_empty()
                && last_write.elapsed() >= k
            {
                codec::encode_pingreq(&mut wbuf);
            }
            if !wbuf.is_empty() {
                tokio::select! {
                    biased;
                    _ = stop.changed() => return Ok(()),
                    r = wr.write_all(&wbuf) => r.map_err(|e| format!("write failed: {e}"))?,
                }
                cl.commit_written();
                wbuf.clear();
                last_write = Instant::now();
            }
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK);
            }
            if let Wake::Now = wake {
                // closed loop: pick up whatever arrived without blocking
                loop {
                    match rd.try_read_buf(&mut rbuf) {
                        Ok(0) => return Err("broker closed the connection".into()),
                        Ok(_) => {
                            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("read failed: {e}")),
                    }
                }
                cl.process(&mut rbuf, &mut wbuf)?;
                tokio::task::yield_now().await;
                continue;
            }
            let mut wake_at: Option<Instant> = match wake {
                Wake::At(ns) => Some(sh.clock.instant_at(ns)),
                _ => None,
            };
            if let Some(p) = &cl.publ
                && p.started
                && !p.finished
            {
                let d = sh.clock.instant_at(p.deadline_ns);
                wake_at = Some(wake_at.map_or(d, |w| w.min(d)));
            }
            if let Some(k) = ka {
                let t = last_write + k;
                wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
            }
            let sleep_to = tokio::time::Instant::from_std(
                wake_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                _ = go.changed(), if waiting_for_go => {}
                r = rd.read_buf(&mut rbuf) => {
                    let n = r.map_err(|e| format!("read failed: {e}"))?;
                    if n == 0 {
                        return Err("broker closed the connection".into());
                    }
                    cl.process(&mut rbuf, &mut wbuf)?;
                    if let (Some(d), true) = (sh.cfg.sub_delay, cl.tracker.is_some()) {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return Ok(()),
                            _ = tokio::time::sleep(d) => {}
                        }
                    }
                }
                _ = tokio::time::sleep_until(sleep_to) => {}
            }
        }
    }
    .await;

    cl.abandon();
    if let Err(e) = &result {
        Counters::add(&sh.counters.disconnected, 1);
        sh.record_error(
            format!("connection lost: {}", short(e)),
            format!("{}: {e}", spec.client_id),
        );
        cl.st.error = Some(e.clone());
    } else {
        // polite DISCONNECT, bounded in time
        let mut b = BytesMut::new();
        codec::encode_disconnect(&mut b);
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            wr.write_all(&b).await?;
            wr.shutdown().await
        })
        .await;
    }
    if let Some(t) = &mut cl.tracker {
        t.flush();
    }
    cl.e2e.flush();
    cl.rtt.flush();
    cl.puback.flush();
    cl.send_lag.flush();
    let mut st = std::mem::take(&mut cl.st);
    st.unacked = cl.inflight.values().filter(|i| i.own).count() as u64;
    st.tracker = cl.tracker.take();
    st
}

fn short(e: &str) -> String {
    // group errors by their text without details after the first ':'
    match e.split_once(": ") {
        Some((head, _)) if head.len() > 8 => head.to_string(),
        _ => e.to_string(),
    }
}

/// Advice printed when an OS limit stops new connections.
pub fn os_limit_advice(errno_name: &str, sh: &Shared) -> String {
    match errno_name {
        "EMFILE" | "ENFILE" => {
            let lim = sh
                .nofile
                .map(|(s, h)| format!(" (RLIMIT_NOFILE soft {s}, hard {h})"))
                .unwrap_or_default();
            format!(
                "the OS limit on open files stopped new connections ({errno_name}){lim}; raise it with `ulimit -n` (hard limit) or fs.file-max / fs.nr_open"
            )
        }
        _ => format!(
            "the OS ran out of local ports/addresses for {} ({errno_name}); add source addresses with --ifaddr 127.0.0.1,127.0.0.2,... (one ephemeral port range per address) or widen net.ipv4.ip_local_port_range",
            sh.target
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_table_factors() {
        let subs = vec![
            ("bench/#".to_string(), None),
            ("bench/#".to_string(), None),
            ("bench/1".to_string(), None),
            ("$share/g/bench/#".to_string(), Some("g".to_string())),
            ("$share/g/bench/#".to_string(), Some("g".to_string())),
            ("$share/h/other/#".to_string(), Some("h".to_string())),
        ];
        let t = SubTable::new(&subs);
        assert_eq!(t.factor("bench/1"), 4); // 2 + 1 plain, 1 group
        assert_eq!(t.factor("bench/2"), 3);
        assert_eq!(t.factor("other/x"), 1);
        assert_eq!(t.factor("none"), 0);
    }
}
