//! The HTTP edge: health, readiness and Prometheus metrics (later: publishing and management).
//!
//! Owns the actix-web route table (`configure`), shared by `main` and tests. Holds no business
//! state.

use actix_web::{HttpResponse, web};
use evgrid_actors::metrics::METRICS;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(METRICS.render())
}
