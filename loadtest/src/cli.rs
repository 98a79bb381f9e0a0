//! Command line. Flags follow emqtt-bench where it has them; note that `-h`
//! is the host, so help is only `--help`.

pub use crate::e2e::args::{E2eArgs, HttpMqttArgs};
pub use crate::transport::{TlsFlags, TransportFlags};
use clap::{ArgAction, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "evgrid-loadtest",
    about = "MQTT 3.1/3.1.1/5.0 load generator: conn, sub, pub, fanin, fanout, p2p, compare, preset; \
             HTTP (Event Grid): http-publish (namespace or basic-tier topics), pull, webhook-sink; \
             across both: e2e (MQTT -> routed topic -> pull), http-mqtt (HTTP -> MQTT)",
    long_about = "MQTT 3.1/3.1.1/5.0 load generator with open-loop scheduling, HDR latency histograms and \
                  loss/duplicate/reorder accounting.\n\nNote: -h is the broker host (as in emqtt-bench); use --help for help.",
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Print help
    #[arg(long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Open -c connections at a connect rate and hold them for --duration;
    /// reports CONNACK latency and failures.
    #[command(disable_help_flag = true)]
    Conn(Args),
    /// -c subscribers on -t (default bench/#); counts what arrives.
    #[command(disable_help_flag = true)]
    Sub(Args),
    /// -c publishers on -t (default bench/%i) at -I ms per client or --rate total.
    #[command(disable_help_flag = true)]
    Pub(Args),
    /// --publishers P → 1 subscriber on a wildcard (or --shared N members of $share/GROUP/...).
    #[command(disable_help_flag = true)]
    Fanin(Args),
    /// --publishers P (default 1) → --subscribers S, each subscribed to all --topics T.
    #[command(disable_help_flag = true)]
    Fanout(Args),
    /// --pairs N request/response pairs (MQTT 5 response topic + correlation data); round-trip latency.
    #[command(disable_help_flag = true)]
    P2p(Args),
    /// Run a scenario against two brokers alternately (A B A B ...) and compare.
    #[command(disable_help_flag = true)]
    Compare(CompareArgs),
    /// Run an Open MQTT Benchmark suite scenario by name, scaled by --scale.
    #[command(disable_help_flag = true)]
    Preset(PresetArgs),
    /// HTTP: publish event batches over --connections keep-alive connections (closed loop, or
    /// open loop with --rate events/s): CloudEvents to a namespace topic (--url, --topic), or
    /// Event Grid / CloudEvents events to a basic-tier topic (--endpoint, --schema).
    #[command(name = "http-publish", disable_help_flag = true)]
    HttpPublish(HttpPublishArgs),
    /// HTTP: --consumers loops of receive + acknowledge on a namespace queue subscription.
    #[command(disable_help_flag = true)]
    Pull(PullArgs),
    /// HTTP: an Event Grid webhook endpoint on --bind: answers the validation handshakes and
    /// deliveries with scripted statuses; measures end-to-end latency, loss and duplicates.
    #[command(name = "webhook-sink", disable_help_flag = true)]
    WebhookSink(SinkArgs),
    /// MQTT → Event Grid: --publishers MQTT publishers whose messages the namespace routes into
    /// --route-topic as CloudEvents, --consumers pull consumers (receive + acknowledge) on its
    /// Queue subscription; end-to-end latency, loss, duplicates, routed events/s (--setup makes
    /// the topic, subscription and routing; --push consumes through a webhook-sink instead)
    #[command(disable_help_flag = true)]
    E2e(E2eArgs),
    /// HTTP → MQTT: --connections HTTP publishers POSTing to {url}/mqtt/messages, --subscribers
    /// MQTT subscribers on the topics; delivered/s, end-to-end latency, loss, duplicates
    #[command(name = "http-mqtt", disable_help_flag = true)]
    HttpMqtt(HttpMqttArgs),
    /// The large fleet: --devices devices with persistent sessions publishing QoS 1 telemetry,
    /// a shared-subscription backend, an alert broadcast to every device, a reconnect storm;
    /// connect-storm time, steady CPU and RSS, telemetry p99, broadcast spread, recovery, loss
    #[command(disable_help_flag = true)]
    Fleet(crate::fleet::FleetArgs),
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Args {
    /// Broker host
    #[arg(short = 'h', long, default_value = "localhost")]
    pub host: String,
    /// Broker port
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT version: 3 (3.1, "MQIsdp"), 4 (3.1.1) or 5 (5.0) [default: 5]
    #[arg(short = 'V', long = "version", value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: Option<u8>,
    /// Number of clients (conn/sub/pub); also the default for --publishers (fanin),
    /// --subscribers (fanout) and --pairs (p2p)
    #[arg(short = 'c', long = "count")]
    pub count: Option<usize>,
    /// Start index for %i and client ids
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    pub start: u64,
    /// Interval between connection starts in ms [default: 10]
    #[arg(short = 'i', long = "interval")]
    pub interval: Option<f64>,
    /// Connection rate per second (overrides -i)
    #[arg(short = 'R', long = "connrate")]
    pub conn_rate: Option<f64>,
    /// Publish interval per client in ms [default: 1000]
    #[arg(short = 'I', long = "interval_of_msg", alias = "pub-interval")]
    pub pub_interval: Option<f64>,
    /// Total publish rate in msgs/s, spread evenly over the publishers (open loop)
    #[arg(long)]
    pub rate: Option<f64>,
    /// Closed loop: publish as fast as the connection and in-flight window allow
    #[arg(long)]
    pub max_rate: bool,
    /// With --max-rate: at most this many messages published and not yet received by every
    /// subscriber that should get them, over all publishers (0: no bound). Bounds the broker's
    /// backlog, so a closed-loop run measures what the broker delivers, not how much it queues
    #[arg(long, default_value_t = 0)]
    pub outstanding: u64,
    /// QoS 0, 1 or 2 [default: 0]
    #[arg(short = 'q', long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: Option<u8>,
    /// Payload size in bytes, at least 24 [default: 256]
    #[arg(short = 's', long)]
    pub size: Option<usize>,
    /// Topic template: %i client seq, %c client id, %u username, %s message seq, %rand_N random 1..N
    #[arg(short = 't', long)]
    pub topic: Option<String>,
    /// Subscription filter for fanin (default: the topic up to its first placeholder level, then #)
    #[arg(long)]
    pub sub_topic: Option<String>,
    /// Response topic template for p2p [default: p2p/%i/resp]
    #[arg(long)]
    pub resp_topic: Option<String>,
    /// Client id prefix [default: evlt-PID]
    #[arg(long)]
    pub prefix: Option<String>,
    /// Client ids are PREFIX + N only
    #[arg(long)]
    pub shortids: bool,
    /// Username; %i is replaced by the client's index in the run (from 0), one user per client
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Keep alive in seconds
    #[arg(short = 'k', long, default_value_t = 300)]
    pub keepalive: u16,
    /// Clean session / clean start
    #[arg(short = 'C', long, default_value_t = true, action = ArgAction::Set)]
    pub clean: bool,
    /// Session expiry interval in seconds (MQTT 5)
    #[arg(short = 'x', long = "session-expiry")]
    pub session_expiry: Option<u32>,
    /// Total message limit over all publishers (sub: stop after receiving this many)
    #[arg(short = 'L', long)]
    pub limit: Option<u64>,
    /// In-flight window per publisher for QoS 1/2 (also capped by the broker's receive maximum)
    #[arg(short = 'F', long, default_value_t = 64)]
    pub inflight: usize,
    /// Publish with the retain flag
    #[arg(short = 'w', long)]
    pub retain: bool,
    /// Local source addresses, bound round-robin: a,b,c
    #[arg(long, value_delimiter = ',')]
    pub ifaddr: Vec<String>,
    /// Publishers (fanin default 10, fanout default 1)
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Subscribers (fanout default 10, fanin default 1)
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Topics for fanout (publisher i uses topic i mod T; subscribers subscribe to all)
    #[arg(long)]
    pub topics: Option<usize>,
    /// fanin: N subscribers in one shared-subscription group
    #[arg(long)]
    pub shared: Option<usize>,
    /// Shared-subscription group name
    #[arg(long, default_value = "g")]
    pub group: String,
    /// p2p: number of request/response pairs (default -c or 10)
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Length of the run (publishing phase; conn/sub: holding phase): 10, 10s, 500ms, 2m [default: 10s,
    /// or 1h when only -L bounds the run]
    #[arg(short = 'd', long)]
    pub duration: Option<String>,
    /// Seconds to wait after publishing for in-flight messages to arrive
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Most publishes encoded into one write
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Seconds allowed for TCP connect + CONNACK (and for SUBACK)
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Subscribers pause this many ms after each read (slow consumer)
    #[arg(long)]
    pub sub_delay_ms: Option<u64>,
    /// Write an SVG report (latency percentiles, throughput over time) to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub transport: TransportFlags,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub limits: ThresholdFlags,
}

/// What every mode that runs takes: worker threads, a process to measure, the JSON report and
/// the progress line.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunFlags {
    /// Worker threads [default: number of CPUs]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also measure this process's CPU (the broker or server under test) over the run
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the full report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No live progress line
    #[arg(long)]
    pub quiet: bool,
}

impl RunFlags {
    /// The live progress line: only on a terminal, and not with --quiet or --json.
    pub fn progress(&self) -> bool {
        use std::io::IsTerminal as _;
        !self.quiet && self.json.is_none() && std::io::stderr().is_terminal()
    }

    /// --broker-pid names a process whose CPU times can be read.
    pub fn check(&self) -> Result<(), String> {
        match self.broker_pid {
            Some(pid) if crate::report::stats::cpu_times(Some(pid)).is_none() => {
                Err(format!("--broker-pid {pid}: cannot read /proc/{pid}/stat"))
            }
            _ => Ok(()),
        }
    }
}

/// The thresholds that turn a run into exit code 3.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ThresholdFlags {
    /// Exit with code 3 if the p99 of the main latency exceeds MICROS: end-to-end (p2p:
    /// round-trip, pub: PUBACK, conn: CONNACK)
    #[arg(long, value_name = "MICROS")]
    pub max_p99: Option<f64>,
    /// Exit with code 3 if lost/expected exceeds FRACTION
    #[arg(long, value_name = "FRACTION")]
    pub max_loss: Option<f64>,
}

