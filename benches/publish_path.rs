//! The publish path through the actors: a batch of messages into a routing shard, matched,
//! grouped per session, through each session actor, into the connections' writer channels.
//! Measures the time until every subscriber's channel has received its messages.

use std::time::{Duration, Instant};

use actix::Arbiter;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evgrid::config::MqttConfig;
use evgrid_actors::mqtt::broker::Broker;
use evgrid_actors::mqtt::message::{AppMessage, ConnId, Out};
use evgrid_actors::mqtt::outbox::{OutboxRx, outbox};
use evgrid_actors::mqtt::router::SubReq;
use evgrid_actors::mqtt::session::{Attach, Link, SessionLimits};
use evgrid_actors::mqtt::trie::SubOpts;
use ntex_bytes::{ByteString, Bytes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1000;

/// Starts `subs` sessions subscribed to `t/#`, returns the broker and their writer channels.
async fn setup(subs: usize) -> (Broker, Vec<OutboxRx>) {
    let arb = Arbiter::new();
    let broker = Broker::start(
        vec![arb.handle()],
        1,
        SessionLimits {
            max_outbound: usize::MAX,
            max_outbound_bytes: usize::MAX,
            ..MqttConfig::default().session_limits()
        },
    );
    let mut rxs = Vec::new();
    for i in 0..subs {
        let (tx, rx) = outbox();
        let id = ByteString::from(format!("s{i}"));
        let opened = broker
            .open(&id, true, || Attach {
                link: Link {
                    conn: ConnId(i as u64),
                    tx: tx.clone(),
                    window: 100,
                },
                expiry_secs: 0,
                will: None,
                fresh: false,
            })
            .await
            .unwrap();
        let req = vec![SubReq {
            filter: ByteString::from_static("t/#"),
            opts: SubOpts::default(),
        }];
        broker
            .subscribe(opened.id, &opened.addr, &opened.mailbox, req, 10)
            .await
            .unwrap();
        std::mem::forget(opened); // keep the session actors alive for the whole bench
        rxs.push(rx);
    }
    (broker, rxs)
}

fn batch() -> Vec<AppMessage> {
    (0..BATCH)
        .map(|i| AppMessage {
            topic: ByteString::from(format!("t/{}", i % 10)),
            payload: Bytes::from_static(&[7u8; 64]),
            qos: 0,
            retain: false,
            props: None,
            expires_at: None,
            publisher: None,
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, subs: usize) {
    let sys = actix::System::new();
    let (broker, mut rxs) = sys.block_on(setup(subs));
    let mut g = c.benchmark_group("publish_path");
    g.throughput(Throughput::Elements((BATCH * subs) as u64));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut buf = Vec::new();
                let start = Instant::now();
                for _ in 0..iters {
                    broker.route(batch()).await.unwrap();
                    for rx in rxs.iter_mut() {
                        let mut n = 0;
                        while n < BATCH {
                            assert!(rx.recv_all(&mut buf).await, "channel closed");
                            for out in buf.drain(..) {
                                match out {
                                    Out::Batch(b) => n += b.len(),
                                    Out::Close(_) => panic!("closed"),
                                }
                            }
                        }
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    run(c, "batch1000_to_1_subscriber", 1);
    run(c, "batch1000_fanout_100_subscribers", 100);
}

criterion_group!(benches, bench);
criterion_main!(benches);
