//! Subscription filter evaluation: the cost per subscription per event of a compiled filter, on
//! context attributes only (no JSON parse) and on `data.<path>` keys (the event's JSON parsed
//! once per event and shared by every subscription that needs it).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evgrid_actors::grid::filter::{EventView, Filter};
use evgrid_actors::model::event::CloudEvent;
use ntex_bytes::{ByteString, Bytes};
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event() -> CloudEvent {
    let raw = json!({"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "Contoso.Order.Created",
        "subject": "orders/eu/1234.json", "tenant": "contoso",
        "data": {"amount": 150.5, "paid": true, "region": "eu-west", "items": [1, 2, 3], "pad": "x".repeat(800)}});
    CloudEvent {
        id: "e-1".into(),
        source: "/shop".into(),
        ty: "Contoso.Order.Created".into(),
        subject: Some(ByteString::from("orders/eu/1234.json")),
        ext: vec![("tenant".into(), "contoso".into())],
        raw: Bytes::from(raw.to_string().into_bytes()),
    }
}

fn bench(c: &mut Criterion) {
    let ev = event();
    let context = Filter::compile(Some(&json!({
        "includedEventTypes": ["Contoso.Order.Created", "Contoso.Order.Deleted"],
        "filters": [
            {"operatorType": "StringBeginsWith", "key": "subject", "values": ["orders/eu/"]},
            {"operatorType": "StringEndsWith", "key": "subject", "values": [".json"]}]})))
    .unwrap();
    let data = Filter::compile(Some(&json!({"filters": [
        {"operatorType": "NumberGreaterThanOrEquals", "key": "data.amount", "value": 100},
        {"operatorType": "BoolEquals", "key": "data.paid", "value": true},
        {"operatorType": "StringIn", "key": "data.region", "values": ["eu-west", "eu-north"]}]})))
    .unwrap();
    let mut g = c.benchmark_group("filter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("context_attributes", |b| {
        b.iter(|| context.matches(black_box(&EventView::new(&ev))))
    });
    // 10 subscriptions with data filters on one event: one parse, ten evaluations.
    g.throughput(Throughput::Elements(10));
    g.bench_function("data_keys_10_subscriptions", |b| {
        b.iter(|| {
            let view = EventView::new(&ev);
            (0..10).filter(|_| data.matches(black_box(&view))).count()
        })
    });
    g.bench_function("data_keys_10_subscriptions_parsed", |b| {
        let view = EventView::new(&ev);
        b.iter(|| (0..10).filter(|_| data.matches(black_box(&view))).count())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
