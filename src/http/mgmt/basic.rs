//! The basic tier's management API: custom topics (`/mgmt/topics/{t}`), domains
//! (`/mgmt/domains/{d}`), domain topics (`/mgmt/domains/{d}/topics/{dt}`),
//! system topics (`/mgmt/systemTopics/{st}`, docs/eventgrid.md §7.7), and event subscriptions
//! under each of the four (`…/eventSubscriptions/{s}`, with `deadLetters`), in Azure's ARM
//! shapes, with `listKeys` / `regenerateKey` on topics and domains (a system topic has no keys).
//!
//! Owns translation only, with the helpers of [`super`]; the grid validates,
//! runs the webhook handshake and stores. Must never return a key outside `listKeys` /
//! `regenerateKey`, or a secret delivery attribute.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use evgrid_actors::grid::basic::{Kind, Scope};

use super::{
    PageQuery, R, admin, body, dead_letter_page, delete_response, json_response, key_name,
    keys_response, list_response, page_size, put_properties, put_response,
};
use crate::http::State;

pub fn configure(cfg: &mut web::ServiceConfig) {
    const SUBS: &str = "{es:(?i)eventsubscriptions}";
    for (kind, base) in [("topics", "/mgmt/topics"), ("domains", "/mgmt/domains")] {
        let k = if kind == "topics" {
            Kind::Topic
        } else {
            Kind::Domain
        };
        cfg.service(
            web::resource(base).route(web::get().to(move |req, st| list_sources(req, st, k))),
        )
        .service(
            web::resource(format!("{base}/{{n}}"))
                .route(web::put().to(move |req, n, b, st| put_source(req, n, b, st, k)))
                .route(web::get().to(move |req, n, st| get_source(req, n, st, k)))
                .route(web::delete().to(move |req, n, st| delete_source(req, n, st, k))),
        )
        .route(
            &format!("{base}/{{n}}/listKeys"),
            web::post().to(move |req, n, st| list_keys(req, n, st, k)),
        )
        .route(
            &format!("{base}/{{n}}/regenerateKey"),
            web::post().to(move |req, n, b, st| regenerate_key(req, n, b, st, k)),
        );
    }
    cfg.route(
        "/mgmt/domains/{d}/topics",
        web::get().to(list_domain_topics),
    )
    .service(
        web::resource("/mgmt/domains/{d}/topics/{dt}")
            .route(web::put().to(put_domain_topic))
            .route(web::get().to(get_domain_topic))
            .route(web::delete().to(delete_domain_topic)),
    );
    cfg.service(web::resource("/mgmt/systemTopics").route(web::get().to(list_system_topics)))
        .service(
            web::resource("/mgmt/systemTopics/{n}")
                .route(web::put().to(put_system_topic))
                .route(web::get().to(get_system_topic))
                .route(web::delete().to(delete_system_topic)),
        );
    for scope in [
        "/mgmt/topics/{t}",
        "/mgmt/domains/{d}",
        "/mgmt/domains/{d}/topics/{dt}",
        "/mgmt/systemTopics/{st}",
    ] {
        cfg.route(
            &format!("{scope}/{SUBS}"),
            web::get().to(list_subscriptions),
        )
        .service(
            web::resource(format!("{scope}/{SUBS}/{{s}}"))
                .route(web::put().to(put_subscription))
                .route(web::get().to(get_subscription))
                .route(web::delete().to(delete_subscription)),
        )
        .route(
            &format!("{scope}/{SUBS}/{{s}}/deadLetters"),
            web::get().to(dead_letters),
        );
    }
}

/// The subscription scope the matched path names.
fn scope(req: &HttpRequest) -> Scope<'_> {
    let m = req.match_info();
    if let Some(st) = m.get("st") {
        return Scope::SystemTopic(st);
    }
    match (m.get("t"), m.get("d"), m.get("dt")) {
        (Some(t), _, _) => Scope::Topic(t),
        (_, Some(d), Some(dt)) => Scope::DomainTopic(d, dt),
        (_, Some(d), None) => Scope::Domain(d),
        // Every route that reaches here has one of the three shapes.
        _ => Scope::Topic(""),
    }
}

