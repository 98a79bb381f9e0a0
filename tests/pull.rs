//! Namespaces, the management API and pull delivery over real HTTP against the real binary:
//! receive, acknowledge, release, reject, renew, lock expiry, max delivery count, filters,
//! competing consumers, long polls, bad input, and durability across restart and `kill -9`.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{Resp, request, request_with};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const API: &str = "api-version=2024-06-01";

struct Eg {
    srv: Server,
    key: String,
}

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_MIN_LOCK_DURATION_SECS", "1"),
        ("EVGRID_EVENTS_TICK_MS", "20"),
    ];
    env.extend_from_slice(extra);
    env
}

impl Eg {
    fn start(extra: &[(&str, &str)]) -> Eg {
        Eg::wrap(Server::start(&env_with(extra)))
    }

    fn start_in(dir: &Path, extra: &[(&str, &str)]) -> Eg {
        Eg::wrap(Server::start_in(dir, &env_with(extra)))
    }

    fn wrap(srv: Server) -> Eg {
        let mut eg = Eg {
            srv,
            key: String::new(),
        };
        let r = eg.mgmt("POST", "/mgmt/namespaces/default/listKeys", b"");
        assert_eq!(r.status, 200, "{r:?}");
        eg.key = r.json()["key1"].as_str().unwrap().to_string();
        eg
    }

    fn mgmt(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        common::http::mgmt(self.srv.http, ADMIN, method, path, body)
    }

    fn topic(&self, t: &str) {
        let r = self.mgmt(
            "PUT",
            &format!("/mgmt/namespaces/default/topics/{t}"),
            br#"{"properties":{}}"#,
        );
        assert_eq!(r.status, 201, "{r:?}");
    }

    fn sub(&self, t: &str, s: &str, props: Value) {
        let r = self.mgmt(
            "PUT",
            &format!("/mgmt/namespaces/default/topics/{t}/eventSubscriptions/{s}"),
            json!({ "properties": props }).to_string().as_bytes(),
        );
        assert_eq!(r.status, 201, "{r:?}");
    }

    fn queue_sub(&self, t: &str, s: &str, queue: Value) {
        self.sub(
            t,
            s,
            json!({"deliveryConfiguration": {"deliveryMode": "Queue", "queue": queue}}),
        );
    }

    fn publish_raw(&self, t: &str, ct: &str, body: &[u8], auth: &str) -> Resp {
        let ct = format!("Content-Type: {ct}");
        request(
            self.srv.http,
            "POST",
            &format!("/namespaces/default/topics/{t}:publish?{API}"),
            &[auth, &ct],
            body,
        )
    }

    fn publish(&self, t: &str, events: &Value) -> Resp {
        let auth = format!("Authorization: SharedAccessKey {}", self.key);
        self.publish_raw(
            t,
            "application/cloudevents-batch+json; charset=utf-8",
            events.to_string().as_bytes(),
            &auth,
        )
    }

    fn op(&self, t: &str, s: &str, action: &str, query: &str, body: &[u8]) -> Resp {
        let auth = format!("Authorization: SharedAccessKey {}", self.key);
        request_with(
            self.srv.http,
            "POST",
            &format!("/namespaces/default/topics/{t}/eventsubscriptions/{s}:{action}?{API}{query}"),
            &[&auth, "Content-Type: application/json"],
            body,
            Duration::from_secs(150),
        )
    }

