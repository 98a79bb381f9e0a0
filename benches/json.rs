//! simd-json against serde_json on evgrid's JSON hot paths (issue 19 item 5), on the same inputs:
//!
//! - `batch_*`: publish bodies of 100 events of about 1 KiB, Event Grid schema (basic tier) and
//!   CloudEvents (namespaces). Today both parsers make two serde_json passes: the top-level array
//!   split into raw elements (`&RawValue`), then each event's members (key, raw value, the
//!   decoded string when the value is one); `data` is never built. `json_stage/serde_json` is that
//!   work, `json_stage/simd_json*` the same information from simd-json: the body copied into a
//!   padded buffer (production must copy: the body is an immutable `Bytes`), one tape, then a walk
//!   over simd-json's structural indexes for the byte spans (each event's, each member value's)
//!   that the tape does not keep. Both stages are checked to give the same result before timing.
//!   `whole/…/serde_json` is the whole parser as it was (`parse_eventgrid`, `parse_batch`, two
//!   serde_json passes), `whole/…/simd_json` as it is now (`schema::split_fast`, serde_json only
//!   where simd-json refuses the body), `depth_scan` the per-event depth check both run.
//! - `mqtt_payload_1k`: the JSON check on a routed MQTT payload (`binding::as_json`: UTF-8, depth,
//!   serde_json into `IgnoredAny`) against the same with simd-json validating instead.
//! - `filter_data_1k`: the per-event parse of a 1 KiB CloudEvent for `data.` conditions and three
//!   lookups, serde_json `Value` (today's `EventView`) against simd-json's owned value, borrowed
//!   value and tape (the latter two borrow the copy, which `EventView` would have to own).
//!
//! "fresh" allocates simd-json's buffers per call, "reused" keeps one `Buffers` across calls
//! (what a thread-local would give). Results: benches/README.md.

use std::borrow::Cow;
use std::fmt;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use evgrid::http::schema::ParseLimits;
use evgrid::http::schema::cloudevents::parse_batch_with;
use evgrid::http::schema::eventgrid::{PostedTo, parse_eventgrid_with};
use evgrid_actors::grid::filter::{EventView, Filter};
use evgrid_actors::model::binding::as_json;
use evgrid_actors::model::event::CloudEvent;
use evgrid_actors::model::json::{CowStr, MAX_EVENT_DEPTH, json_depth};
use ntex_bytes::{ByteString, Bytes};
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::json;
use serde_json::value::RawValue;
use simd_json::prelude::*;
use simd_json::{Buffers, INPUT_PADDING, Node, Tape, fill_tape_padded};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LIMITS: ParseLimits = ParseLimits {
    max_event_bytes: 1 << 20,
    max_events: 5000,
};

/// ~1 KiB of `data`, with escapes and non-ASCII text in a few strings, as publishers send.
fn data(i: usize) -> serde_json::Value {
    json!({
        "orderId": format!("ord-{i:06}"),
        "customer": {"id": format!("c-{}", i % 97), "name": "Zoë \"Z\" Müller", "tier": "gold"},
        "amount": 150.5 + i as f64, "currency": "EUR", "paid": !i.is_multiple_of(3), "region": "eu-west",
        "items": [
            {"sku": "A-100", "qty": 2, "price": 10.25, "tags": ["red", "large"]},
            {"sku": "B-220", "qty": 1, "price": 99.0, "tags": []},
            {"sku": "C-333", "qty": 12, "price": 0.5, "tags": ["bulk"]}
        ],
        "shipping": {"street": "Hauptstraße 1", "city": "Berlin", "zip": "10115", "express": false,
            "window": {"from": "2026-12-08T10:00:00Z", "to": "2026-12-08T14:00:00Z"}},
        "note": "Leave at the door.\nRing twice; \\ if nobody answers, call +49 30 1234567.",
        "pad": "x".repeat(420),
    })
}

fn eventgrid_body() -> Bytes {
    let events: Vec<_> = (0..100)
        .map(|i| {
            json!({"id": format!("evt-{i:06}"), "subject": format!("/orders/eu/{i}"),
                "eventType": "Contoso.Orders.Created", "eventTime": "2026-12-08T10:00:00.123Z",
                "dataVersion": "1.0", "data": data(i)})
        })
        .collect();
    Bytes::from(serde_json::to_vec(&events).unwrap())
}

