//! The in-memory window of a subscription's backlog: which of its committed events a pull queue
//! or push subscription holds in memory, and which stay on disk until the window has room.
//!
//! Every event a subscription accepts is committed in the store before its actor hears of it, so
//! memory is only a cache of the backlog's head. A [`Pager`] keeps that cache bounded in bytes,
//! per subscription (`store.backlog_window_bytes`) and summed over all subscriptions
//! (`store.backlog_memory_bytes`): appended events that do not fit are left on disk, and once the
//! window has drained below half, the actor reads the next page from the store (on the blocking
//! pool, never on its own thread) and takes it in sequence order. Sequences only grow per
//! subscription, so the head in memory is always the oldest part of the backlog, and everything
//! from [`Pager::disk_from`] on is on disk only.
//!
//! Reads and appends race: a page read may already hold events whose append message is still in
//! the actor's mailbox (the topic commits, then sends), and an append may land while a read is in
//! flight. The topic hands appends over in commit order, and a read that sees a commit sees every
//! earlier one, so [`Pager::admit`] drops appends at or below the highest sequence a read took
//! in, and [`Pager::loaded`] keeps reading from disk while any sequence heard of lies above it:
//! every event is taken exactly once. An append that arrives late anyway, below the first
//! sequence on disk, was never read and is kept in memory.
//!
//! Must never hold an event in memory that is not committed, hand one out twice, lose the place
//! of one left on disk, or read the store on an actor's thread after start-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;

use crate::metrics::METRICS;
use crate::store::{Page, Queued, Store, StoreError};

/// How many bytes of event bodies the windows may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// One subscription's window.
    pub per_subscription: usize,
    /// All windows together.
    pub total: usize,
}

impl Default for WindowLimits {
    fn default() -> Self {
        WindowLimits {
            per_subscription: 64 << 20,
            total: 1 << 30,
        }
    }
}

/// Bytes held by every window in the process, against [`WindowLimits::total`].
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Most entries one page read returns: bounds the time a read holds its transaction and the
/// burst the actor takes in one message.
const PAGE_ENTRIES: usize = 16384;
/// Most bytes one page read returns.
const PAGE_BYTES: usize = 16 << 20;

/// What became of an appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Keep it in memory.
    Memory,
    /// Leave it on disk; a page read brings it in later.
    Disk,
    /// Already taken in by a page read: ignore the append.
    Seen,
}

/// What a page read brought into memory.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The entries, in sequence order.
    pub entries: Vec<Queued>,
    /// How many of them had not been heard of (their append is still on its way, and will be
    /// [`Admit::Seen`]): the caller counts them as new.
    pub unheard: usize,
}

#[derive(Debug)]
pub struct Pager {
    sub: u64,
    limits: WindowLimits,
    /// Body bytes this window holds.
    held: usize,
    /// Events this window holds.
    events: usize,
    /// The highest sequence a page read (or the start-up read) covered.
    read_hi: u64,
    /// The highest sequence heard of (appended or read).
    seen_hi: u64,
    /// Every committed event from here on is on disk only; `None`: all are in memory.
    disk_from: Option<u64>,
    /// Events on disk only: counted at start-up, then one per append left on disk, less what
    /// page reads took in.
    on_disk: u64,
    loading: bool,
}

impl Pager {
    /// A window for a subscription with nothing on disk beyond what it is given.
    pub fn new(sub: u64, limits: WindowLimits) -> Pager {
        Pager {
            sub,
            limits,
            held: 0,
            events: 0,
            read_hi: 0,
            seen_hi: 0,
            disk_from: None,
            on_disk: 0,
            loading: false,
        }
    }

    /// Start-up: reads the head of `sub`'s backlog (one window at most) and counts what stays on
    /// disk. The caller takes the returned entries into memory.
    pub fn open(
        sub: u64,
        limits: WindowLimits,
        store: &dyn Store,
    ) -> Result<(Pager, Vec<Queued>), StoreError> {
        let mut p = Pager::new(sub, limits);
        let room = p.room().max(1);
        let head = store.queue_page(
            sub,
            0,
            Page {
                entries: usize::MAX,
                bytes: room,
            },
        )?;
        let last_loaded = head.last().map_or(0, |q| q.seq);
        let (rest, last) = store.queue_extent(sub, last_loaded.saturating_add(1))?;
        for q in &head {
            p.took(q.body.len());
        }
        p.read_hi = last_loaded;
        p.seen_hi = last.max(last_loaded);
        if rest > 0 {
            p.disk_from = Some(last_loaded + 1);
            p.on_disk = rest;
            METRICS.backlog_disk_events.add(rest as i64);
        }
        Ok((p, head))
    }

    /// Bytes this window may still take now.
    fn room(&self) -> usize {
        let total = HELD.load(Ordering::Relaxed);
        self.limits
            .per_subscription
            .saturating_sub(self.held)
            .min(self.limits.total.saturating_sub(total))
    }

    fn took(&mut self, len: usize) {
        self.held += len;
        self.events += 1;
        HELD.fetch_add(len, Ordering::Relaxed);
        METRICS.backlog_memory_bytes.add(len as i64);
        METRICS.backlog_memory_events.inc();
    }

