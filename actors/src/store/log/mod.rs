//! Durable [`Store`] whose queues live in an append-only log (`store.backend = "log"`):
//! `queue/` in the data directory holds numbered segment files, and `store.redb` beside it keeps
//! everything else (resources, dead letters, meta, MQTT state) exactly as [`RedbStore`] does.
//!
//! Why: a queue append in redb rewrites B-tree pages, and settling one deletes from them again;
//! publishing at 1 KiB committed about 160k events/s sustained there while the disk takes
//! several times that with one fdatasync per write (`benches/README.md`). Here an enqueue is
//! its bytes appended once, a settlement a 17-byte record, and space comes back by deleting
//! whole segments whose every entry is settled — never by rewriting.
//!
//! Layout ([`frame`] has the bytes):
//! - Each commit appends one or more groups (CRC-checked) to the active segment and syncs it
//!   once (`fdatasync`) before it returns. A commit that also changes redb (resources, dead
//!   letters, dropped subscriptions) is flagged [`frame::REDB`] and its redb part is committed
//!   second, recording the commit's generation in redb's `meta`; at start-up a flagged group
//!   whose generation redb never recorded is an unfinished commit and is cut off. So a batch is
//!   applied whole or not at all across the two files.
//! - The index lives in memory: per subscription its highest sequence, its settled sequences as
//!   intervals ([`ranges::Ranges`]; sequences it never had count as settled), the delivery
//!   states off the happy path, and sparse read points (sequence → group position, about one
//!   per 256 KiB of its events and one per segment); per segment the first and last sequence of
//!   each subscription in it. A page read starts at the nearest point and reads groups in order.
//! - Each time the active segment passes `segment_bytes` a new one starts and the whole index is
//!   written to `queue/checkpoint` (temporary name, fsync, rename, directory fsync). Start-up
//!   reads the checkpoint and replays only what follows it, so it costs one segment's read
//!   however large the backlog (issue 20, item 5).
//! - A sealed segment is deleted once a checkpoint covers it and every subscription's entries in
//!   it are settled (or the subscription is gone): retention, time to live and acknowledgements
//!   return disk space while the server runs. A commit that settles looks only at the segments
//!   its settlements touched; a roll looks at all of them.
//! - A new segment is made under a temporary name and renamed into place once its header is
//!   synced, so an interrupted roll leaves nothing the next start must refuse.
//!
//! Recovery: in the last segment, a bad group (short, past the end, or failing its CRC, which
//! covers its length) is a commit cut short by a crash when every intact group after it belongs
//! to that same commit (a crash may write a commit's pages in any order); it is cut off with the
//! rest of its commit and kept beside the segment as `….seg.torn-OFFSET`. An unfinished
//! multi-group commit and an unfinished redb commit are cut off too — none of them was ever
//! answered. A bad group followed by a later commit is damage. Damage anywhere else, a
//! segment of the wrong format, a missing segment that still holds unsettled entries, or a
//! damaged checkpoint refuses to open with a message naming the file. A failed write or sync
//! leaves the store refusing commits until [`Store::recover`] has cut the log back to its last
//! commit.
//!
//! Must never: answer a commit before its log bytes are synced; reuse or reorder a
//! subscription's sequences (an enqueue at or below the highest the subscription had is
//! refused); delete a segment before a checkpoint covers every settlement in it.

pub mod frame;
pub mod ranges;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ntex_bytes::Bytes;

use self::frame::{Checkpoint, GROUP_HEADER, Pos, Record, SEG_HEADER, SegSummary, SubSnap};
use self::ranges::Ranges;
use super::redb::RedbStore;
use super::{EntryState, Op, Page, Queued, Store, StoreError};
use crate::metrics::STORE;

/// Default size at which a segment is sealed and the next one started.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// A commit's records are split into groups of about this many payload bytes (flagged
/// [`frame::MORE`] but the last), so a reader never holds more than one such group.
const GROUP_TARGET: usize = 4 * 1024 * 1024;
/// A subscription gets a new read point after this many bytes of its own events.
const POINT_BYTES: u64 = 256 * 1024;
/// Where redb keeps the generation of the last commit whose redb part it holds.
const LOG_GEN_KEY: &str = "log_generation";
/// Marks a `store.redb` whose queues are in `queue/`: the redb backend refuses it.
pub const QUEUES_KEY: &str = "queues";
pub const QUEUES_IN_LOG: &[u8] = b"log";

const DAMAGED_HINT: &str =
    "restore the data directory from a backup, or move it away to start with an empty store";

fn io_at(p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", p.display()))
}

fn damaged(p: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Refused(format!(
        "{} is damaged ({what}); {DAMAGED_HINT}",
        p.display()
    ))
}

fn seg_name(id: u64) -> String {
    format!("{id:016x}.seg")
}

/// One subscription's part of the index.
#[derive(Debug, Clone)]
struct SubIdx {
    last: u64,
    settled: Ranges,
    states: BTreeMap<u64, EntryState>,
    points: BTreeMap<u64, Pos>,
    /// Bytes of its events since its last point.
    since_point: u64,
}

impl SubIdx {
    fn new() -> SubIdx {
        let mut settled = Ranges::new();
        // Sequences start at 1.
        settled.insert(0, 0);
        SubIdx {
            last: 0,
            settled,
            states: BTreeMap::new(),
            points: BTreeMap::new(),
            since_point: 0,
        }
    }

