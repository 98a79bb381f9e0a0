//! The basic tier over real HTTP against the real binary: custom topics, domains, webhook
//! subscriptions with both validation handshakes, delivery headers and schemas, batching,
//! every filter operator end to end, retries, dead letters, probation of a failing endpoint
//! beside a healthy one, and pending retries across `kill -9`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{Resp, mgmt_json, request};
use common::webhook::{Hook, Recorded, Reply, handshake};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const WAIT: Duration = Duration::from_secs(20);

struct Eg {
    srv: Server,
}

fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_EVENTS_TICK_MS", "20"),
        ("EVGRID_PUSH_RETRY_SCHEDULE_MS", "200,300,400"),
        ("EVGRID_PUSH_REQUEST_TIMEOUT_SECS", "2"),
    ];
    env.extend_from_slice(extra);
    env
}

impl Eg {
    fn start(extra: &[(&str, &str)]) -> Eg {
        Eg {
            srv: Server::start(&env_with(extra)),
        }
    }

    fn start_in(dir: &Path, extra: &[(&str, &str)]) -> Eg {
        Eg {
            srv: Server::start_in(dir, &env_with(extra)),
        }
    }

    fn mgmt(&self, method: &str, path: &str, body: &Value) -> Resp {
        mgmt_json(self.srv.http, ADMIN, method, path, body)
    }

    /// Creates a custom topic (or domain, with `/mgmt/domains/...`) and answers its key1.
    fn source(&self, path: &str, props: Value) -> String {
        let r = self.mgmt("PUT", path, &json!({ "properties": props }));
        assert_eq!(r.status, 201, "{r:?}");
        let k = self.mgmt("POST", &format!("{path}/listKeys"), &Value::Null);
        k.json()["key1"].as_str().unwrap().to_string()
    }

    fn sub(&self, scope: &str, name: &str, props: Value) -> Resp {
        self.mgmt(
            "PUT",
            &format!("{scope}/eventSubscriptions/{name}"),
            &json!({ "properties": props }),
        )
    }

    fn hook_sub(&self, scope: &str, name: &str, url: &str, extra: Value) -> Value {
        let mut props =
            json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}});
        merge(&mut props, extra);
        let r = self.sub(scope, name, props);
        assert_eq!(r.status, 201, "{r:?}");
        r.json()
    }

    fn publish_raw(&self, path: &str, headers: &[&str], body: &[u8]) -> Resp {
        request(self.srv.http, "POST", path, headers, body)
    }

    fn publish(&self, topic_path: &str, key: &str, events: &Value) -> Resp {
        let k = format!("aeg-sas-key: {key}");
        self.publish_raw(
            &format!("{topic_path}/api/events?api-version=2018-01-01"),
            &[&k, "Content-Type: application/json; charset=utf-8"],
            events.to_string().as_bytes(),
        )
    }

    fn dead_letters(&self, sub_path: &str) -> Vec<Value> {
        let r = self.mgmt("GET", &format!("{sub_path}/deadLetters"), &Value::Null);
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["value"].as_array().unwrap().clone()
    }
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn eg_event(id: &str, ty: &str, subject: &str, data: Value) -> Value {
    json!({"id": id, "eventType": ty, "subject": subject, "eventTime": "2024-05-01T10:00:00Z", "data": data, "dataVersion": "1.0"})
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn on_path<'a>(rs: &'a [Recorded], path: &str) -> Vec<&'a Recorded> {
    rs.iter()
        .filter(|r| r.is_notification() && r.path == path)
        .collect()
}

#[test]
fn handshakes_gate_activation() {
    let eg = Eg::start(&[]);
    let key = eg.source("/mgmt/topics/orders", json!({}));

    // Synchronous Event Grid handshake.
    let hook = Hook::ok();
    let doc = eg.hook_sub(
        "/mgmt/topics/orders",
        "sync",
        &hook.url("/sync?code=secret"),
        json!({}),
    );
    assert_eq!(doc["properties"]["provisioningState"], "Succeeded");
    let d = &doc["properties"]["destination"]["properties"];
    assert_eq!(d["endpointBaseUrl"], hook.url("/sync"));
    assert!(d.get("endpointUrl").is_none(), "{doc}");
    assert_eq!(
        doc["properties"]["topic"],
        "/providers/Microsoft.EventGrid/topics/orders"
    );
    let v = &hook.requests()[0];
    assert_eq!(v.header("aeg-event-type"), Some("SubscriptionValidation"));
    assert_eq!(v.header("aeg-subscription-name"), Some("SYNC"));
    assert_eq!(v.path, "/sync?code=secret");
    let ve = &v.json()[0];
    assert_eq!(
        ve["eventType"],
        "Microsoft.EventGrid.SubscriptionValidationEvent"
    );
    assert!(
        ve["data"]["validationCode"]
            .as_str()
            .is_some_and(|c| c.len() == 36)
    );

    // A refused handshake: nothing is created.
    let refusing = Hook::start(|_| Reply::status(403));
    let props = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": refusing.url("/no")}}});
    let r = eg.sub("/mgmt/topics/orders", "refused", props);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().contains("validation"), "{r:?}");
    assert_eq!(
        eg.mgmt(
            "GET",
            "/mgmt/topics/orders/eventSubscriptions/refused",
            &Value::Null
        )
        .status,
        404
    );
    // A wrong code is refused too.
    let wrong = Hook::start(|r| {
        if r.header("aeg-event-type") == Some("SubscriptionValidation") {
            Reply {
                status: 200,
                headers: vec![],
                body: br#"{"validationResponse":"nope"}"#.to_vec(),
            }
        } else {
            Reply::status(200)
        }
    });
    let props = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": wrong.url("/w")}}});
    assert_eq!(eg.sub("/mgmt/topics/orders", "wrong", props).status, 400);
    // Unreachable endpoint.
    let props = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:1/x"}}});
    let r = eg.sub("/mgmt/topics/orders", "unreachable", props);
    assert_eq!(r.status, 400, "{r:?}");

    // Manual validation: 200 without the code, then a GET on the validation URL.
    // Every request, the validation one included, gets a bare 200.
    let manual = Hook::start(|_| Reply::status(200));
    let doc = eg.hook_sub(
        "/mgmt/topics/orders",
        "manual",
        &manual.url("/m"),
        json!({}),
    );
    assert_eq!(
        doc["properties"]["provisioningState"],
        "AwaitingManualAction"
    );
    assert_eq!(
        eg.publish(
            "/topics/orders",
            &key,
            &json!([eg_event("before", "T", "s", json!(1))])
        )
        .status,
        200
    );
    let url = manual.requests()[0].json()[0]["data"]["validationUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let path = url
        .split_once(&eg.srv.http.to_string())
        .unwrap()
        .1
        .to_string();
    let bad = path.replace("token=", "token=x");
    assert_eq!(request(eg.srv.http, "GET", &bad, &[], b"").status, 400);
    let r = request(eg.srv.http, "GET", &path, &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let got = eg
        .mgmt(
            "GET",
            "/mgmt/topics/orders/eventSubscriptions/manual",
            &Value::Null,
        )
        .json();
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        eg.publish(
            "/topics/orders",
            &key,
            &json!([eg_event("after", "T", "s", json!(1))])
        )
        .status,
        200
    );
    let delivered = manual.wait_delivered(1, WAIT);
    assert_eq!(
        ids(&delivered),
        BTreeSet::from(["after".to_string()]),
        "not validated yet: nothing routed"
    );
    // The sync subscription got both.
    assert_eq!(ids(&hook.wait_delivered(2, WAIT)).len(), 2);

    // CloudEvents subscriptions use the OPTIONS abuse-protection handshake.
    eg.source(
        "/mgmt/topics/cevt",
        json!({"inputSchema": "CloudEventSchemaV1_0"}),
    );
    let ce = Hook::ok();
    eg.hook_sub("/mgmt/topics/cevt", "cesub", &ce.url("/ce"), json!({}));
    let o = &ce.requests()[0];
    assert_eq!(
        (o.method.as_str(), o.header("WebHook-Request-Origin")),
        ("OPTIONS", Some("eventgrid.azure.net"))
    );
    let no_options = Hook::start(|r| Reply::status(if r.method == "OPTIONS" { 405 } else { 200 }));
    let props = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": no_options.url("/x")}}});
    let r = eg.sub("/mgmt/topics/cevt", "refused", props);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().contains("405"), "{r:?}");
}

