use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use ntex_bytes::Bytes;
use tokio::sync::oneshot;

use super::*;
use crate::delivery::queue::{Action, QueueAppend, QueueSettings, QueueSub, Receive, Settle};
use crate::model::clock::now_ms;
use crate::store::mem::MemStore;
use crate::store::redb::RedbStore;
use crate::store::{EntryState, Op, Writer};

/// A window of `kib` KiB per subscription; the total does not bind (tests share the process).
fn limits(kib: usize) -> WindowLimits {
    WindowLimits {
        per_subscription: kib << 10,
        total: usize::MAX / 2,
    }
}

fn queued(seq: u64, len: usize) -> Queued {
    Queued {
        seq,
        publish_ms: 1,
        body: Bytes::from(vec![b'x'; len]),
        state: EntryState::default(),
    }
}

#[test]
fn appends_beyond_the_window_stay_on_disk_until_a_page_brings_them_in() {
    let mut p = Pager::new(1, limits(4));
    for seq in 1..=4 {
        assert_eq!(p.admit(seq, 1024), Admit::Memory);
    }
    assert_eq!(p.admit(5, 1024), Admit::Disk);
    assert_eq!(p.admit(6, 10), Admit::Disk, "nothing overtakes the disk");
    assert_eq!((p.disk_from(), p.on_disk()), (Some(5), 2));
    assert_eq!(p.refill(), None, "the window is full");
    for _ in 0..3 {
        p.left(1024);
    }
    let (from, page) = p.refill().expect("drained below half");
    assert_eq!(from, 5);
    assert!(page.bytes <= 3 << 10 && page.bytes > 0);
    assert_eq!(p.refill(), None, "one read at a time");
    let got = p.loaded(Ok(vec![queued(5, 1024), queued(6, 10)]));
    assert_eq!(got.entries.len(), 2);
    assert_eq!(got.unheard, 0);
    assert_eq!((p.disk_from(), p.on_disk()), (None, 0));
    assert_eq!(
        p.admit(7, 10),
        Admit::Memory,
        "back to memory once the disk is read"
    );
    p.close();
}

