//! The push subscription actor: one per active basic-tier event subscription (webhook).
//!
//! Owns the subscription's pending events — each committed in the store, already in the
//! subscription's delivery schema — and their retry state: which are ready, which wait for a
//! retry (and until when), how many requests are in flight. It builds requests (batches of up
//! to `maxEventsPerBatch` within `preferredBatchSizeInKilobytes`, the `aeg-*` headers, delivery
//! attribute mappings), hands them to the endpoint's delivery shard, and acts on the outcome:
//! delivered → removed; retryable → the delivery count and next attempt time are committed and
//! the event waits on the schedule (with jitter); not retryable, attempts exhausted or time to
//! live run out (checked when the next attempt comes due, as Event Grid does) → dead-lettered
//! with Event Grid's dead-letter fields (or dropped without a dead-letter destination).
//!
//! Must never drop an event without a store commit saying so, or keep more than
//! `max_in_flight` requests open to its endpoint.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use ntex_bytes::{ByteString, Bytes};
use serde_json::{Value, json};

use super::PushConfig;
use super::request::{DeliverySchema, HeaderValue, lookup_scalar, valid_header_value};
use super::retry::{self, DeadLetterReason, Next, Outcome, Profile, WebhookOutcome};
use super::shard::{Attempt, DeliveryShard, Request};
use crate::metrics::{METRICS, PUSH};
use crate::model::Shutdown;
use crate::model::clock::now_ms;
use crate::model::time::format_rfc3339_ms;
use crate::store::{EntryState, Op, Queued, Writer};

/// A push subscription's delivery settings (from its resource definition, without the filter).
#[derive(Debug, Clone, PartialEq)]
pub struct PushSettings {
    pub endpoint: String,
    pub schema: DeliverySchema,
    /// Events per request (1 without batching).
    pub max_events: usize,
    /// Preferred request size in bytes (a single larger event still goes alone).
    pub preferred_bytes: usize,
    pub batching: bool,
    pub max_attempts: u32,
    pub ttl_secs: u64,
    pub dead_letter: bool,
    pub headers: Arc<Vec<(String, HeaderValue)>>,
    /// Which tier's retry policy and dead-letter record apply.
    pub profile: Profile,
}

/// One event for a push subscription, as committed.
#[derive(Debug, Clone)]
pub struct PushEntry {
    pub seq: u64,
    pub publish_ms: u64,
    /// The event in the subscription's delivery schema.
    pub body: Bytes,
    pub id: ByteString,
    pub data_version: ByteString,
}

impl PushEntry {
    /// An entry read back from the store (its id and data version parsed from the body).
    pub fn from_queued(q: &Queued) -> PushEntry {
        /// Only these members are read; the rest (`data` included) is skipped without being
        /// built, so no depth limit applies.
        #[derive(serde::Deserialize)]
        struct Ids<'a> {
            #[serde(borrow)]
            id: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "dataVersion")]
            eg_version: Option<Cow<'a, str>>,
            #[serde(borrow, rename = "dataversion")]
            ce_version: Option<Cow<'a, str>>,
        }
        let (id, dv) = match serde_json::from_slice::<Ids<'_>>(&q.body) {
            Ok(v) => (
                ByteString::from(v.id.as_deref().unwrap_or("")),
                ByteString::from(v.eg_version.or(v.ce_version).as_deref().unwrap_or("")),
            ),
            Err(e) => {
                // Stored events were validated at publish; this is a damaged entry, delivered as
                // stored, without the id and data-version headers.
                tracing::warn!(seq = q.seq, error = %e, "a queued push event is not a JSON object with string id and data version");
                (ByteString::new(), ByteString::new())
            }
        };
        PushEntry {
            seq: q.seq,
            publish_ms: q.publish_ms,
            body: q.body.clone(),
            id,
            data_version: dv,
        }
    }
}

/// Events committed for this subscription, from its topic or domain actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushAppend(pub Vec<PushEntry>);

/// New settings after a PUT on an existing subscription, with the shard that owns its endpoint.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReconfigurePush(pub PushSettings, pub Addr<DeliveryShard>);