fn cloudevents_body() -> Bytes {
    let events: Vec<_> = (0..100)
        .map(|i| {
            json!({"specversion": "1.0", "id": format!("evt-{i:06}"), "source": "/shop/eu",
                "type": "Contoso.Orders.Created", "subject": format!("orders/eu/{i}"),
                "time": "2026-12-08T10:00:00.123Z", "datacontenttype": "application/json",
                "tenant": "contoso", "data": data(i)})
        })
        .collect();
    Bytes::from(serde_json::to_vec(&events).unwrap())
}

/// One top-level member of an event: its key, the byte span of its value in the body, and the
/// value decoded when it is a string.
#[derive(Debug)]
struct Member<'a> {
    key: Cow<'a, str>,
    span: (usize, usize),
    string: Option<Cow<'a, str>>,
}

/// One event of a batch: the byte span of its object in the body, and its members in order.
#[derive(Debug)]
struct Event<'a> {
    span: (usize, usize),
    members: Vec<Member<'a>>,
}

/// Owned, comparable form of a stage's result.
type Flat = Vec<(
    (usize, usize),
    Vec<(String, (usize, usize), Option<String>)>,
)>;

fn flat(events: &[Event<'_>]) -> Flat {
    events
        .iter()
        .map(|e| {
            let ms = e.members.iter();
            let ms = ms.map(|m| {
                (
                    m.key.to_string(),
                    m.span,
                    m.string.as_deref().map(String::from),
                )
            });
            (e.span, ms.collect())
        })
        .collect()
}

// --- Today's JSON stage: the two serde_json passes the publish parsers make. ---

fn members(json: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(CowStr(k)) = map.next_key::<CowStr<'de>>()? {
                out.push((k, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(V)
}

fn serde_stage(body: &[u8]) -> Result<Vec<Event<'_>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let base = text.as_ptr() as usize;
    let span = |s: &str| {
        let a = s.as_ptr() as usize - base;
        (a, a + s.len())
    };
    let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut events = Vec::with_capacity(raws.len());
    for raw in raws {
        let json = raw.get();
        let ms = members(json).map_err(|e| e.to_string())?;
        let members = ms
            .into_iter()
            .map(|(key, v)| {
                let v = v.get();
                let string = v
                    .starts_with('"')
                    .then(|| serde_json::from_str::<CowStr<'_>>(v).ok().map(|s| s.0))
                    .flatten();
                Member {
                    key,
                    span: span(v),
                    string,
                }
            })
            .collect();
        events.push(Event {
            span: span(json),
            members,
        });
    }
    Ok(events)
}

// --- The same information from simd-json. ---

/// Copies `body` into `copy` with the padding simd-json needs after the document.
fn padded(body: &[u8], copy: &mut Vec<u8>) {
    copy.clear();
    copy.reserve(body.len() + INPUT_PADDING);
    copy.extend_from_slice(body);
    copy.extend_from_slice(&[b' '; INPUT_PADDING]);
}

/// The events of a top-level array of objects. Tape nodes are the values in document order, one
/// per structural index that starts a value; the other structural indexes (`,` `:` `}` `]`) give
/// where values end.
fn simd_stage<'a>(
    body: &[u8],
    copy: &'a mut Vec<u8>,
    bufs: &mut Buffers,
) -> Result<Vec<Event<'a>>, String> {
    let len = body.len();
    padded(body, copy);
    let input: &'a mut [u8] = copy;
    let mut tape = Tape::null();
    fill_tape_padded(input, len, bufs, &mut tape).map_err(|e| e.to_string())?;
    let nodes = tape.0;
    let mut events: Vec<Event<'a>> = match nodes.first() {
        Some(Node::Array { len, .. }) => Vec::with_capacity(*len),
        _ => return Err("not an array".into()),
    };
    let trim = |mut e: usize| {
        while matches!(body[e - 1], b' ' | b'\t' | b'\n' | b'\r') {
            e -= 1;
        }
        e
    };
    let (mut depth, mut node) = (0usize, 0usize);
    // Depth 1: the event's start. Depth 2: a member value's start, scalar or container.
    let (mut ev_start, mut key): (usize, Option<Cow<'a, str>>) = (0, None);
    let mut value: Option<(usize, bool, Option<&'a str>)> = None;
    let mut ms: Vec<Member<'a>> = Vec::new();
    let end_member = |ms: &mut Vec<Member<'a>>,
                      key: &mut Option<Cow<'a, str>>,
                      s: usize,
                      e: usize,
                      v: Option<&'a str>| {
        if let Some(k) = key.take() {
            ms.push(Member {
                key: k,
                span: (s, e),
                string: v.map(Cow::Borrowed),
            });
        }
    };
    for &p in bufs.structural_indexes() {
        let p = p as usize;
        if p >= len {
            break;
        }
        match body[p] {
            b'{' | b'[' => {
                depth += 1;
                node += 1;
                match depth {
                    2 if body[p] == b'{' => ev_start = p,
                    2 => return Err("an event is not an object".into()),
                    3 => value = Some((p, true, None)),
                    _ => {}
                }
            }
            b'}' | b']' => {
                if depth == 2 {
                    if let Some((s, false, v)) = value.take() {
                        end_member(&mut ms, &mut key, s, trim(p), v);
                    }
                    events.push(Event {
                        span: (ev_start, p + 1),
                        members: std::mem::take(&mut ms),
                    });
                } else if depth == 3 {
                    let (s, _, _) = value.take().ok_or("span")?;
                    end_member(&mut ms, &mut key, s, p + 1, None);
                }
                depth -= 1;
            }
            b',' | b':' => {
                if depth == 2
                    && let Some((s, false, v)) = value.take()
                {
                    end_member(&mut ms, &mut key, s, trim(p), v);
                }
            }
            _ => {
                let n = nodes.get(node).ok_or("tape")?;
                node += 1;
                match depth {
                    1 => return Err("an event is not an object".into()),
                    2 if key.is_none() => key = Some(Cow::Borrowed(node_str(n).ok_or("key")?)),
                    2 => value = Some((p, false, node_str(n))),
                    _ => {}
                }
            }
        }
    }
    Ok(events)
}

fn node_str<'a>(n: &Node<'a>) -> Option<&'a str> {
    match n {
        Node::String(s) => Some(s),
        _ => None,
    }
}

