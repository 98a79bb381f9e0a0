//! The basic-tier source actor: one per custom topic and one per domain.
//!
//! Owns the routes (active push subscriptions with compiled filters and delivery schemas; for a
//! domain, the domain-scope ones plus those of each domain topic) and the sequence numbers of
//! the entries it queues. A publish batch is filtered per subscription, converted to each
//! subscription's delivery schema (once per event and schema), written to the store as one
//! batch of ops, and only after the commit handed to the subscription actors and answered — so
//! a 200 means every copy is durable. Must never wait on a subscription actor or answer before
//! the commit.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use ntex_bytes::{ByteString, Bytes};

use super::convert::eventgrid_to_cloudevent;
use super::resource::InputSchema;
use crate::delivery::push::{PushAppend, PushEntry, PushSub};
use crate::delivery::request::DeliverySchema;
use crate::grid::GridError;
use crate::grid::filter::{EventView, Filter};
use crate::metrics::METRICS;
use crate::model::clock::now_ms;
use crate::model::event::CloudEvent;
use crate::store::{Op, Writer};

/// One published event, validated and normalised by the HTTP edge.
#[derive(Debug, Clone)]
pub struct BasicEvent {
    /// For Event Grid and custom input: the Event Grid form (with `topic` and
    /// `metadataVersion`); for CloudEvents input: the event as published. Filters read this.
    pub ev: CloudEvent,
    /// `dataVersion` (Event Grid form), for the `aeg-data-version` header.
    pub data_version: ByteString,
    /// Custom input: the object exactly as published.
    pub custom: Option<Bytes>,
    /// Domains: the lowercased domain topic the event names.
    pub domain_topic: Option<ByteString>,
}

#[derive(Clone)]
pub struct PushRoute {
    pub key: u64,
    pub filter: Filter,
    pub schema: DeliverySchema,
    pub addr: Addr<PushSub>,
}

/// Subscriptions by scope: every event goes to `all`; a domain event also to its topic's.
#[derive(Clone, Default)]
pub struct Routes {
    pub all: Vec<PushRoute>,
    pub by_topic: HashMap<String, Vec<PushRoute>>,
}

/// A batch from one publish request; answers with the number of copies queued, or refuses the
/// whole batch (nothing stored) when an event cannot be converted to a subscription's schema.
#[derive(Message)]
#[rtype(result = "Result<usize, GridError>")]
pub struct PublishBasic(pub Vec<BasicEvent>);

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoutes(pub Arc<Routes>);

#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNextSeq(pub u64);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct BasicSource {
    writer: Writer,
    input: InputSchema,
    routes: Arc<Routes>,
    next_seq: u64,
}

impl BasicSource {
    pub fn new(writer: Writer, input: InputSchema) -> BasicSource {
        BasicSource {
            writer,
            input,
            routes: Arc::new(Routes::default()),
            next_seq: 1,
        }
    }
}

impl Actor for BasicSource {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<PublishBasic> for BasicSource {
    type Result = ResponseFuture<Result<usize, GridError>>;

    fn handle(&mut self, msg: PublishBasic, _: &mut Context<Self>) -> Self::Result {
        let events = msg.0;
        let first_seq = self.next_seq;
        let publish_ms = now_ms();
        let routes = self.routes.clone();
        let views: Vec<EventView<'_>> = events.iter().map(|e| EventView::new(&e.ev)).collect();
        let mut as_ce: Vec<Option<Bytes>> = vec![None; events.len()];
        let mut ops = Vec::new();
        let mut per_sub: HashMap<u64, (Addr<PushSub>, Vec<PushEntry>)> = HashMap::new();
        let mut routed = 0usize;
        for (i, e) in events.iter().enumerate() {
            let scoped = e
                .domain_topic
                .as_ref()
                .and_then(|t| routes.by_topic.get(t.as_str()));
            let mut hit = false;
            for r in routes.all.iter().chain(scoped.into_iter().flatten()) {
                if !r.filter.matches(&views[i]) {
                    continue;
                }
                let body = match (r.schema, self.input) {
                    (DeliverySchema::CustomInput, _) => {
                        e.custom.clone().unwrap_or_else(|| e.ev.raw.clone())
                    }
                    (DeliverySchema::CloudEvents, InputSchema::EventGrid | InputSchema::Custom) => {
                        match &as_ce[i] {
                            Some(ce) => ce.clone(),
                            None => match eventgrid_to_cloudevent(&e.ev.raw) {
                                Ok(ce) => as_ce[i].insert(Bytes::from(ce)).clone(),
                                Err(why) => {
                                    // Nothing was submitted yet: refuse the batch whole.
                                    self.next_seq = first_seq;
                                    return Box::pin(async move {
                                        Err(GridError::BadRequest(format!(
                                            "Event {i} cannot be converted to the CloudEvents schema a subscription asks for: {why}."
                                        )))
                                    });
                                }
                            },
                        }
                    }
                    _ => e.ev.raw.clone(),
                };
                hit = true;
                let seq = self.next_seq;
                self.next_seq += 1;
                ops.push(Op::Enqueue {
                    sub: r.key,
                    seq,
                    publish_ms,
                    body: body.clone(),
                });
                per_sub
                    .entry(r.key)
                    .or_insert_with(|| (r.addr.clone(), Vec::new()))
                    .1
                    .push(PushEntry {
                        seq,
                        publish_ms,
                        body,
                        id: e.ev.id.clone(),
                        data_version: e.data_version.clone(),
                    });
            }
            routed += hit as usize;
        }
        METRICS.events_published.add(events.len() as u64);
        METRICS.events_unrouted.add((events.len() - routed) as u64);
        let copies = ops.len();
        if ops.is_empty() {
            return Box::pin(async { Ok(0) });
        }
        let commit = self.writer.submit(ops);
        Box::pin(async move {
            commit.await.map_err(GridError::Store)?;
            for (_, (addr, batch)) in per_sub {
                addr.do_send(PushAppend(batch));
            }
            Ok(copies)
        })
    }
}

impl Handler<SetRoutes> for BasicSource {
    type Result = ();
    fn handle(&mut self, msg: SetRoutes, _: &mut Context<Self>) {
        self.routes = msg.0;
    }
}

impl Handler<SetNextSeq> for BasicSource {
    type Result = ();
    fn handle(&mut self, msg: SetNextSeq, _: &mut Context<Self>) {
        self.next_seq = self.next_seq.max(msg.0);
    }
}

impl Handler<Shutdown> for BasicSource {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
