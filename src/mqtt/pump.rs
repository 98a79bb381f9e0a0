//! The writer task of one connection: drains the session's channel into the ntex sink.
//!
//! Owns the sink (it is `!Send`, so it lives on the connection's ntex worker). Writes in channel
//! order, waits on the sink's readiness (write back-pressure and the client's receive maximum),
//! and reports PUBACK / PUBREC / PUBCOMP to the session actor. Never decides what to send: the
//! session does.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use actix::Addr;
use evgrid_actors::message::{CloseReason, ConnId, Out, OutMsg};
use evgrid_actors::metrics::{DropReason, METRICS};
use evgrid_actors::outbox::OutboxRx;
use evgrid_actors::session::{Acked, Received, Session};

/// What the writer needs from a v3 or v5 sink.
pub(crate) trait Sink: Clone + 'static {
    fn is_open(&self) -> bool;
    fn is_ready(&self) -> bool;
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

pub(crate) async fn run<S: Sink>(
    sink: S,
    mut rx: OutboxRx,
    session: Addr<Session>,
    conn: ConnId,
    pending: Arc<AtomicUsize>,
    acks: Acks,
) {
    sink.on_ack(Box::new(move |pid| acks.push(pid)));
    let mut buf = Vec::new();
    while rx.recv_all(&mut buf).await {
        for out in buf.drain(..) {
            let msgs = match out {
                Out::Close(reason) => {
                    sink.close(reason);
                    return;
                }
                Out::Batch(msgs) => msgs,
            };
            let mut n = [0u64; 3];
            let mut b = [0u64; 3];
            let mut qos0 = 0;
            for m in &msgs {
                if m.qos == 0 {
                    qos0 += 1;
                }
                if !sink.is_ready() && !sink.ready().await {
                    return;
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
            pending.fetch_sub(qos0, Ordering::Relaxed);
            for q in 0..3 {
                if n[q] > 0 {
                    METRICS.messages_out[q].add(n[q]);
                    METRICS.bytes_out[q].add(b[q]);
                }
            }
        }
    }
}
