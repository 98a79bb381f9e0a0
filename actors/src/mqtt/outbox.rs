//! The channel from a session actor to its connection's writer task.
//!
//! Owns the queue of [`Out`] items between them: the session pushes from an actix thread, the
//! writer takes everything queued so far in one swap on the connection's ntex thread. It replaces
//! a tokio unbounded channel, which allocates a 32-slot block (about 800 B with its state) for
//! every connection up front; an idle connection's outbox is one small allocation.
//!
//! Also counts what the connection holds on its way to the socket, in messages and bytes: an item
//! counts from its push until the writer [releases](OutboxRx::release) it, which it does once the
//! socket has taken it, so a client that stops reading shows here and in the memory budget
//! ([`crate::budget`]) instead of in ntex's write buffer. Must never hold its lock across anything
//! but a push, a swap or a count, and never lose a wake-up.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::budget::{BUDGET, BufferKind};
use crate::mqtt::message::Out;

struct Queue {
    items: Vec<Out>,
    senders: usize,
    receiver: bool,
}

struct Inner {
    q: Mutex<Queue>,
    /// A permit is stored when nobody waits, so a push between the receiver's check and its wait
    /// is not missed.
    ready: Notify,
    /// Messages and bytes pushed and not yet released. Raised only under the lock while the
    /// receiver lives, and zeroed under it when the receiver goes, so each byte is given back to
    /// the budget exactly once.
    held_msgs: AtomicUsize,
    held_bytes: AtomicUsize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every critical section is a push, a swap or a counter change: a panic cannot leave the
        // queue half-updated, so a poisoned lock is still a valid queue.
        self.q.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The session's end. Cloning adds a sender; the receiver ends once all are dropped.
pub struct OutboxTx(Arc<Inner>);

/// The writer's end.
pub struct OutboxRx(Arc<Inner>);

pub fn outbox() -> (OutboxTx, OutboxRx) {
    let inner = Arc::new(Inner {
        q: Mutex::new(Queue {
            items: Vec::new(),
            senders: 1,
            receiver: true,
        }),
        ready: Notify::new(),
        held_msgs: AtomicUsize::new(0),
        held_bytes: AtomicUsize::new(0),
    });
    (OutboxTx(inner.clone()), OutboxRx(inner))
}

impl OutboxTx {
    /// Queues `out` for the writer; gives it back when the writer is gone.
    pub fn send(&self, out: Out) -> Result<(), Out> {
        let (msgs, bytes) = out.size();
        {
            let mut q = self.0.lock();
            if !q.receiver {
                return Err(out);
            }
            self.0.held_msgs.fetch_add(msgs, Relaxed);
            self.0.held_bytes.fetch_add(bytes, Relaxed);
            BUDGET.take(BufferKind::MqttOutbound, bytes);
            q.items.push(out);
        }
        self.0.ready.notify_one();
        Ok(())
    }

    /// (messages, bytes) pushed and not yet taken by the socket.
    pub fn held(&self) -> (usize, usize) {
        (
            self.0.held_msgs.load(Relaxed),
            self.0.held_bytes.load(Relaxed),
        )
    }
}

impl Clone for OutboxTx {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        OutboxTx(self.0.clone())
    }
}

impl Drop for OutboxTx {
    fn drop(&mut self) {
        let last = {
            let mut q = self.0.lock();
            q.senders -= 1;
            q.senders == 0
        };
        if last {
            self.0.ready.notify_one();
        }
    }
}

impl std::fmt::Debug for OutboxTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboxTx")
    }
}

impl OutboxRx {
    /// Waits for queued items and swaps them into `buf` (which must be empty; its capacity is
    /// handed to the queue for reuse). Returns false once every sender is gone and nothing is
    /// left.
    pub async fn recv_all(&mut self, buf: &mut Vec<Out>) -> bool {
        debug_assert!(buf.is_empty());
        loop {
            {
                let mut q = self.0.lock();
                if !q.items.is_empty() {
                    std::mem::swap(&mut q.items, buf);
                    return true;
                }
                if q.senders == 0 {
                    return false;
                }
            }
            self.0.ready.notified().await;
        }
    }
}

