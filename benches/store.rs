//! The durable store (`evgrid_actors::store`) on a temp dir, 1 KiB event bodies:
//!
//! - `store_commit/enqueue/N`: one `RedbStore::commit` of N `Op::Enqueue` (durable: redb's
//!   immediate durability, one fsync per commit).
//! - `group_commit/enqueue_batch100/P`: P concurrent submitters, each sending batches of 100
//!   enqueues through `Writer::submit` and waiting for each to be durable before the next; the
//!   writer folds everything queued during a commit into the next one. This is the raw
//!   group-commit ceiling a publish path on top of the store can reach. `group_commit_mem` is the
//!   same through a `MemStore` (no disk): the cost of the writer and channels alone.
//! - `receive_ack_cycle/batch100`: what a receive + acknowledge costs the store: commit 100
//!   enqueues, then commit the 100 `Op::Remove`s as acks do (receiving itself writes nothing).
//!   `receive_ack_cycle_writer/8` runs 8 such cycles concurrently through the writer.
//!
//! Entries enqueued by a timed iteration are removed afterwards, untimed, so the file stays
//! small and every sample sees the same (nearly empty) queue table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use evgrid_actors::metrics::METRICS;
use evgrid_actors::store::mem::MemStore;
use evgrid_actors::store::redb::RedbStore;
use evgrid_actors::store::{Op, Store, Writer};
use ntex_bytes::Bytes;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: usize = 1024;

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("evgrid-bench-store-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create the bench's temp dir");
        TempDir(p)
    }

    fn open(&self) -> RedbStore {
        RedbStore::open(&self.0.join("store.redb")).expect("open the redb store")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn body() -> Bytes {
    // an event-like JSON body of exactly BODY bytes
    let mut s =
        String::from(r#"{"specversion":"1.0","id":"x","source":"/bench","type":"t","data":""#);
    while s.len() < BODY - 2 {
        s.push('a');
    }
    s.push_str("\"}");
    Bytes::from(s.into_bytes())
}

fn enqueues(sub: u64, first_seq: u64, n: usize, body: &Bytes) -> Vec<Op> {
    (0..n as u64)
        .map(|i| Op::Enqueue {
            sub,
            seq: first_seq + i,
            publish_ms: 1_700_000_000_000,
            body: body.clone(),
        })
        .collect()
}

fn removes(sub: u64, first_seq: u64, n: usize) -> Vec<Op> {
    (0..n as u64)
        .map(|i| Op::Remove {
            sub,
            seq: first_seq + i,
        })
        .collect()
}

/// The writer's commit counters, to print how many ops a commit took on average.
struct CommitStats(u64, u64, u64);

impl CommitStats {
    fn now() -> CommitStats {
        CommitStats(
            METRICS.store_commits.get(),
            METRICS.store_ops.get(),
            METRICS.store_commit.sum_us(),
        )
    }

    fn print_since(&self, name: &str) {
        let n = CommitStats::now();
        let commits = (n.0 - self.0).max(1);
        println!(
            "{name}: {} commits, {:.0} ops and {:.0} µs per commit on average (warm-up included)",
            n.0 - self.0,
            (n.1 - self.1) as f64 / commits as f64,
            (n.2 - self.2) as f64 / commits as f64
        );
    }
}

fn configure(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
}

/// 1. One durable commit of N enqueues.
fn store_commit(c: &mut Criterion) {
    let dir = TempDir::new("commit");
    let store = dir.open();
    let body = body();
    let mut seq = 0u64;
    let mut g = c.benchmark_group("store_commit");
    configure(&mut g);
    for n in [100usize, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("enqueue/{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let ops = enqueues(1, seq, n, &body);
                    let start = Instant::now();
                    store.commit(&ops).expect("commit");
                    total += start.elapsed();
                    store.commit(&removes(1, seq, n)).expect("clean up");
                    seq += n as u64;
                }
                total
            })
        });
    }
    g.finish();
}

