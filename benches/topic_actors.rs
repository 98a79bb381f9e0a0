//! Why MQTT topics are routed by sharded router actors and not one actor per topic.
//!
//! The design card asks for an actor per MQTT client session, topic and subscription. Sessions
//! are actors; MQTT topics go through a fixed number of routing shards holding a trie instead.
//! This bench measures the two shapes side by side on the case a device fleet produces — fan-in,
//! where each device publishes to its own topic (`devices/{id}/telemetry`) and one consumer
//! subscribes to all of them — with the same actix mailboxes and the same batching evgrid uses
//! (one mailbox message per batch, never per message):
//!
//! - `per_topic`: one actor per topic. A publisher's batch of 100 messages over 100 topics becomes
//!   100 mailbox messages, one per topic actor, and each forwards its share to the subscriber.
//! - `sharded`: one routing shard (evgrid's default, `mqtt.router_shards = 1`) or two, each owning
//!   the topics hashed to it. The same batch becomes one mailbox message per shard, and each shard
//!   forwards one batch to the subscriber.
//!
//! It also prints what an idle topic actor costs in memory (RSS growth over 100,000 of them), the
//! price a fleet of a million devices would pay before sending anything. Self-contained: it
//! models the two shapes with bare actors, so it measures mailbox and actor costs, not evgrid's
//! matching code (that is `topic_match` and `publish_path`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOPICS: usize = 100;
const BATCH: usize = 100;

struct Msg {
    topic: Arc<str>,
    _payload: [u8; 64],
}

#[derive(Message)]
#[rtype(result = "()")]
struct Batch(Vec<Arc<Msg>>);

/// The subscriber: counts what arrives and reports when a target is reached.
struct Sink {
    seen: usize,
    target: usize,
    done: mpsc::Sender<()>,
}
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<Batch> for Sink {
    type Result = ();
    fn handle(&mut self, b: Batch, _: &mut Context<Self>) {
        self.seen += b.0.len();
        if self.seen >= self.target {
            self.seen -= self.target;
            let _ = self.done.send(());
        }
    }
}

/// One actor per topic, with its subscribers.
struct Topic {
    subs: Vec<Addr<Sink>>,
}
impl Actor for Topic {
    type Context = Context<Self>;
}
impl Handler<Batch> for Topic {
    type Result = ();
    fn handle(&mut self, b: Batch, _: &mut Context<Self>) {
        for s in &self.subs {
            s.do_send(Batch(b.0.clone()));
        }
    }
}

/// A routing shard: the topics hashed to it, each with its subscribers.
struct Shard {
    subs: HashMap<Arc<str>, Vec<Addr<Sink>>>,
}
impl Actor for Shard {
    type Context = Context<Self>;
}
impl Handler<Batch> for Shard {
    type Result = ();
    fn handle(&mut self, b: Batch, _: &mut Context<Self>) {
        // Group per subscriber: one mailbox message per subscriber per batch.
        let mut out: Vec<(Addr<Sink>, Vec<Arc<Msg>>)> = Vec::new();
        for m in b.0 {
            for s in self.subs.get(&m.topic).into_iter().flatten() {
                match out.iter_mut().find(|(a, _)| a == s) {
                    Some((_, v)) => v.push(m.clone()),
                    None => out.push((s.clone(), vec![m.clone()])),
                }
            }
        }
        for (a, v) in out {
            a.do_send(Batch(v));
        }
    }
}

fn topics() -> Vec<Arc<str>> {
    (0..TOPICS)
        .map(|i| Arc::from(format!("devices/{i}/telemetry")))
        .collect()
}

fn batch(topics: &[Arc<str>]) -> Vec<Arc<Msg>> {
    (0..BATCH)
        .map(|i| {
            Arc::new(Msg {
                topic: topics[i % topics.len()].clone(),
                _payload: [7; 64],
            })
        })
        .collect()
}

fn shard_of(topic: &str, shards: usize) -> usize {
    use std::hash::BuildHasher;
    (std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(topic)
        % shards as u64) as usize
}

/// Routes `iters` batches and waits until the subscriber has seen them all.
fn timed(
    iters: u64,
    route: &dyn Fn(Vec<Arc<Msg>>),
    ts: &[Arc<str>],
    done: &mpsc::Receiver<()>,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        route(batch(ts));
    }
    for _ in 0..iters {
        done.recv().expect("sink alive");
    }
    start.elapsed()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn bench(c: &mut Criterion) {
    let sys = actix::System::new();
    let arbs: Vec<Arbiter> = (0..2).map(|_| Arbiter::new()).collect();
    let ts = topics();
    let (done_tx, done) = mpsc::channel();
    let sink_arb = arbs[0].handle();
    let sink = sys.block_on(async move {
        Sink::start_in_arbiter(&sink_arb, move |_| Sink {
            seen: 0,
            target: BATCH,
            done: done_tx,
        })
    });

    let mut g = c.benchmark_group("topic_actors");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.measurement_time(Duration::from_secs(5));

    let per_topic: HashMap<Arc<str>, Addr<Topic>> = sys.block_on(async {
        ts.iter()
            .enumerate()
            .map(|(i, t)| {
                let subs = vec![sink.clone()];
                let a = Topic::start_in_arbiter(&arbs[i % 2].handle(), move |_| Topic { subs });
                (t.clone(), a)
            })
            .collect()
    });
    let route_per_topic = |b: Vec<Arc<Msg>>| {
        let mut per: HashMap<Arc<str>, Vec<Arc<Msg>>> = HashMap::new();
        for m in b {
            per.entry(m.topic.clone()).or_default().push(m);
        }
        for (t, v) in per {
            per_topic[&t].do_send(Batch(v));
        }
    };
    g.bench_function("per_topic_100_topics", |b| {
        b.iter_custom(|iters| timed(iters, &route_per_topic, &ts, &done))
    });

    for n in [1usize, 2] {
        let shards: Vec<Addr<Shard>> = sys.block_on(async {
            (0..n)
                .map(|s| {
                    let subs = ts
                        .iter()
                        .filter(|t| shard_of(t, n) == s)
                        .map(|t| (t.clone(), vec![sink.clone()]))
                        .collect();
                    Shard::start_in_arbiter(&arbs[s % 2].handle(), move |_| Shard { subs })
                })
                .collect()
        });
        let route_sharded = |b: Vec<Arc<Msg>>| {
            let mut per: Vec<Vec<Arc<Msg>>> = vec![Vec::new(); n];
            for m in b {
                per[shard_of(&m.topic, n)].push(m);
            }
            for (s, v) in per.into_iter().enumerate() {
                if !v.is_empty() {
                    shards[s].do_send(Batch(v));
                }
            }
        };
        g.bench_function(format!("sharded_{n}_routers_100_topics"), |b| {
            b.iter_custom(|iters| timed(iters, &route_sharded, &ts, &done))
        });
    }
    g.finish();

    // Memory of idle topic actors: what a fleet pays per topic before any traffic.
    const IDLE: usize = 100_000;
    let before = rss_bytes();
    let idle: Vec<Addr<Topic>> = sys.block_on(async {
        (0..IDLE)
            .map(|i| Topic::start_in_arbiter(&arbs[i % 2].handle(), |_| Topic { subs: Vec::new() }))
            .collect()
    });
    // Let the arbiters run every actor's start-up.
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_bytes();
    println!(
        "topic_actors/idle_memory: {IDLE} idle topic actors add {} MiB RSS, {} bytes each",
        (after.saturating_sub(before)) >> 20,
        after.saturating_sub(before) / IDLE as u64
    );
    drop(idle);
}

criterion_group!(benches, bench);
criterion_main!(benches);
