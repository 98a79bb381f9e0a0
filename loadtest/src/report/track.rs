//! Loss / duplicate / reorder accounting.
//!
//! * **unique**: distinct (publisher, sequence) pairs a subscriber received;
//!   for a shared-subscription group the set is kept for the whole group, so a
//!   message delivered to two members counts once (and once as duplicate).
//! * **duplicated**: receptions of a (publisher, sequence) already seen by the
//!   same subscriber (or group).
//! * **reordered**: per subscriber and publisher, receptions of a new sequence
//!   number lower than the highest one already seen from that publisher.
//! * **lost** = expected − unique, computed by the caller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Sequences older than this many behind the lowest missing one are given up
/// on (4 Mi sequences, at most 512 KiB per publisher and subscriber).
const MAX_WORDS: usize = 1 << 16;
/// Publisher ids above this are treated as foreign (not ours).
pub const MAX_PUBLISHERS: u32 = 4_000_000;

/// A set of sequence numbers kept as a sliding bitmap: words that are
/// completely received are dropped from the front, so a healthy in-order
/// stream needs a few bytes however long it runs.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    base: u64,
    words: VecDeque<u64>,
    unique: u64,
    min_seen: Option<u64>,
    max_seen: u64,
}

impl SeqSet {
    /// Inserts `seq`; returns true when it was not seen before.
    pub fn insert(&mut self, seq: u64) -> bool {
        self.min_seen = Some(self.min_seen.map_or(seq, |m| m.min(seq)));
        self.max_seen = self.max_seen.max(seq);
        if seq < self.base {
            return false;
        }
        let idx = ((seq - self.base) / 64) as usize;
        if idx >= self.words.len() {
            if idx - self.words.len() > MAX_WORDS {
                // a jump far ahead: restart the window there
                self.words.clear();
                self.base = seq & !63;
                return self.insert(seq);
            }
            self.words.resize(idx + 1, 0);
            while self.words.len() > MAX_WORDS {
                self.words.pop_front();
                self.base += 64;
            }
        }
        let idx = ((seq - self.base) / 64) as usize;
        let bit = 1u64 << ((seq - self.base) % 64);
        let w = &mut self.words[idx];
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.unique += 1;
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base += 64;
        }
        true
    }

    #[cfg(test)]
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Number of sequence numbers from 0 to the highest seen (0 when nothing was seen): what a
    /// publisher numbering from 0 sent, as far as the receiver can tell.
    pub fn upto(&self) -> u64 {
        if self.min_seen.is_some() {
            self.max_seen + 1
        } else {
            0
        }
    }

    /// Number of sequence numbers between the lowest and highest seen,
    /// inclusive (0 when nothing was seen).
    pub fn span(&self) -> u64 {
        match self.min_seen {
            Some(m) => self.max_seen - m + 1,
            None => 0,
        }
    }
}

/// Dedup state of one subscriber or one shared-subscription group.
#[derive(Debug, Default)]
pub struct Dedup {
    pubs: Vec<SeqSet>,
    pub unique: u64,
    pub duplicated: u64,
}

impl Dedup {
    /// Records one reception; returns true if it is new.
    pub fn record(&mut self, publisher: u32, seq: u64) -> bool {
        let i = publisher as usize;
        if i >= self.pubs.len() {
            self.pubs.resize_with(i + 1, SeqSet::default);
        }
        if self.pubs[i].insert(seq) {
            self.unique += 1;
            true
        } else {
            self.duplicated += 1;
            false
        }
    }

    /// Sum over publishers of the sequence span seen (used as the expected
    /// count when the generator did not publish itself).
    pub fn span_total(&self) -> u64 {
        self.pubs.iter().map(SeqSet::span).sum()
    }

    /// Sum over publishers of the sequence numbers from 0 to the highest seen (the expected
    /// count when every publisher numbers from 0, as http-publish does; a lost tail is not
    /// visible).
    pub fn upto_total(&self) -> u64 {
        self.pubs.iter().map(SeqSet::upto).sum()
    }
}

/// Where a subscriber keeps its dedup state.
#[derive(Debug, Clone)]
pub enum DedupRef {
    Own(Arc<Mutex<Dedup>>),
    Group(String, Arc<Mutex<Dedup>>),
}

impl DedupRef {
    pub fn inner(&self) -> &Arc<Mutex<Dedup>> {
        match self {
            DedupRef::Own(d) | DedupRef::Group(_, d) => d,
        }
    }
}