    /// Live entries from `from` on.
    fn live_from(&self, from: u64) -> u64 {
        if from > self.last {
            return 0;
        }
        (self.last - from + 1) - self.settled.count_in(from, self.last)
    }
}

struct Seg {
    file: Arc<File>,
    /// Committed length.
    len: u64,
    /// sub → (first, last) sequence in this segment.
    subs: HashMap<u64, (u64, u64)>,
}

struct Index {
    subs: HashMap<u64, SubIdx>,
    segs: BTreeMap<u64, Seg>,
    /// The active (last) segment.
    active: u64,
    generation: u64,
    /// What the last durable checkpoint covers.
    ckpt: Pos,
    /// Segments that held an entry settled (or a subscription dropped) since they were last
    /// looked at: the only ones a settlement can have made deletable.
    dirty: std::collections::BTreeSet<u64>,
}

impl Index {
    fn end(&self) -> Pos {
        Pos {
            seg: self.active,
            off: self.segs.get(&self.active).map_or(SEG_HEADER, |s| s.len),
        }
    }

    /// Applies one record of the group at `at`.
    fn apply(&mut self, r: &Record<'_>, at: Pos) {
        match *r {
            Record::Enqueue { sub, seq, body, .. } => {
                let s = self.subs.entry(sub).or_insert_with(SubIdx::new);
                if seq <= s.last {
                    // Refused at commit; in a replayed log it would mean damage: keep the
                    // first copy.
                    tracing::warn!(sub, seq, "a replayed enqueue is not above its predecessor");
                    return;
                }
                s.settled.insert(s.last + 1, seq - 1);
                s.last = seq;
                let new_seg = s
                    .points
                    .last_key_value()
                    .is_none_or(|(_, p)| p.seg != at.seg);
                if (new_seg || s.since_point >= POINT_BYTES)
                    && s.points.last_key_value().is_none_or(|(_, p)| *p != at)
                {
                    s.points.insert(seq, at);
                    s.since_point = 0;
                }
                s.since_point += (body.len() + frame::ENQUEUE_OVERHEAD) as u64;
                if let Some(g) = self.segs.get_mut(&at.seg) {
                    g.subs
                        .entry(sub)
                        .and_modify(|e| e.1 = seq)
                        .or_insert((seq, seq));
                }
            }
            Record::Settle { sub, seq } => {
                if let Some(s) = self.subs.get_mut(&sub)
                    && seq <= s.last
                {
                    s.settled.insert(seq, seq);
                    s.states.remove(&seq);
                    if let Some((_, p)) = s.points.range(..=seq).next_back() {
                        self.dirty.insert(p.seg);
                    }
                }
            }
            Record::State { sub, seq, state } => {
                if let Some(s) = self.subs.get_mut(&sub)
                    && seq <= s.last
                    && !s.settled.contains(seq)
                {
                    s.states.insert(seq, state);
                }
            }
            Record::Drop { sub } => {
                self.subs.remove(&sub);
                for (id, g) in self.segs.iter_mut() {
                    if g.subs.remove(&sub).is_some() {
                        self.dirty.insert(*id);
                    }
                }
            }
        }
    }

    /// Whether segment `id` is sealed, covered by the checkpoint, and all settled.
    fn deletable(&self, id: u64) -> bool {
        id < self.ckpt.seg
            && id != self.active
            && self.segs.get(&id).is_some_and(|g| {
                g.subs.iter().all(|(sub, (a, b))| {
                    self.subs.get(sub).is_none_or(|s| s.settled.covers(*a, *b))
                })
            })
    }

    /// Every segment that can be deleted now.
    fn reclaimable(&self) -> Vec<u64> {
        self.segs
            .keys()
            .copied()
            .filter(|id| self.deletable(*id))
            .collect()
    }

    /// Whether a segment touched by settlements since the last look can be deleted now (the
    /// per-commit check: it looks at those segments only).
    fn dirty_deletable(&mut self) -> bool {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().any(|id| self.deletable(id))
    }

    fn forget_segment(&mut self, id: u64) {
        if let Some(g) = self.segs.remove(&id) {
            for (sub, (a, b)) in g.subs {
                if let Some(s) = self.subs.get_mut(&sub) {
                    let gone: Vec<u64> = s
                        .points
                        .range(a..=b)
                        .filter(|(_, p)| p.seg == id)
                        .map(|(q, _)| *q)
                        .collect();
                    for q in gone {
                        s.points.remove(&q);
                    }
                }
            }
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        // The active segment too: its summary up to `pos` is not in the log after `pos`.
        let mut segs: Vec<SegSummary> = self
            .segs
            .iter()
            .map(|(id, g)| {
                let mut subs: Vec<(u64, u64, u64)> =
                    g.subs.iter().map(|(k, (a, b))| (*k, *a, *b)).collect();
                subs.sort_unstable();
                SegSummary {
                    id: *id,
                    len: g.len,
                    subs,
                }
            })
            .collect();
        segs.sort_by_key(|s| s.id);
        let mut subs: Vec<SubSnap> = self
            .subs
            .iter()
            .map(|(k, s)| SubSnap {
                key: *k,
                last: s.last,
                settled: s.settled.intervals().collect(),
                states: s.states.iter().map(|(q, st)| (*q, *st)).collect(),
                points: s.points.iter().map(|(q, p)| (*q, *p)).collect(),
            })
            .collect();
        subs.sort_by_key(|s| s.key);
        Checkpoint {
            generation: self.generation,
            pos: self.end(),
            segs,
            subs,
        }
    }
}

/// The writer's side: the active segment's handle and the commit buffer.
struct Wr {
    file: Arc<File>,
    id: u64,
    /// Committed length of the active segment.
    len: u64,
    /// A failed write or sync may have left bytes past `len`: cut them before the next commit.
    torn: bool,
    buf: Vec<u8>,
    /// Settlements look for segments to delete no sooner than this (after a failed checkpoint).
    next_reclaim: std::time::Instant,
}

/// How long settlements wait to try again after a checkpoint could not be written.
const RECLAIM_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(5);

pub struct LogStore {
    dir: PathBuf,
    redb: RedbStore,
    segment_bytes: u64,
    idx: Mutex<Index>,
    wr: Mutex<Wr>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_at(dir, e))
}

