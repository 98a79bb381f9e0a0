//! The fleet's cloud side: the backend reading `devices/+/telemetry` through a shared
//! subscription (`$share/backend/…`, one message to one member), and the alerter broadcasting
//! one QoS 1 alert per interval to `alerts/all`. Owns the telemetry receive accounting and the
//! alerts' publish times; never touches a device's state.

use super::conn::{Conn, Ev, Open};
use super::{Schedule, Shared};
use hdrhistogram::Histogram;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a backend member hands back.
pub struct MemberOut {
    /// (device << 32 | sequence) of each distinct telemetry message received.
    pub got: HashSet<u64>,
    pub dups: u64,
    /// End-to-end latency (first send → receipt, ns) of telemetry sent before the storm.
    pub steady: Histogram<u64>,
    pub error: Option<String>,
}

/// Connects one of the cloud side's clients (a clean, non-persistent session).
async fn open_cloud(sh: &Shared, role: &str, deadline: Instant) -> Result<Conn, String> {
    let client_id = format!("{}-{role}", sh.prefix);
    let (c, _) = Conn::open(&Open {
        target: sh.target,
        source: None,
        client_id: &client_id,
        v5: sh.v5,
        keep_alive: sh.keep_alive,
        clean: true,
        session_expiry: None,
        deadline,
    })
    .await?;
    Ok(c)
}

/// Connects backend member `m` and subscribes; the run waits for this before devices start.
pub async fn open_member(sh: &Shared, m: u32) -> Result<Conn, String> {
    let deadline = Instant::now() + sh.connect_timeout;
    let mut c = open_cloud(sh, &format!("backend-{m}"), deadline).await?;
    c.subscribe("$share/backend/devices/+/telemetry", 1, deadline)
        .await?;
    Ok(c)
}

pub async fn member(
    mut c: Conn,
    sh: Arc<Shared>,
    mut sched: watch::Receiver<Option<Schedule>>,
) -> MemberOut {
    let mut out = MemberOut {
        got: HashSet::new(),
        dups: 0,
        steady: Histogram::new(3).expect("3 significant digits"),
        error: None,
    };
    let mut ping = tokio::time::interval(Duration::from_secs(u64::from(sh.keep_alive) / 2 + 1));
    ping.reset();
    loop {
        let s = *sched.borrow_and_update();
        // Members stop a second after the devices, for what is still in flight.
        if let Some(s) = s
            && sh.clock.now_ns() >= s.stop_ns + 1_000_000_000
        {
            break;
        }
        let wake = match s {
            Some(s) => sh.clock.instant_at(s.stop_ns + 1_000_000_000),
            None => std::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = sched.changed() => {}
            _ = ping.tick() => {
                crate::mqtt::codec::encode_pingreq(&mut c.wbuf);
                if let Err(e) = c.flush().await {
                    out.error = Some(format!("PINGREQ: {e}"));
                    return out;
                }
            }
            r = c.read() => {
                match r {
                    Ok(n) if n > 0 => {}
                    Ok(_) => { out.error = Some("the broker closed the connection".into()); return out; }
                    Err(e) => { out.error = Some(format!("read: {e}")); return out; }
                }
                let evs = match c.take() {
                    Ok(e) => e,
                    Err(e) => { out.error = Some(e); return out; }
                };
                let storm = s.map_or(u64::MAX, |s| s.storm_ns);
                for ev in evs {
                    if let Ev::Publish { qos, pid, head } = ev {
                        if qos > 0 {
                            c.puback(pid);
                        }
                        let dev = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes"));
                        let seq = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
                        let sent = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
                        if !out.got.insert((u64::from(dev) << 32) | u64::from(seq)) {
                            out.dups += 1;
                            continue;
                        }
                        let now = sh.clock.now_ns();
                        if sent < storm {
                            let _ = out.steady.record(now.saturating_sub(sent).max(1));
                        }
                    }
                }
                if let Err(e) = c.flush().await {
                    out.error = Some(format!("write: {e}"));
                    return out;
                }
            }
        }
    }
    c.close().await;
    out
}

/// Connects the alerter.
pub async fn open_alerter(sh: &Shared) -> Result<Conn, String> {
    open_cloud(sh, "alerter", Instant::now() + sh.connect_timeout).await
}

/// Publishes alert k at `steady + k × interval` until publishing ends; answers how many it
/// published and whether each was acknowledged.
pub async fn alerter(mut c: Conn, sh: Arc<Shared>, s: Schedule) -> (usize, usize, Option<String>) {
    let mut k = 0usize;
    let mut acked = 0usize;
    loop {
        let at = s.steady_ns + k as u64 * s.alert_ns;
        if at >= s.end_publish_ns || k >= sh.max_alerts {
            break;
        }
        let deadline = sh.clock.instant_at(at);
        // Read PUBACKs while waiting for the next alert.
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => break,
                r = c.read() => match r {
                    Ok(n) if n > 0 => match c.take() {
                        Ok(evs) => acked += evs.iter().filter(|e| matches!(e, Ev::PubAck { .. })).count(),
                        Err(e) => return (k, acked, Some(e)),
                    },
                    _ => return (k, acked, Some("the broker closed the alerter's connection".into())),
                },
            }
        }
        let now = sh.clock.now_ns();
        sh.alert_pub[k].store(now, Ordering::Relaxed);
        let mut head = [0u8; 16];
        head[0..4].copy_from_slice(&(k as u32).to_be_bytes());
        head[8..16].copy_from_slice(&now.to_be_bytes());
        let pid = (k % 65535) as u16 + 1;
        c.publish("alerts/all", 1, pid, false, &head, sh.payload);
        if let Err(e) = c.flush().await {
            return (k, acked, Some(format!("write: {e}")));
        }
        k += 1;
    }
    // The last PUBACKs.
    let until = Instant::now() + Duration::from_secs(2);
    while acked < k {
        match tokio::time::timeout_at(until, c.read()).await {
            Ok(Ok(n)) if n > 0 => {
                if let Ok(evs) = c.take() {
                    acked += evs
                        .iter()
                        .filter(|e| matches!(e, Ev::PubAck { .. }))
                        .count();
                }
            }
            _ => break,
        }
    }
    c.close().await;
    (k, acked, None)
}
