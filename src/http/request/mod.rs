//! What every handler does with a request before its own work: authenticate it against a
//! resource's keys ([`authenticate`]), check its `api-version` ([`namespace_api_version`],
//! [`basic_api_version`]), read its query ([`query`]) and read its body within the size limit,
//! the body timeout and the process's memory budget ([`read_body`]).
//!
//! Owns those checks' error answers. Must never look at what a body means (that is
//! [`super::schema`]'s and the handlers' job), read a body before the caller has authenticated
//! the request, or let a body's bytes go uncounted by the memory budget.

pub mod query;

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use evgrid_actors::budget::{BUDGET, BufferKind, Held};
use evgrid_actors::grid::Keys;
use evgrid_actors::metrics::HTTP;
use futures_util::StreamExt;
use ntex_bytes::{Bytes, BytesMut};

pub(crate) use self::query::{param, query_pairs};
use super::auth;
use super::error::ApiError;

/// The api-versions of the namespace data plane (docs/eventgrid.md §6.1).
const NAMESPACE_API_VERSIONS: [&str; 4] = [
    "2023-06-01-preview",
    "2023-10-01-preview",
    "2023-11-01",
    "2024-06-01",
];

/// The one api-version of the basic tier's publish endpoint.
const BASIC_API_VERSION: &str = "2018-01-01";

/// The namespace data plane's `api-version`, which must be one of [`NAMESPACE_API_VERSIONS`].
pub(crate) fn namespace_api_version(q: &[(String, String)]) -> Result<&str, ApiError> {
    match param(q, "api-version") {
        None => Err(ApiError::bad_request(format!(
            "The api-version query parameter is required. Supported versions: {}.",
            NAMESPACE_API_VERSIONS.join(", ")
        ))),
        Some(v) if NAMESPACE_API_VERSIONS.contains(&v) => Ok(v),
        Some(v) => Err(ApiError::bad_request(format!(
            "The api-version '{v}' is not supported. Supported versions: {}.",
            NAMESPACE_API_VERSIONS.join(", ")
        ))),
    }
}

/// The basic tier's `api-version`, which must be [`BASIC_API_VERSION`].
pub(crate) fn basic_api_version(q: &[(String, String)]) -> Result<(), ApiError> {
    match param(q, "api-version") {
        Some(BASIC_API_VERSION) => Ok(()),
        Some(v) => Err(ApiError::bad_request(format!(
            "The api-version '{v}' is not supported; use {BASIC_API_VERSION}."
        ))),
        None => Err(ApiError::bad_request(format!(
            "The api-version query parameter is required; use ?api-version={BASIC_API_VERSION}."
        ))),
    }
}

/// Checks the credential the request presents against `keys`, a resource rooted at `scope`
/// (`/namespaces/{ns}`, `/topics/{t}`, `/domains/{d}`); any failure is a 401.
pub(crate) fn authenticate(req: &HttpRequest, keys: &Keys, scope: &str) -> Result<(), ApiError> {
    let cred = auth::credential(req.headers(), req.query_string());
    auth::verify(
        &cred,
        &[&keys.key1, &keys.key2],
        req.path(),
        scope,
        std::time::SystemTime::now(),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// The `Content-Type` header, if it is text.
pub(crate) fn content_type(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// A request body read by [`read_body`]: its bytes, counted against the memory budget
/// (`http_body`) until this value is dropped, which handlers do once they are done with it.
pub(crate) struct Body {
    bytes: Bytes,
    _held: Held<'static>,
}

impl Body {
    /// The bytes, shared (no copy); the budget stays counted while this `Body` lives.
    pub(crate) fn bytes(&self) -> Bytes {
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
pub(crate) async fn read_body(
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
    let mut held = BUDGET.hold(BufferKind::HttpBody);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert!(namespace_api_version(&query_pairs("api-version=2024-06-01")).is_ok());
        assert!(namespace_api_version(&query_pairs("api-version=2018-01-01")).is_err());
        assert!(namespace_api_version(&[]).is_err());
    }
}
