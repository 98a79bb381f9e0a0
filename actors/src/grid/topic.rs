//! The topic actor: one per namespace topic, per custom topic and per domain.
//!
//! Owns the topic's routes (its subscriptions with their compiled filters and the conversion
//! each one's delivery schema asks for; for a domain, the domain-scope subscriptions plus those
//! of each domain topic) and the sequence numbers of the entries it queues. A publish batch is
//! filtered per subscription, converted where a route asks for it (once per event, however many
//! routes need the same form), written to the store as one batch of ops, and only after the
//! commit handed to the subscription actors and answered — so a 200 means every copy is durable,
//! and no consumer sees an event before it is. Committed batches are handed over by one task per
//! topic in commit order (the store answers in submission order), so each subscription hears of
//! its sequences in ascending order — its backlog window relies on it — and a publisher that
//! goes away before the answer cannot keep a committed event from its subscribers. A batch with
//! an event that cannot be converted is refused whole, before anything is submitted. Must never
//! wait on a subscription actor, and never answer before the commit.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix::prelude::*;
use ntex_bytes::{ByteString, Bytes};

use super::error::GridError;
use super::filter::{EventView, Filter};
use super::resource::basic::InputSchema;
use super::schema::convert::eventgrid_to_cloudevent;
use crate::delivery::push::{PushAppend, PushEntry, PushSub};
use crate::delivery::queue::{QueueAppend, QueueSub};
use crate::delivery::request::DeliverySchema;
use crate::lifecycle::Shutdown;
use crate::metrics::METRICS;
use crate::model::clock::now_ms;
use crate::model::event::CloudEvent;
use crate::store::{Op, StoreError, Writer};

/// One published event, validated and normalised by the HTTP edge.
#[derive(Debug, Clone)]
pub struct TopicEvent {
    /// Namespace topics: the CloudEvent as published. Basic tier: for Event Grid and custom
    /// input the Event Grid form (with `topic` and `metadataVersion`), for CloudEvents input the
    /// event as published. Filters read this.
    pub ev: CloudEvent,
    /// `dataVersion` (Event Grid form), for the `aeg-data-version` header; empty otherwise.
    pub data_version: ByteString,
    /// Custom input: the object exactly as published.
    pub custom: Option<Bytes>,
    /// Domains: the lowercased domain topic the event names.
    pub domain_topic: Option<ByteString>,
}

impl From<CloudEvent> for TopicEvent {
    fn from(ev: CloudEvent) -> TopicEvent {
        TopicEvent {
            ev,
            data_version: ByteString::new(),
            custom: None,
            domain_topic: None,
        }
    }
}

impl TopicEvent {
    /// A system topic's event (dataVersion 1), `raw` being its Event Grid schema form.
    pub fn system(id: &str, topic: &str, ty: &'static str, subject: String, raw: Bytes) -> Self {
        let one = ByteString::from_static("1");
        TopicEvent {
            ev: CloudEvent {
                id: ByteString::from(id),
                source: ByteString::from(topic),
                ty: ByteString::from_static(ty),
                subject: Some(ByteString::from(subject)),
                ext: vec![(ByteString::from_static("dataversion"), one.clone())],
                raw,
            },
            data_version: one,
            custom: None,
            domain_topic: None,
        }
    }
}

/// The actor of a subscription: a pull queue, or a push (webhook) subscription.
#[derive(Clone)]
pub enum Target {
    Queue(Addr<QueueSub>),
    Push(Addr<PushSub>),
}

impl Target {
    pub fn shutdown(&self) {
        match self {
            Target::Queue(a) => a.do_send(crate::lifecycle::Shutdown),
            Target::Push(a) => a.do_send(crate::lifecycle::Shutdown),
        }
    }
}

/// The form a route's copy of an event is stored and delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// The event as the topic holds it.
    AsPublished,
    /// Custom input as published (the Event Grid form when there is none).
    CustomInput,
    /// The Event Grid form converted to CloudEvents 1.0.
    ToCloudEvents,
}

impl Conversion {
    /// What a basic-tier subscription delivering `delivery` needs from a topic taking `input`
    /// (the conversion matrix, docs/eventgrid.md §2.5).
    pub fn for_schemas(delivery: DeliverySchema, input: InputSchema) -> Conversion {
        match (delivery, input) {
            (DeliverySchema::CustomInput, _) => Conversion::CustomInput,
            (DeliverySchema::CloudEvents, InputSchema::EventGrid | InputSchema::Custom) => {
                Conversion::ToCloudEvents
            }
            _ => Conversion::AsPublished,
        }
    }
}

