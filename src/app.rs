//! Start-up and shutdown: the actix system, the actor threads, both edges.
//!
//! Owns the thread layout: actix on the main thread (actix-web), arbiters for the actors, and the
//! ntex system on its own thread for MQTT (ARCHITECTURE.md, "the ntex/actix seam"). Signals are
//! handled here: SIGHUP reloads the TLS certificates (`tls::reload`) and stops nothing; on
//! SIGINT/SIGTERM the MQTT server stops first (its connections' lifecycle events still reach
//! their system topics), then HTTP, then the actor threads. The edges never call back
//! into this module: it wires them, they do not know it.

use actix::Arbiter;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use evgrid_actors::bridge::Bridge;
use evgrid_actors::grid::{Grid, GridConfig};
use evgrid_actors::mqtt::broker::{Broker, Durable};
use evgrid_actors::mqtt::persist;
use evgrid_actors::store::{self, Store, Writer};

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

/// Lowers the calling thread's scheduling priority by `nice` (Linux keeps a nice value per
/// thread, and glibc's `nice` changes the caller's). The grid's threads run this way (`events.nice`): when MQTT delivery and the event
/// grid want more CPU than there is, MQTT delivery gets it first and routing into topics takes
/// what is left (QoS 0 routing drops and counts; QoS 1 PUBACKs wait for the commit), so routing
/// costs MQTT delivery little even with the cores saturated.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: nice only changes the calling thread's scheduling priority. Raising niceness needs
    // no privilege, so the increment cannot be refused (at 19 it stays 19).
    unsafe {
        libc::nice(nice);
    }
}

