//! Quotas of the namespace the broker serves (evgrid's `topicSpacesConfiguration.quotas`, after
//! Event Grid's per-session throughput limits, docs/eventgrid.md §7.2 and §8): inbound PUBLISH
//! messages and payload bytes per second per connection, and CONNECTs per second in the
//! namespace. Off by default.
//!
//! Owns the per-connection meter ([`SessionQuota`], fixed one-second windows in `Cell`s: no lock,
//! no atomic, nothing shared, so a throttled client never slows another) and the namespace's
//! connect meter ([`ConnectMeter`], one atomic word). The handlers in `v3.rs` and `v5.rs` decide
//! what an exceeded quota answers: MQTT 5 `Quota exceeded` (0x97) on PUBACK/PUBREC, a dropped
//! QoS 0 message, a closed v3.1.1 connection, CONNACK 0x97 (v5) or 0x03 (v3.1.1). Must never
//! allocate or read the clock on the publish path of a connection without quotas: there the
//! check is one branch on `None`.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evgrid_actors::identity::directory::Quotas;
use evgrid_actors::metrics::{QUOTA, QuotaKind};

use super::Shared;
use super::conn::Conn;

/// The length of one quota window.
const WINDOW: Duration = Duration::from_secs(1);

/// One connection's inbound quota: `None` (the default) when the namespace sets neither session
/// quota at CONNECT.
#[derive(Default)]
pub(crate) struct SessionQuota(Option<Box<Meter>>);

/// A connection's fixed one-second window. A window opens at the first PUBLISH after the last
/// one ended; refused messages do not count against it. A message larger than the whole byte
/// quota still passes as the first of its window, so no message size is refused forever.
struct Meter {
    max_messages: Cell<u32>,
    max_bytes: Cell<u64>,
    start: Cell<Instant>,
    messages: Cell<u32>,
    bytes: Cell<u64>,
    /// The quota was logged in this window (one line per client per window, never per message).
    logged: Cell<bool>,
    /// The connection is being closed for the quota (v3.1.1): everything after is refused.
    closing: Cell<bool>,
}

impl SessionQuota {
    /// The meter for a connection made under `q` at `now`; `None` when no session quota is set.
    pub fn new(q: Quotas, now: Instant) -> SessionQuota {
        if q.session_messages_per_sec.is_none() && q.session_bytes_per_sec.is_none() {
            return SessionQuota(None);
        }
        let m = Meter {
            max_messages: Cell::new(0),
            max_bytes: Cell::new(0),
            start: Cell::new(now),
            messages: Cell::new(0),
            bytes: Cell::new(0),
            logged: Cell::new(false),
            closing: Cell::new(false),
        };
        m.set_limits(q);
        SessionQuota(Some(Box::new(m)))
    }

    /// Whether the connection is metered at all.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Charges one PUBLISH of `len` payload bytes at `now`; `refresh` gives the namespace's
    /// current quotas when a new window opens (so a changed or removed quota applies within a
    /// second). `Err`: refused, not charged; the first refusal of a window says `true` (log it).
    fn charge(
        &self,
        now: impl FnOnce() -> Instant,
        len: usize,
        refresh: impl FnOnce() -> Quotas,
    ) -> Result<(), (QuotaKind, bool)> {
        match &self.0 {
            None => Ok(()),
            Some(m) => m.charge(now(), len as u64, refresh),
        }
    }
}

impl Meter {
    fn set_limits(&self, q: Quotas) {
        self.max_messages
            .set(q.session_messages_per_sec.unwrap_or(u32::MAX));
        self.max_bytes
            .set(q.session_bytes_per_sec.map_or(u64::MAX, u64::from));
    }

    fn charge(
        &self,
        now: Instant,
        len: u64,
        refresh: impl FnOnce() -> Quotas,
    ) -> Result<(), (QuotaKind, bool)> {
        if now.saturating_duration_since(self.start.get()) >= WINDOW {
            self.start.set(now);
            self.messages.set(0);
            self.bytes.set(0);
            self.logged.set(false);
            self.set_limits(refresh());
        }
        let (n, b) = (self.messages.get(), self.bytes.get());
        let kind = if n >= self.max_messages.get() {
            QuotaKind::SessionMessages
        } else if n > 0 && b.saturating_add(len) > self.max_bytes.get() {
            QuotaKind::SessionBytes
        } else {
            self.messages.set(n + 1);
            self.bytes.set(b.saturating_add(len));
            return Ok(());
        };
        Err((kind, !self.logged.replace(true)))
    }
}

