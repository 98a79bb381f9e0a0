//! The scenarios across the MQTT broker and the event grid of one namespace, measured at both
//! ends from the outside:
//!
//! - `e2e` (`mqtt_pull`): MQTT publishers → routed into a namespace topic as CloudEvents
//!   (docs/eventgrid.md §7.6) → pull consumers (or a push subscription to a webhook sink).
//! - `http-mqtt` (`http_mqtt`): HTTP publishers of MQTT messages (docs/eventgrid.md §7.8) → MQTT
//!   subscribers.
//! - `setup`: `e2e --setup`, the management API calls that make the route topic, its
//!   subscription and the namespace's routing.
//! - `report`: the report across both sides, with each side's own report inside.
//!
//! This flow only orchestrates: the MQTT side is a `mqtt::run` run, the HTTP side an
//! `http::load` run, each as their own scenarios have them; it owns the timeline across them
//! (who starts first, how long to wait for what was published) and the accounting across them.
//! It never speaks either protocol itself.

pub mod args;
mod http_mqtt;
mod mqtt_pull;
mod report;
mod setup;

pub use http_mqtt::http_mqtt;
pub use mqtt_pull::e2e;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::cli::{Args, HttpArgs, RunFlags, TlsFlags};
use crate::clock::Clock;
use crate::report::write_json;
use args::NamespaceArgs;
use report::E2eReport;

/// How long an HTTP side runs unless stopped: the orchestrator always stops it.
const UNTIL_STOPPED: &str = "1000000s";

/// The stop switches of both sides, and Ctrl-C forwarded to them.
struct Ctl {
    clock: Clock,
    /// stops the HTTP side (as its Ctrl-C would)
    http: watch::Sender<bool>,
    /// stops the MQTT side
    mqtt: watch::Sender<bool>,
    interrupted: Arc<AtomicBool>,
}

impl Ctl {
    fn new(mut int_rx: watch::Receiver<bool>) -> Ctl {
        let (http, _) = watch::channel(false);
        let (mqtt, _) = watch::channel(false);
        let interrupted = Arc::new(AtomicBool::new(false));
        let (h, m, i) = (http.clone(), mqtt.clone(), interrupted.clone());
        tokio::spawn(async move {
            if int_rx.wait_for(|v| *v).await.is_ok() {
                i.store(true, Ordering::Relaxed);
                h.send_replace(true);
                m.send_replace(true);
            }
        });
        Ctl {
            clock: Clock::new(),
            http,
            mqtt,
            interrupted,
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    fn stop_all(&self) {
        self.http.send_replace(true);
        self.mqtt.send_replace(true);
    }
}

/// The HTTP side's arguments: the namespace endpoint, the MQTT side's connect timeout, run
/// until stopped, no JSON of its own (it is inside the report), a progress line when
/// `progress`.
fn http_args(ns: &NamespaceArgs, m: &Args, progress: bool) -> HttpArgs {
    HttpArgs {
        url: ns.url.clone(),
        topic: None,
        key: ns.key.clone(),
        api_version: ns.api_version.clone(),
        duration: UNTIL_STOPPED.into(),
        connect_timeout: m.connect_timeout,
        timeout: ns.http_timeout,
        tls: https_flags(ns, m),
        run: RunFlags {
            quiet: !progress,
            ..Default::default()
        },
    }
}

/// The HTTP side's TLS: an https:// --url trusts the MQTT side's --cafile and presents its
/// --cert; an http:// one has none. The TLS files must serve one side or the other.
fn https_flags(ns: &NamespaceArgs, m: &Args) -> TlsFlags {
    if ns.url.trim_start().starts_with("https://") {
        TlsFlags {
            tls: false,
            ..m.transport.tls.clone()
        }
    } else {
        TlsFlags::default()
    }
}

/// TLS files with neither side on TLS would go unused: an error.
fn check_tls_files(ns: &NamespaceArgs, m: &Args) -> Result<(), String> {
    let t = &m.transport.tls;
    t.check_used(
        t.tls || https_flags(ns, m).cafile.is_some() || https_flags(ns, m).cert.is_some(),
        "add --tls (MQTT side) or use an https:// --url",
    )
}

fn fail(msg: &str) -> u8 {
    eprintln!("error: {msg}");
    crate::EXIT_FATAL
}

/// Prints the summary, writes --json; the exit code.
fn finish(r: &E2eReport, json: Option<&std::path::Path>) -> u8 {
    print!("{}", r.summary());
    if let Some(path) = json
        && let Err(e) = write_json(path, r)
    {
        return fail(&e);
    }
    if r.interrupted {
        return crate::EXIT_INTERRUPTED;
    }
    if !r.thresholds.passed {
        return crate::EXIT_THRESHOLD;
    }
    0
}

#[cfg(test)]
mod tests;
