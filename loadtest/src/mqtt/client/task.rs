//! The tokio side of one connection: opening the socket (with the --ifaddr source address),
//! the CONNECT / CONNACK / SUBSCRIBE handshake, and the read/write loop that drives the
//! [`Client`](super::state::Client) state until the run stops. It owns the socket; it never
//! decides protocol state itself.

use super::state::{Client, PubState, Wake};
use crate::mqtt::codec::{self, ConnectOpts, Packet, PubProps};
use crate::mqtt::payload::Rng;
use crate::report::stats::Counters;
use crate::transport::{SetupError, Stream};
use bytes::{Buf, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};

use super::*;

struct Opened {
    io: Stream,
    rbuf: BytesMut,
    v5: bool,
    recv_max: usize,
    keep_alive: u16,
    max_qos: u8,
    max_packet: Option<u32>,
}

/// The user name client `index` connects with: `--username` with `%i` replaced by the index
/// (so each client can be its own registered client, e.g. `dev-%i`); as given without `%i`.
pub(super) fn username_of(template: &str, index: usize) -> std::borrow::Cow<'_, str> {
    if template.contains("%i") {
        template.replace("%i", &index.to_string()).into()
    } else {
        template.into()
    }
}

async fn open(sh: &Shared, index: usize, client_id: &str) -> Result<Opened, ConnError> {
    let cfg = &sh.cfg;
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::from_std(t0 + cfg.connect_timeout);
    let sock = if sh.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ConnError::Io("socket", e))?;
    if !sh.ifaddrs.is_empty() {
        let ip = sh.ifaddrs[index % sh.ifaddrs.len()];
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|e| ConnError::Io("bind", e))?;
    }
    let stream = tokio::time::timeout_at(deadline, sock.connect(sh.target))
        .await
        .map_err(|_| ConnError::Timeout("TCP connect"))?
        .map_err(|e| ConnError::Io("connect", e))?;
    let _ = stream.set_nodelay(true);
    let mut io = sh
        .transport
        .establish(stream, deadline)
        .await
        .map_err(|e| match e {
            SetupError::Timeout(stage) => ConnError::Timeout(stage),
            SetupError::Failed(stage, why) => ConnError::Handshake(stage, why),
        })?;
    if sh.tls_session.get().is_none()
        && let Some(s) = io.tls_session()
    {
        let _ = sh.tls_session.set(s);
    }
    let v5 = cfg.level == codec::LEVEL_V5;
    let username = cfg.username.as_deref().map(|u| username_of(u, index));
    let mut wbuf = BytesMut::with_capacity(256);
    codec::encode_connect(
        &mut wbuf,
        &ConnectOpts {
            level: cfg.level,
            client_id,
            keep_alive: cfg.keep_alive,
            clean: cfg.clean,
            username: username.as_deref(),
            password: cfg.password.as_deref().map(str::as_bytes),
            session_expiry: if v5 { cfg.session_expiry } else { None },
            receive_maximum: None,
        },
    );
    tokio::time::timeout_at(deadline, io.write_all(&wbuf))
        .await
        .map_err(|_| ConnError::Timeout("CONNECT write"))?
        .map_err(|e| ConnError::Io("CONNECT write", e))?;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let decoded = codec::decode(&rbuf, v5).map_err(|e| ConnError::Protocol(e.to_string()))?;
        if let Some((pkt, n)) = decoded {
            let Packet::ConnAck { code, props, .. } = pkt else {
                return Err(ConnError::Protocol(format!(
                    "expected CONNACK, got {pkt:?}"
                )));
            };
            if code != 0 {
                let mut reason = codec::connack_reason(code, v5).to_string();
                if let Some(r) = props.reason_string {
                    reason = format!("{reason}: {r}");
                }
                return Err(ConnError::Rejected(code, reason));
            }
            rbuf.advance(n);
            sh.hists.connack.record(t0.elapsed().as_nanos() as u64);
            return Ok(Opened {
                io,
                rbuf,
                v5,
                recv_max: props.receive_maximum.map_or(65_535, |r| r as usize),
                keep_alive: props.server_keep_alive.unwrap_or(cfg.keep_alive),
                max_qos: props.maximum_qos.unwrap_or(2),
                max_packet: props.maximum_packet_size,
            });
        }
        let n = tokio::time::timeout_at(deadline, io.read_buf(&mut rbuf))
            .await
            .map_err(|_| ConnError::Timeout("waiting for CONNACK"))?
            .map_err(|e| ConnError::Io("reading CONNACK", e))?;
        if n == 0 {
            return Err(ConnError::Protocol(
                "broker closed the connection before CONNACK".into(),
            ));
        }
    }
}