/// The first non-loopback MQTT listener address when clients without credentials are accepted
/// (`mqtt.allow_anonymous`): the start-up warning names it.
fn anonymous_exposed(m: &crate::config::MqttConfig) -> Option<String> {
    if !m.allow_anonymous {
        return None;
    }
    let tcp = m.tcp_enabled.then(|| m.bind.to_string());
    [
        tcp,
        Some(m.tls.bind.clone()),
        Some(m.ws_bind.clone()),
        Some(m.wss_bind.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|b| b.trim().to_string())
    .filter(|b| !b.is_empty())
    .find(|b| {
        b.parse::<std::net::SocketAddr>()
            .map_or(true, |a| !a.ip().is_loopback())
    })
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// Opens the store and starts its writer.
fn open_store(cfg: &Config) -> std::io::Result<Writer> {
    let backend: Arc<dyn Store> = match cfg.store.backend.as_str() {
        "memory" => Arc::new(store::mem::MemStore::new()),
        "log" => Arc::new(
            store::log::LogStore::open_with(&cfg.data_dir, cfg.store.segment_bytes)
                .map_err(|e| other(e.to_string()))?,
        ),
        _ => {
            let path = cfg.data_dir.join("store.redb");
            Arc::new(store::redb::RedbStore::open(&path).map_err(|e| other(e.to_string()))?)
        }
    };
    let nice = cfg.events.nice;
    let writer = Writer::start_with(backend, move || lower_priority(nice));
    if cfg.store.backend != "memory" {
        writer.set_free_floor(cfg.store.min_free_bytes);
        if let Some(free) = writer.store().free_bytes()
            && free < cfg.store.min_free_bytes
        {
            tracing::warn!(
                free,
                floor = cfg.store.min_free_bytes,
                dir = %cfg.data_dir.display(),
                "the data directory's file system is below store.min_free_bytes: publishes are refused until space is freed"
            );
        }
    }
    Ok(writer)
}

/// What the broker keeps across restarts: with `mqtt.persistence = durable` (and a durable
/// store), its retained messages, read back now.
fn mqtt_durable(cfg: &Config, writer: &Writer) -> std::io::Result<Option<Durable>> {
    if cfg.mqtt.persistence != "durable" || cfg.store.backend == "memory" {
        return Ok(None);
    }
    let mut retained = Vec::new();
    let rows = writer
        .store()
        .mqtt_entries(persist::RETAINED)
        .map_err(|e| other(format!("cannot read the retained messages: {e}")))?;
    for (key, rec) in rows {
        match persist::decode_retained(&rec) {
            Some(r) => retained.push(r),
            // One damaged record must not keep the broker down; it is replaced on the next set.
            None => tracing::warn!(key, "a stored retained message is damaged; skipped"),
        }
    }
    tracing::info!(retained = retained.len(), "retained messages restored");
    Ok(Some(Durable {
        writer: writer.clone(),
        retained,
    }))
}

/// Puts the persistent sessions the store holds back in place (durable broker only), before
/// the listeners open.
async fn restore_sessions(cfg: &Config, writer: &Writer, broker: &Broker) -> std::io::Result<()> {
    if cfg.mqtt.persistence != "durable" || cfg.store.backend == "memory" {
        return Ok(());
    }
    let read = |p| {
        writer
            .store()
            .mqtt_entries(p)
            .map_err(|e| other(format!("cannot read the MQTT sessions: {e}")))
    };
    let (sessions, orphans) = persist::restore(
        read(persist::SESSIONS)?,
        read(persist::SUBS)?,
        read(persist::MSGS)?,
        read(persist::INBOUND_QOS2)?,
        read(persist::WILLS)?,
    );
    if !orphans.is_empty() {
        tracing::warn!(
            records = orphans.len(),
            "MQTT session records without a session (or damaged) deleted"
        );
        let ops = orphans
            .into_iter()
            .map(|key| store::Op::DeleteMqtt { key })
            .collect();
        if let Err(e) = writer.submit(ops).await {
            tracing::warn!(error = %e, "deleting stale MQTT session records failed");
        }
    }
    let (n, subs) = (
        sessions.len(),
        sessions.iter().map(|s| s.subs.len()).sum::<usize>(),
    );
    let msgs = sessions.iter().map(|s| s.saved.len()).sum::<usize>();
    broker.restore(sessions).await;
    // The journals (`msg/`) and inbound QoS 2 ids (`inq2/`) stay: each session keeps its own up
    // to date (the ids before each PUBREC and PUBCOMP).
    tracing::info!(
        sessions = n,
        subscriptions = subs,
        messages = msgs,
        "persistent MQTT sessions restored"
    );
    Ok(())
}

/// Rebuilds the grid from the store, applies the resource file.
async fn start_grid(
    cfg: &Config,
    writer: Writer,
    arbiters: &[Arbiter],
    http_addr: std::net::SocketAddr,
) -> std::io::Result<Grid> {
    let mut push = cfg.push.push_config(http_addr);
    push.tls = Some(
        crate::tls::client::push_client_config(&cfg.push.tls).map_err(|e| other(e.to_string()))?,
    );
    let grid = Grid::start(
        writer,
        arbiters.iter().map(|a| a.handle()).collect(),
        GridConfig {
            limits: cfg.events.resource_limits(),
            tick: Duration::from_millis(cfg.events.tick_ms),
            push,
            mqtt_hostname: cfg.mqtt.hostname.clone(),
            backlog: cfg.store.window_limits(),
        },
    )
    .await
    .map_err(|e| other(format!("cannot load the store: {e}")))?;
    if !cfg.resources.as_os_str().is_empty() {
        let n = crate::resource_file::apply(&grid, &cfg.resources)
            .await
            .map_err(other)?;
        tracing::info!(resources = n, file = %cfg.resources.display(), "resource file applied");
    }
    Ok(grid)
}

/// The management API key: configured, or kept in `admin.key` in the data directory (created
/// with a fresh key, readable by the owner only, and printed once, at first start).
fn admin_key(cfg: &Config) -> std::io::Result<String> {
    if !cfg.admin_key.is_empty() {
        return Ok(cfg.admin_key.clone());
    }
    let path = cfg.data_dir.join("admin.key");
    match std::fs::read_to_string(&path) {
        Ok(k) if k.trim().len() >= 16 => return Ok(k.trim().to_string()),
        Ok(_) => {
            return Err(other(format!(
                "{} holds no usable key (16 characters at least); fix or delete it",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(other(format!("{}: {e}", path.display()))),
    }
    let key = evgrid_actors::model::keys::generate_key().map_err(|e| other(e.to_string()))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| other(format!("{}: {e}", path.display())))?;
        writeln!(f, "{key}")?;
        f.sync_all()?;
    }
    println!(
        "evgrid: generated the management API key (kept in {}): {key}",
        path.display()
    );
    Ok(key)
}

/// The HTTPS listener (`http.tls`), when configured: its TLS configuration (kept by the caller
/// for certificate reload) and its socket, bound before anything starts so a taken port fails
/// the start.
pub fn https_listener(
    cfg: &Config,
) -> std::io::Result<Option<(crate::tls::ServerTls, std::net::TcpListener)>> {
    let t = &cfg.http.tls;
    let Some(addr) = t.addr().filter(|_| t.enabled()) else {
        return Ok(None);
    };
    let tls = crate::tls::ServerTls::load("http.tls", t, &[b"http/1.1"])
        .map_err(|e| other(e.to_string()))?;
    let listener = crate::net::listen(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("http.tls.bind {addr}: {e}")))?;
    Ok(Some((tls, listener)))
}

/// Resolves on the first SIGTERM (true: stop gracefully), SIGINT or SIGQUIT (false: at once).
/// SIGHUP reloads the TLS certificates (through `reload`) and does not stop anything.
/// The handlers are installed when this is called, not when the future is first polled.
fn signals(reload: crate::tls::reload::Reloader) -> std::io::Result<impl Future<Output = bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("SIGTERM received; stopping gracefully");
                    return true;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT received; stopping");
                    return false;
                }
                _ = quit.recv() => {
                    tracing::info!("SIGQUIT received; stopping");
                    return false;
                }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received; reloading the TLS certificates");
                    reload.reload_all();
                }
            }
        }
    })
}

