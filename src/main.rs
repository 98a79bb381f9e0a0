//! The `evgrid` binary: `evgrid serve` (the default) runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use evgrid::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "evgrid",
    version,
    about = "A self-hosted event grid: MQTT broker, event publishing, push and pull delivery"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Print the effective configuration (file, environment and flags applied) as TOML.
    Config(ServeArgs),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCmd),
}

#[derive(Subcommand)]
enum CertCmd {
    /// Write a development CA (ca.pem, ca.key), a server certificate for localhost and
    /// 127.0.0.1 (server.pem, server.key) and a client certificate (client.pem, client.key).
    Dev {
        /// Directory to write them to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The client certificate's common name.
        #[arg(long, value_name = "NAME", default_value = "client1")]
        client_name: String,
    },
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// MQTT listener address (default 0.0.0.0:1883).
    #[arg(long, value_name = "ADDR")]
    mqtt_bind: Option<SocketAddr>,
    /// HTTP listener address (default 0.0.0.0:8080).
    #[arg(long, value_name = "ADDR")]
    http_bind: Option<SocketAddr>,
    /// Data directory (default ./evgrid-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Resource file (TOML) to apply at start-up: namespaces, topics, subscriptions.
    #[arg(long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Cluster mode: NATS server URLs, comma-separated (cluster.urls).
    #[arg(long, value_name = "URLS")]
    cluster: Option<String>,
}

fn load(args: &ServeArgs) -> Result<Config, String> {
    let mut cfg =
        Config::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(a) = args.mqtt_bind {
        cfg.mqtt.bind = a;
    }
    if let Some(a) = args.http_bind {
        cfg.http.bind = a;
    }
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(r) = &args.resources {
        cfg.resources = r.clone();
    }
    if let Some(c) = &args.cluster {
        cfg.cluster.urls = c.clone();
    }
    cfg.validate().map_err(|e| e.to_string())?;
    evgrid::tls::check(&cfg).map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// actix-http logs every malformed request, and every connection that does not send its headers
/// in time, as an ERROR ("stream error: …"): a client could fill the log at will. Those errors
/// are the client's, not the server's, so at most one is let through per
/// [`ClientErrorGate::EVERY_MS`]; other events pass untouched.
#[derive(Default)]
struct ClientErrorGate {
    start: std::sync::OnceLock<std::time::Instant>,
    /// Milliseconds since `start` before which the next one is dropped.
    next_ms: std::sync::atomic::AtomicU64,
}

impl ClientErrorGate {
    const EVERY_MS: u64 = 60_000;

    fn is_client_error(meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() == tracing::Level::ERROR && meta.target().starts_with("actix_http::h1")
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for ClientErrorGate {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !Self::is_client_error(meta) {
            return true;
        }
        let now = self
            .start
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64;
        let next = self.next_ms.load(Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(next, now + Self::EVERY_MS, Relaxed, Relaxed)
                .is_ok()
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Decided per event for the gated ones; the others never need asking again.
        if Self::is_client_error(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let (args, print_only) = match cli.cmd {
        Some(Cmd::Serve(a)) => (a, false),
        Some(Cmd::Config(a)) => (a, true),
        Some(Cmd::Cert(CertCmd::Dev { out, client_name })) => {
            match evgrid::tls::dev::write(&out, &client_name) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    return;
                }
                Err(e) => {
                    eprintln!("evgrid: {e}");
                    std::process::exit(1);
                }
            }
        }
        None => (cli.serve, false),
    };
    let cfg = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("evgrid: {e}");
            std::process::exit(2);
        }
    };
    if print_only {
        print!(
            "{}",
            toml::to_string_pretty(&cfg).expect("config serializes")
        );
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log));
    let most = filter.max_level_hint();
    {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter)
                    .with_filter(ClientErrorGate::default()),
            )
            .init();
    }
    // The bridge from `log` (ntex, rustls) lets every record through to tracing, which then
    // filters it: building and dispatching the records ntex logs per packet at trace level cost
    // about 2 % of the broker's CPU in a saturated fan-in. The filter's own ceiling stops them at
    // the macro instead.
    log::set_max_level(match most {
        Some(l) if l == tracing::level_filters::LevelFilter::OFF => log::LevelFilter::Off,
        Some(l) if l == tracing::level_filters::LevelFilter::ERROR => log::LevelFilter::Error,
        Some(l) if l == tracing::level_filters::LevelFilter::WARN => log::LevelFilter::Warn,
        Some(l) if l == tracing::level_filters::LevelFilter::INFO => log::LevelFilter::Info,
        Some(l) if l == tracing::level_filters::LevelFilter::DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    });
    if let Err(e) = evgrid::app::run(cfg) {
        eprintln!("evgrid: {e}");
        std::process::exit(1);
    }
}
