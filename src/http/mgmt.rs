//! The management API: namespaces, namespace topics and their event subscriptions under
//! `/mgmt/…`, in Azure's ARM JSON shapes (`{"id","name","type","properties":{…}}`), with keys
//! (`listKeys`, `regenerateKey`) and dead letters. Authenticated with
//! `Authorization: Bearer <admin key>`.
//!
//! Owns translation only (paths, bodies, ARM status codes: PUT 201 when created and 200 when
//! updated, DELETE 200 or 204 when there was nothing, GET on a collection `{"value":[…]}`); the
//! grid validates and stores. Must never return a key outside `listKeys`/`regenerateKey`, nor
//! read a request body before the admin key is checked ([`body`]).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::State;
use super::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    const SUBS: &str = "{es:(?i)eventsubscriptions}";
    cfg.route("/mgmt/namespaces", web::get().to(list_namespaces))
        .service(
            web::resource("/mgmt/namespaces/{ns}")
                .route(web::put().to(put_namespace))
                .route(web::get().to(get_namespace))
                .route(web::delete().to(delete_namespace)),
        )
        .route("/mgmt/namespaces/{ns}/listKeys", web::post().to(list_keys))
        .route(
            "/mgmt/namespaces/{ns}/regenerateKey",
            web::post().to(regenerate_key),
        )
        .route("/mgmt/namespaces/{ns}/topics", web::get().to(list_topics))
        .service(
            web::resource("/mgmt/namespaces/{ns}/topics/{t}")
                .route(web::put().to(put_topic))
                .route(web::get().to(get_topic))
                .route(web::delete().to(delete_topic)),
        )
        .route(
            &format!("/mgmt/namespaces/{{ns}}/topics/{{t}}/{SUBS}"),
            web::get().to(list_subscriptions),
        )
        .service(
            web::resource(format!("/mgmt/namespaces/{{ns}}/topics/{{t}}/{SUBS}/{{s}}"))
                .route(web::put().to(put_subscription))
                .route(web::get().to(get_subscription))
                .route(web::delete().to(delete_subscription)),
        )
        .route(
            &format!("/mgmt/namespaces/{{ns}}/topics/{{t}}/{SUBS}/{{s}}/deadLetters"),
            web::get().to(dead_letters),
        );
}

pub(super) fn admin(req: &HttpRequest, st: &State) -> Result<(), ApiError> {
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
pub(super) const MAX_MGMT_BODY: usize = 256 * 1024;

/// A management call's body, read only once [`admin`] has let the caller through, so a client
/// without the key cannot make the server buffer anything; over [`MAX_MGMT_BODY`] it is a 413
/// with an Event Grid error body.
pub(super) async fn body(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<super::namespace::Body, ApiError> {
    super::namespace::read_body(req, payload, MAX_MGMT_BODY, st.body_timeout).await
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

pub(super) fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(v.to_string())
}

pub(super) fn put_response((doc, created): (Value, bool)) -> HttpResponse {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &doc)
}

pub(super) fn list_response(items: Vec<Value>) -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "value": items }))
}

pub(super) fn delete_response(existed: bool) -> HttpResponse {
    if existed {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NoContent().finish()
    }
}

pub(super) type R = Result<HttpResponse, ApiError>;

async fn list_namespaces(req: HttpRequest, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_namespaces()))
}

async fn put_namespace(
    req: HttpRequest,
    ns: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    let body = body(&req, payload, &st).await?;
    let props = properties(&body)?;
    Ok(put_response(st.grid.put_namespace(&ns, &props).await?))
}

async fn get_namespace(req: HttpRequest, ns: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(json_response(StatusCode::OK, &st.grid.get_namespace(&ns)?))
}

async fn delete_namespace(req: HttpRequest, ns: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(delete_response(st.grid.delete_namespace(&ns).await?))
}

pub(super) fn keys_response(k: evgrid_actors::grid::Keys) -> HttpResponse {
    json_response(StatusCode::OK, &json!({"key1": k.key1, "key2": k.key2}))
}

async fn list_keys(req: HttpRequest, ns: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(keys_response(st.grid.keys(&ns)?))
}

async fn regenerate_key(
    req: HttpRequest,
    ns: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    let body = body(&req, payload, &st).await?;
    Ok(keys_response(
        st.grid.regenerate_key(&ns, &key_name(&body)?).await?,
    ))
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

async fn list_topics(req: HttpRequest, ns: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_topics(&ns)?))
}

async fn put_topic(
    req: HttpRequest,
    p: web::Path<(String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    let body = body(&req, payload, &st).await?;
    let props = properties(&body)?;
    Ok(put_response(st.grid.put_topic(&p.0, &p.1, &props).await?))
}

async fn get_topic(req: HttpRequest, p: web::Path<(String, String)>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_topic(&p.0, &p.1)?,
    ))
}

async fn delete_topic(req: HttpRequest, p: web::Path<(String, String)>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(delete_response(st.grid.delete_topic(&p.0, &p.1).await?))
}

async fn list_subscriptions(
    req: HttpRequest,
    p: web::Path<(String, String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_subscriptions(&p.0, &p.1)?))
}

async fn put_subscription(
    req: HttpRequest,
    p: web::Path<(String, String, String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    let body = body(&req, payload, &st).await?;
    let props = properties(&body)?;
    Ok(put_response(
        st.grid.put_subscription(&p.0, &p.1, &p.3, &props).await?,
    ))
}

async fn get_subscription(
    req: HttpRequest,
    p: web::Path<(String, String, String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_subscription(&p.0, &p.1, &p.3)?,
    ))
}

async fn delete_subscription(
    req: HttpRequest,
    p: web::Path<(String, String, String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(delete_response(
        st.grid.delete_subscription(&p.0, &p.1, &p.3).await?,
    ))
}

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    pub(super) after: Option<u64>,
    pub(super) top: Option<usize>,
}

/// `{"value":[records…],"nextLink":…}`; a record is `{"event":…,"deadLetterProperties":…}`.
async fn dead_letters(
    req: HttpRequest,
    p: web::Path<(String, String, String, String)>,
    q: web::Query<PageQuery>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    let top = page_size(&q)?;
    let recs = st
        .grid
        .dead_letters(&p.0, &p.1, &p.3, q.after.unwrap_or(0), top)?;
    Ok(dead_letter_page(&req, &recs, top))
}

pub(super) fn page_size(q: &PageQuery) -> Result<usize, ApiError> {
    let top = q.top.unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request("top must be from 1 to 1000."));
    }
    Ok(top)
}

/// `{"value":[records…],"nextLink":…}`.
pub(super) fn dead_letter_page(
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
