//! Server configuration: one struct, every default in one place.
//!
//! Owns loading (TOML file, then `EVGRID_*` environment overrides, then command-line flags) and
//! validation. Everything is checked before anything starts; a bad value is reported with its
//! key. Must never start listeners or touch the data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use evgrid_actors::delivery::PushConfig;
use evgrid_actors::grid::resource;
use evgrid_actors::mqtt::session::SessionLimits;
use serde::{Deserialize, Serialize};

use crate::tls::{PushTls, TlsListener};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where evgrid keeps its data.
    pub data_dir: PathBuf,
    /// Log filter in `tracing` syntax (overridden by `RUST_LOG`).
    pub log: String,
    /// Bearer key for the management API; empty: read `admin.key` in the data directory, or
    /// generate one there at first start (printed once).
    pub admin_key: String,
    /// A resource file (TOML) applied at start-up, idempotently; empty: none.
    pub resources: PathBuf,
    /// Bytes all client-driven buffers may hold together: MQTT messages towards sockets, QoS 1/2
    /// messages queued or in flight, HTTP request bodies being read. Beyond it new MQTT messages
    /// are dropped and counted, and a request body that would pass it is answered 503.
    pub memory_budget_bytes: usize,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub events: EventsConfig,
    pub push: PushSection,
    pub cluster: ClusterConfig,
}

/// Cluster mode (`--cluster`): nodes joined through a NATS cluster. Off (a single node) while
/// `urls` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS server URLs, comma-separated (`nats://h1:4222,nats://h2:4222`); empty: a single
    /// node, nothing clustered.
    pub urls: String,
    /// This node's name in NATS; empty: `evgrid-HOSTNAME-XXXXXXXX` (from the data directory's
    /// path: the same after a restart).
    pub node_id: String,
    /// NATS user and password (both or neither).
    pub user: String,
    pub password: String,
    /// NATS authentication token.
    pub token: String,
    /// A CA certificate file (PEM): TLS to the NATS servers is then required and verified.
    pub tls_ca: PathBuf,
    /// The first token of every NATS subject evgrid uses, so that several evgrid clusters can
    /// share one NATS cluster.
    pub prefix: String,
    /// Copies JetStream keeps of what evgrid stores in it (retained MQTT messages): 3 for a
    /// cluster that survives the loss of a server; 1 on a single NATS server.
    pub replicas: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            urls: String::new(),
            node_id: String::new(),
            user: String::new(),
            password: String::new(),
            token: String::new(),
            tls_ca: PathBuf::new(),
            prefix: "evgrid".into(),
            replicas: 3,
        }
    }
}

impl ClusterConfig {
    fn url_list(&self) -> Vec<String> {
        self.urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect()
    }

