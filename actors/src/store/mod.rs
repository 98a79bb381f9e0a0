//! The durable store: resources, pull-queue entries, their delivery state and dead letters.
//!
//! Owns the [`Store`] trait with three implementations ([`mem::MemStore`] for tests and
//! `store.backend = "memory"`; [`redb::RedbStore`], everything in one redb file; and
//! [`log::LogStore`], queues in an append-only log beside a redb file for the rest), and the
//! [`Writer`]: the one task that applies mutations. Everything that changes the store goes
//! through the writer as a batch of [`Op`]s; the writer takes every batch queued while the
//! previous commit was syncing, applies them all in one transaction, commits once (one fsync),
//! then answers each batch. So a publish, an acknowledge or a resource change is answered only
//! after the store has committed it, and many concurrent requests share one fsync.
//!
//! Data model (the same in both implementations; [`record`] frames the `queue` and `state` rows):
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
//! - `mqtt`: the MQTT broker's durable state by key: `retained/TOPIC` → the retained message
//!   (`crate::mqtt::persist` frames it).
//!
//! Invariants: a `state` row exists only beside a `queue` row; removing an entry removes both;
//! dropping a subscription removes all its rows in all three tables in the same commit.
//! Sequences are chosen by the callers (the topic and subscription actors), unique per key.
//!
//! Failure: a commit that fails with an I/O error (a full disk, an EIO) fails the batches that
//! shared it, and the writer marks the store unhealthy ([`Writer::health`], `/readyz`): batches
//! queued after that are refused at once ([`StoreError::Unavailable`]) instead of touching the
//! disk, while the writer asks the backend to [`Store::recover`] (redb: close and reopen the file,
//! which a failed commit requires, then prove a largest request fits) with a growing pause between
//! attempts. Once an attempt succeeds the store is healthy again; nothing committed before the
//! failure is lost, because a failed commit is never applied.
//!
//! Space: with a free-space floor set ([`Writer::set_free_floor`], `store.min_free_bytes`), a
//! batch that adds events is refused with [`StoreError::Full`] while the store's file system has
//! less free than the floor, checked before each commit that would add events; everything else
//! (settlements, which free space; resource changes) still commits, so nothing acknowledged
//! becomes unreadable and the disk never fills with events.
//!
//! Must never: answer a batch before its commit returned; apply part of a batch; open a file
//! that is not an evgrid store (or is damaged) as if it were empty; stay unable to commit after
//! the cause of a write error is gone.

pub mod log;
pub mod mem;
pub mod record;
pub mod redb;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ntex_bytes::Bytes;

use crate::metrics::{METRICS, STORE};

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
    /// A published event queued for one subscription. A subscription's sequences ascend: each
    /// enqueue is above every sequence it had before (the queue log refuses one that is not).
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
    /// MQTT broker state kept across restarts (retained messages: `retained/TOPIC`).
    PutMqtt {
        key: String,
        value: Vec<u8>,
    },
    DeleteMqtt {
        key: String,
    },
    /// Removes every MQTT state entry whose key starts with `prefix`.
    DeleteMqttPrefix {
        prefix: String,
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

/// A queued entry as read back at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    pub publish_ms: u64,
    pub body: Bytes,
    pub state: EntryState,
}

/// How much one read of a queue may return: at most `entries` entries, and it stops after the
/// entry that brings the bodies to `bytes` or more (one entry is always returned if there is one,
/// so an event larger than `bytes` is still read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub entries: usize,
    pub bytes: usize,
}

impl Page {
    pub const ALL: Page = Page {
        entries: usize::MAX,
        bytes: usize::MAX,
    };
}

/// Why the store failed. Any error fails the whole batch; nothing of it was applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The data directory's file system has less free space than `store.min_free_bytes`: a
    /// batch that adds events is refused before it touches the disk (settlements, which free
    /// space, still commit).
    #[error("{0}")]
    Full(String),
    #[error("store I/O error: {0}")]
    Io(String),
    #[error("{0}")]
    Refused(String),
    /// An earlier commit failed with an I/O error and the store has not recovered yet; nothing
    /// of this batch touched the disk.
    #[error("the store cannot write at the moment ({0})")]
    Unavailable(String),
    #[error("the store is shutting down")]
    Closed,
}

