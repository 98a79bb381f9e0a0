//! The command lines of `e2e` and `http-mqtt`: the MQTT flags of the other scenarios (host,
//! port, version, QoS, size, rate, duration, drain, --json, ...) plus the namespace's HTTP side.

use crate::cli::Args;

/// On or off, for `--routing`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

/// The namespace's HTTP data plane and management API, as both scenarios reach them.
#[derive(clap::Args, Debug, Clone)]
pub struct NamespaceArgs {
    /// The namespace endpoint: http://HOST:PORT/namespaces/NAMESPACE (the namespace the MQTT
    /// listener serves)
    #[arg(long, default_value = "http://127.0.0.1:8080/namespaces/default")]
    pub url: String,
    /// Namespace access key (`Authorization: SharedAccessKey KEY`); with --setup it is read
    /// through listKeys when not given
    #[arg(long)]
    pub key: Option<String>,
    /// Admin key of the management API (`Authorization: Bearer KEY`), for --setup
    #[arg(long, value_name = "KEY")]
    pub admin_key: Option<String>,
    /// Seconds allowed for one HTTP request and its response (receive: at least --max-wait + 5)
    #[arg(long, default_value_t = 30.0)]
    pub http_timeout: f64,
    /// api-version of the data-plane requests [default: 2024-06-01 for receive/acknowledge,
    /// 2025-02-15-preview for mqtt/messages]
    #[arg(long)]
    pub api_version: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// Namespace topic the MQTT messages are routed into
    #[arg(long, default_value = "mqtt-routed")]
    pub route_topic: String,
    /// Queue event subscription of --route-topic the consumers pull from (with --push: the Push
    /// subscription --setup creates)
    #[arg(long, default_value = "e2e")]
    pub subscription: String,
    /// Pull consumers, each on its own keep-alive connection: receive, then acknowledge what
    /// came (0: publish only, e.g. to measure the MQTT side with routing on or off)
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// maxEvents per receive (1 to 100)
    #[arg(long, default_value_t = 100)]
    pub max_events: usize,
    /// maxWaitTime per receive in seconds
    #[arg(long, default_value_t = 10)]
    pub max_wait: u64,
    /// Create what the run needs first through the management API (--admin-key): the route
    /// topic, its subscription (Queue; Push to --push) and the namespace's
    /// topicSpacesConfiguration routing into the topic (--routing)
    #[arg(long, requires = "admin_key")]
    pub setup: bool,
    /// With --setup: routing enabled (on) or the namespace's topicSpacesConfiguration disabled
    /// (off), to compare the MQTT side with and without it
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub routing: Switch,
    /// Consume through push delivery instead of pulling: --setup subscribes this webhook
    /// (e.g. a `webhook-sink`, whose report then has the end-to-end figures); no pull consumers
    #[arg(long, value_name = "URL")]
    pub push: Option<String>,
    /// MQTT side: publishers (--publishers, default 10), topics (-t, default e2e/%i), QoS, size,
    /// --rate or --max-rate, --duration, --drain (seconds after publishing that the routed
    /// events are waited for), and --subscribers N to also measure MQTT subscribers on the
    /// same messages (fanin)
    #[command(flatten)]
    pub mqtt: Args,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpMqttArgs {
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// HTTP publishers: keep-alive connections, one request in flight on each
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// MQTT side: subscribers (--subscribers, default 1) on --sub-topic (default: the topic up
    /// to its first placeholder, then #), the publish topic template (-t, default cmd/%i, %i
    /// being the HTTP connection), QoS of the messages and subscriptions (-q, default 0), size
    /// (-s), --rate messages/s in total (default: closed loop), --duration, --drain
    #[command(flatten)]
    pub mqtt: Args,
}
