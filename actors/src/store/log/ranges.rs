//! A set of `u64`s kept as disjoint, non-adjacent inclusive intervals: the settled sequences of
//! one subscription. Acknowledging in order keeps it at one interval however many events went
//! through, and sequences a subscription never had (taken by its topic's other subscriptions,
//! or by a commit that failed) join it as they are skipped, so the intervals merge again.
//!
//! Pure: never touches a file, a clock or an actor.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// start → end (inclusive); no two intervals overlap or touch.
    iv: BTreeMap<u64, u64>,
}

impl Ranges {
    pub fn new() -> Ranges {
        Ranges::default()
    }

    /// The intervals, by start.
    pub fn intervals(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.iv.iter().map(|(a, b)| (*a, *b))
    }

    pub fn len(&self) -> usize {
        self.iv.len()
    }

    pub fn is_empty(&self) -> bool {
        self.iv.is_empty()
    }

    /// The interval holding `x`, if any.
    fn holding(&self, x: u64) -> Option<(u64, u64)> {
        let (a, b) = self.iv.range(..=x).next_back()?;
        (*b >= x).then_some((*a, *b))
    }

    pub fn contains(&self, x: u64) -> bool {
        self.holding(x).is_some()
    }

    /// Whether every value of `a..=b` is in the set.
    pub fn covers(&self, a: u64, b: u64) -> bool {
        a > b || self.holding(a).is_some_and(|(_, e)| e >= b)
    }

    /// The least value ≥ `x` not in the set (`None` only if the set holds `x..=u64::MAX`).
    pub fn next_absent(&self, x: u64) -> Option<u64> {
        match self.holding(x) {
            None => Some(x),
            Some((_, e)) => e.checked_add(1),
        }
    }

    /// Adds `a..=b` (nothing if `a > b`).
    pub fn insert(&mut self, a: u64, b: u64) {
        if a > b {
            return;
        }
        let (mut start, mut end) = (a, b);
        // An interval that starts at or before `a` and reaches `a - 1` or beyond merges.
        if let Some((&s, &e)) = self.iv.range(..=a).next_back()
            && e.saturating_add(1) >= a
        {
            start = s;
            end = end.max(e);
        }
        // Every interval starting within `start..=end + 1` merges.
        let reach = end.saturating_add(1);
        let merged: Vec<(u64, u64)> = self
            .iv
            .range(start..=reach)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in merged {
            self.iv.remove(&s);
            end = end.max(e);
        }
        self.iv.insert(start, end);
    }

    /// How many values of `a..=b` are in the set.
    pub fn count_in(&self, a: u64, b: u64) -> u64 {
        if a > b {
            return 0;
        }
        let mut n = 0;
        let first = self
            .iv
            .range(..=a)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(a);
        for (&s, &e) in self.iv.range(first..=b) {
            let (lo, hi) = (s.max(a), e.min(b));
            if lo <= hi {
                n += hi - lo + 1;
            }
        }
        n
    }

    /// The intervals that reach `x` or beyond, clipped to start at `x` (what a reader from `x`
    /// needs).
    pub fn from(&self, x: u64) -> Ranges {
        let mut out = Ranges::new();
        let first = self
            .iv
            .range(..=x)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(x);
        for (&s, &e) in self.iv.range(first..) {
            if e >= x {
                out.iv.insert(s.max(x), e);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(r: &Ranges) -> Vec<(u64, u64)> {
        r.intervals().collect()
    }

    #[test]
    fn points_merge_into_intervals_in_any_order() {
        let mut r = Ranges::new();
        for x in [5, 3, 4, 9, 1, 2, 7] {
            r.insert(x, x);
        }
        assert_eq!(of(&r), vec![(1, 5), (7, 7), (9, 9)]);
        r.insert(8, 8);
        assert_eq!(of(&r), vec![(1, 5), (7, 9)]);
        r.insert(6, 6);
        assert_eq!(of(&r), vec![(1, 9)]);
        r.insert(0, 20);
        assert_eq!(of(&r), vec![(0, 20)]);
        r.insert(3, 3);
        assert_eq!(of(&r), vec![(0, 20)]);
    }

    #[test]
    fn an_interval_swallows_those_it_spans() {
        let mut r = Ranges::new();
        r.insert(10, 12);
        r.insert(20, 22);
        r.insert(30, 30);
        r.insert(11, 29);
        assert_eq!(of(&r), vec![(10, 30)]);
        r.insert(u64::MAX - 1, u64::MAX);
        r.insert(31, 31);
        assert_eq!(of(&r), vec![(10, 31), (u64::MAX - 1, u64::MAX)]);
        assert_eq!(r.next_absent(u64::MAX), None);
        assert_eq!(r.next_absent(10), Some(32));
        assert_eq!(r.next_absent(9), Some(9));
    }

    #[test]
    fn queries_agree_with_a_plain_set() {
        let mut r = Ranges::new();
        let mut plain = std::collections::BTreeSet::new();
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = (x >> 33) % 300;
            let b = a + (x >> 20) % 4;
            r.insert(a, b);
            plain.extend(a..=b);
            let (q1, q2) = ((x >> 10) % 300, (x >> 40) % 300);
            let (lo, hi) = (q1.min(q2), q1.max(q2));
            assert_eq!(r.count_in(lo, hi), plain.range(lo..=hi).count() as u64);
            assert_eq!(r.covers(lo, hi), (lo..=hi).all(|v| plain.contains(&v)));
            assert_eq!(r.contains(lo), plain.contains(&lo));
            let next = (lo..).find(|v| !plain.contains(v));
            assert_eq!(r.next_absent(lo), next);
            let tail: Vec<u64> = r.from(lo).intervals().flat_map(|(s, e)| s..=e).collect();
            let want: Vec<u64> = plain.range(lo..).copied().collect();
            assert_eq!(tail, want);
        }
    }
}
