//! MQTT client lifecycle events (docs/eventgrid.md §7.7): the consumer that drains what the
//! MQTT edge reports ([`crate::mqtt::lifecycle`]), numbers each connection per session name,
//! builds `Microsoft.EventGrid.MQTTClientSessionConnected` / `…Disconnected` events in the Event
//! Grid schema and publishes them to the system topics whose source is the broker's namespace.
//!
//! Owns the sequence numbers (one task numbers every event, so a session's numbers increase per
//! connection and a Disconnected event reuses its Connected event's number) and the mapping of
//! [`EndReason`] to Event Grid's `disconnectionReason`. Batches: one drain is at most [`BATCH`]
//! events and becomes one `Publish` per system topic, awaited, so the next drain gathers what
//! arrived meanwhile. Must never make the MQTT edge wait: the edge's queue is bounded and drops
//! (counted) when this consumer falls behind; events for a namespace without a system topic are
//! discarded (counted) before anything is built. Best effort, as in Azure: events dropped or
//! refused are counted, not retried.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use ntex_bytes::{ByteString, Bytes};

use crate::grid::Grid;
use crate::grid::basic::random_id;
use crate::grid::topic::{Publish, TopicEvent};
use crate::metrics::LIFECYCLE;
use crate::model::clock::{mono_ms, now_ms};
use crate::model::time::format_rfc3339_ms;
use crate::mqtt::lifecycle::{EndReason, Happened, LifecycleRx, SessionEvent};
use crate::mqtt::message::ConnId;

/// Most events taken from the queue per drain (and per `Publish`).
pub const BATCH: usize = 4096;

/// A session name not seen for this long, with no connection open, is forgotten: its next
/// connection is numbered from 1 again. Bounds the map against clients that use a fresh client
/// id per connection.
pub const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;

pub const CONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionConnected";
pub const DISCONNECTED: &str = "Microsoft.EventGrid.MQTTClientSessionDisconnected";

/// Event Grid's `disconnectionReason` for why a connection ended (docs/eventgrid.md §7.7).
/// A keep-alive timeout is a lost connection (the client went silent); a slow consumer closed
/// for `mqtt.send_timeout` is `QuotaExceeded`, the reason MQTT 5 clients get in the DISCONNECT.
pub fn disconnection_reason(r: EndReason) -> &'static str {
    match r {
        EndReason::ClientDisconnect => "ClientInitiatedDisconnect",
        EndReason::ConnectionLost | EndReason::KeepAliveTimeout => "ConnectionLost",
        EndReason::TakenOver => "SessionTakenOver",
        EndReason::ProtocolError => "ClientError",
        EndReason::ServerShutdown => "ServerInitiatedDisconnect",
        EndReason::SendTimeout | EndReason::QuotaExceeded => "QuotaExceeded",
        EndReason::ServerError => "ServerError",
        EndReason::AuthenticationError => "ClientAuthenticationError",
        EndReason::AuthorizationError => "ClientAuthorizationError",
    }
}

struct Name {
    seq: u64,
    open: u32,
    seen_ms: u64,
}

/// Sequence numbers per session name (docs/eventgrid.md §7.7): each connection takes the next
/// number; its Disconnected event reuses it.
#[derive(Default)]
pub struct Numbering {
    names: HashMap<ByteString, Name>,
    /// The number, session name and time of each connection whose Connected event was
    /// numbered and whose Disconnected event has not come yet.
    open: HashMap<ConnId, (u64, ByteString, u64)>,
}

/// A connection numbered this long ago whose Disconnected event never came (dropped from a full
/// backlog) is forgotten, so a storm cannot grow the map for ever; a connection that really
/// lasts longer gets a fresh number for its Disconnected event, which still orders after.
pub const FORGET_OPEN_AFTER_MS: u64 = 7 * 24 * 3600 * 1000;

impl Numbering {
    /// The number of `ev`. A Disconnected event whose Connected event never came (dropped from
    /// a full queue) takes the next number, so numbers still only grow.
    pub fn number(&mut self, ev: &SessionEvent) -> u64 {
        let paired = match ev.what {
            Happened::Connected => None,
            Happened::Disconnected(_) => self.open.remove(&ev.conn).map(|(n, _, _)| n),
        };
        let name = self.names.entry(ev.session.clone()).or_insert(Name {
            seq: 0,
            open: 0,
            seen_ms: 0,
        });
        name.seen_ms = name.seen_ms.max(ev.at_ms);
        match (ev.what, paired) {
            (Happened::Connected, _) => {
                name.seq += 1;
                name.open += 1;
                self.open
                    .insert(ev.conn, (name.seq, ev.session.clone(), ev.at_ms));
                name.seq
            }
            (Happened::Disconnected(_), Some(n)) => {
                name.open = name.open.saturating_sub(1);
                n
            }
            (Happened::Disconnected(_), None) => {
                name.seq += 1;
                name.seq
            }
        }
    }

    /// Forgets session names idle for [`FORGET_AFTER_MS`] with nothing open.
    /// Also forgets connections open for [`FORGET_OPEN_AFTER_MS`].
    pub fn prune(&mut self, now_ms: u64) {
        let names = &mut self.names;
        self.open.retain(|_, (_, session, at_ms)| {
            let keep = *at_ms + FORGET_OPEN_AFTER_MS > now_ms;
            if !keep && let Some(n) = names.get_mut(session) {
                n.open = n.open.saturating_sub(1);
            }
            keep
        });
        names.retain(|_, n| n.open > 0 || n.seen_ms + FORGET_AFTER_MS > now_ms);
    }

