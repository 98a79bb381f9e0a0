//! One device of the fleet: connects with a persistent session and subscribes to `alerts/#`,
//! publishes QoS 1 telemetry to `devices/{i}/telemetry` on its schedule, acknowledges and
//! records the alerts it receives, drops its connection once in the reconnect storm and resumes
//! its session (resending telemetry not yet acknowledged, as a client must). Owns its own
//! bookkeeping (what was acknowledged, which alerts arrived) and hands it back when the run
//! stops; never decides the schedule (the run does, in [`Schedule`]).

use super::conn::{Conn, Ev, Open};
use super::{Schedule, Shared};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// What a device hands back.
#[derive(Default)]
pub struct DeviceOut {
    pub connected: bool,
    /// Telemetry sequence numbers the broker acknowledged.
    pub acked: Vec<u32>,
    /// Telemetry still unacknowledged when the run stopped.
    pub unacked: usize,
    /// Distinct alerts received (bit k: alert k) and repeats.
    pub alerts: Vec<u64>,
    pub alert_dups: u64,
    /// The reconnect in the storm succeeded; the broker had kept the session.
    pub reconnected: bool,
    pub session_kept: bool,
    /// Connections lost outside the storm (each reconnected at once).
    pub unexpected_drops: u32,
    pub error: Option<String>,
}

fn id(sh: &Shared, i: u32) -> String {
    format!("{}-{i}", sh.prefix)
}

/// Opens device `i`'s connection (persistent session) and subscribes when the session is new.
/// Answers the connection and whether the broker had kept the session.
async fn connect(sh: &Shared, i: u32) -> Result<(Conn, bool), String> {
    let client_id = id(sh, i);
    let deadline = Instant::now() + sh.connect_timeout;
    let (mut c, present) = Conn::open(&Open {
        target: sh.target,
        source: sh.source(i),
        client_id: &client_id,
        v5: sh.v5,
        keep_alive: sh.keep_alive,
        clean: false,
        session_expiry: sh.v5.then_some(3600),
        deadline,
    })
    .await?;
    if !present {
        c.subscribe("alerts/#", 1, deadline).await?;
    }
    Ok((c, present))
}

