//! `GET /eventsubscriptions/{name}/validate?id=…&token=…`: the `validationUrl` a basic-tier
//! webhook's owner opens to complete a manual validation handshake (docs/eventgrid.md §5.1).
//!
//! Owns reading `id` and `token` from the query and the plain-text answer. Needs no key (the
//! token is the proof); must never judge the token itself: the grid checks it and activates the
//! subscription.

use actix_web::{HttpRequest, HttpResponse, web};

use super::State;
use super::error::ApiError;
use super::request::{param, query_pairs};

pub(super) async fn validate(
    req: HttpRequest,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let q = query_pairs(req.query_string());
    let id = param(&q, "id")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::bad_request("The validation URL has no valid 'id'."))?;
    let token = param(&q, "token")
        .ok_or_else(|| ApiError::bad_request("The validation URL has no 'token'."))?;
    st.grid.complete_validation(id, token).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("Webhook successfully validated as a subscription endpoint.\n"))
}
