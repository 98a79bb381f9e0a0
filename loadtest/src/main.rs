//! evgrid-loadtest: MQTT load generator, plus HTTP modes for Event Grid (publish to namespace
//! and basic-tier topics, pull, a webhook sink for push delivery). See README.md.
//!
//! The source is grouped by flow; each folder's `mod.rs` says what it owns and must never do.
//!
//! - `mqtt/`: the MQTT scenarios — plans, the run, one task per connection, the codec.
//! - `http/`: `http-publish` and `pull`, the HTTP/1.1 framing, Event Grid wire details.
//! - `sink/`: `webhook-sink`, the receiving end of push delivery.
//! - `fleet/`: `fleet`, the large-fleet scenario (devices, a shared-subscription backend, an
//!   alert broadcast, a reconnect storm) on connections of its own, lean enough for 100,000.
//! - `e2e/`: `e2e` and `http-mqtt`, the scenarios across the MQTT broker and the event grid
//!   (an MQTT run and an HTTP run side by side, and the accounting across them).
//! - `report/`: counters, histograms, loss accounting, the JSON, summary and SVG reports,
//!   `compare`.
//! - At the root: this entry point (subcommand dispatch, `compare` rounds, exit codes), the
//!   command line (`cli`), and what every flow shares: the run clock (`clock`), the open-loop
//!   schedule (`sched`), name resolution (`net`) and the streams connections run over
//!   (`transport/`: TCP, TLS, MQTT over WebSocket).
//!
//! No evgrid crate is a dependency: every server is measured from the outside, over sockets.

mod cli;
mod clock;
mod e2e;
mod fleet;
mod http;
mod mqtt;
mod net;
mod report;
mod sched;
mod sink;
mod transport;

use clap::Parser;
use cli::{Args, Cli, Cmd};
use mqtt::preset;
use mqtt::run::{self, RunOpts, Scenario};
use report::{compare, stats, svg};
use std::process::ExitCode;
use tokio::sync::watch;

/// Exit codes.
const EXIT_FATAL: u8 = 2;
const EXIT_THRESHOLD: u8 = 3;
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let threads = match &cli.cmd {
        Cmd::Conn(a) | Cmd::Sub(a) | Cmd::Pub(a) | Cmd::Fanin(a) | Cmd::Fanout(a) | Cmd::P2p(a) => {
            a.run.threads
        }
        Cmd::Compare(c) => c.args.run.threads,
        Cmd::Preset(p) => p.args.run.threads,
        Cmd::HttpPublish(h) => h.http.run.threads,
        Cmd::Pull(p) => p.http.run.threads,
        Cmd::WebhookSink(w) => w.run.threads,
        Cmd::E2e(e) => e.mqtt.run.threads,
        Cmd::HttpMqtt(h) => h.mqtt.run.threads,
        Cmd::Fleet(f) => f.threads,
    }
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    .max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let code = rt.block_on(real_main(cli));
    // do not wait for stray tasks (e.g. a stuck connection) on shutdown
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    ExitCode::from(code)
}

async fn real_main(cli: Cli) -> u8 {
    let nofile = stats::raise_nofile_limit();
    let (int_tx, int_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ninterrupted: stopping and printing the summary so far (Ctrl-C again to quit at once)"
            );
            let _ = int_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(EXIT_INTERRUPTED as i32);
            }
        }
    });
    match cli.cmd {
        Cmd::Conn(a) => single(Scenario::Conn, a, nofile, int_rx).await,
        Cmd::Sub(a) => single(Scenario::Sub, a, nofile, int_rx).await,
        Cmd::Pub(a) => single(Scenario::Pub, a, nofile, int_rx).await,
        Cmd::Fanin(a) => single(Scenario::Fanin, a, nofile, int_rx).await,
        Cmd::Fanout(a) => single(Scenario::Fanout, a, nofile, int_rx).await,
        Cmd::P2p(a) => single(Scenario::P2p, a, nofile, int_rx).await,
        Cmd::Preset(p) => {
            let preset = match preset::parse(&p.name) {
                Ok(x) => x,
                Err(e) => return fatal(&e),
            };
            let (scenario, args, desc) = match preset::apply(&preset, p.scale, &p.args) {
                Ok(x) => x,
                Err(e) => return fatal(&e),
            };
            eprintln!("preset {} (scale {}): {desc}", p.name, p.scale);
            if p.dry_run {
                if let Err(e) = run::build_plan(scenario, &args) {
                    return fatal(&e);
                }
                println!("{desc}");
                return 0;
            }
            single(scenario, args, nofile, int_rx).await
        }
        Cmd::Compare(c) => compare_cmd(c, nofile, int_rx).await,
        Cmd::HttpPublish(h) => http::load::http_publish(h, int_rx).await,
        Cmd::Pull(p) => http::load::pull(p, int_rx).await,
        Cmd::WebhookSink(w) => sink::webhook_sink(w, int_rx).await,
        Cmd::E2e(e) => e2e::e2e(e, nofile, int_rx).await,
        Cmd::HttpMqtt(h) => e2e::http_mqtt(h, nofile, int_rx).await,
        Cmd::Fleet(f) => fleet::fleet(f, nofile).await,
    }
}

fn fatal(msg: &str) -> u8 {
    eprintln!("error: {msg}");
    EXIT_FATAL
}

async fn prepare(
    args: &Args,
    nofile: Option<(u64, u64)>,
) -> Result<(std::net::SocketAddr, RunOpts), String> {
    let target = net::resolve(&args.host, args.port).await?;
    let ifaddrs = run::parse_ifaddrs(&args.ifaddr, target)?;
    let transport = transport::Transport::new(&args.transport, &args.host, args.port)?;
    args.run.check()?;
    args.limits.check()?;
    Ok((
        target,
        RunOpts {
            progress: args.run.progress(),
            broker_pid: args.run.broker_pid,
            ifaddrs,
            nofile,
            hook: None,
            transport: std::sync::Arc::new(transport),
        },
    ))
}

