//! Command line. Flags follow emqtt-bench where it has them; note that `-h`
//! is the host, so help is only `--help`.

use clap::{ArgAction, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "evgrid-loadtest",
    about = "MQTT 3.1/3.1.1/5.0 load generator: conn, sub, pub, fanin, fanout, p2p, compare, preset; \
             HTTP (Event Grid namespaces): http-publish, pull",
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
    /// HTTP: publish CloudEvents batches to an Event Grid namespace topic over --connections
    /// keep-alive connections (closed loop, or open loop with --rate events/s).
    #[command(name = "http-publish", disable_help_flag = true)]
    HttpPublish(HttpPublishArgs),
    /// HTTP: --consumers loops of receive + acknowledge on a namespace queue subscription.
    #[command(disable_help_flag = true)]
    Pull(PullArgs),
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
    /// Username
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
    /// Worker threads [default: number of CPUs]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also measure this process's CPU (e.g. the broker) over the run
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the full report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an SVG report (latency percentiles, throughput over time) to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Exit with code 3 if end-to-end (p2p: round-trip) p99 exceeds MICROS
    #[arg(long, value_name = "MICROS")]
    pub max_p99: Option<f64>,
    /// Exit with code 3 if lost/expected exceeds FRACTION
    #[arg(long, value_name = "FRACTION")]
    pub max_loss: Option<f64>,
    /// No live progress line
    #[arg(long)]
    pub quiet: bool,
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

/// What both HTTP modes take.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// The namespace endpoint, as the SDK's: http://HOST:PORT/namespaces/NAMESPACE
    #[arg(long, default_value = "http://127.0.0.1:8080/namespaces/default")]
    pub url: String,
    /// Namespace topic
    #[arg(long)]
    pub topic: String,
    /// Namespace access key, sent as `Authorization: SharedAccessKey KEY`
    #[arg(long)]
    pub key: String,
    /// api-version query parameter
    #[arg(long, default_value = "2024-06-01")]
    pub api_version: String,
    /// Length of the run: 10, 10s, 500ms, 2m
    #[arg(short = 'd', long, default_value = "10s")]
    pub duration: String,
    /// Seconds allowed for a TCP connect
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds allowed for one request and its response (receive: at least --max-wait + 5)
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Worker threads [default: number of CPUs]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also measure this process's CPU (e.g. the server) over the run
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Write the full report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No live progress line
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpPublishArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// Keep-alive HTTP/1.1 connections, one request in flight on each
    #[arg(short = 'c', long, default_value_t = 8)]
    pub connections: usize,
    /// CloudEvents per request (1 to 1000)
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Bytes per CloudEvent (JSON, padded in `data`; at least 182)
    #[arg(short = 's', long, default_value_t = 1024)]
    pub size: usize,
    /// Open loop: this many events/s in total, spread over the connections in requests of
    /// --batch (latency from the scheduled send time). Default: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
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
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), 10.0);
        assert_eq!(parse_duration("10s").unwrap(), 10.0);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert_eq!(parse_duration("2m").unwrap(), 120.0);
        assert_eq!(parse_duration("1h").unwrap(), 3600.0);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn dash_h_is_host() {
        let c = Cli::try_parse_from([
            "evgrid-loadtest",
            "pub",
            "-h",
            "127.0.0.1",
            "-p",
            "1999",
            "-V",
            "4",
            "-C",
            "false",
        ])
        .unwrap();
        let Cmd::Pub(a) = c.cmd else {
            panic!("not pub")
        };
        assert_eq!(a.host, "127.0.0.1");
        assert_eq!(a.port, 1999);
        assert_eq!(a.version, Some(4));
        assert!(!a.clean);
        assert!(Cli::try_parse_from(["evgrid-loadtest", "pub", "-V", "6"]).is_err());
    }

    #[test]
    fn http_modes() {
        let c = Cli::try_parse_from([
            "evgrid-loadtest",
            "http-publish",
            "--url",
            "http://127.0.0.1:18090/namespaces/default",
            "--topic",
            "t",
            "--key",
            "k",
            "--connections",
            "32",
            "--rate",
            "5000",
        ])
        .unwrap();
        let Cmd::HttpPublish(a) = c.cmd else {
            panic!("not http-publish")
        };
        assert_eq!((a.connections, a.batch, a.size), (32, 100, 1024));
        assert_eq!(a.rate, Some(5000.0));
        assert_eq!(a.http.duration, "10s");
        let c = Cli::try_parse_from([
            "evgrid-loadtest",
            "pull",
            "--topic",
            "t",
            "--subscription",
            "s",
            "--key",
            "k",
            "--consumers",
            "4",
        ])
        .unwrap();
        let Cmd::Pull(a) = c.cmd else {
            panic!("not pull")
        };
        assert_eq!((a.consumers, a.max_events, a.max_wait), (4, 100, 10));
        assert!(
            Cli::try_parse_from(["evgrid-loadtest", "pull", "--topic", "t", "--key", "k"]).is_err(),
            "--subscription is required"
        );
    }
}