/// Whether `op` changes the redb file (dead letters and drops change both).
fn touches_redb(op: &Op) -> bool {
    !matches!(
        op,
        Op::Enqueue { .. } | Op::Remove { .. } | Op::SetState { .. }
    )
}

/// Whether `op` appends to the log.
fn touches_log(op: &Op) -> bool {
    matches!(
        op,
        Op::Enqueue { .. }
            | Op::Remove { .. }
            | Op::SetState { .. }
            | Op::DeadLetter { .. }
            | Op::DropSubscription { .. }
    )
}

impl LogStore {
    /// Opens (or creates) the store in `data_dir`: `store.redb` and `queue/`.
    pub fn open(data_dir: &Path) -> Result<LogStore, StoreError> {
        LogStore::open_with(data_dir, SEGMENT_BYTES)
    }

    /// [`LogStore::open`] sealing segments at `segment_bytes`.
    pub fn open_with(data_dir: &Path, segment_bytes: u64) -> Result<LogStore, StoreError> {
        let redb = RedbStore::open_beside_log(&data_dir.join("store.redb"))?;
        let dir = data_dir.join("queue");
        let marked = redb.meta(QUEUES_KEY)?.is_some_and(|v| v == QUEUES_IN_LOG);
        let log_gen = redb
            .meta(LOG_GEN_KEY)?
            .and_then(|v| Some(u64::from_le_bytes(v.as_slice().try_into().ok()?)))
            .unwrap_or(0);
        let mut ids = list_segments(&dir)?;
        if marked && ids.is_empty() {
            return Err(StoreError::Refused(format!(
                "{} holds no queue segments, but {} says the queues are kept there; {DAMAGED_HINT}",
                dir.display(),
                data_dir.join("store.redb").display()
            )));
        }
        if !marked {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io_at(&dir, e))?;
            if ids.is_empty() {
                create_segment(&dir, 1)?;
                ids.push(1);
            }
        }
        let _ = std::fs::remove_file(dir.join("checkpoint.new"));
        if let Some(&top) = ids.last() {
            let _ = std::fs::remove_file(dir.join(format!("{}.new", seg_name(top + 1))));
        }
        let ckpt = match std::fs::read(dir.join("checkpoint")) {
            Ok(b) => Some(
                Checkpoint::decode(&b)
                    .ok_or_else(|| damaged(&dir.join("checkpoint"), "it does not decode"))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(&dir.join("checkpoint"), e)),
        };
        let mut idx = Index {
            subs: HashMap::new(),
            segs: BTreeMap::new(),
            active: 0,
            // A generation redb recorded is never given again, even if its log part was cut.
            generation: log_gen,
            ckpt: Pos::default(),
            dirty: Default::default(),
        };
        let mut missing = Vec::new();
        let replay_from = match &ckpt {
            Some(c) => {
                idx.generation = idx.generation.max(c.generation);
                idx.ckpt = c.pos;
                for s in &c.subs {
                    let mut settled = Ranges::new();
                    for &(a, b) in &s.settled {
                        settled.insert(a, b);
                    }
                    idx.subs.insert(
                        s.key,
                        SubIdx {
                            last: s.last,
                            settled,
                            states: s.states.iter().copied().collect(),
                            points: s.points.iter().copied().collect(),
                            since_point: POINT_BYTES,
                        },
                    );
                }
                for g in &c.segs {
                    let path = dir.join(seg_name(g.id));
                    match File::open(&path) {
                        Ok(f) => {
                            check_header(&f, &path, g.id)?;
                            let len = f.metadata().map_err(|e| io_at(&path, e))?.len();
                            if len < g.len {
                                return Err(damaged(
                                    &path,
                                    format!("{len} bytes, the checkpoint recorded {}", g.len),
                                ));
                            }
                            idx.segs.insert(
                                g.id,
                                Seg {
                                    file: Arc::new(f),
                                    len: g.len,
                                    subs: g.subs.iter().map(|&(k, a, b)| (k, (a, b))).collect(),
                                },
                            );
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            missing.push(g.clone())
                        }
                        Err(e) => return Err(io_at(&path, e)),
                    }
                }
                c.pos
            }
            None => Pos {
                seg: ids.first().copied().unwrap_or(1),
                off: SEG_HEADER,
            },
        };
        // A segment is deleted only after a checkpoint showing it settled is durable, so the
        // checkpoint alone (before replay, which may reuse a dropped subscription's key) decides.
        for g in missing {
            let gone = g
                .subs
                .iter()
                .all(|(sub, a, b)| idx.subs.get(sub).is_none_or(|s| s.settled.covers(*a, *b)));
            if !gone {
                return Err(StoreError::Refused(format!(
                    "{} is missing but holds unsettled events; {DAMAGED_HINT}",
                    dir.join(seg_name(g.id)).display()
                )));
            }
        }
        // Segments before the checkpoint it does not list were deleted as reclaimed (the
        // unlink may not have reached the disk before a crash).
        for &id in ids.iter().filter(|id| **id < replay_from.seg) {
            if !idx.segs.contains_key(&id) {
                let _ = std::fs::remove_file(dir.join(seg_name(id)));
            }
        }
        let tail: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| *id >= replay_from.seg)
            .collect();
        if tail.first() != Some(&replay_from.seg) {
            return Err(StoreError::Refused(format!(
                "{} is missing: the checkpoint continues there; {DAMAGED_HINT}",
                dir.join(seg_name(replay_from.seg)).display()
            )));
        }
        let mut active_len = SEG_HEADER;
        for (i, &id) in tail.iter().enumerate() {
            let last = i + 1 == tail.len();
            if i > 0 && tail[i - 1] + 1 != id {
                return Err(StoreError::Refused(format!(
                    "{} is missing between {} and {}; {DAMAGED_HINT}",
                    dir.join(seg_name(tail[i - 1] + 1)).display(),
                    seg_name(tail[i - 1]),
                    seg_name(id)
                )));
            }
            let from = if i == 0 { replay_from.off } else { SEG_HEADER };
            let len = replay(&dir, id, from, last, log_gen, &mut idx)?;
            if last {
                active_len = len;
            }
        }
        let active = *tail.last().expect("tail holds replay_from.seg");
        idx.active = active;
        let path = dir.join(seg_name(active));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_at(&path, e))?;
        let file = Arc::new(file);
        if let Some(g) = idx.segs.get_mut(&active) {
            g.file = file.clone();
        }
        let store = LogStore {
            dir,
            redb,
            segment_bytes: segment_bytes.max(SEG_HEADER + 1),
            idx: Mutex::new(idx),
            wr: Mutex::new(Wr {
                file,
                id: active,
                len: active_len,
                torn: false,
                buf: Vec::new(),
                next_reclaim: std::time::Instant::now(),
            }),
        };
        if !marked {
            sync_dir(&store.dir)?;
            store.redb.commit(&[Op::PutMeta {
                key: QUEUES_KEY.into(),
                value: QUEUES_IN_LOG.to_vec(),
            }])?;
        }
        store.migrate_from_redb()?;
        store.publish_metrics();
        Ok(store)
    }

    /// Moves queue entries an earlier `store.backend = "redb"` left in `store.redb` into the log,
    /// a page at a time: each page is committed to the log, then removed from redb. A crash in
    /// between leaves entries in both; the next open skips those the log already holds.
    fn migrate_from_redb(&self) -> Result<(), StoreError> {
        const PAGE: Page = Page {
            entries: 16_384,
            bytes: 16 << 20,
        };
        let mut moved = 0u64;
        for sub in self.redb.subscription_keys()? {
            loop {
                let page = self.redb.queue_page(sub, 0, PAGE)?;
                if page.is_empty() {
                    break;
                }
                let held = self.queue_last(sub)?;
                let mut ops = Vec::with_capacity(page.len() * 2);
                for q in page.iter().filter(|q| q.seq > held) {
                    ops.push(Op::Enqueue {
                        sub,
                        seq: q.seq,
                        publish_ms: q.publish_ms,
                        body: q.body.clone(),
                    });
                    if q.state != EntryState::default() {
                        ops.push(Op::SetState {
                            sub,
                            seq: q.seq,
                            state: q.state,
                        });
                    }
                }
                moved += ops.len() as u64;
                self.commit(&ops)?;
                let removes: Vec<Op> = page
                    .iter()
                    .map(|q| Op::Remove { sub, seq: q.seq })
                    .collect();
                self.redb.commit(&removes)?;
            }
        }
        if moved > 0 {
            tracing::info!(
                moved,
                "queued events moved from store.redb into the queue log"
            );
        }
        Ok(())
    }

    fn publish_metrics(&self) {
        let idx = lock(&self.idx);
        let bytes: u64 = idx.segs.values().map(|g| g.len).sum();
        STORE.log_segments.set(idx.segs.len() as i64);
        STORE.log_bytes.set(bytes.min(i64::MAX as u64) as i64);
    }

    /// Starts segment `w.id + 1` and makes it the active one.
    fn roll(&self, w: &mut Wr) -> Result<(), StoreError> {
        let id = w.id + 1;
        let file = Arc::new(create_segment(&self.dir, id)?);
        let mut idx = lock(&self.idx);
        idx.segs.insert(
            id,
            Seg {
                file: file.clone(),
                len: SEG_HEADER,
                subs: HashMap::new(),
            },
        );
        idx.active = id;
        w.file = file;
        w.id = id;
        w.len = SEG_HEADER;
        Ok(())
    }

    /// Writes the index as a checkpoint, then deletes the segments it lets go. Answers whether
    /// the checkpoint was written.
    fn checkpoint_and_reclaim(&self) -> bool {
        let c = lock(&self.idx).checkpoint();
        if let Err(e) = self.write_checkpoint(&c) {
            tracing::warn!(error = %e, "the queue log's checkpoint was not written; start-up will replay more");
            return false;
        }
        let gone = {
            let mut idx = lock(&self.idx);
            idx.ckpt = c.pos;
            let gone = idx.reclaimable();
            for id in &gone {
                idx.forget_segment(*id);
            }
            gone
        };
        for id in gone {
            let p = self.dir.join(seg_name(id));
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(error = %e, path = %p.display(), "a reclaimed segment was not deleted");
            } else {
                STORE.log_segments_reclaimed.inc();
            }
        }
        self.publish_metrics();
        true
    }

    fn write_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.dir.join("checkpoint.new");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_at(&tmp, e))?;
        f.write_all(&c.encode())
            .and_then(|_| f.sync_data())
            .map_err(|e| io_at(&tmp, e))?;
        std::fs::rename(&tmp, self.dir.join("checkpoint")).map_err(|e| io_at(&tmp, e))?;
        sync_dir(&self.dir)
    }

    /// Cuts the active segment back to its last commit after a failed write.
    fn cut_torn(&self, w: &mut Wr) -> Result<(), StoreError> {
        if !w.torn {
            return Ok(());
        }
        let path = self.dir.join(seg_name(w.id));
        w.file
            .set_len(w.len)
            .and_then(|_| w.file.sync_data())
            .map_err(|e| io_at(&path, e))?;
        w.torn = false;
        Ok(())
    }

    /// Frames the log part of `ops` into `w.buf` as groups; `Err` if an enqueue does not
    /// ascend.
    fn frame(&self, w: &mut Wr, ops: &[Op], flags: u32, generation: u64) -> Result<(), StoreError> {
        let mut lasts: HashMap<u64, u64> = HashMap::new();
        {
            let idx = lock(&self.idx);
            for op in ops {
                match op {
                    Op::Enqueue { sub, seq, body, .. } => {
                        if body.len() > super::redb::MAX_VALUE {
                            return Err(StoreError::Refused(format!(
                                "an event of {} bytes is larger than the store takes ({} bytes)",
                                body.len(),
                                super::redb::MAX_VALUE
                            )));
                        }
                        let last = lasts
                            .entry(*sub)
                            .or_insert_with(|| idx.subs.get(sub).map_or(0, |s| s.last));
                        if *seq <= *last {
                            return Err(StoreError::Refused(format!(
                                "subscription {sub}: sequence {seq} is not above {last}, the highest it had"
                            )));
                        }
                        *last = *seq;
                    }
                    // A drop forgets the subscription: it may start again from any sequence.
                    Op::DropSubscription { sub } => {
                        lasts.insert(*sub, 0);
                    }
                    _ => {}
                }
            }
        }
        let buf = &mut w.buf;
        buf.clear();
        let mut at = frame::open_group(buf);
        for op in ops {
            let r = match op {
                Op::Enqueue {
                    sub,
                    seq,
                    publish_ms,
                    body,
                } => Record::Enqueue {
                    sub: *sub,
                    seq: *seq,
                    publish_ms: *publish_ms,
                    body,
                },
                Op::Remove { sub, seq } | Op::DeadLetter { sub, seq, .. } => Record::Settle {
                    sub: *sub,
                    seq: *seq,
                },
                Op::SetState { sub, seq, state } => Record::State {
                    sub: *sub,
                    seq: *seq,
                    state: *state,
                },
                Op::DropSubscription { sub } => Record::Drop { sub: *sub },
                _ => continue,
            };
            if buf.len() - at - GROUP_HEADER >= GROUP_TARGET {
                frame::seal_group(buf, at, flags | frame::MORE, generation);
                at = frame::open_group(buf);
            }
            frame::put_record(buf, &r);
        }
        frame::seal_group(buf, at, flags, generation);
        Ok(())
    }
}