async fn single(
    scenario: Scenario,
    args: Args,
    nofile: Option<(u64, u64)>,
    int_rx: watch::Receiver<bool>,
) -> u8 {
    let plan = match run::build_plan(scenario, &args) {
        Ok(p) => p,
        Err(e) => return fatal(&e),
    };
    let t = &args.transport.tls;
    if let Err(e) = t.check_used(t.tls, "add --tls") {
        return fatal(&e);
    }
    let (target, opts) = match prepare(&args, nofile).await {
        Ok(x) => x,
        Err(e) => return fatal(&e),
    };
    let mut report = match run::execute(plan, target, opts, int_rx).await {
        Ok(r) => r,
        Err(run::Fatal(msg)) => return fatal(&msg),
    };
    report.check_thresholds(args.limits.max_p99, args.limits.max_loss);
    print!("{}", report.summary());
    let mut code = 0;
    if let Some(path) = &args.run.json
        && let Err(e) = report::write_json(path, &report)
    {
        eprintln!("error: {e}");
        code = EXIT_FATAL;
    }
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, svg::render(&report))
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        code = EXIT_FATAL;
    }
    if code != 0 {
        return code;
    }
    if report.interrupted {
        return EXIT_INTERRUPTED;
    }
    if !report.thresholds.passed {
        return EXIT_THRESHOLD;
    }
    0
}

async fn compare_cmd(
    c: cli::CompareArgs,
    nofile: Option<(u64, u64)>,
    int_rx: watch::Receiver<bool>,
) -> u8 {
    let (scenario, mut base) = match c.scenario.as_str() {
        "fanin" => (Scenario::Fanin, c.args.clone()),
        "fanout" => (Scenario::Fanout, c.args.clone()),
        "p2p" => (Scenario::P2p, c.args.clone()),
        "pub" => (Scenario::Pub, c.args.clone()),
        "sub" => (Scenario::Sub, c.args.clone()),
        "conn" => (Scenario::Conn, c.args.clone()),
        "pub-qos1" => {
            let mut a = c.args.clone();
            a.qos = a.qos.or(Some(1));
            (Scenario::Pub, a)
        }
        other => {
            return fatal(&format!(
                "--scenario {other}: expected fanin, fanout, p2p or pub-qos1 (or conn, sub, pub)"
            ));
        }
    };
    if c.rounds == 0 {
        return fatal("--rounds must be at least 1");
    }
    let t = &c.args.transport.tls;
    if let Err(e) = t.check_used(t.tls, "add --tls") {
        return fatal(&e);
    }
    let targets = match (
        compare::split_host_port(&c.a),
        compare::split_host_port(&c.b),
    ) {
        (Ok(a), Ok(b)) => [("A", a), ("B", b)],
        (Err(e), _) | (_, Err(e)) => return fatal(&e),
    };
    // per-run outputs make no sense here; --json is the comparison
    let json = base.run.json.take();
    let svg_path = base.report.take();
    if svg_path.is_some() {
        eprintln!("note: --report is ignored by compare");
    }
    let mut runs = Vec::new();
    'rounds: for round in 0..c.rounds {
        for (label, (host, port)) in &targets {
            if *int_rx.borrow() {
                break 'rounds;
            }
            let pids: Vec<u32> = c.a_pid.iter().chain(&c.b_pid).copied().collect();
            let waited = stats::settle(&pids, c.settle_max).await;
            if waited >= 1.0 {
                eprintln!("(waited {waited:.1} s for the brokers to go idle)");
            }
            let mut a = base.clone();
            a.host = host.clone();
            a.port = *port;
            a.run.json = Some(std::path::PathBuf::new()); // suppress the progress line
            let plan = match run::build_plan(scenario, &a) {
                Ok(p) => p,
                Err(e) => return fatal(&e),
            };
            let res = match prepare(&a, nofile).await {
                Ok((target, mut opts)) => {
                    opts.progress = false;
                    run::execute(plan, target, opts, int_rx.clone())
                        .await
                        .map_err(|f| f.0)
                }
                Err(e) => Err(e),
            };
            match res {
                Ok(r) => {
                    eprintln!(
                        "round {}/{} {label} {host}:{port}: sent {} received {} ({:.0}/s) lost {} p50 {:.1} us p99 {:.1} us",
                        round + 1,
                        c.rounds,
                        r.messages.sent,
                        r.messages.received,
                        r.throughput.received_per_s,
                        r.messages.acct.lost,
                        r.main_latency().p50_us,
                        r.main_latency().p99_us
                    );
                    runs.push(compare::Run {
                        broker: label.to_string(),
                        round,
                        report: Some(r),
                        error: None,
                    });
                }
                Err(e) => {
                    eprintln!(
                        "round {}/{} {label} {host}:{port}: failed: {e}",
                        round + 1,
                        c.rounds
                    );
                    runs.push(compare::Run {
                        broker: label.to_string(),
                        round,
                        report: None,
                        error: Some(e),
                    });
                }
            }
            // let the brokers settle between runs
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    let cmp = compare::summarize(&c.scenario, &c.a, &c.b, c.rounds, runs);
    print!("{}", cmp.table());
    if let Some(path) = json
        && let Err(e) = report::write_json(&path, &cmp)
    {
        return fatal(&e);
    }
    if *int_rx.borrow() {
        return EXIT_INTERRUPTED;
    }
    if cmp.runs.iter().all(|r| r.report.is_none()) {
        return EXIT_FATAL;
    }
    0
}
