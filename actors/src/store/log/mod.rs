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
mod index;
pub mod ranges;
mod segments;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ntex_bytes::Bytes;

use self::frame::{Checkpoint, GROUP_HEADER, Pos, Record, SEG_HEADER};
use self::index::{Index, Seg, SubIdx};
use self::ranges::Ranges;
use self::segments::{check_header, create_segment, list_segments, replay};
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
