//! Pull delivery over HTTP: receive, acknowledge, release, reject and renew lock on a namespace
//! topic's queue subscription (`POST …/eventsubscriptions/{sub}:{action}`), with the query
//! parameters, bodies and status codes the `azure-eventgrid` SDK uses (docs/eventgrid.md §6,
//! §9.4).
//!
//! Owns translation only: authenticate with the namespace's keys, check `api-version` and the
//! action's parameters (`maxEvents`, `maxWaitTime`, `releaseDelayInSeconds`), read the lock
//! tokens, hand the call to the subscription's actor and write its answer. Must never hold a
//! lock or decide an outcome itself (the subscription actor does), nor re-serialise an event:
//! a received event is copied into the answer byte for byte.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::delivery::queue::{Action, QueueSub, Receive, Settle, Settled};
use evgrid_actors::grid::GridError;

use super::State;
use super::error::ApiError;
use super::request::{authenticate, namespace_api_version, param, query_pairs, read_body};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockTokens {
    lock_tokens: Vec<String>,
}

/// `POST /namespaces/{ns}/topics/{topic}/eventsubscriptions/{sub}:{action}`.
pub(super) async fn subscription_op(
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (ns, topic, _, sub_action) = path.into_inner();
    let Some((sub, action)) = sub_action.rsplit_once(':') else {
        return Err(ApiError::not_found(format!(
            "No operation at '{}': use :receive, :acknowledge, :release, :reject or :renewLock.",
            req.path()
        )));
    };
    let keys = st.grid.keys(&ns)?;
    authenticate(&req, &keys, &format!("/namespaces/{ns}"))?;
    let q = query_pairs(req.query_string());
    let version = namespace_api_version(&q)?;
    // releaseDelayInSeconds and :renewLock exist only in these two (docs/eventgrid.md §6.1).
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
    addr: actix::Addr<QueueSub>,
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
