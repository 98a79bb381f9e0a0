//! `http-publish`: keep-alive publishers of CloudEvent batches, closed or open loop.

use super::*;

struct PubCfg {
    path: String,
    key_header: String,
    batch: usize,
    size: usize,
    /// requests/s per connection (open loop)
    rate: Option<f64>,
    connections: usize,
}

pub async fn http_publish(a: HttpPublishArgs, int_rx: watch::Receiver<bool>) -> u8 {
    let fail = |m: String| {
        eprintln!("error: {m}");
        crate::EXIT_FATAL
    };
    if !(1..=1000).contains(&a.batch) {
        return fail(format!(
            "--batch {}: must be 1 to 1000 (Event Grid's limit)",
            a.batch
        ));
    }
    if let Some(r) = a.rate
        && !(r.is_finite() && r > 0.0)
    {
        return fail(format!("--rate {r}: must be above 0"));
    }
    let s = match setup(&a.http, a.connections, "connections").await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut notes = Vec::new();
    let min = min_event_size();
    let size = a.size.max(min);
    if a.size < min {
        notes.push(format!(
            "--size {} is below the smallest event this generator writes; events are {min} B",
            a.size
        ));
    }
    let body_bytes = 2 + a.batch * (size + 1) - 1;
    if body_bytes > 1024 * 1024 {
        notes.push(format!(
            "requests are {body_bytes} B, above Event Grid's 1 MB request limit"
        ));
    }
    let cfg = Arc::new(PubCfg {
        path: format!(
            "{}/topics/{}:publish?api-version={}",
            s.sh.url.base_path,
            seg(&a.http.topic),
            seg(&a.http.api_version)
        ),
        key_header: format!("SharedAccessKey {}", a.http.key),
        batch: a.batch,
        size,
        rate: a.rate.map(|r| r / a.batch as f64 / a.connections as f64),
        connections: a.connections,
    });
    let o = drive(
        s,
        &a.http,
        false,
        Duration::ZERO,
        int_rx,
        |sh, conns, start_ns, end_ns| {
            conns
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    tokio::spawn(publisher(sh.clone(), cfg.clone(), i, c, start_ns, end_ns))
                })
                .collect()
        },
    )
    .await;
    let fatal = lock(&o.sh.fatal).clone();
    let mut r = base_report(&o, "http-publish", &a.http);
    r.connections = a.connections;
    r.batch_events = a.batch;
    r.event_bytes = Some(size);
    r.request_body_bytes = Some(body_bytes);
    match a.rate {
        Some(rate) => {
            r.mode = "open-loop".into();
            r.mode_note = format!(
                "({rate} events/s = {:.1} requests/s over {} connections; latency from each request's scheduled send time)",
                rate / a.batch as f64,
                a.connections
            );
            r.target_rate_events_per_s = Some(rate);
            if r.latency_us.send_lag.p99_us > 10_000.0 {
                r.notes.push(
                    "p99 send lag is above 10 ms: the connections could not keep up with the schedule (more --connections, or a lower --rate)".into(),
                );
            }
        }
        None => {
            r.mode = "closed-loop".into();
            r.mode_note = "(each connection sends its next request when the previous one is answered; latency from the actual send)".into();
        }
    }
    r.notes.extend(notes);
    finish(r, a.http.json.as_deref(), fatal)
}

async fn publisher(
    sh: Arc<Shared>,
    cfg: Arc<PubCfg>,
    idx: usize,
    conn: Conn,
    start_ns: u64,
    end_ns: u64,
) {
    let mut conn = Some(conn);
    let mut sched = cfg
        .rate
        .map(|r| OpenLoop::new(start_ns, r, idx as f64 / cfg.connections as f64));
    let mut stop = sh.stop.subscribe();
    let mut body = Vec::with_capacity(cfg.batch * (cfg.size + 1) + 2);
    let mut req = Vec::with_capacity(body.capacity() + 512);
    let mut seq = 0u64;
    let timeout = sh.timeout;
    loop {
        if sh.stopped() {
            break;
        }
        let scheduled = match &mut sched {
            Some(s) => {
                let due = s.next_due_ns();
                if due >= end_ns {
                    break;
                }
                let now = sh.clock.now_ns();
                if due > now {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(sh.clock.instant_at(due))) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                s.take();
                sh.h.send_lag.record(sh.clock.now_ns().saturating_sub(due));
                Some(due)
            }
            None => None,
        };
        let Some(c) = sh.conn(&mut conn).await else {
            break;
        };
        let sent_ns = sh.clock.now_ns();
        let from = scheduled.unwrap_or(sent_ns);
        body.clear();
        put_batch(&mut body, idx, &mut seq, cfg.batch, from, cfg.size);
        req.clear();
        http::write_request(
            &mut req,
            "POST",
            &cfg.path,
            &sh.url.authority,
            &[
                ("Content-Type", BATCH_CT),
                ("Accept", "application/json"),
                ("Authorization", &cfg.key_header),
            ],
            &body,
        );
        sh.c.requests.fetch_add(1, Ordering::Relaxed);
        let res = c.roundtrip(&req, timeout).await;
        let done = sh.clock.now_ns();
        match res {
            Ok(r) if r.status == 200 => {
                sh.h.request.record(done.saturating_sub(from));
                sh.c.requests_ok.fetch_add(1, Ordering::Relaxed);
                sh.c.events_ok
                    .fetch_add(cfg.batch as u64, Ordering::Relaxed);
                sh.ok(done);
            }
            Ok(r) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed
                    .fetch_add(cfg.batch as u64, Ordering::Relaxed);
                sh.status_error("publish", &r);
            }
            Err(e) => {
                sh.c.requests_failed.fetch_add(1, Ordering::Relaxed);
                sh.c.events_failed
                    .fetch_add(cfg.batch as u64, Ordering::Relaxed);
                sh.transport_error("publish", &e);
                sh.backoff().await;
            }
        }
    }
    if let Some(s) = &sched
        && end_ns > 0
    {
        sh.c.not_sent
            .fetch_add(s.due(end_ns - 1), Ordering::Relaxed);
    }
}
