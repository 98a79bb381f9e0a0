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
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;

use crate::grid::GridError;
use crate::grid::resource::topic_spaces::TopicSpaces;
use crate::grid::topic::TopicActor;
use crate::grid::topic::{Publish, TopicEvent};
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

/// A connection batch's events, converted and ready for the route topic. Batches of several
/// connections bound for the same topic actor merge into one ([`Batch::absorb`]), so the route
/// topic takes one message and the store one commit for all of them.
pub struct Batch {
    target: Addr<TopicActor>,
    events: Vec<TopicEvent>,
    /// QoS 0 events counted against the best-effort bound until the commit answers.
    reserved: usize,
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
        self.reserved += std::mem::take(&mut other.reserved);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
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

    /// Converts a connection batch into the route topic's events, without sending them: `None`
    /// as for [`Bridge::route`]; `Some(Err)` when a QoS 1/2 batch cannot be routed (no route
    /// topic; counted).
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
        let ts = &st.topic_spaces;
        let now = now_ms();
        let mut buf = [0u8; 36];
        let mut events = Vec::with_capacity(n);
        let mut too_large = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let id = self.0.ids.next(&mut buf);
            let ev = convert::to_cloudevent(m, client, &self.0.namespace, &ts.enrichments, now, id);
            if ev.raw.len() > self.0.max_event_bytes {
                too_large.push(i);
            } else {
                events.push(TopicEvent::from(ev));
            }
        }
        let mut reserved = if best_effort { n } else { 0 };
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
            if best_effort {
                self.0
                    .best_effort
                    .fetch_sub(too_large.len(), Ordering::Relaxed);
                reserved -= too_large.len();
            }
        }
        let batch = (!events.is_empty()).then_some(Batch {
            target,
            events,
            reserved,
        });
        Some(Ok(Prepared { batch, too_large }))
    }

    /// Sends a batch to its route topic as one `Publish`; resolves once it is committed, with
    /// the outcome counted.
    pub fn submit(&self, batch: Batch) -> Routing {
        let Batch {
            target,
            events,
            reserved,
        } = batch;
        let n = events.len();
        let req = target.send(Publish(events));
        let me = self.clone();
        Box::pin(async move {
            let res = req.await;
            me.0.best_effort.fetch_sub(reserved, Ordering::Relaxed);
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
