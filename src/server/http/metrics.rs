//! `GET /metrics`: this process's counters and the mesh's state gauges in the Prometheus text
//! exposition format ([`crate::metrics::prometheus`]), behind the same guard as every route.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::mesh::Engine;
use crate::metrics::{process, prometheus};

pub fn routes(engine: Engine) -> Router {
    Router::new().route("/metrics", get(page)).with_state(engine)
}

async fn page(State(engine): State<Engine>) -> Response {
    if !engine.metrics().enabled() {
        return (StatusCode::NOT_FOUND, "metrics are off in this process (MESH_METRICS=off)\n").into_response();
    }
    let gauges = match engine.state_gauges().await {
        Ok(g) => g,
        Err(e) => {
            let id = crate::server::errors::log_internal("reading the state gauges for /metrics failed", &e);
            let message = format!("cannot read the store: {}\n", crate::server::errors::internal_message(&id));
            return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
        }
    };
    let m = engine.metrics();
    let text = prometheus::render(&m.counts(), process::resources(), m.started_ms(), &gauges);
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response()
}