/// Per-subscriber tracking.
#[derive(Debug)]
pub struct SubTracker {
    /// highest sequence + 1 seen per publisher (0 = none yet)
    order: Vec<u64>,
    pub received: u64,
    pub reordered: u64,
    pub dedup: DedupRef,
    batch: Vec<(u32, u64)>,
}

impl SubTracker {
    pub fn new(dedup: DedupRef) -> Self {
        SubTracker {
            order: Vec::new(),
            received: 0,
            reordered: 0,
            dedup,
            batch: Vec::with_capacity(1024),
        }
    }

    /// Records a reception in the order check and queues it for dedup.
    pub fn push(&mut self, publisher: u32, seq: u64) {
        let i = publisher as usize;
        if i >= self.order.len() {
            self.order.resize(i + 1, 0);
        }
        let next = &mut self.order[i];
        if seq + 1 > *next {
            *next = seq + 1;
        } else if seq + 1 < *next {
            // lower than the highest seen; a duplicate of the highest itself
            // (seq + 1 == next) is not a regression
            self.reordered += 1;
        }
        self.received += 1;
        self.batch.push((publisher, seq));
    }

    /// Applies queued receptions to the dedup set (one lock per batch).
    /// Returns how many of them were duplicates.
    pub fn flush(&mut self) -> u64 {
        if self.batch.is_empty() {
            return 0;
        }
        let mut dups = 0;
        let mut d = match self.dedup.inner().lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for &(p, s) in &self.batch {
            if !d.record(p, s) {
                dups += 1;
            }
        }
        drop(d);
        self.batch.clear();
        dups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> DedupRef {
        DedupRef::Own(Arc::new(Mutex::new(Dedup::default())))
    }

    #[test]
    fn seqset_in_order_stays_small() {
        let mut s = SeqSet::default();
        for i in 0..100_000 {
            assert!(s.insert(i));
        }
        assert_eq!(s.unique(), 100_000);
        assert!(s.words.len() <= 1);
        assert!(!s.insert(5));
        assert!(!s.insert(99_999));
        assert_eq!(s.span(), 100_000);
    }

    #[test]
    fn seqset_gaps_and_late_arrivals() {
        let mut s = SeqSet::default();
        for i in (0..1000).filter(|i| i % 10 != 3) {
            s.insert(i);
        }
        assert_eq!(s.unique(), 900);
        // late arrivals fill the gaps
        for i in (0..1000).filter(|i| i % 10 == 3) {
            assert!(s.insert(i));
        }
        assert_eq!(s.unique(), 1000);
        assert!(s.words.len() <= 1);
        // far jump restarts the window without huge allocation
        assert!(s.insert(1 << 40));
        assert!(s.words.len() <= 2);
        assert_eq!(s.unique(), 1001);
    }

    #[test]
    fn tracker_counts_dups_and_reorders() {
        let mut t = SubTracker::new(own());
        for (p, s) in [
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 2),
            (0, 1),
            (1, 5),
            (1, 3),
            (1, 4),
            (0, 3),
        ] {
            t.push(p, s);
        }
        let dups = t.flush();
        assert_eq!(dups, 2);
        assert_eq!(t.received, 9);
        // (0,1) after 2 and (1,3),(1,4) after 5 are regressions; (0,2) again is not
        assert_eq!(t.reordered, 3);
        let d = t.dedup.inner().lock().unwrap();
        assert_eq!(d.unique, 7);
        assert_eq!(d.duplicated, 2);
        assert_eq!(d.span_total(), 4 + 3);
        assert_eq!(d.upto_total(), 4 + 6);
    }

    #[test]
    fn shared_group_dedups_across_members() {
        let g = Arc::new(Mutex::new(Dedup::default()));
        let mut a = SubTracker::new(DedupRef::Group("g".into(), g.clone()));
        let mut b = SubTracker::new(DedupRef::Group("g".into(), g.clone()));
        for s in 0..10 {
            if s % 2 == 0 {
                a.push(0, s)
            } else {
                b.push(0, s)
            }
        }
        b.push(0, 4); // delivered to both members
        a.flush();
        b.flush();
        let d = g.lock().unwrap();
        assert_eq!(d.unique, 10);
        assert_eq!(d.duplicated, 1);
        assert_eq!(a.reordered + b.reordered, 1);
    }
}