    /// (lock token, delivery count, event) for each received event.
    fn receive(&self, t: &str, s: &str, max: usize, wait: u64) -> Vec<(String, u64, Value)> {
        let r = self.op(
            t,
            s,
            "receive",
            &format!("&maxEvents={max}&maxWaitTime={wait}"),
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["value"]
            .as_array()
            .expect("value array")
            .iter()
            .map(|v| {
                (
                    v["brokerProperties"]["lockToken"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    v["brokerProperties"]["deliveryCount"].as_u64().unwrap(),
                    v["event"].clone(),
                )
            })
            .collect()
    }

    /// (succeeded, failed (token, code)).
    fn settle(
        &self,
        t: &str,
        s: &str,
        action: &str,
        query: &str,
        tokens: &[&str],
    ) -> (Vec<String>, Vec<(String, String)>) {
        let r = self.op(
            t,
            s,
            action,
            query,
            json!({ "lockTokens": tokens }).to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        let ok = v["succeededLockTokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        let failed = v["failedLockTokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["lockToken"].as_str().unwrap().to_string(),
                    x["error"]["code"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (ok, failed)
    }

    fn dead_letters(&self, t: &str, s: &str) -> Vec<Value> {
        let r = self.mgmt(
            "GET",
            &format!("/mgmt/namespaces/default/topics/{t}/eventSubscriptions/{s}/deadLetters"),
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["value"].as_array().unwrap().clone()
    }
}

fn ev(id: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/test", "type": "Test.Created", "data": {"n": id}})
}

fn ids(got: &[(String, u64, Value)]) -> Vec<String> {
    got.iter()
        .map(|g| g.2["id"].as_str().unwrap().to_string())
        .collect()
}

/// Receives until `n` events have arrived (or the deadline passes).
fn receive_n(eg: &Eg, t: &str, s: &str, n: usize) -> Vec<(String, u64, Value)> {
    let mut all = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while all.len() < n && Instant::now() < end {
        all.extend(eg.receive(t, s, 100, 10));
    }
    all
}

const DL: &str = r#"{"deadLetterDestination":{"endpointType":"StorageBlob","properties":{"resourceId":"x","blobContainerName":"dl"}}}"#;

fn dl() -> Value {
    serde_json::from_str(DL).unwrap()
}

#[test]
fn acknowledge_release_reject_renew_and_lock_expiry() {
    let eg = Eg::start(&[]);
    eg.topic("orders");
    eg.queue_sub(
        "orders",
        "sub1",
        json!({"receiveLockDurationInSeconds": 2, "maxDeliveryCount": 3,
               "deadLetterDestinationWithResourceIdentity": dl()}),
    );
    let r = eg.publish("orders", &json!([ev("a"), ev("b"), ev("c"), ev("d")]));
    assert_eq!((r.status, r.body.as_str()), (200, "{}"), "{r:?}");

    let got = eg.receive("orders", "sub1", 10, 10);
    assert_eq!(ids(&got), ["a", "b", "c", "d"]);
    assert!(got.iter().all(|g| g.1 == 1), "first delivery counts 1");
    assert_eq!(got[0].2, ev("a"), "the event as published");
    let tok: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();

    // Acknowledge a: gone. A token twice in one call: the second fails.
    let (ok, failed) = eg.settle("orders", "sub1", "acknowledge", "", &[tok[0], "garbage"]);
    assert_eq!(ok, [tok[0]]);
    assert_eq!(failed, [("garbage".to_string(), "BadToken".to_string())]);
    let (ok, failed) = eg.settle("orders", "sub1", "acknowledge", "", &[tok[0]]);
    assert!(ok.is_empty());
    assert_eq!(failed[0].1, "TokenLost");

    // Release b: redelivered at once with deliveryCount 2; its old token is stale.
    let (ok, _) = eg.settle("orders", "sub1", "release", "", &[tok[1]]);
    assert_eq!(ok, [tok[1]]);
    let again = eg.receive("orders", "sub1", 10, 10);
    assert_eq!(ids(&again), ["b"]);
    assert_eq!(again[0].1, 2);
    let (_, failed) = eg.settle("orders", "sub1", "acknowledge", "", &[tok[1]]);
    assert_eq!(failed[0].1, "TokenLost", "stale token after redelivery");

    // Reject c: dead-lettered with the reason.
    let (ok, _) = eg.settle("orders", "sub1", "reject", "", &[tok[2]]);
    assert_eq!(ok, [tok[2]]);
    let dls = eg.dead_letters("orders", "sub1");
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0]["event"]["id"], "c");
    assert!(
        dls[0]["deadLetterProperties"]["deadletterreason"]
            .as_str()
            .unwrap()
            .contains("rejected")
    );

    // Renew d past its original lock: still valid after 2.5 s, then acknowledged.
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, _) = eg.settle("orders", "sub1", "renewLock", "", &[tok[3]]);
    assert_eq!(ok, [tok[3]]);
    std::thread::sleep(Duration::from_millis(1300));
    let (ok, _) = eg.settle("orders", "sub1", "acknowledge", "", &[tok[3]]);
    assert_eq!(ok, [tok[3]], "renewed lock outlived the first one");

    // b's second lock expires unsettled: delivered a third time.
    std::thread::sleep(Duration::from_millis(1000));
    let third = eg.receive("orders", "sub1", 10, 10);
    assert_eq!(ids(&third), ["b"]);
    assert_eq!(third[0].1, 3);
    // Expired again, with maxDeliveryCount 3 reached: dead-lettered, not redelivered.
    std::thread::sleep(Duration::from_millis(2500));
    let dls = eg.dead_letters("orders", "sub1");
    assert_eq!(dls.len(), 2, "{dls:?}");
    assert_eq!(dls[1]["event"]["id"], "b");
    let p = &dls[1]["deadLetterProperties"];
    assert_eq!(
        p["deadletterreason"],
        "Maximum delivery attempts was exceeded."
    );
    assert_eq!(p["deliveryattempts"], 3);
    eg.publish("orders", &json!([ev("marker")]));
    assert_eq!(ids(&eg.receive("orders", "sub1", 10, 10)), ["marker"]);
    assert!(eg.srv.metric("evgrid_lock_expirations_total") >= 2.0);
}

#[test]
fn release_delay_and_drop_without_dead_letter_destination() {
    let eg = Eg::start(&[]);
    eg.topic("jobs");
    eg.queue_sub(
        "jobs",
        "sub1",
        json!({"receiveLockDurationInSeconds": 60, "maxDeliveryCount": 1}),
    );
    eg.publish("jobs", &json!([ev("x"), ev("y")]));
    let got = eg.receive("jobs", "sub1", 10, 10);
    assert_eq!(ids(&got), ["x", "y"]);
    // Delay 10: not available before then (a marker published after it comes first).
    let (ok, _) = eg.settle("jobs", "sub1", "reject", "", &[&got[1].0]);
    assert_eq!(ok.len(), 1);
    assert!(
        eg.dead_letters("jobs", "sub1").is_empty(),
        "no destination: dropped"
    );
    assert_eq!(eg.srv.metric("evgrid_events_dropped_total"), 1.0);
    // maxDeliveryCount 1: a release ends the only delivery, so x is dropped too.
    let (ok, _) = eg.settle(
        "jobs",
        "sub1",
        "release",
        "&releaseDelayInSeconds=10",
        &[&got[0].0],
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(eg.srv.metric("evgrid_events_dropped_total"), 2.0);

    eg.queue_sub("jobs", "sub2", json!({"maxDeliveryCount": 5}));
    eg.publish("jobs", &json!([ev("z")]));
    let got = eg.receive("jobs", "sub2", 10, 10);
    let t0 = Instant::now();
    eg.settle(
        "jobs",
        "sub2",
        "release",
        "&releaseDelayInSeconds=10",
        &[&got[0].0],
    );
    eg.publish("jobs", &json!([ev("m")]));
    assert_eq!(ids(&eg.receive("jobs", "sub2", 10, 10)), ["m"]);
    let later = eg.receive("jobs", "sub2", 10, 20);
    assert_eq!(ids(&later), ["z"]);
    assert_eq!(later[0].1, 2);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
}

#[test]
fn filters_apply_at_publish() {
    let eg = Eg::start(&[]);
    eg.topic("mixed");
    eg.sub(
        "mixed",
        "created",
        json!({"filtersConfiguration": {"includedEventTypes": ["Order.Created"]}}),
    );
    eg.sub(
        "mixed",
        "eu-json",
        json!({"filtersConfiguration": {"filters": [
            {"operatorType": "StringBeginsWith", "key": "subject", "values": ["eu/"]},
            {"operatorType": "StringEndsWith", "key": "subject", "values": [".json"]}]}}),
    );
    let e = |id: &str, ty: &str, subject: &str| json!({"specversion": "1.0", "id": id, "source": "/s", "type": ty, "subject": subject});
    let r = eg.publish(
        "mixed",
        &json!([
            e("1", "Order.Created", "eu/1.json"),
            e("2", "Order.Deleted", "EU/2.JSON"),
            e("3", "order.created", "us/3.json"),
            e("4", "Order.Deleted", "eu/4.xml"),
        ]),
    );
    assert_eq!(r.status, 200);
    assert_eq!(ids(&receive_n(&eg, "mixed", "created", 2)), ["1", "3"]);
    assert_eq!(ids(&receive_n(&eg, "mixed", "eu-json", 2)), ["1", "2"]);
    assert_eq!(eg.srv.metric("evgrid_events_unrouted_total"), 1.0);
    // Filters on event data, end to end: numbers and booleans under data.<path>.
    eg.sub(
        "mixed",
        "big-paid",
        json!({"filtersConfiguration": {"filters": [
            {"operatorType": "NumberGreaterThanOrEquals", "key": "data.amount", "value": 100},
            {"operatorType": "BoolEquals", "key": "data.paid", "value": true}]}}),
    );
    let d = |id: &str, amount: f64, paid: bool| {
        json!({"specversion": "1.0", "id": id, "source": "/s", "type": "T",
               "data": {"amount": amount, "paid": paid}})
    };
    let r = eg.publish(
        "mixed",
        &json!([
            d("5", 150.0, true),
            d("6", 99.5, true),
            d("7", 500.0, false)
        ]),
    );
    assert_eq!(r.status, 200);
    assert_eq!(ids(&receive_n(&eg, "mixed", "big-paid", 1)), ["5"]);
    // An operator Event Grid does not have is refused when the subscription is created.
    let r = eg.mgmt(
        "PUT",
        "/mgmt/namespaces/default/topics/mixed/eventSubscriptions/fuzzy",
        br#"{"properties":{"filtersConfiguration":{"filters":[{"operatorType":"Fuzzy","key":"data.n","values":[1]}]}}}"#,
    );
    assert_eq!((r.status, r.code().as_str()), (400, "BadRequest"), "{r:?}");
    assert!(r.message().contains("Fuzzy"), "{r:?}");
}

#[test]
fn competing_consumers_never_share_an_event() {
    let eg = Eg::start(&[]);
    eg.topic("work");
    eg.queue_sub(
        "work",
        "workers",
        json!({"receiveLockDurationInSeconds": 60}),
    );
    let total = 400;
    for b in 0..4 {
        let batch: Vec<Value> = (0..100).map(|i| ev(&format!("{b}-{i}"))).collect();
        assert_eq!(eg.publish("work", &json!(batch)).status, 200);
    }
    let seen: Vec<Vec<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let got = eg.receive("work", "workers", 7, 10);
                        if got.is_empty() {
                            break;
                        }
                        let toks: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
                        let (ok, failed) = eg.settle("work", "workers", "acknowledge", "", &toks);
                        assert_eq!((ok.len(), failed.len()), (got.len(), 0));
                        mine.extend(ids(&got));
                    }
                    mine
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<&String> = seen.iter().flatten().collect();
    let uniq: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(
        (all.len(), uniq.len()),
        (total, total),
        "each event exactly once"
    );
    assert!(
        seen.iter().filter(|v| !v.is_empty()).count() >= 2,
        "work was shared"
    );
}

#[test]
fn long_poll_answers_when_events_arrive_or_at_the_deadline() {
    let eg = Eg::start(&[]);
    eg.topic("poll");
    eg.queue_sub("poll", "sub1", json!({}));
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let t = Instant::now();
            (eg.receive("poll", "sub1", 5, 30), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        eg.publish("poll", &json!([ev("late")]));
        let (got, took) = h.join().unwrap();
        assert_eq!(ids(&got), ["late"]);
        assert!(
            took < Duration::from_secs(5),
            "answered on arrival: {took:?}"
        );
    });
    let t = Instant::now();
    let r = eg.op("poll", "sub1", "receive", "&maxWaitTime=10", b"");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"value":[]}"#));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[test]
fn bad_input_gets_specific_errors_and_nothing_half_accepted() {
    let eg = Eg::start(&[
        ("EVGRID_EVENTS_MAX_EVENT_BYTES", "2000"),
        ("EVGRID_EVENTS_MAX_REQUEST_BYTES", "20000"),
        ("EVGRID_EVENTS_MAX_EVENTS_PER_REQUEST", "5"),
    ]);
    eg.topic("strict");
    eg.queue_sub("strict", "sub1", json!({}));
    let key = format!("Authorization: SharedAccessKey {}", eg.key);
    let batch_ct = "application/cloudevents-batch+json; charset=utf-8";
    let check = |r: Resp, status: u16, code: &str, needle: &str| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.code(), code, "{r:?}");
        assert!(r.message().contains(needle), "{needle:?} not in {r:?}");
    };
    check(
        eg.publish_raw("strict", batch_ct, b"[{", &key),
        400,
        "BadRequest",
        "",
    );
    let missing = json!([ev("ok"), {"specversion": "1.0", "id": "x", "type": "T"}]);
    check(eg.publish("strict", &missing), 400, "BadRequest", "source");
    check(
        eg.publish(
            "strict",
            &json!([{"specversion": "0.3", "id": "x", "source": "/s", "type": "T"}]),
        ),
        400,
        "BadRequest",
        "specversion",
    );
    let big = json!([{"specversion": "1.0", "id": "x", "source": "/s", "type": "T", "data": "x".repeat(3000)}]);
    check(eg.publish("strict", &big), 413, "RequestEntityTooLarge", "");
    let many: Vec<Value> = (0..6).map(|i| ev(&i.to_string())).collect();
    check(
        eg.publish("strict", &json!(many)),
        413,
        "RequestEntityTooLarge",
        "6",
    );
    let huge = vec![b' '; 30_000];
    check(
        eg.publish_raw("strict", batch_ct, &huge, &key),
        413,
        "RequestEntityTooLarge",
        "",
    );
    check(
        eg.publish_raw("strict", "text/plain", b"[]", &key),
        415,
        "UnsupportedMediaType",
        "",
    );
    check(
        eg.publish("nosuchtopic", &json!([ev("x")])),
        404,
        "ResourceNotFound",
        "nosuchtopic",
    );
    check(
        eg.publish_raw("strict", batch_ct, b"[]", "X-No: auth"),
        401,
        "Unauthorized",
        "",
    );
    check(
        eg.publish_raw("strict", batch_ct, b"[]", "aeg-sas-key: d3Jvbmc="),
        401,
        "Unauthorized",
        "",
    );
    let r = request(
        eg.srv.http,
        "POST",
        "/namespaces/default/topics/strict:publish?api-version=2018-01-01",
        &[&key, &format!("Content-Type: {batch_ct}")],
        b"[]",
    );
    check(r, 400, "BadRequest", "api-version");
    let r = request(
        eg.srv.http,
        "POST",
        "/namespaces/default/topics/strict:publish",
        &[&key, &format!("Content-Type: {batch_ct}")],
        b"[]",
    );
    check(r, 400, "BadRequest", "api-version");
    check(
        eg.op("strict", "sub1", "receive", "&maxEvents=0", b""),
        400,
        "BadRequest",
        "maxEvents",
    );
    check(
        eg.op("strict", "sub1", "receive", "&maxEvents=101", b""),
        400,
        "BadRequest",
        "maxEvents",
    );
    check(
        eg.op("strict", "sub1", "receive", "&maxWaitTime=5", b""),
        400,
        "BadRequest",
        "maxWaitTime",
    );
    check(
        eg.op(
            "strict",
            "sub1",
            "release",
            "&releaseDelayInSeconds=7",
            br#"{"lockTokens":["x"]}"#,
        ),
        400,
        "BadRequest",
        "releaseDelayInSeconds",
    );
    check(
        eg.op("strict", "sub1", "acknowledge", "", b"{nope"),
        400,
        "BadRequest",
        "lockTokens",
    );
    check(
        eg.op("strict", "sub1", "acknowledge", "", br#"{"lockTokens":[]}"#),
        400,
        "BadRequest",
        "",
    );
    check(
        eg.op("strict", "nosub", "receive", "", b""),
        404,
        "ResourceNotFound",
        "nosub",
    );
    check(
        eg.op("strict", "sub1", "explode", "", b""),
        404,
        "NotFound",
        "explode",
    );
    // renewLock and release delays exist only in 2024-06-01 and 2023-10-01-preview.
    let old_api = |action: &str, query: &str| {
        request(
            eg.srv.http,
            "POST",
            &format!(
                "/namespaces/default/topics/strict/eventsubscriptions/sub1:{action}?api-version=2023-11-01{query}"
            ),
            &[&key, "Content-Type: application/json"],
            br#"{"lockTokens":["x"]}"#,
        )
    };
    check(old_api("renewLock", ""), 400, "BadRequest", "2023-11-01");
    check(
        old_api("release", "&releaseDelayInSeconds=60"),
        400,
        "BadRequest",
        "2024-06-01",
    );
    assert_eq!(old_api("release", "&releaseDelayInSeconds=0").status, 200);
    assert_eq!(old_api("acknowledge", "").status, 200);
    // Garbage tokens are a 200 with every token failed.
    let (ok, failed) = eg.settle(
        "strict",
        "sub1",
        "acknowledge",
        "",
        &["", "AAAA", "zzzzzzzzzzzzzzzzzzzzzz"],
    );
    assert!(ok.is_empty());
    assert_eq!(failed.len(), 3);
    // None of the refused batches left anything behind.
    assert_eq!(eg.publish("strict", &json!([ev("only")])).status, 200);
    assert_eq!(ids(&eg.receive("strict", "sub1", 100, 10)), ["only"]);
    // A single event under application/cloudevents+json.
    let r = eg.publish_raw(
        "strict",
        "application/cloudevents+json; charset=utf-8",
        ev("single").to_string().as_bytes(),
        &key,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(ids(&eg.receive("strict", "sub1", 100, 10)), ["single"]);
    assert!(eg.srv.metric("evgrid_http_errors_total") >= 20.0);
}

#[test]
fn sas_tokens_and_both_keys_authenticate_publishers() {
    let eg = Eg::start(&[]);
    eg.topic("secure");
    eg.queue_sub("secure", "sub1", json!({}));
    let keys = eg
        .mgmt("POST", "/mgmt/namespaces/default/listKeys", b"")
        .json();
    let (k1, k2) = (
        keys["key1"].as_str().unwrap(),
        keys["key2"].as_str().unwrap(),
    );
    let ct = "application/cloudevents-batch+json";
    let body = json!([ev("s")]).to_string();
    for auth in [
        format!("Authorization: SharedAccessKey {k2}"),
        format!("aeg-sas-key: {k1}"),
    ] {
        assert_eq!(
            eg.publish_raw("secure", ct, body.as_bytes(), &auth).status,
            200
        );
    }
    let http = eg.srv.http;
    let resource = format!("http://{http}/namespaces/default");
    let good = evgrid::http::auth::sign_sas(&resource, "2099-01-01T00:00:00Z", k1);
    let expired = evgrid::http::auth::sign_sas(&resource, "2001-01-01T00:00:00Z", k1);
    let other = evgrid::http::auth::sign_sas(
        &format!("http://{http}/namespaces/other"),
        "2099-01-01T00:00:00Z",
        k1,
    );
    assert_eq!(
        eg.publish_raw(
            "secure",
            ct,
            body.as_bytes(),
            &format!("aeg-sas-token: {good}")
        )
        .status,
        200
    );
    assert_eq!(
        eg.publish_raw(
            "secure",
            ct,
            body.as_bytes(),
            &format!("Authorization: SharedAccessSignature {good}")
        )
        .status,
        200
    );
    for bad in [expired, other] {
        let r = eg.publish_raw(
            "secure",
            ct,
            body.as_bytes(),
            &format!("aeg-sas-token: {bad}"),
        );
        assert_eq!(r.status, 401, "{r:?}");
        assert!(!r.message().is_empty());
    }
    // Regenerating key1 leaves key2 valid and retires the old key1.
    let r = eg.mgmt(
        "POST",
        "/mgmt/namespaces/default/regenerateKey",
        br#"{"keyName":"key1"}"#,
    );
    assert_eq!(r.status, 200);
    let new = r.json();
    assert_ne!(new["key1"], keys["key1"]);
    assert_eq!(new["key2"], keys["key2"]);
    assert_eq!(
        eg.publish_raw("secure", ct, body.as_bytes(), &format!("aeg-sas-key: {k1}"))
            .status,
        401
    );
    assert_eq!(
        eg.publish_raw("secure", ct, body.as_bytes(), &format!("aeg-sas-key: {k2}"))
            .status,
        200
    );
    let r = eg.mgmt(
        "POST",
        "/mgmt/namespaces/default/regenerateKey",
        br#"{"keyName":"key3"}"#,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn management_api_crud_in_arm_shapes() {
    let eg = Eg::start(&[]);
    let http = eg.srv.http;
    // Authentication.
    let r = request(http, "GET", "/mgmt/namespaces", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (401, "Unauthorized"));
    let r = request(
        http,
        "GET",
        "/mgmt/namespaces",
        &["Authorization: Bearer wrong-key-wrong-key"],
        b"",
    );
    assert_eq!(r.status, 401);
    // The default namespace exists out of the box.
    let r = eg.mgmt("GET", "/mgmt/namespaces", b"");
    assert_eq!(r.json()["value"][0]["name"], "default");
    // Create, update, read, list.
    let r = eg.mgmt(
        "PUT",
        "/mgmt/namespaces/fleet",
        br#"{"location":"local","properties":{}}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let doc = r.json();
    assert_eq!(doc["type"], "Microsoft.EventGrid/namespaces");
    assert_eq!(doc["properties"]["provisioningState"], "Succeeded");
    assert!(doc["id"].as_str().unwrap().ends_with("/namespaces/fleet"));
    assert!(
        doc.get("keys").is_none() && !r.body.contains("key1"),
        "keys only via listKeys"
    );
    assert_eq!(eg.mgmt("PUT", "/mgmt/namespaces/fleet", b"{}").status, 200);
    let r = eg.mgmt(
        "PUT",
        "/mgmt/namespaces/fleet/topics/telemetry",
        br#"{"properties":{"eventRetentionInDays":3}}"#,
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["properties"]["eventRetentionInDays"], 3);
    let r = eg.mgmt(
        "PUT",
        "/mgmt/namespaces/fleet/topics/telemetry/eventSubscriptions/reader",
        br#"{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":{"receiveLockDurationInSeconds":120,"maxDeliveryCount":4,"eventTimeToLive":"P2D"}}}}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let q = &r.json()["properties"]["deliveryConfiguration"]["queue"];
    assert_eq!(
        (
            q["receiveLockDurationInSeconds"].as_u64(),
            q["maxDeliveryCount"].as_u64()
        ),
        (Some(120), Some(4))
    );
    assert_eq!(q["eventTimeToLive"], "P2D");
    let r = eg.mgmt(
        "GET",
        "/mgmt/namespaces/fleet/topics/telemetry/eventsubscriptions/READER",
        b"",
    );
    assert_eq!(
        (r.status, r.json()["name"].as_str()),
        (200, Some("reader")),
        "case-insensitive names"
    );
    assert_eq!(
        eg.mgmt("GET", "/mgmt/namespaces/fleet/topics", b"").json()["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        eg.mgmt(
            "GET",
            "/mgmt/namespaces/fleet/topics/telemetry/eventSubscriptions",
            b""
        )
        .json()["value"][0]["name"],
        "reader"
    );
    // Validation errors in Event Grid's body.
    for (path, body, needle) in [
        ("/mgmt/namespaces/x", "{}", "name"),
        (
            "/mgmt/namespaces/fleet/topics/tt1",
            r#"{"properties":{"eventRetentionInDays":9}}"#,
            "eventRetentionInDays",
        ),
        ("/mgmt/namespaces/fleet/topics/tt1", "{not json", "JSON"),
        (
            "/mgmt/namespaces/fleet/topics/telemetry/eventSubscriptions/short-lock",
            r#"{"properties":{"deliveryConfiguration":{"queue":{"receiveLockDurationInSeconds":0}}}}"#,
            "receiveLockDurationInSeconds",
        ),
        (
            "/mgmt/namespaces/fleet/topics/telemetry/eventSubscriptions/long-ttl",
            r#"{"properties":{"deliveryConfiguration":{"queue":{"eventTimeToLive":"P4D"}}}}"#,
            "retention",
        ),
    ] {
        let r = eg.mgmt("PUT", path, body.as_bytes());
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.message().contains(needle), "{needle}: {r:?}");
    }
    let r = eg.mgmt("PUT", "/mgmt/namespaces/nope/topics/tt1", b"{}");
    assert_eq!((r.status, r.code().as_str()), (404, "ResourceNotFound"));
    // Deletes: 200, then 204; the namespace takes its topics and subscriptions with it.
    let sub = "/mgmt/namespaces/fleet/topics/telemetry/eventSubscriptions/reader";
    assert_eq!(eg.mgmt("DELETE", sub, b"").status, 200);
    assert_eq!(eg.mgmt("DELETE", sub, b"").status, 204);
    assert_eq!(eg.mgmt("GET", sub, b"").status, 404);
    assert_eq!(eg.mgmt("DELETE", "/mgmt/namespaces/fleet", b"").status, 200);
    assert_eq!(
        eg.mgmt("GET", "/mgmt/namespaces/fleet/topics/telemetry", b"")
            .status,
        404
    );
    assert_eq!(eg.mgmt("DELETE", "/mgmt/namespaces/fleet", b"").status, 204);
    let r = request(http, "GET", "/no/such/path", &[], b"");
    assert_eq!((r.status, r.code().as_str()), (404, "NotFound"));
}

#[test]
fn resources_file_applies_idempotently_and_everything_survives_restart() {
    let dir = TempDir::new("res");
    let file = dir.0.join("resources.toml");
    std::fs::write(
        &file,
        r#"
[[namespaces]]
name = "default"
[[namespaces.topics]]
name = "declared"
properties = { eventRetentionInDays = 2 }
[[namespaces.topics.subscriptions]]
name = "reader"
properties = { deliveryConfiguration = { deliveryMode = "Queue", queue = { receiveLockDurationInSeconds = 5, maxDeliveryCount = 2 } } }
[[namespaces.topics.subscriptions]]
name = "long-gone"
properties = { expirationTimeUtc = "2001-01-01T00:00:00Z" }
"#,
    )
    .unwrap();
    let data = dir.0.join("data");
    let res = file.to_str().unwrap();
    let mut eg = Eg::start_in(&data, &[("EVGRID_RESOURCES", res)]);
    let r = eg.mgmt(
        "GET",
        "/mgmt/namespaces/default/topics/declared/eventSubscriptions/reader",
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["properties"]["deliveryConfiguration"]["queue"]["maxDeliveryCount"],
        2
    );
    // A declared subscription whose expiration has passed is not applied (and does not stop
    // start-up).
    let r = eg.mgmt(
        "GET",
        "/mgmt/namespaces/default/topics/declared/eventSubscriptions/long-gone",
        b"",
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        eg.publish("declared", &json!([ev("kept-1"), ev("kept-2")]))
            .status,
        200
    );
    let got = eg.receive("declared", "reader", 1, 10);
    eg.settle("declared", "reader", "acknowledge", "", &[&got[0].0]);
    let key = eg.key.clone();
    assert!(eg.srv.terminate().success());
    // Same file again: nothing duplicated, nothing reset; keys and events survived.
    let eg = Eg::start_in(&data, &[("EVGRID_RESOURCES", res)]);
    assert_eq!(eg.key, key);
    let topics = eg
        .mgmt("GET", "/mgmt/namespaces/default/topics", b"")
        .json();
    assert_eq!(topics["value"].as_array().unwrap().len(), 1);
    // New events continue the sequence: none overwrites what the store kept.
    let r = eg.publish("declared", &json!([ev("after-1"), ev("after-2")]));
    assert_eq!(r.status, 200);
    assert_eq!(
        ids(&receive_n(&eg, "declared", "reader", 3)),
        ["kept-2", "after-1", "after-2"]
    );
    // A broken resource file stops start-up with the file and the resource named.
    std::fs::write(&file, "[[namespaces]]\nname = \"x\"\n").unwrap();
    drop(eg);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .args([
            "--mqtt-bind",
            "127.0.0.1:0",
            "--http-bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .args(["--resources", res])
        .env("EVGRID_ADMIN_KEY", ADMIN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resources.toml") && err.contains("namespace x"),
        "{err}"
    );
}

#[test]
fn a_damaged_or_foreign_store_is_refused_and_left_alone() {
    let dir = TempDir::new("damaged");
    let store = dir.0.join("store.redb");
    let junk = b"definitely not a redb file, but somebody's data".to_vec();
    std::fs::write(&store, &junk).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evgrid"))
        .args([
            "--mqtt-bind",
            "127.0.0.1:0",
            "--http-bind",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir.0)
        .env("EVGRID_ADMIN_KEY", ADMIN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store.redb") && err.contains("not an evgrid store"),
        "{err}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), junk, "not emptied");
}

/// Publishers and an acknowledging consumer run until the process is killed with SIGKILL;
/// after restart every publish answered 200 is there (unless its ack was answered), and no
/// acknowledged event comes back.
#[test]
fn kill_9_loses_no_accepted_event_and_resurrects_no_acknowledged_one() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("kill9");
    let data = dir.0.join("data");
    let eg = Eg::start_in(&data, &[]);
    eg.topic("durable");
    eg.queue_sub(
        "durable",
        "sub1",
        json!({"receiveLockDurationInSeconds": 60}),
    );
    let accepted = Mutex::new(Vec::<String>::new());
    let acked = Mutex::new(HashSet::<String>::new());
    // Events whose acknowledge was sent: if the kill cut its answer, either outcome is right.
    let attempted = Mutex::new(HashSet::<String>::new());
    let stop = AtomicBool::new(false);
    let http = eg.srv.http;
    let key = eg.key.clone();
    std::thread::scope(|s| {
        for p in 0..4 {
            let (accepted, stop, key) = (&accepted, &stop, &key);
            s.spawn(move || {
                let auth = format!("Authorization: SharedAccessKey {key}");
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<Value> = (0..20).map(|i| ev(&format!("p{p}-{n}-{i}"))).collect();
                    let body = json!(batch).to_string();
                    // A connection cut by the kill is simply not an acceptance.
                    let r = std::panic::catch_unwind(|| {
                        request(
                            http,
                            "POST",
                            &format!("/namespaces/default/topics/durable:publish?{API}"),
                            &[&auth, "Content-Type: application/cloudevents-batch+json"],
                            body.as_bytes(),
                        )
                    });
                    match r {
                        Ok(r) if r.status == 200 => accepted
                            .lock()
                            .unwrap()
                            .extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_string())),
                        _ => break,
                    }
                    n += 1;
                }
            });
        }
        let (acked, attempted, stop, eg) = (&acked, &attempted, &stop, &eg);
        s.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let got = std::panic::catch_unwind(|| eg.receive("durable", "sub1", 50, 10));
                let Ok(got) = got else { break };
                let toks: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
                if toks.is_empty() {
                    continue;
                }
                attempted
                    .lock()
                    .unwrap()
                    .extend(got.iter().map(|g| g.2["id"].as_str().unwrap().to_string()));
                let r = std::panic::catch_unwind(|| {
                    eg.settle("durable", "sub1", "acknowledge", "", &toks)
                });
                let Ok((ok, _)) = r else { break };
                let ok: HashSet<&String> = ok.iter().collect();
                for g in &got {
                    if ok.contains(&g.0) {
                        acked
                            .lock()
                            .unwrap()
                            .insert(g.2["id"].as_str().unwrap().to_string());
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(2500));
        eg.srv.kill9(); // mid-load
        stop.store(true, Ordering::Relaxed);
    });
    let accepted = accepted.into_inner().unwrap();
    let acked = acked.into_inner().unwrap();
    let attempted = attempted.into_inner().unwrap();
    assert!(
        accepted.len() >= 200,
        "load ran: {} accepted",
        accepted.len()
    );
    assert!(!acked.is_empty(), "the consumer acknowledged some");

    let eg = Eg::start_in(&data, &[]);
    let want: HashSet<&String> = accepted
        .iter()
        .filter(|id| !attempted.contains(*id))
        .collect();
    let mut got = HashSet::new();
    loop {
        let batch = eg.receive("durable", "sub1", 100, 10);
        if batch.is_empty() {
            break;
        }
        for g in batch {
            let id = g.2["id"].as_str().unwrap().to_string();
            assert!(!acked.contains(&id), "acknowledged event {id} came back");
            got.insert(id);
        }
    }
    let missing: Vec<_> = want
        .iter()
        .filter(|id| !got.contains(id.as_str()))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "accepted events lost: {missing:?} of {}",
        want.len()
    );
}

/// A backlog 50 times the in-memory window: the window stays bounded while the rest waits on disk
/// (the metrics say which is where), a release and a lock expiry keep their rules at the window's
/// edge, and after `kill -9` the restart reads one window, not the backlog, and every event not
/// acknowledged is received once, in publish order.
#[test]
fn a_backlog_beyond_the_memory_window_waits_on_disk_and_drains_in_order_across_kill_9() {
    const N: usize = 3000;
    let dir = TempDir::new("paged");
    let data = dir.0.join("data");
    let window = [("EVGRID_STORE_BACKLOG_WINDOW_BYTES", "65536")];
    let eg = Eg::start_in(&data, &window);
    eg.topic("paged");
    eg.queue_sub("paged", "sub1", json!({"receiveLockDurationInSeconds": 1}));
    let pad = "x".repeat(1000);
    let mut order = Vec::new();
    for b in 0..N / 100 {
        let batch: Vec<Value> = (0..100)
            .map(|i| {
                let id = format!("e{:05}", b * 100 + i);
                order.push(id.clone());
                json!({"specversion": "1.0", "id": id, "source": "/test", "type": "Test.Created", "data": {"pad": pad}})
            })
            .collect();
        let r = eg.publish("paged", &json!(batch));
        assert_eq!(r.status, 200, "{r:?}");
    }
    // The 200 comes once the batch is committed and in the subscription's mailbox; it counts
    // the batch a moment later.
    common::wait_until("every event is counted, in memory or on disk", || {
        eg.srv.metric("evgrid_backlog_disk_events") + eg.srv.metric("evgrid_backlog_memory_events")
            >= N as f64
    });
    let in_memory = eg.srv.metric("evgrid_backlog_memory_bytes");
    let on_disk = eg.srv.metric("evgrid_backlog_disk_events");
    assert!(
        in_memory <= 65536.0 + 2048.0,
        "window held {in_memory} bytes"
    );
    assert!(on_disk >= (N - 70) as f64, "{on_disk} events on disk");
    assert_eq!(eg.srv.metric("evgrid_events_queued"), N as f64);

    // Through the window's edge: acknowledge 200, release 10 (they come back counted, after
    // what is already lined up), let 5 locks expire.
    // Locked events stay in the window, so a consumer settles as it goes. A receive may answer
    // fewer than it asked for while the next page is being read, so each asks for what is left.
    let mut first = Vec::new();
    while first.len() < 200 {
        let got = eg.receive("paged", "sub1", (200 - first.len()).min(40), 10);
        let toks: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            eg.settle("paged", "sub1", "acknowledge", "", &toks).0.len(),
            toks.len()
        );
        first.extend(ids(&got));
    }
    assert_eq!(first, order[..200]);
    let mut next = Vec::new();
    while next.len() < 15 {
        next.extend(eg.receive("paged", "sub1", 15 - next.len(), 10));
    }
    assert_eq!(ids(&next), order[200..215]);
    let rel: Vec<&str> = next[..10].iter().map(|g| g.0.as_str()).collect();
    assert_eq!(eg.settle("paged", "sub1", "release", "", &rel).0.len(), 10);
    std::thread::sleep(Duration::from_millis(1500)); // the other 5 locks expire
    let acked: HashSet<&str> = order[..200].iter().map(|s| s.as_str()).collect();
    eg.srv.kill9();

    let eg = Eg::start_in(&data, &window);
    assert!(
        eg.srv.metric("evgrid_backlog_memory_bytes") <= 65536.0 + 2048.0,
        "start-up read one window"
    );
    assert!(eg.srv.metric("evgrid_backlog_disk_events") >= (N - 200 - 70) as f64);
    let mut got = Vec::new();
    loop {
        let batch = eg.receive("paged", "sub1", 100, 10);
        if batch.is_empty() {
            break;
        }
        let toks: Vec<&str> = batch.iter().map(|g| g.0.as_str()).collect();
        for g in &batch {
            // The release and the expired locks were committed with their counts.
            let id = g.2["id"].as_str().unwrap();
            let want = if order[200..215].iter().any(|o| o == id) {
                2
            } else {
                1
            };
            assert_eq!(g.1, want, "delivery count of {id}");
        }
        got.extend(ids(&batch));
        assert_eq!(
            eg.settle("paged", "sub1", "acknowledge", "", &toks).0.len(),
            toks.len()
        );
    }
    let want: Vec<&String> = order
        .iter()
        .filter(|id| !acked.contains(id.as_str()))
        .collect();
    assert_eq!(got.len(), want.len(), "each event once");
    assert!(
        got.iter().zip(&want).all(|(a, b)| a == *b),
        "in publish order"
    );
    assert_eq!(eg.srv.metric("evgrid_backlog_disk_events"), 0.0);
    assert_eq!(eg.srv.metric("evgrid_events_queued"), 0.0);
}

/// The shortest time to live Event Grid allows is one minute, so this test waits that long
/// (it runs beside the others). A second subscription's backlog, far beyond its in-memory window
/// and on disk in several queue segments, expires too, with nobody reading, and its segments
/// are deleted while the server runs.
#[test]
fn events_past_their_time_to_live_are_dead_lettered() {
    let dir = TempDir::new("ttl");
    let data = dir.0.join("data");
    let eg = Eg::start_in(
        &data,
        &[
            ("EVGRID_STORE_BACKLOG_WINDOW_BYTES", "65536"),
            ("EVGRID_STORE_SEGMENT_BYTES", "1048576"),
        ],
    );
    eg.topic("backlog");
    eg.queue_sub("backlog", "nobody", json!({"eventTimeToLive": "PT1M"}));
    let pad = "x".repeat(1000);
    for b in 0..8 {
        let batch: Vec<Value> = (0..500)
            .map(|i| json!({"specversion": "1.0", "id": format!("b{}", b * 500 + i), "source": "/test", "type": "T", "data": {"pad": pad}}))
            .collect();
        assert_eq!(eg.publish("backlog", &json!(batch)).status, 200);
    }
    let segments = || {
        std::fs::read_dir(data.join("queue"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    assert!(segments() >= 4, "{} segments", segments());
    common::wait_until("the backlog is mostly on disk", || {
        eg.srv.metric("evgrid_backlog_disk_events") >= 3900.0
    });
    eg.topic("shortlived");
    eg.queue_sub(
        "shortlived",
        "sub1",
        json!({"eventTimeToLive": "PT1M", "deadLetterDestinationWithResourceIdentity": dl()}),
    );
    assert_eq!(eg.publish("shortlived", &json!([ev("old")])).status, 200);
    std::thread::sleep(Duration::from_secs(61));
    let dls = eg.dead_letters("shortlived", "sub1");
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0]["event"]["id"], "old");
    assert_eq!(
        dls[0]["deadLetterProperties"]["deadletterreason"],
        "TimeToLiveExceeded"
    );
    assert_eq!(dls[0]["deadLetterProperties"]["deliveryattempts"], 0);
    eg.publish("shortlived", &json!([ev("fresh")]));
    assert_eq!(ids(&eg.receive("shortlived", "sub1", 10, 10)), ["fresh"]);
    // What is left in memory is "fresh", locked by the receive above.
    common::wait_until("the backlog on disk expired", || {
        eg.srv.metric("evgrid_backlog_disk_events") == 0.0
            && eg.srv.metric("evgrid_backlog_memory_events") == 1.0
    });
    common::wait_until("its segments are deleted", || segments() <= 2);
    assert!(eg.srv.metric("evgrid_store_log_segments_reclaimed_total") >= 2.0);
}