fn sub_name(req: &HttpRequest) -> &str {
    req.match_info().get("s").unwrap_or_default()
}

async fn list_sources(req: HttpRequest, st: web::Data<State>, k: Kind) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_sources(k)))
}

async fn put_source(
    req: HttpRequest,
    n: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
    k: Kind,
) -> R {
    let props = put_properties(&req, payload, &st).await?;
    Ok(put_response(st.grid.put_source(k, &n, &props).await?))
}

async fn get_source(req: HttpRequest, n: web::Path<String>, st: web::Data<State>, k: Kind) -> R {
    admin(&req, &st)?;
    Ok(json_response(StatusCode::OK, &st.grid.get_source(k, &n)?))
}

async fn delete_source(req: HttpRequest, n: web::Path<String>, st: web::Data<State>, k: Kind) -> R {
    admin(&req, &st)?;
    Ok(delete_response(st.grid.delete_source(k, &n).await?))
}

async fn list_keys(req: HttpRequest, n: web::Path<String>, st: web::Data<State>, k: Kind) -> R {
    admin(&req, &st)?;
    Ok(keys_response(st.grid.source_keys(k, &n)?))
}

async fn regenerate_key(
    req: HttpRequest,
    n: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
    k: Kind,
) -> R {
    let body = body(&req, payload, &st).await?;
    Ok(keys_response(
        st.grid
            .regenerate_source_key(k, &n, &key_name(&body)?)
            .await?,
    ))
}

async fn list_system_topics(req: HttpRequest, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_system_topics()))
}

async fn put_system_topic(
    req: HttpRequest,
    n: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> R {
    let props = put_properties(&req, payload, &st).await?;
    Ok(put_response(st.grid.put_system_topic(&n, &props).await?))
}

async fn get_system_topic(req: HttpRequest, n: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_system_topic(&n)?,
    ))
}

async fn delete_system_topic(req: HttpRequest, n: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(delete_response(st.grid.delete_system_topic(&n).await?))
}

async fn list_domain_topics(req: HttpRequest, d: web::Path<String>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_domain_topics(&d)?))
}

async fn put_domain_topic(
    req: HttpRequest,
    p: web::Path<(String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(put_response(st.grid.put_domain_topic(&p.0, &p.1).await?))
}

async fn get_domain_topic(
    req: HttpRequest,
    p: web::Path<(String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_domain_topic(&p.0, &p.1)?,
    ))
}

async fn delete_domain_topic(
    req: HttpRequest,
    p: web::Path<(String, String)>,
    st: web::Data<State>,
) -> R {
    admin(&req, &st)?;
    Ok(delete_response(
        st.grid.delete_domain_topic(&p.0, &p.1).await?,
    ))
}

async fn list_subscriptions(req: HttpRequest, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(list_response(st.grid.list_push_subscriptions(scope(&req))?))
}

async fn put_subscription(req: HttpRequest, payload: web::Payload, st: web::Data<State>) -> R {
    let props = put_properties(&req, payload, &st).await?;
    Ok(put_response(
        st.grid
            .put_push_subscription(scope(&req), sub_name(&req), &props)
            .await?,
    ))
}

async fn get_subscription(req: HttpRequest, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(json_response(
        StatusCode::OK,
        &st.grid.get_push_subscription(scope(&req), sub_name(&req))?,
    ))
}

async fn delete_subscription(req: HttpRequest, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    Ok(delete_response(
        st.grid
            .delete_push_subscription(scope(&req), sub_name(&req))
            .await?,
    ))
}

async fn dead_letters(req: HttpRequest, q: web::Query<PageQuery>, st: web::Data<State>) -> R {
    admin(&req, &st)?;
    let top = page_size(&q)?;
    let recs = st
        .grid
        .push_dead_letters(scope(&req), sub_name(&req), q.after.unwrap_or(0), top)?;
    Ok(dead_letter_page(&req, &recs, top))
}
