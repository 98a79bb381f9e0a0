//! The protocol state of one connection, between socket reads and writes: packet ids and the
//! in-flight window, what to publish next and when, acks, echoes for request/response, and
//! the accounting of every publish received. No I/O and no awaits: `task` feeds it bytes and
//! the time, and writes what it encodes.

use crate::mqtt::codec::{self, Packet, PubProps, Publish, kind};
use crate::mqtt::payload::{self, Rng, TopicGen};
use crate::report::stats::{Counters, LatBuf};
use crate::report::track::{MAX_PUBLISHERS, SubTracker};
use crate::sched::{OpenLoop, Pace};
use bytes::{Buf, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;

/// How often a closed-loop publisher held back by `--outstanding` looks again.
const OUTSTANDING_POLL_NS: u64 = 200_000;

#[derive(Debug, Clone, Copy)]
pub(super) struct Inflight {
    pub(super) sent_ns: u64,
    pub(super) own: bool,
}

pub(super) struct Echo {
    pub(super) topic: Vec<u8>,
    pub(super) corr: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
}

pub(super) struct PubState {
    pub(super) id: u32,
    pub(super) topic: TopicGen,
    pub(super) pace: Pace,
    pub(super) phase: f64,
    pub(super) sched: Option<OpenLoop>,
    pub(super) deadline_ns: u64,
    pub(super) started: bool,
    pub(super) finished: bool,
    pub(super) done_reported: bool,
    pub(super) seq: u64,
    pub(super) response_topic: Option<Vec<u8>>,
    pub(super) expect: Expect,
    pub(super) table: Option<Arc<Go>>,
    pub(super) factor_cache: HashMap<Vec<u8>, u64>,
    /// the factor when the topic does not vary per message
    pub(super) fixed_factor: Option<u64>,
}

/// When the loop should wake up next for publishing.
pub(super) enum Wake {
    /// more can be sent right away (closed loop)
    Now,
    At(u64),
    Idle,
}

pub(super) struct Client {
    pub(super) sh: Arc<Shared>,
    pub(super) v5: bool,
    pub(super) qos: u8,
    pub(super) window: usize,
    pub(super) next_pid: u16,
    pub(super) inflight: HashMap<u16, Inflight>,
    pub(super) qos2_in: HashSet<u16>,
    pub(super) tracker: Option<SubTracker>,
    pub(super) rtt_mode: bool,
    pub(super) responder: bool,
    pub(super) echo_queue: VecDeque<Echo>,
    pub(super) publ: Option<PubState>,
    pub(super) e2e: LatBuf,
    pub(super) rtt: LatBuf,
    pub(super) puback: LatBuf,
    pub(super) send_lag: LatBuf,
    pub(super) rng: Rng,
    pub(super) st: ClientStats,
    pub(super) pending_sent: u64,
    pub(super) pending_expected: u64,
    pub(super) suback: Option<(u16, Vec<u8>)>,
    pub(super) min_ts: u64,
}

impl Client {
    pub(super) fn alloc_pid(&mut self) -> u16 {
        loop {
            self.next_pid = self.next_pid.wrapping_add(1);
            if self.next_pid == 0 {
                self.next_pid = 1;
            }
            if !self.inflight.contains_key(&self.next_pid) {
                return self.next_pid;
            }
        }
    }

    pub(super) fn room(&self) -> usize {
        if self.qos == 0 {
            usize::MAX
        } else {
            self.window.saturating_sub(self.inflight.len())
        }
    }

    pub(super) fn start(&mut self, go: &Arc<Go>) {
        if let Some(p) = &mut self.publ {
            if p.started {
                return;
            }
            p.started = true;
            p.deadline_ns = go.deadline_ns;
            p.sched = match p.pace {
                Pace::Open { rate } => Some(OpenLoop::new(go.start_ns, rate, p.phase)),
                Pace::Closed => None,
            };
            p.table = Some(go.clone());
            if let Some(t) = p.topic.fixed() {
                let t = t.to_vec();
                p.fixed_factor = Some(Self::factor(&p.expect, &mut p.factor_cache, &p.table, &t));
            }
        }
    }

    /// Deliveries one message on `topic` should cause (see [`Expect`]).
    pub(super) fn factor(
        expect: &Expect,
        cache: &mut HashMap<Vec<u8>, u64>,
        go: &Option<Arc<Go>>,
        topic: &[u8],
    ) -> u64 {
        match expect {
            Expect::Fixed(n) => *n,
            Expect::Table => {
                if let Some(&f) = cache.get(topic) {
                    return f;
                }
                let f = go
                    .as_ref()
                    .map_or(0, |g| g.table.factor(&String::from_utf8_lossy(topic)));
                if cache.len() < 100_000 {
                    cache.insert(topic.to_vec(), f);
                }
                f
            }
        }
    }

    /// Encodes queued echoes and due publishes into `wbuf`.
    pub(super) fn produce(&mut self, now_ns: u64, wbuf: &mut BytesMut) -> Wake {
        // responses first: they are already late
        while !self.echo_queue.is_empty() && self.room() > 0 {
            if let Some(e) = self.echo_queue.pop_front() {
                self.encode_echo(now_ns, &e.topic, e.corr.as_deref(), &e.payload, wbuf);
            }
        }
        let batch = self.sh.cfg.batch;
        let size = self.sh.cfg.size;
        let retain = self.sh.cfg.retain;
        let room = self.room();
        let Some(p) = self.publ.as_mut() else {
            return Wake::Idle;
        };
        if !p.started || p.finished {
            return Wake::Idle;
        }
        if now_ns >= p.deadline_ns {
            p.finished = true;
            return Wake::Idle;
        }
        if room == 0 {
            return Wake::Idle;
        }
        // Open loop: tokio timers have 1 ms granularity, so wake up to
        // SEND_SLACK_NS early and send what is due by then. A message sent
        // early is stamped with its actual send time, a late one with its
        // scheduled time, so the stamp is never after the real send.
        let want = match &p.sched {
            Some(s) => {
                if s.next_due_ns() >= p.deadline_ns {
                    p.finished = true;
                    return Wake::Idle;
                }
                let horizon = (now_ns + SEND_SLACK_NS).min(p.deadline_ns - 1);
                s.due(horizon) as usize
            }
            None => batch,
        };
        let mut n = want.min(room).min(batch);
        let cap = self.sh.cfg.outstanding;
        if p.sched.is_none() && cap > 0 {
            // Closed loop with a bound on what the broker holds for subscribers: deliveries
            // expected (this client's not yet added included) and not yet received.
            let c = &self.sh.counters;
            let out = (c.expected.load(Ordering::Relaxed) + self.pending_expected)
                .saturating_sub(c.received.load(Ordering::Relaxed));
            if out >= cap {
                return Wake::At((now_ns + OUTSTANDING_POLL_NS).min(p.deadline_ns));
            }
            n = n.min((cap - out) as usize);
        }
        if n == 0 {
            return match &p.sched {
                Some(s) => Wake::At(
                    s.next_due_ns()
                        .saturating_sub(SEND_SLACK_NS)
                        .min(p.deadline_ns),
                ),
                None => Wake::Idle,
            };
        }
        let n = self.sh.reserve(n as u64) as usize;
        if n == 0 {
            p.finished = true;
            return Wake::Idle;
        }
        let v5 = self.v5;
        let qos = self.qos;
        for _ in 0..n {
            let ts = match &mut p.sched {
                Some(s) => {
                    let t = s.take().min(now_ns);
                    self.send_lag.record(now_ns - t);
                    t
                }
                None => now_ns,
            };
            let seq = p.seq;
            p.seq += 1;
            let pid = if qos > 0 {
                // inline alloc_pid (self.publ is borrowed)
                loop {
                    self.next_pid = self.next_pid.wrapping_add(1);
                    if self.next_pid == 0 {
                        self.next_pid = 1;
                    }
                    if !self.inflight.contains_key(&self.next_pid) {
                        break;
                    }
                }
                self.inflight.insert(
                    self.next_pid,
                    Inflight {
                        sent_ns: now_ns,
                        own: true,
                    },
                );
                self.next_pid
            } else {
                0
            };
            let id = p.id;
            let topic = p.topic.topic(seq, &mut self.rng);
            let f = match p.fixed_factor {
                Some(f) => f,
                None => Self::factor(&p.expect, &mut p.factor_cache, &p.table, topic),
            };
            let corr = seq.to_be_bytes();
            let props = PubProps {
                response_topic: p.response_topic.as_deref(),
                correlation_data: if p.response_topic.is_some() {
                    Some(&corr)
                } else {
                    None
                },
                topic_alias: None,
            };
            codec::encode_publish_with(
                wbuf,
                v5,
                topic,
                qos,
                retain,
                false,
                pid,
                &props,
                size,
                |b| payload::put_payload(b, size, ts, id, seq),
            );
            self.pending_sent += 1;
            self.pending_expected += f;
        }
        let more = qos == 0 || self.inflight.len() < self.window;
        match (&p.sched, more) {
            (_, false) => Wake::Idle,
            (Some(s), true) => Wake::At(
                s.next_due_ns()
                    .saturating_sub(SEND_SLACK_NS)
                    .min(p.deadline_ns),
            ),
            (None, true) => Wake::Now,
        }
    }

    pub(super) fn encode_echo(
        &mut self,
        now_ns: u64,
        topic: &[u8],
        corr: Option<&[u8]>,
        payload: &[u8],
        wbuf: &mut BytesMut,
    ) {
        let pid = if self.qos > 0 {
            let pid = self.alloc_pid();
            self.inflight.insert(
                pid,
                Inflight {
                    sent_ns: now_ns,
                    own: false,
                },
            );
            pid
        } else {
            0
        };
        let p = Publish {
            dup: false,
            qos: self.qos,
            retain: false,
            topic,
            pid,
            props: PubProps {
                response_topic: None,
                correlation_data: corr,
                topic_alias: None,
            },
            payload,
        };
        codec::encode_publish(wbuf, self.v5, &p);
    }

    /// Commits counts of publishes that were just written.
    pub(super) fn commit_written(&mut self) {
        let c = &self.sh.counters;
        Counters::add(&c.sent, self.pending_sent);
        Counters::add(&c.expected, self.pending_expected);
        self.st.sent += self.pending_sent;
        self.st.expected += self.pending_expected;
        self.pending_sent = 0;
        self.pending_expected = 0;
    }

    /// Tells the orchestrator once that this publisher is done (finished
    /// publishing and every QoS 1/2 publish was acknowledged).
    pub(super) fn check_done(&mut self) {
        let inflight_empty = self.inflight.values().all(|i| !i.own);
        if let Some(p) = &mut self.publ
            && p.finished
            && !p.done_reported
            && inflight_empty
        {
            p.done_reported = true;
            self.sh.counters.pubs_active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn abandon(&mut self) {
        if let Some(p) = &mut self.publ {
            p.finished = true;
            if p.started && !p.done_reported {
                p.done_reported = true;
                self.sh.counters.pubs_active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Decodes every complete packet in `rbuf`.
    pub(super) fn process(
        &mut self,
        rbuf: &mut BytesMut,
        wbuf: &mut BytesMut,
    ) -> Result<(), String> {
        let now_ns = self.sh.clock.now_ns();
        let mut off = 0;
        let mut received = 0u64;
        while let Some((pkt, n)) =
            codec::decode(&rbuf[off..], self.v5).map_err(|e| e.to_string())?
        {
            off += n;
            match pkt {
                Packet::Publish(p) => {
                    if self.on_publish(&p, now_ns, wbuf) {
                        received += 1;
                    }
                }
                Packet::PubAck { pid, reason } => self.on_ack(pid, reason, now_ns),
                Packet::PubRec { pid, reason } => {
                    if reason >= 0x80 {
                        self.on_ack(pid, reason, now_ns);
                    } else {
                        codec::encode_ack(wbuf, kind::PUBREL, pid);
                    }
                }
                Packet::PubComp { pid, reason } => self.on_ack(pid, reason, now_ns),
                Packet::PubRel { pid, .. } => {
                    self.qos2_in.remove(&pid);
                    codec::encode_ack(wbuf, kind::PUBCOMP, pid);
                }
                Packet::SubAck { pid, codes } => self.suback = Some((pid, codes.to_vec())),
                Packet::PingResp | Packet::PingReq | Packet::UnsubAck { .. } => {}
                Packet::Disconnect { reason } => {
                    return Err(format!(
                        "broker sent DISCONNECT: reason 0x{reason:02x} ({})",
                        codec::connack_reason(reason, true)
                    ));
                }
                Packet::ConnAck { .. } => return Err("unexpected second CONNACK".into()),
                Packet::Other { kind } => {
                    return Err(format!("unexpected packet type {kind} from broker"));
                }
            }
        }
        rbuf.advance(off);
        if let Some(t) = &mut self.tracker {
            t.flush();
        }
        if received > 0 {
            Counters::add(&self.sh.counters.received, received);
            self.sh
                .counters
                .last_received_ns
                .fetch_max(now_ns, Ordering::Relaxed);
        }
        Ok(())
    }

    pub(super) fn on_ack(&mut self, pid: u16, reason: u8, now_ns: u64) {
        if let Some(e) = self.inflight.remove(&pid)
            && e.own
        {
            if reason >= 0x80 {
                self.st.pub_failed += 1;
                Counters::add(&self.sh.counters.pub_failed, 1);
            } else {
                self.st.acked += 1;
                Counters::add(&self.sh.counters.acked, 1);
                self.puback.record(now_ns.saturating_sub(e.sent_ns));
            }
        }
    }

    /// Handles an incoming PUBLISH; returns true if it counts as received.
    pub(super) fn on_publish(&mut self, p: &Publish<'_>, now_ns: u64, wbuf: &mut BytesMut) -> bool {
        match p.qos {
            1 => codec::encode_ack(wbuf, kind::PUBACK, p.pid),
            2 => {
                codec::encode_ack(wbuf, kind::PUBREC, p.pid);
                if !self.qos2_in.insert(p.pid) {
                    // redelivery of a QoS 2 message we already have
                    return false;
                }
            }
            _ => {}
        }
        if self.responder
            && let Some(rt) = p.props.response_topic
        {
            self.st.requests_received += 1;
            Counters::add(&self.sh.counters.requests_received, 1);
            if let Some(h) = payload::read_header(p.payload) {
                self.e2e.record(now_ns.saturating_sub(h.ts_ns));
            }
            if self.room() > 0 {
                self.encode_echo(now_ns, rt, p.props.correlation_data, p.payload, wbuf);
            } else {
                self.echo_queue.push_back(Echo {
                    topic: rt.to_vec(),
                    corr: p.props.correlation_data.map(<[u8]>::to_vec),
                    payload: p.payload.to_vec(),
                });
            }
            return false;
        }
        let Some(t) = &mut self.tracker else {
            return false;
        };
        match payload::read_header(p.payload) {
            Some(h)
                if h.publisher < MAX_PUBLISHERS
                    && h.ts_ns >= self.min_ts
                    && h.ts_ns <= now_ns + 60_000_000_000 =>
            {
                t.push(h.publisher, h.seq);
                self.st.received += 1;
                let lat = now_ns.saturating_sub(h.ts_ns);
                if self.rtt_mode {
                    self.rtt.record(lat);
                } else {
                    self.e2e.record(lat);
                }
                true
            }
            _ => {
                self.st.foreign += 1;
                false
            }
        }
    }
}
