//! The management API under `/mgmt/…`, in Azure's ARM JSON shapes (`{"id","name","type",
//! "properties":{…}}`), authenticated with `Authorization: Bearer <admin key>`: the namespace
//! tier in [`namespace`] (its identity resources in [`identity`]), the basic tier in [`basic`].
//!
//! Owns what both share: the admin check ([`admin`]), reading a body only after it ([`body`]),
//! the ARM status codes (PUT 201 when created and 200 when updated, DELETE 200 or 204 when there
//! was nothing, GET on a collection `{"value":[…]}`), the keys answer and the dead-letter page.
//! Translation only: the grid validates and stores. Must never return a key outside
//! `listKeys`/`regenerateKey`, nor read a request body before the admin key is checked.

pub mod basic;
pub mod identity;
pub mod namespace;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::State;
use super::error::ApiError;
use super::request::{self, Body};

pub(crate) fn admin(req: &HttpRequest, st: &State) -> Result<(), ApiError> {
    let got = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match got {
        None => Err(ApiError::unauthorized(
            "Management calls need 'Authorization: Bearer <admin key>' (the admin key is in the data directory's admin.key, or set with EVGRID_ADMIN_KEY).",
        )),
        Some(k) if evgrid_actors::model::keys::ct_eq(k.as_bytes(), st.admin_key.as_bytes()) => {
            Ok(())
        }
        Some(_) => Err(ApiError::unauthorized("The admin key is not valid.")),
    }
}

/// Most bytes a management body may have. ARM bodies are a few KB; this was actix-web's default
/// payload limit, which these handlers used before they read bodies themselves.
pub(crate) const MAX_MGMT_BODY: usize = 256 * 1024;

/// A management call's body, read only once [`admin`] has let the caller through (checked
/// here), so a client without the key cannot make the server buffer anything; over
/// [`MAX_MGMT_BODY`] it is a 413 with an Event Grid error body.
pub(crate) async fn body(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<Body, ApiError> {
    admin(req, st)?;
    request::read_body(req, payload, MAX_MGMT_BODY, st.body_timeout).await
}

/// The `properties` of a management PUT's body, read as [`body`] reads it.
pub(crate) async fn put_properties(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<Value, ApiError> {
    properties(&body(req, payload, st).await?)
}

/// The `properties` of an ARM PUT body; an empty body means no properties.
pub(crate) fn properties(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    match v {
        Value::Object(mut m) => Ok(m.remove("properties").unwrap_or(Value::Null)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request body must be a JSON object such as {\"properties\": {...}}.",
        )),
    }
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(v.to_string())
}

pub(crate) fn put_response((doc, created): (Value, bool)) -> HttpResponse {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &doc)
}

pub(crate) fn list_response(items: Vec<Value>) -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "value": items }))
}

pub(crate) fn delete_response(existed: bool) -> HttpResponse {
    if existed {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NoContent().finish()
    }
}

pub(crate) type R = Result<HttpResponse, ApiError>;

pub(super) fn keys_response(k: evgrid_actors::grid::Keys) -> HttpResponse {
    json_response(StatusCode::OK, &json!({"key1": k.key1, "key2": k.key2}))
}

/// The `keyName` of a `regenerateKey` body.
pub(crate) fn key_name(body: &[u8]) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        key_name: String,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "The body must be {{\"keyName\": \"key1\"}} or {{\"keyName\": \"key2\"}}: {e}"
        ))
    })?;
    Ok(b.key_name)
}

#[derive(serde::Deserialize)]
pub(crate) struct PageQuery {
    pub(crate) after: Option<u64>,
    pub(crate) top: Option<usize>,
}

pub(crate) fn page_size(q: &PageQuery) -> Result<usize, ApiError> {
    let top = q.top.unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request("top must be from 1 to 1000."));
    }
    Ok(top)
}

/// `{"value":[records…],"nextLink":…}`.
pub(crate) fn dead_letter_page(
    req: &HttpRequest,
    recs: &[(u64, Vec<u8>)],
    top: usize,
) -> HttpResponse {
    let last = recs.last().map(|r| r.0);
    let mut body = Vec::with_capacity(recs.iter().map(|r| r.1.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"value\":[");
    for (i, (_, rec)) in recs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(rec);
    }
    body.push(b']');
    if let (Some(last), true) = (last, recs.len() == top) {
        let next = format!(
            ",\"nextLink\":{}",
            Value::String(format!("{}?after={last}&top={top}", req.path()))
        );
        body.extend_from_slice(next.as_bytes());
    }
    body.push(b'}');
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body)
}
