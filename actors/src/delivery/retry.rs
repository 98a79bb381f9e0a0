//! The retry policy of webhook delivery, as pure functions: how an answer (an HTTP status or a
//! failed request) is classified (docs/eventgrid.md §5.4, §6.4), when a failed event is tried
//! again or dead-lettered, and when an endpoint goes on probation (§5.5).
//!
//! Event Grid's behaviour differs per tier, so each tier is a [`Profile`]: the basic tier retries
//! on its schedule (by default 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h, then every 12 h)
//! and waits at least the minimum a 408 or 503 asks for; a namespace subscription in Push mode
//! retries on the namespace schedule (immediately, 10 s, 30 s, 1 m, 5 m, then every 5 m), never
//! retries 404 and 414, and has no status minimums. The schedules themselves are configuration
//! (`push.retry_schedule_ms`, `push.namespace_retry_schedule_ms`).
//!
//! Owns the decisions, not the time: every function takes `now` and, for jitter, a random number
//! as arguments, so tests choose them. Must never read a clock, draw randomness, perform I/O or
//! start an actor: the push actor and the delivery shards call it.

use std::time::Duration;

/// Which tier's retry policy applies to a push subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Custom topics, domains and domain topics: Event Grid's schedule with the 408/503
    /// minimums, 404 retried, the basic-tier dead-letter record.
    Basic,
    /// A namespace subscription in Push mode: the namespace schedule, 404 and 414 never retried,
    /// no status minimums, the namespace dead-letter record.
    Namespace,
}

/// Event Grid's `lastDeliveryOutcome` of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TimedOut,
    Busy,
    /// Any other answer that is not a success.
    Aborted,
    SocketError,
    ResolutionError,
    /// An `https://` endpoint whose certificate did not verify (unknown issuer, expired, wrong
    /// name, ...): retried and dead-lettered like a socket error, never delivered in plaintext.
    CertificateError,
}

impl WebhookOutcome {
    /// The name Event Grid writes in dead-letter records.
    pub fn name(self) -> &'static str {
        match self {
            WebhookOutcome::BadRequest => "BadRequest",
            WebhookOutcome::Unauthorized => "Unauthorized",
            WebhookOutcome::Forbidden => "Forbidden",
            WebhookOutcome::NotFound => "NotFound",
            WebhookOutcome::PayloadTooLarge => "PayloadTooLarge",
            WebhookOutcome::TimedOut => "TimedOut",
            WebhookOutcome::Busy => "Busy",
            WebhookOutcome::Aborted => "Aborted",
            WebhookOutcome::SocketError => "SocketError",
            WebhookOutcome::ResolutionError => "ResolutionError",
            WebhookOutcome::CertificateError => "CertificateError",
        }
    }

    /// Whether the outcome is in Event Grid's probation table: an endpoint refusing a bad event
    /// (400, 413) is not unhealthy.
    pub fn counts_for_probation(self) -> bool {
        matches!(
            self,
            WebhookOutcome::Busy
                | WebhookOutcome::TimedOut
                | WebhookOutcome::SocketError
                | WebhookOutcome::NotFound
                | WebhookOutcome::ResolutionError
                | WebhookOutcome::CertificateError
                | WebhookOutcome::Unauthorized
                | WebhookOutcome::Forbidden
        )
    }

    /// How long an endpoint stays on probation after this outcome (docs/eventgrid.md §5.5),
    /// scaled by the schedule's `unit`.
    pub fn probation(self, unit: Duration) -> Duration {
        match self {
            WebhookOutcome::Busy | WebhookOutcome::TimedOut => unit,
            WebhookOutcome::SocketError | WebhookOutcome::CertificateError => unit * 3,
            _ => unit * 30,
        }
    }
}

/// Whether and when a failed delivery may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Never,
    /// Retry, but not sooner than this.
    After(Duration),
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Failed {
        status: Option<u16>,
        outcome: WebhookOutcome,
        retry: Retry,
        /// Why a request that got no answer failed, when an operator must act on it (a refused
        /// certificate: `certificate error: <why>`); kept as the event's `lastDeliveryError`.
        detail: Option<std::sync::Arc<str>>,
    },
    /// The endpoint is on probation: try again at this time (ms since the epoch); not an attempt.
    Deferred {
        until_ms: u64,
    },
}

/// Classifies an HTTP answer as Event Grid does: only 200–204 succeed; 400, 401, 403 and 413
/// (and for namespaces 404 and 414) are never retried; 408 and 503 ask for a longer wait
/// (12 and 3 units); anything else is retried after at least one `unit`.
pub fn classify_status(status: u16, unit: Duration, profile: Profile) -> Outcome {
    use WebhookOutcome as W;
    let failed = |outcome, retry| Outcome::Failed {
        status: Some(status),
        outcome,
        retry,
        detail: None,
    };
    let namespace = profile == Profile::Namespace;
    match status {
        200..=204 => Outcome::Delivered,
        404 if namespace => failed(W::NotFound, Retry::Never),
        414 if namespace => failed(W::BadRequest, Retry::Never),
        400 => failed(W::BadRequest, Retry::Never),
        401 => failed(W::Unauthorized, Retry::Never),
        403 => failed(W::Forbidden, Retry::Never),
        413 => failed(W::PayloadTooLarge, Retry::Never),
        404 => failed(W::NotFound, Retry::After(unit)),
        408 => failed(W::TimedOut, Retry::After(unit * 12)),
        503 => failed(W::Busy, Retry::After(unit * 3)),
        429 | 500..=599 => failed(W::Busy, Retry::After(unit)),
        _ => failed(W::Aborted, Retry::After(unit)),
    }
}