/// Runs evgrid until SIGINT/SIGTERM. Prints the bound addresses (tests read them).
pub fn run(cfg: Config) -> std::io::Result<()> {
    raise_fd_limit();
    // Owner only when evgrid creates it: the store and `admin.key` in it hold every key (an
    // existing directory is the operator's to set).
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.data_dir)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("data directory {}: {e}", cfg.data_dir.display()),
                )
            })?;
    }
    if let Some(exposed) = anonymous_exposed(&cfg.mqtt) {
        tracing::warn!(
            listener = %exposed,
            "MQTT clients without credentials are accepted on a non-loopback listener \
             (mqtt.allow_anonymous = true)"
        );
    }
    if cfg.mqtt.tls.client_auth == crate::tls::ClientAuth::Required
        && cfg.mqtt.tcp_enabled
        && !cfg.mqtt.bind.ip().is_loopback()
    {
        tracing::warn!(
            bind = %cfg.mqtt.bind,
            "mqtt.tls.client_auth = required, but the plain MQTT listener takes clients without a \
             certificate (set mqtt.tcp_enabled = false to serve MQTT over TLS only)"
        );
    }
    let http_listener = crate::net::listen(cfg.http.bind)?;
    let http_addr = http_listener.local_addr()?;
    let https = https_listener(&cfg)?;
    // The HTTPS listener's configuration, for certificate reload (new handshakes present the
    // reloaded certificate through ServerTls's resolver).
    let https_tls: Option<crate::tls::ServerTls> = https.as_ref().map(|(t, _)| t.clone());
    let sys = actix::System::new();
    sys.block_on(async move {
        let threads = if cfg.mqtt.actor_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.mqtt.actor_threads
        };
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        let m = &cfg.mqtt;
        evgrid_actors::budget::BUDGET.set_limit(cfg.memory_budget_bytes);
        let writer = open_store(&cfg)?;
        let broker = Broker::start_with(
            arbiters.iter().map(|a| a.handle()).collect(),
            m.router_shards,
            m.session_limits(),
            mqtt_durable(&cfg, &writer)?,
        );
        // Joined before the persistent sessions come back, so that their subscriptions are
        // announced to the other nodes too.
        let cluster = match cfg.cluster.settings(&cfg.data_dir) {
            Some(s) => {
                tracing::info!(urls = ?s.urls, node = %s.node, "cluster mode");
                Some(evgrid_actors::cluster::link::Cluster::start(
                    s,
                    broker.clone(),
                )?)
            }
            None => None,
        };
        restore_sessions(&cfg, &writer, &broker).await?;
        let broker_saved = broker.clone();
        // The grid's actors on arbiters of their own: the OS shares the cores between them and
        // the MQTT engine's, where one thread would run a topic actor's batch before the next
        // MQTT delivery (ARCHITECTURE.md, "Threads").
        let grid_threads = match cfg.events.actor_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let grid_arbiters: Vec<Arbiter> = (0..grid_threads)
            .map(|_| {
                let a = Arbiter::new();
                let nice = cfg.events.nice;
                a.spawn_fn(move || lower_priority(nice));
                a
            })
            .collect();
        let grid = start_grid(&cfg, writer, &grid_arbiters, http_addr).await?;
        let bridge = Bridge::new(
            broker,
            grid.clone(),
            cfg.mqtt.namespace.clone(),
            cfg.events.max_event_bytes,
        );
        let state = web::Data::new(crate::http::State {
            grid,
            bridge: bridge.clone(),
            admin_key: admin_key(&cfg)?,
            limits: crate::http::PublishLimits {
                max_event_bytes: cfg.events.max_event_bytes,
                max_request_bytes: cfg.events.max_request_bytes,
                max_events_per_request: cfg.events.max_events_per_request,
                max_events_per_basic_request: cfg.events.max_events_per_basic_request,
            },
            mqtt: crate::http::mqtt::parse::MqttLimits {
                topic: evgrid_actors::mqtt::trie::TopicLimits {
                    max_len: cfg.mqtt.max_topic_length,
                    max_levels: cfg.mqtt.max_topic_levels,
                },
                max_qos: cfg.mqtt.max_qos,
                max_packet_size: cfg.mqtt.max_packet_size as usize,
            },
            body_timeout: Duration::from_millis(cfg.http.body_timeout_ms),
        });
        // Client lifecycle events (docs/eventgrid.md §7.7): the edge queues, the bridge drains
        // into the namespace's system topics.
        let (lifecycle_tx, lifecycle_rx) =
            evgrid_actors::mqtt::lifecycle::channel(cfg.mqtt.lifecycle_backlog);
        let lifecycle = actix::spawn(evgrid_actors::bridge::lifecycle::run(
            lifecycle_rx,
            bridge.grid().clone(),
            bridge.namespace().to_string(),
        ));
        // main has loaded every TLS file once already (tls::check): an error here is a file
        // changed in between.
        let mqtt_tls = match cfg.mqtt.tls.enabled() {
            true => Some(
                crate::tls::ServerTls::load("mqtt.tls", &cfg.mqtt.tls, &[])
                    .map_err(|e| other(e.to_string()))?,
            ),
            false => None,
        };
        // Webhook authentication trusts what push delivery trusts (`push.tls`).
        let webhook = evgrid_actors::bridge::auth::Webhook::start(
            Some(
                crate::tls::client::push_client_config(&cfg.push.tls)
                    .map_err(|e| other(e.to_string()))?,
            ),
            cfg.mqtt.webhook_auth_token.clone(),
        );
        let mqtt = crate::mqtt::start(&cfg.mqtt, mqtt_tls.as_ref(), bridge, lifecycle_tx, webhook)?;
        // Every TLS listener's certificate, reloaded on SIGHUP and when its files change.
        let reloader = crate::tls::reload::watch(
            mqtt_tls
                .into_iter()
                .chain(https_tls)
                .chain(mqtt.wss_tls.clone())
                .collect(),
        )?;
        // HTTPS: the same App on its own server, whose acceptor counts refused handshakes.
        let https = match https {
            Some((tls, listener)) => {
                let addr = listener.local_addr()?;
                let settings = crate::http::tls::HttpsSettings {
                    workers: cfg.http.workers,
                    request_timeout: Duration::from_millis(cfg.http.header_timeout_ms),
                    handshake_timeout: Duration::from_millis(cfg.http.tls.handshake_timeout_ms),
                };
                let srv = crate::http::tls::server(listener, &tls, settings, state.clone())?;
                let handle = srv.handle();
                Some((addr, handle, actix::spawn(srv)))
            }
            None => None,
        };
        let server = HttpServer::new(move || {
            let st = state.clone();
            App::new().configure(move |c| crate::http::configure(c, Some(st)))
        })
        .workers(cfg.http.workers)
        .client_request_timeout(Duration::from_millis(cfg.http.header_timeout_ms))
        // Signals are handled below: actix-server's own handling stops the actix System, and
        // with it the arbiters of every actor, before the MQTT listener has closed its
        // connections, whose Disconnected lifecycle events (docs/eventgrid.md §7.7) then have
        // no topic actor left to be committed to.
        .disable_signals()
        .listen(http_listener)?;
        let server = server.run();
        let handle = server.handle();
        // Installed before the listening lines, so a supervisor (or a test) that signals as
        // soon as it reads them gets a graceful stop, not the default action of a signal nobody
        // handles yet. SIGTERM stops gracefully; SIGINT and SIGQUIT at once (as actix-web does).
        let signalled = signals(reloader)?;
        let mut server = std::pin::pin!(server);
        let first = std::future::poll_fn(|cx| Poll::Ready(server.as_mut().poll(cx))).await;
        // One line per listener, stable format: scripts and tests parse it. The optional
        // listeners come first: a reader that stops at the http line has seen them all.
        if let Some(a) = mqtt.tls_addr {
            println!("evgrid: mqtt-tls listening on {a}");
        }
        if let Some((a, _, _)) = &https {
            println!("evgrid: https listening on {a}");
        }
        if let Some(a) = mqtt.ws_addr {
            println!("evgrid: mqtt-ws listening on {a}");
        }
        if let Some(a) = mqtt.wss_addr {
            println!("evgrid: mqtt-wss listening on {a}");
        }
        if let Some(a) = mqtt.addr {
            println!("evgrid: mqtt listening on {a}");
        }
        println!("evgrid: http listening on {http_addr}");
        tracing::info!(mqtt = ?mqtt.addr, http = %http_addr, "evgrid started");
        let ended = match first {
            Poll::Ready(res) => Err(res),
            Poll::Pending => tokio::select! {
                res = server.as_mut() => Err(res),
                graceful = signalled => Ok(graceful),
            },
        };
        tracing::info!("shutting down");
        // MQTT first, while the actors still run: the connections it closes report their end.
        mqtt.stop().await;
        // Then what the persistent sessions hold, before the store goes.
        let saved =
            tokio::time::timeout(Duration::from_secs(30), broker_saved.save_sessions()).await;
        match saved {
            Ok(n) if n > 0 => tracing::info!(messages = n, "MQTT session messages saved"),
            Ok(_) => {}
            Err(_) => tracing::warn!(
                "saving the MQTT sessions' messages took too long; not all were saved"
            ),
        }
        if let Some(c) = cluster {
            c.stop();
        }
        // The Disconnected events of the connections the stop closed: the queue ends once the
        // MQTT thread has dropped its end.
        let _ = tokio::time::timeout(Duration::from_secs(2), lifecycle).await;
        // Both HTTP servers drain at once (each within its shutdown timeout), not one after the
        // other: the stop command is sent when `stop` is called.
        let graceful = *ended.as_ref().unwrap_or(&false);
        let https_stopped = https.map(|(_, https, task)| {
            let stop = https.stop(graceful);
            async move {
                stop.await;
                let _ = task.await;
            }
        });
        let res = match ended {
            Err(res) => res,
            Ok(graceful) => {
                // The command is sent now; the server future carries it out.
                drop(handle.stop(graceful));
                server.await
            }
        };
        if let Some(stopped) = https_stopped {
            stopped.await;
        }
        for a in arbiters.into_iter().chain(grid_arbiters) {
            a.stop();
        }
        res
    })
}

#[cfg(test)]
mod tests {
    use super::anonymous_exposed;

    /// The warning names a listener only when anonymous clients are on and some MQTT listener
    /// is reachable from elsewhere.
    #[test]
    fn anonymous_warning_only_for_non_loopback_listeners() {
        let mut m = crate::config::MqttConfig {
            bind: "127.0.0.1:1883".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(anonymous_exposed(&m), None);
        m.ws_bind = "0.0.0.0:8083".into();
        assert_eq!(anonymous_exposed(&m).as_deref(), Some("0.0.0.0:8083"));
        m.allow_anonymous = false;
        assert_eq!(anonymous_exposed(&m), None);
        m.allow_anonymous = true;
        m.ws_bind.clear();
        m.bind = "0.0.0.0:1883".parse().unwrap();
        assert_eq!(anonymous_exposed(&m).as_deref(), Some("0.0.0.0:1883"));
        m.tcp_enabled = false;
        assert_eq!(anonymous_exposed(&m), None);
    }
}
