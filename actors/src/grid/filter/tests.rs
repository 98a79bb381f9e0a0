//! Filter tests: each operator's documented semantics, the limits, and a property test that
//! compares the compiled filter with a naive interpreter of the operator table in
//! docs/eventgrid.md §4.3 on random events.

use super::*;
use ntex_bytes::{ByteString, Bytes};
use serde_json::json;

/// A `CloudEvent` as the HTTP edge would produce it from `v` (context attributes parsed, raw
/// bytes kept).
fn ce(v: &Value) -> CloudEvent {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(ByteString::from);
    CloudEvent {
        id: s("id").unwrap_or_default(),
        source: s("source").unwrap_or_default(),
        ty: s("type").unwrap_or_default(),
        subject: s("subject"),
        ext: Vec::new(),
        raw: Bytes::from(v.to_string().into_bytes()),
    }
}

fn ev(ty: &str, subject: Option<&str>, extra: Value) -> Value {
    let mut v = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": ty});
    if let Some(s) = subject {
        v["subject"] = json!(s);
    }
    if let Value::Object(m) = extra {
        for (k, x) in m {
            v[k] = x;
        }
    }
    v
}

fn f(v: Value) -> Filter {
    Filter::compile(Some(&v)).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn hit(flt: &Filter, e: &Value) -> bool {
    let c = ce(e);
    flt.matches(&EventView::new(&c))
}

#[test]
fn event_types_case_insensitive() {
    let flt = f(json!({"includedEventTypes": ["Contoso.Order.Created"]}));
    assert!(hit(&flt, &ev("contoso.order.CREATED", None, json!({}))));
    assert!(!hit(&flt, &ev("Contoso.Order.Deleted", None, json!({}))));
    assert!(hit(&Filter::default(), &ev("x", None, json!({}))));
    assert!(hit(
        &f(json!({"includedEventTypes": null})),
        &ev("x", None, json!({}))
    ));
}

#[test]
fn subject_begins_and_ends_with() {
    let flt = f(json!({"filters": [
        {"operatorType": "StringBeginsWith", "key": "subject", "values": ["orders/"]},
        {"operatorType": "StringEndsWith", "key": "subject", "values": [".json", ".xml"]}
    ]}));
    assert!(hit(&flt, &ev("t", Some("ORDERS/1.json"), json!({}))));
    assert!(hit(&flt, &ev("t", Some("orders/2.XML"), json!({}))));
    assert!(!hit(&flt, &ev("t", Some("orders/2.txt"), json!({}))));
    assert!(!hit(&flt, &ev("t", Some("invoices/1.json"), json!({}))));
    assert!(!hit(&flt, &ev("t", None, json!({}))), "missing subject");
    // The basic tier's own subject fields, with and without case sensitivity.
    let basic = Filter::compile_basic(Some(
        &json!({"subjectBeginsWith": "Orders/", "subjectEndsWith": ".json"}),
    ))
    .unwrap();
    assert!(hit(&basic, &ev("t", Some("orders/1.JSON"), json!({}))));
    let cs = Filter::compile_basic(Some(
        &json!({"subjectBeginsWith": "Orders/", "isSubjectCaseSensitive": true}),
    ))
    .unwrap();
    assert!(!hit(&cs, &ev("t", Some("orders/1"), json!({}))));
    assert!(hit(&cs, &ev("t", Some("Orders/1"), json!({}))));
    let all = Filter::compile_basic(Some(&json!({"includedEventTypes": ["All"]}))).unwrap();
    assert!(hit(&all, &ev("anything", None, json!({}))));
}

#[test]
fn every_operator_on_data_extensions_and_missing_keys() {
    let e = ev(
        "t",
        Some("s"),
        json!({"tenant": "Contoso-EU", "prio": 3, "data": {"amount": 7.5, "ok": true, "region": "eu", "nested": {"x": 1}, "none": null}}),
    );
    let case = |op: &str, key: &str, v: Value| {
        let mut flt = json!({"operatorType": op, "key": key});
        if v.is_array() && !op.starts_with("Number") || op.ends_with("In") || op.contains("Range") {
            flt["values"] = v;
        } else if !v.is_null() {
            flt["value"] = v;
        }
        hit(&f(json!({ "filters": [flt] })), &e)
    };
    let table: &[(&str, &str, Value, bool)] = &[
        ("NumberIn", "data.amount", json!([1, 7.5]), true),
        ("NumberIn", "prio", json!([1, 2]), false),
        ("NumberNotIn", "prio", json!([1, 2]), true),
        ("NumberNotIn", "data.missing", json!([1]), true),
        ("NumberIn", "data.missing", json!([1]), false),
        ("NumberLessThan", "data.amount", json!(8), true),
        ("NumberLessThan", "data.amount", json!(7.5), false),
        ("NumberLessThanOrEquals", "data.amount", json!(7.5), true),
        ("NumberGreaterThan", "prio", json!(2), true),
        ("NumberGreaterThanOrEquals", "prio", json!(4), false),
        ("NumberGreaterThan", "data.missing", json!(0), false),
        (
            "NumberInRange",
            "data.amount",
            json!([[0, 1], [7, 8]]),
            true,
        ),
        ("NumberInRange", "data.amount", json!([[0, 1]]), false),
        ("NumberNotInRange", "data.amount", json!([[0, 1]]), true),
        ("NumberNotInRange", "data.amount", json!([[7, 8]]), false),
        ("BoolEquals", "data.ok", json!(true), true),
        ("BoolEquals", "data.ok", json!(false), false),
        ("BoolEquals", "data.missing", json!(true), false),
        ("StringIn", "DATA.Region", json!(["EU"]), true),
        ("StringIn", "tenant", json!(["contoso-eu"]), true),
        ("StringNotIn", "tenant", json!(["contoso-eu"]), false),
        ("StringNotIn", "data.missing", json!(["x"]), true),
        ("StringContains", "tenant", json!(["SO-e"]), true),
        ("StringNotContains", "tenant", json!(["xyz"]), true),
        ("StringNotContains", "data.missing", json!(["x"]), false),
        ("StringBeginsWith", "tenant", json!(["CONT"]), true),
        ("StringNotBeginsWith", "tenant", json!(["cont"]), false),
        ("StringEndsWith", "tenant", json!(["-eu"]), true),
        ("StringNotEndsWith", "tenant", json!(["-us"]), true),
        ("StringIn", "prio", json!(["3"]), false),
        ("IsNullOrUndefined", "data.none", Value::Null, true),
        ("IsNullOrUndefined", "data.missing", Value::Null, true),
        ("IsNullOrUndefined", "data.nested", Value::Null, false),
        ("IsNotNull", "data.nested.x", Value::Null, true),
        ("IsNotNull", "data.none", Value::Null, false),
        ("StringIn", "eventtype", json!(["T"]), true),
    ];
    for (op, key, v, want) in table {
        assert_eq!(case(op, key, v.clone()), *want, "{op} {key} {v}");
    }
}

#[test]
fn arrays_only_with_the_flag() {
    let e = ev(
        "t",
        None,
        json!({"data": {"tags": ["blue", "Red", 3], "ns": [1, 5]}}),
    );
    let flt = |arrays: bool, op: &str, key: &str, values: Value| {
        f(json!({"enableAdvancedFilteringOnArrays": arrays,
                 "filters": [{"operatorType": op, "key": key, "values": values}]}))
    };
    assert!(!hit(
        &flt(false, "StringIn", "data.tags", json!(["red"])),
        &e
    ));
    assert!(hit(&flt(true, "StringIn", "data.tags", json!(["red"])), &e));
    assert!(
        !hit(&flt(true, "StringNotIn", "data.tags", json!(["red"])), &e),
        "any element hits"
    );
    assert!(hit(
        &flt(true, "StringNotIn", "data.tags", json!(["green"])),
        &e
    ));
    assert!(
        hit(&flt(true, "NumberIn", "data.tags", json!([3])), &e),
        "other types ignored"
    );
    assert!(hit(
        &flt(true, "NumberInRange", "data.ns", json!([[4, 6]])),
        &e
    ));
    assert!(!hit(
        &flt(true, "NumberNotInRange", "data.ns", json!([[4, 6]])),
        &e
    ));
}

#[test]
fn limits_and_bad_shapes_are_refused_with_reasons() {
    let many: Vec<Value> = (0..26)
        .map(|_| json!({"operatorType": "IsNotNull", "key": "subject"}))
        .collect();
    let e = Filter::compile(Some(&json!({ "filters": many }))).unwrap_err();
    assert!(e.contains("at most 25 filters"), "{e}");
    let vals: Vec<String> = (0..26).map(|i| i.to_string()).collect();
    let e = Filter::compile(Some(
        &json!({"filters": [{"operatorType": "StringIn", "key": "subject", "values": vals}]}),
    ))
    .unwrap_err();
    assert!(e.contains("25 values"), "{e}");
    let long = "x".repeat(513);
    let e = Filter::compile(Some(
        &json!({"filters": [{"operatorType": "StringIn", "key": "subject", "values": [long]}]}),
    ))
    .unwrap_err();
    assert!(e.contains("512"), "{e}");
    for (bad, want) in [
        (json!({"filters": [{"key": "subject"}]}), "operatorType"),
        (json!({"filters": [{"operatorType": "StringIn"}]}), "key"),
        (
            json!({"filters": [{"operatorType": "StringIn", "key": "s"}]}),
            "values",
        ),
        (
            json!({"filters": [{"operatorType": "NumberIn", "key": "s", "values": ["a"]}]}),
            "numbers",
        ),
        (
            json!({"filters": [{"operatorType": "NumberLessThan", "key": "s"}]}),
            "value",
        ),
        (
            json!({"filters": [{"operatorType": "NumberInRange", "key": "s", "values": [[2, 1]]}]}),
            "empty",
        ),
        (
            json!({"filters": [{"operatorType": "NumberInRange", "key": "s", "values": [3]}]}),
            "pairs",
        ),
        (
            json!({"filters": [{"operatorType": "BoolEquals", "key": "s", "value": "yes"}]}),
            "boolean",
        ),
        (
            json!({"filters": [{"operatorType": "Fuzzy", "key": "s", "values": ["a"]}]}),
            "not an Event Grid operator",
        ),
        (
            json!({"filters": [{"operatorType": "StringIn", "key": "data..x", "values": ["a"]}]}),
            "empty path",
        ),
        (
            json!({"filters": [{"operatorType": "StringIn", "key": "a.b", "values": ["a"]}]}),
            "data.<path>",
        ),
        (json!({"includedEventTypes": "x"}), "array"),
        (json!({"subjectBeginsWith": "x"}), "not a known property"),
    ] {
        let e = Filter::compile(Some(&bad)).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
}

// ---- property test: compiled filter vs a naive reading of docs/eventgrid.md §4.3's table ----

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const WORDS: [&str; 6] = ["eu", "EU-west", "us", "Orders/1", "blue", ""];
const NUMS: [f64; 6] = [-1.0, 0.0, 1.5, 3.0, 7.0, 100.0];

fn random_scalar(r: &mut Rng) -> Value {
    match r.below(5) {
        0 => json!(*r.pick(&WORDS)),
        1 => json!(*r.pick(&NUMS)),
        2 => json!(r.below(2) == 0),
        3 => Value::Null,
        _ => json!(r.pick(&NUMS).round() as i64),
    }
}

fn random_value(r: &mut Rng) -> Value {
    if r.below(4) == 0 {
        Value::Array((0..r.below(4)).map(|_| random_scalar(r)).collect())
    } else {
        random_scalar(r)
    }
}

fn random_event(r: &mut Rng) -> Value {
    const TYPES: [&str; 3] = ["A.Created", "a.created", "B"];
    let ty = *r.pick(&TYPES);
    let mut e = ev(ty, None, json!({}));
    if r.below(3) > 0 {
        e["subject"] = json!(*r.pick(&WORDS));
    }
    for k in ["tenant", "prio"] {
        if r.below(2) == 0 {
            e[k] = random_value(r);
        }
    }
    let mut data = json!({});
    for k in ["a", "b"] {
        if r.below(3) > 0 {
            data[k] = random_value(r);
        }
    }
    if r.below(2) == 0 {
        data["n"] = json!({"x": random_value(r)});
    }
    e["data"] = data;
    e
}

const OPS: [&str; 19] = [
    "NumberIn",
    "NumberNotIn",
    "NumberLessThan",
    "NumberGreaterThan",
    "NumberLessThanOrEquals",
    "NumberGreaterThanOrEquals",
    "NumberInRange",
    "NumberNotInRange",
    "BoolEquals",
    "StringIn",
    "StringNotIn",
    "StringContains",
    "StringNotContains",
    "StringBeginsWith",
    "StringNotBeginsWith",
    "StringEndsWith",
    "StringNotEndsWith",
    "IsNullOrUndefined",
    "IsNotNull",
];
const KEYS: [&str; 9] = [
    "subject",
    "type",
    "tenant",
    "Prio",
    "data.a",
    "data.B",
    "data.n.x",
    "data.missing",
    "data.n",
];

fn random_filter(r: &mut Rng) -> Value {
    let op = *r.pick(&OPS);
    let mut flt = json!({"operatorType": op, "key": *r.pick(&KEYS)});
    let n = 1 + r.below(3);
    if op.starts_with("String") {
        flt["values"] = json!((0..n).map(|_| *r.pick(&WORDS)).collect::<Vec<_>>());
    } else if op.contains("Range") {
        let rs: Vec<Value> = (0..n)
            .map(|_| {
                let (a, b) = (*r.pick(&NUMS), *r.pick(&NUMS));
                json!([a.min(b), a.max(b)])
            })
            .collect();
        flt["values"] = json!(rs);
    } else if op == "NumberIn" || op == "NumberNotIn" {
        flt["values"] = json!((0..n).map(|_| *r.pick(&NUMS)).collect::<Vec<_>>());
    } else if op.starts_with("Number") {
        flt["value"] = json!(*r.pick(&NUMS));
    } else if op == "BoolEquals" {
        flt["value"] = json!(r.below(2) == 0);
    }
    flt
}

/// The operator table of docs/eventgrid.md §4.3 read literally, over the event's JSON.
fn reference(cfg: &Value, e: &Value) -> bool {
    fn find<'v>(obj: &'v Value, key: &str) -> Option<&'v Value> {
        obj.as_object()?
            .iter()
            .find(|(k, _)| k.to_lowercase() == key.to_lowercase())
            .map(|(_, v)| v)
    }
    if let Some(types) = cfg["includedEventTypes"].as_array() {
        let t = e["type"].as_str().unwrap().to_lowercase();
        if !types.is_empty()
            && !types
                .iter()
                .any(|x| x.as_str().unwrap().to_lowercase() == t)
        {
            return false;
        }
    }
    let arrays = cfg["enableAdvancedFilteringOnArrays"]
        .as_bool()
        .unwrap_or(false);
    let empty = vec![];
    cfg["filters"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .all(|flt| {
            let op = flt["operatorType"].as_str().unwrap();
            let key = flt["key"].as_str().unwrap().to_lowercase();
            let found = match key.strip_prefix("data.") {
                Some(path) => path.split('.').try_fold(&e["data"], |v, p| find(v, p)),
                None => find(e, &key),
            };
            let Some(v) = found else {
                return matches!(
                    op,
                    "NumberNotIn" | "StringNotIn" | "NumberNotInRange" | "IsNullOrUndefined"
                );
            };
            match op {
                "IsNullOrUndefined" => return v.is_null(),
                "IsNotNull" => return !v.is_null(),
                _ => {}
            }
            let candidates: Vec<&Value> = match v {
                Value::Array(items) if arrays => items.iter().collect(),
                Value::Array(_) => return false,
                other => vec![other],
            };
            let nums = |v: &Value| -> Vec<f64> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            };
            let strs = |v: &Value| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_lowercase())
                    .collect()
            };
            let test = |c: &Value| -> bool {
                let n = c.as_f64();
                let s = c.as_str().map(str::to_lowercase);
                match op {
                    "NumberIn" | "NumberNotIn" => {
                        n.is_some_and(|n| nums(&flt["values"]).contains(&n))
                    }
                    "NumberLessThan" => n.is_some_and(|n| n < flt["value"].as_f64().unwrap()),
                    "NumberGreaterThan" => n.is_some_and(|n| n > flt["value"].as_f64().unwrap()),
                    "NumberLessThanOrEquals" => {
                        n.is_some_and(|n| n <= flt["value"].as_f64().unwrap())
                    }
                    "NumberGreaterThanOrEquals" => {
                        n.is_some_and(|n| n >= flt["value"].as_f64().unwrap())
                    }
                    "NumberInRange" | "NumberNotInRange" => n.is_some_and(|n| {
                        flt["values"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|r| r[0].as_f64().unwrap() <= n && n <= r[1].as_f64().unwrap())
                    }),
                    "BoolEquals" => c.as_bool() == flt["value"].as_bool(),
                    "StringIn" | "StringNotIn" => {
                        s.is_some_and(|s| strs(&flt["values"]).contains(&s))
                    }
                    "StringContains" | "StringNotContains" => s.is_some_and(|s| {
                        strs(&flt["values"]).iter().any(|p| s.contains(p.as_str()))
                    }),
                    "StringBeginsWith" | "StringNotBeginsWith" => s.is_some_and(|s| {
                        strs(&flt["values"])
                            .iter()
                            .any(|p| s.starts_with(p.as_str()))
                    }),
                    "StringEndsWith" | "StringNotEndsWith" => s.is_some_and(|s| {
                        strs(&flt["values"]).iter().any(|p| s.ends_with(p.as_str()))
                    }),
                    _ => unreachable!("{op}"),
                }
            };
            let any = candidates.iter().any(|c| test(c));
            if op.contains("Not") { !any } else { any }
        })
}

#[test]
fn compiled_filters_agree_with_the_reference_on_random_events() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut matched = 0;
    for case in 0..20_000 {
        let mut cfg = json!({"filters": (0..1 + r.below(3)).map(|_| random_filter(&mut r)).collect::<Vec<_>>()});
        if r.below(3) == 0 {
            cfg["enableAdvancedFilteringOnArrays"] = json!(true);
        }
        if r.below(4) == 0 {
            cfg["includedEventTypes"] = json!(["A.CREATED"]);
        }
        let e = random_event(&mut r);
        let want = reference(&cfg, &e);
        assert_eq!(
            hit(&f(cfg.clone()), &e),
            want,
            "case {case}: filter {cfg} on event {e}"
        );
        matched += want as usize;
    }
    // Both outcomes are well represented, so the comparison means something.
    assert!(
        (1_000..19_000).contains(&matched),
        "{matched} of 20000 matched"
    );
}