/// A request that got no answer (`outcome`: timed out, no address, socket error) is retried
/// after at least one `unit`.
pub fn classify_error(outcome: WebhookOutcome, unit: Duration) -> Outcome {
    Outcome::Failed {
        status: None,
        outcome,
        retry: Retry::After(unit),
        detail: None,
    }
}

/// Why an event left a push subscription without being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    TimeToLiveExceeded,
    NonRetriableStatusCode,
    MaxDeliveryAttemptsExceeded,
}

impl DeadLetterReason {
    /// The `deadLetterReason` Event Grid writes.
    pub fn name(self) -> &'static str {
        match self {
            DeadLetterReason::TimeToLiveExceeded => "TimeToLiveExceeded",
            DeadLetterReason::NonRetriableStatusCode => "NonRetriableStatusCode",
            DeadLetterReason::MaxDeliveryAttemptsExceeded => "MaxDeliveryAttemptsExceeded",
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (ms since the epoch).
    RetryAt(u64),
    DeadLetter(DeadLetterReason),
}

/// Whether an event published at `publish_ms` has outlived its time to live at `now_ms`. Checked
/// when its next attempt comes due, as Event Grid does.
pub fn ttl_exceeded(publish_ms: u64, ttl_secs: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(publish_ms) > ttl_secs * 1000
}

/// The wait before the retry that follows failed attempt number `attempts` (1 for the first):
/// that step of `schedule`, its last step once past its end (10 s if it is empty), and for the
/// basic tier at least the `min` the answer asked for.
pub fn step(profile: Profile, schedule: &[Duration], attempts: u32, min: Duration) -> Duration {
    let step = schedule
        .get(attempts.saturating_sub(1) as usize)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(10));
    match profile {
        Profile::Basic => step.max(min),
        Profile::Namespace => step,
    }
}

/// `step` in milliseconds, made up to 10 % later by `random` (0 → exactly the step, `u64::MAX`
/// → exactly 10 % later), so that many events failing together do not retry in one burst.
pub fn jittered(step: Duration, random: u64) -> u64 {
    let ms = step.as_millis() as u64;
    let extra = (ms / 10) as u128 * random as u128 / u64::MAX as u128;
    ms + extra as u64
}

/// What follows failed attempt number `attempts` (the delivery count after it) of an event
/// whose answer was classified as `retry`.
pub fn after_failure(
    profile: Profile,
    schedule: &[Duration],
    max_attempts: u32,
    attempts: u32,
    retry: Retry,
    now_ms: u64,
    random: u64,
) -> Next {
    let min = match retry {
        Retry::Never => return Next::DeadLetter(DeadLetterReason::NonRetriableStatusCode),
        Retry::After(d) => d,
    };
    if attempts >= max_attempts {
        return Next::DeadLetter(DeadLetterReason::MaxDeliveryAttemptsExceeded);
    }
    Next::RetryAt(now_ms + jittered(step(profile, schedule, attempts, min), random))
}

/// One endpoint's health: consecutive failures that count for probation, and the probation in
/// force. Times are given by the caller: `mono_ms` on a monotonic clock (so a wall-clock step
/// neither ends nor stretches a probation), `wall_ms` since the epoch (what deferred events are
/// stamped with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Probation {
    failures: u32,
    /// (monotonic ms, wall ms) when the probation ends.
    until: Option<(u64, u64)>,
}

impl Probation {
    /// While on probation at `mono_ms`: when it ends (ms since the epoch).
    pub fn deferred_until(&self, mono_ms: u64) -> Option<u64> {
        self.until
            .filter(|(mono, _)| *mono > mono_ms)
            .map(|(_, wall)| wall)
    }

    /// Records an attempt's outcome. A delivery clears the count; a failure in the probation
    /// table counts, and from the `after`-th consecutive one puts the endpoint on probation for
    /// the outcome's length (scaled by `unit`), answered so the caller can log it.
    pub fn record(
        &mut self,
        out: &Outcome,
        after: u32,
        unit: Duration,
        mono_ms: u64,
        wall_ms: u64,
    ) -> Option<Duration> {
        match out {
            Outcome::Delivered => {
                *self = Probation::default();
                None
            }
            Outcome::Failed { outcome, .. } if outcome.counts_for_probation() => {
                self.failures += 1;
                if self.failures < after {
                    return None;
                }
                let d = outcome.probation(unit);
                let ms = d.as_millis() as u64;
                self.until = Some((mono_ms + ms, wall_ms + ms));
                Some(d)
            }
            Outcome::Failed { .. } | Outcome::Deferred { .. } => None,
        }
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests;