/// P submitters sharing `iters` batches of 100 through `writer`; returns the wall time. Each
/// submitter enqueues under its own subscription key `base + p`.
fn submit_all(
    rt: &tokio::runtime::Runtime,
    writer: &Writer,
    p: usize,
    iters: u64,
    base: u64,
    body: &Bytes,
    next_seq: &Arc<AtomicU64>,
) -> Duration {
    let left = Arc::new(AtomicU64::new(iters));
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..p)
            .map(|i| {
                let (writer, left, body, next_seq) =
                    (writer.clone(), left.clone(), body.clone(), next_seq.clone());
                tokio::spawn(async move {
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let seq = next_seq.fetch_add(100, Ordering::Relaxed);
                        let ops = enqueues(base + i as u64, seq, 100, &body);
                        writer.submit(ops).await.expect("submit");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("submitter task");
        }
        start.elapsed()
    })
}

/// Drops what `submit_all` left under keys `base..base + p` (untimed).
fn drop_subs(rt: &tokio::runtime::Runtime, writer: &Writer, p: usize, base: u64) {
    let ops = (0..p as u64)
        .map(|i| Op::DropSubscription { sub: base + i })
        .collect();
    rt.block_on(writer.submit(ops)).expect("clean up");
}

/// 2. Group commit through the writer, P concurrent submitters of 100-event batches.
fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = body();
    let next_seq = Arc::new(AtomicU64::new(0));

    let dir = TempDir::new("group");
    let writer = Writer::start(Arc::new(dir.open()));
    let mut g = c.benchmark_group("group_commit");
    configure(&mut g);
    g.throughput(Throughput::Elements(100));
    for p in [1usize, 8, 64] {
        let name = format!("enqueue_batch100/{p}");
        let before = CommitStats::now();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let t = submit_all(&rt, &writer, p, iters, 100, &body, &next_seq);
                drop_subs(&rt, &writer, p, 100);
                t
            })
        });
        before.print_since(&format!("group_commit/{name}"));
    }
    g.finish();
    drop(writer);

    let writer = Writer::start(Arc::new(MemStore::new()));
    let mut g = c.benchmark_group("group_commit_mem");
    configure(&mut g);
    g.throughput(Throughput::Elements(100));
    g.bench_function("enqueue_batch100/8", |b| {
        b.iter_custom(|iters| {
            let t = submit_all(&rt, &writer, 8, iters, 100, &body, &next_seq);
            drop_subs(&rt, &writer, 8, 100);
            t
        })
    });
    g.finish();
}

/// 3. The store's share of a receive + acknowledge of 100 events.
fn receive_ack(c: &mut Criterion) {
    let dir = TempDir::new("cycle");
    let store = Arc::new(dir.open());
    let body = body();
    let mut seq = 0u64;
    let mut g = c.benchmark_group("receive_ack_cycle");
    configure(&mut g);
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch100", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let enq = enqueues(1, seq, 100, &body);
                let start = Instant::now();
                store.commit(&enq).expect("enqueue");
                store.commit(&removes(1, seq, 100)).expect("acknowledge");
                total += start.elapsed();
                seq += 100;
            }
            total
        })
    });
    g.finish();

    // 8 cycles at a time through the writer: enqueues and acks of different cycles share commits
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let writer = Writer::start(store);
    let next_seq = Arc::new(AtomicU64::new(seq));
    let mut g = c.benchmark_group("receive_ack_cycle_writer");
    configure(&mut g);
    g.throughput(Throughput::Elements(100));
    let before = CommitStats::now();
    g.bench_function("8", |b| {
        b.iter_custom(|iters| {
            let left = Arc::new(AtomicU64::new(iters));
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..8u64)
                    .map(|i| {
                        let (writer, left, body, next_seq) =
                            (writer.clone(), left.clone(), body.clone(), next_seq.clone());
                        tokio::spawn(async move {
                            while left
                                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok()
                            {
                                let seq = next_seq.fetch_add(100, Ordering::Relaxed);
                                let sub = 10 + i;
                                writer
                                    .submit(enqueues(sub, seq, 100, &body))
                                    .await
                                    .expect("enqueue");
                                writer
                                    .submit(removes(sub, seq, 100))
                                    .await
                                    .expect("acknowledge");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("cycle task");
                }
                start.elapsed()
            })
        })
    });
    before.print_since("receive_ack_cycle_writer/8");
    g.finish();
}

criterion_group!(benches, store_commit, group_commit, receive_ack);
criterion_main!(benches);