/// Segment ids in `dir`, ascending (none if `dir` does not exist).
fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(dir, e)),
    };
    let mut ids = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_at(dir, e))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(hex) = name.strip_suffix(".seg")
            && hex.len() == 16
            && let Ok(id) = u64::from_str_radix(hex, 16)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Makes segment `id`: its header is written and synced under a temporary name
/// (`….seg.new`, which start-up removes), then renamed into place, so a failed or interrupted
/// roll never leaves a segment without its header. One left in place with nothing after its
/// header (the directory sync failed after the rename) is taken as it is.
fn create_segment(dir: &Path, id: u64) -> Result<File, StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(seg_name(id));
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        && f.metadata().is_ok_and(|m| m.len() == SEG_HEADER)
        && check_header(&f, &path, id).is_ok()
    {
        sync_dir(dir)?;
        return Ok(f);
    }
    let tmp = dir.join(format!("{}.new", seg_name(id)));
    let _ = std::fs::remove_file(&tmp);
    let made = (|| {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&frame::segment_header(id))?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)?;
        Ok(f)
    })();
    match made {
        Ok(f) => {
            sync_dir(dir)?;
            Ok(f)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io_at(&path, e))
        }
    }
}

/// Reads segment `id` from `from` into the index; answers its valid length. In the `last`
/// segment a torn or unfinished tail is cut off; anywhere else damage refuses.
fn replay(
    dir: &Path,
    id: u64,
    from: u64,
    last: bool,
    log_gen: u64,
    idx: &mut Index,
) -> Result<u64, StoreError> {
    let path = dir.join(seg_name(id));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(last)
        .open(&path)
        .map_err(|e| io_at(&path, e))?;
    let size = file.metadata().map_err(|e| io_at(&path, e))?.len();
    check_header(&file, &path, id)?;
    if from > size {
        return Err(damaged(
            &path,
            format!("{size} bytes, the checkpoint continues at byte {from}"),
        ));
    }
    let file = Arc::new(file);
    idx.segs.entry(id).or_insert_with(|| Seg {
        file: file.clone(),
        len: from,
        subs: HashMap::new(),
    });
    let mut off = from;
    // The groups of a commit not finished yet: (position, payload).
    let mut chain: Vec<(Pos, Vec<u8>)> = Vec::new();
    // Why the tail from the end of the last whole commit is cut off, if it is.
    let mut cut: Option<String> = None;
    // The generation of the commit `chain` belongs to.
    let mut chain_gen = None;
    while off < size {
        let mut h = [0u8; GROUP_HEADER];
        if off + GROUP_HEADER as u64 > size {
            if !last {
                return Err(damaged(
                    &path,
                    format!("a group header cut short at byte {off}"),
                ));
            }
            cut = Some("a group header cut short".into());
            break;
        }
        file.read_exact_at(&mut h, off)
            .map_err(|e| io_at(&path, e))?;
        let g = frame::parse_group_header(&h);
        let end = off + GROUP_HEADER as u64 + g.map_or(0, |g| g.len as u64);
        let mut payload = Vec::new();
        let intact = match g {
            Some(g) if end <= size => {
                payload.resize(g.len as usize, 0);
                file.read_exact_at(&mut payload, off + GROUP_HEADER as u64)
                    .map_err(|e| io_at(&path, e))?;
                frame::group_intact(&h, &payload)
            }
            _ => false,
        };
        if !intact {
            // Torn only in the last segment, and only if every intact group after the bad one
            // belongs to the one commit that was being written (a crash may write its pages in
            // any order): a later commit means this one was synced and answered, so it is
            // damage, never cut.
            let after = if last {
                intact_after(&file, off + 1, size).map_err(|e| io_at(&path, e))?
            } else {
                Vec::new()
            };
            // Its commit's generation: from the chain it continues, else its own header if the
            // magic survived, else the first intact group after it.
            let unfinished = chain_gen
                .or(g.map(|g| g.generation))
                .or(after.first().copied());
            let torn = last
                && after.iter().all(|g| Some(*g) == unfinished)
                && unfinished.is_none_or(|g| g > idx.generation);
            if !torn {
                return Err(damaged(&path, format!("a bad group at byte {off}")));
            }
            cut = Some(format!("a group cut short at byte {off}"));
            break;
        }
        let g = g.expect("intact groups parse");
        chain_gen = Some(g.generation);
        if g.flags & frame::REDB != 0 && g.generation > log_gen {
            if !last {
                return Err(damaged(
                    &path,
                    format!("an unfinished commit at byte {off} before the last segment"),
                ));
            }
            cut = Some("a commit whose redb part never committed".into());
            break;
        }
        chain.push((Pos { seg: id, off }, payload));
        off = end;
        if g.flags & frame::MORE == 0 {
            for (at, p) in chain.drain(..) {
                for r in frame::records(&p) {
                    let r = r.map_err(|_| {
                        damaged(
                            &path,
                            format!("a bad record in the group at byte {}", at.off),
                        )
                    })?;
                    idx.apply(&r, at);
                }
            }
            idx.generation = idx.generation.max(g.generation);
            chain_gen = None;
            if let Some(s) = idx.segs.get_mut(&id) {
                s.len = off;
            }
        }
    }
    if cut.is_none() && !chain.is_empty() {
        if !last {
            return Err(damaged(&path, "it ends inside a commit"));
        }
        cut = Some("a commit cut short".into());
    }
    let at = idx.segs.get(&id).map_or(from, |s| s.len);
    if let Some(why) = cut {
        // Kept beside the segment (unless it is all zeros), in case an operator wants to see
        // what was cut.
        let mut tail = vec![0u8; (size - at) as usize];
        file.read_exact_at(&mut tail, at)
            .map_err(|e| io_at(&path, e))?;
        let kept = if tail.iter().any(|b| *b != 0) {
            let p = dir.join(format!("{}.torn-{at}", seg_name(id)));
            match std::fs::write(&p, &tail) {
                Ok(()) => p.display().to_string(),
                Err(e) => format!("not kept: {e}"),
            }
        } else {
            "zeros, not kept".into()
        };
        tracing::warn!(
            path = %path.display(),
            dropped = size - at,
            kept,
            "cutting off the queue log's unfinished tail ({why}); it was never acknowledged"
        );
        file.set_len(at)
            .and_then(|_| file.sync_data())
            .map_err(|e| io_at(&path, e))?;
    }
    Ok(at)
}

