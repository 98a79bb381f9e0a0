//! Open-loop send schedule.
//!
//! A publisher with rate `r` msgs/s has message `k` scheduled at
//! `start + phase + k / r`. Whatever happens (slow broker, full in-flight
//! window, a stalled socket), message `k` keeps that scheduled time and its
//! payload carries it, so end-to-end latency is measured from when the message
//! *should* have been sent. That is what avoids coordinated omission: a stall
//! shows up as latency of every message that was due during the stall, not as
//! one slow sample.

/// How a publisher paces itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Pace {
    /// Fixed schedule at this many messages per second.
    Open { rate: f64 },
    /// As fast as the connection and the in-flight window allow.
    Closed,
}

/// Per-publisher rate from the command line: `--rate` (total, spread evenly
/// over `publishers`) wins over `-I` (interval per publisher in ms).
pub fn per_publisher_rate(total_rate: Option<f64>, interval_ms: f64, publishers: usize) -> f64 {
    match total_rate {
        Some(r) => r / publishers.max(1) as f64,
        None => 1000.0 / interval_ms,
    }
}

/// The schedule of one open-loop publisher.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    first_ns: u64,
    interval_ns: f64,
    next: u64,
}

impl OpenLoop {
    /// `start_ns`: common start of all publishers; `rate`: msgs/s for this
    /// publisher (> 0); `phase`: in [0, 1), fraction of one interval by which
    /// this publisher is offset so that publishers do not fire in lock-step.
    pub fn new(start_ns: u64, rate: f64, phase: f64) -> Self {
        let interval_ns = 1e9 / rate;
        let first_ns = start_ns + (phase.clamp(0.0, 0.999_999) * interval_ns) as u64;
        OpenLoop {
            first_ns,
            interval_ns,
            next: 0,
        }
    }

    /// Scheduled send time of message `k`.
    pub fn scheduled(&self, k: u64) -> u64 {
        self.first_ns + (k as f64 * self.interval_ns) as u64
    }

    /// Scheduled time of the next message.
    pub fn next_due_ns(&self) -> u64 {
        self.scheduled(self.next)
    }

    /// How many messages are due at `now_ns` and not yet taken.
    pub fn due(&self, now_ns: u64) -> u64 {
        if now_ns < self.first_ns {
            return 0;
        }
        let elapsed = (now_ns - self.first_ns) as f64;
        // number of k with first + k*interval <= now
        let mut count = (elapsed / self.interval_ns).floor() as u64 + 1;
        // guard against float rounding at the boundary
        while count > 0 && self.scheduled(count - 1) > now_ns {
            count -= 1;
        }
        while self.scheduled(count) <= now_ns {
            count += 1;
        }
        count.saturating_sub(self.next)
    }

    /// Marks the next message as taken and returns its scheduled time.
    pub fn take(&mut self) -> u64 {
        let t = self.scheduled(self.next);
        self.next += 1;
        t
    }

    /// Number of messages scheduled strictly before `end_ns`.
    #[cfg(test)]
    pub fn total_before(&self, end_ns: u64) -> u64 {
        if end_ns <= self.first_ns {
            return 0;
        }
        self.due(end_ns - 1) + self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_split() {
        assert_eq!(per_publisher_rate(Some(1000.0), 1000.0, 4), 250.0);
        assert_eq!(per_publisher_rate(None, 10.0, 4), 100.0);
        assert_eq!(per_publisher_rate(Some(10.0), 1.0, 0), 10.0);
    }

    #[test]
    fn due_counts_follow_the_schedule() {
        // 1000 msgs/s = one every 1 ms, starting at t=1s
        let mut s = OpenLoop::new(1_000_000_000, 1000.0, 0.0);
        assert_eq!(s.due(999_999_999), 0);
        assert_eq!(s.due(1_000_000_000), 1, "message 0 is due exactly at start");
        assert_eq!(s.due(1_000_999_999), 1);
        assert_eq!(s.due(1_001_000_000), 2);
        assert_eq!(s.due(1_010_000_000), 11);
        assert_eq!(s.take(), 1_000_000_000);
        assert_eq!(s.take(), 1_001_000_000);
        assert_eq!(s.due(1_010_000_000), 9);
        assert_eq!(s.next_due_ns(), 1_002_000_000);
        // falling behind: everything due is reported, timestamps stay scheduled
        assert_eq!(s.due(2_000_000_000), 999);
        for _ in 0..999 {
            s.take();
        }
        assert_eq!(s.due(2_000_000_000), 0);
        assert_eq!(s.next_due_ns(), 2_001_000_000);
    }

    #[test]
    fn phase_offsets_spread_publishers() {
        let a = OpenLoop::new(0, 100.0, 0.0);
        let b = OpenLoop::new(0, 100.0, 0.5);
        assert_eq!(a.scheduled(0), 0);
        assert_eq!(b.scheduled(0), 5_000_000);
        assert_eq!(b.scheduled(1), 15_000_000);
        assert_eq!(b.due(4_999_999), 0);
        assert_eq!(b.due(5_000_000), 1);
    }

    #[test]
    fn totals_over_a_window_match_the_rate() {
        // 4 publishers sharing 10,000 msgs/s for 3 s send 30,000 messages
        let start = 5_000_000_000u64;
        let end = start + 3_000_000_000;
        let total: u64 = (0..4)
            .map(|i| {
                OpenLoop::new(
                    start,
                    per_publisher_rate(Some(10_000.0), 1000.0, 4),
                    i as f64 / 4.0,
                )
                .total_before(end)
            })
            .sum();
        assert_eq!(total, 30_000);
        // fractional rates: 3 msgs/s for 10 s -> 30 messages
        let s = OpenLoop::new(0, 3.0, 0.0);
        assert_eq!(s.total_before(10_000_000_000), 30);
        // very high rates stay exact over long runs
        let s = OpenLoop::new(0, 2_000_000.0, 0.0);
        assert_eq!(s.total_before(3_600_000_000_000), 7_200_000_000);
        let t = s.scheduled(7_199_999_999);
        assert!((3_600_000_000_000 - 500..3_600_000_000_000).contains(&t));
    }

    #[test]
    fn due_is_consistent_with_scheduled() {
        let s = OpenLoop::new(123, 7777.7, 0.37);
        for k in [0u64, 1, 2, 10, 999, 123_456] {
            let t = s.scheduled(k);
            assert_eq!(s.due(t), k + 1);
            if t > 0 {
                assert_eq!(s.due(t - 1), k);
            }
        }
    }
}