struct Pending {
    entry: PushEntry,
    state: EntryState,
    /// (`lastDeliveryOutcome`, HTTP status, attempt time ms) of the last attempt.
    last: Option<(WebhookOutcome, Option<u16>, u64)>,
    in_flight: bool,
}

/// Identity of the subscription, for headers and dead-letter files.
pub struct Names {
    /// As given, e.g. `orders-hook`.
    pub subscription: String,
    /// Where its dead-letter files go under `dead_letter_dir`: `topics/TOPIC`,
    /// `domains/DOMAIN`, `domaintopics/DOMAIN/TOPIC` or `namespaces/NAMESPACE/TOPIC`.
    pub source: String,
}

pub struct PushSub {
    key: u64,
    cfg: PushSettings,
    push: PushConfig,
    names: Names,
    header_name: ByteString,
    /// `cfg.endpoint`, shared by every request.
    endpoint: Arc<str>,
    writer: Writer,
    shard: Addr<DeliveryShard>,
    tick: Duration,
    pending: HashMap<u64, Pending>,
    ready: VecDeque<u64>,
    delayed: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: usize,
    dl_seq: u64,
}

#[allow(clippy::too_many_arguments)]
impl PushSub {
    pub fn new(
        key: u64,
        cfg: PushSettings,
        push: PushConfig,
        names: Names,
        writer: Writer,
        shard: Addr<DeliveryShard>,
        tick: Duration,
        queued: Vec<Queued>,
        last_dead_letter: u64,
    ) -> PushSub {
        let mut s = PushSub {
            endpoint: Arc::from(cfg.endpoint.as_str()),
            key,
            cfg,
            push,
            header_name: ByteString::from(names.subscription.to_ascii_uppercase()),
            names,
            writer,
            shard,
            tick,
            pending: HashMap::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            in_flight: 0,
            dl_seq: last_dead_letter,
        };
        let now = now_ms();
        for q in queued {
            let entry = PushEntry::from_queued(&q);
            if q.state.available_at_ms > now {
                s.delayed.push(Reverse((q.state.available_at_ms, q.seq)));
            } else {
                s.ready.push_back(q.seq);
            }
            s.pending.insert(
                q.seq,
                Pending {
                    entry,
                    state: q.state,
                    last: None,
                    in_flight: false,
                },
            );
        }
        s
    }

    fn submit(&self, ops: Vec<Op>) {
        // On a failed commit the entries stay in the store as they were: after a restart they
        // are delivered again (at least once), never lost.
        self.writer.submit_detached(ops, "push subscription state");
    }

