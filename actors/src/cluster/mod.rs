//! Cluster mode: evgrid nodes joined through a NATS cluster (`cluster.urls`).
//!
//! Owns the NATS connection of this node and what travels over it: [`link`] carries MQTT
//! messages, subscriptions' interest and client-id claims between the nodes; `retained` keeps
//! retained messages in a KV bucket; `handover` moves persistent sessions between nodes;
//! [`subject`] maps MQTT names onto NATS subjects. The connection runs on a thread of its own with its own
//! runtime, so the network never runs on an MQTT or actor thread; the rest of the node talks to
//! it through channels ([`crate::mqtt::remote::Remote`]).
//!
//! Never a replication protocol of its own: what must survive a node is NATS's to keep. Without
//! `cluster.urls` none of this starts and evgrid is the single-node server.

mod handover;
pub mod link;
mod retained;
pub mod subject;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

/// How to reach the NATS cluster, as configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server URLs (`nats://host:port`); the client connects to one and fails over to the rest
    /// (and to those the cluster announces).
    pub urls: Vec<String>,
    /// This node's name, as NATS shows it (monitoring, connection names).
    pub node: String,
    pub user: Option<(String, String)>,
    pub token: Option<String>,
    /// A CA file: TLS to the servers is then required and verified against it.
    pub tls_ca: Option<PathBuf>,
    /// The first token of every subject evgrid uses: several evgrid clusters can share one NATS
    /// cluster under different prefixes.
    pub prefix: String,
    /// Copies JetStream keeps of what evgrid stores there (the retained-message bucket).
    pub replicas: usize,
}

const NONE: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// The node's connection to NATS: not clustered, connected, or not (yet) connected.
static STATE: AtomicU8 = AtomicU8::new(NONE);

/// `None` on a single node; whether this node is connected to the NATS cluster otherwise.
pub fn connected() -> Option<bool> {
    match STATE.load(Ordering::Acquire) {
        NONE => None,
        s => Some(s == UP),
    }
}

fn set_connected(up: bool) {
    STATE.store(if up { UP } else { DOWN }, Ordering::Release);
    crate::metrics::CLUSTER.connected.set(up as i64);
}

/// Whether `url` names a NATS server the client can dial (`nats://`, `tls://` or a bare
/// `host:port`).
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<async_nats::ServerAddr>()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `prefix` is one NATS subject token evgrid may use.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `evgrid-HOSTNAME-XXXXXXXX`, the last part from the data directory's path: unique among the
/// nodes of one machine and across machines, and the same after a restart, so that the
/// cluster's session directory still names this node for the sessions it restores.
pub fn default_node_id(data_dir: &std::path::Path) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer it is given.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = match rc {
        0 => {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..end]).into_owned()
        }
        _ => "host".into(),
    };
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let d = ring::digest::digest(&ring::digest::SHA256, dir.as_os_str().as_encoded_bytes());
    let tag: String = d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("evgrid-{host}-{tag}")
}
