//! One suite, run against every backend (memory, redb, the queue log): what one stores the
//! others must store alike.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ntex_bytes::Bytes;

use super::mem::MemStore;
use super::redb::RedbStore;
use super::*;

pub(super) struct Dir(pub(super) std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
pub(super) fn dir(tag: &str) -> Dir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "evgrid-store-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

/// Runs `f` against a fresh memory store, a fresh redb store and a fresh queue log (with
/// small segments, so the suite crosses segment boundaries).
fn both(tag: &str, f: impl Fn(&dyn Store)) {
    f(&MemStore::new());
    let d = dir(tag);
    f(&RedbStore::open(&d.0.join("store.redb")).unwrap());
    let d = dir(tag);
    f(&super::log::LogStore::open_with(&d.0, 4096).unwrap());
}

fn enq(sub: u64, seq: u64, body: &'static str) -> Op {
    Op::Enqueue {
        sub,
        seq,
        publish_ms: 1000 + seq,
        body: Bytes::from_static(body.as_bytes()),
    }
}

#[test]
fn resources_put_replace_delete() {
    both("res", |s| {
        s.commit(&[
            Op::PutResource {
                path: "namespaces/a".into(),
                json: b"{1}".to_vec(),
            },
            Op::PutResource {
                path: "namespaces/b".into(),
                json: b"{2}".to_vec(),
            },
        ])
        .unwrap();
        s.commit(&[
            Op::PutResource {
                path: "namespaces/a".into(),
                json: b"{3}".to_vec(),
            },
            Op::DeleteResource {
                path: "namespaces/b".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            s.resources().unwrap(),
            vec![("namespaces/a".to_string(), b"{3}".to_vec())]
        );
    });
}

#[test]
fn queue_enqueue_state_remove() {
    both("queue", |s| {
        s.commit(&[
            enq(1, 1, "a"),
            enq(1, 2, "b"),
            enq(2, 1, "c"),
            enq(1, 3, "d"),
        ])
        .unwrap();
        let st = EntryState {
            delivery_count: 2,
            available_at_ms: 99,
        };
        s.commit(&[
            Op::SetState {
                sub: 1,
                seq: 2,
                state: st,
            },
            Op::Remove { sub: 1, seq: 1 },
            // State for an entry that is not there is ignored, not kept as an orphan.
            Op::SetState {
                sub: 1,
                seq: 77,
                state: st,
            },
        ])
        .unwrap();
        let q = s.queue(1).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!((q[0].seq, &q[0].body[..], q[0].state), (2, &b"b"[..], st));
        assert_eq!(q[0].publish_ms, 1002);
        assert_eq!((q[1].seq, q[1].state), (3, EntryState::default()));
        assert_eq!(s.queue(2).unwrap().len(), 1);
        assert_eq!(s.subscription_keys().unwrap(), vec![1, 2]);
        // Removing drops the state row too; a later state for it is ignored.
        s.commit(&[Op::Remove { sub: 1, seq: 2 }]).unwrap();
        s.commit(&[Op::SetState {
            sub: 1,
            seq: 2,
            state: st,
        }])
        .unwrap();
        let q = s.queue(1).unwrap();
        assert_eq!(
            (q.len(), q[0].seq, q[0].state),
            (1, 3, EntryState::default())
        );
        assert!(s.queue_last(1).unwrap() >= 3);
    });
}

#[test]
fn queue_pages_by_count_and_bytes_with_their_state() {
    both("pages", |s| {
        let mut ops: Vec<Op> = (1..=10).map(|q| enq(5, q, "0123456789")).collect();
        ops.push(enq(4, 1, "other"));
        ops.push(enq(6, 99, "other"));
        for (seq, count) in [(3, 2), (8, 5)] {
            ops.push(Op::SetState {
                sub: 5,
                seq,
                state: EntryState {
                    delivery_count: count,
                    available_at_ms: 7,
                },
            });
        }
        s.commit(&ops).unwrap();
        let page = |from, entries, bytes| {
            s.queue_page(5, from, Page { entries, bytes })
                .unwrap()
                .iter()
                .map(|q| (q.seq, q.state.delivery_count))
                .collect::<Vec<_>>()
        };
        assert_eq!(page(2, 4, usize::MAX), [(2, 0), (3, 2), (4, 0), (5, 0)]);
        // Stops after the entry that reaches the byte bound; always one entry.
        assert_eq!(page(6, 100, 25), [(6, 0), (7, 0), (8, 5)]);
        assert_eq!(page(9, 100, 1), [(9, 0)]);
        assert_eq!(page(10, 100, 0), [(10, 0)]);
        assert_eq!(page(11, 100, usize::MAX), []);
        assert_eq!(s.queue(5).unwrap().len(), 10);
        assert_eq!(s.queue_extent(5, 4).unwrap(), (7, 10));
        assert_eq!(s.queue_extent(5, 11).unwrap(), (0, 10));
        assert_eq!(s.queue_extent(7, 0).unwrap(), (0, 0));
        assert_eq!(s.queue_last(5).unwrap(), 10);
        assert_eq!(s.queue_last(7).unwrap(), 0);
    });
}

#[test]
fn mqtt_entries_by_prefix() {
    both("mqtt", |s| {
        let put = |k: &str| Op::PutMqtt {
            key: k.into(),
            value: k.as_bytes().to_vec(),
        };
        s.commit(&[
            put("retained/a"),
            put("sub/01/x"),
            put("sub/01/y"),
            put("sub/02/x"),
            put("t"),
        ])
        .unwrap();
        let keys = |p: &str| {
            s.mqtt_entries(p)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys("sub/"), ["sub/01/x", "sub/01/y", "sub/02/x"]);
        s.commit(&[
            Op::DeleteMqttPrefix {
                prefix: "sub/01/".into(),
            },
            Op::DeleteMqtt {
                key: "retained/a".into(),
            },
        ])
        .unwrap();
        assert_eq!(keys("sub/"), ["sub/02/x"]);
        assert_eq!(keys(""), ["sub/02/x", "t"]);
    });
}

#[test]
fn dead_letters_and_drop_subscription() {
    both("dead", |s| {
        s.commit(&[enq(5, 1, "a"), enq(5, 2, "b"), enq(6, 1, "c")])
            .unwrap();
        s.commit(&[
            Op::DeadLetter {
                sub: 5,
                seq: 1,
                dl_seq: 1,
                record: b"r1".to_vec(),
            },
            Op::DeadLetter {
                sub: 5,
                seq: 2,
                dl_seq: 2,
                record: b"r2".to_vec(),
            },
        ])
        .unwrap();
        assert!(s.queue(5).unwrap().is_empty());
        assert_eq!(s.last_dead_letter(5).unwrap(), 2);
        assert_eq!(s.last_dead_letter(6).unwrap(), 0);
        assert_eq!(
            s.dead_letters(5, 0, 10).unwrap(),
            vec![(1, b"r1".to_vec()), (2, b"r2".to_vec())]
        );
        assert_eq!(s.dead_letters(5, 1, 10).unwrap(), vec![(2, b"r2".to_vec())]);
        assert_eq!(s.dead_letters(5, 0, 1).unwrap().len(), 1);
        s.commit(&[Op::DropSubscription { sub: 5 }]).unwrap();
        assert!(s.dead_letters(5, 0, 10).unwrap().is_empty());
        assert_eq!(s.subscription_keys().unwrap(), vec![6]);
    });
}

#[test]
fn a_refused_batch_applies_nothing() {
    both("atomic", |s| {
        let huge = Bytes::from(vec![b'x'; super::redb::MAX_VALUE + 1]);
        let err = s
            .commit(&[
                enq(1, 1, "a"),
                Op::Enqueue {
                    sub: 1,
                    seq: 2,
                    publish_ms: 0,
                    body: huge,
                },
            ])
            .unwrap_err();
        assert!(matches!(err, StoreError::Refused(_)), "{err}");
        assert!(s.queue(1).unwrap().is_empty());
    });
}

#[test]
fn redb_survives_reopen_and_refuses_foreign_files() {
    let d = dir("reopen");
    let p = d.0.join("store.redb");
    {
        let s = RedbStore::open(&p).unwrap();
        s.commit(&[enq(1, 1, "kept")]).unwrap();
    }
    let s = RedbStore::open(&p).unwrap();
    assert_eq!(&s.queue(1).unwrap()[0].body[..], b"kept");
    drop(s);

    let junk = d.0.join("junk.redb");
    std::fs::write(&junk, b"this is not a database at all, just some text").unwrap();
    let err = RedbStore::open(&junk).err().expect("refused");
    assert!(err.to_string().contains("junk.redb"), "{err}");
    // Not emptied, not rewritten.
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        b"this is not a database at all, just some text"
    );

    // A redb database of somebody else's: refused, left alone.
    let other = d.0.join("other.redb");
    {
        let db = ::redb::Database::create(&other).unwrap();
        let t = db.begin_write().unwrap();
        {
            let def: ::redb::TableDefinition<&str, u64> = ::redb::TableDefinition::new("x");
            t.open_table(def).unwrap().insert("k", 1).unwrap();
        }
        t.commit().unwrap();
    }
    let err = RedbStore::open(&other).err().expect("refused");
    assert!(err.to_string().contains("not an evgrid store"), "{err}");
}

#[test]
fn writer_group_commits_concurrent_batches() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let w = Writer::start(store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let futs: Vec<_> = (0..200u64)
            .map(|i| w.submit(vec![enq(9, i, "x")]))
            .collect();
        for f in futs {
            f.await.unwrap();
        }
    });
    assert_eq!(store.queue(9).unwrap().len(), 200);
    // A failed commit fails every batch that shared it, and none of them is applied.
    let huge = Bytes::from(vec![b'x'; super::redb::MAX_VALUE + 1]);
    let res = rt.block_on(w.submit(vec![
        enq(10, 1, "a"),
        Op::Enqueue {
            sub: 10,
            seq: 2,
            publish_ms: 0,
            body: huge,
        },
    ]));
    assert!(res.is_err());
    assert!(store.queue(10).unwrap().is_empty());
}