/// Charges one inbound PUBLISH of `len` payload bytes to `conn`'s quota (the namespace's quotas
/// as of the window's start). `Err`: refused and counted, and logged once per window. A
/// connection without quotas pays one branch.
#[inline]
pub(crate) fn admit(conn: &Conn, len: usize) -> Result<(), QuotaKind> {
    if !conn.quota.is_on() {
        return Ok(());
    }
    admit_metered(conn, len)
}

#[inline(never)]
fn admit_metered(conn: &Conn, len: usize) -> Result<(), QuotaKind> {
    if conn.quota.0.as_ref().is_some_and(|m| m.closing.get()) {
        return Err(QuotaKind::SessionMessages);
    }
    // ntex's cached clock (5 ms resolution, read once per event-loop turn and worker): every
    // PUBLISH of one socket read sees the same instant.
    let res = conn.quota.charge(ntex_util::time::now, len, || {
        conn.shared.bridge.directory().quotas
    });
    res.map_err(|(kind, first)| {
        QUOTA.exceeded(kind);
        if first {
            tracing::info!(
                client_id = %conn.client.session,
                quota = kind.label(),
                "quota exceeded: refusing this client's publishes for the rest of the second"
            );
        }
        kind
    })
}

/// A v3.1.1 connection over its session quota is being closed (it has no negative
/// acknowledgement): counted once; every PUBLISH after it is refused without counting.
pub(crate) fn closing(conn: &Conn) {
    if let Some(m) = &conn.quota.0
        && !m.closing.replace(true)
    {
        QUOTA.disconnected();
    }
}

/// CONNECTs per second in the namespace, across all workers: one atomic word holding the
/// current window's second (since the meter's creation) and how many CONNECTs it admitted.
pub(crate) struct ConnectMeter {
    base: Instant,
    slot: AtomicU64,
}

impl ConnectMeter {
    pub fn new(base: Instant) -> ConnectMeter {
        ConnectMeter {
            base,
            slot: AtomicU64::new(0),
        }
    }

    /// Admits one CONNECT at `now` under `limit` (`None`: no quota). A clock that reads an
    /// earlier second than the current window (another worker got there first) counts in the
    /// current window.
    pub fn admit(&self, limit: Option<u32>, now: Instant) -> bool {
        let Some(limit) = limit else {
            return true;
        };
        let sec = now
            .saturating_duration_since(self.base)
            .as_secs()
            .min(u64::from(u32::MAX));
        self.slot
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                let (w, n) = (cur >> 32, cur & 0xffff_ffff);
                if sec > w {
                    Some(sec << 32 | 1)
                } else if n < u64::from(limit) {
                    Some(cur + 1)
                } else {
                    None
                }
            })
            .is_ok()
    }
}