impl OutboxRx {
    /// The socket has taken what [`Out::size`] counted for an item: it no longer counts.
    pub fn release(&self, (msgs, bytes): (usize, usize)) {
        self.0.held_msgs.fetch_sub(msgs, Relaxed);
        self.0.held_bytes.fetch_sub(bytes, Relaxed);
        BUDGET.give_back(BufferKind::MqttOutbound, bytes);
    }
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        let dropped = {
            let mut q = self.0.lock();
            q.receiver = false;
            self.0.held_msgs.store(0, Relaxed);
            BUDGET.give_back(BufferKind::MqttOutbound, self.0.held_bytes.swap(0, Relaxed));
            std::mem::take(&mut q.items)
        };
        // Dropped outside the lock: they may hold the last reference to large messages.
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::message::CloseReason;

    #[tokio::test(flavor = "current_thread")]
    async fn delivers_in_order_and_ends_with_the_last_sender() {
        let (tx, mut rx) = outbox();
        let tx2 = tx.clone();
        tx.send(Out::Batch(Vec::new())).unwrap();
        tx2.send(Out::Close(CloseReason::SessionTakenOver)).unwrap();
        let mut buf = Vec::new();
        assert!(rx.recv_all(&mut buf).await);
        assert!(matches!(buf[..], [Out::Batch(_), Out::Close(_)]));
        buf.clear();
        drop(tx);
        let waiter = tokio::spawn(async move {
            let mut buf = Vec::new();
            let first = rx.recv_all(&mut buf).await;
            let n = buf.len();
            buf.clear();
            (first, n, rx.recv_all(&mut buf).await)
        });
        tokio::task::yield_now().await;
        // Sent while the receiver waits: it wakes; then the last sender leaves: it ends.
        tx2.send(Out::Batch(Vec::new())).unwrap();
        drop(tx2);
        assert_eq!(waiter.await.unwrap(), (true, 1, false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_item_is_lost_across_threads() {
        let (tx, mut rx) = outbox();
        let sender = std::thread::spawn(move || {
            for _ in 0..100_000 {
                tx.send(Out::Batch(Vec::new())).unwrap();
            }
        });
        let mut buf = Vec::new();
        let mut n = 0;
        while rx.recv_all(&mut buf).await {
            n += buf.len();
            buf.clear();
        }
        sender.join().unwrap();
        assert_eq!(n, 100_000);
    }

    fn batch(payload: usize, n: usize) -> Out {
        use crate::mqtt::message::{AppMessage, OutMsg};
        let msg = std::sync::Arc::new(AppMessage {
            topic: "t".into(),
            payload: vec![0u8; payload].into(),
            qos: 0,
            retain: false,
            props: None,
            expires_at: None,
            publisher: None,
        });
        let m = OutMsg {
            msg,
            qos: 0,
            pid: 0,
            dup: false,
            retain: false,
            sub_ids: Vec::new(),
            release: false,
        };
        Out::Batch(vec![m; n])
    }

    /// Held bytes count from the push to the release, and whatever the writer never released is
    /// given back to the budget when it goes, once.
    #[test]
    fn held_counts_until_released_or_the_writer_goes() {
        let (tx, rx) = outbox();
        let (a, b) = (batch(1000, 3), batch(500, 2));
        let (sa, sb) = (a.size(), b.size());
        assert_eq!(sa, (3, 3 * (1000 + 1 + 64)));
        let before = BUDGET.held(BufferKind::MqttOutbound);
        tx.send(a).unwrap();
        tx.send(b).unwrap();
        assert_eq!(tx.held(), (sa.0 + sb.0, sa.1 + sb.1));
        assert!(BUDGET.held(BufferKind::MqttOutbound) >= before + sa.1 + sb.1);
        rx.release(sa);
        assert_eq!(tx.held(), sb);
        drop(rx);
        assert_eq!(tx.held(), (0, 0));
        // Refused once the writer is gone: nothing is counted.
        assert!(tx.send(batch(10, 1)).is_err());
        assert_eq!(tx.held(), (0, 0));
    }

    #[test]
    fn send_fails_once_the_writer_is_gone() {
        let (tx, rx) = outbox();
        drop(rx);
        assert!(tx.send(Out::Batch(Vec::new())).is_err());
    }
}