#[test]
fn headers_schemas_batching_and_attribute_mappings() {
    let eg = Eg::start(&[]);
    let key = eg.source("/mgmt/topics/orders", json!({}));
    let hook = Hook::ok();
    let t = "/mgmt/topics/orders";
    let mapped = eg.hook_sub(
        t,
        "single",
        &hook.url("/single"),
        json!({"destination": {"properties": {"deliveryAttributeMappings": [
            {"name": "Authorization", "type": "Static", "properties": {"value": "Bearer s3cret", "isSecret": true}},
            {"name": "X-Region", "type": "Dynamic", "properties": {"sourceField": "data.region"}}]}}}),
    );
    let m = &mapped["properties"]["destination"]["properties"]["deliveryAttributeMappings"];
    assert!(
        m[0]["properties"].get("value").is_none(),
        "secret echoed: {mapped}"
    );
    assert!(!mapped.to_string().contains("s3cret"));
    eg.hook_sub(
        t,
        "as-ce",
        &hook.url("/ce"),
        json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}),
    );
    eg.hook_sub(
        t,
        "batched",
        &hook.url("/batch"),
        json!({"destination": {"properties": {"maxEventsPerBatch": 10}}}),
    );
    eg.hook_sub(t, "ce-batched", &hook.url("/cebatch"), json!({"eventDeliverySchema": "CloudEventSchemaV1_0", "destination": {"properties": {"maxEventsPerBatch": 100, "preferredBatchSizeInKilobytes": 1}}}));

    let events: Vec<Value> = (0..25)
        .map(|i| {
            eg_event(
                &format!("e{i}"),
                "Order.Created",
                &format!("orders/{i}"),
                json!({"region": "eu", "i": i, "pad": "x".repeat(100)}),
            )
        })
        .collect();
    assert_eq!(
        eg.publish("/topics/orders", &key, &json!(events)).status,
        200
    );
    hook.wait(WAIT, "all deliveries", |rs| {
        ["/single", "/ce", "/batch", "/cebatch"].iter().all(|p| {
            on_path(rs, p)
                .iter()
                .map(|r| r.events().len())
                .sum::<usize>()
                >= 25
        })
    });
    let rs = hook.requests();

    let single = on_path(&rs, "/single");
    assert_eq!(single.len(), 25);
    let r = single[0];
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("aeg-event-type"), Some("Notification"));
    assert_eq!(r.header("aeg-subscription-name"), Some("SINGLE"));
    assert_eq!(r.header("aeg-delivery-count"), Some("0"));
    assert_eq!(r.header("aeg-data-version"), Some("1.0"));
    assert_eq!(r.header("aeg-metadata-version"), Some("1"));
    assert_eq!(r.header("Authorization"), Some("Bearer s3cret"));
    assert_eq!(r.header("X-Region"), Some("eu"));
    let e = &r.json()[0];
    assert!(r.json().is_array());
    assert_eq!(r.header("aeg-output-event-id"), e["id"].as_str());
    assert_eq!(e["topic"], "/providers/Microsoft.EventGrid/topics/orders");
    assert_eq!(e["metadataVersion"], "1");
    assert_eq!(e["eventType"], "Order.Created");

    let ce = on_path(&rs, "/ce");
    assert_eq!(ce.len(), 25);
    assert_eq!(
        ce[0].header("Content-Type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    assert_eq!(ce[0].header("Origin"), Some("eventgrid.azure.net"));
    assert_eq!(ce[0].header("aeg-metadata-version"), Some("1.0"));
    let c = ce[0].json();
    assert!(
        c.is_object(),
        "unbatched CloudEvents are single objects: {c}"
    );
    assert_eq!(c["specversion"], "1.0");
    assert_eq!(c["source"], "/providers/Microsoft.EventGrid/topics/orders");
    assert_eq!(c["type"], "Order.Created");
    assert_eq!(c["dataversion"], "1.0");
    assert_eq!(c["data"]["region"], "eu");

    let batch = on_path(&rs, "/batch");
    assert!(
        batch.iter().all(|r| r.events().len() <= 10),
        "maxEventsPerBatch"
    );
    assert!(
        batch.len() >= 3 && batch.len() < 25,
        "batched: {} requests",
        batch.len()
    );
    let all: Vec<Value> = batch.iter().flat_map(|r| r.events()).collect();
    assert_eq!(ids(&all).len(), 25);

    let cebatch = on_path(&rs, "/cebatch");
    assert_eq!(
        cebatch[0].header("Content-Type"),
        Some("application/cloudevents-batch+json; charset=utf-8")
    );
    // ~300-byte events, 1 KB preferred: a few per request, never 100.
    assert!(
        cebatch
            .iter()
            .all(|r| r.events().len() <= 4 && r.body.len() <= 1024 + 400),
        "{:?}",
        cebatch.iter().map(|r| r.body.len()).collect::<Vec<_>>()
    );
}

#[test]
fn every_filter_operator_end_to_end() {
    let eg = Eg::start(&[]);
    let key = eg.source("/mgmt/topics/filt", json!({}));
    let hook = Hook::ok();
    let events = json!([
        eg_event(
            "a",
            "Order.Created",
            "orders/eu/1.json",
            json!({"n": 5, "region": "EU", "ok": true, "tags": ["x", "y"], "nested": {"k": "deep"}})
        ),
        eg_event(
            "b",
            "Order.Shipped",
            "orders/us/2.xml",
            json!({"n": 15, "region": "us", "ok": false, "tags": ["z"], "nested": {"k": null}})
        ),
        eg_event("c", "Invoice.Paid", "invoices/3.json", json!({"n": 25.5})),
    ]);
    let adv = |f: Value| json!({"advancedFilters": [f]});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "types",
            json!({"includedEventTypes": ["order.created", "Invoice.Paid"]}),
            &["a", "c"],
        ),
        (
            "begins",
            json!({"subjectBeginsWith": "ORDERS/"}),
            &["a", "b"],
        ),
        (
            "ends-cs",
            json!({"subjectEndsWith": ".JSON", "isSubjectCaseSensitive": true}),
            &[],
        ),
        ("ends", json!({"subjectEndsWith": ".json"}), &["a", "c"]),
        (
            "num-in",
            adv(json!({"operatorType": "NumberIn", "key": "data.n", "values": [5, 25.5]})),
            &["a", "c"],
        ),
        (
            "num-not-in",
            adv(json!({"operatorType": "NumberNotIn", "key": "data.n", "values": [5]})),
            &["b", "c"],
        ),
        (
            "lt",
            adv(json!({"operatorType": "NumberLessThan", "key": "data.n", "value": 15})),
            &["a"],
        ),
        (
            "gt",
            adv(json!({"operatorType": "NumberGreaterThan", "key": "data.n", "value": 15})),
            &["c"],
        ),
        (
            "le",
            adv(json!({"operatorType": "NumberLessThanOrEquals", "key": "data.n", "value": 15})),
            &["a", "b"],
        ),
        (
            "ge",
            adv(json!({"operatorType": "NumberGreaterThanOrEquals", "key": "data.n", "value": 15})),
            &["b", "c"],
        ),
        (
            "range",
            adv(
                json!({"operatorType": "NumberInRange", "key": "data.n", "values": [[0, 10], [20, 30]]}),
            ),
            &["a", "c"],
        ),
        (
            "not-range",
            adv(json!({"operatorType": "NumberNotInRange", "key": "data.n", "values": [[0, 10]]})),
            &["b", "c"],
        ),
        (
            "bool",
            adv(json!({"operatorType": "BoolEquals", "key": "data.ok", "value": false})),
            &["b"],
        ),
        (
            "str-in",
            adv(json!({"operatorType": "StringIn", "key": "data.region", "values": ["eu"]})),
            &["a"],
        ),
        (
            "str-not-in",
            adv(json!({"operatorType": "StringNotIn", "key": "data.region", "values": ["eu"]})),
            &["b", "c"],
        ),
        (
            "contains",
            adv(json!({"operatorType": "StringContains", "key": "subject", "values": ["/US/"]})),
            &["b"],
        ),
        (
            "not-contains",
            adv(json!({"operatorType": "StringNotContains", "key": "subject", "values": ["eu"]})),
            &["b", "c"],
        ),
        (
            "str-begins",
            adv(
                json!({"operatorType": "StringBeginsWith", "key": "eventtype", "values": ["order."]}),
            ),
            &["a", "b"],
        ),
        (
            "str-not-begins",
            adv(
                json!({"operatorType": "StringNotBeginsWith", "key": "eventtype", "values": ["order."]}),
            ),
            &["c"],
        ),
        (
            "str-ends",
            adv(
                json!({"operatorType": "StringEndsWith", "key": "data.nested.k", "values": ["EEP"]}),
            ),
            &["a"],
        ),
        (
            "str-not-ends",
            adv(json!({"operatorType": "StringNotEndsWith", "key": "id", "values": ["a"]})),
            &["b", "c"],
        ),
        (
            "null",
            adv(json!({"operatorType": "IsNullOrUndefined", "key": "data.nested.k"})),
            &["b", "c"],
        ),
        (
            "not-null",
            adv(json!({"operatorType": "IsNotNull", "key": "data.region"})),
            &["a", "b"],
        ),
        (
            "arrays",
            json!({"enableAdvancedFilteringOnArrays": true, "advancedFilters": [{"operatorType": "StringIn", "key": "data.tags", "values": ["y"]}]}),
            &["a"],
        ),
        (
            "no-arrays",
            adv(json!({"operatorType": "StringIn", "key": "data.tags", "values": ["y"]})),
            &[],
        ),
        (
            "and",
            json!({"includedEventTypes": ["Order.Created", "Order.Shipped"], "advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.n", "value": 1},
            {"operatorType": "StringIn", "key": "dataversion", "values": ["1.0"]},
            {"operatorType": "StringBeginsWith", "key": "topic", "values": ["/providers/microsoft.eventgrid/topics/f"]}]}),
            &["a", "b"],
        ),
    ];
    for (name, filter, _) in &cases {
        eg.hook_sub(
            "/mgmt/topics/filt",
            &format!("op-{name}"),
            &hook.url(&format!("/{name}")),
            json!({"filter": filter}),
        );
    }
    // A filter that cannot compile is refused with its reason.
    let r = eg.sub("/mgmt/topics/filt", "broken", json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/x")}}, "filter": adv(json!({"operatorType": "NumberIn", "key": "data.n", "values": ["five"]}))}));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(eg.publish("/topics/filt", &key, &events).status, 200);
    let expected: usize = cases.iter().map(|c| c.2.len()).sum();
    hook.wait(WAIT, "filtered deliveries", |rs| {
        rs.iter().filter(|r| r.is_notification()).count() >= expected
    });
    // Give a wrong extra delivery a moment to show up.
    std::thread::sleep(Duration::from_millis(300));
    let rs = hook.requests();
    for (name, _, want) in &cases {
        let got: Vec<Value> = on_path(&rs, &format!("/{name}"))
            .iter()
            .flat_map(|r| r.events())
            .collect();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(ids(&got), want, "filter {name}");
    }
}