/// Reconnects until it works or the run stops.
async fn reconnect(sh: &Shared, i: u32, stop: Instant) -> Option<(Conn, bool)> {
    let mut pause = Duration::from_millis(100);
    while Instant::now() < stop {
        match connect(sh, i).await {
            Ok(x) => return Some(x),
            Err(e) => {
                if sh.reconnect_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    *crate::report::stats::lock(&sh.first_reconnect_error) = Some(e);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
    None
}

struct Telemetry {
    next_pid: u16,
    /// Packet id → (sequence, first send time).
    unacked: HashMap<u16, (u32, u64)>,
    seq: u32,
}

impl Telemetry {
    fn pid(&mut self) -> u16 {
        self.next_pid = self.next_pid.wrapping_add(1).max(1);
        self.next_pid
    }
}

pub async fn run(
    i: u32,
    sh: Arc<Shared>,
    mut sched: tokio::sync::watch::Receiver<Option<Schedule>>,
) -> DeviceOut {
    let mut out = DeviceOut {
        alerts: vec![0; sh.max_alerts.div_ceil(64)],
        ..Default::default()
    };
    let gate = sh.connect_gate.acquire().await;
    // CONNACK latency from the connect's own start: the wait for a slot is the generator's.
    let started = sh.clock.now_ns();
    let first = connect(&sh, i).await;
    drop(gate);
    let mut conn = match first {
        Ok((c, _)) => c,
        Err(e) => {
            sh.connect_failed.fetch_add(1, Ordering::Relaxed);
            out.error = Some(e);
            return out;
        }
    };
    let now = sh.clock.now_ns();
    sh.connack.record(now - started);
    sh.last_connected_ns.fetch_max(now, Ordering::Relaxed);
    sh.connected.fetch_add(1, Ordering::Relaxed);
    out.connected = true;

    // Until the run has a schedule (every device connected), only read.
    let s = loop {
        if let Some(s) = *sched.borrow_and_update() {
            break s;
        }
        tokio::select! {
            r = sched.changed() => if r.is_err() { return out },
            r = conn.read() => match r {
                Ok(n) if n > 0 => {
                    if handle(&sh, &mut conn, &mut out, None).is_err() {
                        return out;
                    }
                }
                _ => return out,
            },
        }
    };
    let n = sh.devices as u64;
    let mut next_telemetry = s.steady_ns + (i as u64 * s.telemetry_ns) / n.max(1);
    let drop_at = s.storm_ns + (mix(i as u64 ^ sh.seed) % s.storm_window_ns.max(1));
    let mut dropped = false;
    let mut tel = Telemetry {
        next_pid: 0,
        unacked: HashMap::new(),
        seq: 0,
    };
    let stop = sh.clock.instant_at(s.stop_ns);
    loop {
        let now = sh.clock.now_ns();
        if now >= s.stop_ns {
            break;
        }
        if !dropped && now >= drop_at {
            dropped = true;
            // The storm: the connection goes without a DISCONNECT, as a network blip takes it.
            drop(conn);
            match reconnect(&sh, i, stop.into()).await {
                Some((c, present)) => {
                    conn = c;
                    out.reconnected = true;
                    out.session_kept = present;
                    let t = sh.clock.now_ns();
                    sh.last_reconnected_ns.fetch_max(t, Ordering::Relaxed);
                    sh.reconnected.fetch_add(1, Ordering::Relaxed);
                    resend(&sh, &mut conn, i, &tel);
                    // What came with the CONNACK (a resumed session's messages) is not read again.
                    if handle(&sh, &mut conn, &mut out, Some(&mut tel)).is_err() {
                        conn = match lost(&sh, i, &mut out, &mut tel, stop.into()).await {
                            Some(c) => c,
                            None => return finish(out, &tel),
                        };
                    }
                }
                None => return finish(out, &tel),
            }
            continue;
        }
        if now >= next_telemetry && next_telemetry < s.end_publish_ns {
            let pid = tel.pid();
            let seq = tel.seq;
            tel.seq += 1;
            tel.unacked.insert(pid, (seq, now));
            let head = header(i, seq, now);
            conn.publish(&sh.topic(i), 1, pid, false, &head, sh.payload);
            next_telemetry += s.telemetry_ns;
        }
        if conn.flush().await.is_err() {
            conn = match lost(&sh, i, &mut out, &mut tel, stop.into()).await {
                Some(c) => c,
                None => return finish(out, &tel),
            };
            continue;
        }
        let mut wake = s.stop_ns;
        if !dropped {
            wake = wake.min(drop_at);
        }
        if next_telemetry < s.end_publish_ns {
            wake = wake.min(next_telemetry);
        }
        let at = sh.clock.instant_at(wake);
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            r = conn.read() => match r {
                Ok(n) if n > 0 => {
                    if handle(&sh, &mut conn, &mut out, Some(&mut tel)).is_err() {
                        conn = match lost(&sh, i, &mut out, &mut tel, stop.into()).await {
                            Some(c) => c,
                            None => return finish(out, &tel),
                        };
                    }
                }
                _ => {
                    conn = match lost(&sh, i, &mut out, &mut tel, stop.into()).await {
                        Some(c) => c,
                        None => return finish(out, &tel),
                    };
                }
            },
        }
    }
    conn.close().await;
    finish(out, &tel)
}

fn finish(mut out: DeviceOut, tel: &Telemetry) -> DeviceOut {
    out.unacked = tel.unacked.len();
    out
}

/// A connection lost outside the storm: counted, and resumed at once.
async fn lost(
    sh: &Shared,
    i: u32,
    out: &mut DeviceOut,
    tel: &mut Telemetry,
    stop: Instant,
) -> Option<Conn> {
    loop {
        out.unexpected_drops += 1;
        sh.unexpected_drops.fetch_add(1, Ordering::Relaxed);
        let (mut c, _) = reconnect(sh, i, stop).await?;
        resend(sh, &mut c, i, tel);
        if handle(sh, &mut c, out, Some(tel)).is_ok() {
            return Some(c);
        }
    }
}

/// Telemetry not yet acknowledged goes again, flagged DUP, with its packet id [MQTT-4.4.0-1].
fn resend(sh: &Shared, c: &mut Conn, i: u32, tel: &Telemetry) {
    let mut pending: Vec<(&u16, &(u32, u64))> = tel.unacked.iter().collect();
    pending.sort_by_key(|(_, (seq, _))| *seq);
    let topic = sh.topic(i);
    for (pid, (seq, sent)) in pending {
        // The header keeps the first send time: the latency counts the outage.
        c.publish(&topic, 1, *pid, true, &header(i, *seq, *sent), sh.payload);
    }
}

/// Handles what arrived: alerts acknowledged and recorded, telemetry acknowledgements.
fn handle(
    sh: &Shared,
    c: &mut Conn,
    out: &mut DeviceOut,
    mut tel: Option<&mut Telemetry>,
) -> Result<(), String> {
    for ev in c.take()? {
        match ev {
            Ev::Publish { qos, pid, head } => {
                if qos > 0 {
                    c.puback(pid);
                }
                let k = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
                if k >= sh.max_alerts {
                    continue;
                }
                let (w, b) = (k / 64, 1u64 << (k % 64));
                if out.alerts[w] & b != 0 {
                    out.alert_dups += 1;
                    continue;
                }
                out.alerts[w] |= b;
                let now = sh.clock.now_ns();
                sh.alert_first[k].fetch_min(now, Ordering::Relaxed);
                sh.alert_last[k].fetch_max(now, Ordering::Relaxed);
                sh.alert_count[k].fetch_add(1, Ordering::Relaxed);
            }
            Ev::PubAck { pid, reason } => {
                if let Some(t) = tel.as_deref_mut()
                    && let Some((seq, _)) = t.unacked.remove(&pid)
                {
                    if reason < 0x80 {
                        out.acked.push(seq);
                    } else {
                        sh.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ev::Disconnect { reason } => {
                return Err(format!("DISCONNECT (0x{reason:02x}) from the broker"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Telemetry header: device, sequence, send time (run clock, ns).
fn header(i: u32, seq: u32, now: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&i.to_be_bytes());
    h[4..8].copy_from_slice(&seq.to_be_bytes());
    h[8..16].copy_from_slice(&now.to_be_bytes());
    h
}

/// SplitMix64: spreads the storm's drop times evenly over its window.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