/// The quota checks of a CONNECT, before authentication (an authentication may be slow: a
/// password hash, a webhook): the namespace's quotas read once, the connect rate checked. `Err`:
/// over the namespace's connects per second (counted; the handler answers CONNACK 0x97 or 0x03).
/// `Ok`: the meter for the connection's publishes.
pub(crate) fn on_connect(sh: &Shared, client_id: &str) -> Result<SessionQuota, ()> {
    let q = sh.bridge.directory().quotas;
    if q == Quotas::default() {
        return Ok(SessionQuota::default());
    }
    let now = Instant::now();
    if !sh.connects.admit(q.connects_per_sec, now) {
        QUOTA.exceeded(QuotaKind::Connects);
        tracing::debug!(client_id, "connect quota exceeded: CONNECT refused");
        return Err(());
    }
    Ok(SessionQuota::new(q, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(messages: Option<u32>, bytes: Option<u32>) -> Quotas {
        Quotas {
            session_messages_per_sec: messages,
            session_bytes_per_sec: bytes,
            connects_per_sec: None,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn off_is_no_meter_and_admits_everything_without_reading_the_clock() {
        let t0 = Instant::now();
        let s = SessionQuota::new(Quotas::default(), t0);
        assert!(!s.is_on());
        // Only the connect quota set: no session meter either.
        let c = Quotas {
            connects_per_sec: Some(1),
            ..Quotas::default()
        };
        assert!(!SessionQuota::new(c, t0).is_on());
        for _ in 0..100_000 {
            let r = s.charge(|| panic!("clock read"), 1 << 20, || panic!("refresh"));
            assert_eq!(r, Ok(()));
        }
    }

    #[test]
    fn messages_per_window_then_refused_then_refilled() {
        let t0 = Instant::now();
        let s = SessionQuota::new(q(Some(3), None), t0);
        let keep = || q(Some(3), None);
        for i in 0..3 {
            assert_eq!(s.charge(|| ms(t0, i), 10, keep), Ok(()));
        }
        // The first refusal of the window asks for a log line, later ones do not.
        assert_eq!(
            s.charge(|| ms(t0, 500), 10, keep),
            Err((QuotaKind::SessionMessages, true))
        );
        assert_eq!(
            s.charge(|| ms(t0, 999), 10, keep),
            Err((QuotaKind::SessionMessages, false))
        );
        // A new window: three more, and a new log line.
        for i in 0..3 {
            assert_eq!(s.charge(|| ms(t0, 1000 + i), 10, keep), Ok(()));
        }
        assert_eq!(
            s.charge(|| ms(t0, 1500), 10, keep),
            Err((QuotaKind::SessionMessages, true))
        );
    }

    #[test]
    fn bytes_per_window_and_an_oversized_first_message_passes() {
        let t0 = Instant::now();
        let s = SessionQuota::new(q(None, Some(100)), t0);
        let keep = || q(None, Some(100));
        assert_eq!(s.charge(|| t0, 60, keep), Ok(()));
        assert_eq!(s.charge(|| t0, 40, keep), Ok(()));
        assert_eq!(
            s.charge(|| t0, 1, keep),
            Err((QuotaKind::SessionBytes, true))
        );
        // Empty payloads still fit (no message quota).
        assert_eq!(s.charge(|| t0, 0, keep), Ok(()));
        // Larger than the whole quota: passes as the first of a window, nothing else does.
        assert_eq!(s.charge(|| ms(t0, 1000), 500, keep), Ok(()));
        assert_eq!(
            s.charge(|| ms(t0, 1001), 1, keep),
            Err((QuotaKind::SessionBytes, true))
        );
    }

    #[test]
    fn refused_messages_do_not_count_and_the_message_quota_is_checked_first() {
        let t0 = Instant::now();
        let s = SessionQuota::new(q(Some(2), Some(10)), t0);
        let keep = || q(Some(2), Some(10));
        assert_eq!(s.charge(|| t0, 8, keep), Ok(()));
        assert_eq!(
            s.charge(|| t0, 8, keep),
            Err((QuotaKind::SessionBytes, true))
        );
        // The refused 8 bytes were not charged: 2 more fit, and it is the second message.
        assert_eq!(s.charge(|| t0, 2, keep), Ok(()));
        assert_eq!(
            s.charge(|| t0, 0, keep),
            Err((QuotaKind::SessionMessages, false))
        );
    }

    #[test]
    fn a_new_window_reads_the_namespace_quotas_again() {
        let t0 = Instant::now();
        let s = SessionQuota::new(q(Some(1), None), t0);
        assert_eq!(s.charge(|| t0, 0, || unreachable!()), Ok(()));
        assert!(s.charge(|| t0, 0, || unreachable!()).is_err());
        // Raised to 3 while the connection is open: the next window allows 3.
        let raised = || q(Some(3), None);
        for _ in 0..3 {
            assert_eq!(s.charge(|| ms(t0, 1000), 0, raised), Ok(()));
        }
        assert!(s.charge(|| ms(t0, 1000), 0, raised).is_err());
        // Removed: no limit from the next window on.
        for _ in 0..1000 {
            assert_eq!(s.charge(|| ms(t0, 2000), 1 << 20, Quotas::default), Ok(()));
        }
    }

    #[test]
    fn connects_per_second_shared_and_refilled_each_second() {
        let t0 = Instant::now();
        let m = ConnectMeter::new(t0);
        // No quota: always admitted, nothing counted.
        for _ in 0..10 {
            assert!(m.admit(None, t0));
        }
        assert!(m.admit(Some(2), ms(t0, 10)));
        assert!(m.admit(Some(2), ms(t0, 20)));
        assert!(!m.admit(Some(2), ms(t0, 900)));
        assert!(m.admit(Some(2), ms(t0, 1000)));
        assert!(m.admit(Some(2), ms(t0, 1999)));
        assert!(!m.admit(Some(2), ms(t0, 1999)));
        // A worker whose clock read an earlier second counts in the current window.
        assert!(!m.admit(Some(2), ms(t0, 999)));
        assert!(m.admit(Some(2), ms(t0, 5000)));
    }

    #[test]
    fn connects_from_many_threads_never_exceed_the_limit() {
        let m = std::sync::Arc::new(ConnectMeter::new(Instant::now()));
        let now = Instant::now();
        let admitted: usize = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || (0..1000).filter(|_| m.admit(Some(100), now)).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 100);
    }
}