/// What the writer and the start-up code need from a backend.
pub trait Store: Send + Sync + 'static {
    /// Applies every op in order in one atomic, durable commit.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Every resource, sorted by path.
    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The queued entries of `sub` from sequence `from` on, by sequence, as many as `page` allows.
    fn queue_page(&self, sub: u64, from: u64, page: Page) -> Result<Vec<Queued>, StoreError>;
    /// Every queued entry of `sub`, by sequence.
    fn queue(&self, sub: u64) -> Result<Vec<Queued>, StoreError> {
        self.queue_page(sub, 0, Page::ALL)
    }
    /// How many entries `sub` has queued from sequence `from` on, and its highest sequence (0
    /// if none). Walks the keys, not the bodies.
    fn queue_extent(&self, sub: u64, from: u64) -> Result<(u64, u64), StoreError>;
    /// The highest queued sequence of `sub` (0 if none), without reading the others. A backend
    /// may answer a higher sequence `sub` had and settled (the queue log remembers them all);
    /// callers continue above this, never at or below it.
    fn queue_last(&self, sub: u64) -> Result<u64, StoreError>;
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
    /// Every MQTT state entry whose key starts with `prefix`, sorted by key.
    fn mqtt_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Makes the store able to commit again after a commit failed with [`StoreError::Io`], and
    /// proves it with a durable write. Called by the writer only, never concurrently with
    /// [`Store::commit`]. A backend whose failed commits leave nothing to repair needs nothing.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Bytes free for the store to grow into, if the backend lives in a file system.
    fn free_bytes(&self) -> Option<u64> {
        None
    }
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
    health: Arc<Health>,
    /// `store.min_free_bytes`; 0: no floor.
    floor: Arc<std::sync::atomic::AtomicU64>,
}

/// Whether the store can commit, shared by the writer thread (which sets it) and readiness.
#[derive(Default)]
struct Health {
    broken: AtomicBool,
    /// Why it cannot commit; read only when `broken` is set.
    error: Mutex<String>,
}

impl Health {
    fn set(&self, broken: Option<&str>) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        e.clear();
        if let Some(b) = broken {
            e.push_str(b);
        }
        self.broken.store(broken.is_some(), Ordering::Release);
        STORE.healthy.set(i64::from(broken.is_none()));
    }
}

/// Most ops one commit takes: bounds a commit's latency when producers outrun the disk.
const MAX_OPS_PER_COMMIT: usize = 20_000;

/// The first attempt to recover from a failed commit is made at once (a transient error is
/// over in a moment); after a failed attempt the writer pauses this long, doubled after each
/// further failure up to [`RECOVER_MAX_PAUSE`] (a full disk stays full until somebody frees
/// space).
const RECOVER_FIRST_PAUSE: Duration = Duration::from_millis(100);
const RECOVER_MAX_PAUSE: Duration = Duration::from_secs(5);
/// The pause is also at least this many times the last attempt's duration: a reopen checks the
/// whole file (see `redb.rs`), and a large store must not keep the disk busy with checks.
const RECOVER_PAUSE_PER_ATTEMPT: u32 = 4;

