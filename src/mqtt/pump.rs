//! The writer task of one connection: drains the session's channel into the ntex sink.
//!
//! Owns the sink (it is `!Send`, so it lives on the connection's ntex worker). Writes in channel
//! order, waits before every packet until the socket has taken what was written before (the write
//! buffer is under its high watermark) and the client's receive maximum has room, releases each
//! batch from the outbox's count once it is written, closes a connection whose socket has taken
//! nothing for `mqtt.send_timeout`, and reports PUBACK / PUBREC / PUBCOMP to the session actor.
//! A close it makes (takeover, shutdown, stalled socket) is recorded in the connection's
//! [`Ending`] first, for its Disconnected lifecycle event.
//! Never decides what to send: the session does. Must never let ntex's write buffer grow past one
//! packet beyond its high watermark: what a slow client has not taken is counted in the outbox,
//! where the session can see it and drop.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use actix::Addr;
use evgrid_actors::metrics::{DropReason, METRICS};
use evgrid_actors::mqtt::lifecycle::EndReason;
use evgrid_actors::mqtt::message::{CloseReason, ConnId, Out, OutMsg};
use evgrid_actors::mqtt::outbox::OutboxRx;
use evgrid_actors::mqtt::session::{Acked, Received, Session};

use super::conn::Ending;

/// What the writer needs from a v3 or v5 sink.
pub(crate) trait Sink: Clone + 'static {
    fn is_open(&self) -> bool;
    fn is_ready(&self) -> bool;
    /// The write buffer is over its high watermark now (`is_ready` learns it later).
    fn backpressure(&self) -> bool;
    /// Bytes in the write buffer, not yet taken by the socket.
    fn write_buffered(&self) -> usize;
    fn ready(&self) -> impl Future<Output = bool>;
    fn close(&self, reason: CloseReason);
    /// QoS 0 publish; an error means it was not written.
    fn send0(&self, m: &OutMsg) -> Result<(), ()>;
    /// QoS 1 publish with the session's packet id; the ack arrives through the ack callback.
    fn send1(&self, m: &OutMsg) -> Result<(), ()>;
    /// QoS 2 publish: `received` runs when PUBREC arrives; resolves to whether PUBCOMP did.
    fn send2(&self, m: &OutMsg, received: Box<dyn FnOnce()>)
    -> Pin<Box<dyn Future<Output = bool>>>;
    /// PUBREL for a QoS 2 message whose PUBREC came on an earlier connection; resolves to
    /// whether PUBCOMP arrived.
    fn release(&self, pid: u16) -> Pin<Box<dyn Future<Output = bool>>>;
    /// Installs the QoS 1 ack callback.
    fn on_ack(&self, f: Box<dyn Fn(u16)>);
}

/// The QoS 1 acknowledgements (PUBACK) of one connection not yet reported to its session.
///
/// Every PUBACK of one read is reported as one mailbox message, by a task that runs once the
/// connection has processed that read: one message per acknowledgement cost a mailbox message and
/// a cross-thread wake-up each, for every QoS 1 delivery. Shared by the writer, which collects
/// them, and the connection state, which reports what is left before it detaches, so that no
/// acknowledgement reaches the session after the connection has left it.
#[derive(Clone)]
pub(crate) struct Acks(Rc<AcksInner>);

struct AcksInner {
    session: Addr<Session>,
    conn: ConnId,
    pids: RefCell<Vec<u16>>,
}

impl Acks {
    pub fn new(session: Addr<Session>, conn: ConnId) -> Acks {
        Acks(Rc::new(AcksInner {
            session,
            conn,
            pids: RefCell::new(Vec::new()),
        }))
    }

    fn push(&self, pid: u16) {
        let first = {
            let mut pids = self.0.pids.borrow_mut();
            pids.push(pid);
            pids.len() == 1
        };
        if first {
            // Runs after the dispatcher's current poll, which processes the whole read.
            let me = self.clone();
            ntex_rt::spawn(async move { me.flush() });
        }
    }

    /// Reports the acknowledgements collected so far.
    pub fn flush(&self) {
        let pids = std::mem::take(&mut *self.0.pids.borrow_mut());
        if !pids.is_empty() {
            self.0.session.do_send(Acked {
                conn: self.0.conn,
                pids,
            });
        }
    }
}

