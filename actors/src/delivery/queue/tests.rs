use super::token::{parse_token, token};
use super::*;

#[test]
fn tokens_round_trip_and_reject_garbage() {
    let t = token(42, 0xdead_beef_0123_4567);
    assert_eq!(t.len(), 22);
    assert_eq!(parse_token(&t), Some((42, 0xdead_beef_0123_4567)));
    for bad in [
        "",
        "x",
        "not-a-token-at-all!!!!",
        &"A".repeat(23),
        "CgMKATESCQoHdG9rZW4tMQ==",
    ] {
        assert_eq!(parse_token(bad), None, "{bad}");
    }
}

/// A store whose commits fail while `fail` is set.
struct Flaky {
    inner: crate::store::mem::MemStore,
    fail: std::sync::atomic::AtomicBool,
}

impl crate::store::Store for Flaky {
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Io("disk full".into()));
        }
        self.inner.commit(ops)
    }
    fn resources(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.resources()
    }
    fn queue_page(
        &self,
        sub: u64,
        from: u64,
        page: crate::store::Page,
    ) -> Result<Vec<Queued>, StoreError> {
        self.inner.queue_page(sub, from, page)
    }
    fn queue_extent(&self, sub: u64, from: u64) -> Result<(u64, u64), StoreError> {
        self.inner.queue_extent(sub, from)
    }
    fn queue_last(&self, sub: u64) -> Result<u64, StoreError> {
        self.inner.queue_last(sub)
    }
    fn subscription_keys(&self) -> Result<Vec<u64>, StoreError> {
        self.inner.subscription_keys()
    }
    fn dead_letters(&self, s: u64, a: u64, l: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.dead_letters(s, a, l)
    }
    fn last_dead_letter(&self, sub: u64) -> Result<u64, StoreError> {
        self.inner.last_dead_letter(sub)
    }
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(key)
    }
    fn mqtt_entries(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.mqtt_entries(prefix)
    }
}

#[test]
fn a_settlement_whose_commit_fails_leaves_the_event_deliverable() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = std::sync::Arc::new(Flaky {
        inner: crate::store::mem::MemStore::new(),
        fail: false.into(),
    });
    crate::store::Store::commit(
        &store.inner,
        &[Op::Enqueue {
            sub: 7,
            seq: 1,
            publish_ms: now_ms(),
            body: Bytes::from_static(b"{\"id\":\"a\"}"),
        }],
    )
    .unwrap();
    let writer = Writer::start(store.clone());
    actix::System::new().block_on(async move {
        // A namespace subscription's defaults.
        let cfg = QueueSettings {
            lock_secs: 60,
            max_delivery_count: 10,
            ttl_secs: 86_400,
            dead_letter: false,
        };
        let head = Pager::open(7, Default::default(), &*store).unwrap();
        let q = QueueSub::new(7, cfg, writer, Duration::from_millis(50), head, 0).start();
        let receive = || async {
            let (tx, rx) = oneshot::channel();
            q.send(Receive {
                max: 10,
                wait: Duration::from_secs(1),
                reply: tx,
            })
            .await
            .unwrap();
            rx.await.unwrap()
        };
        let got = receive().await;
        assert_eq!(got.len(), 1);
        for action in [Action::Acknowledge, Action::Reject] {
            let got = if action == Action::Acknowledge {
                got.clone()
            } else {
                receive().await
            };
            store.fail.store(true, SeqCst);
            let r = q
                .send(Settle {
                    action,
                    tokens: vec![got[0].token.clone()],
                })
                .await
                .unwrap();
            assert!(r.is_err(), "{action:?}: the failed commit is reported");
            store.fail.store(false, SeqCst);
            let again = receive().await;
            assert_eq!(again.len(), 1, "{action:?}: still deliverable");
            assert_eq!(&again[0].event[..], b"{\"id\":\"a\"}");
            assert_eq!(again[0].delivery_count, got[0].delivery_count + 1);
            // Put it back for the next round: release it.
            q.send(Settle {
                action: Action::Release { delay_secs: 0 },
                tokens: vec![again[0].token.clone()],
            })
            .await
            .unwrap()
            .unwrap();
        }
        assert_eq!(
            crate::store::Store::queue(&*store, 7).unwrap().len(),
            1,
            "the store kept it throughout"
        );
    });
}
