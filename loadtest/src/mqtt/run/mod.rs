//! Scenario plans and the run orchestrator.
//!
//! A run has four phases: connect every client at the connect rate
//! (subscribers first, each subscribing before it reports ready), start all
//! publishers on a common schedule, publish for `--duration` (or until `-L`),
//! drain until every expected delivery arrived (or `--drain` seconds), stop.
//!
//! - This module: the scenarios, the [`Plan`] type, the options of one run.
//! - `plan`: the command line → a plan (pure).
//! - `execute`: a plan → a [`Report`], against one broker.
//!
//! A run never reads flags outside building its plan, and never prints the summary or writes
//! files: `main` does, from the report it returns.

mod execute;
mod plan;

pub use execute::execute;
pub use plan::build_plan;

use crate::mqtt::client::{ClientCfg, ClientSpec, Shared};
use crate::report::Clients;
use crate::sched::Pace;
use crate::transport::Transport;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
    /// A scenario that drives this run beside other traffic (`http-mqtt`) watches it here.
    pub hook: Option<Arc<RunHook>>,
    /// what every connection runs over
    pub transport: Arc<Transport>,
}

/// What a run shows whoever drives it beside other traffic: when every client is connected
/// (and subscribed) and publishing may start, and the live counters. Read-only for the
/// watcher: the run stops through its interrupt channel, as on Ctrl-C.
#[derive(Default)]
pub struct RunHook {
    /// notified once, at the start of the publishing phase (never when the run fails first)
    pub go: tokio::sync::Notify,
    shared: OnceLock<Arc<Shared>>,
}

impl RunHook {
    /// Messages the run's subscribers counted so far (with duplicates).
    pub fn received(&self) -> u64 {
        self.shared
            .get()
            .map_or(0, |s| s.counters.received.load(Ordering::Relaxed))
    }

    /// Clock time (ns since the Unix epoch) of the newest read that delivered a counted message
    /// (0: none yet).
    pub fn last_received_ns(&self) -> u64 {
        self.shared
            .get()
            .map_or(0, |s| s.counters.last_received_ns.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for RunHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunHook(received {})", self.received())
    }
}

/// A run could not produce a report (e.g. the broker is unreachable).
#[derive(Debug)]
pub struct Fatal(pub String);
