//! The basic-tier data plane: `POST /topics/{t}/api/events` and `POST /domains/{d}/api/events`
//! exactly as the `azure-eventgrid` SDK's `EventGridPublisherClient` sends them (spec §2, §9.2),
//! and the `validationUrl` GET that completes a webhook's manual validation (§5.1).
//!
//! Owns translation only: authenticate with the topic's or domain's keys (`aeg-sas-key`,
//! `aeg-sas-token`, `Authorization: SharedAccessSignature`), check `api-version`, read and
//! validate the body in the topic's input schema, create the domain topics a domain batch
//! names, hand the batch to the source actor, answer 200 with an empty body once it is
//! committed. Must never accept part of a batch or answer 200 before the commit.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::grid::basic::Kind;
use evgrid_actors::grid::basic::resource::InputSchema;
use evgrid_actors::grid::topic::Publish;
use evgrid_actors::metrics::HTTP;

use super::State;
use super::auth;
use super::cloudevents::Limits;
use super::error::ApiError;
use super::eventgrid::{self, Target};
use super::namespace::{param, query_pairs, read_body};

const API_VERSION: &str = "2018-01-01";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/topics/{t}/api/events", web::post().to(publish_topic))
        .route("/domains/{d}/api/events", web::post().to(publish_domain))
        .route(
            "/{es:(?i)eventsubscriptions}/{s}/validate",
            web::get().to(validate),
        );
}

async fn publish_topic(
    req: HttpRequest,
    t: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    publish(req, Kind::Topic, &t, payload, st).await
}

async fn publish_domain(
    req: HttpRequest,
    d: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    publish(req, Kind::Domain, &d, payload, st).await
}

async fn publish(
    req: HttpRequest,
    kind: Kind,
    name: &str,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let target = st.grid.publish_target(kind, name)?;
    let scope = match kind {
        Kind::Topic => format!("/topics/{name}"),
        Kind::Domain => format!("/domains/{name}"),
    };
    let cred = auth::credential(req.headers(), req.query_string());
    auth::verify(
        &cred,
        &[&target.keys.key1, &target.keys.key2],
        req.path(),
        &scope,
        std::time::SystemTime::now(),
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let q = query_pairs(req.query_string());
    match param(&q, "api-version") {
        Some(API_VERSION) => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "The api-version '{v}' is not supported; use {API_VERSION}."
            )));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "The api-version query parameter is required; use ?api-version={API_VERSION}."
            )));
        }
    }
    let body = read_body(&req, payload, st.limits.max_request_bytes, st.body_timeout).await?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let limits = Limits {
        max_event_bytes: st.limits.max_event_bytes,
        max_events: st.limits.max_events_per_basic_request,
    };
    let t = match kind {
        Kind::Topic => Target::Topic {
            topic_id: &target.topic_id,
        },
        Kind::Domain => Target::Domain {
            domain_id: &target.topic_id,
        },
    };
    let events = match (target.cfg.input, &target.cfg.mapping) {
        (InputSchema::Custom, Some(m)) => eventgrid::parse_custom(body.bytes(), ct, &limits, t, m)?,
        (InputSchema::CloudEvents, _) => {
            eventgrid::parse_cloudevents(body.bytes(), ct, &limits, t)?
        }
        _ => eventgrid::parse_eventgrid(body.bytes(), ct, &limits, t)?,
    };
    if let Some(known) = &target.domain_topics {
        let missing: Vec<String> = events
            .iter()
            .filter_map(|e| e.domain_topic.as_ref())
            .filter(|t| !known.contains(t.as_str()))
            .map(|t| t.to_string())
            .collect();
        if !missing.is_empty() {
            st.grid.ensure_domain_topics(name, &missing).await?;
        }
    }
    target.addr.send(Publish(events)).await.map_err(|_| {
        ApiError::unavailable(
            "The topic is being deleted or the server is stopping; nothing was stored.",
        )
    })??;
    HTTP.publish_ok.inc();
    Ok(HttpResponse::Ok().finish())
}

/// `GET /eventsubscriptions/{name}/validate?id=…&token=…`: the manual validation handshake.
async fn validate(req: HttpRequest, st: web::Data<State>) -> Result<HttpResponse, ApiError> {
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
