//! The namespace data plane: publish, receive, acknowledge, release, reject, renew lock — the
//! paths, query parameters, bodies and status codes the `azure-eventgrid` SDK uses (spec §6,
//! §9.3, §9.4). The SDK's endpoint for a namespace is `http://HOST:PORT/namespaces/{ns}`.
//!
//! Owns translation only: authenticate with the namespace's keys, check `api-version` and the
//! query, read and validate the body, hand a batch to the topic or subscription actor, and
//! write its answer. Must never: answer 200 to a publish before the topic actor said the batch is
//! committed; accept part of a batch; re-serialise an event.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::budget::{BUDGET, Held, Kind};
use evgrid_actors::grid::queue::{Action, Receive, Settle, Settled};
use evgrid_actors::grid::topic::Publish;
use evgrid_actors::grid::{GridError, Keys};
use evgrid_actors::metrics::HTTP;
use futures_util::StreamExt;
use ntex_bytes::{Bytes, BytesMut};

use super::State;
use super::auth;
use super::cloudevents;
use super::error::ApiError;

const API_VERSIONS: [&str; 4] = [
    "2023-06-01-preview",
    "2023-10-01-preview",
    "2023-11-01",
    "2024-06-01",
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/namespaces/{ns}/topics/{topic_action}",
        web::post().to(topic_op),
    )
    .route(
        "/namespaces/{ns}/topics/{topic}/{es:(?i)eventsubscriptions}/{sub_action}",
        web::post().to(subscription_op),
    );
}

/// The query parameters, parsed once (lenient percent-decoding).
pub(super) fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn api_version(q: &[(String, String)]) -> Result<&str, ApiError> {
    match param(q, "api-version") {
        None => Err(ApiError::bad_request(format!(
            "The api-version query parameter is required. Supported versions: {}.",
            API_VERSIONS.join(", ")
        ))),
        Some(v) if API_VERSIONS.contains(&v) => Ok(v),
        Some(v) => Err(ApiError::bad_request(format!(
            "The api-version '{v}' is not supported. Supported versions: {}.",
            API_VERSIONS.join(", ")
        ))),
    }
}

fn authenticate(req: &HttpRequest, ns: &str, keys: &Keys) -> Result<(), ApiError> {
    let cred = auth::credential(req.headers(), req.query_string());
    auth::verify(
        &cred,
        &[&keys.key1, &keys.key2],
        req.path(),
        &format!("/namespaces/{ns}"),
        std::time::SystemTime::now(),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// A request body read by [`read_body`]: its bytes, counted against the memory budget
/// (`http_body`) until this value is dropped, which handlers do once they are done with it.
pub(super) struct Body {
    bytes: Bytes,
    _held: Held<'static>,
}

impl Body {
    /// The bytes, shared (no copy); the budget stays counted while this `Body` lives.
    pub(super) fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes or takes longer than
/// `timeout` (from the end of the headers) to arrive.
///
/// The buffer grows with the bytes that arrived, never with the client's `Content-Length`: a
/// client declaring a megabyte and sending nothing costs nothing but its connection, and that
/// only until `timeout`. A declared length over `limit` is refused at once (413), without reading.
///
/// Every chunk is taken from the process's memory budget as it arrives (one atomic add); a
/// chunk that would pass the budget ends the request with 503 `ServerBusy`, `Retry-After` and
/// the connection closed, at once rather than at the body timeout. What was taken is given back
/// when the returned [`Body`] is dropped, or, on any error, timeout or dropped request future,
/// when this function's guard is.
pub(super) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Body, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "The request body is larger than the limit of {limit} bytes."
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut held = BUDGET.hold(Kind::HttpBody);
    let mut buf = BytesMut::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                HTTP.body_timeouts.inc();
                return Err(ApiError::new(
                    actix_web::http::StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    format!(
                        "The request body did not arrive within {} ms ({} of {} bytes received).",
                        timeout.as_millis(),
                        buf.len(),
                        declared
                            .map_or_else(|| "an unknown number of".to_string(), |n| n.to_string())
                    ),
                ));
            }
        };
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("The request body could not be read: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if !held.try_take(chunk.len()) {
            HTTP.budget_refusals.inc();
            tracing::debug!(
                received = buf.len(),
                "request body refused: the memory budget is full"
            );
            return Err(ApiError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "ServerBusy",
                format!(
                    "The server's memory budget ({} bytes, memory_budget_bytes) is in use by \
                     other requests and buffers; nothing of this request was applied. Retry later.",
                    BUDGET.limit()
                ),
            )
            .closing());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes: buf.freeze(),
        _held: held,
    })
}

fn split_action(s: &str) -> Option<(&str, &str)> {
    s.rsplit_once(':')
}

async fn topic_op(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (ns, topic_action) = path.into_inner();
    let Some((topic, "publish")) = split_action(&topic_action) else {
        return Err(ApiError::not_found(format!(
            "No operation at '{}': namespace topics take POST .../topics/{{topic}}:publish.",
            req.path()
        )));
    };
    let keys = st.grid.keys(&ns)?;
    authenticate(&req, &ns, &keys)?;
    let q = query_pairs(req.query_string());
    api_version(&q)?;
    let (addr, _) = st.grid.topic_for_publish(&ns, topic)?;
    let body = read_body(&req, payload, st.limits.max_request_bytes, st.body_timeout).await?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let events = cloudevents::parse_batch(
        body.bytes(),
        ct,
        &cloudevents::Limits {
            max_event_bytes: st.limits.max_event_bytes,
            max_events: st.limits.max_events_per_request,
        },
    )?;
    addr.send(Publish(events.into_iter().map(Into::into).collect()))
        .await
        .map_err(|_| {
            ApiError::unavailable(
                "The topic is being deleted or the server is stopping; nothing was stored.",
            )
        })??;
    HTTP.publish_ok.inc();
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body("{}"))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockTokens {
    lock_tokens: Vec<String>,
}