#[test]
fn a_page_that_races_appends_takes_each_event_once() {
    let mut p = Pager::new(1, limits(2));
    assert_eq!(p.admit(1, 2048), Admit::Memory);
    assert_eq!(p.admit(2, 100), Admit::Disk);
    p.left(2048);
    let (from, _) = p.refill().unwrap();
    assert_eq!(from, 2);
    // While the page is read, 3 is committed and appended; 4 is committed, and its append is
    // still in the mailbox when the page (holding 2, 3 and 4) comes back.
    assert_eq!(p.admit(3, 100), Admit::Disk);
    let got = p.loaded(Ok(vec![queued(2, 100), queued(3, 100), queued(4, 100)]));
    assert_eq!(
        got.entries.iter().map(|q| q.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(got.unheard, 1, "4 was read before its append arrived");
    assert_eq!(p.admit(4, 100), Admit::Seen);
    assert_eq!((p.disk_from(), p.on_disk()), (None, 0));

    // The other way round: an append lands while the read runs, and the read missed it.
    let mut p = Pager::new(2, limits(2));
    assert_eq!(p.admit(1, 2048), Admit::Memory);
    assert_eq!(p.admit(2, 100), Admit::Disk);
    p.left(2048);
    p.refill().unwrap();
    assert_eq!(p.admit(3, 100), Admit::Disk);
    let got = p.loaded(Ok(vec![queued(2, 100)]));
    assert_eq!(got.entries.len(), 1);
    assert_eq!(
        (p.disk_from(), p.on_disk()),
        (Some(3), 1),
        "3 is still to be read"
    );
    let (from, _) = p.refill().unwrap();
    assert_eq!(from, 3);
    p.loaded(Ok(vec![queued(3, 100)]));
    assert_eq!((p.disk_from(), p.on_disk()), (None, 0));

    // A failed read leaves everything where it was.
    let mut p = Pager::new(3, limits(2));
    p.admit(1, 2048);
    p.admit(2, 100);
    p.left(2048);
    p.refill().unwrap();
    let got = p.loaded(Err(crate::store::StoreError::Io("EIO".into())));
    assert!(got.entries.is_empty());
    assert_eq!((p.disk_from(), p.on_disk()), (Some(2), 1));
    assert!(p.refill().is_some(), "tried again");
    p.close();
}

#[test]
fn a_late_append_is_kept_and_an_empty_page_stops_the_reading() {
    let mut p = Pager::new(1, limits(2));
    assert_eq!(p.admit(1, 2048), Admit::Memory);
    assert_eq!(p.admit(3, 100), Admit::Disk);
    // 2 was committed before 3 but its append comes after: it was never read, so it is kept.
    assert_eq!(p.admit(2, 100), Admit::Memory);
    assert_eq!(p.on_disk(), 1);
    p.left(2048);
    p.refill().unwrap();
    // The store no longer has what was counted (the subscription is being dropped).
    let got = p.loaded(Ok(Vec::new()));
    assert!(got.entries.is_empty());
    assert_eq!((p.disk_from(), p.on_disk()), (None, 0));
    assert_eq!(p.refill(), None, "no read loop");
    p.close();
}

#[test]
fn an_event_larger_than_the_window_still_moves() {
    let mut p = Pager::new(1, limits(1));
    assert_eq!(p.admit(1, 4096), Admit::Memory, "an empty window takes one");
    assert_eq!(p.admit(2, 4096), Admit::Disk);
    p.left(4096);
    let (_, page) = p.refill().unwrap();
    assert!(page.bytes >= 1);
    let got = p.loaded(Ok(vec![queued(2, 4096)]));
    assert_eq!(got.entries.len(), 1);
    p.close();
}

/// A namespace subscription's defaults.
fn settings() -> QueueSettings {
    QueueSettings {
        lock_secs: 60,
        max_delivery_count: 10,
        ttl_secs: 86_400,
        dead_letter: false,
    }
}

fn event(seq: u64) -> Bytes {
    let mut v = format!("{{\"id\":\"{seq}\",\"pad\":\"").into_bytes();
    v.resize(1000, b'x');
    v.extend_from_slice(b"\"}");
    Bytes::from(v)
}

async fn receive(
    q: &actix::Addr<QueueSub>,
    max: usize,
) -> Vec<crate::delivery::queue::LockedEvent> {
    let (tx, rx) = oneshot::channel();
    q.send(Receive {
        max,
        wait: Duration::from_secs(2),
        reply: tx,
    })
    .await
    .unwrap();
    rx.await.unwrap()
}

async fn settle(q: &actix::Addr<QueueSub>, action: Action, tokens: Vec<String>) {
    let r = q.send(Settle { action, tokens }).await.unwrap().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
}

fn id(e: &Bytes) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(e).unwrap();
    v["id"].as_str().unwrap().parse().unwrap()
}

/// A backlog 30 times the window, appended while consumers drain it (the topic commits, then
/// appends, as in production), then half of it again after a restart: every event is received
/// once, in order, with releases and lock rules intact across the window's edge.
fn drain_in_order(store: Arc<dyn crate::store::Store>) {
    const N: u64 = 600;
    let sys = actix::System::new();
    let writer = Writer::start(store.clone());
    let mut acked = std::collections::BTreeSet::new();
    sys.block_on(async {
        let head = Pager::open(9, limits(20), &*store).unwrap();
        let q = QueueSub::new(
            9,
            settings(),
            writer.clone(),
            Duration::from_millis(20),
            head,
            0,
        )
        .start();
        for chunk in (1..=N).collect::<Vec<_>>().chunks(50) {
            let ops: Vec<Op> = chunk
                .iter()
                .map(|&seq| Op::Enqueue {
                    sub: 9,
                    seq,
                    publish_ms: now_ms(),
                    body: event(seq),
                })
                .collect();
            writer.submit(ops).await.unwrap();
            q.do_send(QueueAppend(
                chunk.iter().map(|&s| (s, now_ms(), event(s))).collect(),
            ));
        }
        // First deliveries come in sequence order; one batch is released once and comes back
        // counted (after what was already lined up, as a release without delay does).
        let mut next = 1;
        let mut released: Option<Vec<u64>> = None;
        while acked.len() < (N / 2) as usize {
            let got = receive(&q, 16).await;
            assert!(!got.is_empty(), "stalled at {next}");
            let (mut ack, mut rel) = (Vec::new(), Vec::new());
            for e in &got {
                let i = id(&e.event);
                if e.delivery_count == 1 {
                    assert_eq!(i, next, "out of order");
                    next += 1;
                } else {
                    assert_eq!(e.delivery_count, 2);
                    assert!(released.as_ref().is_some_and(|r| r.contains(&i)), "{i}");
                }
                if released.is_none() && next > 100 && e.delivery_count == 1 {
                    rel.push((i, e.token.clone()));
                } else {
                    acked.insert(i);
                    ack.push(e.token.clone());
                }
            }
            if !rel.is_empty() {
                released = Some(rel.iter().map(|r| r.0).collect());
                let tokens = rel.into_iter().map(|r| r.1).collect();
                settle(&q, Action::Release { delay_secs: 0 }, tokens).await;
            }
            if !ack.is_empty() {
                settle(&q, Action::Acknowledge, ack).await;
            }
        }
        let released = released.expect("a batch was released");
        assert!(
            released.iter().all(|i| acked.contains(i)),
            "released ones came back"
        );
        q.do_send(crate::lifecycle::Shutdown);
    });
    // The restart: the rest comes back from the store, a window at a time, in order.
    assert_eq!(store.queue_last(9).unwrap(), N);
    sys.block_on(async {
        let (p, head) = Pager::open(9, limits(20), &*store).unwrap();
        assert!(
            head.len() < 25,
            "one window is read at start-up, not {}",
            head.len()
        );
        assert_eq!(p.disk_from(), Some(head.last().unwrap().seq + 1));
        let q = QueueSub::new(
            9,
            settings(),
            writer.clone(),
            Duration::from_millis(20),
            (p, head),
            0,
        )
        .start();
        let mut rest = (1..=N).filter(|i| !acked.contains(i));
        let mut left = N as usize - acked.len();
        while left > 0 {
            let got = receive(&q, 7).await;
            assert!(!got.is_empty(), "stalled with {left} left");
            for e in &got {
                assert_eq!(
                    Some(id(&e.event)),
                    rest.next(),
                    "out of order after the restart"
                );
                assert_eq!(e.delivery_count, 1);
                left -= 1;
            }
            settle(
                &q,
                Action::Acknowledge,
                got.iter().map(|e| e.token.clone()).collect(),
            )
            .await;
        }
        assert!(receive(&q, 1).await.is_empty(), "nothing twice");
        q.do_send(crate::lifecycle::Shutdown);
    });
    assert!(store.queue(9).unwrap().is_empty());
}

#[test]
fn a_backlog_larger_than_the_window_drains_in_order_across_a_restart_memory() {
    drain_in_order(Arc::new(MemStore::new()));
}

#[test]
fn a_backlog_larger_than_the_window_drains_in_order_across_a_restart_redb() {
    let dir = std::env::temp_dir().join(format!("evgrid-backlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    drain_in_order(Arc::new(RedbStore::open(&dir.join("store.redb")).unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}