enum Writable {
    Yes,
    Closed,
    /// The socket took nothing for the send timeout.
    Stalled,
}

/// Whether a connection's socket is taking what is written while its write buffer is over the
/// high watermark: the smallest buffer seen, and since when it has not shrunk. A socket that
/// takes bytes slowly (a large message over a slow link) keeps shrinking it and is not stalled.
#[derive(Default)]
struct Stall(Option<(usize, Instant)>);

impl Stall {
    /// Looks at the sink now; returns when the send timeout runs out, if it runs.
    fn observe<S: Sink>(&mut self, sink: &S, send_timeout: Option<Duration>) -> Option<Instant> {
        let backpressure = sink.backpressure();
        let buffered = if backpressure {
            sink.write_buffered()
        } else {
            0
        };
        self.update(backpressure, buffered, Instant::now(), send_timeout)
    }

    fn update(
        &mut self,
        backpressure: bool,
        buffered: usize,
        now: Instant,
        send_timeout: Option<Duration>,
    ) -> Option<Instant> {
        if !backpressure {
            self.0 = None;
            return None;
        }
        match self.0 {
            Some((least, _)) if buffered >= least => {}
            _ => self.0 = Some((buffered, now)),
        }
        let (_, since) = self.0?;
        send_timeout.map(|t| since + t)
    }
}

/// Bytes the writer may put in a connection's write buffer before it waits for the socket. Above
/// ntex's high watermark (16 KiB), so a batch to a reader that keeps up is written in one go and
/// leaves in few system calls (stopping at the watermark cost fan-out a tenth of its throughput
/// and most of its latency in wake-ups); small enough that a connection holds at most this plus
/// one packet beyond what its outbox counts.
const WRITE_AHEAD: usize = 64 * 1024;