    fn due(&mut self) {
        let now = now_ms();
        while let Some(Reverse((at, seq))) = self.delayed.peek().copied() {
            if at > now {
                break;
            }
            self.delayed.pop();
            if self.pending.get(&seq).is_some_and(|p| !p.in_flight) {
                self.ready.push_back(seq);
            }
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let mut ops = Vec::new();
        while self.in_flight < self.push.max_in_flight.max(1) && !self.ready.is_empty() {
            let mut seqs = Vec::new();
            let mut bytes = 2;
            while let Some(&seq) = self.ready.front() {
                let Some(p) = self.pending.get(&seq) else {
                    self.ready.pop_front();
                    continue;
                };
                if p.in_flight {
                    self.ready.pop_front();
                    continue;
                }
                if retry::ttl_exceeded(p.entry.publish_ms, self.cfg.ttl_secs, now) {
                    self.ready.pop_front();
                    self.dead_letter(seq, DeadLetterReason::TimeToLiveExceeded, &mut ops);
                    continue;
                }
                let len = p.entry.body.len() + 1;
                if !seqs.is_empty()
                    && (seqs.len() >= self.cfg.max_events || bytes + len > self.cfg.preferred_bytes)
                {
                    break;
                }
                self.ready.pop_front();
                if seqs.contains(&seq) {
                    continue;
                }
                bytes += len;
                seqs.push(seq);
            }
            if seqs.is_empty() {
                break;
            }
            let req = self.request(&seqs);
            for s in &seqs {
                if let Some(p) = self.pending.get_mut(s) {
                    p.in_flight = true;
                }
            }
            self.in_flight += 1;
            ctx.spawn(
                self.shard
                    .send(Attempt(req))
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        act.in_flight -= 1;
                        let out = res.unwrap_or(Outcome::Deferred {
                            until_ms: now_ms() + act.push.unit().as_millis() as u64,
                        });
                        act.finish(seqs, out);
                        act.pump(ctx);
                    }),
            );
        }
        self.submit(ops);
    }

    fn request(&self, seqs: &[u64]) -> Request {
        let first = &self.pending[&seqs[0]];
        let ce = self.cfg.schema == DeliverySchema::CloudEvents;
        let single = ce && !self.cfg.batching;
        let mut body = Vec::with_capacity(
            seqs.iter()
                .map(|s| self.pending[s].entry.body.len() + 1)
                .sum::<usize>()
                + 2,
        );
        if single {
            body.extend_from_slice(&first.entry.body);
        } else {
            body.push(b'[');
            for (i, s) in seqs.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&self.pending[s].entry.body);
            }
            body.push(b']');
        }
        let content_type = match (ce, single) {
            (true, true) => "application/cloudevents+json; charset=utf-8",
            (true, false) => "application/cloudevents-batch+json; charset=utf-8",
            _ => "application/json; charset=utf-8",
        };
        // Names are static or shared, values shared slices: no per-request string building
        // beyond the delivery count.
        let mut headers: Vec<(Cow<'static, str>, ByteString)> =
            Vec::with_capacity(7 + self.cfg.headers.len());
        headers.extend([
            (
                Cow::Borrowed("aeg-event-type"),
                ByteString::from_static("Notification"),
            ),
            (
                Cow::Borrowed("aeg-subscription-name"),
                self.header_name.clone(),
            ),
            (
                Cow::Borrowed("aeg-delivery-count"),
                ByteString::from(first.state.delivery_count.to_string()),
            ),
            (
                Cow::Borrowed("aeg-metadata-version"),
                ByteString::from_static(if ce { "1.0" } else { "1" }),
            ),
            (Cow::Borrowed("aeg-output-event-id"), first.entry.id.clone()),
        ]);
        if !ce {
            headers.push((
                Cow::Borrowed("aeg-data-version"),
                first.entry.data_version.clone(),
            ));
        } else {
            headers.push((
                Cow::Borrowed("Origin"),
                ByteString::from_static("eventgrid.azure.net"),
            ));
        }
        if !self.cfg.headers.is_empty() {
            // Events nest at most MAX_EVENT_DEPTH levels (refused at publish beyond), within
            // what serde_json builds; a failure leaves the dynamic headers out, not the delivery.
            let doc = serde_json::from_slice::<Value>(&first.entry.body)
                .inspect_err(|e| {
                    tracing::warn!(seq = first.entry.seq, error = %e, "dynamic delivery headers left out: the event could not be read");
                })
                .ok();
            for (name, v) in self.cfg.headers.iter() {
                let value = match v {
                    HeaderValue::Static(s) => Some(s.clone()),
                    HeaderValue::Dynamic(path) => {
                        doc.as_ref().and_then(|doc| lookup_scalar(doc, path))
                    }
                };
                // A value that cannot be a header value is left out, as Event Grid does.
                if let Some(value) = value.filter(|v| valid_header_value(v)) {
                    headers.push((Cow::Owned(name.clone()), ByteString::from(value)));
                }
            }
        }
        Request {
            url: self.endpoint.clone(),
            content_type,
            headers,
            body,
            profile: self.cfg.profile,
        }
    }

    fn finish(&mut self, seqs: Vec<u64>, out: Outcome) {
        let now = now_ms();
        let mut ops = Vec::new();
        match out {
            Outcome::Delivered => {
                for seq in seqs {
                    if self.pending.remove(&seq).is_some() {
                        ops.push(Op::Remove { sub: self.key, seq });
                    }
                }
                PUSH.delivered.add(ops.len() as u64);
            }
            Outcome::Deferred { until_ms } => {
                for seq in seqs {
                    if let Some(p) = self.pending.get_mut(&seq) {
                        p.in_flight = false;
                        self.delayed.push(Reverse((until_ms, seq)));
                    }
                }
            }
            Outcome::Failed {
                status,
                outcome,
                retry,
            } => {
                let schedule = self.push.schedule(self.cfg.profile);
                for seq in seqs {
                    let Some(p) = self.pending.get_mut(&seq) else {
                        continue;
                    };
                    p.in_flight = false;
                    p.state.delivery_count += 1;
                    p.last = Some((outcome, status, now));
                    // Without OS randomness the retry comes due without jitter.
                    let random = getrandom::u64().unwrap_or(0);
                    let at = match retry::after_failure(
                        self.cfg.profile,
                        &schedule,
                        self.cfg.max_attempts,
                        p.state.delivery_count,
                        retry,
                        now,
                        random,
                    ) {
                        Next::RetryAt(at) => at,
                        Next::DeadLetter(reason) => {
                            self.dead_letter(seq, reason, &mut ops);
                            continue;
                        }
                    };
                    p.state.available_at_ms = at;
                    ops.push(Op::SetState {
                        sub: self.key,
                        seq,
                        state: p.state,
                    });
                    PUSH.retries.inc();
                    self.delayed.push(Reverse((at, seq)));
                }
            }
        }
        self.submit(ops);
    }

    /// Moves an event to the dead letters (or drops it without a dead-letter destination).
    fn dead_letter(&mut self, seq: u64, reason: DeadLetterReason, ops: &mut Vec<Op>) {
        let Some(p) = self.pending.remove(&seq) else {
            return;
        };
        if !self.cfg.dead_letter {
            METRICS.events_dropped.inc();
            ops.push(Op::Remove { sub: self.key, seq });
            return;
        }
        self.dl_seq += 1;
        let record = self.record(&p, reason);
        METRICS.events_dead_lettered.inc();
        if let Some(dir) = &self.push.dead_letter_dir {
            write_file(
                dir.clone(),
                &self.names,
                p.entry.publish_ms,
                self.dl_seq,
                &record,
            );
        }
        ops.push(Op::DeadLetter {
            sub: self.key,
            seq,
            dl_seq: self.dl_seq,
            record,
        });
    }

    /// The dead-letter record: the event exactly as stored (never re-parsed into a value, so
    /// never lost to a depth limit) with the dead-letter properties.
    fn record(&self, p: &Pending, reason: DeadLetterReason) -> Vec<u8> {
        let reason = reason.name();
        // No attempt since start-up (the outcome before a restart is not stored): none to report.
        let (outcome, status, at) = match p.last {
            Some((o, s, at)) => (Some(o.name()), s, at),
            None => (None, None, now_ms()),
        };
        let body = &p.entry.body;
        if self.cfg.profile == Profile::Namespace {
            // The namespace record (docs/eventgrid.md §6.5), as pull subscriptions write it.
            let props = json!({
                "deadletterreason": reason,
                "deliveryattempts": p.state.delivery_count,
                "deliveryresult": outcome,
                "lasthttpstatuscode": status,
                "publishutc": format_rfc3339_ms(p.entry.publish_ms),
                "deliveryattemptutc": format_rfc3339_ms(at),
                "deadlettersequence": self.dl_seq,
            });
            let mut rec = Vec::with_capacity(body.len() + 320);
            rec.extend_from_slice(b"{\"event\":");
            rec.extend_from_slice(body);
            rec.extend_from_slice(b",\"deadLetterProperties\":");
            rec.extend_from_slice(props.to_string().as_bytes());
            rec.push(b'}');
            return rec;
        }
        let fields = [
            ("deadLetterReason", json!(reason)),
            ("deliveryAttempts", json!(p.state.delivery_count)),
            ("lastDeliveryOutcome", json!(outcome)),
            ("lastHttpStatusCode", json!(status)),
            ("publishTime", json!(format_rfc3339_ms(p.entry.publish_ms))),
            ("lastDeliveryAttemptTime", json!(format_rfc3339_ms(at))),
        ];
        let ce = self.cfg.schema == DeliverySchema::CloudEvents;
        let name = |k: &str| {
            if ce {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            }
        };
        // The event's members as stored, in order, minus those the record sets.
        let members = match serde_json::from_slice::<RawMembers<'_>>(body) {
            Ok(m) => m.0,
            Err(e) => {
                // Stored events were validated at publish: this is a damaged entry. Keep its
                // bytes as text rather than write a record without the event.
                tracing::warn!(seq = p.entry.seq, error = %e, "a dead-lettered event is not a JSON object; kept as text");
                let mut m = serde_json::Map::new();
                m.insert(
                    "unreadableEvent".into(),
                    Value::String(String::from_utf8_lossy(body).into_owned()),
                );
                for (k, v) in fields {
                    m.insert(name(k), v);
                }
                return Value::Object(m).to_string().into_bytes();
            }
        };
        let mut rec = Vec::with_capacity(body.len() + 320);
        rec.push(b'{');
        for (k, v) in &members {
            if fields.iter().any(|(f, _)| name(f) == **k) {
                continue;
            }
            if rec.len() > 1 {
                rec.push(b',');
            }
            rec.extend_from_slice(Value::String(k.to_string()).to_string().as_bytes());
            rec.push(b':');
            rec.extend_from_slice(v.get().as_bytes());
        }
        for (k, v) in fields {
            if rec.len() > 1 {
                rec.push(b',');
            }
            rec.extend_from_slice(Value::String(name(k)).to_string().as_bytes());
            rec.push(b':');
            rec.extend_from_slice(v.to_string().as_bytes());
        }
        rec.push(b'}');
        rec
    }
}