    /// What the cluster link needs (`data_dir` names the node by default); `None` on a single
    /// node.
    pub fn settings(&self, data_dir: &std::path::Path) -> Option<evgrid_actors::cluster::Settings> {
        let urls = self.url_list();
        if urls.is_empty() {
            return None;
        }
        let node = match self.node_id.is_empty() {
            true => evgrid_actors::cluster::default_node_id(data_dir),
            false => self.node_id.clone(),
        };
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        Some(evgrid_actors::cluster::Settings {
            urls,
            node,
            user: some(&self.user).map(|u| (u, self.password.clone())),
            token: some(&self.token),
            tls_ca: (!self.tls_ca.as_os_str().is_empty()).then(|| self.tls_ca.clone()),
            prefix: self.prefix.clone(),
            replicas: self.replicas,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `redb` (durable, everything in `store.redb` in the data directory), `log` (durable:
    /// queued events in an append-only log, `queue/`, beside `store.redb` for the rest) or
    /// `memory` (nothing survives).
    pub backend: String,
    /// `store.backend = "log"`: bytes at which a queue segment is sealed and the next begins
    /// (space comes back a segment at a time, once everything in it is settled).
    pub segment_bytes: u64,
    /// Bytes of event bodies one pull or push subscription keeps in memory; the rest of its
    /// backlog stays in the store and is read back as the window drains.
    pub backlog_window_bytes: usize,
    /// The same, summed over every subscription.
    pub backlog_memory_bytes: usize,
    /// Free bytes the data directory's file system keeps: below it, publishes of new events
    /// are refused (503 with Retry-After; MQTT 5 publishers routed into a topic get Quota
    /// exceeded) while settlements, which free space, go on. 0: no floor.
    pub min_free_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let w = evgrid_actors::delivery::backlog::WindowLimits::default();
        StoreConfig {
            backend: "log".into(),
            segment_bytes: evgrid_actors::store::log::SEGMENT_BYTES,
            backlog_window_bytes: w.per_subscription,
            backlog_memory_bytes: w.total,
            min_free_bytes: 128 << 20,
        }
    }
}

impl StoreConfig {
    pub fn window_limits(&self) -> evgrid_actors::delivery::backlog::WindowLimits {
        evgrid_actors::delivery::backlog::WindowLimits {
            per_subscription: self.backlog_window_bytes,
            total: self.backlog_memory_bytes,
        }
    }
}

/// HTTP publishing and pull delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Largest event accepted, in bytes (Event Grid: 1 MB).
    pub max_event_bytes: usize,
    /// Largest publish request body, in bytes (Event Grid: 1 MB).
    pub max_request_bytes: usize,
    /// Most events in one namespace publish request (Event Grid: 1,000).
    pub max_events_per_request: usize,
    /// Most events in one custom-topic or domain publish request (Event Grid: 5,000).
    pub max_events_per_basic_request: usize,
    /// Shortest receive lock a subscription may ask for (Event Grid: 60 s; lower it for tests).
    pub min_lock_duration_secs: u32,
    /// How often queues check lock expiry, release delays, time to live and long polls (ms).
    pub tick_ms: u64,
    /// actix arbiter threads for topic, subscription and delivery actors (0: one per core),
    /// apart from the MQTT engine's (`mqtt.actor_threads`), so routing MQTT messages into topics
    /// never queues MQTT delivery behind event-grid work on one thread.
    pub actor_threads: usize,
    /// How much lower the scheduling priority of the grid's threads (its arbiters and the store
    /// writer) is than the MQTT engine's, as a nice increment (0 to 19; 0: the same). MQTT
    /// delivery first when the cores are saturated.
    pub nice: i32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            max_event_bytes: 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            max_events_per_request: 1000,
            max_events_per_basic_request: 5000,
            min_lock_duration_secs: 60,
            tick_ms: 100,
            actor_threads: 0,
            nice: 10,
        }
    }
}

impl EventsConfig {
    /// The bounds resource validation applies, built from these values.
    pub fn resource_limits(&self) -> resource::Limits {
        resource::Limits {
            min_lock_secs: self.min_lock_duration_secs,
        }
    }
}

/// Push delivery to webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSection {
    /// Waits before each retry, in ms (Event Grid: 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h,
    /// 6 h, then every 12 h). The first step also scales the minimum waits after 408/503 and
    /// the probation times; shorten it for tests.
    pub retry_schedule_ms: Vec<u64>,
    /// The same for namespace subscriptions in Push mode (Event Grid: immediately, 10 s, 30 s,
    /// 1 m, 5 m, then every 5 m).
    pub namespace_retry_schedule_ms: Vec<u64>,
    /// Per delivery request (Event Grid: 30 s).
    pub request_timeout_secs: u64,
    /// For the synchronous validation handshake (Event Grid: 30 s).
    pub validation_timeout_secs: u64,
    /// How long a subscription waits for its validation URL to be visited (Event Grid: 10 min).
    pub manual_validation_secs: u64,
    /// Requests in flight per subscription.
    pub max_in_flight: usize,
    /// Delivery shards (endpoint-hashed actors that own the HTTP client and endpoint health).
    pub shards: usize,
    /// Consecutive failures that put an endpoint on probation.
    pub probation_after: u32,
    /// Also write each dead letter as a JSON file under this directory; empty: only the store.
    pub dead_letter_dir: PathBuf,
    /// Base URL of this server as webhooks reach it, for validation URLs and topic endpoints;
    /// empty: `http://<http.bind>` (127.0.0.1 when bound to all addresses).
    pub public_url: String,
    /// Refuse webhook endpoints whose host is or resolves to a loopback, link-local, private
    /// (RFC 1918), unique-local or unspecified address (400 at the subscription PUT), so the
    /// validation handshake cannot probe this server's own network.
    pub deny_private_endpoints: bool,
    /// What `https://` webhooks are verified against.
    pub tls: PushTls,
}

