//! Unit tests of `http::load`.

use super::publish::{EventSpec, event_time, min_event_size, put_batch, put_event};
use super::pull::{EventStamp, ReceiveBody, SettleBody, Stamp};
use crate::cli::Schema;

fn spec(schema: Schema, conn: usize, size: usize) -> EventSpec {
    EventSpec { schema, conn, size }
}

#[test]
fn events_have_the_requested_size_and_parse() {
    let mut v = Vec::new();
    let ts = 1_780_000_000_123_456_789;
    put_event(&mut v, &spec(Schema::Cloudevents, 3, 1024), 42, ts, "");
    assert_eq!(v.len(), 1024);
    let ev: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(ev["id"], "00003-000000000042");
    assert_eq!(ev["specversion"], "1.0");
    let stamp = |b: &[u8]| serde_json::from_slice::<EventStamp>(b).unwrap().data.0;
    assert_eq!(stamp(&v), Some(ts));
    // below the minimum: the minimum
    let min = min_event_size(Schema::Cloudevents);
    v.clear();
    put_event(&mut v, &spec(Schema::Cloudevents, 0, 10), 0, 0, "");
    assert_eq!(v.len(), min);
    assert_eq!(min, 182, "the README and --help give this minimum");

    let mut seq = 7;
    v.clear();
    put_batch(&mut v, &spec(Schema::Cloudevents, 1, 300), &mut seq, 3, 5);
    assert_eq!(seq, 10);
    let arr: Vec<serde_json::Value> = serde_json::from_slice(&v).unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(v.len(), 2 + 3 * 301 - 1);
    assert_eq!(arr[2]["id"], "00001-000000000009");
    assert_eq!(stamp(arr[0].to_string().as_bytes()), Some(5));
}

#[test]
fn event_grid_events_have_every_required_field() {
    let ts = 1_709_210_096_123_456_789;
    let mut seq = 0;
    let mut v = Vec::new();
    put_batch(&mut v, &spec(Schema::Eventgrid, 12, 500), &mut seq, 2, ts);
    assert_eq!(v.len(), 2 + 2 * 501 - 1);
    let arr: Vec<serde_json::Value> = serde_json::from_slice(&v).unwrap();
    for (i, ev) in arr.iter().enumerate() {
        // what the SDK requires of an Event Grid event (docs/eventgrid.md §2.2)
        for k in [
            "id",
            "subject",
            "eventType",
            "eventTime",
            "data",
            "dataVersion",
        ] {
            assert!(ev.get(k).is_some(), "{k} missing in {ev}");
        }
        assert_eq!(ev["id"], format!("00012-{i:012}"));
        assert_eq!(ev["eventTime"], "2024-02-29T12:34:56.1234567Z");
        assert_eq!(ev.to_string().len(), 500);
        assert_eq!(stamp_of(ev), Some(ts));
    }
    let min = min_event_size(Schema::Eventgrid);
    assert_eq!(min, 194, "the README and --help give this minimum");
    v.clear();
    put_event(
        &mut v,
        &spec(Schema::Eventgrid, 99_999, 0),
        999_999_999_999,
        u64::MAX / 2,
        &event_time(u64::MAX / 2),
    );
    assert_eq!(v.len(), min, "the minimum does not depend on the numbers");
}

fn stamp_of(ev: &serde_json::Value) -> Option<u64> {
    serde_json::from_str::<EventStamp>(&ev.to_string())
        .unwrap()
        .data
        .0
}

#[test]
fn receive_and_settle_bodies() {
    let got: ReceiveBody = serde_json::from_slice(
        br#"{"value":[{"brokerProperties":{"lockToken":"CiYKJDc4","deliveryCount":1},"event":{"id":"e","data":{"ts":"12"}}},
            {"brokerProperties":{"lockToken":"t2","deliveryCount":2},"event":{"id":"f","data":"text"}},
            {"brokerProperties":{"lockToken":"t3"},"event":{"data":{"a":[1,{"ts":"9"}],"ts":77,"z":null}}},
            {"brokerProperties":{"lockToken":"t4"},"event":{"data":[true,1.5,null]}},
            {"brokerProperties":{"lockToken":"t5"},"event":{"data_base64":"aGk="}},
            {"brokerProperties":{"lockToken":"t6"}}]}"#,
    )
    .unwrap();
    assert_eq!(got.value.len(), 6);
    assert_eq!(got.value[0].broker.lock_token, "CiYKJDc4");
    assert_eq!(
        got.value[2].event.as_ref().unwrap().data,
        Stamp(Some(77), None)
    );
    assert_eq!(got.value[3].event.as_ref().unwrap().data, Stamp(None, None));
    assert_eq!(got.value[4].event.as_ref().unwrap().data, Stamp(None, None));
    assert!(got.value[5].event.is_none());
    assert_eq!(got.value[5].broker.delivery_count, 0);
    assert_eq!(
        got.value[0].event.as_ref().unwrap().data,
        Stamp(Some(12), None)
    );
    assert_eq!(got.value[1].event.as_ref().unwrap().data, Stamp(None, None));
    assert_eq!(got.value[1].broker.delivery_count, 2);
    let s: SettleBody = serde_json::from_slice(
        br#"{"failedLockTokens":[{"lockToken":"x","error":{"code":"TokenLost","message":"Token has expired."}}],"succeededLockTokens":["y","z"]}"#,
    )
    .unwrap();
    assert_eq!(s.succeeded.len(), 2);
    assert_eq!(s.failed[0].error.as_ref().unwrap().code, "TokenLost");
}
