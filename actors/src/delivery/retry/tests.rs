use super::*;

const S: u64 = 1000;
const MIN: u64 = 60 * S;
const HOUR: u64 = 60 * MIN;

/// Event Grid's basic-tier schedule, as `push.retry_schedule_ms` defaults to it.
fn basic_schedule() -> Vec<Duration> {
    [10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200]
        .map(Duration::from_secs)
        .to_vec()
}

/// Event Grid's namespace schedule, as `push.namespace_retry_schedule_ms` defaults to it.
fn namespace_schedule() -> Vec<Duration> {
    [0, 10, 30, 60, 300].map(Duration::from_secs).to_vec()
}

/// An injected wall clock at an arbitrary instant.
const NOW: u64 = 1_700_000_000_000;

/// An injected random source: a fixed xorshift sequence.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const UNIT: Duration = Duration::from_secs(10);

/// When the retry after failed attempt `n` comes due, for a retryable answer with minimum `min`.
fn due(profile: Profile, schedule: &[Duration], n: u32, min: Duration, random: u64) -> u64 {
    match after_failure(profile, schedule, 30, n, Retry::After(min), NOW, random) {
        Next::RetryAt(at) => at - NOW,
        other => panic!("attempt {n}: {other:?}"),
    }
}

#[test]
fn the_basic_schedule_is_azures_attempt_by_attempt_then_every_12_hours() {
    let s = basic_schedule();
    let expected = [
        10 * S,
        30 * S,
        MIN,
        5 * MIN,
        10 * MIN,
        30 * MIN,
        HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
    ];
    for (i, want) in expected.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(due(Profile::Basic, &s, n, UNIT, 0), *want, "attempt {n}");
    }
    for n in 11..30 {
        assert_eq!(
            due(Profile::Basic, &s, n, UNIT, 0),
            12 * HOUR,
            "attempt {n}"
        );
    }
}

#[test]
fn the_namespace_schedule_retries_at_once_then_every_5_minutes() {
    let s = namespace_schedule();
    let expected = [0, 10 * S, 30 * S, MIN, 5 * MIN];
    for (i, want) in expected.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(
            due(Profile::Namespace, &s, n, UNIT, 0),
            *want,
            "attempt {n}"
        );
    }
    for n in 6..30 {
        assert_eq!(
            due(Profile::Namespace, &s, n, UNIT, 0),
            5 * MIN,
            "attempt {n}"
        );
    }
    // An empty schedule falls back to 10 s.
    assert_eq!(due(Profile::Namespace, &[], 1, UNIT, 0), 10 * S);
}

#[test]
fn a_408_waits_at_least_2_minutes_and_a_503_at_least_30_seconds_on_the_basic_tier() {
    let s = basic_schedule();
    let min = |status| match classify_status(status, UNIT, Profile::Basic) {
        Outcome::Failed {
            retry: Retry::After(d),
            ..
        } => d,
        o => panic!("{status}: {o:?}"),
    };
    assert_eq!(min(408), Duration::from_secs(120));
    assert_eq!(min(503), Duration::from_secs(30));
    // The minimum wins over a shorter step, the step over a shorter minimum.
    assert_eq!(due(Profile::Basic, &s, 1, min(408), 0), 120 * S);
    assert_eq!(due(Profile::Basic, &s, 4, min(408), 0), 5 * MIN);
    assert_eq!(due(Profile::Basic, &s, 1, min(503), 0), 30 * S);
    assert_eq!(due(Profile::Basic, &s, 3, min(503), 0), MIN);
    // The namespace tier has no minimums.
    let ns = namespace_schedule();
    assert_eq!(due(Profile::Namespace, &ns, 1, min(408), 0), 0);
    assert_eq!(due(Profile::Namespace, &ns, 2, min(503), 0), 10 * S);
}

#[test]
fn jitter_is_at_most_10_percent_later() {
    for step in [0, 5 * 1000, 10 * S, 12 * HOUR] {
        let d = Duration::from_millis(step);
        assert_eq!(jittered(d, 0), step, "random 0: exactly the step");
        assert_eq!(
            jittered(d, u64::MAX),
            step + step / 10,
            "max random: exactly 10 % later"
        );
    }
    assert_eq!(
        jittered(Duration::from_millis(9), u64::MAX),
        9,
        "too short to spread"
    );
    let mut r = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..10_000 {
        let at = jittered(Duration::from_secs(30), r.next());
        assert!((30 * S..=33 * S).contains(&at), "{at}");
    }
    // Through the policy: the jitter is added to the step, never more.
    let s = basic_schedule();
    assert_eq!(due(Profile::Basic, &s, 1, UNIT, u64::MAX), 11 * S);
    assert_eq!(
        due(Profile::Basic, &s, 12, UNIT, u64::MAX),
        12 * HOUR + 72 * MIN
    );
}

