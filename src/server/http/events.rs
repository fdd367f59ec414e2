//! `GET /events`: a server-sent event stream of store changes, for live views (the dashboard).
//!
//! The first event, `ready`, carries the store revision the stream starts after. Then each batch
//! of commits, by any process sharing the database, becomes one `change` event whose data is a
//! [`StateChanged`](crate::mesh::changes::StateChanged): the newest revision, the swarms and
//! memory namespaces touched, and how many keys. A watch that fails ends the stream after an
//! `error` event; the client reconnects and reads state afresh.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::{Stream, StreamExt};
use http::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::mesh::changes::ChangeFeed;
use crate::mesh::Engine;

#[derive(Clone)]
struct Feed {
    engine: Engine,
    shutdown: CancellationToken,
    keep_alive: Duration,
    /// One permit per open stream ([`crate::config::MAX_EVENT_STREAMS`]); an abandoned stream
    /// gives its permit back when the connection drops it.
    streams: Arc<Semaphore>,
}

/// The `/events` route. Streams end when `shutdown` is cancelled.
pub fn routes(engine: Engine, shutdown: CancellationToken, keep_alive: Duration) -> Router {
    let streams = Arc::new(Semaphore::new(crate::config::MAX_EVENT_STREAMS));
    Router::new().route("/events", get(events)).with_state(Feed { engine, shutdown, keep_alive, streams })
}

async fn events(State(feed): State<Feed>) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, StatusCode> {
    let Ok(permit) = feed.streams.clone().try_acquire_owned() else {
        tracing::warn!(limit = crate::config::MAX_EVENT_STREAMS, "refused an /events stream: too many open");
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    };
    // Open the feed before reading the revision: a commit in between is then sent, not lost.
    let changes = feed.engine.changes().await.map_err(|e| internal(&e))?;
    let revision = feed.engine.store().revision().await.map_err(|e| internal(&e.into()))?;
    let ready = Event::default().event("ready").data(json!({ "revision": revision }).to_string());
    let changes = futures::stream::unfold(Some(changes), |changes: Option<ChangeFeed>| async move {
        let mut changes = changes?;
        match changes.next_batch().await {
            Ok(batch) => {
                let data = serde_json::to_string(&batch.summary()).expect("a summary serializes");
                Some((Event::default().event("change").data(data), Some(changes)))
            }
            Err(e) => {
                let id = crate::server::errors::log_internal("the /events watch failed; ending the stream", &e);
                let message = crate::server::errors::internal_message(&id);
                Some((Event::default().event("error").data(json!({ "error": message }).to_string()), None))
            }
        }
    });
    let stream = futures::stream::once(async { ready })
        .chain(changes)
        // The permit lives as long as the stream.
        .map(move |event| {
            let _held = &permit;
            Ok(event)
        })
        .take_until(feed.shutdown.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(feed.keep_alive)))
}

fn internal(e: &crate::error::MeshError) -> StatusCode {
    tracing::error!(error = %e, "cannot open the /events watch");
    StatusCode::INTERNAL_SERVER_ERROR
}
