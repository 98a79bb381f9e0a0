//! The one source of time: wall-clock milliseconds for what is stored and shown (event times,
//! lock expiries, retry due times), and the monotonic clock for what is only measured.
//!
//! Code that decides something from the time takes `now` as an argument (or a [`Clock`]) so a
//! test can choose it; only the actor that owns a timer reads the clock, through this module.
//! Must never be bypassed with `SystemTime::now()` elsewhere in the core.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 if the system clock is before it.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Microseconds since the Unix epoch; 0 if the system clock is before it. For ordering events
/// that may be a millisecond apart across processes (a client reconnecting to another node).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Milliseconds on a monotonic clock that starts with the process: for deadlines that a
/// wall-clock step must not move (pull locks, endpoint probation).
pub fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A source of time that tests can replace.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A monotonic instant, for durations.
    fn monotonic(&self) -> Instant;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020_and_monotonic_does_not_go_back() {
        let c = SystemClock;
        assert!(c.now_ms() > 1_577_836_800_000);
        let a = c.monotonic();
        assert!(c.monotonic() >= a);
    }
}
