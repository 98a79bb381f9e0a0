//! Routing MQTT messages into the route topic of the namespace the broker serves
//! (docs/eventgrid.md §7.6): one batch of messages becomes one `Publish` to the topic actor,
//! so one store commit.
//!
//! Owns the outcome accounting (`evgrid_mqtt_routed_total{outcome}`), the bound on best-effort
//! (QoS 0) batches in flight, the event ids, and the rate-limited warning. Must never make MQTT
//! delivery wait: the caller routes to MQTT subscribers first and awaits this only to decide
//! the acknowledgement.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix::Addr;

use crate::grid::GridError;
use crate::grid::resource::topic_spaces::TopicSpaces;
use crate::grid::topic::TopicActor;
use crate::grid::topic::{Publish, PublishWith, TopicEvent};
use crate::metrics::{ROUTED, RouteOutcome};
use crate::model::clock::now_ms;
use crate::mqtt::message::AppMessage;

use super::{Bridge, Client, RouteError, convert};

/// The answer to a routed batch: resolves once the route topic has committed it.
pub type Routing = Pin<Box<dyn Future<Output = Result<(), RouteError>> + Send>>;

/// A batch handed to the route topic.
pub struct Handed {
    /// Resolves once the route topic has committed the batch's events.
    pub commit: Routing,
    /// Messages (indexes in the batch) not routed because their CloudEvent is larger than
    /// `events.max_event_bytes`; counted, and not part of `commit`.
    pub too_large: Vec<usize>,
}

/// Best-effort (QoS 0 only) events handed to the route topic and not yet committed, beyond which
/// further QoS 0 batches are dropped (and counted) instead of queueing without bound.
pub(super) const MAX_BEST_EFFORT_IN_FLIGHT: usize = 64 * 1024;

/// Unique event ids: a random 64-bit prefix per process and a counter, in the UUID's shape.
pub(super) struct Ids {
    prefix: u64,
    next: AtomicU64,
}

impl Ids {
    pub fn new() -> Ids {
        let mut b = [0u8; 8];
        // Without OS randomness the clock still separates runs of the process.
        let prefix = match getrandom::fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        Ids {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// Writes the next id into `buf` (36 ASCII bytes) and answers it.
    pub fn next<'a>(&self, buf: &'a mut [u8; 36]) -> &'a str {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        uuid_shape(self.prefix, n, buf)
    }
}

/// `p` and `n` as 32 hex digits in the 8-4-4-4-12 shape.
fn uuid_shape(p: u64, n: u64, buf: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = (u128::from(p) << 64) | u128::from(n);
    let mut digit = 0;
    for (i, b) in buf.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *b = b'-';
            continue;
        }
        *b = HEX[((v >> (124 - 4 * digit)) & 0xf) as usize];
        digit += 1;
    }
    std::str::from_utf8(buf).expect("ASCII")
}

/// What routing a batch needs to know of the namespace, looked up once per grid generation.
struct RouteState {
    topic_spaces: Arc<TopicSpaces>,
    /// The route topic's actor, or why there is none.
    target: Result<Addr<TopicActor>, String>,
}

/// A thread's cached lookup: which bridge, the grid generation it was made under, and the state
/// (`None` when the namespace routes nothing).
struct Cached {
    bridge: usize,
    generation: u64,
    state: Option<Arc<RouteState>>,
}

thread_local! {
    /// Per thread (an ntex worker or an HTTP worker), so the lookup shared by every batch takes no
    /// lock and bounces no cache line between threads.
    static ROUTE_STATE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

impl Bridge {
    /// The namespace's routing as of the grid's current generation: `None` when it routes
    /// nothing (no namespace, `state` Disabled, or no `routeTopicResourceId`).
    fn route_state(&self) -> Option<Arc<RouteState>> {
        let id = Arc::as_ptr(&self.0) as usize;
        let generation = self.0.grid.generation();
        ROUTE_STATE.with(|c| {
            if let Some(k) = &*c.borrow()
                && k.bridge == id
                && k.generation == generation
            {
                return k.state.clone();
            }
            let state = self.look_up();
            *c.borrow_mut() = Some(Cached {
                bridge: id,
                generation,
                state: state.clone(),
            });
            state
        })
    }

    fn look_up(&self) -> Option<Arc<RouteState>> {
        let ts = self.0.grid.topic_spaces(&self.0.namespace).ok()?;
        let route = ts.route.as_ref().filter(|_| ts.enabled)?;
        let target = self.0.grid.route_target(route).map_err(|e| match e {
            GridError::BadRequest(m) => m,
            _ => format!("the route topic, {route}, does not exist"),
        });
        Some(Arc::new(RouteState {
            topic_spaces: ts.clone(),
            target,
        }))
    }
}

impl Handed {
    fn ready(r: Result<(), RouteError>) -> Handed {
        Handed {
            commit: Box::pin(std::future::ready(r)),
            too_large: Vec::new(),
        }
    }
}

/// At most one warning per this many milliseconds: a broken route must not flood the log.
const WARN_EVERY_MS: u64 = 10_000;
static LAST_WARN_MS: AtomicU64 = AtomicU64::new(0);

fn warn(what: &str, err: &RouteError) {
    let now = now_ms();
    let last = LAST_WARN_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= WARN_EVERY_MS
        && LAST_WARN_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(error = %err, "MQTT messages not routed into the event grid ({what}); further warnings within 10 s are not logged");
    }
}