impl Default for PushSection {
    fn default() -> Self {
        PushSection {
            retry_schedule_ms: [10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200]
                .iter()
                .map(|s| s * 1000)
                .collect(),
            namespace_retry_schedule_ms: vec![0, 10_000, 30_000, 60_000, 300_000],
            request_timeout_secs: 30,
            validation_timeout_secs: 30,
            manual_validation_secs: 600,
            max_in_flight: 16,
            shards: 2,
            probation_after: 10,
            dead_letter_dir: PathBuf::new(),
            public_url: String::new(),
            deny_private_endpoints: false,
            tls: PushTls::default(),
        }
    }
}

impl PushSection {
    /// The push delivery settings, built from these values (the only home of their defaults);
    /// `http_addr` is where the HTTP tier listens, the public URL when none is configured.
    pub fn push_config(&self, http_addr: SocketAddr) -> PushConfig {
        let p = self;
        let public_url = if p.public_url.is_empty() {
            let host = if http_addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                http_addr.ip().to_string()
            };
            format!("http://{host}:{}", http_addr.port())
        } else {
            p.public_url.trim_end_matches('/').to_string()
        };
        PushConfig {
            retry_schedule: Arc::new(
                p.retry_schedule_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            ),
            namespace_retry_schedule: Arc::new(
                p.namespace_retry_schedule_ms
                    .iter()
                    .map(|ms| Duration::from_millis(*ms))
                    .collect(),
            ),
            request_timeout: Duration::from_secs(p.request_timeout_secs),
            validation_timeout: Duration::from_secs(p.validation_timeout_secs),
            manual_validation: Duration::from_secs(p.manual_validation_secs),
            max_in_flight: p.max_in_flight,
            shards: p.shards,
            probation_after: p.probation_after,
            // Built from push.tls by the caller (it reads files): crate::tls::client.
            tls: None,
            dead_letter_dir: (!p.dead_letter_dir.as_os_str().is_empty())
                .then(|| p.dead_letter_dir.clone()),
            public_url,
            deny_private_endpoints: p.deny_private_endpoints,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub bind: SocketAddr,
    /// actix-web worker threads.
    pub workers: usize,
    /// How long a client has to send a request's headers once its connection opens, in ms; then
    /// 408 and close.
    pub header_timeout_ms: u64,
    /// How long a request body may take to arrive once its headers have, in ms; then 408 and
    /// close. A total, not an idle timeout, so one byte a second cannot hold a connection open.
    pub body_timeout_ms: u64,
    /// HTTPS: the same API on a TLS listener (`http.tls.bind`, conventionally 443 or 8443).
    pub tls: TlsListener,
}

/// `mqtt.authorization`: how permission bindings apply (see [`evgrid_actors::identity::AuthzMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authorization {
    /// Bindings decide once the namespace has one; none: everything allowed.
    #[default]
    Auto,
    /// Only what bindings grant (Event Grid's rule).
    Bindings,
    /// Every authenticated client may publish and subscribe anywhere.
    Off,
}

