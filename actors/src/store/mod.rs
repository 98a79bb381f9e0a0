//! The durable store: resources, pull-queue entries, their delivery state and dead letters.
//!
//! Owns the [`Store`] trait with two implementations ([`mem::MemStore`] for tests and
//! `store.backend = "memory"`, [`redb::RedbStore`] for everything durable), and the
//! [`Writer`]: the one task that applies mutations. Everything that changes the store goes
//! through the writer as a batch of [`Op`]s; the writer takes every batch queued while the
//! previous commit was syncing, applies them all in one transaction, commits once (one fsync),
//! then answers each batch. So a publish, an acknowledge or a resource change is answered only
//! after the store has committed it, and many concurrent requests share one fsync.
//!
//! Data model (the same in both implementations):
//! - `resources`: resource path (e.g. `namespaces/ns1/topics/t1`) → its JSON document.
//! - `queue`: (subscription key, sequence) → publish time (ms since the epoch, u64 LE) followed
//!   by the event's JSON bytes exactly as published. One entry per subscription that accepted
//!   the event (fan-out copies on disk; one subscription per topic is the common case and then
//!   one insert per event is all a publish costs).
//! - `state`: (subscription key, sequence) → delivery count (u32 LE) and the time before which
//!   the entry must not be handed out (ms, u64 LE). Written only when an entry leaves the happy
//!   path (released, lock expired); absent means "count 0, available now".
//! - `dead`: (subscription key, dead-letter sequence) → the dead-letter record as JSON.
//! - `meta`: a few named values (the format marker, counters).
//!
//! Invariants: a `state` row exists only beside a `queue` row; removing an entry removes both;
//! dropping a subscription removes all its rows in all three tables in the same commit.
//! Sequences are chosen by the callers (the topic and subscription actors), unique per key.
//!
//! Must never: answer a batch before its commit returned; apply part of a batch; open a file
//! that is not an evgrid store (or is damaged) as if it were empty.

pub mod mem;
pub mod redb;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use ntex_bytes::Bytes;

use crate::metrics::METRICS;

/// Format marker kept in `meta` under [`FORMAT_KEY`]; a store without it is refused.
pub const FORMAT_KEY: &str = "format";
pub const FORMAT: &[u8] = b"evgrid-store/1";

/// One mutation. A batch of them is applied atomically.
#[derive(Debug, Clone)]
pub enum Op {
    PutResource {
        path: String,
        json: Vec<u8>,
    },
    DeleteResource {
        path: String,
    },
    /// A published event queued for one subscription.
    Enqueue {
        sub: u64,
        seq: u64,
        publish_ms: u64,
        body: Bytes,
    },
    /// Settled (acknowledged, rejected without dead-lettering, expired): gone for good.
    Remove {
        sub: u64,
        seq: u64,
    },
    /// The entry's delivery state changed (released, or its lock expired).
    SetState {
        sub: u64,
        seq: u64,
        state: EntryState,
    },
    /// Removes the entry and keeps `record` as dead letter `dl_seq` of the subscription.
    DeadLetter {
        sub: u64,
        seq: u64,
        dl_seq: u64,
        record: Vec<u8>,
    },
    /// Removes every entry, state row and dead letter of a subscription.
    DropSubscription {
        sub: u64,
    },
    PutMeta {
        key: String,
        value: Vec<u8>,
    },
}

/// Delivery state of a queued entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryState {
    /// Deliveries that ended without a settlement.
    pub delivery_count: u32,
    /// Not to be handed out before this time (ms since the epoch); 0 = now.
    pub available_at_ms: u64,
}

impl EntryState {
    pub(crate) fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.delivery_count.to_le_bytes());
        b[4..].copy_from_slice(&self.available_at_ms.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Option<EntryState> {
        if b.len() != 12 {
            return None;
        }
        Some(EntryState {
            delivery_count: u32::from_le_bytes(b[..4].try_into().ok()?),
            available_at_ms: u64::from_le_bytes(b[4..].try_into().ok()?),
        })
    }
}

/// A queued entry as read back at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    pub publish_ms: u64,
    pub body: Bytes,
    pub state: EntryState,
}

/// Why the store failed. Any error fails the whole batch; nothing of it was applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O error: {0}")]
    Io(String),
    #[error("{0}")]
    Refused(String),
    #[error("the store is shutting down")]
    Closed,
}

/// What the writer and the start-up code need from a backend.
pub trait Store: Send + Sync + 'static {
    /// Applies every op in order in one atomic, durable commit.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Every resource, sorted by path.
    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every queued entry of `sub`, by sequence.
    fn queue(&self, sub: u64) -> Result<Vec<Queued>, StoreError>;
    /// Subscription keys that have queue entries or dead letters (to find orphans).
    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError>;
    /// Up to `limit` dead letters of `sub` with a sequence above `after`, in order.
    fn dead_letters(
        &self,
        sub: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The highest dead-letter sequence of `sub` (0 if none).
    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError>;
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

struct Req {
    ops: Vec<Op>,
    done: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the single writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: crossbeam_channel::Sender<Req>,
    store: Arc<dyn Store>,
}

/// Most ops one commit takes: bounds a commit's latency when producers outrun the disk.
const MAX_OPS_PER_COMMIT: usize = 20_000;

impl Writer {
    /// Starts the writer thread over `store`. The thread ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Writer {
        let (tx, rx) = crossbeam_channel::unbounded::<Req>();
        let s = store.clone();
        std::thread::Builder::new()
            .name("evgrid-store".into())
            .spawn(move || writer_loop(&*s, rx))
            .expect("spawn store writer");
        Writer { tx, store }
    }

    /// Queues `ops` for the next commit; resolves when they are durable (or failed).
    pub fn submit(
        &self,
        ops: Vec<Op>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, rx) = tokio::sync::oneshot::channel();
        let sent = self.tx.send(Req { ops, done }).is_ok();
        async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Queues `ops` without waiting for the commit (from inside an actix system), for state whose loss on a failed commit is
    /// recoverable (the store keeps what it had, and that is redelivered); a failure is logged
    /// with `what`.
    pub fn submit_detached(&self, ops: Vec<Op>, what: &'static str) {
        if ops.is_empty() {
            return;
        }
        let f = self.submit(ops);
        // Callers are actors: the task runs on their arbiter.
        actix::spawn(async move {
            if let Err(e) = f.await {
                tracing::warn!(error = %e, "{what} not committed");
            }
        });
    }

    /// Reads go straight to the backend (both backends allow reads beside the writer).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

fn writer_loop(store: &dyn Store, rx: crossbeam_channel::Receiver<Req>) {
    let mut reqs: Vec<Req> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        reqs.push(first);
        // Everything that queued up while the previous commit ran goes into this one.
        let mut n = reqs[0].ops.len();
        while n < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.ops.len();
                    reqs.push(r);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let res = if reqs.len() == 1 {
            store.commit(&reqs[0].ops)
        } else {
            for r in &mut reqs {
                ops.append(&mut r.ops);
            }
            let res = store.commit(&ops);
            ops.clear();
            res
        };
        METRICS
            .store_commit
            .observe_us(started.elapsed().as_micros() as u64);
        METRICS.store_commits.inc();
        METRICS.store_ops.add(n as u64);
        if let Err(e) = &res {
            METRICS.store_errors.inc();
            tracing::error!(error = %e, "store commit failed");
        }
        for r in reqs.drain(..) {
            let _ = r.done.send(res.clone());
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