// --- MQTT: the JSON check on a routed payload. ---

fn simd_as_json<'a>(data: &'a [u8], copy: &mut Vec<u8>, bufs: &mut Buffers) -> Option<&'a str> {
    if json_depth(data) + 1 > MAX_EVENT_DEPTH {
        return None;
    }
    padded(data, copy);
    let mut tape = Tape::null();
    fill_tape_padded(copy, data.len(), bufs, &mut tape).ok()?;
    // simd-json has checked the UTF-8 already; the str still comes from the safe conversion.
    let text = std::str::from_utf8(data).ok()?;
    Some(text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r')))
}

// --- Filters: parse once per event, then `data.amount`, `data.paid`, `data.region`. ---

fn filter_event() -> CloudEvent {
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

fn serde_filter(raw: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return false;
    };
    let Some(d) = v.get("data") else {
        return false;
    };
    d.get("amount")
        .and_then(|a| a.as_f64())
        .is_some_and(|a| a >= 100.0)
        && d.get("paid").and_then(|p| p.as_bool()) == Some(true)
        && d.get("region").and_then(|r| r.as_str()) == Some("eu-west")
}

fn owned_lookups(v: &simd_json::OwnedValue) -> bool {
    let Some(d) = v.get("data") else {
        return false;
    };
    d.get("amount")
        .and_then(|a| a.as_f64())
        .is_some_and(|a| a >= 100.0)
        && d.get("paid").and_then(|p| p.as_bool()) == Some(true)
        && d.get("region").and_then(|r| r.as_str()) == Some("eu-west")
}

fn borrowed_lookups(v: &simd_json::BorrowedValue<'_>) -> bool {
    let Some(d) = v.get("data") else {
        return false;
    };
    d.get("amount")
        .and_then(|a| a.as_f64())
        .is_some_and(|a| a >= 100.0)
        && d.get("paid").and_then(|p| p.as_bool()) == Some(true)
        && d.get("region").and_then(|r| r.as_str()) == Some("eu-west")
}

fn tape_lookups(v: simd_json::tape::Value<'_, '_>) -> bool {
    let Some(d) = v.get("data") else {
        return false;
    };
    d.get("amount")
        .and_then(|a| a.as_f64())
        .is_some_and(|a| a >= 100.0)
        && d.get("paid").and_then(|p| p.as_bool()) == Some(true)
        && d.get("region")
            .is_some_and(|r| r.as_str() == Some("eu-west"))
}

