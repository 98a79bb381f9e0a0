//! Routing into the event grid from the MQTT edge, batched per ntex worker: every connection of
//! a worker that completes a batch in one event-loop turn adds its events to the worker's one
//! pending batch, which goes to the route topic as one message, so one store commit, when the
//! turn ends (docs/eventgrid.md §7.6; ARCHITECTURE.md, "Life of a routed MQTT message").
//!
//! Owns the worker's pending batch and the answers its connections wait for. Batching per
//! connection alone made one route-topic message per PUBLISH at fleet rates (many connections,
//! few messages each per turn): a mailbox message, a store submit and several thread wake-ups
//! each. Must never hold a batch beyond the turn it was started in.

use std::cell::RefCell;

use evgrid_actors::bridge::route::Batch;
use evgrid_actors::bridge::{Bridge, RouteError};
use tokio::sync::oneshot;

/// The answer to a connection's part of the worker's batch.
pub(super) type Committed = oneshot::Receiver<Result<(), RouteError>>;

struct Pending {
    batch: Batch,
    waiters: Vec<oneshot::Sender<Result<(), RouteError>>>,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// Adds a connection's batch to this worker's pending one; with `wait`, the receiver answers
/// once the route topic has committed it.
pub(super) fn enqueue(bridge: &Bridge, batch: Batch, wait: bool) -> Option<Committed> {
    let (tx, rx) = match wait {
        true => {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    let start = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let Some(pending) = p.as_mut() else {
            *p = Some(Pending {
                batch,
                waiters: tx.into_iter().collect(),
            });
            return true;
        };
        match pending.batch.absorb(batch) {
            Ok(()) => pending.waiters.extend(tx),
            // Another route topic: the configuration changed within the turn. On its own.
            Err(other) => {
                let commit = bridge.submit(other);
                ntex_rt::spawn(async move {
                    let r = commit.await;
                    if let Some(tx) = tx {
                        let _ = tx.send(r);
                    }
                });
            }
        }
        false
    });
    if start {
        let bridge = bridge.clone();
        ntex_rt::spawn(async move {
            // Every connection of this worker that completes a batch in this turn joins first.
            tokio::task::yield_now().await;
            let Some(pending) = PENDING.with(|p| p.borrow_mut().take()) else {
                return;
            };
            let r = bridge.submit(pending.batch).await;
            for w in pending.waiters {
                let _ = w.send(r.clone());
            }
        });
    }
    rx
}
