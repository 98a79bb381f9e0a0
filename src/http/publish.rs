//! Publishing over HTTP, both tiers: the namespace tier's `POST
//! /namespaces/{ns}/topics/{topic}:publish` (CloudEvents, docs/eventgrid.md §6, §9.3) and the
//! basic tier's `POST /topics/{t}/api/events` and `POST /domains/{d}/api/events` (the topic's
//! input schema, §2, §9.2), exactly as the `azure-eventgrid` SDK sends them.
//!
//! Owns translation only: authenticate with the resource's keys, check `api-version`, read the
//! body and parse it with [`super::schema`] (on namespaces, a request with `ce-*` attribute
//! headers and no structured content type is one binary-mode event, §6.2), create the domain
//! topics a domain batch names, hand the batch to the topic actor and answer once it is
//! committed (namespace: 200 `{}`; basic: 200 with an empty body). Must never answer 200 before the actor said the batch
//! is committed, accept part of a batch, or re-serialise an event.

use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::grid::basic::Kind;
use evgrid_actors::grid::resource::basic::InputSchema;
use evgrid_actors::grid::topic::Publish;
use evgrid_actors::metrics::HTTP;
use evgrid_actors::model::clock::now_ms;

use super::State;
use super::error::ApiError;
use super::request::{
    authenticate, basic_api_version, content_type, namespace_api_version, query_pairs, read_body,
};
use super::schema::ParseLimits;
use super::schema::cloudevents::{self, binary};
use super::schema::eventgrid::{self, PostedTo};

/// The answer when the actor that should take a batch is gone.
const GONE: &str = "The topic is being deleted or the server is stopping; nothing was stored.";

/// `POST /namespaces/{ns}/topics/{topic}:publish`.
pub(super) async fn namespace_topic(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let (ns, topic_action) = path.into_inner();
    let Some((topic, "publish")) = topic_action.rsplit_once(':') else {
        return Err(ApiError::not_found(format!(
            "No operation at '{}': namespace topics take POST .../topics/{{topic}}:publish.",
            req.path()
        )));
    };
    let keys = st.grid.keys(&ns)?;
    authenticate(&req, &keys, &format!("/namespaces/{ns}"))?;
    namespace_api_version(&query_pairs(req.query_string()))?;
    let (addr, _) = st.grid.topic_for_publish(&ns, topic)?;
    let body = read_body(&req, payload, st.limits.max_request_bytes, st.body_timeout).await?;
    let ct = content_type(&req);
    let headers = req.headers();
    let events = if binary::is_binary(headers.keys().map(|k| k.as_str()), ct) {
        vec![binary::parse_binary(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
            ct,
            &body.bytes(),
            st.limits.max_event_bytes,
        )?]
    } else {
        cloudevents::parse_batch(
            body.bytes(),
            ct,
            &ParseLimits {
                max_event_bytes: st.limits.max_event_bytes,
                max_events: st.limits.max_events_per_request,
            },
        )?
    };
    addr.send(Publish(events.into_iter().map(Into::into).collect()))
        .await
        .map_err(|_| ApiError::unavailable(GONE))??;
    HTTP.publish_ok.inc();
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body("{}"))
}

/// `POST /topics/{t}/api/events`.
pub(super) async fn basic_topic(
    req: HttpRequest,
    t: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    basic(req, Kind::Topic, &t, payload, st).await
}

/// `POST /domains/{d}/api/events`.
pub(super) async fn basic_domain(
    req: HttpRequest,
    d: web::Path<String>,
    payload: web::Payload,
    st: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    basic(req, Kind::Domain, &d, payload, st).await
}

async fn basic(
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
    authenticate(&req, &target.keys, &scope)?;
    basic_api_version(&query_pairs(req.query_string()))?;
    let body = read_body(&req, payload, st.limits.max_request_bytes, st.body_timeout).await?;
    let ct = content_type(&req);
    let limits = ParseLimits {
        max_event_bytes: st.limits.max_event_bytes,
        max_events: st.limits.max_events_per_basic_request,
    };
    let t = match kind {
        Kind::Topic => PostedTo::Topic {
            topic_id: &target.topic_id,
        },
        Kind::Domain => PostedTo::Domain {
            domain_id: &target.topic_id,
        },
    };
    let events = match (target.cfg.input, &target.cfg.mapping) {
        (InputSchema::Custom, Some(m)) => eventgrid::parse_custom(
            body.bytes(),
            ct,
            &limits,
            t,
            m,
            now_ms(),
            evgrid_actors::grid::basic::random_id,
        )?,
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
    target
        .addr
        .send(Publish(events))
        .await
        .map_err(|_| ApiError::unavailable(GONE))??;
    HTTP.publish_ok.inc();
    Ok(HttpResponse::Ok().finish())
}
