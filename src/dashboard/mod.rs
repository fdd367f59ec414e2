//! The live dashboard: one page (HTML, script and style embedded in the binary, nothing fetched
//! from elsewhere) and the JSON it reads. `mesh-mcp serve --http` serves it at `/`, and
//! `mesh-mcp dashboard` serves it alone ([`crate::server::http::serve_dashboard`]).
//!
//! - `GET /`, `/dashboard.js`, `/dashboard.css`: the page. It holds no state, so it passes the
//!   Host/Origin checks without a token (see [`crate::server::http::security`]).
//! - `GET /api/swarms`: the swarms for the selector (`swarm_list`).
//! - `GET /api/swarm/{id}`: everything the page shows of one swarm ([`snapshot::Snapshot`]),
//!   with the charts of the recorded metrics ([`charts`]), which cover the whole store.
//!
//! The page subscribes to `/events` and reads the snapshot again when a change names its swarm.

pub mod charts;
pub mod snapshot;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

use crate::mesh::Engine;
use crate::server::errors::http_error;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// The page, its script and its style.
pub fn page_routes() -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/dashboard.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/dashboard.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}

/// The JSON the page reads.
pub fn api_routes(engine: Engine) -> Router {
    Router::new().route("/api/swarms", get(swarms)).route("/api/swarm/{id}", get(swarm)).with_state(engine)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn swarms(State(engine): State<Engine>) -> Response {
    json(engine.swarm_list().await)
}

async fn swarm(State(engine): State<Engine>, Path(id): Path<String>) -> Response {
    json(snapshot::read(&engine, &id).await)
}

fn json<T: serde::Serialize>(result: crate::error::Result<T>) -> Response {
    match result {
        Ok(body) => ([(CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(e) => {
            let (status, body) = http_error(&e);
            (status, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
    }
}