/// Waits until the connection may take another packet: its write buffer is under
/// [`WRITE_AHEAD`], ntex has not seen back-pressure, and the client's receive window has room.
async fn writable<S: Sink>(sink: &S, send_timeout: Option<Duration>) -> Writable {
    let mut stall = Stall::default();
    let mut yields = 0;
    loop {
        if sink.is_ready() && sink.write_buffered() < WRITE_AHEAD {
            return Writable::Yes;
        }
        if !sink.is_open() {
            return Writable::Closed;
        }
        let deadline = stall.observe(sink, send_timeout);
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Writable::Stalled;
        }
        if !sink.is_ready() {
            // ntex knows (back-pressure seen by the dispatcher, or no window) and wakes us. One
            // readiness future for the whole wait: each `ready()` call queues a waiter that only
            // a wake-up removes. The wait is cut every second to time a stall that starts or
            // goes on meanwhile.
            let mut ready = std::pin::pin!(sink.ready());
            loop {
                let wait = stall.observe(sink, send_timeout).map_or(ONE_SECOND, |d| {
                    d.saturating_duration_since(Instant::now()).min(ONE_SECOND)
                });
                if wait.is_zero() {
                    return Writable::Stalled;
                }
                match ntex_util::time::timeout(wait, ready.as_mut()).await {
                    Ok(true) => break,
                    Ok(false) => return Writable::Closed,
                    Err(()) if !sink.is_open() => return Writable::Closed,
                    Err(()) => {}
                }
            }
        } else if yields < 4 {
            // The io layer raised back-pressure and woke the dispatcher, which tells the sink
            // once it has run: usually within a turn or two of this worker.
            yields += 1;
            tokio::task::yield_now().await;
        } else {
            // The dispatcher is busy elsewhere (its service not ready): look again shortly.
            ntex_util::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const ONE_SECOND: Duration = Duration::from_secs(1);

/// Turns a taken-over connection gives its dispatcher before it closes (see `Out::Close`).
const TAKEOVER_YIELDS: usize = 3;

pub(crate) async fn run<S: Sink>(
    sink: S,
    mut rx: OutboxRx,
    session: Addr<Session>,
    conn: ConnId,
    acks: Acks,
    send_timeout: Option<Duration>,
    ending: Ending,
) {
    sink.on_ack(Box::new(move |pid| acks.push(pid)));
    let mut buf = Vec::new();
    while rx.recv_all(&mut buf).await {
        for out in buf.drain(..) {
            let size = out.size();
            let msgs = match out {
                Out::Close(reason) => {
                    ending.set(EndReason::of_close(reason));
                    if reason == CloseReason::SessionTakenOver {
                        // The client may have sent acknowledgements just before it reconnected:
                        // let this connection's dispatcher handle what it has read (it runs on
                        // this thread) before closing, so they reach the session before the
                        // Detach the new connection waits for, and are not resent (DUP) on it.
                        for _ in 0..TAKEOVER_YIELDS {
                            tokio::task::yield_now().await;
                        }
                    }
                    sink.close(reason);
                    return;
                }
                Out::Batch(msgs) => msgs,
            };
            let mut n = [0u64; 3];
            let mut b = [0u64; 3];
            for m in &msgs {
                match writable(&sink, send_timeout).await {
                    Writable::Yes => {}
                    Writable::Closed => return,
                    Writable::Stalled => {
                        METRICS.slow_consumer_disconnects.inc();
                        tracing::debug!(
                            conn = conn.0,
                            "closing a connection whose socket took \
                            nothing for mqtt.send_timeout"
                        );
                        ending.set(EndReason::SendTimeout);
                        sink.close(CloseReason::SendTimeout);
                        return;
                    }
                }
                let ok = match m.qos {
                    0 => sink.send0(m).is_ok(),
                    1 => sink.send1(m).is_ok(),
                    _ => {
                        let pid = m.pid;
                        let mut fut = if m.release {
                            sink.release(pid)
                        } else {
                            // Reported as soon as PUBREC arrives, so a connection lost before
                            // PUBCOMP resumes with PUBREL, not a second PUBLISH.
                            let s = session.clone();
                            sink.send2(m, Box::new(move || s.do_send(Received { conn, pid })))
                        };
                        let s = session.clone();
                        let report = move |completed: bool| {
                            if completed {
                                s.do_send(Acked {
                                    conn,
                                    pids: vec![pid],
                                });
                            }
                        };
                        // Poll once here so the PUBLISH (or PUBREL) is written now, in order; the
                        // rest of the exchange runs on its own task.
                        match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
                            Poll::Ready(r) => report(r),
                            Poll::Pending => {
                                ntex_rt::spawn(async move { report(fut.await) });
                            }
                        }
                        true
                    }
                };
                if ok && m.release {
                    // A PUBREL, not a message: counted when its PUBLISH went out.
                } else if ok {
                    n[m.qos as usize] += 1;
                    b[m.qos as usize] += m.msg.payload.len() as u64;
                } else if !sink.is_open() {
                    return;
                } else {
                    // Refused by the encoder (larger than the client's maximum packet size):
                    // [MQTT-3.1.2-25] says discard it as if it had been sent.
                    METRICS.drop(DropReason::TooLarge, 1);
                    if m.qos > 0 {
                        session.do_send(Acked {
                            conn,
                            pids: vec![m.pid],
                        });
                    }
                }
            }
            rx.release(size);
            for q in 0..3 {
                if n[q] > 0 {
                    METRICS.messages_out[q].add(n[q]);
                    METRICS.bytes_out[q].add(b[q]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The send timeout runs while the socket takes nothing, not while it takes a large message
    /// slowly, and starts again once the buffer is back under the watermark.
    #[test]
    fn a_stall_is_a_buffer_that_does_not_shrink() {
        let t = Some(Duration::from_secs(15));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut st = Stall::default();
        assert_eq!(st.update(false, 0, at(0), t), None);
        assert_eq!(st.update(true, 1_000_000, at(0), t), Some(at(15)));
        // Shrinking, however slowly: the clock restarts.
        assert_eq!(st.update(true, 990_000, at(10), t), Some(at(25)));
        assert_eq!(st.update(true, 980_000, at(20), t), Some(at(35)));
        // Not shrinking (or growing by a new packet): it keeps running.
        assert_eq!(st.update(true, 980_000, at(30), t), Some(at(35)));
        assert_eq!(st.update(true, 1_100_000, at(34), t), Some(at(35)));
        // Under the watermark: no stall; a new one starts from scratch.
        assert_eq!(st.update(false, 0, at(36), t), None);
        assert_eq!(st.update(true, 1_100_000, at(40), t), Some(at(55)));
        // No send timeout: never.
        assert_eq!(Stall::default().update(true, 5, at(0), None), None);
    }
}