#[test]
fn time_to_live_runs_out_strictly_after_it() {
    let ttl_secs = 60;
    assert!(!ttl_exceeded(NOW, ttl_secs, NOW));
    assert!(!ttl_exceeded(NOW, ttl_secs, NOW + 60 * S));
    assert!(ttl_exceeded(NOW, ttl_secs, NOW + 60 * S + 1));
    // A clock behind the publish time never expires an event.
    assert!(!ttl_exceeded(NOW, ttl_secs, NOW - HOUR));
}

#[test]
fn attempts_end_at_max_attempts_and_on_a_status_that_is_never_retried() {
    let s = basic_schedule();
    let after = |n, retry| after_failure(Profile::Basic, &s, 3, n, retry, NOW, 0);
    assert_eq!(after(1, Retry::After(UNIT)), Next::RetryAt(NOW + 10 * S));
    assert_eq!(after(2, Retry::After(UNIT)), Next::RetryAt(NOW + 30 * S));
    assert_eq!(
        after(3, Retry::After(UNIT)),
        Next::DeadLetter(DeadLetterReason::MaxDeliveryAttemptsExceeded)
    );
    assert_eq!(
        after(1, Retry::Never),
        Next::DeadLetter(DeadLetterReason::NonRetriableStatusCode)
    );
    assert_eq!(
        after_failure(Profile::Basic, &s, 1, 1, Retry::After(UNIT), NOW, 0),
        Next::DeadLetter(DeadLetterReason::MaxDeliveryAttemptsExceeded),
        "one attempt allowed: no retry"
    );
    assert_eq!(
        DeadLetterReason::MaxDeliveryAttemptsExceeded.name(),
        "MaxDeliveryAttemptsExceeded"
    );
    assert_eq!(
        DeadLetterReason::NonRetriableStatusCode.name(),
        "NonRetriableStatusCode"
    );
    assert_eq!(
        DeadLetterReason::TimeToLiveExceeded.name(),
        "TimeToLiveExceeded"
    );
}

#[test]
fn statuses_are_classified_as_azure_does() {
    let u = UNIT;
    for s in 200..=204 {
        assert_eq!(classify_status(s, u, Profile::Basic), Outcome::Delivered);
    }
    for s in [400, 401, 403, 413] {
        assert!(
            matches!(
                classify_status(s, u, Profile::Basic),
                Outcome::Failed {
                    retry: Retry::Never,
                    ..
                }
            ),
            "{s}"
        );
    }
    let after = |s| match classify_status(s, u, Profile::Basic) {
        Outcome::Failed {
            retry: Retry::After(d),
            ..
        } => d,
        o => panic!("{s}: {o:?}"),
    };
    assert_eq!(after(503), Duration::from_secs(30));
    assert_eq!(after(408), Duration::from_secs(120));
    assert_eq!(after(500), u);
    assert_eq!(after(302), u);
    assert_eq!(after(205), u);
    assert_eq!(after(404), u, "basic tier retries 404");
    for s in [404, 414] {
        assert!(
            matches!(
                classify_status(s, u, Profile::Namespace),
                Outcome::Failed {
                    retry: Retry::Never,
                    ..
                }
            ),
            "namespace push never retries {s}"
        );
    }
    let outcome = |s, p| match classify_status(s, u, p) {
        Outcome::Failed { outcome, .. } => outcome.name(),
        o => panic!("{s}: {o:?}"),
    };
    assert_eq!(outcome(400, Profile::Basic), "BadRequest");
    assert_eq!(outcome(401, Profile::Basic), "Unauthorized");
    assert_eq!(outcome(403, Profile::Basic), "Forbidden");
    assert_eq!(outcome(413, Profile::Basic), "PayloadTooLarge");
    assert_eq!(outcome(404, Profile::Basic), "NotFound");
    assert_eq!(outcome(408, Profile::Basic), "TimedOut");
    assert_eq!(outcome(429, Profile::Basic), "Busy");
    assert_eq!(outcome(503, Profile::Basic), "Busy");
    assert_eq!(outcome(302, Profile::Basic), "Aborted");
    assert_eq!(outcome(414, Profile::Basic), "Aborted");
    assert_eq!(outcome(404, Profile::Namespace), "NotFound");
    assert_eq!(outcome(414, Profile::Namespace), "BadRequest");
    assert_eq!(
        classify_error(WebhookOutcome::SocketError, u),
        Outcome::Failed {
            status: None,
            outcome: WebhookOutcome::SocketError,
            retry: Retry::After(u),
            detail: None,
        }
    );
}

