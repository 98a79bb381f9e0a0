//! The HTTP edge: the namespace data plane (publish and pull delivery), the management API,
//! health, readiness and Prometheus metrics.
//!
//! Owns the actix-web route table ([`configure`]) and the state every handler shares
//! ([`State`]). Holds no business state: resources, queues and locks live in the grid's actors.
//! Every error answer is an Event Grid error body ([`error::ApiError`]). Must never name the
//! store: the grid is the edge's only way in.
//!
//! The modules: [`request`] (what every handler does with a request: auth, `api-version`,
//! query, body), [`auth`] (credentials and SAS tokens), [`schema`] (pure body parsers),
//! [`publish`], [`pull`], [`validation`] (the data plane's handlers), [`mqtt`] (HTTP publish to
//! MQTT topics and the retained-message read API), [`mgmt`] (the management API), [`error`] (the
//! error body).

pub mod auth;
pub mod error;
pub mod mgmt;
pub mod mqtt;
pub mod publish;
pub mod pull;
pub mod request;
pub mod schema;
pub mod tls;
pub mod validation;

use actix_web::{HttpRequest, HttpResponse, web};
use evgrid_actors::bridge::Bridge;
use evgrid_actors::grid::Grid;
use evgrid_actors::metrics::METRICS;

use error::ApiError;

/// Publish limits (docs/eventgrid.md §6.2: 1 MB per event, 1 MB per request, 1,000 events per
/// request).
#[derive(Debug, Clone, Copy)]
pub struct PublishLimits {
    pub max_event_bytes: usize,
    pub max_request_bytes: usize,
    pub max_events_per_request: usize,
    pub max_events_per_basic_request: usize,
}

/// What every handler can reach.
pub struct State {
    pub grid: Grid,
    /// The MQTT broker's side of the namespace it serves (HTTP publish to MQTT topics).
    pub bridge: Bridge,
    pub admin_key: String,
    pub limits: PublishLimits,
    /// The broker's limits, as the MQTT edge applies them (HTTP publish to MQTT topics).
    pub mqtt: mqtt::parse::MqttLimits,
    /// How long a request body may take to arrive after its headers (`http.body_timeout_ms`).
    pub body_timeout: std::time::Duration,
}

/// The whole route table. `state` is `None` for an edge without the grid (health and metrics
/// only).
pub fn configure(cfg: &mut web::ServiceConfig, state: Option<web::Data<State>>) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
    if let Some(st) = state {
        cfg.app_data(st);
        cfg.route(
            "/namespaces/{ns}/topics/{topic_action}",
            web::post().to(publish::namespace_topic),
        )
        .route(
            "/namespaces/{ns}/topics/{topic}/{es:(?i)eventsubscriptions}/{sub_action}",
            web::post().to(pull::subscription_op),
        );
        mgmt::namespace::configure(cfg);
        mgmt::identity::configure(cfg);
        mqtt::configure(cfg);
        cfg.route(
            "/topics/{t}/api/events",
            web::post().to(publish::basic_topic),
        )
        .route(
            "/domains/{d}/api/events",
            web::post().to(publish::basic_domain),
        )
        .route(
            "/{es:(?i)eventsubscriptions}/{s}/validate",
            web::get().to(validation::validate),
        );
        mgmt::basic::configure(cfg);
    }
    cfg.default_service(web::to(not_found));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// Not ready (503) while the store cannot commit: every publish, acknowledge and management
/// change would fail, so a load balancer should send them elsewhere until it recovers.
/// In cluster mode, also not ready while the node is not connected to NATS: its MQTT clients
/// would see nothing published on the other nodes.
async fn readyz(state: Option<web::Data<State>>) -> HttpResponse {
    let not_ready = |why: String| {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("not ready: {why}\n"))
    };
    match state.map(|s| s.grid.store_health()) {
        Some(Err(why)) => not_ready(format!("the store cannot commit ({why})")),
        _ if evgrid_actors::cluster::connected() == Some(false) => {
            not_ready("not connected to the NATS cluster".into())
        }
        _ => healthz().await,
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(METRICS.render())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "No resource or operation at {} {}.",
        req.method(),
        req.path()
    )))
}