fn fail_then_ok(fails: usize, status: u16) -> impl FnMut(&Recorded) -> Reply + Send {
    let mut n = 0;
    move |r| {
        if let Some(h) = handshake(r) {
            return h;
        }
        n += 1;
        Reply::status(if n <= fails { status } else { 200 })
    }
}

#[test]
fn retries_dead_letters_and_their_files() {
    let dir = TempDir::new("dl");
    let dl_dir = dir.0.join("dead");
    let eg = Eg::start(&[("EVGRID_PUSH_DEAD_LETTER_DIR", dl_dir.to_str().unwrap())]);
    let key = eg.source("/mgmt/topics/orders", json!({}));
    let t = "/mgmt/topics/orders";
    let dl = json!({"deadLetterDestination": {"endpointType": "StorageBlob", "properties": {"resourceId": "local", "blobContainerName": "dead"}}});

    let flaky = Hook::start(fail_then_ok(2, 500));
    eg.hook_sub(t, "flaky", &flaky.url("/f"), dl.clone());
    let bad = Hook::start(|r| handshake(r).unwrap_or(Reply::status(400)));
    eg.hook_sub(t, "bad", &bad.url("/b"), dl.clone());
    let busy = Hook::start(|r| handshake(r).unwrap_or(Reply::status(503)));
    let mut busy_props = dl.clone();
    merge(
        &mut busy_props,
        json!({"retryPolicy": {"maxDeliveryAttempts": 2}}),
    );
    eg.hook_sub(t, "busy", &busy.url("/busy"), busy_props);
    let dropped = Hook::start(|r| handshake(r).unwrap_or(Reply::status(413)));
    eg.hook_sub(t, "nodl", &dropped.url("/n"), json!({}));

    let started = Instant::now();
    assert_eq!(
        eg.publish(
            "/topics/orders",
            &key,
            &json!([eg_event("e1", "T", "s/1", json!({"v": 1}))])
        )
        .status,
        200
    );

    // Retried on the schedule until 200: delivery counts 0, 1, 2.
    flaky.wait_delivered(1, WAIT);
    let counts: Vec<_> = flaky
        .notifications()
        .iter()
        .map(|r| r.header("aeg-delivery-count").unwrap().to_string())
        .collect();
    assert_eq!(counts, ["0", "1", "2"]);
    let times: Vec<Instant> = flaky.notifications().iter().map(|r| r.at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_millis(190),
        "first retry waits the first step"
    );
    assert!(
        times[2] - times[1] >= Duration::from_millis(290),
        "second retry waits the second step"
    );

    // 400: never retried, dead-lettered after one attempt.
    let wait_dl = |path: &str, n: usize| {
        let deadline = Instant::now() + WAIT;
        loop {
            let d = eg.dead_letters(path);
            if d.len() >= n {
                return d;
            }
            assert!(Instant::now() < deadline, "no dead letter on {path}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let d = wait_dl(&format!("{t}/eventSubscriptions/bad"), 1);
    assert_eq!(bad.notifications().len(), 1);
    let rec = &d[0];
    assert_eq!(rec["id"], "e1");
    assert_eq!(rec["data"]["v"], 1);
    assert_eq!(rec["deliveryAttempts"], 1);
    assert_eq!(rec["lastHttpStatusCode"], 400);
    assert_eq!(rec["lastDeliveryOutcome"], "BadRequest");
    assert!(
        rec["publishTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(rec["lastDeliveryAttemptTime"].as_str().is_some());
    assert!(rec["deadLetterReason"].as_str().is_some());

    // 503 twice with maxDeliveryAttempts 2: exhausted; 503 asks for 3 schedule units.
    let d = wait_dl(&format!("{t}/eventSubscriptions/busy"), 1);
    assert_eq!(d[0]["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
    assert_eq!(d[0]["deliveryAttempts"], 2);
    assert_eq!(d[0]["lastDeliveryOutcome"], "Busy");
    let b = busy.notifications();
    assert_eq!(b.len(), 2);
    assert!(
        b[1].at - b[0].at >= Duration::from_millis(590),
        "503 waits at least 3 units"
    );

    // 413 without a dead-letter destination: dropped, nothing listed.
    dropped.wait(WAIT, "one attempt", |rs| {
        rs.iter().any(Recorded::is_notification)
    });
    let deadline = Instant::now() + WAIT;
    while eg.srv.metric("evgrid_events_dropped_total") < 1.0 {
        assert!(Instant::now() < deadline, "drop not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        eg.dead_letters(&format!("{t}/eventSubscriptions/nodl"))
            .is_empty()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dropped.notifications().len(), 1, "413 is not retried");

    // The same records as files: <dir>/topics/ORDERS/<SUB>/yyyy/M/d/H/*.json, each a JSON array.
    let mut files = Vec::new();
    let mut stack = vec![dl_dir.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let rel = f
            .strip_prefix(&dl_dir)
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(
            rel.starts_with("topics/ORDERS/BAD/") || rel.starts_with("topics/ORDERS/BUSY/"),
            "{rel}"
        );
        assert_eq!(rel.split('/').count(), 8, "{rel}");
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        assert_eq!(v[0]["id"], "e1");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn events_past_their_time_to_live_are_dead_lettered() {
    // TTL is counted in minutes (at least 1); the check runs when the next attempt comes due.
    let eg = Eg::start(&[("EVGRID_PUSH_RETRY_SCHEDULE_MS", "5000")]);
    let key = eg.source("/mgmt/topics/ttl", json!({}));
    let hook = Hook::start(|r| handshake(r).unwrap_or(Reply::status(500)));
    eg.hook_sub(
        "/mgmt/topics/ttl",
        "sub1",
        &hook.url("/t"),
        json!({"retryPolicy": {"eventTimeToLiveInMinutes": 1, "maxDeliveryAttempts": 30},
               "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {}}}),
    );
    assert_eq!(
        eg.publish(
            "/topics/ttl",
            &key,
            &json!([eg_event("old", "T", "s", json!(1))])
        )
        .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let d = loop {
        let d = eg.dead_letters("/mgmt/topics/ttl/eventSubscriptions/sub1");
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "not dead-lettered after its TTL");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(d[0]["deadLetterReason"], "TimeToLiveExceeded");
    let attempts = d[0]["deliveryAttempts"].as_u64().unwrap();
    assert!(
        (10..=14).contains(&attempts),
        "about one attempt per 5 s for a minute: {attempts}"
    );
    assert_eq!(hook.notifications().len() as u64, attempts);
}

#[test]
fn a_failing_endpoint_never_slows_a_healthy_one() {
    let eg = Eg::start(&[("EVGRID_PUSH_PROBATION_AFTER", "3")]);
    let key = eg.source("/mgmt/topics/two", json!({}));
    // The failing endpoint takes 1.5 s to answer 500: every attempt holds a request open.
    let failing = Hook::start(|r| {
        if let Some(h) = handshake(r) {
            return h;
        }
        std::thread::sleep(Duration::from_millis(1500));
        Reply::status(500)
    });
    let healthy = Hook::ok();
    eg.hook_sub("/mgmt/topics/two", "failing", &failing.url("/f"), json!({}));
    eg.hook_sub("/mgmt/topics/two", "healthy", &healthy.url("/h"), json!({}));
    let started = Instant::now();
    for b in 0..10 {
        let batch: Vec<Value> = (0..50)
            .map(|i| eg_event(&format!("e{b}-{i}"), "T", "s", json!(i)))
            .collect();
        assert_eq!(eg.publish("/topics/two", &key, &json!(batch)).status, 200);
    }
    let got = healthy.wait_delivered(500, WAIT);
    let healthy_time = started.elapsed();
    assert_eq!(ids(&got).len(), 500);
    // 500 events at 16 requests in flight and 1.5 s per attempt would take ≥ 45 s if the
    // failing endpoint held the healthy one back.
    assert!(
        healthy_time < Duration::from_secs(10),
        "healthy endpoint took {healthy_time:?}"
    );
    // The failing endpoint went on probation: deliveries deferred instead of attempted.
    let deadline = Instant::now() + WAIT;
    while eg.srv.metric("evgrid_push_deferred_total") < 1.0 {
        assert!(Instant::now() < deadline, "never on probation");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(failing.notifications().len() < 500);
}

#[test]
fn pending_retries_survive_restart_and_kill_9() {
    let dir = TempDir::new("push-kill");
    let hook = Hook::start(|r| handshake(r).unwrap_or(Reply::status(500)));
    let attempts =
        |n: usize| move |rs: &[Recorded]| rs.iter().filter(|r| r.is_notification()).count() >= n;
    let env = [("EVGRID_PUSH_RETRY_SCHEDULE_MS", "300")];
    let key = {
        let mut eg = Eg::start_in(&dir.0, &env);
        let key = eg.source("/mgmt/topics/kil", json!({}));
        eg.hook_sub("/mgmt/topics/kil", "sub1", &hook.url("/k"), json!({}));
        let batch: Vec<Value> = (0..20)
            .map(|i| eg_event(&format!("k{i}"), "T", "s", json!(i)))
            .collect();
        assert_eq!(eg.publish("/topics/kil", &key, &json!(batch)).status, 200);
        hook.wait(WAIT, "one attempt of each", attempts(20));
        eg.srv.terminate();
        key
    };
    {
        // After a graceful restart the retries go on (still failing), then evgrid is killed.
        let eg = Eg::start_in(&dir.0, &env);
        hook.wait(WAIT, "two attempts of each", attempts(40));
        eg.srv.kill9();
    }
    hook.set_script(|r| handshake(r).unwrap_or(Reply::status(200)));
    let before = hook.notifications().len();
    let eg = Eg::start_in(&dir.0, &[("EVGRID_PUSH_RETRY_SCHEDULE_MS", "300")]);
    let got = hook.wait_delivered(20, WAIT);
    assert_eq!(
        ids(&got).len(),
        20,
        "every pending event delivered after the restart"
    );
    let after: Vec<_> = hook.notifications()[before..].to_vec();
    assert!(
        after.iter().all(|r| r
            .header("aeg-delivery-count")
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1),
        "delivery counts survive the restart"
    );
    // The subscription itself needed no new handshake, and the topic takes events as before.
    assert!(
        hook.requests()
            .iter()
            .filter(|r| r.header("aeg-event-type") == Some("SubscriptionValidation"))
            .count()
            == 1
    );
    assert_eq!(
        eg.publish(
            "/topics/kil",
            &key,
            &json!([eg_event("new", "T", "s", json!(0))])
        )
        .status,
        200
    );
    hook.wait_delivered(21, WAIT);
}

/// An endpoint that is down while 2,000 events of 1 KiB arrive: the subscription keeps one
/// window in memory and the rest on disk, and once the endpoint is back every event is
/// delivered exactly once.
#[test]
fn a_backlog_beyond_the_memory_window_waits_on_disk_until_the_endpoint_is_back() {
    const N: usize = 2000;
    let hook = Hook::start(|r| handshake(r).unwrap_or(Reply::status(503)));
    let eg = Eg::start(&[
        ("EVGRID_STORE_BACKLOG_WINDOW_BYTES", "65536"),
        ("EVGRID_PUSH_RETRY_SCHEDULE_MS", "300"),
    ]);
    let key = eg.source("/mgmt/topics/paged", json!({}));
    eg.hook_sub("/mgmt/topics/paged", "sub1", &hook.url("/p"), json!({}));
    let pad = "x".repeat(1000);
    for b in 0..N / 500 {
        let batch: Vec<Value> = (0..500)
            .map(|i| eg_event(&format!("p{}", b * 500 + i), "T", "s", json!(pad)))
            .collect();
        assert_eq!(eg.publish("/topics/paged", &key, &json!(batch)).status, 200);
    }
    // The 200 comes once the batch is committed and handed to the subscription's mailbox; the
    // subscription counts it when it takes it from there, a moment later.
    common::wait_until("every event is counted, in memory or on disk", || {
        let n = eg.srv.metric("evgrid_backlog_disk_events")
            + eg.srv.metric("evgrid_backlog_memory_events");
        n >= N as f64
    });
    let in_memory = eg.srv.metric("evgrid_backlog_memory_bytes");
    assert!(
        in_memory <= 65536.0 + 2048.0,
        "window held {in_memory} bytes"
    );
    let on_disk = eg.srv.metric("evgrid_backlog_disk_events");
    assert!(on_disk >= (N - 70) as f64, "on disk: {on_disk}");
    hook.set_script(|r| handshake(r).unwrap_or(Reply::status(200)));
    let got = hook.wait_delivered(N, Duration::from_secs(60));
    assert_eq!(got.len(), N, "each event once");
    assert_eq!(ids(&got).len(), N);
    common::wait_until("the backlog is empty", || {
        eg.srv.metric("evgrid_backlog_disk_events") == 0.0
            && eg.srv.metric("evgrid_backlog_memory_events") == 0.0
    });
}

#[test]
fn publish_auth_limits_and_errors() {
    let eg = Eg::start(&[("EVGRID_EVENTS_MAX_EVENTS_PER_BASIC_REQUEST", "3")]);
    let key = eg.source("/mgmt/topics/orders", json!({}));
    let hook = Hook::ok();
    eg.hook_sub("/mgmt/topics/orders", "sub1", &hook.url("/s"), json!({}));
    let one = json!([eg_event("e1", "T", "s", json!(1))]);
    let body = one.to_string();
    let ct = "Content-Type: application/json; charset=utf-8";
    let path = "/topics/orders/api/events?api-version=2018-01-01";

    let r = eg.publish_raw(path, &[ct], body.as_bytes());
    assert_eq!(
        (r.status, r.code().as_str()),
        (401, "Unauthorized"),
        "{r:?}"
    );
    let r = eg.publish_raw(path, &["aeg-sas-key: d3Jvbmc=", ct], body.as_bytes());
    assert_eq!(r.status, 401);
    let r = eg.publish("/topics/nope", &key, &one);
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "ResourceNotFound"),
        "{r:?}"
    );
    let k = format!("aeg-sas-key: {key}");
    let r = eg.publish_raw("/topics/orders/api/events", &[&k, ct], body.as_bytes());
    assert_eq!(r.status, 400, "api-version is required: {r:?}");
    let r = eg.publish_raw(
        path,
        &[&k, ct],
        eg_event("x", "T", "s", json!(1)).to_string().as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("StartArray"), "{r:?}");
    let four: Vec<Value> = (0..4)
        .map(|i| eg_event(&format!("m{i}"), "T", "s", json!(i)))
        .collect();
    assert_eq!(eg.publish("/topics/orders", &key, &json!(four)).status, 413);
    let half_bad = json!([eg_event("good", "T", "s", json!(1)), {"id": "bad"}]);
    let r = eg.publish("/topics/orders", &key, &half_bad);
    assert_eq!(r.status, 400);
    assert!(r.message().contains("Event 1"), "{r:?}");

    // SAS tokens, as the SDK's generate_sas makes them (resource with ?apiVersion), in both headers.
    let k2 = eg
        .mgmt("POST", "/mgmt/topics/orders/listKeys", &Value::Null)
        .json()["key2"]
        .as_str()
        .unwrap()
        .to_string();
    let resource = format!(
        "http://{}/topics/orders/api/events?apiVersion=2018-01-01",
        eg.srv.http
    );
    let token = evgrid::http::auth::sign_sas(&resource, "2099-01-01 00:00:00+00:00", &k2);
    let h = format!("aeg-sas-token: {token}");
    let r = eg.publish_raw(
        path,
        &[&h, ct],
        json!([eg_event("sas1", "T", "s", json!(1))])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "", "basic-tier success is 200 with an empty body");
    let h = format!("Authorization: SharedAccessSignature {token}");
    let r = eg.publish_raw(
        path,
        &[&h, ct],
        json!([eg_event("sas2", "T", "s", json!(1))])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let other = evgrid::http::auth::sign_sas(
        &format!("http://{}/topics/other/api/events", eg.srv.http),
        "2099-01-01T00:00:00Z",
        &k2,
    );
    let h = format!("aeg-sas-token: {other}");
    assert_eq!(eg.publish_raw(path, &[&h, ct], body.as_bytes()).status, 401);
    let expired = evgrid::http::auth::sign_sas(&resource, "2001-01-01T00:00:00Z", &k2);
    let h = format!("aeg-sas-token: {expired}");
    assert_eq!(eg.publish_raw(path, &[&h, ct], body.as_bytes()).status, 401);

    let got = hook.wait_delivered(2, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ids(&hook.delivered()),
        BTreeSet::from(["sas1".to_string(), "sas2".to_string()]),
        "nothing of a refused batch: {got:?}"
    );

    // Management refusals.
    for (props, want) in [
        (
            json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "ftp://x"}}}),
            "http://",
        ),
        (
            json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/s")}}, "retryPolicy": {"maxDeliveryAttempts": 0}}),
            "maxDeliveryAttempts",
        ),
        (
            json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/s")}}, "expirationTimeUtc": "2001-01-01T00:00:00Z"}),
            "expiration",
        ),
    ] {
        let r = eg.sub("/mgmt/topics/orders", "xsub", props);
        assert_eq!(r.status, 400);
        assert!(r.message().contains(want), "{want}: {r:?}");
    }
    assert_eq!(
        eg.mgmt("PUT", "/mgmt/topics/Microsoft-x", &json!({}))
            .status,
        400
    );
    assert_eq!(
        eg.mgmt(
            "PUT",
            "/mgmt/topics/orders",
            &json!({"properties": {"inputSchema": "CloudEventSchemaV1_0"}})
        )
        .status,
        400
    );
    assert_eq!(
        request(eg.srv.http, "GET", "/mgmt/topics", &[], b"").status,
        401
    );
}

#[test]
fn domains_route_by_domain_topic_and_manage_them() {
    let eg = Eg::start(&[]);
    let key = eg.source("/mgmt/domains/shop", json!({}));
    let all = Hook::ok();
    let a = Hook::ok();
    eg.hook_sub(
        "/mgmt/domains/shop",
        "everything",
        &all.url("/all"),
        json!({}),
    );
    // Created with its first subscription.
    eg.hook_sub(
        "/mgmt/domains/shop/topics/tenant-a",
        "a-only",
        &a.url("/a"),
        json!({}),
    );
    assert_eq!(
        eg.mgmt("GET", "/mgmt/domains/shop/topics/tenant-a", &Value::Null)
            .status,
        200
    );
    let events = json!([
        {"topic": "tenant-a", "id": "e1", "eventType": "T", "subject": "s", "eventTime": "2024-05-01T10:00:00Z", "data": 1, "dataVersion": "1"},
        {"topic": "tenant-b", "id": "e2", "eventType": "T", "subject": "s", "eventTime": "2024-05-01T10:00:00Z", "data": 2, "dataVersion": "1"}
    ]);
    assert_eq!(eg.publish("/domains/shop", &key, &events).status, 200);
    let got = all.wait_delivered(2, WAIT);
    assert_eq!(ids(&got).len(), 2);
    let by_id = |id: &str| got.iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(
        by_id("e2")["topic"],
        "/providers/Microsoft.EventGrid/domains/shop/topics/tenant-b"
    );
    let ga = a.wait_delivered(1, WAIT);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        ids(&a.delivered()),
        BTreeSet::from(["e1".to_string()]),
        "{ga:?}"
    );
    // tenant-b was created by the publish.
    let list = eg
        .mgmt("GET", "/mgmt/domains/shop/topics", &Value::Null)
        .json();
    let names: BTreeSet<_> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["tenant-a".to_string(), "tenant-b".to_string()])
    );
    // An event without its domain topic is refused.
    let r = eg.publish(
        "/domains/shop",
        &key,
        &json!([eg_event("x", "T", "s", json!(1))]),
    );
    assert_eq!(r.status, 400, "{r:?}");
    // Deleting the last subscription of a domain topic deletes the topic.
    assert_eq!(
        eg.mgmt(
            "DELETE",
            "/mgmt/domains/shop/topics/tenant-a/eventSubscriptions/a-only",
            &Value::Null
        )
        .status,
        200
    );
    assert_eq!(
        eg.mgmt("GET", "/mgmt/domains/shop/topics/tenant-a", &Value::Null)
            .status,
        404
    );
    // Listing and deleting the domain.
    assert_eq!(
        eg.mgmt("GET", "/mgmt/domains/shop/eventSubscriptions", &Value::Null)
            .json()["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        eg.mgmt("DELETE", "/mgmt/domains/shop", &Value::Null).status,
        200
    );
    assert_eq!(eg.publish("/domains/shop", &key, &events).status, 404);
}

#[test]
fn custom_and_cloudevents_topics_deliver_in_each_schema() {
    let eg = Eg::start(&[]);
    let mapping = json!({"inputSchema": "CustomEventSchema", "inputSchemaMapping": {"inputSchemaMappingType": "Json", "properties": {
        "id": {"sourceField": "myId"}, "eventType": {"sourceField": "kind", "defaultValue": "Custom.Default"},
        "subject": {"sourceField": "path", "defaultValue": "/"}, "dataVersion": {"defaultValue": "2.0"}}}});
    let key = eg.source("/mgmt/topics/custom", mapping);
    let hook = Hook::ok();
    eg.hook_sub("/mgmt/topics/custom", "raw", &hook.url("/raw"), json!({}));
    eg.hook_sub("/mgmt/topics/custom", "egsub", &hook.url("/eg"), json!({"eventDeliverySchema": "EventGridSchema", "filter": {"includedEventTypes": ["Order"]}}));
    let body = json!([{"myId": "c1", "kind": "Order", "path": "orders/1", "amount": 3}, {"myId": "c2", "other": true}]);
    assert_eq!(eg.publish("/topics/custom", &key, &body).status, 200);
    hook.wait(WAIT, "custom deliveries", |rs| {
        on_path(rs, "/raw").len() >= 2 && !on_path(rs, "/eg").is_empty()
    });
    let rs = hook.requests();
    let raw: Vec<Value> = on_path(&rs, "/raw")
        .iter()
        .flat_map(|r| r.events())
        .collect();
    assert!(
        raw.contains(&json!({"myId": "c1", "kind": "Order", "path": "orders/1", "amount": 3})),
        "{raw:?}"
    );
    let egd = on_path(&rs, "/eg")[0].events();
    assert_eq!(egd.len(), 1);
    assert_eq!(egd[0]["id"], "c1");
    assert_eq!(egd[0]["subject"], "orders/1");
    assert_eq!(egd[0]["dataVersion"], "2.0");
    assert_eq!(egd[0]["data"]["amount"], 3);

    let ce_key = eg.source(
        "/mgmt/topics/cevt",
        json!({"inputSchema": "CloudEventSchemaV1_0"}),
    );
    let r = eg.sub("/mgmt/topics/cevt", "egsub", json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/x")}}, "eventDeliverySchema": "EventGridSchema"}));
    assert_eq!(
        r.status, 400,
        "CloudEvents cannot be delivered as Event Grid events: {r:?}"
    );
    eg.hook_sub("/mgmt/topics/cevt", "cesub", &hook.url("/ce"), json!({"filter": {"advancedFilters": [{"operatorType": "StringIn", "key": "myext", "values": ["v"]}]}}));
    let k = format!("aeg-sas-key: {ce_key}");
    let ces = json!([
        {"specversion": "1.0", "id": "x1", "source": "/orders", "type": "T", "myext": "v", "data": {"a": 1}},
        {"specversion": "1.0", "id": "x2", "source": "/orders", "type": "T", "myext": "w", "data": {"a": 2}}
    ]);
    let r = eg.publish_raw(
        "/topics/cevt/api/events?api-version=2018-01-01",
        &[
            &k,
            "Content-Type: application/cloudevents-batch+json; charset=utf-8",
        ],
        ces.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let got = hook.wait(WAIT, "ce", |rs| !on_path(rs, "/ce").is_empty());
    let ce = on_path(&got, "/ce")[0].json();
    assert_eq!(
        ce, ces[0],
        "CloudEvents are delivered byte for byte as published"
    );
    // An Event Grid array to a CloudEvents topic is refused.
    let r = eg.publish(
        "/topics/cevt",
        &ce_key,
        &json!([eg_event("e", "T", "s", json!(1))]),
    );
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn subscriptions_expire_and_survive_restart() {
    let dir = TempDir::new("push-restart");
    let hook = Hook::ok();
    let soon = {
        let t = std::time::SystemTime::now() + Duration::from_secs(3);
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let days = secs / 86_400;
        let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
        // Civil date from days since the epoch (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let mo = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
    };
    let key = {
        let mut eg = Eg::start_in(&dir.0, &[]);
        let key = eg.source("/mgmt/topics/rst", json!({}));
        eg.hook_sub(
            "/mgmt/topics/rst",
            "keep",
            &hook.url("/keep"),
            json!({"labels": ["a", "b"]}),
        );
        eg.hook_sub(
            "/mgmt/topics/rst",
            "brief",
            &hook.url("/brief"),
            json!({"expirationTimeUtc": soon}),
        );
        eg.srv.terminate();
        key
    };
    let eg = Eg::start_in(&dir.0, &[]);
    let doc = eg
        .mgmt(
            "GET",
            "/mgmt/topics/rst/eventSubscriptions/keep",
            &Value::Null,
        )
        .json();
    assert_eq!(doc["properties"]["labels"], json!(["a", "b"]));
    let k = eg
        .mgmt("POST", "/mgmt/topics/rst/listKeys", &Value::Null)
        .json();
    assert_eq!(k["key1"], key.as_str(), "keys survive the restart");
    let deadline = Instant::now() + WAIT;
    while eg
        .mgmt(
            "GET",
            "/mgmt/topics/rst/eventSubscriptions/brief",
            &Value::Null,
        )
        .status
        != 404
    {
        assert!(
            Instant::now() < deadline,
            "expired subscription not deleted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        eg.publish(
            "/topics/rst",
            &key,
            &json!([eg_event("e", "T", "s", json!(1))])
        )
        .status,
        200
    );
    let got = hook.wait(WAIT, "keep delivery", |rs| !on_path(rs, "/keep").is_empty());
    assert!(on_path(&got, "/brief").is_empty());
    let list = eg.mgmt("GET", "/mgmt/topics", &Value::Null).json();
    assert_eq!(
        list["value"][0]["properties"]["endpoint"],
        format!("http://{}/topics/rst/api/events", eg.srv.http)
    );
}

#[test]
fn resources_file_declares_the_basic_tier() {
    let dir = TempDir::new("push-res");
    let hook = Hook::ok();
    let file = dir.0.join("resources.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[topics]]
name = "orders"
[[topics.subscriptions]]
name = "billing"
properties = {{ destination = {{ endpointType = "WebHook", properties = {{ endpointUrl = "{url}" }} }} }}
[[topics.subscriptions]]
name = "not-up-yet"
properties = {{ destination = {{ endpointType = "WebHook", properties = {{ endpointUrl = "http://127.0.0.1:1/down" }} }} }}

[[domains]]
name = "tenants"
[[domains.topics]]
name = "tenant-a"
[[domains.topics.subscriptions]]
name = "a-hook"
properties = {{ destination = {{ endpointType = "WebHook", properties = {{ endpointUrl = "{url}" }} }} }}
"#,
            url = hook.url("/declared")
        ),
    )
    .unwrap();
    let res = file.to_str().unwrap();
    let data = dir.0.join("data");
    for round in 0..2 {
        let mut eg = Eg::start_in(&data, &[("EVGRID_RESOURCES", res)]);
        for path in [
            "/mgmt/topics/orders/eventSubscriptions/billing",
            "/mgmt/domains/tenants/topics/tenant-a/eventSubscriptions/a-hook",
        ] {
            let r = eg.mgmt("GET", path, &Value::Null);
            assert_eq!(r.status, 200, "round {round}: {r:?}");
            assert_eq!(r.json()["properties"]["provisioningState"], "Succeeded");
        }
        let skipped = eg.mgmt(
            "GET",
            "/mgmt/topics/orders/eventSubscriptions/not-up-yet",
            &Value::Null,
        );
        assert_eq!(
            skipped.status, 404,
            "an endpoint that fails its handshake is skipped"
        );
        eg.srv.terminate();
    }
    // Applied twice, validated once per subscription: the second start changed nothing.
    let validations = hook
        .requests()
        .iter()
        .filter(|r| r.header("aeg-event-type") == Some("SubscriptionValidation"))
        .count();
    assert_eq!(validations, 2);
}

#[test]
fn namespace_push_subscriptions_use_the_same_engine() {
    let eg = Eg::start(&[("EVGRID_PUSH_NAMESPACE_RETRY_SCHEDULE_MS", "0,150")]);
    let nk = eg
        .mgmt("POST", "/mgmt/namespaces/default/listKeys", &Value::Null)
        .json()["key1"]
        .as_str()
        .unwrap()
        .to_string();
    let t = "/mgmt/namespaces/default/topics/alerts";
    assert_eq!(eg.mgmt("PUT", t, &json!({"properties": {}})).status, 201);
    let push = |url: String, extra: Value| {
        let mut p = json!({"deliveryConfiguration": {"deliveryMode": "Push", "push": {
            "maxDeliveryCount": 3,
            "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url, "deliveryAttributeMappings": [
                {"name": "X-Key", "type": "Static", "properties": {"value": "hidden", "isSecret": true}}]}},
            "deadLetterDestinationWithResourceIdentity": {"deadLetterDestination": {"endpointType": "StorageBlob", "properties": {}}}}}});
        merge(&mut p, extra);
        p
    };
    let flaky = Hook::start(fail_then_ok(1, 500));
    let r = eg.sub(t, "flaky", push(flaky.url("/f"), json!({})));
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.json()["properties"]["deliveryConfiguration"]["deliveryMode"],
        "Push"
    );
    assert!(!r.body.contains("hidden"), "secret echoed: {}", r.body);
    let o = &flaky.requests()[0];
    assert_eq!(
        (o.method.as_str(), o.header("WebHook-Request-Origin")),
        ("OPTIONS", Some("eventgrid.azure.net"))
    );
    let gone = Hook::start(|r| handshake(r).unwrap_or(Reply::status(404)));
    assert_eq!(
        eg.sub(t, "gone", push(gone.url("/g"), json!({}))).status,
        201
    );
    let refusing = Hook::start(|_| Reply::status(405));
    let r = eg.sub(t, "refused", push(refusing.url("/r"), json!({})));
    assert_eq!(r.status, 400, "{r:?}");
    let r = eg.sub(
        t,
        "nodest",
        json!({"deliveryConfiguration": {"deliveryMode": "Push", "push": {}}}),
    );
    assert_eq!(r.status, 400, "{r:?}");

    let ce = json!([{"specversion": "1.0", "id": "n1", "source": "/alerts", "type": "Alert.Raised", "data": {"level": 3}}]);
    let auth = format!("Authorization: SharedAccessKey {nk}");
    let r = eg.publish_raw(
        "/namespaces/default/topics/alerts:publish?api-version=2024-06-01",
        &[
            &auth,
            "Content-Type: application/cloudevents-batch+json; charset=utf-8",
        ],
        ce.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");

    // 500 then retried at once (the namespace schedule starts at 0 s), then delivered.
    let got = flaky.wait_delivered(1, WAIT);
    assert_eq!(got[0], ce[0], "CloudEvents delivered as published");
    let n = flaky.notifications();
    assert_eq!(n.len(), 2);
    assert_eq!(
        n[0].header("Content-Type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    assert_eq!(n[1].header("X-Key"), Some("hidden"));
    assert!(
        n[1].at - n[0].at < Duration::from_millis(140),
        "first retry is immediate"
    );

    // 404 is not retried for namespace push: dead-lettered in the namespace record shape.
    let deadline = Instant::now() + WAIT;
    let d = loop {
        let d = eg.dead_letters(&format!("{t}/eventSubscriptions/gone"));
        if !d.is_empty() {
            break d;
        }
        assert!(Instant::now() < deadline, "404 not dead-lettered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(d[0]["event"]["id"], "n1");
    let props = &d[0]["deadLetterProperties"];
    assert_eq!(props["deliveryattempts"], 1);
    assert_eq!(props["lasthttpstatuscode"], 404);
    assert!(props["publishutc"].as_str().is_some());
    assert_eq!(gone.notifications().len(), 1);

    // A push subscription cannot be received from; its delivery mode cannot flip to Queue.
    let r = eg.publish_raw(
        "/namespaces/default/topics/alerts/eventsubscriptions/flaky:receive?api-version=2024-06-01&maxWaitTime=10",
        &[&auth],
        b"",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = eg.sub(
        t,
        "flaky",
        json!({"deliveryConfiguration": {"deliveryMode": "Queue", "queue": {}}}),
    );
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn entries_held_while_revalidating_survive_a_restart_and_keep_their_sequences() {
    let dir = TempDir::new("push-reval");
    let failing = Hook::start(|r| handshake(r).unwrap_or(Reply::status(500)));
    // The new endpoint validates manually: a bare 200 to the handshake, 200 to deliveries.
    let manual = Hook::start(|_| Reply::status(200));
    let env = [("EVGRID_PUSH_RETRY_SCHEDULE_MS", "1500")];
    let (key, validation) = {
        let mut eg = Eg::start_in(&dir.0, &env);
        let key = eg.source("/mgmt/topics/reval", json!({}));
        eg.hook_sub(
            "/mgmt/topics/reval",
            "sub1",
            &failing.url("/old"),
            json!({}),
        );
        let old: Vec<Value> = (0..5)
            .map(|i| eg_event(&format!("old{i}"), "T", "s", json!(i)))
            .collect();
        assert_eq!(eg.publish("/topics/reval", &key, &json!(old)).status, 200);
        failing.wait(WAIT, "first attempts", |rs| {
            rs.iter().filter(|r| r.is_notification()).count() >= 5
        });
        // Move it to the new endpoint: waiting for its validation URL; the 5 events stay stored.
        let props = json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": manual.url("/new")}}});
        let r = eg.sub("/mgmt/topics/reval", "sub1", props);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.json()["properties"]["provisioningState"],
            "AwaitingManualAction"
        );
        // A schema change on an existing subscription is refused.
        let r = eg.sub("/mgmt/topics/reval", "sub1", json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": manual.url("/new")}}, "eventDeliverySchema": "CloudEventSchemaV1_0"}));
        assert_eq!(r.status, 400, "{r:?}");
        let url = manual.requests()[0].json()[0]["data"]["validationUrl"]
            .as_str()
            .unwrap()
            .to_string();
        eg.srv.terminate();
        (key, url)
    };
    let eg = Eg::start_in(&dir.0, &env);
    let path = validation
        .split_once("/eventsubscriptions/")
        .map(|(_, p)| format!("/eventsubscriptions/{p}"))
        .unwrap();
    assert_eq!(request(eg.srv.http, "GET", &path, &[], b"").status, 200);
    let new: Vec<Value> = (0..5)
        .map(|i| eg_event(&format!("new{i}"), "T", "s", json!(i)))
        .collect();
    assert_eq!(eg.publish("/topics/reval", &key, &json!(new)).status, 200);
    let got = manual.wait_delivered(10, WAIT);
    let want: BTreeSet<String> = (0..5)
        .flat_map(|i| [format!("old{i}"), format!("new{i}")])
        .collect();
    assert_eq!(
        ids(&got),
        want,
        "old entries kept, new ones did not overwrite them"
    );
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

/// Topic X and domain X, each with a subscription named `hook`: their dead-letter files go to
/// distinct directories (they shared `<dir>/X/HOOK/…`, where one could overwrite the other).
#[test]
fn dead_letter_files_of_a_topic_and_a_domain_of_one_name_stay_apart() {
    let dir = TempDir::new("dlk");
    let dl_dir = dir.0.join("dead");
    let eg = Eg::start(&[("EVGRID_PUSH_DEAD_LETTER_DIR", dl_dir.to_str().unwrap())]);
    let dl = json!({"deadLetterDestination": {"endpointType": "StorageBlob", "properties": {"resourceId": "local", "blobContainerName": "dead"}}});
    let bad = Hook::start(|r| handshake(r).unwrap_or(Reply::status(400)));
    let tkey = eg.source("/mgmt/topics/same", json!({}));
    let dkey = eg.source("/mgmt/domains/same", json!({}));
    eg.hook_sub("/mgmt/topics/same", "hook", &bad.url("/t"), dl.clone());
    eg.hook_sub("/mgmt/domains/same", "hook", &bad.url("/d"), dl.clone());
    let r = eg.publish(
        "/topics/same",
        &tkey,
        &json!([eg_event("from-topic", "T", "s", json!(1))]),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let mut ev = eg_event("from-domain", "T", "s", json!(2));
    ev["topic"] = json!("dt1");
    assert_eq!(eg.publish("/domains/same", &dkey, &json!([ev])).status, 200);
    let deadline = Instant::now() + WAIT;
    let files = loop {
        let f = files_under(&dl_dir);
        if f.len() >= 2 {
            break f;
        }
        assert!(Instant::now() < deadline, "dead-letter files: {f:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut seen = BTreeSet::new();
    for f in &files {
        let rel = f
            .strip_prefix(&dl_dir)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let id = v[0]["id"].as_str().unwrap().to_string();
        let want = if id == "from-topic" {
            "topics/SAME/HOOK/"
        } else {
            "domains/SAME/HOOK/"
        };
        assert!(rel.starts_with(want), "{id} in {rel}");
        seen.insert(id);
    }
    assert_eq!(seen.len(), 2, "{files:?}");
}

/// Event data nested 200 levels: refused at every publish path with a 400 naming the event,
/// instead of accepted and delivered as `{"specversion":"1.0"}` to a CloudEvents webhook; 100
/// levels are accepted and delivered intact, converted, to that webhook.
#[test]
fn deeply_nested_data_is_refused_at_publish_and_the_rest_delivered_intact() {
    let eg = Eg::start(&[]);
    let nested = |levels: usize| format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
    let eg_json = |id: &str, data: &str| {
        format!(
            "{{\"id\":\"{id}\",\"eventType\":\"T\",\"subject\":\"s\",\"eventTime\":\"2024-05-01T10:00:00Z\",\"data\":{data}}}"
        )
    };
    let key = eg.source("/mgmt/topics/deep", json!({}));
    let hook = Hook::ok();
    eg.hook_sub(
        "/mgmt/topics/deep",
        "cehook",
        &hook.url("/ce"),
        json!({"eventDeliverySchema": "CloudEventSchemaV1_0"}),
    );
    // A 400 endpoint with a dead-letter destination: the record keeps the event whole (a
    // failed re-parse wrote `"event": null` / dropped it).
    let refusing = Hook::start(|r| handshake(r).unwrap_or(Reply::status(400)));
    let dl = json!({"deadLetterDestination": {"endpointType": "StorageBlob", "properties": {"resourceId": "local", "blobContainerName": "dead"}}});
    eg.hook_sub("/mgmt/topics/deep", "dlhook", &refusing.url("/dl"), dl);
    let k = format!("aeg-sas-key: {key}");
    let headers = [k.as_str(), "Content-Type: application/json"];
    let path = "/topics/deep/api/events?api-version=2018-01-01";

    let body = format!("[{},{}]", eg_json("ok", "1"), eg_json("deep", &nested(200)));
    let r = eg.publish_raw(path, &headers, body.as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.message().starts_with("Event 1 ") && r.message().contains("levels deep"),
        "{r:?}"
    );

    let body = format!("[{}]", eg_json("hundred", &nested(100)));
    let r = eg.publish_raw(path, &headers, body.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    let got = hook.wait_delivered(1, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["specversion"], "1.0");
    assert_eq!(got[0]["id"], "hundred", "{got:?}");
    let want: Value = serde_json::from_str(&nested(100)).unwrap();
    assert!(got[0]["data"] == want, "data not delivered intact");
    let raw = &hook.notifications()[0].body;
    assert!(
        String::from_utf8_lossy(raw).contains(&nested(100)),
        "data bytes not copied as published"
    );

    let deadline = Instant::now() + WAIT;
    let rec = loop {
        let d = eg.dead_letters("/mgmt/topics/deep/eventSubscriptions/dlhook");
        if let Some(r) = d.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "not dead-lettered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(rec["id"], "hundred");
    assert_eq!(rec["lastHttpStatusCode"], 400);
    assert!(rec["data"] == want, "dead-letter record lost the data");

    // The other publish paths refuse it the same way.
    let publish = |path: &str, key: &str, media: &str, body: &str| {
        eg.publish_raw(
            path,
            &[
                &format!("aeg-sas-key: {key}"),
                &format!("Content-Type: {media}"),
            ],
            body.as_bytes(),
        )
    };
    let ce_key = eg.source(
        "/mgmt/topics/deepce",
        json!({"inputSchema": "CloudEventSchemaV1_0"}),
    );
    let ce = format!(
        "[{{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\",\"type\":\"T\",\"data\":{}}}]",
        nested(200)
    );
    let r = publish(
        "/topics/deepce/api/events?api-version=2018-01-01",
        &ce_key,
        "application/cloudevents-batch+json",
        &ce,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().starts_with("Event 0 "), "{r:?}");

    let dkey = eg.source("/mgmt/domains/deepd", json!({}));
    let body = format!(
        "[{}]",
        eg_json("d", &nested(200)).replacen('{', "{\"topic\":\"dt1\",", 1)
    );
    let r = publish(
        "/domains/deepd/api/events?api-version=2018-01-01",
        &dkey,
        "application/json",
        &body,
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().starts_with("Event 0 "), "{r:?}");

    let mapping = json!({"inputSchema": "CustomEventSchema", "inputSchemaMapping": {"inputSchemaMappingType": "Json", "properties": {
        "eventType": {"defaultValue": "C"}, "subject": {"defaultValue": "/"}}}});
    let ckey = eg.source("/mgmt/topics/deepcustom", mapping);
    let r = publish(
        "/topics/deepcustom/api/events?api-version=2018-01-01",
        &ckey,
        "application/json",
        &format!("[{{\"n\":1}},{{\"x\":{}}}]", nested(119)),
    );
    assert_eq!(
        r.status, 400,
        "custom events become data, one level deeper: {r:?}"
    );
    assert!(r.message().starts_with("Event 1 "), "{r:?}");

    let nk = eg
        .mgmt("POST", "/mgmt/namespaces/default/listKeys", &Value::Null)
        .json()["key1"]
        .as_str()
        .unwrap()
        .to_string();
    let t = "/mgmt/namespaces/default/topics/deepns";
    assert_eq!(eg.mgmt("PUT", t, &json!({"properties": {}})).status, 201);
    let r = eg.publish_raw(
        "/namespaces/default/topics/deepns:publish?api-version=2024-06-01",
        &[
            &format!("Authorization: SharedAccessKey {nk}"),
            "Content-Type: application/cloudevents-batch+json",
        ],
        ce.as_bytes(),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().starts_with("Event 0 "), "{r:?}");
}

/// `push.deny_private_endpoints`: off (the default), a loopback webhook is validated and
/// accepted; on, loopback, private and unspecified endpoints (literal or by name) are refused at
/// the PUT with a 400 saying why, before any request is sent to them.
#[test]
fn private_endpoints_are_refused_only_when_configured() {
    let hook = Hook::ok();
    let eg = Eg::start(&[]);
    eg.source("/mgmt/topics/tpriv", json!({}));
    eg.hook_sub("/mgmt/topics/tpriv", "open", &hook.url("/open"), json!({}));
    let before = hook.requests().len();
    assert_eq!(before, 1, "the validation handshake reached the hook");
    drop(eg);

    let eg = Eg::start(&[("EVGRID_PUSH_DENY_PRIVATE_ENDPOINTS", "true")]);
    eg.source("/mgmt/topics/tpriv", json!({}));
    let port = hook
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    for (url, says) in [
        (hook.url("/h"), "is a loopback address"),
        (
            format!("http://localhost:{port}/h"),
            "resolves to a loopback address",
        ),
        (format!("http://[::1]:{port}/h"), "is a loopback address"),
        (
            "http://10.1.2.3/h".to_string(),
            "is a private (RFC 1918) address",
        ),
        (
            "http://169.254.169.254/latest".to_string(),
            "is a link-local address",
        ),
        (
            "http://0.0.0.0:80/h".to_string(),
            "is an unspecified address",
        ),
        (
            "http://[fd00::1]/h".to_string(),
            "is a unique-local address",
        ),
    ] {
        let r = eg.sub(
            "/mgmt/topics/tpriv",
            "closed",
            json!({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}}),
        );
        assert_eq!(r.status, 400, "{url}: {r:?}");
        assert_eq!(r.code(), "BadRequest", "{r:?}");
        assert!(
            r.message().contains(says) && r.message().contains("push.deny_private_endpoints"),
            "{url}: {r:?}"
        );
    }
    // Namespace push subscriptions too.
    let t = "/mgmt/namespaces/default/topics/ntpriv";
    assert_eq!(eg.mgmt("PUT", t, &json!({"properties": {}})).status, 201);
    let r = eg.sub(
        t,
        "closed",
        json!({"deliveryConfiguration": {"deliveryMode": "Push", "push": {
            "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": hook.url("/n")}}}}}),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.message().contains("loopback"), "{r:?}");
    assert_eq!(
        hook.requests().len(),
        before,
        "a refused endpoint was contacted"
    );
}