/// redb's file backend with writes, syncs and resizes that fail with ENOSPC while `fail` is
/// set: a disk that fills up and is freed again.
#[derive(Debug)]
pub(super) struct FailingWrites {
    inner: ::redb::backends::FileBackend,
    fail: Arc<AtomicBool>,
}

impl FailingWrites {
    pub(super) fn new(inner: ::redb::backends::FileBackend, fail: Arc<AtomicBool>) -> Self {
        FailingWrites { inner, fail }
    }

    fn check(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            // ENOSPC, as a full disk answers.
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
}

impl ::redb::StorageBackend for FailingWrites {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    // The file's locks, so that a reopen finds it closed exactly as with the plain backend.
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, ::redb::BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(
        &self,
        s: Bound<u64>,
        e: Bound<u64>,
    ) -> Result<bool, ::redb::BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), ::redb::BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), ::redb::BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), ::redb::BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, ::redb::BackendError> {
        self.inner.query_lock_range(s, e)
    }
}

/// A full disk: the commit that hits it fails with the I/O error, later batches are refused
/// without touching the disk while it stays full, and once it is freed the writer recovers on
/// its own (no restart, no request needed) and commits again; what was committed before the
/// failure is all there, what failed is not. Before the writer recovered, redb answered
/// "Previous I/O error occurred" to every later commit until the process restarted.
#[test]
fn redb_writer_recovers_from_a_full_disk_without_losing_committed_data() {
    let d = dir("full");
    let p = d.0.join("store.redb");
    let fail = Arc::new(AtomicBool::new(false));
    let store: Arc<dyn Store> = Arc::new(
        RedbStore::open(&p)
            .unwrap()
            .with_failing_writes(fail.clone())
            .unwrap(),
    );
    let w = Writer::start(store.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let res = |path: &str| Op::PutResource {
        path: path.into(),
        json: b"{}".to_vec(),
    };
    rt.block_on(w.submit(vec![enq(1, 1, "before"), res("namespaces/kept")]))
        .unwrap();
    assert_eq!(w.health(), Ok(()));

    fail.store(true, Ordering::SeqCst);
    let err = rt
        .block_on(w.submit(vec![enq(1, 2, "failed"), res("namespaces/failed")]))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Io(m) if m.contains("No space left on device")),
        "{err}"
    );
    let broken = w.health().unwrap_err();
    assert!(broken.contains("No space left on device"), "{broken}");
    // Still full through several recovery attempts: refused at once, and still unhealthy.
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let err = rt
        .block_on(w.submit(vec![enq(1, 3, "refused")]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert!(w.health().is_err());

    // Space freed: readiness comes back without any request.
    fail.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(15);
    while w.health().is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(w.submit(vec![enq(1, 4, "after"), Op::Remove { sub: 1, seq: 1 }]))
        .unwrap();
    let bodies = |s: &dyn Store| -> Vec<(u64, Vec<u8>)> {
        s.queue(1)
            .unwrap()
            .into_iter()
            .map(|q| (q.seq, q.body.to_vec()))
            .collect()
    };
    assert_eq!(bodies(&*store), vec![(4, b"after".to_vec())]);
    let paths = |s: &dyn Store| -> Vec<String> {
        s.resources().unwrap().into_iter().map(|(p, _)| p).collect()
    };
    assert_eq!(paths(&*store), ["namespaces/kept"]);
    // And the same from the file after a restart.
    drop(w);
    drop(store);
    // The writer thread lets go of its handle once it sees the channel closed.
    let reopened = loop {
        match RedbStore::open(&p) {
            Err(e) if e.to_string().contains("in use") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => break r.unwrap(),
        }
    };
    assert_eq!(bodies(&reopened), vec![(4, b"after".to_vec())]);
    assert_eq!(paths(&reopened), ["namespaces/kept"]);
}

#[test]
fn redb_refuses_an_empty_or_truncated_file_and_creates_new_stores_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir("empty");
    let p = d.0.join("store.redb");
    std::fs::write(&p, b"").unwrap();
    let err = RedbStore::open(&p).err().expect("refused");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("store.redb") && msg.contains("empty"), "{msg}");
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0, "left as it was");

    // A store cut short (a copy that stopped part way): refused too, not repaired into less.
    let cut = d.0.join("cut.redb");
    {
        let s = RedbStore::open(&cut).unwrap();
        let big: Vec<Op> = (0..200)
            .map(|i| Op::Enqueue {
                sub: 1,
                seq: i,
                publish_ms: 0,
                body: Bytes::from(vec![b'x'; 4096]),
            })
            .collect();
        s.commit(&big).unwrap();
    }
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = RedbStore::open(&cut).err().expect("refused");
    assert!(matches!(err, StoreError::Refused(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("cut.redb") && msg.contains("damaged"), "{msg}");
    assert_eq!(std::fs::metadata(&cut).unwrap().len(), len / 2);

    let fresh = d.0.join("fresh.redb");
    drop(RedbStore::open(&fresh).unwrap());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert!(!d.0.join("fresh.redb.new").exists());
    // An existing store others can read is narrowed at open.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(RedbStore::open(&fresh).unwrap());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
}