impl Writer {
    /// Starts the writer thread over `store`. The thread ends when every handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Writer {
        Writer::start_with(store, || ())
    }

    /// [`Writer::start`], running `init` first on the writer's thread (the server lowers its
    /// scheduling priority there).
    pub fn start_with(store: Arc<dyn Store>, init: impl FnOnce() + Send + 'static) -> Writer {
        let (tx, rx) = crossbeam_channel::unbounded::<Req>();
        let s = store.clone();
        let health = Arc::new(Health::default());
        let h = health.clone();
        let floor = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let f = floor.clone();
        std::thread::Builder::new()
            .name("evgrid-store".into())
            .spawn(move || {
                init();
                writer_loop(&*s, rx, &h, &f)
            })
            .expect("spawn store writer");
        Writer {
            tx,
            store,
            health,
            floor,
        }
    }

    /// Refuses batches that add events ([`StoreError::Full`]) while the store's file system has
    /// fewer than `bytes` free; 0 turns the floor off.
    pub fn set_free_floor(&self, bytes: u64) {
        self.floor.store(bytes, Ordering::Relaxed);
    }

    /// `Ok` while the store can commit; otherwise the error that stopped it (the writer keeps
    /// trying to recover). For readiness: reads one atomic unless the store is broken.
    pub fn health(&self) -> Result<(), String> {
        if !self.health.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self
            .health
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
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

/// The writer's record of a failed commit it has not recovered from.
struct Broken {
    /// The failed commit's error: what refused batches and readiness report. (A failed
    /// recovery's error can name the file's path, which is for the log only.)
    error: String,
    /// The last failed recovery's error, logged once per change.
    last_attempt: String,
    next_try: Instant,
    /// How long to wait after the next attempt if it fails too.
    pause: Duration,
    since: Instant,
}

/// The keys [`Store::dead_letters`] reads: those of `sub` with a sequence above `after`; `None`
/// when no sequence can be.
fn dead_letters_after(sub: u64, after: u64) -> Option<std::ops::RangeInclusive<(u64, u64)>> {
    Some((sub, after.checked_add(1)?)..=(sub, u64::MAX))
}

/// Answers the requests that would add events with [`StoreError::Full`] and drops them from
/// `reqs` when the file system has less than `floor` bytes free.
fn refuse_below_floor(store: &dyn Store, reqs: &mut Vec<Req>, floor: u64) {
    let grows = |r: &Req| r.ops.iter().any(|o| matches!(o, Op::Enqueue { .. }));
    if floor == 0 || !reqs.iter().any(grows) {
        return;
    }
    let Some(free) = store.free_bytes() else {
        return;
    };
    STORE.free_bytes.set(free.min(i64::MAX as u64) as i64);
    if free >= floor {
        return;
    }
    let err = StoreError::Full(format!(
        "the data directory's file system has {free} bytes free, less than store.min_free_bytes ({floor}); new events are refused until space is freed"
    ));
    reqs.retain_mut(|r| {
        if !grows(r) {
            return true;
        }
        STORE.full_refusals.inc();
        let (done, _) = tokio::sync::oneshot::channel();
        let _ = std::mem::replace(&mut r.done, done).send(Err(err.clone()));
        false
    });
}

fn writer_loop(
    store: &dyn Store,
    rx: crossbeam_channel::Receiver<Req>,
    health: &Health,
    floor: &std::sync::atomic::AtomicU64,
) {
    let mut reqs: Vec<Req> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut broken: Option<Broken> = None;
    loop {
        let first = match &broken {
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
            // Broken: wake up for the next recovery attempt even if nothing is submitted, so
            // readiness comes back once the cause is gone.
            Some(b) => {
                match rx.recv_timeout(b.next_try.saturating_duration_since(Instant::now())) {
                    Ok(r) => r,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        try_recover(store, &mut broken, health);
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            }
        };
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
        if broken
            .as_ref()
            .is_some_and(|b| Instant::now() >= b.next_try)
        {
            try_recover(store, &mut broken, health);
        }
        if let Some(b) = &broken {
            // Refused without touching the disk: the batch fails fast and clearly, and a disk
            // that is still full is not written to (nor a damaged file re-checked) per request.
            METRICS.store_errors.inc();
            let err = StoreError::Unavailable(b.error.clone());
            for r in reqs.drain(..) {
                let _ = r.done.send(Err(err.clone()));
            }
            continue;
        }
        refuse_below_floor(store, &mut reqs, floor.load(Ordering::Relaxed));
        if reqs.is_empty() {
            continue;
        }
        let n: usize = reqs.iter().map(|r| r.ops.len()).sum();
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
            if let StoreError::Io(msg) = e {
                STORE.commit_failures.inc();
                tracing::error!(
                    "the store refuses changes until it can commit again; retrying in the background"
                );
                health.set(Some(msg));
                let now = Instant::now();
                broken = Some(Broken {
                    error: msg.clone(),
                    last_attempt: String::new(),
                    next_try: now,
                    pause: RECOVER_FIRST_PAUSE,
                    since: now,
                });
            }
        }
        for r in reqs.drain(..) {
            let _ = r.done.send(res.clone());
        }
    }
}

/// One attempt to make a broken store commit again; schedules the next one if it fails.
fn try_recover(store: &dyn Store, broken: &mut Option<Broken>, health: &Health) {
    let Some(b) = broken else { return };
    let started = Instant::now();
    match store.recover() {
        Ok(()) => {
            STORE.recoveries.inc();
            tracing::info!(
                after_ms = b.since.elapsed().as_millis() as u64,
                "the store commits again"
            );
            health.set(None);
            *broken = None;
        }
        Err(e) => {
            let msg = e.to_string();
            if msg != b.last_attempt {
                tracing::warn!(error = %msg, "the store still cannot commit");
                b.last_attempt = msg;
            } else {
                tracing::debug!(error = %msg, "the store still cannot commit");
            }
            let pause = b.pause.max(started.elapsed() * RECOVER_PAUSE_PER_ATTEMPT);
            b.next_try = Instant::now() + pause;
            b.pause = (b.pause * 2).min(RECOVER_MAX_PAUSE);
        }
    }
}