/// Runs one connection from connect to disconnect.
pub async fn client_task(
    sh: Arc<Shared>,
    spec: ClientSpec,
    ready: mpsc::UnboundedSender<Ready>,
    mut go: watch::Receiver<Option<Arc<Go>>>,
    mut stop: watch::Receiver<bool>,
) -> ClientStats {
    let is_pub = spec.publish.is_some();
    let fail = |sh: &Shared, e: ConnError, stats: ClientStats| {
        let full = match &e {
            ConnError::Io("connect", _) | ConnError::Timeout("TCP connect") => {
                format!("cannot connect to {}: {e}", sh.target)
            }
            _ => format!("{} ({}): {e}", sh.target, spec.client_id),
        };
        // record before reporting, so the orchestrator sees the full message
        if !matches!(e, ConnError::Stopped) {
            Counters::add(&sh.counters.conn_failed, 1);
            if let Some(l) = e.os_limit() {
                sh.counters.os_limit_hit.store(true, Ordering::Relaxed);
                if !sh.os_limit_warned.swap(true, Ordering::Relaxed) {
                    eprintln!("warning: {}", os_limit_advice(l, sh));
                }
            }
            sh.record_error(e.key(), full.clone());
        }
        let _ = ready.send(Ready {
            publisher: is_pub,
            result: Err(full),
        });
        stats
    };
    let mut stats = ClientStats::default();
    let opened = tokio::select! {
        biased;
        _ = stop.changed() => Err(ConnError::Stopped),
        r = open(&sh, spec.index, &spec.client_id) => r,
    };
    let o = match opened {
        Ok(o) => o,
        Err(e) => {
            stats.tracker = spec.tracker;
            return fail(&sh, e, stats);
        }
    };
    stats.connected = true;
    Counters::add(&sh.counters.connected, 1);
    if sh.cfg.qos > o.max_qos && (is_pub || !spec.subscribe.is_empty()) {
        let e = ConnError::Protocol(format!(
            "broker supports at most QoS {}, asked for {}",
            o.max_qos, sh.cfg.qos
        ));
        return fail(&sh, e, stats);
    }
    if let (Some(maxp), Some(p)) = (o.max_packet, &spec.publish) {
        let tlen = p.topic.fixed().map_or(64, <[u8]>::len);
        if codec::publish_size(o.v5, tlen, sh.cfg.qos, &PubProps::default(), sh.cfg.size) + 32
            > maxp as usize
        {
            let e = ConnError::Protocol(format!(
                "broker maximum packet size is {maxp} bytes, too small for -s {}",
                sh.cfg.size
            ));
            return fail(&sh, e, stats);
        }
    }
    let Opened {
        mut io,
        mut rbuf,
        v5,
        recv_max,
        keep_alive,
        ..
    } = o;
    let mut cl = Client {
        sh: sh.clone(),
        v5,
        qos: sh.cfg.qos,
        window: sh.cfg.inflight.min(recv_max).clamp(1, 65_535),
        next_pid: 0,
        inflight: HashMap::new(),
        qos2_in: HashSet::new(),
        tracker: spec.tracker,
        rtt_mode: spec.rtt,
        responder: spec.responder,
        echo_queue: VecDeque::new(),
        publ: spec.publish.map(|p| PubState {
            id: p.publisher_id,
            topic: p.topic,
            pace: p.pace,
            phase: p.phase,
            sched: None,
            deadline_ns: 0,
            started: false,
            finished: false,
            done_reported: false,
            seq: 0,
            response_topic: p.response_topic.map(String::into_bytes),
            expect: p.expect,
            table: None,
            factor_cache: HashMap::new(),
            fixed_factor: None,
        }),
        e2e: sh.hists.e2e.recorder(),
        rtt: sh.hists.rtt.recorder(),
        puback: sh.hists.puback.recorder(),
        send_lag: sh.hists.send_lag.recorder(),
        rng: Rng::new(spec.index as u64 ^ sh.clock.start_ns()),
        st: stats,
        pending_sent: 0,
        pending_expected: 0,
        suback: None,
        min_ts: if sh.cfg.accept_old {
            0
        } else {
            sh.clock.start_ns()
        },
    };
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let ka = if keep_alive > 0 {
        Some(Duration::from_millis(keep_alive as u64 * 750))
    } else {
        None
    };

    // subscribe and wait for SUBACK
    if !spec.subscribe.is_empty() {
        let pid = cl.alloc_pid();
        let filters: Vec<(&str, u8)> = spec
            .subscribe
            .iter()
            .map(|f| (f.as_str(), sh.cfg.qos))
            .collect();
        codec::encode_subscribe(&mut wbuf, v5, pid, &filters);
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::from_std(t0 + sh.cfg.connect_timeout);
        let res: Result<(), ConnError> = async {
            io.write_all(&wbuf)
                .await
                .map_err(|e| ConnError::Io("SUBSCRIBE write", e))?;
            wbuf.clear();
            loop {
                cl.process(&mut rbuf, &mut wbuf)
                    .map_err(ConnError::Protocol)?;
                if let Some((got, codes)) = cl.suback.take()
                    && got == pid
                {
                    sh.hists.suback.record(t0.elapsed().as_nanos() as u64);
                    if let Some(c) = codes.iter().find(|&&c| c >= 0x80) {
                        return Err(ConnError::Protocol(format!(
                            "SUBSCRIBE {:?} refused with code 0x{c:02x}",
                            spec.subscribe
                        )));
                    }
                    return Ok(());
                }
                if !wbuf.is_empty() {
                    io.write_all(&wbuf)
                        .await
                        .map_err(|e| ConnError::Io("write", e))?;
                    wbuf.clear();
                }
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
                let n = tokio::select! {
                    biased;
                    _ = stop.changed() => return Err(ConnError::Stopped),
                    r = tokio::time::timeout_at(deadline, io.read_buf(&mut rbuf)) => r
                        .map_err(|_| ConnError::Timeout("waiting for SUBACK"))?
                        .map_err(|e| ConnError::Io("reading SUBACK", e))?,
                };
                if n == 0 {
                    return Err(ConnError::Protocol(
                        "broker closed the connection before SUBACK".into(),
                    ));
                }
            }
        }
        .await;
        if let Err(e) = res {
            let mut st = std::mem::take(&mut cl.st);
            st.tracker = cl.tracker.take();
            return fail(&sh, e, st);
        }
    }
    let subs = spec
        .subscribe
        .iter()
        .map(|f| (f.clone(), spec.group.clone()))
        .collect();
    let _ = ready.send(Ready {
        publisher: is_pub,
        result: Ok(subs),
    });

    let mut last_write = Instant::now();
    let result: Result<(), String> = async {
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let waiting_for_go = cl.publ.as_ref().is_some_and(|p| !p.started);
            if waiting_for_go {
                let g = go.borrow().clone();
                if let Some(g) = g {
                    cl.start(&g);
                }
            }
            let now_ns = sh.clock.now_ns();
            let wake = cl.produce(now_ns, &mut wbuf);
            cl.check_done();
            if let Some(k) = ka
                && wbuf.is_empty()
                && last_write.elapsed() >= k
            {
                codec::encode_pingreq(&mut wbuf);
            }
            if !wbuf.is_empty() {
                tokio::select! {
                    biased;
                    _ = stop.changed() => return Ok(()),
                    r = io.write_all(&wbuf) => r.map_err(|e| format!("write failed: {e}"))?,
                }
                cl.commit_written();
                wbuf.clear();
                last_write = Instant::now();
            }
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK);
            }
            if let Wake::Now = wake {
                // closed loop: pick up whatever arrived without blocking
                loop {
                    match io.try_read_buf(&mut rbuf) {
                        Ok(0) => return Err("broker closed the connection".into()),
                        Ok(_) => {
                            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(format!("read failed: {e}")),
                    }
                }
                cl.process(&mut rbuf, &mut wbuf)?;
                tokio::task::yield_now().await;
                continue;
            }
            let mut wake_at: Option<Instant> = match wake {
                Wake::At(ns) => Some(sh.clock.instant_at(ns)),
                _ => None,
            };
            if let Some(p) = &cl.publ
                && p.started
                && !p.finished
            {
                let d = sh.clock.instant_at(p.deadline_ns);
                wake_at = Some(wake_at.map_or(d, |w| w.min(d)));
            }
            if let Some(k) = ka {
                let t = last_write + k;
                wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
            }
            let sleep_to = tokio::time::Instant::from_std(
                wake_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                biased;
                _ = stop.changed() => return Ok(()),
                _ = go.changed(), if waiting_for_go => {}
                r = io.read_buf(&mut rbuf) => {
                    let n = r.map_err(|e| format!("read failed: {e}"))?;
                    if n == 0 {
                        return Err("broker closed the connection".into());
                    }
                    cl.process(&mut rbuf, &mut wbuf)?;
                    if let (Some(d), true) = (sh.cfg.sub_delay, cl.tracker.is_some()) {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return Ok(()),
                            _ = tokio::time::sleep(d) => {}
                        }
                    }
                }
                _ = tokio::time::sleep_until(sleep_to) => {}
            }
        }
    }
    .await;

    cl.abandon();
    if let Err(e) = &result {
        Counters::add(&sh.counters.disconnected, 1);
        sh.record_error(
            format!("connection lost: {}", short(e)),
            format!("{}: {e}", spec.client_id),
        );
        cl.st.error = Some(e.clone());
    } else {
        // polite DISCONNECT, bounded in time
        let mut b = BytesMut::new();
        codec::encode_disconnect(&mut b);
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            io.write_all(&b).await?;
            io.shutdown().await
        })
        .await;
    }
    if let Some(t) = &mut cl.tracker {
        t.flush();
    }
    cl.e2e.flush();
    cl.rtt.flush();
    cl.puback.flush();
    cl.send_lag.flush();
    let mut st = std::mem::take(&mut cl.st);
    st.unacked = cl.inflight.values().filter(|i| i.own).count() as u64;
    st.tracker = cl.tracker.take();
    st
}

fn short(e: &str) -> String {
    // group errors by their text without details after the first ':'
    match e.split_once(": ") {
        Some((head, _)) if head.len() > 8 => head.to_string(),
        _ => e.to_string(),
    }
}

/// Advice printed when an OS limit stops new connections.
pub fn os_limit_advice(errno_name: &str, sh: &Shared) -> String {
    match errno_name {
        "EMFILE" | "ENFILE" => {
            let lim = sh
                .nofile
                .map(|(s, h)| format!(" (RLIMIT_NOFILE soft {s}, hard {h})"))
                .unwrap_or_default();
            format!(
                "the OS limit on open files stopped new connections ({errno_name}){lim}; raise it with `ulimit -n` (hard limit) or fs.file-max / fs.nr_open"
            )
        }
        _ => format!(
            "the OS ran out of local ports/addresses for {} ({errno_name}); add source addresses with --ifaddr 127.0.0.1,127.0.0.2,... (one ephemeral port range per address) or widen net.ipv4.ip_local_port_range",
            sh.target
        ),
    }
}
