//! The sink's sockets and request handlers: the accept loop, one task per connection
//! (HTTP/1.1 keep-alive; pipelined requests are answered in order, and with --delay each
//! answer is written before the next request is handled, so one delay never holds back an
//! answer already due), and the handlers of validation, OPTIONS and delivery requests.
//!
//! Locks are short and never held across an await; the only await in a handler is --delay.

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use crate::cli::Validation;
use crate::report::stats::lock;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

use super::*;
use crate::http::h1::{self, Conn, ParsedRequest, Request};
use crate::http::load::Stamp;
use crate::http::routed::B64Mark;
use crate::report::stats::LatBuf;
use crate::report::track::MAX_PUBLISHERS;

const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// Accepts connections until the run stops; with `tls`, each one's handshake first (on its own
/// task, bounded by [`super::tls::HANDSHAKE_TIMEOUT`], so a stalled client holds up no other).
pub(super) async fn accept(sink: Arc<Sink>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let mut stop = sink.stop.subscribe();
    loop {
        let res = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match res {
            Ok((stream, _)) => {
                sink.c.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => drop(tokio::spawn(serve(sink.clone(), stream))),
                    Some(tls) => {
                        let (sink, hs) = (sink.clone(), tls.accept(stream));
                        tokio::spawn(async move {
                            match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, hs).await {
                                Ok(Ok(stream)) => serve(sink, stream).await,
                                Ok(Err(e)) => sink.error(
                                    "tls handshake failed",
                                    format!("tls handshake failed: {e}"),
                                ),
                                Err(_) => sink.error(
                                    "tls handshake timed out",
                                    "tls handshake timed out".into(),
                                ),
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // usually out of file descriptors: wait for connections to close, do not spin
                sink.error(&format!("accept: {e}"), format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(sink: Arc<Sink>, mut stream: S) {
    let mut stop = sink.stop.subscribe();
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out = Vec::new();
    // `100 Continue` already sent for the request being read
    let mut continued = false;
    let mut e2e = sink.e2e.recorder();
    loop {
        loop {
            match h1::parse_request(&buf) {
                Ok(ParsedRequest::Complete(req, used)) => {
                    buf.drain(..used);
                    continued = false;
                    let close = req.close;
                    handle(&sink, req, &mut out, &mut e2e).await;
                    e2e.flush();
                    if close {
                        let _ = stream.write_all(&out).await;
                        return;
                    }
                    if sink.delay.is_some() && !out.is_empty() {
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                        out.clear();
                    }
                }
                Ok(ParsedRequest::Incomplete { expects_continue }) => {
                    if expects_continue && !continued {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        continued = true;
                    }
                    break;
                }
                Err(e) => {
                    sink.c.requests.fetch_add(1, Ordering::Relaxed);
                    sink.c.bad_requests.fetch_add(1, Ordering::Relaxed);
                    sink.error("unparseable request", format!("unparseable request: {e}"));
                    // the framing is lost: nothing after this on the connection can be read
                    answer(&sink, &mut out, 400, &[], b"", true);
                    let _ = stream.write_all(&out).await;
                    return;
                }
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Writes an answer and counts its status.
fn answer(
    sink: &Sink,
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) {
    bump(&mut lock(&sink.seen).statuses, &status.to_string());
    h1::write_response(out, status, headers, body, close);
}

async fn handle(sink: &Arc<Sink>, req: Request, out: &mut Vec<u8>, e2e: &mut LatBuf) {
    let now = sink.touch();
    let c = &sink.c;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let close = req.close;
    match req.method.as_str() {
        "POST" => {
            let kind = req.header("aeg-event-type").unwrap_or("");
            bump(
                &mut lock(&sink.seen).event_type,
                if kind.is_empty() { "(none)" } else { kind },
            );
            if kind.eq_ignore_ascii_case("SubscriptionValidation") {
                validation(sink, &req, out);
            } else if kind.eq_ignore_ascii_case("SubscriptionDeletion") {
                sink.handshake(Handshake::Deletion);
                answer(sink, out, 200, &[], b"", close);
            } else {
                // Notification, or a POST without the header: events either way
                delivery(sink, &req, now, out, e2e).await;
            }
        }
        "OPTIONS" => options(sink, &req, out),
        _ => answer(sink, out, 405, &[("Allow", "POST, OPTIONS")], b"", close),
    }
}

/// The validation event of a SubscriptionValidation body: (validationCode, validationUrl).
fn validation_event(body: &[u8]) -> Result<(String, Option<String>), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let ev = v
        .as_array()
        .ok_or("the body is not a JSON array")?
        .iter()
        .find(|e| e["eventType"] == VALIDATION_EVENT)
        .ok_or_else(|| format!("no {VALIDATION_EVENT} in the body"))?;
    let code = ev["data"]["validationCode"]
        .as_str()
        .ok_or("the validation event has no data.validationCode")?;
    Ok((
        code.to_string(),
        ev["data"]["validationUrl"].as_str().map(String::from),
    ))
}

fn validation(sink: &Arc<Sink>, req: &Request, out: &mut Vec<u8>) {
    let close = req.close;
    if sink.validation == Validation::Refuse {
        sink.handshake(Handshake::ValidationRefused);
        return answer(sink, out, 403, &[], b"", close);
    }
    let bad = |e: String| {
        sink.handshake(Handshake::ValidationBad);
        sink.error("bad validation request", format!("validation request: {e}"));
    };
    match (validation_event(&req.body), sink.validation) {
        (Err(e), _) => {
            bad(e);
            answer(sink, out, 400, &[], b"", close);
        }
        (Ok((code, _)), Validation::Sync) => {
            sink.handshake(Handshake::ValidationSync);
            let body = serde_json::json!({ "validationResponse": code }).to_string();
            let ct = [("Content-Type", "application/json; charset=utf-8")];
            answer(sink, out, 200, &ct, body.as_bytes(), close);
        }
        (Ok((_, Some(url))), _) => {
            sink.handshake(Handshake::ValidationAsync);
            tokio::spawn(get_validation_url(sink.clone(), url));
            answer(sink, out, 200, &[], b"", close);
        }
        (Ok((_, None)), _) => {
            bad("--validation async, but the event has no data.validationUrl".into());
            answer(sink, out, 400, &[], b"", close);
        }
    }
}

/// The asynchronous way to pass validation (docs/eventgrid.md §5.1): a GET of the validation URL.
async fn get_validation_url(sink: Arc<Sink>, url: String) {
    let res: Result<(), String> = async {
        let (u, target) = h1::parse_target("validationUrl", &url)?;
        let addr = crate::net::resolve(&u.host, u.port).await?;
        // An https:// validation URL is verified against the system's CA bundle.
        let tls = crate::http::load::https_client(&u, &Default::default())?;
        let mut conn = Conn::open(addr, Duration::from_secs(10), tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let mut req = Vec::new();
        h1::write_request(&mut req, "GET", &target, &u.authority, &[], b"");
        let r = conn
            .roundtrip(&req, Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!("answered {}", r.status_text()))
        }
    }
    .await;
    match res {
        Ok(()) => sink.handshake(Handshake::AsyncGetOk),
        Err(e) => {
            sink.error("validationUrl GET failed", format!("GET {url}: {e}"));
            sink.handshake(Handshake::AsyncGetFailed);
        }
    }
}

/// The CloudEvents abuse-protection handshake (docs/eventgrid.md §5.2).
fn options(sink: &Sink, req: &Request, out: &mut Vec<u8>) {
    let close = req.close;
    if sink.validation == Validation::Refuse {
        sink.handshake(Handshake::OptionsRefused);
        return answer(sink, out, 403, &[], b"", close);
    }
    match req.header("webhook-request-origin") {
        Some(origin) => {
            sink.handshake(Handshake::OptionsAllowed);
            let h = [("WebHook-Allowed-Origin", origin), ("Allow", "POST")];
            answer(sink, out, 200, &h, b"", close);
        }
        None => answer(sink, out, 200, &[("Allow", "POST, OPTIONS")], b"", close),
    }
}

/// The part of a delivered event the sink reads: its id (as a string, whatever JSON it is)
/// and the `data.ts` stamp. Event Grid and CloudEvents events both carry these as `id` and
/// `data`; an MQTT message routed into a namespace topic (`e2e --push`) carries the
/// generator's payload header in `data_base64` or `data` (`http::routed`). Everything else is
/// skipped without being built.
#[derive(Deserialize, Debug)]
struct SinkEvent {
    #[serde(default, deserialize_with = "any_id")]
    id: Option<String>,
    #[serde(default)]
    data: Stamp,
    #[serde(default)]
    data_base64: B64Mark,
}

impl SinkEvent {
    /// The send stamp: the payload header's, else `data.ts`.
    fn ts(&self) -> Option<u64> {
        self.data_base64.0.map(|h| h.ts_ns).or(self.data.0)
    }

    /// (publisher, sequence): the payload header's, else http-publish's id.
    fn ours(&self) -> Option<(u32, u64)> {
        self.data_base64
            .0
            .map(|h| (h.publisher, h.seq))
            .filter(|&(p, _)| p < MAX_PUBLISHERS)
            .or(self.data.1)
            .or_else(|| self.id.as_deref().and_then(our_id))
    }
}

fn any_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        v => Some(v.to_string()),
    })
}

/// A delivery body: a JSON array of events (Event Grid schema, CloudEvents batch) or one
/// CloudEvent object (`application/cloudevents+json`).
fn parse_events(body: &[u8]) -> Result<Vec<SinkEvent>, String> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body).map_err(|e| e.to_string()),
        Some(b'{') => serde_json::from_slice::<SinkEvent>(body)
            .map(|e| vec![e])
            .map_err(|e| e.to_string()),
        _ => Err("neither a JSON array nor a JSON object".into()),
    }
}

/// (connection, sequence) of an id http-publish wrote (`CCCCC-SSSSSSSSSSSS`).
fn our_id(id: &str) -> Option<(u32, u64)> {
    let (c, s) = id.split_once('-')?;
    let digits = |x: &str, n: usize| x.len() >= n && x.bytes().all(|b| b.is_ascii_digit());
    if !(digits(c, 5) && digits(s, 12)) {
        return None;
    }
    let c = c.parse().ok().filter(|&c| c < MAX_PUBLISHERS)?;
    Some((c, s.parse().ok()?))
}

/// The name a credential header is counted under; never its secret.
fn credential(name: &str, value: &str) -> String {
    match name {
        "authorization" => format!(
            "Authorization: {}",
            value.split_whitespace().next().unwrap_or("")
        ),
        _ => name.to_string(),
    }
}

/// Dedup and order of accepted events; the distinct events accepted so far.
fn account(sink: &Sink, events: &[SinkEvent]) -> u64 {
    let mut t = lock(&sink.track);
    for ev in events {
        match ev.ours() {
            Some((publisher, seq)) => t.ours.push(publisher, seq),
            None => {
                t.foreign_events += 1;
                // an event without an id has nothing to be a duplicate of
                let Some(id) = &ev.id else { continue };
                if t.foreign.contains(id) {
                    t.foreign_dups += 1;
                } else if t.foreign.len() < MAX_FOREIGN_IDS {
                    t.foreign.insert(id.clone());
                }
            }
        }
    }
    t.ours.flush();
    t.unique()
}

async fn delivery(sink: &Sink, req: &Request, now: u64, out: &mut Vec<u8>, e2e: &mut LatBuf) {
    let c = &sink.c;
    let close = req.close;
    let events = match parse_events(&req.body) {
        Ok(e) => e,
        Err(e) => {
            c.bad_requests.fetch_add(1, Ordering::Relaxed);
            sink.error("delivery body is not events", format!("delivery body: {e}"));
            return answer(sink, out, 400, &[], b"", close);
        }
    };
    let status = sink
        .responder
        .status(c.deliveries.fetch_add(1, Ordering::Relaxed) + 1);
    let n = events.len() as u64;
    c.bytes.fetch_add(req.body.len() as u64, Ordering::Relaxed);
    c.events.fetch_add(n, Ordering::Relaxed);
    {
        let mut s = lock(&sink.seen);
        let h = |name| req.header(name).unwrap_or("(none)");
        bump(&mut s.delivery_count, h("aeg-delivery-count"));
        bump(&mut s.content_type, h("content-type"));
        if let Some(v) = req.header("aeg-subscription-name") {
            bump(&mut s.subscription_name, v);
        }
        for name in ["aeg-sas-key", "aeg-sas-token", "authorization"] {
            if let Some(v) = req.header(name) {
                bump(&mut s.auth, &credential(name, v));
            }
        }
    }
    if (200..300).contains(&status) {
        c.deliveries_accepted.fetch_add(1, Ordering::Relaxed);
        c.events_accepted.fetch_add(n, Ordering::Relaxed);
        let mut unstamped = 0;
        for ev in &events {
            match ev.ts() {
                Some(ts) if ts > 0 => e2e.record(now.saturating_sub(ts)),
                _ => unstamped += 1,
            }
        }
        c.unstamped.fetch_add(unstamped, Ordering::Relaxed);
        let unique = account(sink, &events);
        if sink.expect.is_some_and(|x| unique >= x) {
            sink.armed.send_if_modified(|a| !std::mem::replace(a, true));
        }
    } else {
        c.deliveries_rejected.fetch_add(1, Ordering::Relaxed);
        c.events_rejected.fetch_add(n, Ordering::Relaxed);
    }
    if let Some(d) = sink.delay {
        tokio::time::sleep(d).await;
    }
    answer(sink, out, status, &[], b"", close);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_bodies_of_both_schemas() {
        let eg = br#"[{"id":"00002-000000000041","subject":"/s","eventType":"t","eventTime":"2024-05-01T10:00:00Z","data":{"ts":"1780000000123456789","pad":"xx"},"dataVersion":"1.0"},
                      {"id":7,"data":"text","eventType":"t"}]"#;
        let evs = parse_events(eg).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].id.as_deref(), Some("00002-000000000041"));
        assert_eq!(evs[0].data.0, Some(1_780_000_000_123_456_789));
        assert_eq!((evs[1].id.as_deref(), evs[1].data.0), (Some("7"), None));
        let one = br#" {"specversion":"1.0","id":"c1","source":"/x","type":"t","data":{"ts":12}}"#;
        let evs = parse_events(one).unwrap();
        assert_eq!(
            (evs[0].id.as_deref(), evs[0].data.0),
            (Some("c1"), Some(12))
        );
        let no_id = parse_events(br#"[{"customId":7}]"#).unwrap();
        assert!(no_id[0].id.is_none());
        let bad = [&b""[..], b"x", b"[1,2]", b"[{}", b"\"s\""];
        let accepted: Vec<_> = bad.iter().filter(|b| parse_events(b).is_ok()).collect();
        assert!(accepted.is_empty(), "{accepted:?}");
    }

    #[test]
    fn routed_mqtt_messages_are_ours_by_their_payload_header() {
        use base64::Engine as _;
        let mut p = bytes::BytesMut::new();
        crate::mqtt::payload::put_payload(&mut p, 100, 1_780_000_000_000_000_007, 4, 19);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&p);
        let body = format!(
            r#"[{{"specversion":"1.0","id":"9aeb0fdf","source":"default","type":"MQTT.EventPublished","subject":"e2e/4","data_base64":"{b64}"}},
                {{"specversion":"1.0","id":"9aeb0fe0","type":"MQTT.EventPublished","data":{{"ts":"5","pub":2,"seq":3}}}},
                {{"specversion":"1.0","id":"9aeb0fe1","type":"MQTT.EventPublished","data_base64":"eyJ0ZW1wIjo3MH0="}}]"#
        );
        let evs = parse_events(body.as_bytes()).unwrap();
        assert_eq!(
            (evs[0].ours(), evs[0].ts()),
            (Some((4, 19)), Some(1_780_000_000_000_000_007))
        );
        assert_eq!((evs[1].ours(), evs[1].ts()), (Some((2, 3)), Some(5)));
        assert_eq!(
            (evs[2].ours(), evs[2].ts()),
            (None, None),
            "not from the generator"
        );
    }

    #[test]
    fn ids_and_credentials() {
        assert_eq!(our_id("00003-000000000042"), Some((3, 42)));
        assert_eq!(our_id("123456-0000000000001"), Some((123_456, 1)));
        for other in [
            "c1",
            "0003-000000000042",
            "00003-00000000004",
            "0000a-000000000042",
            "-",
        ] {
            assert_eq!(our_id(other), None, "{other}");
        }
        assert_eq!(
            our_id("99999999-000000000000"),
            None,
            "above MAX_PUBLISHERS"
        );
        assert_eq!(
            credential("authorization", "SharedAccessSignature r=x&e=y&s=z"),
            "Authorization: SharedAccessSignature"
        );
        assert_eq!(credential("aeg-sas-key", "secret"), "aeg-sas-key");
    }

    #[test]
    fn validation_events() {
        let body = br#"[{"id":"2d17","topic":"/subscriptions/x","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent",
            "data":{"validationCode":"512d38b6","validationUrl":"http://127.0.0.1:553/validate?id=1&token=t"},"eventTime":"2024-05-01T10:00:00Z","dataVersion":"1"}]"#;
        assert_eq!(
            validation_event(body).unwrap(),
            (
                "512d38b6".to_string(),
                Some("http://127.0.0.1:553/validate?id=1&token=t".to_string())
            )
        );
        let e = validation_event(br#"[{"eventType":"x","data":{}}]"#).unwrap_err();
        assert!(e.contains(VALIDATION_EVENT), "{e}");
        assert!(validation_event(br#"{"eventType":"x"}"#).is_err());
        let e = validation_event(
            br#"[{"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]"#,
        )
        .unwrap_err();
        assert!(e.contains("validationCode"), "{e}");
    }
}