/// Counts `n` messages not routed, warns (rate-limited), and answers the error.
fn failed(n: usize, outcome: RouteOutcome, err: RouteError) -> RouteError {
    ROUTED.add(outcome, n as u64);
    warn(outcome.label(), &err);
    err
}

/// A connection batch's events for the route topic. Batches of several connections bound for
/// the same topic actor merge into one ([`Batch::absorb`]), so the route topic takes one message
/// and the store one commit for all of them.
pub struct Batch {
    target: Addr<TopicActor>,
    /// Converted where they were accepted (QoS 1 and 2: the acknowledgement waits for them).
    events: Vec<TopicEvent>,
    /// QoS 0 messages, converted by the route topic on the grid's thread. Converting costs
    /// about as much CPU as delivering the message to an MQTT subscriber; on the MQTT engine's
    /// thread it took that from MQTT delivery whenever the two share saturated cores, while the
    /// grid's threads run below the engine's (`events.nice`) and take what MQTT leaves.
    deferred: Vec<Deferred>,
    /// QoS 0 messages counted against the best-effort bound until the commit answers.
    reserved: usize,
}

/// A connection batch's QoS 0 messages and what their conversion needs.
struct Deferred {
    msgs: Vec<AppMessage>,
    client: Client,
    topic_spaces: Arc<TopicSpaces>,
    received_ms: u64,
}

/// What [`Bridge::prepare`] made of a connection batch.
pub struct Prepared {
    /// `None` when no message of the batch is routed (all too large).
    pub batch: Option<Batch>,
    /// Messages (indexes in the connection batch) not routed because their CloudEvent is larger
    /// than `events.max_event_bytes`; counted already.
    pub too_large: Vec<usize>,
}

impl Batch {
    /// Takes `other`'s events when it goes to the same topic actor; gives it back otherwise.
    pub fn absorb(&mut self, mut other: Batch) -> Result<(), Batch> {
        if other.target != self.target {
            return Err(other);
        }
        self.events.append(&mut other.events);
        self.deferred.append(&mut other.deferred);
        self.reserved += std::mem::take(&mut other.reserved);
        Ok(())
    }

