//! The queue log's index in memory: per subscription its highest sequence, settled sequences,
//! off-the-happy-path states and read points; per segment which subscriptions it holds; and
//! what can be deleted. Also its checkpoint form.
//!
//! Pure bookkeeping: never touches a file. `mod.rs` applies records to it after they are
//! durable, and only then.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;

use super::POINT_BYTES;
use super::frame::{self, Checkpoint, Pos, Record, SEG_HEADER, SegSummary, SubSnap};
use super::ranges::Ranges;
use crate::store::EntryState;

/// One subscription's part of the index.
#[derive(Debug, Clone)]
pub(super) struct SubIdx {
    pub(super) last: u64,
    pub(super) settled: Ranges,
    pub(super) states: BTreeMap<u64, EntryState>,
    pub(super) points: BTreeMap<u64, Pos>,
    /// Bytes of its events since its last point.
    pub(super) since_point: u64,
}

impl SubIdx {
    pub(super) fn new() -> SubIdx {
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
    pub(super) fn live_from(&self, from: u64) -> u64 {
        if from > self.last {
            return 0;
        }
        (self.last - from + 1) - self.settled.count_in(from, self.last)
    }
}

pub(super) struct Seg {
    pub(super) file: Arc<File>,
    /// Committed length.
    pub(super) len: u64,
    /// sub → (first, last) sequence in this segment.
    pub(super) subs: HashMap<u64, (u64, u64)>,
}

pub(super) struct Index {
    pub(super) subs: HashMap<u64, SubIdx>,
    pub(super) segs: BTreeMap<u64, Seg>,
    /// The active (last) segment.
    pub(super) active: u64,
    pub(super) generation: u64,
    /// What the last durable checkpoint covers.
    pub(super) ckpt: Pos,
    /// Segments that held an entry settled (or a subscription dropped) since they were last
    /// looked at: the only ones a settlement can have made deletable.
    pub(super) dirty: std::collections::BTreeSet<u64>,
}

impl Index {
    pub(super) fn end(&self) -> Pos {
        Pos {
            seg: self.active,
            off: self.segs.get(&self.active).map_or(SEG_HEADER, |s| s.len),
        }
    }

    /// Applies one record of the group at `at`.
    pub(super) fn apply(&mut self, r: &Record<'_>, at: Pos) {
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
    pub(super) fn deletable(&self, id: u64) -> bool {
        id < self.ckpt.seg
            && id != self.active
            && self.segs.get(&id).is_some_and(|g| {
                g.subs.iter().all(|(sub, (a, b))| {
                    self.subs.get(sub).is_none_or(|s| s.settled.covers(*a, *b))
                })
            })
    }

    /// Every segment that can be deleted now.
    pub(super) fn reclaimable(&self) -> Vec<u64> {
        self.segs
            .keys()
            .copied()
            .filter(|id| self.deletable(*id))
            .collect()
    }

    /// Whether a segment touched by settlements since the last look can be deleted now (the
    /// per-commit check: it looks at those segments only).
    pub(super) fn dirty_deletable(&mut self) -> bool {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().any(|id| self.deletable(id))
    }

    pub(super) fn forget_segment(&mut self, id: u64) {
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

    pub(super) fn checkpoint(&self) -> Checkpoint {
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