/// Inputs where the two parsers disagree on validity (printed once): what switching would change.
fn acceptance_differences() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: [&[u8]; 12] = [
        b"[1e400]",
        b"[-1e-400]",
        b"[18446744073709551616]",
        br#"["\ud800"]"#,
        br#"["\udc00\ud800"]"#,
        b"[\"\x01\"]",
        b"[\"\xff\"]",
        b"[1,]",
        b"[01]",
        b"\xef\xbb\xbf[1]",
        br#"{"a":1,"a":2}"#,
        deep.as_bytes(),
    ];
    for case in cases {
        let serde = serde_json::from_slice::<IgnoredAny>(case).is_ok();
        let simd = simd_json::to_tape(&mut case.to_vec()).is_ok();
        if serde != simd {
            eprintln!(
                "validity differs on {:?}: serde_json {serde}, simd-json {simd}",
                String::from_utf8_lossy(&case[..case.len().min(24)])
            );
        }
    }
    // What a `data.` filter would read: a repeated key, and numbers (serde_json without
    // float_roundtrip against simd-json's own float parser), on pseudo-random decimals.
    let dup = br#"{"a":1,"a":2}"#;
    let serde_a = serde_json::from_slice::<serde_json::Value>(dup).unwrap()["a"].as_u64();
    let simd_a = simd_json::to_owned_value(&mut dup.to_vec())
        .unwrap()
        .get("a")
        .and_then(|v| v.as_u64());
    if serde_a != simd_a {
        eprintln!("repeated key: serde_json reads {serde_a:?}, simd-json {simd_a:?}");
    }
    let (mut x, mut differ, mut first) = (0x9e37_79b9_7f4a_7c15u64, 0, None);
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let digits = 1 + (x % 19) as u32;
        let mantissa = (x >> 8) % 10u64.pow(digits);
        let exp = (x >> 3) as i32 % 40 - 20;
        let text = format!("[{}.{:0>3}e{exp}]", mantissa / 1000, mantissa % 1000);
        let a = serde_json::from_str::<Vec<f64>>(&text).map(|v| v[0]).ok();
        let b = simd_json::to_owned_value(&mut text.clone().into_bytes())
            .ok()
            .and_then(|v| v.get_idx(0).and_then(|n| n.as_f64()));
        if a.map(f64::to_bits) != b.map(f64::to_bits) {
            differ += 1;
            first.get_or_insert((text, a, b));
        }
    }
    if differ > 0 {
        eprintln!("numbers read differently: {differ} of 100000, e.g. {first:?}");
    }
}

fn bench_batches(c: &mut Criterion) {
    acceptance_differences();
    let cases = [
        ("batch_eventgrid_100x1k", eventgrid_body()),
        ("batch_cloudevents_100x1k", cloudevents_body()),
    ];
    for (name, body) in cases {
        // Same information from both stages, or the comparison means nothing.
        let want = flat(&serde_stage(&body).unwrap());
        let mut copy = Vec::new();
        let got = flat(&simd_stage(&body, &mut copy, &mut Buffers::new(body.len())).unwrap());
        assert_eq!(want, got, "{name}: simd-json stage differs");
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        if name.contains("eventgrid") {
            let to = PostedTo::Topic {
                topic_id: "/subscriptions/s/resourceGroups/r/providers/Microsoft.EventGrid/topics/t",
            };
            let ct = Some("application/json");
            for (path, simd) in [("serde_json", false), ("simd_json", true)] {
                let evs = parse_eventgrid_with(body.clone(), ct, &LIMITS, to, simd).unwrap();
                assert_eq!(evs.len(), 100);
                g.bench_function(format!("whole/parse_eventgrid/{path}"), |b| {
                    b.iter(|| parse_eventgrid_with(black_box(body.clone()), ct, &LIMITS, to, simd))
                });
            }
        } else {
            let ct = Some("application/cloudevents-batch+json");
            for (path, simd) in [("serde_json", false), ("simd_json", true)] {
                assert_eq!(
                    parse_batch_with(body.clone(), ct, &LIMITS, simd)
                        .unwrap()
                        .len(),
                    100
                );
                g.bench_function(format!("whole/parse_batch/{path}"), |b| {
                    b.iter(|| parse_batch_with(black_box(body.clone()), ct, &LIMITS, simd))
                });
            }
        }
        // Both parsers run this per event besides the JSON stage; for scale.
        g.bench_function("depth_scan/json_depth", |b| {
            b.iter(|| json_depth(black_box(&body)))
        });
        g.bench_function("json_stage/serde_json", |b| {
            b.iter(|| serde_stage(black_box(&body)).map(|e| e.len()))
        });
        g.bench_function("json_stage/simd_json_fresh", |b| {
            b.iter(|| {
                let mut copy = Vec::new();
                let mut bufs = Buffers::new(body.len());
                simd_stage(black_box(&body), &mut copy, &mut bufs).map(|e| e.len())
            })
        });
        let mut bufs = Buffers::new(body.len());
        g.bench_function("json_stage/simd_json_reused", |b| {
            b.iter(|| {
                let mut copy = Vec::new();
                simd_stage(black_box(&body), &mut copy, &mut bufs).map(|e| e.len())
            })
        });
        g.finish();
    }
}

