//! Start-up and shutdown: the actix system, the actor threads, both edges.
//!
//! Owns the thread layout: actix on the main thread (actix-web), arbiters for the actors, and the
//! ntex system on its own thread for MQTT (notes/stack-spike.md). SIGINT/SIGTERM are handled by
//! actix-web; the MQTT server is stopped from there.

use std::net::TcpListener;

use actix::Arbiter;
use actix_web::{App, HttpServer};
use evgrid_actors::Broker;
use evgrid_actors::session::SessionLimits;

use crate::config::Config;

/// Raises the open-file soft limit to the hard limit: every MQTT connection is a descriptor, and
/// the usual soft limit of 1024 would cap a broker at about a thousand clients.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: l.rlim_max,
                rlim_max: l.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!(soft = l.rlim_cur, "could not raise the open-file limit");
            }
        }
    }
}

/// Runs evgrid until SIGINT/SIGTERM. Prints the bound addresses (tests read them).
pub fn run(cfg: Config) -> std::io::Result<()> {
    raise_fd_limit();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("data directory {}: {e}", cfg.data_dir.display()),
        )
    })?;
    if cfg.mqtt.allow_anonymous {
        tracing::warn!("anonymous MQTT clients are allowed (mqtt.allow_anonymous = true)");
    }
    let http_listener = TcpListener::bind(cfg.http.bind)?;
    let http_addr = http_listener.local_addr()?;
    let sys = actix::System::new();
    sys.block_on(async move {
        let threads = if cfg.mqtt.actor_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.mqtt.actor_threads
        };
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let m = &cfg.mqtt;
        let broker = Broker::start(
            arbiters.iter().map(|a| a.handle()).collect(),
            m.router_shards,
            SessionLimits {
                max_queued_messages: m.max_queued_messages,
                max_queued_bytes: m.max_queued_bytes,
                max_outbound: m.max_outbound_messages,
                max_session_expiry_secs: m.max_session_expiry,
            },
        );
        let mqtt = crate::mqtt::start(&cfg.mqtt, broker)?;
        // One line per listener, stable format: scripts and tests parse it.
        println!("evgrid: mqtt listening on {}", mqtt.addr);
        println!("evgrid: http listening on {http_addr}");
        tracing::info!(mqtt = %mqtt.addr, http = %http_addr, "evgrid started");
        let res = HttpServer::new(|| App::new().configure(crate::http::configure))
            .workers(cfg.http.workers)
            .listen(http_listener)?
            .run()
            .await;
        tracing::info!("shutting down");
        mqtt.stop().await;
        for a in arbiters {
            a.stop();
        }
        res
    })
}
