//! Topic matching against 100k subscriptions (exact, `+` and `#` filters, shared groups), and
//! retained-message lookup by wildcard filter.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evgrid_actors::mqtt::message::{AppMessage, SessionId};
use evgrid_actors::mqtt::retained::RetainedIndex;
use evgrid_actors::mqtt::trie::{Matched, SubOpts, SubTrie, TopicLimits, parse_filter};
use ntex_bytes::{ByteString, Bytes};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The MQTT protocol's own bounds on a topic: its length field, and a generous level count.
const BENCH_LIMITS: TopicLimits = TopicLimits {
    max_len: 65_535,
    max_levels: 128,
};

/// 100k subscriptions over 1,000 sites x 100 devices: 70% exact, 20% `+`, 9% `#`, 1% shared.
fn trie() -> SubTrie {
    let mut t = SubTrie::default();
    let l = BENCH_LIMITS;
    for i in 0..100_000u64 {
        let (site, dev) = (i % 1000, (i / 1000) % 100);
        let f = match i % 100 {
            0..70 => format!("site/{site}/dev/{dev}/telemetry"),
            70..90 => format!("site/{site}/dev/+/telemetry"),
            90..99 => format!("site/{site}/#"),
            _ => format!("$share/g{}/site/{site}/dev/+/alerts", i % 7),
        };
        t.insert(
            parse_filter(&f, l).unwrap(),
            SessionId(i),
            SubOpts::default(),
        );
    }
    t
}

fn bench_match(c: &mut Criterion) {
    let mut t = trie();
    let topics: Vec<String> = (0..1024)
        .map(|i| format!("site/{}/dev/{}/telemetry", (i * 7) % 1000, i % 100))
        .collect();
    let mut out: Vec<Matched> = Vec::with_capacity(64);
    let mut g = c.benchmark_group("topic_match");
    g.throughput(Throughput::Elements(1));
    g.bench_function("100k_subs/telemetry_topic", |b| {
        let mut i = 0;
        b.iter(|| {
            out.clear();
            t.matches(black_box(&topics[i & 1023]), &mut out);
            i += 1;
            black_box(out.len())
        })
    });
    g.bench_function("100k_subs/no_match", |b| {
        b.iter(|| {
            out.clear();
            t.matches(black_box("other/topic/entirely"), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("100k_subs/insert_remove", |b| {
        let f = parse_filter("site/5/dev/+/x", BENCH_LIMITS).unwrap();
        b.iter(|| {
            t.insert(f, SessionId(u64::MAX), SubOpts::default());
            t.remove(f, SessionId(u64::MAX));
        })
    });
    g.finish();
}

fn bench_retained(c: &mut Criterion) {
    let mut r = RetainedIndex::default();
    for i in 0..100_000u64 {
        r.set(
            Arc::new(AppMessage {
                topic: ByteString::from(format!("site/{}/dev/{}/state", i % 1000, i / 1000)),
                payload: Bytes::from_static(b"on"),
                qos: 1,
                retain: true,
                props: None,
                expires_at: None,
                publisher: None,
            }),
            0,
        );
    }
    let now = Instant::now();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("retained_lookup");
    g.bench_function("100k_retained/site_wildcard", |b| {
        b.iter(|| {
            out.clear();
            r.matches(black_box("site/42/dev/+/state"), now, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_match, bench_retained);
criterion_main!(benches);