fn bench_mqtt(c: &mut Criterion) {
    let payload = serde_json::to_vec(&data(7)).unwrap();
    let mut copy = Vec::new();
    let mut bufs = Buffers::new(payload.len());
    assert_eq!(
        as_json(&payload),
        simd_as_json(&payload, &mut copy, &mut bufs)
    );
    let mut g = c.benchmark_group("mqtt_payload_1k");
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("serde_json/as_json", |b| {
        b.iter(|| as_json(black_box(&payload)).map(str::len))
    });
    g.bench_function("serde_json/ignored_any_only", |b| {
        b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&payload)).is_ok())
    });
    g.bench_function("json_depth_only", |b| {
        b.iter(|| json_depth(black_box(&payload)))
    });
    g.bench_function("simd_json_fresh", |b| {
        b.iter(|| {
            let mut copy = Vec::new();
            let mut bufs = Buffers::new(payload.len());
            simd_as_json(black_box(&payload), &mut copy, &mut bufs).map(str::len)
        })
    });
    g.bench_function("simd_json_reused", |b| {
        b.iter(|| simd_as_json(black_box(&payload), &mut copy, &mut bufs).map(str::len))
    });
    g.finish();
}

fn bench_filter(c: &mut Criterion) {
    let ev = filter_event();
    let raw = ev.raw.clone();
    let data = Filter::compile(Some(&json!({"filters": [
        {"operatorType": "NumberGreaterThanOrEquals", "key": "data.amount", "value": 100},
        {"operatorType": "BoolEquals", "key": "data.paid", "value": true},
        {"operatorType": "StringIn", "key": "data.region", "values": ["eu-west", "eu-north"]}]})))
    .unwrap();
    assert!(data.matches(&EventView::new(&ev)) && serde_filter(&raw));
    assert!(simd_json::to_owned_value(&mut raw.to_vec()).is_ok_and(|v| owned_lookups(&v)));
    assert!(simd_json::to_borrowed_value(&mut raw.to_vec()).is_ok_and(|v| borrowed_lookups(&v)));
    assert!(simd_json::to_tape(&mut raw.to_vec()).is_ok_and(|t| tape_lookups(t.as_value())));
    let mut g = c.benchmark_group("filter_data_1k");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("whole/EventView_Filter_matches", |b| {
        b.iter(|| data.matches(&EventView::new(black_box(&ev))))
    });
    g.bench_function("serde_json/value", |b| {
        b.iter(|| serde_filter(black_box(&raw)))
    });
    for kind in ["owned_value", "borrowed_value", "tape"] {
        g.bench_function(BenchmarkId::new("simd_json", kind), |b| {
            b.iter(|| {
                let mut copy = black_box(&raw).to_vec();
                match kind {
                    "owned_value" => {
                        simd_json::to_owned_value(&mut copy).is_ok_and(|v| owned_lookups(&v))
                    }
                    "borrowed_value" => {
                        simd_json::to_borrowed_value(&mut copy).is_ok_and(|v| borrowed_lookups(&v))
                    }
                    _ => simd_json::to_tape(&mut copy).is_ok_and(|t| tape_lookups(t.as_value())),
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_batches, bench_mqtt, bench_filter
}
criterion_main!(benches);