async fn subscription_op(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (ns, topic, _, sub_action) = path.into_inner();
    let Some((sub, action)) = split_action(&sub_action) else {
        return Err(ApiError::not_found(format!(
            "No operation at '{}': use :receive, :acknowledge, :release, :reject or :renewLock.",
            req.path()
        )));
    };
    let keys = st.grid.keys(&ns)?;
    authenticate(&req, &ns, &keys)?;
    let q = query_pairs(req.query_string());
    let version = api_version(&q)?;
    // releaseDelayInSeconds and :renewLock exist only in these two (spec §6.1).
    let has_delays = matches!(version, "2024-06-01" | "2023-10-01-preview");
    let action = match action {
        "receive" => None,
        "acknowledge" => Some(Action::Acknowledge),
        "reject" => Some(Action::Reject),
        "release" => {
            let delay = match param(&q, "releaseDelayInSeconds") {
                None => 0,
                Some(v) => match v.parse::<u32>() {
                    Ok(0) => 0,
                    Ok(d @ (10 | 60 | 600 | 3600)) if has_delays => d,
                    Ok(10 | 60 | 600 | 3600) => {
                        return Err(ApiError::bad_request(format!(
                            "releaseDelayInSeconds needs api-version 2024-06-01 or 2023-10-01-preview (this request used {version})."
                        )));
                    }
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "releaseDelayInSeconds must be one of 0, 10, 60, 600, 3600; got '{v}'."
                        )));
                    }
                },
            };
            Some(Action::Release { delay_secs: delay })
        }
        "renewLock" | "renewlock" if !has_delays => {
            return Err(ApiError::bad_request(format!(
                "renewLock needs api-version 2024-06-01 or 2023-10-01-preview (this request used {version})."
            )));
        }
        "renewLock" | "renewlock" => Some(Action::RenewLock),
        other => {
            return Err(ApiError::not_found(format!(
                "Unknown operation ':{other}': use :receive, :acknowledge, :release, :reject or :renewLock."
            )));
        }
    };
    let (addr, _) = st.grid.subscription_for_pull(&ns, &topic, sub)?;
    let Some(action) = action else {
        return receive(&q, addr).await;
    };
    let body = read_body(&req, payload, st.limits.max_request_bytes, st.body_timeout).await?;
    let tokens: LockTokens = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "The body must be {{\"lockTokens\": [\"...\"]}}: {e}"
        ))
    })?;
    if tokens.lock_tokens.is_empty() {
        return Err(ApiError::bad_request("lockTokens must not be empty."));
    }
    let settled = addr
        .send(Settle {
            action,
            tokens: tokens.lock_tokens,
        })
        .await
        .map_err(|_| ApiError::not_found("The event subscription was deleted."))?
        .map_err(GridError::from)?;
    Ok(settle_response(&settled))
}

fn settle_response(s: &Settled) -> HttpResponse {
    let failed: Vec<_> = s
        .failed
        .iter()
        .map(|(t, e)| {
            serde_json::json!({"lockToken": t, "error": {"code": e.code(), "message": e.message()}})
        })
        .collect();
    let body = serde_json::json!({"failedLockTokens": failed, "succeededLockTokens": s.succeeded});
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

async fn receive(
    q: &[(String, String)],
    addr: actix::Addr<evgrid_actors::grid::queue::QueueSub>,
) -> Result<HttpResponse, ApiError> {
    let max = match param(q, "maxEvents") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=100) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "maxEvents must be a whole number from 1 to 100; got '{v}'."
                )));
            }
        },
    };
    let wait = match param(q, "maxWaitTime") {
        None => 60,
        Some(v) => match v.parse::<u64>() {
            Ok(n @ 10..=120) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "maxWaitTime must be a whole number of seconds from 10 to 120; got '{v}'."
                )));
            }
        },
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    addr.send(Receive {
        max,
        wait: Duration::from_secs(wait),
        reply: tx,
    })
    .await
    .map_err(|_| ApiError::not_found("The event subscription was deleted."))?;
    let got = rx
        .await
        .map_err(|_| ApiError::not_found("The event subscription was deleted."))?;
    let mut body = Vec::with_capacity(16 + got.iter().map(|r| r.event.len() + 96).sum::<usize>());
    body.extend_from_slice(b"{\"value\":[");
    for (i, r) in got.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // Tokens are base64url: nothing in them needs JSON escaping.
        body.extend_from_slice(b"{\"brokerProperties\":{\"lockToken\":\"");
        body.extend_from_slice(r.token.as_bytes());
        body.extend_from_slice(b"\",\"deliveryCount\":");
        body.extend_from_slice(r.delivery_count.to_string().as_bytes());
        body.extend_from_slice(b"},\"event\":");
        body.extend_from_slice(&r.event);
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_is_lenient() {
        let q = query_pairs("api-version=2024-06-01&maxEvents=10&x=%2F%zz&&flag");
        assert_eq!(param(&q, "API-VERSION"), Some("2024-06-01"));
        assert_eq!(param(&q, "maxevents"), Some("10"));
        assert_eq!(param(&q, "x"), Some("/%zz"));
        assert_eq!(param(&q, "flag"), Some(""));
        assert!(api_version(&q).is_ok());
        assert!(api_version(&query_pairs("api-version=2018-01-01")).is_err());
        assert!(api_version(&[]).is_err());
        assert_eq!(pct_decode("%"), "%");
        assert_eq!(pct_decode("a%4"), "a%4");
    }
}