impl Authorization {
    pub fn mode(self) -> evgrid_actors::identity::AuthzMode {
        use evgrid_actors::identity::AuthzMode;
        match self {
            Authorization::Auto => AuthzMode::Auto,
            Authorization::Bindings => AuthzMode::Bindings,
            Authorization::Off => AuthzMode::Off,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub bind: SocketAddr,
    /// The plain TCP listener on `bind`; false: MQTT only over the TLS and WebSocket listeners.
    pub tcp_enabled: bool,
    /// The namespace the broker serves: its `topicSpacesConfiguration` routes the broker's
    /// messages, and HTTP publishes to MQTT go through it (docs/eventgrid.md §7.6, §7.8).
    pub namespace: String,
    /// Accept clients that present no credentials at all (no user name, password, certificate
    /// or authentication method); a client that presents some is checked whatever this says. A
    /// warning is logged at start when a non-loopback listener takes them.
    pub allow_anonymous: bool,
    /// How authorization applies (docs/eventgrid.md §7.5): `auto`, `bindings` or `off`.
    pub authorization: Authorization,
    /// The bearer token sent with webhook authentication requests (`Authorization: Bearer …`;
    /// it stands in for Event Grid's Entra token); empty: no header.
    pub webhook_auth_token: String,
    /// The broker's host name as clients address it: shown read-only as a namespace's
    /// `topicSpacesConfiguration.hostname`, and the audience (`aud`) a custom JWT must carry
    /// (docs/eventgrid.md §7.4, §7.9).
    pub hostname: String,
    /// Highest QoS granted and accepted: 2, or 1 for Event Grid's behaviour.
    pub max_qos: u8,
    /// Largest MQTT packet accepted or sent, in bytes.
    pub max_packet_size: u32,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Open connections at most; further CONNECTs are refused with "server unavailable".
    pub max_connections: usize,
    /// QoS 1/2 messages in flight to one client (also capped by the client's receive maximum).
    pub max_inflight: u16,
    /// QoS 1/2 messages the broker takes from one client before it acknowledges earlier ones.
    pub max_receive: u16,
    /// Messages queued per session while offline or while its window is full.
    pub max_queued_messages: usize,
    /// Bytes queued per session (payload and topic) while offline or while its window is full.
    pub max_queued_bytes: usize,
    /// Messages buffered towards one subscriber's socket (not yet taken by it) before further
    /// QoS 0 ones are dropped.
    pub max_outbound_messages: usize,
    /// The same bound in bytes (payload, topic and 64 bytes of overhead each).
    pub max_outbound_bytes: usize,
    /// Seconds a connection's socket may take nothing while the broker has messages for it;
    /// then the connection is closed (v5: DISCONNECT 0x97). 0: never.
    pub send_timeout: u32,
    /// Sessions held at once, connected or persistent; a CONNECT that would create one more is
    /// refused (v5 0x97 quota exceeded, v3.1.1 0x03 server unavailable).
    pub max_sessions: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_client: usize,
    /// Highest keep-alive a client may ask for, in seconds (Event Grid's: 1160).
    pub max_keepalive: u16,
    /// Topic aliases a v5 client may use towards the broker.
    pub max_topic_alias: u16,
    /// Cap on any session expiry interval, in seconds (v3 persistent sessions use it as theirs).
    pub max_session_expiry: u32,
    /// Routing shards (topic-hashed routing actors).
    pub router_shards: usize,
    /// `durable`: retained messages are kept in the store and survive restarts and `kill -9`
    /// (a retained PUBLISH is acknowledged after its commit); `memory`: they live in memory only.
    pub persistence: String,
    /// Durable mode: how often (ms) a persistent session's journal of the QoS 1/2 messages it
    /// holds is brought up to date in the store; `kill -9` loses at most this much of changes
    /// (plus the commit in progress). Messages acknowledged within it are never written.
    pub journal_interval_ms: u64,
    /// ntex worker threads for MQTT connections (0: one per core).
    pub workers: usize,
    /// actix arbiter threads for session and routing actors (0: one per core).
    pub actor_threads: usize,
    /// Seconds a client has to send CONNECT after the TCP connection opens.
    pub connect_timeout: u16,
    /// Client lifecycle events (connected, disconnected; docs/eventgrid.md §7.7) waiting for
    /// their system topic; beyond this further ones are dropped and counted, so a storm of
    /// reconnecting clients never slows the broker.
    pub lifecycle_backlog: usize,
    /// MQTT over TLS (`mqtt.tls.bind`, conventionally 8883), with optional client certificates.
    pub tls: TlsListener,
    /// MQTT over WebSockets (subprotocol `mqtt`), plain; empty: none.
    pub ws_bind: String,
    /// MQTT over secure WebSockets, with `mqtt.tls`'s certificate and client authentication;
    /// empty: none.
    pub wss_bind: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./evgrid-data"),
            log: "info,async_nats=warn".into(),
            admin_key: String::new(),
            resources: PathBuf::new(),
            memory_budget_bytes: 1024 * 1024 * 1024,
            mqtt: MqttConfig::default(),
            http: HttpConfig::default(),
            store: StoreConfig::default(),
            events: EventsConfig::default(),
            push: PushSection::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: "0.0.0.0:8080".parse().expect("literal"),
            workers: 1,
            // Headers are a few hundred bytes: 10 s is ample on any link (nginx's
            // client_header_timeout is 60 s, actix-web's own default 5 s).
            header_timeout_ms: 10_000,
            // The largest body (events.max_request_bytes, 1 MB) arrives in 8 s at 1 Mbit/s;
            // 30 s leaves room for slow links and frees a stalled connection's slot as soon.
            body_timeout_ms: 30_000,
            tls: TlsListener::default(),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            bind: "0.0.0.0:1883".parse().expect("literal"),
            tcp_enabled: true,
            namespace: "default".into(),
            allow_anonymous: true,
            authorization: Authorization::Auto,
            webhook_auth_token: String::new(),
            hostname: "localhost".into(),
            max_qos: 2,
            max_packet_size: 1024 * 1024,
            max_topic_length: 1024,
            max_topic_levels: 16,
            max_connections: 100_000,
            max_inflight: 1000,
            max_receive: 100,
            // Bytes bound a session's backlog (`max_queued_bytes`, and the memory budget for all
            // of them): the count only stops a flood of tiny messages. 1,000 (mosquitto's
            // default) dropped acknowledged QoS 1 messages in a 100 x 32 in-flight fan-in.
            max_queued_messages: 100_000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_outbound_messages: 10_000,
            max_outbound_bytes: 8 * 1024 * 1024,
            send_timeout: 15,
            max_sessions: 100_000,
            max_subscriptions_per_client: 100,
            max_keepalive: 1160,
            max_topic_alias: 10,
            max_session_expiry: 3600,
            router_shards: 1,
            persistence: "durable".into(),
            journal_interval_ms: 100,
            workers: 0,
            actor_threads: 0,
            connect_timeout: 10,
            lifecycle_backlog: 100_000,
            tls: TlsListener::default(),
            ws_bind: String::new(),
            wss_bind: String::new(),
        }
    }
}