impl ThresholdFlags {
    pub fn check(&self) -> Result<(), String> {
        if let Some(l) = self.max_loss
            && !(0.0..=1.0).contains(&l)
        {
            return Err(format!(
                "--max-loss {l}: must be a fraction between 0 and 1"
            ));
        }
        if let Some(p) = self.max_p99
            && !(p.is_finite() && p > 0.0)
        {
            return Err(format!("--max-p99 {p}: must be above 0 (microseconds)"));
        }
        Ok(())
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Broker A as HOST:PORT
    #[arg(long)]
    pub a: String,
    /// Broker B as HOST:PORT
    #[arg(long)]
    pub b: String,
    /// fanin, fanout, p2p, pub-qos1 (also conn, sub, pub)
    #[arg(long)]
    pub scenario: String,
    /// Rounds per broker
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Broker A's process id: before each round, wait until it is idle
    #[arg(long)]
    pub a_pid: Option<u32>,
    /// Broker B's process id: before each round, wait until it is idle
    #[arg(long)]
    pub b_pid: Option<u32>,
    /// Longest wait for the brokers named by --a-pid/--b-pid to go idle before a round
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub settle_max: f64,
    #[command(flatten)]
    pub args: Args,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PresetArgs {
    /// e.g. fanout-5-1000-5-250K, p2p-50K-50K-50K-50K, sharesub-50K-500-50K-50K, conn-tcp-1M-5K
    pub name: String,
    /// Multiply client counts and rates by F
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Only print what would run
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub args: Args,
}

/// What http-publish and pull take.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// The namespace endpoint, as the SDK's: http://HOST:PORT/namespaces/NAMESPACE (https://:
    /// over TLS)
    #[arg(long, default_value = "http://127.0.0.1:8080/namespaces/default")]
    pub url: String,
    /// Namespace topic (required with --url)
    #[arg(long)]
    pub topic: Option<String>,
    /// Access key, sent as `Authorization: SharedAccessKey KEY` to a namespace and as
    /// `aeg-sas-key: KEY` to a basic-tier topic (--endpoint)
    #[arg(long)]
    pub key: Option<String>,
    /// api-version query parameter [default: 2024-06-01; 2018-01-01 with --endpoint]
    #[arg(long)]
    pub api_version: Option<String>,
    /// Length of the run: 10, 10s, 500ms, 2m
    #[arg(short = 'd', long, default_value = "10s")]
    pub duration: String,
    /// Seconds allowed for a TCP connect
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds allowed for one request and its response (receive: at least --max-wait + 5)
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// HTTPS: --tls (or an https:// URL), --cafile, --cert/--cert-key
    #[command(flatten)]
    pub tls: TlsFlags,
    #[command(flatten)]
    pub run: RunFlags,
}

/// The event schema http-publish writes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Event Grid events `{"id","subject","eventType","eventTime","data","dataVersion"}`,
    /// `application/json; charset=utf-8`
    Eventgrid,
    /// CloudEvents 1.0, `application/cloudevents-batch+json; charset=utf-8`
    Cloudevents,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::Eventgrid => "eventgrid",
            Schema::Cloudevents => "cloudevents",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpPublishArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Publish to a basic-tier topic instead of a namespace: its full endpoint, e.g.
    /// http://127.0.0.1:8080/topics/orders/api/events (requests go to
    /// ENDPOINT?api-version=2018-01-01; success is exactly 200)
    #[arg(long, value_name = "URL", conflicts_with_all = ["url", "topic"])]
    pub endpoint: Option<String>,
    /// Event schema [default: eventgrid with --endpoint; namespaces take cloudevents only]
    #[arg(long, value_enum)]
    pub schema: Option<Schema>,
    /// Sign a SAS token with this (base64) key instead of sending a key (docs/eventgrid.md §3;
    /// valid for the run + 1 h): `aeg-sas-token: r=..&e=..&s=..` to --endpoint,
    /// `Authorization: SharedAccessSignature ...` to a namespace topic
    #[arg(long, value_name = "KEY", conflicts_with = "key")]
    pub sas_key: Option<String>,
    /// Keep-alive HTTP/1.1 connections, one request in flight on each
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// Events per request (1 to 1000)
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Bytes per event (JSON, padded in `data`; at least 182 for CloudEvents, 194 for Event Grid)
    #[arg(short = 's', long, default_value_t = 1024)]
    pub size: usize,
    /// Open loop: this many events/s in total, spread over the connections in requests of
    /// --batch (latency from the scheduled send time). Default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after sending this many events in total (the last request may be smaller), e.g. to
    /// match a webhook-sink's --expect
    #[arg(short = 'L', long)]
    pub limit: Option<u64>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PullArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Queue event subscription of --topic
    #[arg(long)]
    pub subscription: String,
    /// Consumers, each on its own keep-alive connection: receive, then acknowledge what came
    #[arg(short = 'c', long, default_value_t = 8)]
    pub consumers: usize,
    /// maxEvents per receive (1 to 100)
    #[arg(long, default_value_t = 100)]
    pub max_events: usize,
    /// maxWaitTime per receive in seconds (the server takes 10 to 120)
    #[arg(long, default_value_t = 10)]
    pub max_wait: u64,
    /// Stop as soon as a receive comes back empty (the queue is drained)
    #[arg(long)]
    pub until_empty: bool,
    /// Seconds after --duration that receives still waiting are given before they are abandoned
    #[arg(long, default_value_t = 2.0)]
    pub drain: f64,
}