/// A subscription as its topic sees it.
#[derive(Clone)]
pub struct Route {
    pub key: u64,
    pub filter: Filter,
    pub conversion: Conversion,
    pub target: Target,
}

/// Subscriptions by scope: every event goes to `all`; a domain event also to its topic's.
#[derive(Clone, Default)]
pub struct Routes {
    pub all: Vec<Route>,
    pub by_topic: HashMap<String, Vec<Route>>,
}

/// A batch from one publish request; answers with the number of subscription copies queued,
/// or refuses the whole batch (nothing stored) when an event cannot be converted to a
/// subscription's schema.
#[derive(Message)]
#[rtype(result = "Result<usize, GridError>")]
pub struct Publish(pub Vec<TopicEvent>);

/// A batch whose events the topic makes itself, on its own thread, before handling it as a
/// [`Publish`]: for a producer whose conversion must not cost its own thread (best-effort
/// routing from the MQTT engine, whose threads run above the grid's: `events.nice`).
#[derive(Message)]
#[rtype(result = "Result<usize, GridError>")]
pub struct PublishWith(pub Box<dyn FnOnce() -> Vec<TopicEvent> + Send>);

/// The topic's subscriptions changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoutes(pub Arc<Routes>);

/// Sets the next sequence (at start-up, above what the store holds for its subscriptions).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNextSeq(pub u64);

pub struct TopicActor {
    writer: Writer,
    routes: Arc<Routes>,
    next_seq: u64,
    handover: tokio::sync::mpsc::UnboundedSender<Handover>,
    /// Taken by the handover task when the actor starts.
    handover_rx: Option<tokio::sync::mpsc::UnboundedReceiver<Handover>>,
}

/// A submitted batch: once its commit succeeds, its appends go to the subscription actors.
struct Handover {
    commit: Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>,
    appends: Vec<Append>,
    copies: usize,
    reply: tokio::sync::oneshot::Sender<Result<usize, GridError>>,
}

enum Append {
    Queue(Addr<QueueSub>, QueueAppend),
    Push(Addr<PushSub>, PushAppend),
}

impl TopicActor {
    /// Starts with no routes; the registry sends them, and the next sequence, once it knows.
    pub fn new(writer: Writer) -> TopicActor {
        let (handover, rx) = tokio::sync::mpsc::unbounded_channel();
        TopicActor {
            writer,
            routes: Arc::new(Routes::default()),
            next_seq: 1,
            handover,
            handover_rx: Some(rx),
        }
    }
}

/// Hands committed batches over in the order they were submitted; ends with the actor.
async fn hand_over(mut rx: tokio::sync::mpsc::UnboundedReceiver<Handover>) {
    while let Some(h) = rx.recv().await {
        let r = h.commit.await;
        if r.is_ok() {
            for a in h.appends {
                match a {
                    Append::Queue(addr, m) => addr.do_send(m),
                    Append::Push(addr, m) => addr.do_send(m),
                }
            }
        }
        let _ = h.reply.send(r.map(|()| h.copies).map_err(GridError::from));
    }
}

impl Actor for TopicActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `send` waits (back-pressure on the HTTP edge) only when this many requests queue up.
        ctx.set_mailbox_capacity(65_536);
        if let Some(rx) = self.handover_rx.take() {
            actix::spawn(hand_over(rx));
        }
    }
}

/// The copy of event `i` a route stores and delivers (`as_ce` filled by the first pass).
fn body_of(e: &TopicEvent, conversion: Conversion, as_ce: &[Option<Bytes>], i: usize) -> Bytes {
    match conversion {
        Conversion::AsPublished => e.ev.raw.clone(),
        Conversion::CustomInput => e.custom.clone().unwrap_or_else(|| e.ev.raw.clone()),
        Conversion::ToCloudEvents => as_ce[i].clone().expect("converted in the first pass"),
    }
}