    /// Connections waiting for their Disconnected event.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    pub fn names(&self) -> usize {
        self.names.len()
    }
}

/// Appends the JSON string literal of `s`.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// One lifecycle event in the Event Grid schema (docs/eventgrid.md §7.7): `topic` is the
/// namespace's resource id (the system topic's source), `time` its RFC 3339 time.
pub fn event(
    id: &str,
    topic: &str,
    namespace: &str,
    ev: &SessionEvent,
    seq: u64,
    time: &str,
) -> TopicEvent {
    let ty = match ev.what {
        Happened::Connected => CONNECTED,
        Happened::Disconnected(_) => DISCONNECTED,
    };
    let mut subject = String::with_capacity(18 + ev.auth_name.len() + ev.session.len());
    subject.push_str("clients/");
    subject.push_str(&ev.auth_name);
    subject.push_str("/sessions/");
    subject.push_str(&ev.session);
    let mut out = Vec::with_capacity(400 + subject.len() * 2 + topic.len());
    out.extend_from_slice(b"{\"id\":");
    json_str(&mut out, id);
    out.extend_from_slice(b",\"topic\":");
    json_str(&mut out, topic);
    out.extend_from_slice(b",\"subject\":");
    json_str(&mut out, &subject);
    out.extend_from_slice(b",\"data\":{\"namespaceName\":");
    json_str(&mut out, namespace);
    out.extend_from_slice(b",\"clientAuthenticationName\":");
    json_str(&mut out, &ev.auth_name);
    out.extend_from_slice(b",\"clientSessionName\":");
    json_str(&mut out, &ev.session);
    let _ = write!(out, ",\"sequenceNumber\":{seq}");
    if let Happened::Disconnected(r) = ev.what {
        out.extend_from_slice(b",\"disconnectionReason\":");
        json_str(&mut out, disconnection_reason(r));
    }
    out.extend_from_slice(b"},\"eventType\":");
    json_str(&mut out, ty);
    out.extend_from_slice(b",\"dataVersion\":\"1\",\"metadataVersion\":\"1\",\"eventTime\":");
    json_str(&mut out, time);
    out.push(b'}');
    TopicEvent::system(id, topic, ty, subject, Bytes::from(out))
}

/// Event ids: a random UUID-shaped prefix per process, and a counter in the last group.
struct Ids {
    prefix: String,
    next: u64,
}

impl Ids {
    fn new() -> Ids {
        let r = random_id();
        let prefix = r.get(..24).map_or_else(|| format!("{r}-"), str::to_string);
        Ids { prefix, next: 0 }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        format!("{}{:012x}", self.prefix, self.next & 0xffff_ffff_ffff)
    }
}

static FAILED_SINCE_LOG: AtomicU64 = AtomicU64::new(0);
static LAST_FAIL_LOG_MS: AtomicU64 = AtomicU64::new(0);

/// Logs a refused batch at most once per [`crate::mqtt::lifecycle::LOG_EVERY_MS`].
fn log_failure(n: u64, why: &str) {
    let dropped = FAILED_SINCE_LOG.fetch_add(n, Ordering::Relaxed) + n;
    let now = mono_ms().max(1);
    let last = LAST_FAIL_LOG_MS.load(Ordering::Relaxed);
    if (last == 0 || now - last >= crate::mqtt::lifecycle::LOG_EVERY_MS)
        && LAST_FAIL_LOG_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        FAILED_SINCE_LOG.fetch_sub(dropped, Ordering::Relaxed);
        tracing::warn!(dropped, error = %why, "MQTT lifecycle events could not be published to the system topic");
    }
}

/// Drains `rx` until every sender is gone, publishing to the system topics of `namespace`.
/// Spawn it on the actix system; the returned future ends once the MQTT edge has stopped and
/// everything it reported has been handled.
pub async fn run(mut rx: LifecycleRx, grid: Grid, namespace: String) {
    let mut numbering = Numbering::default();
    let mut ids = Ids::new();
    let mut buf = Vec::with_capacity(BATCH);
    let mut last_prune = mono_ms();
    loop {
        buf.clear();
        if rx.recv_many(&mut buf, BATCH).await == 0 {
            return;
        }
        let seqs: Vec<u64> = buf.iter().map(|e| numbering.number(e)).collect();
        if mono_ms().saturating_sub(last_prune) > 60_000 {
            numbering.prune(now_ms());
            last_prune = mono_ms();
        }
        let n = buf.len() as u64;
        let targets = grid.system_topics_of_namespace(&namespace);
        if targets.is_empty() {
            LIFECYCLE.no_system_topic.add(n);
            continue;
        }
        for (topic, addr) in targets {
            let events: Vec<TopicEvent> = buf
                .iter()
                .zip(&seqs)
                .map(|(ev, seq)| {
                    let time = format_rfc3339_ms(ev.at_ms);
                    event(&ids.next(), &topic, &namespace, ev, *seq, &time)
                })
                .collect();
            match addr.send(Publish(events)).await {
                Ok(Ok(_)) => LIFECYCLE.published.add(n),
                Ok(Err(e)) => {
                    LIFECYCLE.failed.add(n);
                    log_failure(n, &e.to_string());
                }
                Err(_) => {
                    LIFECYCLE.failed.add(n);
                    log_failure(n, "the system topic stopped");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