/// A JSON object's members as raw JSON, in order (values are not built, so any depth reads).
struct RawMembers<'a>(Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for RawMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                    out.push((k, map.next_value()?));
                }
                Ok(RawMembers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `<dir>/<kind>/<SOURCE>/<SUBSCRIPTION>/<yyyy>/<M>/<d>/<H>/<sequence>.json` ([`Names::source`]
/// is `<kind>/<SOURCE>`), holding a JSON array with the record (under the kind, the layout Azure
/// uses in a storage container). Best effort, off the arbiter.
fn write_file(dir: std::path::PathBuf, names: &Names, publish_ms: u64, dl_seq: u64, record: &[u8]) {
    let t = format_rfc3339_ms(now_ms());
    let num = |s: &str| s.trim_start_matches('0').to_string();
    let (y, mo, d, h) = (&t[0..4], num(&t[5..7]), num(&t[8..10]), num(&t[11..13]));
    let h = if h.is_empty() { "0".to_string() } else { h };
    let path = dir
        .join(&names.source)
        .join(names.subscription.to_ascii_uppercase())
        .join(y)
        .join(mo)
        .join(d)
        .join(h);
    let file = path.join(format!("{publish_ms}-{dl_seq}.json"));
    let mut body = Vec::with_capacity(record.len() + 2);
    body.push(b'[');
    body.extend_from_slice(record);
    body.push(b']');
    actix::spawn(async move {
        let r = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&path)?;
            std::fs::write(&file, body).map(|_| file)
        })
        .await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not write a dead-letter file"),
            Err(e) => tracing::warn!(error = %e, "dead-letter file task failed"),
        }
    });
}

impl Actor for PushSub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
        ctx.run_interval(self.tick, |act, ctx| {
            act.due();
            act.pump(ctx);
        });
        self.pump(ctx);
    }
}

impl Handler<PushAppend> for PushSub {
    type Result = ();
    fn handle(&mut self, msg: PushAppend, ctx: &mut Context<Self>) {
        for entry in msg.0 {
            self.ready.push_back(entry.seq);
            self.pending.insert(
                entry.seq,
                Pending {
                    entry,
                    state: EntryState::default(),
                    last: None,
                    in_flight: false,
                },
            );
        }
        self.pump(ctx);
    }
}

impl Handler<ReconfigurePush> for PushSub {
    type Result = ();
    fn handle(&mut self, msg: ReconfigurePush, _: &mut Context<Self>) {
        self.endpoint = Arc::from(msg.0.endpoint.as_str());
        self.cfg = msg.0;
        // The endpoint may have changed, and with it the shard that owns it.
        self.shard = msg.1;
    }
}

impl Handler<Shutdown> for PushSub {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
