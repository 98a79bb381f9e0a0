//! Time for every flow: the run clock all latencies are measured with, and the one reading of
//! the wall clock. Owns no state beyond a clock's epoch; never sleeps or schedules (that is
//! `sched` and tokio's timers).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Run-wide clock: nanoseconds since the Unix epoch, sampled once and then
/// advanced monotonically.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Nanoseconds since the Unix epoch by the wall clock (0 for a clock set before 1970). The only
/// place the generator reads the wall clock: within a run, times come from a [`Clock`]; this is
/// for its epoch, the report's start time and a SAS token's expiry.
pub fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            start_ns: unix_now_ns(),
            start: Instant::now(),
        }
    }

    /// Current time in run-epoch nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.start_ns + self.start.elapsed().as_nanos() as u64
    }

    /// The run-epoch time at which this clock was created.
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    /// Converts a run-epoch timestamp to an `Instant` (clamped to the start).
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns.saturating_sub(self.start_ns))
    }

    /// Converts an `Instant` to run-epoch nanoseconds.
    #[cfg(test)]
    pub fn ns_at(&self, t: Instant) -> u64 {
        self.start_ns + t.saturating_duration_since(self.start).as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic() {
        let c = Clock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
        assert!(a >= c.start_ns());
        let t = c.instant_at(a + 1_000_000);
        assert_eq!(c.ns_at(t), a + 1_000_000);
    }
}