/// How webhook-sink answers a subscription validation.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// 200 with {"validationResponse":"<validationCode>"}; OPTIONS: 200 with the origin allowed
    Sync,
    /// 200 with an empty body, then a GET of data.validationUrl; OPTIONS as sync
    Async,
    /// 403 to the validation event and to OPTIONS
    Refuse,
}

impl Validation {
    pub fn name(self) -> &'static str {
        match self {
            Validation::Sync => "sync",
            Validation::Async => "async",
            Validation::Refuse => "refuse",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct SinkArgs {
    /// Address to listen on (port 0: any free port, printed at start)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub bind: String,
    /// Answer to `aeg-event-type: SubscriptionValidation` and to the CloudEvents OPTIONS
    /// handshake
    #[arg(long, value_enum, default_value_t = Validation::Sync)]
    pub validation: Validation,
    /// Status answered to every delivery [default: 200]
    #[arg(long, value_name = "CODE", conflicts_with = "script")]
    pub status: Option<u16>,
    /// Statuses answered to the deliveries in turn: CODE or CODE*N, comma-separated, e.g.
    /// "503*3,200" (three 503s, then 200 for the rest). The last step may go without *N and then
    /// answers the rest; when every step has a count, the rest get 200
    #[arg(long, value_name = "SCRIPT")]
    pub script: Option<String>,
    /// Answer every Nth delivery (N, 2N, ...) with --fail-status instead
    #[arg(long, value_name = "N")]
    pub fail_every: Option<u64>,
    /// Status of the --fail-every deliveries
    #[arg(
        long,
        value_name = "CODE",
        default_value_t = 500,
        requires = "fail_every"
    )]
    pub fail_status: u16,
    /// Wait this long before answering each delivery: 5ms, 0.2s
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// Events expected: the loss figure is against this, and the run ends once this many
    /// distinct events were accepted (and --idle passed). Default: loss against each
    /// publisher's sequence numbers
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,
    /// End the run after this long without a request, once traffic began (with --expect: once
    /// the expected events are in) [default with --expect: 2s]
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<String>,
    /// Longest run: 10, 10s, 500ms, 2m, 1h
    #[arg(short = 'd', long, default_value = "10m")]
    pub duration: String,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub limits: ThresholdFlags,
}

/// Parses "10", "10s", "1.5s", "500ms", "2m", "1h" into seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{s}' (examples: 10, 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration '{s}'"));
    }
    Ok(v * mult)
}

#[cfg(test)]
mod tests;