/// Refuses `file` unless it starts with the header of segment `id`.
fn check_header(file: &File, path: &Path, id: u64) -> Result<(), StoreError> {
    let mut head = [0u8; SEG_HEADER as usize];
    if file.read_exact_at(&mut head, 0).is_err() {
        return Err(damaged(path, "shorter than a segment header"));
    }
    match frame::parse_segment_header(&head) {
        Some(h) if h == id => Ok(()),
        Some(h) => Err(damaged(path, format!("its header names segment {h}"))),
        None => Err(StoreError::Refused(format!(
            "{} is not an evgrid queue segment (format {:?} expected); {DAMAGED_HINT}",
            path.display(),
            String::from_utf8_lossy(&frame::SEG_MAGIC[..12])
        ))),
    }
}

/// The generations of the intact groups of `file` that start at or after `from`, in order:
/// found by their magic and proven by their CRC (start-up only: reads the rest of the file).
fn intact_after(file: &File, from: u64, size: u64) -> std::io::Result<Vec<u64>> {
    let mut rest = vec![0u8; size.saturating_sub(from) as usize];
    file.read_exact_at(&mut rest, from)?;
    let magic = frame::GROUP_MAGIC.to_le_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i + GROUP_HEADER <= rest.len() {
        if rest[i..i + 4] != magic {
            i += 1;
            continue;
        }
        let h: &[u8; GROUP_HEADER] = rest[i..i + GROUP_HEADER].try_into().unwrap();
        let g = frame::parse_group_header(h).expect("the magic was checked");
        let end = i + GROUP_HEADER + g.len as usize;
        if end <= rest.len() && frame::group_intact(h, &rest[i + GROUP_HEADER..end]) {
            found.push(g.generation);
            i = end;
        } else {
            i += 1;
        }
    }
    Ok(found)
}

