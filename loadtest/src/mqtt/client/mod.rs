//! One MQTT connection: connect, subscribe, publish on schedule, receive.
//!
//! Each connection is one tokio task. Outgoing packets (publishes, acks,
//! echoes, pings) are accumulated in one buffer and written with a single
//! `write_all`; incoming bytes are read into a 64 KiB buffer and decoded
//! incrementally in place.
//!
//! - This module: the configuration and specs a plan hands each connection, the state shared
//!   by all of them (counters, histograms, the expected-deliveries table), connection errors.
//! - `state`: the protocol state machine of one connection (pure: no I/O, no awaits).
//! - `task`: the socket, the handshake and the read/write loop around that state.
//!
//! A connection never decides the plan (who publishes what is `run`'s) and never formats
//! results; it only counts into the shared counters and histograms.

mod state;
mod task;

pub use task::{client_task, os_limit_advice};

use crate::clock::Clock;
use crate::mqtt::payload::{self, TopicGen};
use crate::report::stats::{Counters, Hists, lock};
use crate::report::track::SubTracker;
use crate::sched::Pace;
use crate::transport::Transport;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
    /// closed loop: most deliveries expected and not yet received, over the run (0: no bound)
    pub outstanding: u64,
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
    /// TCP, TLS, WebSocket or both
    pub transport: Arc<Transport>,
    /// the TLS session the first connection negotiated (for the report)
    pub tls_session: OnceLock<String>,
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
    /// the TLS handshake or the WebSocket upgrade failed: the stage and why
    Handshake(&'static str, String),
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
            ConnError::Handshake(stage, why) => format!("{stage}: {why}"),
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
        // TLS errors (a refused certificate, an alert) say what went wrong
        None if e.get_ref().is_some() => e.to_string(),
        None => format!("{:?}", e.kind()),
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(_, e) => write!(f, "{e}"),
            ConnError::Timeout(stage) => write!(f, "{stage} timed out"),
            ConnError::Handshake(stage, why) => write!(f, "{stage} failed: {why}"),
            ConnError::Rejected(code, reason) => {
                write!(f, "broker rejected CONNECT: {reason} (0x{code:02x})")
            }
            ConnError::Protocol(m) => write!(f, "protocol error: {m}"),
            ConnError::Stopped => write!(f, "stopped"),
        }
    }
}

#[cfg(test)]
mod tests;
