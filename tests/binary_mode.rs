//! CloudEvents binary content mode on namespace publish (docs/eventgrid.md §6.2) over real HTTP
//! against the real binary: `ce-*` headers and a body of any content type become one event that
//! a pull consumer receives with the exact attributes, `data` for JSON bodies and `data_base64`
//! for the rest; bad headers get 400 naming the header, an oversized event 413.

mod common;

use common::Server;
use common::http::{Resp, mgmt, request};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const API: &str = "api-version=2024-06-01";

struct Eg {
    srv: Server,
    auth: String,
}

impl Eg {
    fn start() -> Eg {
        let srv = Server::start(&[
            ("EVGRID_ADMIN_KEY", ADMIN),
            ("EVGRID_EVENTS_MAX_EVENT_BYTES", "2048"),
        ]);
        let r = mgmt(
            srv.http,
            ADMIN,
            "POST",
            "/mgmt/namespaces/default/listKeys",
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        let auth = format!(
            "Authorization: SharedAccessKey {}",
            r.json()["key1"].as_str().unwrap()
        );
        let eg = Eg { srv, auth };
        for (path, body) in [
            (
                "/mgmt/namespaces/default/topics/bin",
                json!({"properties": {}}),
            ),
            (
                "/mgmt/namespaces/default/topics/bin/eventSubscriptions/queue",
                json!({"properties": {"deliveryConfiguration": {"deliveryMode": "Queue",
                       "queue": {}}}}),
            ),
        ] {
            let r = mgmt(eg.srv.http, ADMIN, "PUT", path, body.to_string().as_bytes());
            assert_eq!(r.status, 201, "{r:?}");
        }
        eg
    }

    fn publish(&self, headers: &[&str], body: &[u8]) -> Resp {
        let mut hs = vec![self.auth.as_str()];
        hs.extend_from_slice(headers);
        request(
            self.srv.http,
            "POST",
            &format!("/namespaces/default/topics/bin:publish?{API}"),
            &hs,
            body,
        )
    }

    /// Receives and acknowledges every waiting event (up to 10).
    fn receive(&self) -> Vec<Value> {
        let path = |op: &str, q: &str| {
            format!("/namespaces/default/topics/bin/eventsubscriptions/queue:{op}?{API}{q}")
        };
        let hs = [self.auth.as_str(), "Content-Type: application/json"];
        let r = request(
            self.srv.http,
            "POST",
            &path("receive", "&maxEvents=10&maxWaitTime=10"),
            &hs,
            b"",
        );
        assert_eq!(r.status, 200, "{r:?}");
        let value = r.json()["value"].as_array().unwrap().clone();
        let tokens: Vec<&Value> = value
            .iter()
            .map(|v| &v["brokerProperties"]["lockToken"])
            .collect();
        if tokens.is_empty() {
            return Vec::new();
        }
        let body = json!({ "lockTokens": tokens }).to_string();
        let r = request(
            self.srv.http,
            "POST",
            &path("acknowledge", ""),
            &hs,
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        value.into_iter().map(|v| v["event"].clone()).collect()
    }
}

const REQUIRED: [&str; 4] = [
    "ce-specversion: 1.0",
    "ce-id: b-1",
    "ce-source: /devices/d1",
    "ce-type: Contoso.Reading",
];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = REQUIRED.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn binary_mode_events_arrive_with_their_attributes() {
    let eg = Eg::start();
    let r = eg.publish(
        &with(&[
            "Content-Type: application/json; charset=utf-8",
            "ce-subject: rooms/1",
            "ce-time: 2024-05-01T10:00:00.123Z",
            "ce-dataschema: https://example.com/reading",
            "CE-Unit: deg%20C%C2%B0",
        ]),
        br#"{"temp": 21.5}"#,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}"), "{r:?}");
    assert_eq!(
        eg.receive(),
        [
            json!({"specversion": "1.0", "id": "b-1", "source": "/devices/d1",
                "type": "Contoso.Reading", "subject": "rooms/1",
                "time": "2024-05-01T10:00:00.123Z", "dataschema": "https://example.com/reading",
                "unit": "deg C°", "datacontenttype": "application/json; charset=utf-8",
                "data": {"temp": 21.5}})
        ]
    );

    let r = eg.publish(
        &with(&["Content-Type: application/octet-stream"]),
        b"\x00\x01\xff",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = eg.publish(&with(&["Content-Type: text/plain"]), b"hello");
    assert_eq!(r.status, 200, "{r:?}");
    let mut got = eg.receive();
    got.sort_by_key(|v| v["datacontenttype"].as_str().unwrap().to_string());
    let base = json!({"specversion": "1.0", "id": "b-1", "source": "/devices/d1",
                      "type": "Contoso.Reading"});
    let expect = |ct: &str, b64: &str| {
        let mut v = base.clone();
        v["datacontenttype"] = json!(ct);
        v["data_base64"] = json!(b64);
        v
    };
    assert_eq!(
        got,
        [
            expect("application/octet-stream", "AAH/"),
            expect("text/plain", "aGVsbG8=")
        ]
    );

    // A structured content type with ce-* headers stays structured.
    let structured = json!({"specversion": "1.0", "id": "s-1", "source": "/s", "type": "t"});
    let r = eg.publish(
        &with(&["Content-Type: application/cloudevents+json; charset=utf-8"]),
        structured.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(eg.receive(), [structured]);
}

#[test]
fn bad_binary_mode_requests_get_specific_errors() {
    let eg = Eg::start();
    let bad = |headers: Vec<&str>, body: &[u8], status: u16, needle: &str| {
        let r = eg.publish(&headers, body);
        assert_eq!(r.status, status, "{headers:?}: {r:?}");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(msg.contains(needle), "{headers:?}: {msg}");
    };
    for missing in REQUIRED {
        let name = missing.split(':').next().unwrap();
        let hs: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|h| *h != missing)
            .chain(["Content-Type: text/plain"])
            .collect();
        bad(
            hs,
            b"x",
            400,
            &format!("required attribute '{name}' is missing"),
        );
    }
    let mut hs = with(&["Content-Type: text/plain"]);
    hs[0] = "ce-specversion: 0.3";
    bad(hs, b"x", 400, "'ce-specversion' must be \"1.0\"");
    bad(
        with(&["ce-time: noon"]),
        b"",
        400,
        "'ce-time' must be an RFC 3339",
    );
    bad(
        with(&["ce-Bad_Name: 1"]),
        b"",
        400,
        "invalid extension attribute name",
    );
    bad(with(&["ce-x: %zz"]), b"", 400, "Header 'ce-x' is not valid");
    bad(
        with(&["Content-Type: application/json"]),
        b"{",
        400,
        "not valid JSON",
    );
    bad(
        with(&["Content-Type: application/octet-stream"]),
        &[7u8; 2000],
        413,
        "the limit is 2048 bytes per event",
    );
    // Nothing of the refused requests was stored: the next event is the only one there.
    let r = eg.publish(&with(&["ce-id: after"]), b"");
    assert_eq!(r.status, 400, "two ce-id headers: {r:?}");
    let mut hs = with(&[]);
    hs[1] = "ce-id: after";
    assert_eq!(eg.publish(&hs, b"").status, 200);
    let got = eg.receive();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], "after");
}
