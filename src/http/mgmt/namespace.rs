//! The namespace tier's management API: namespaces (`/mgmt/namespaces/{ns}`), their topics
//! and the topics' event subscriptions (with `deadLetters`), with `listKeys` / `regenerateKey`
//! on namespaces.
//!
//! Owns translation only, with the helpers of [`super`]; the grid validates and stores. Must
//! never return a key outside `listKeys`/`regenerateKey`, nor read a request body before the
//! admin key is checked.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

use super::{
    PageQuery, R, admin, body, dead_letter_page, delete_response, json_response, key_name,
    keys_response, list_response, page_size, put_properties, put_response,
};
use crate::http::State;

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
    let props = put_properties(&req, payload, &st).await?;
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
    let body = body(&req, payload, &st).await?;
    Ok(keys_response(
        st.grid.regenerate_key(&ns, &key_name(&body)?).await?,
    ))
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
    let props = put_properties(&req, payload, &st).await?;
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
    let props = put_properties(&req, payload, &st).await?;
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