impl Store for LogStore {
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let logged = ops.iter().any(touches_log);
        let redb = ops.iter().any(touches_redb);
        if !logged {
            return self.redb.commit(ops);
        }
        let mut w = lock(&self.wr);
        self.cut_torn(&mut w)?;
        let generation = {
            // Taken whether the commit succeeds or not: a failed commit's redb part may still
            // have recorded it, so it is never given twice.
            let mut idx = lock(&self.idx);
            idx.generation += 1;
            idx.generation
        };
        let flags = if redb { frame::REDB } else { 0 };
        let w = &mut *w;
        self.frame(w, ops, flags, generation)?;
        let rolled = w.len >= self.segment_bytes;
        if rolled {
            self.roll(w)?;
        }
        let id = w.id;
        let path = || self.dir.join(seg_name(id));
        let wrote = w
            .file
            .write_all_at(&w.buf, w.len)
            .and_then(|_| w.file.sync_data());
        if let Err(e) = wrote {
            w.torn = true;
            let _ = self.cut_torn(w);
            return Err(io_at(&path(), e));
        }
        if redb {
            let mut rops: Vec<Op> = ops.iter().filter(|o| touches_redb(o)).cloned().collect();
            rops.push(Op::PutMeta {
                key: LOG_GEN_KEY.into(),
                value: generation.to_le_bytes().to_vec(),
            });
            if let Err(e) = self.redb.commit(&rops) {
                w.torn = true;
                if let Err(cut) = self.cut_torn(w) {
                    tracing::error!(error = %cut, "the queue log could not be cut back after a failed redb commit");
                }
                return Err(e);
            }
        }
        {
            let mut idx = lock(&self.idx);
            let mut off = 0usize;
            while off < w.buf.len() {
                let h: &[u8; GROUP_HEADER] = w.buf[off..off + GROUP_HEADER].try_into().unwrap();
                let len = frame::parse_group_header(h).map_or(0, |g| g.len as usize);
                let at = Pos {
                    seg: w.id,
                    off: w.len + off as u64,
                };
                let payload = &w.buf[off + GROUP_HEADER..off + GROUP_HEADER + len];
                for r in frame::records(payload).flatten() {
                    idx.apply(&r, at);
                }
                off += GROUP_HEADER + len;
            }
            w.len += w.buf.len() as u64;
            let active = w.id;
            if let Some(g) = idx.segs.get_mut(&active) {
                g.len = w.len;
            }
        }
        STORE.log_appended_bytes.add(w.buf.len() as u64);
        if w.buf.capacity() > 4 * GROUP_TARGET {
            w.buf = Vec::new();
        }
        let now = std::time::Instant::now();
        let settles = || {
            ops.iter().any(|o| {
                matches!(
                    o,
                    Op::Remove { .. } | Op::DeadLetter { .. } | Op::DropSubscription { .. }
                )
            })
        };
        let due =
            rolled || (now >= w.next_reclaim && settles() && lock(&self.idx).dirty_deletable());
        if due && !self.checkpoint_and_reclaim() {
            w.next_reclaim = now + RECLAIM_AFTER_FAILURE;
        }
        Ok(())
    }

    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.redb.resources()
    }

    fn queue_page(&self, sub: u64, from: u64, page: Page) -> Result<Vec<Queued>, StoreError> {
        if page.entries == 0 {
            return Ok(Vec::new());
        }
        let (start, from, last, settled, states, files) = {
            let idx = lock(&self.idx);
            let Some(s) = idx.subs.get(&sub) else {
                return Ok(Vec::new());
            };
            let Some(from) = s.settled.next_absent(from) else {
                return Ok(Vec::new());
            };
            if from > s.last {
                return Ok(Vec::new());
            }
            let start = s
                .points
                .range(..=from)
                .next_back()
                .or_else(|| s.points.first_key_value())
                .map(|(_, p)| *p);
            let Some(start) = start else {
                return Ok(Vec::new());
            };
            // Only segments that hold some of its entries (their summaries say which).
            let files: Vec<(u64, Arc<File>, u64)> = idx
                .segs
                .range(start.seg..)
                .filter(|(_, g)| g.subs.contains_key(&sub))
                .map(|(id, g)| (*id, g.file.clone(), g.len))
                .collect();
            let states: BTreeMap<u64, EntryState> =
                s.states.range(from..).map(|(q, st)| (*q, *st)).collect();
            (start, from, s.last, s.settled.from(from), states, files)
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut payload = Vec::new();
        for (id, file, len) in files {
            let path = || self.dir.join(seg_name(id));
            let mut off = if id == start.seg {
                start.off
            } else {
                SEG_HEADER
            };
            while off < len {
                let mut h = [0u8; GROUP_HEADER];
                file.read_exact_at(&mut h, off)
                    .map_err(|e| io_at(&path(), e))?;
                let g = frame::parse_group_header(&h)
                    .ok_or_else(|| damaged(&path(), format!("no group at byte {off}")))?;
                payload.resize(g.len as usize, 0);
                file.read_exact_at(&mut payload, off + GROUP_HEADER as u64)
                    .map_err(|e| io_at(&path(), e))?;
                if !frame::group_intact(&h, &payload) {
                    return Err(damaged(&path(), format!("a bad group at byte {off}")));
                }
                for r in frame::records(&payload) {
                    let r =
                        r.map_err(|_| damaged(&path(), format!("a bad record at byte {off}")))?;
                    let Record::Enqueue {
                        sub: s,
                        seq,
                        publish_ms,
                        body,
                    } = r
                    else {
                        continue;
                    };
                    // Above `last`: an earlier subscription of the same key, dropped in this group.
                    if s != sub || seq < from || seq > last {
                        continue;
                    }
                    if settled.contains(seq) {
                        if seq == last {
                            return Ok(out);
                        }
                        continue;
                    }
                    out.push(Queued {
                        seq,
                        publish_ms,
                        body: Bytes::copy_from_slice(body),
                        state: states.get(&seq).copied().unwrap_or_default(),
                    });
                    bytes += body.len();
                    if out.len() >= page.entries || bytes >= page.bytes || seq == last {
                        return Ok(out);
                    }
                }
                off += GROUP_HEADER as u64 + g.len as u64;
            }
        }
        Ok(out)
    }

    fn queue_extent(&self, sub: u64, from: u64) -> Result<(u64, u64), StoreError> {
        let idx = lock(&self.idx);
        Ok(idx
            .subs
            .get(&sub)
            .map_or((0, 0), |s| (s.live_from(from), s.last)))
    }

    /// The highest sequence `sub` ever had, settled or not: the log never lets a sequence be
    /// used twice, so callers must continue above it.
    fn queue_last(&self, sub: u64) -> Result<u64, StoreError> {
        Ok(lock(&self.idx).subs.get(&sub).map_or(0, |s| s.last))
    }

    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError> {
        let mut keys: Vec<u64> = lock(&self.idx)
            .subs
            .iter()
            .filter(|(_, s)| s.live_from(0) > 0)
            .map(|(k, _)| *k)
            .collect();
        keys.extend(self.redb.subscription_keys()?);
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn dead_letters(
        &self,
        sub: u64,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.redb.dead_letters(sub, after, limit)
    }

    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError> {
        self.redb.last_dead_letter(sub)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.redb.meta(key)
    }

    fn mqtt_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.redb.mqtt_entries(prefix)
    }

    fn recover(&self) -> Result<(), StoreError> {
        {
            let mut w = lock(&self.wr);
            self.cut_torn(&mut w)?;
            // Prove the log takes writes again: a largest publish must fit.
            let probe = vec![0u8; 1 << 20];
            let path = self.dir.join(seg_name(w.id));
            let res = w
                .file
                .write_all_at(&probe, w.len)
                .and_then(|_| w.file.sync_data());
            w.torn = true;
            res.map_err(|e| io_at(&path, e))?;
            self.cut_torn(&mut w)?;
        }
        self.redb.recover()
    }

    fn free_bytes(&self) -> Option<u64> {
        self.redb.free_bytes()
    }
}

impl Drop for LogStore {
    /// A checkpoint at a clean close makes the next start replay nothing.
    fn drop(&mut self) {
        let w = lock(&self.wr);
        if w.torn {
            return;
        }
        drop(w);
        let c = lock(&self.idx).checkpoint();
        if let Err(e) = self.write_checkpoint(&c) {
            tracing::warn!(error = %e, "the queue log's closing checkpoint was not written");
        }
    }
}