impl Handler<Publish> for TopicActor {
    type Result = ResponseFuture<Result<usize, GridError>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let events = msg.0;
        let publish_ms = now_ms();
        let routes = self.routes.clone();
        // First pass, event by event: which routes take it, and its CloudEvents form if one of
        // them needs it. Each event's JSON is parsed at most once, and only if some filter needs
        // more than its context attributes; a conversion that fails refuses the batch before
        // any sequence is taken.
        let views: Vec<EventView<'_>> = events.iter().map(|e| EventView::new(&e.ev)).collect();
        let mut as_ce: Vec<Option<Bytes>> = vec![None; events.len()];
        let mut hits: Vec<Vec<usize>> = vec![Vec::new(); routes.all.len()];
        let mut scoped_hits: HashMap<&str, Vec<Vec<usize>>> = HashMap::new();
        let mut routed = 0usize;
        for (i, e) in events.iter().enumerate() {
            let scoped = e
                .domain_topic
                .as_ref()
                .and_then(|t| routes.by_topic.get_key_value(t.as_str()));
            let all = routes.all.iter().zip(hits.iter_mut());
            let mut scoped_slots = scoped.map(|(t, rs)| {
                let slots = scoped_hits
                    .entry(t.as_str())
                    .or_insert_with(|| vec![Vec::new(); rs.len()]);
                (rs, slots)
            });
            let scoped_iter = scoped_slots
                .as_mut()
                .map(|(rs, slots)| rs.iter().zip(slots.iter_mut()));
            let mut hit = false;
            for (r, slot) in all.chain(scoped_iter.into_iter().flatten()) {
                if !r.filter.matches(&views[i]) {
                    continue;
                }
                if r.conversion == Conversion::ToCloudEvents && as_ce[i].is_none() {
                    match eventgrid_to_cloudevent(&e.ev.raw) {
                        Ok(ce) => as_ce[i] = Some(Bytes::from(ce)),
                        Err(why) => {
                            return Box::pin(async move {
                                Err(GridError::BadRequest(format!(
                                    "Event {i} cannot be converted to the CloudEvents schema a subscription asks for: {why}."
                                )))
                            });
                        }
                    }
                }
                hit = true;
                slot.push(i);
            }
            routed += hit as usize;
        }
        METRICS.events_published.add(events.len() as u64);
        METRICS.events_unrouted.add((events.len() - routed) as u64);
        // Second pass, route by route: each subscription's copies take consecutive sequences.
        let mut ops = Vec::new();
        let mut batches = Vec::new();
        let scoped = scoped_hits
            .iter()
            .flat_map(|(t, slots)| routes.by_topic[*t].iter().zip(slots.iter()));
        for (r, idx) in routes.all.iter().zip(hits.iter()).chain(scoped) {
            if idx.is_empty() {
                continue;
            }
            let mut batch = Vec::with_capacity(idx.len());
            for &i in idx {
                let seq = self.next_seq;
                self.next_seq += 1;
                let body = body_of(&events[i], r.conversion, &as_ce, i);
                ops.push(Op::Enqueue {
                    sub: r.key,
                    seq,
                    publish_ms,
                    body: body.clone(),
                });
                batch.push((seq, i, body));
            }
            batches.push((r.target.clone(), batch));
        }
        let copies = ops.len();
        if ops.is_empty() {
            return Box::pin(async { Ok(0) });
        }
        let appends = batches
            .into_iter()
            .map(|(target, batch)| match target {
                Target::Queue(a) => Append::Queue(
                    a,
                    QueueAppend(
                        batch
                            .into_iter()
                            .map(|(seq, _, body)| (seq, publish_ms, body))
                            .collect(),
                    ),
                ),
                Target::Push(a) => Append::Push(
                    a,
                    PushAppend(
                        batch
                            .into_iter()
                            .map(|(seq, i, body)| PushEntry {
                                seq,
                                publish_ms,
                                body,
                                id: events[i].ev.id.clone(),
                                data_version: events[i].data_version.clone(),
                            })
                            .collect(),
                    ),
                ),
            })
            .collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let handover = Handover {
            commit: Box::pin(self.writer.submit(ops)),
            appends,
            copies,
            reply,
        };
        if self.handover.send(handover).is_err() {
            return Box::pin(async { Err(GridError::Closed) });
        }
        Box::pin(async move { answer.await.unwrap_or(Err(GridError::Closed)) })
    }
}

impl Handler<PublishWith> for TopicActor {
    type Result = ResponseFuture<Result<usize, GridError>>;

    fn handle(&mut self, msg: PublishWith, ctx: &mut Context<Self>) -> Self::Result {
        let events = (msg.0)();
        if events.is_empty() {
            return Box::pin(async { Ok(0) });
        }
        self.handle(Publish(events), ctx)
    }
}

impl Handler<SetRoutes> for TopicActor {
    type Result = ();
    fn handle(&mut self, msg: SetRoutes, _: &mut Context<Self>) {
        self.routes = msg.0;
    }
}

impl Handler<SetNextSeq> for TopicActor {
    type Result = ();
    fn handle(&mut self, msg: SetNextSeq, _: &mut Context<Self>) {
        self.next_seq = self.next_seq.max(msg.0);
    }
}

impl Handler<Shutdown> for TopicActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