    /// An appended, committed event with sequence `seq` and a body of `len` bytes.
    pub fn admit(&mut self, seq: u64, len: usize) -> Admit {
        if seq <= self.read_hi {
            return Admit::Seen;
        }
        self.seen_hi = self.seen_hi.max(seq);
        let to_disk = match self.disk_from {
            Some(from) => seq >= from,
            // An empty window always takes one event, so a body larger than the window still
            // moves.
            None => self.events > 0 && len > self.room(),
        };
        if to_disk {
            self.disk_from.get_or_insert(seq);
            self.on_disk += 1;
            METRICS.backlog_disk_events.inc();
            return Admit::Disk;
        }
        self.took(len);
        Admit::Memory
    }

    /// An event of `len` bytes left memory (settled, dead-lettered, dropped).
    pub fn left(&mut self, len: usize) {
        self.held = self.held.saturating_sub(len);
        self.events = self.events.saturating_sub(1);
        HELD.fetch_sub(len, Ordering::Relaxed);
        METRICS.backlog_memory_bytes.add(-(len as i64));
        METRICS.backlog_memory_events.dec();
    }

    /// Events waiting on disk only.
    pub fn on_disk(&self) -> u64 {
        self.on_disk
    }

    /// The first sequence on disk only, if any.
    pub fn disk_from(&self) -> Option<u64> {
        self.disk_from
    }

    /// The page to read next, if the window has drained enough and none is being read. The
    /// caller reads it off its thread and hands the result to [`Pager::loaded`].
    pub fn refill(&mut self) -> Option<(u64, Page)> {
        let from = self.disk_from?;
        if self.loading || self.held > self.limits.per_subscription / 2 {
            return None;
        }
        let room = self.room();
        if room == 0 && self.events > 0 {
            return None;
        }
        self.loading = true;
        Some((
            from,
            Page {
                entries: PAGE_ENTRIES,
                bytes: room.clamp(1, PAGE_BYTES),
            },
        ))
    }

    /// Takes a page read for [`Pager::refill`]: answers the entries to take into memory, in
    /// order. A failed read leaves everything on disk; the next refill tries again.
    pub fn loaded(&mut self, page: Result<Vec<Queued>, StoreError>) -> Loaded {
        self.loading = false;
        let mut got = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(sub = self.sub, error = %e, "reading a backlog page failed; retrying on the next tick");
                return Loaded::default();
            }
        };
        got.retain(|q| q.seq > self.read_hi);
        // Entries above the highest sequence heard of were read before their append arrived:
        // they were never counted on disk (and their append will be `Seen`).
        let counted = got.iter().filter(|q| q.seq <= self.seen_hi).count() as u64;
        for q in &got {
            self.took(q.body.len());
        }
        let Some(last) = got.last().map(|q| q.seq) else {
            // Nothing at or after the first sequence on disk: what was counted there is gone
            // (its subscription is being dropped). Stop reading rather than read in a loop.
            METRICS.backlog_disk_events.add(-(self.on_disk as i64));
            self.on_disk = 0;
            self.disk_from = None;
            return Loaded::default();
        };
        self.read_hi = last;
        self.seen_hi = self.seen_hi.max(last);
        let moved = counted.min(self.on_disk);
        self.on_disk -= moved;
        METRICS.backlog_disk_events.add(-(moved as i64));
        if self.seen_hi > self.read_hi {
            // More was heard of (appended during the read, or beyond this page) than read.
            self.disk_from = Some(self.read_hi + 1);
        } else {
            self.disk_from = None;
            METRICS.backlog_disk_events.add(-(self.on_disk as i64));
            self.on_disk = 0;
        }
        Loaded {
            unheard: got.len() - counted as usize,
            entries: got,
        }
    }

    /// An entry that left memory comes back (its settlement's commit failed).
    pub fn retake(&mut self, len: usize) {
        self.took(len);
    }

    /// The subscription is going away: give its window back.
    pub fn close(&mut self) {
        HELD.fetch_sub(self.held, Ordering::Relaxed);
        METRICS.backlog_memory_bytes.add(-(self.held as i64));
        METRICS.backlog_memory_events.add(-(self.events as i64));
        METRICS.backlog_disk_events.add(-(self.on_disk as i64));
        self.held = 0;
        self.events = 0;
        self.on_disk = 0;
    }
}

/// A subscription actor whose backlog a [`Pager`] windows.
pub trait Paged: Actor<Context = Context<Self>> {
    fn pager(&mut self) -> &mut Pager;
    /// The store to read pages from.
    fn store(&self) -> Arc<dyn Store>;
    /// Takes a page's entries into memory and serves what waited for them.
    fn paged(&mut self, got: Loaded, ctx: &mut Context<Self>);
}

/// Reads the next page of `act`'s backlog, off its thread, if its window has room for one; once
/// a page has come in, looks for room for the next.
pub fn page_in<A: Paged>(act: &mut A, ctx: &mut Context<A>) {
    let Some((from, page)) = act.pager().refill() else {
        return;
    };
    let (store, sub) = (act.store(), act.pager().sub);
    let read = async move {
        match tokio::task::spawn_blocking(move || store.queue_page(sub, from, page)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Io(format!("backlog read task failed: {e}"))),
        }
    };
    ctx.spawn(read.into_actor(act).map(|r, act, ctx| {
        let got = act.pager().loaded(r);
        let more = !got.entries.is_empty();
        act.paged(got, ctx);
        if more {
            page_in(act, ctx);
        }
    }));
}

#[cfg(test)]
mod tests;
