//! The namespace topic actor: one per namespace topic.
//!
//! Owns the topic's routes (its subscriptions with their compiled filters) and the sequence
//! numbers of the entries it queues. A publish batch is filtered per subscription here, written
//! to the store as one batch of ops, and only after the commit handed to the subscription actors
//! and answered — so a 200 means every copy is durable, and no consumer sees an event before it
//! is. Must never wait on a subscription actor, and never answer before the commit.

use std::sync::Arc;

use actix::prelude::*;

use super::filter::{EventView, Filter};
use crate::delivery::push::{PushAppend, PushEntry, PushSub};
use crate::delivery::queue::{QueueAppend, QueueSub};
use crate::metrics::METRICS;
use crate::model::clock::now_ms;
use crate::model::event::CloudEvent;
use crate::store::{Op, StoreError, Writer};

/// The actor of a namespace subscription: a pull queue, or a push (webhook) subscription.
#[derive(Clone)]
pub enum Target {
    Queue(Addr<QueueSub>),
    Push(Addr<PushSub>),
}

impl Target {
    pub fn shutdown(&self) {
        match self {
            Target::Queue(a) => a.do_send(crate::model::Shutdown),
            Target::Push(a) => a.do_send(crate::model::Shutdown),
        }
    }
}

/// A subscription as its topic sees it.
#[derive(Clone)]
pub struct Route {
    pub key: u64,
    pub filter: Filter,
    pub target: Target,
}

/// A batch of validated events from one publish request; answers with the number of
/// subscription copies queued.
#[derive(Message)]
#[rtype(result = "Result<usize, StoreError>")]
pub struct Publish(pub Vec<CloudEvent>);

/// The topic's subscriptions changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoutes(pub Arc<Vec<Route>>);

/// Sets the next sequence (at start-up, above what the store holds for its subscriptions).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetNextSeq(pub u64);

#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub struct NsTopic {
    writer: Writer,
    routes: Arc<Vec<Route>>,
    next_seq: u64,
}

impl NsTopic {
    /// `next_seq`: above every sequence any of its subscriptions holds in the store.
    pub fn new(writer: Writer, routes: Arc<Vec<Route>>, next_seq: u64) -> NsTopic {
        NsTopic {
            writer,
            routes,
            next_seq: next_seq.max(1),
        }
    }
}

impl Actor for NsTopic {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // `send` waits (back-pressure on the HTTP edge) only when this many requests queue up.
        ctx.set_mailbox_capacity(65_536);
    }
}

impl Handler<Publish> for NsTopic {
    type Result = ResponseFuture<Result<usize, StoreError>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let events = msg.0;
        let publish_ms = now_ms();
        METRICS.events_published.add(events.len() as u64);
        let mut ops = Vec::new();
        let mut batches = Vec::with_capacity(self.routes.len());
        let mut routed = vec![false; events.len()];
        // Each event's JSON is parsed at most once, and only if some filter needs more than
        // its context attributes.
        let views: Vec<EventView<'_>> = events.iter().map(EventView::new).collect();
        for r in self.routes.iter() {
            let mut batch = Vec::new();
            for (i, (ev, view)) in events.iter().zip(&views).enumerate() {
                if !r.filter.matches(view) {
                    continue;
                }
                routed[i] = true;
                let seq = self.next_seq;
                self.next_seq += 1;
                ops.push(Op::Enqueue {
                    sub: r.key,
                    seq,
                    publish_ms,
                    body: ev.raw.clone(),
                });
                batch.push((seq, i));
            }
            if !batch.is_empty() {
                batches.push((r.target.clone(), batch));
            }
        }
        METRICS
            .events_unrouted
            .add(routed.iter().filter(|r| !**r).count() as u64);
        let copies = ops.len();
        if ops.is_empty() {
            return Box::pin(async move { Ok(0) });
        }
        let commit = self.writer.submit(ops);
        Box::pin(async move {
            commit.await?;
            for (target, batch) in batches {
                match target {
                    Target::Queue(a) => a.do_send(QueueAppend(
                        batch
                            .into_iter()
                            .map(|(seq, i)| (seq, publish_ms, events[i].raw.clone()))
                            .collect(),
                    )),
                    Target::Push(a) => a.do_send(PushAppend(
                        batch
                            .into_iter()
                            .map(|(seq, i)| PushEntry {
                                seq,
                                publish_ms,
                                body: events[i].raw.clone(),
                                id: events[i].id.clone(),
                                data_version: ntex_bytes::ByteString::new(),
                            })
                            .collect(),
                    )),
                }
            }
            Ok(copies)
        })
    }
}

impl Handler<SetRoutes> for NsTopic {
    type Result = ();
    fn handle(&mut self, msg: SetRoutes, _: &mut Context<Self>) {
        self.routes = msg.0;
    }
}

impl Handler<SetNextSeq> for NsTopic {
    type Result = ();
    fn handle(&mut self, msg: SetNextSeq, _: &mut Context<Self>) {
        self.next_seq = self.next_seq.max(msg.0);
    }
}

impl Handler<Shutdown> for NsTopic {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