#[test]
fn only_unhealthy_outcomes_lead_to_probation() {
    use WebhookOutcome as W;
    for o in [
        W::Busy,
        W::TimedOut,
        W::SocketError,
        W::NotFound,
        W::ResolutionError,
        W::CertificateError,
        W::Unauthorized,
        W::Forbidden,
    ] {
        assert!(o.counts_for_probation(), "{o:?}");
    }
    for o in [W::BadRequest, W::PayloadTooLarge, W::Aborted] {
        assert!(!o.counts_for_probation(), "{o:?}");
    }
    assert_eq!(W::Busy.probation(UNIT), UNIT);
    assert_eq!(W::TimedOut.probation(UNIT), UNIT);
    assert_eq!(W::SocketError.probation(UNIT), UNIT * 3);
    assert_eq!(W::CertificateError.probation(UNIT), UNIT * 3);
    assert_eq!(W::NotFound.probation(UNIT), UNIT * 30);
}

#[test]
fn a_refused_certificate_is_retried_then_dead_lettered_like_any_failure() {
    let out = classify_error(WebhookOutcome::CertificateError, UNIT);
    let Outcome::Failed { outcome, retry, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!(outcome.name(), "CertificateError");
    let s = [UNIT];
    assert_eq!(
        after_failure(Profile::Basic, &s, 3, 1, retry, 0, 0),
        Next::RetryAt(10_000)
    );
    assert_eq!(
        after_failure(Profile::Basic, &s, 3, 3, retry, 0, 0),
        Next::DeadLetter(DeadLetterReason::MaxDeliveryAttemptsExceeded)
    );
}

#[test]
fn every_outcome_has_its_failure_counter() {
    use crate::metrics::PUSH_OUTCOMES;
    use WebhookOutcome as W;
    for o in [
        W::BadRequest,
        W::Unauthorized,
        W::Forbidden,
        W::NotFound,
        W::PayloadTooLarge,
        W::TimedOut,
        W::Busy,
        W::Aborted,
        W::SocketError,
        W::ResolutionError,
        W::CertificateError,
    ] {
        let before = PUSH_OUTCOMES.get(o.name());
        PUSH_OUTCOMES.failed(o.name());
        assert_eq!(PUSH_OUTCOMES.get(o.name()), before + 1, "{o:?}");
    }
}

#[test]
fn consecutive_failures_put_an_endpoint_on_probation_until_it_ends_or_a_delivery() {
    let fail = |outcome| classify_error(outcome, UNIT);
    let busy = fail(WebhookOutcome::Busy);
    let bad = Outcome::Failed {
        status: Some(400),
        outcome: WebhookOutcome::BadRequest,
        retry: Retry::Never,
        detail: None,
    };
    // Injected clocks: monotonic and wall milliseconds.
    let (mono, wall) = (5_000, NOW);
    let mut p = Probation::default();
    for i in 1..3 {
        assert_eq!(p.record(&busy, 3, UNIT, mono, wall), None, "failure {i}");
        assert_eq!(p.deferred_until(mono), None);
    }
    // A refused event does not count, and does not reset the count either.
    assert_eq!(p.record(&bad, 3, UNIT, mono, wall), None);
    assert_eq!(p.failures(), 2);
    assert_eq!(
        p.record(&busy, 3, UNIT, mono, wall),
        Some(UNIT),
        "3rd: probation"
    );
    assert_eq!(p.deferred_until(mono), Some(wall + 10 * S));
    assert_eq!(p.deferred_until(mono + 10 * S - 1), Some(wall + 10 * S));
    assert_eq!(
        p.deferred_until(mono + 10 * S),
        None,
        "over once its time has come"
    );
    // Each further failure starts a new probation of its outcome's length.
    let later = mono + 20 * S;
    assert_eq!(
        p.record(
            &fail(WebhookOutcome::SocketError),
            3,
            UNIT,
            later,
            wall + 20 * S
        ),
        Some(UNIT * 3)
    );
    assert_eq!(p.deferred_until(later), Some(wall + 50 * S));
    // A deferral changes nothing; a delivery ends it all.
    assert_eq!(
        p.record(&Outcome::Deferred { until_ms: 1 }, 3, UNIT, later, wall),
        None
    );
    assert_eq!(p.failures(), 4);
    assert_eq!(p.record(&Outcome::Delivered, 3, UNIT, later, wall), None);
    assert_eq!(p, Probation::default());
    assert_eq!(p.deferred_until(later), None);
}