impl MqttConfig {
    /// The broker's per-session bounds, built from these values.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_queued_messages: self.max_queued_messages,
            max_queued_bytes: self.max_queued_bytes,
            max_outbound: self.max_outbound_messages,
            max_outbound_bytes: self.max_outbound_bytes,
            max_session_expiry_secs: self.max_session_expiry,
            max_sessions: self.max_sessions,
            journal_interval: std::time::Duration::from_millis(self.journal_interval_ms),
        }
    }
}

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config: {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The smallest `memory_budget_bytes`: below it one default-sized request body (1 MB) and a few
/// connections' MQTT buffers would already fill it.
const MIN_MEMORY_BUDGET: usize = 16 * 1024 * 1024;

impl Config {
    /// Loads the file (if any), then applies `EVGRID_<SECTION>_<KEY>` / `EVGRID_<KEY>` variables.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut value = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                let v: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.to_string(),
                })?;
                // Check the file alone first so its errors name the file, not a variable.
                toml::Value::Table(v.clone())
                    .try_into::<Config>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.into(),
                        message: e.to_string(),
                    })?;
                v
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for (var, raw) in env {
            let Some(key) = var.strip_prefix("EVGRID_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let path = resolve_env_key(&defaults, &key).ok_or_else(|| ConfigError::Env {
                var: var.clone(),
                message: "no such setting".into(),
            })?;
            let default = lookup(&defaults, &path).expect("resolved");
            let parsed = parse_like(default, &raw).map_err(|message| ConfigError::Env {
                var: var.clone(),
                message,
            })?;
            set(&mut value, &path, parsed);
        }
        toml::Value::Table(value)
            .try_into::<Config>()
            .map_err(|e| ConfigError::Env {
                var: "EVGRID_*".into(),
                message: e.to_string(),
            })
    }

    /// Checks every value before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.mqtt;
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if m.max_qos > 2 {
            return bad("mqtt.max_qos", "must be 0, 1 or 2");
        }
        let c = &self.cluster;
        for u in c.url_list() {
            if let Err(e) = evgrid_actors::cluster::check_url(&u) {
                return bad("cluster.urls", &format!("{u}: {e}"));
            }
        }
        if !evgrid_actors::cluster::valid_prefix(&c.prefix) {
            return bad(
                "cluster.prefix",
                "must be one or more of A-Z, a-z, 0-9, '_' and '-'",
            );
        }
        if !(1..=5).contains(&c.replicas) {
            return bad(
                "cluster.replicas",
                "must be between 1 and 5 (JetStream's limits)",
            );
        }
        if c.user.is_empty() != c.password.is_empty() {
            return bad(
                "cluster.user",
                "cluster.user and cluster.password go together",
            );
        }
        if m.max_packet_size < 64 || m.max_packet_size > 268_435_455 {
            return bad(
                "mqtt.max_packet_size",
                "must be between 64 and 268435455 bytes",
            );
        }
        if m.max_topic_length == 0 || m.max_topic_length > 65_535 {
            return bad("mqtt.max_topic_length", "must be between 1 and 65535");
        }
        if m.max_topic_levels == 0 {
            return bad("mqtt.max_topic_levels", "must be at least 1");
        }
        if m.max_connections == 0 {
            return bad("mqtt.max_connections", "must be at least 1");
        }
        if m.max_inflight == 0 {
            return bad("mqtt.max_inflight", "must be at least 1");
        }
        if m.max_receive == 0 {
            return bad("mqtt.max_receive", "must be at least 1");
        }
        if m.max_keepalive == 0 {
            return bad("mqtt.max_keepalive", "must be at least 1 second");
        }
        if m.max_subscriptions_per_client == 0 {
            return bad("mqtt.max_subscriptions_per_client", "must be at least 1");
        }
        if m.connect_timeout == 0 {
            // 0 would turn the deadline off: a client could hold a connection without a CONNECT.
            return bad("mqtt.connect_timeout", "must be at least 1 second");
        }
        if m.lifecycle_backlog == 0 {
            return bad("mqtt.lifecycle_backlog", "must be at least 1");
        }
        if m.router_shards == 0 || m.router_shards > 64 {
            return bad("mqtt.router_shards", "must be between 1 and 64");
        }
        if m.max_outbound_messages == 0 {
            return bad("mqtt.max_outbound_messages", "must be at least 1");
        }
        if m.max_outbound_bytes < 1024 {
            return bad("mqtt.max_outbound_bytes", "must be at least 1024");
        }
        if self.memory_budget_bytes < MIN_MEMORY_BUDGET
            || self.memory_budget_bytes < m.max_outbound_bytes
        {
            return bad(
                "memory_budget_bytes",
                "must be at least 16777216 (16 MiB) and at least mqtt.max_outbound_bytes",
            );
        }
        if m.max_sessions == 0 {
            return bad("mqtt.max_sessions", "must be at least 1");
        }
        if self.http.workers == 0 {
            return bad("http.workers", "must be at least 1");
        }
        if !(100..=600_000).contains(&self.http.header_timeout_ms) {
            return bad("http.header_timeout_ms", "must be between 100 and 600000");
        }
        if !(100..=3_600_000).contains(&self.http.body_timeout_ms) {
            return bad("http.body_timeout_ms", "must be between 100 and 3600000");
        }
        let e = &self.events;
        if !matches!(self.store.backend.as_str(), "redb" | "log" | "memory") {
            return bad("store.backend", "must be \"redb\", \"log\" or \"memory\"");
        }
        if !(1 << 20..=1 << 32).contains(&self.store.segment_bytes) {
            return bad("store.segment_bytes", "must be between 1 MiB and 4 GiB");
        }
        if !matches!(self.mqtt.persistence.as_str(), "durable" | "memory") {
            return bad("mqtt.persistence", "must be \"durable\" or \"memory\"");
        }
        if !(1..=60_000).contains(&self.mqtt.journal_interval_ms) {
            return bad("mqtt.journal_interval_ms", "must be between 1 and 60000");
        }
        if self.store.backlog_window_bytes < 64 * 1024 {
            return bad("store.backlog_window_bytes", "must be at least 65536");
        }
        if self.store.backlog_memory_bytes < self.store.backlog_window_bytes {
            return bad(
                "store.backlog_memory_bytes",
                "must be at least store.backlog_window_bytes",
            );
        }
        if e.max_event_bytes == 0 || e.max_event_bytes > 64 * 1024 * 1024 {
            return bad("events.max_event_bytes", "must be between 1 and 67108864");
        }
        if e.max_request_bytes < e.max_event_bytes || e.max_request_bytes > 256 * 1024 * 1024 {
            return bad(
                "events.max_request_bytes",
                "must be at least events.max_event_bytes and at most 268435456",
            );
        }
        if e.max_events_per_request == 0 {
            return bad("events.max_events_per_request", "must be at least 1");
        }
        if !(1..=300).contains(&e.min_lock_duration_secs) {
            return bad("events.min_lock_duration_secs", "must be between 1 and 300");
        }
        if !(10..=10_000).contains(&e.tick_ms) {
            return bad("events.tick_ms", "must be between 10 and 10000");
        }
        if e.max_events_per_basic_request == 0 {
            return bad("events.max_events_per_basic_request", "must be at least 1");
        }
        if !(0..=19).contains(&e.nice) {
            return bad("events.nice", "must be between 0 and 19");
        }
        let p = &self.push;
        if p.retry_schedule_ms.is_empty() || p.retry_schedule_ms.contains(&0) {
            return bad(
                "push.retry_schedule_ms",
                "must be a non-empty list of waits above 0 ms",
            );
        }
        if p.namespace_retry_schedule_ms.is_empty() {
            return bad(
                "push.namespace_retry_schedule_ms",
                "must be a non-empty list of waits in ms",
            );
        }
        if !(1..=600).contains(&p.request_timeout_secs) {
            return bad("push.request_timeout_secs", "must be between 1 and 600");
        }
        if !(1..=600).contains(&p.validation_timeout_secs) {
            return bad("push.validation_timeout_secs", "must be between 1 and 600");
        }
        if p.manual_validation_secs == 0 {
            return bad("push.manual_validation_secs", "must be at least 1");
        }
        if !(1..=1024).contains(&p.max_in_flight) {
            return bad("push.max_in_flight", "must be between 1 and 1024");
        }
        if !(1..=64).contains(&p.shards) {
            return bad("push.shards", "must be between 1 and 64");
        }
        if p.probation_after == 0 {
            return bad("push.probation_after", "must be at least 1");
        }
        if !p.public_url.is_empty()
            && !p.public_url.starts_with("http://")
            && !p.public_url.starts_with("https://")
        {
            return bad("push.public_url", "must start with http:// or https://");
        }
        if !self.admin_key.is_empty() && self.admin_key.len() < 16 {
            return bad("admin_key", "must be at least 16 characters");
        }
        let wss_on = !m.wss_bind.trim().is_empty();
        if m.tcp_enabled && m.bind == self.http.bind && m.bind.port() != 0 {
            return bad("mqtt.bind", "must differ from http.bind");
        }
        if !m.wss_bind.trim().is_empty() && m.tls.cert_file.as_os_str().is_empty() {
            return bad(
                "mqtt.wss_bind",
                "needs mqtt.tls.cert_file and mqtt.tls.key_file",
            );
        }
        if !m.tcp_enabled && !m.tls.enabled() && m.ws_bind.trim().is_empty() && !wss_on {
            return bad(
                "mqtt.tcp_enabled",
                "is false, and no other MQTT listener is set (mqtt.tls.bind, mqtt.ws_bind, mqtt.wss_bind)",
            );
        }
        // wss takes mqtt.tls's certificate, client authentication and timeout even when the
        // MQTT TLS listener itself is off.
        let wss = !m.wss_bind.trim().is_empty();
        for (section, l, used) in [
            ("mqtt.tls", &m.tls, wss),
            ("http.tls", &self.http.tls, false),
        ] {
            if let Err((key, message)) = l.validate(section, used) {
                return Err(ConfigError::Invalid { key, message });
            }
        }
        for (key, bind) in [("mqtt.ws_bind", &m.ws_bind), ("mqtt.wss_bind", &m.wss_bind)] {
            if !bind.trim().is_empty() && bind.trim().parse::<SocketAddr>().is_err() {
                return bad(key, "must be an address such as 0.0.0.0:8083, or empty");
            }
        }
        Ok(())
    }
}