    /// Events and messages to convert.
    pub fn len(&self) -> usize {
        self.events.len() + self.deferred.iter().map(|d| d.msgs.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Bridge {
    /// Routes a batch of accepted messages into the namespace's route topic: `None` when the
    /// namespace routes nothing (no `routeTopicResourceId`, or `state` Disabled). For a QoS 0
    /// batch (`best_effort`) also `None` when it is not routed: dropped over the bound, or no
    /// route topic (counted either way; nobody waits for the answer).
    pub fn route(&self, msgs: &[AppMessage], client: &Client, best_effort: bool) -> Option<Handed> {
        let prepared = match self.prepare(msgs, client, best_effort)? {
            Ok(p) => p,
            Err(e) => return Some(Handed::ready(Err(e))),
        };
        let commit = match prepared.batch {
            Some(b) => self.submit(b),
            None => Box::pin(std::future::ready(Ok(()))),
        };
        Some(Handed {
            commit,
            too_large: prepared.too_large,
        })
    }

    /// Makes a connection batch ready for the route topic, without sending it: `None` as for
    /// [`Bridge::route`]; `Some(Err)` when a QoS 1/2 batch cannot be routed (no route topic;
    /// counted). A QoS 1/2 batch is converted here, so its too-large messages are known before
    /// the acknowledgements; a QoS 0 batch (`best_effort`) is converted by the route topic.
    pub fn prepare(
        &self,
        msgs: &[AppMessage],
        client: &Client,
        best_effort: bool,
    ) -> Option<Result<Prepared, RouteError>> {
        let st = self.route_state()?;
        let n = msgs.len();
        let target = match &st.target {
            Ok(a) => a.clone(),
            Err(why) => {
                let e = failed(n, RouteOutcome::NoRoute, RouteError::NoRoute(why.clone()));
                return (!best_effort).then_some(Err(e));
            }
        };
        if best_effort {
            let before = self.0.best_effort.fetch_add(n, Ordering::Relaxed);
            if before + n > MAX_BEST_EFFORT_IN_FLIGHT {
                // The cheap way out: this is the path a QoS 0 flood beyond what the route topic
                // commits takes for every batch, so it must cost MQTT delivery next to nothing.
                self.0.best_effort.fetch_sub(n, Ordering::Relaxed);
                let _ = failed(
                    n,
                    RouteOutcome::Dropped,
                    RouteError::Failed("too many QoS 0 events waiting for the route topic".into()),
                );
                return None;
            }
        }
        let now = now_ms();
        if best_effort {
            let deferred = Deferred {
                msgs: msgs.to_vec(),
                client: client.clone(),
                topic_spaces: st.topic_spaces.clone(),
                received_ms: now,
            };
            return Some(Ok(Prepared {
                batch: Some(Batch {
                    target,
                    events: Vec::new(),
                    deferred: vec![deferred],
                    reserved: n,
                }),
                too_large: Vec::new(),
            }));
        }
        let mut events = Vec::with_capacity(n);
        let too_large = self.convert(msgs, client, &st.topic_spaces, now, &mut events);
        let batch = (!events.is_empty()).then_some(Batch {
            target,
            events,
            deferred: Vec::new(),
            reserved: 0,
        });
        Some(Ok(Prepared { batch, too_large }))
    }

    /// Appends the CloudEvents of `msgs` to `events`; answers the indexes of those larger than
    /// `events.max_event_bytes` (left out, and counted).
    fn convert(
        &self,
        msgs: &[AppMessage],
        client: &Client,
        ts: &TopicSpaces,
        received_ms: u64,
        events: &mut Vec<TopicEvent>,
    ) -> Vec<usize> {
        let mut buf = [0u8; 36];
        let mut too_large = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let id = self.0.ids.next(&mut buf);
            let ns = &self.0.namespace;
            let ev = convert::to_cloudevent(m, client, ns, &ts.enrichments, received_ms, id);
            if ev.raw.len() > self.0.max_event_bytes {
                too_large.push(i);
            } else {
                events.push(TopicEvent::from(ev));
            }
        }
        if !too_large.is_empty() {
            let why = format!(
                "the message's CloudEvent is larger than events.max_event_bytes ({} bytes)",
                self.0.max_event_bytes
            );
            let _ = failed(
                too_large.len(),
                RouteOutcome::TooLarge,
                RouteError::TooLarge(why),
            );
        }
        too_large
    }

    /// Sends a batch to its route topic as one `Publish`; resolves once it is committed, with
    /// the outcome counted.
    pub fn submit(&self, batch: Batch) -> Routing {
        let Batch {
            target,
            mut events,
            deferred,
            reserved,
        } = batch;
        // Until the route topic converts them (it does not when its mailbox is closed), every
        // message counts as one event for the outcome.
        let total = events.len() + deferred.iter().map(|d| d.msgs.len()).sum::<usize>();
        let converted = Arc::new(AtomicUsize::new(total));
        let req: Pin<Box<dyn Future<Output = _> + Send>> = match deferred.is_empty() {
            true => Box::pin(target.send(Publish(events))),
            false => Box::pin({
                let (me, converted) = (self.clone(), converted.clone());
                target.send(PublishWith(Box::new(move || {
                    for d in &deferred {
                        let ts = &d.topic_spaces;
                        me.convert(&d.msgs, &d.client, ts, d.received_ms, &mut events);
                    }
                    converted.store(events.len(), Ordering::Relaxed);
                    events
                })))
            }),
        };
        let me = self.clone();
        Box::pin(async move {
            let res = req.await;
            me.0.best_effort.fetch_sub(reserved, Ordering::Relaxed);
            let n = converted.load(Ordering::Relaxed);
            match res {
                Ok(Ok(_)) => {
                    ROUTED.add(RouteOutcome::Routed, n as u64);
                    Ok(())
                }
                Ok(Err(GridError::NotFound { .. } | GridError::NotFoundIn { .. })) | Err(_) => {
                    Err(failed(
                        n,
                        RouteOutcome::NoRoute,
                        RouteError::NoRoute("the route topic was deleted".into()),
                    ))
                }
                Ok(Err(GridError::Full(why))) => {
                    Err(failed(n, RouteOutcome::Full, RouteError::Full(why)))
                }
                Ok(Err(e)) => Err(failed(
                    n,
                    RouteOutcome::Failed,
                    RouteError::Failed(e.to_string()),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_distinct() {
        let mut b = [0u8; 36];
        assert_eq!(
            uuid_shape(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, &mut b),
            "01234567-89ab-cdef-fedc-ba9876543210"
        );
        let ids = Ids::new();
        let (mut x, mut y) = ([0u8; 36], [0u8; 36]);
        assert_ne!(ids.next(&mut x), ids.next(&mut y));
    }
}