/// `mqtt_max_qos` → ["mqtt", "max_qos"]; `data_dir` → ["data_dir"]; `mqtt_tls_cert_file` →
/// ["mqtt", "tls", "cert_file"].
fn resolve_env_key(defaults: &toml::Table, key: &str) -> Option<Vec<String>> {
    if defaults.get(key).is_some_and(|v| !v.is_table()) {
        return Some(vec![key.to_string()]);
    }
    for (section, v) in defaults {
        if let (Some(t), Some(rest)) = (v.as_table(), key.strip_prefix(&format!("{section}_")))
            && let Some(mut path) = resolve_env_key(t, rest)
        {
            path.insert(0, section.clone());
            return Some(path);
        }
    }
    None
}

fn lookup<'a>(t: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let v = t.get(&path[0])?;
    match &path[1..] {
        [] => Some(v),
        rest => lookup(v.as_table()?, rest),
    }
}

fn set(t: &mut toml::Table, path: &[String], v: toml::Value) {
    if path.len() == 1 {
        t.insert(path[0].clone(), v);
        return;
    }
    let child = t
        .entry(path[0].clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(child) = child.as_table_mut() {
        set(child, &path[1..], v);
    }
}

fn parse_like(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    match default {
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "0" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        toml::Value::Float(_) => raw
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("expected a number, got {raw:?}")),
        // Lists: comma-separated, each element parsed like the default's first one.
        toml::Value::Array(a) => {
            let elem = a.first().cloned().unwrap_or(toml::Value::Integer(0));
            raw.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| parse_like(&elem, p))
                .collect::<Result<Vec<_>, _>>()
                .map(toml::Value::Array)
        }
        _ => Ok(toml::Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests;
