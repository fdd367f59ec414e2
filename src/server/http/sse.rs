//! The HTTP+SSE transport of protocol 2024-11-05, for clients that predate streamable HTTP.
//!
//! `GET /sse` opens a session: its first event is `endpoint`, naming
//! `/message?sessionId=<id>`. The client POSTs each JSON-RPC message there (answered 202), and
//! every response and notification goes out on the session's stream as an `event: message`.
//!
//! rmcp 3.9 no longer ships this transport, so each session bridges a pair of channels onto an
//! ordinary rmcp service: POST bodies feed the inbound channel, the outbound channel feeds the
//! SSE stream. The session ends when the SSE client goes away, when the service stops, or when
//! the server shuts down, whichever comes first.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use http::StatusCode;
use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{ErrorData, RoleServer, ServiceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::server::MeshServer;

/// Messages buffered each way per session before the sender waits.
const CHANNEL_CAPACITY: usize = 64;

type Sessions = Arc<DashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>;

/// Shared by the two routes: the live sessions and what a new one needs.
#[derive(Clone)]
struct Legacy {
    server: MeshServer,
    sessions: Sessions,
    shutdown: CancellationToken,
    keep_alive: Duration,
}

/// The `/sse` and `/message` routes. Sessions stop when `shutdown` is cancelled.
pub fn routes(server: MeshServer, shutdown: CancellationToken, keep_alive: Duration) -> Router {
    let state = Legacy { server, sessions: Arc::default(), shutdown, keep_alive };
    Router::new().route("/sse", get(open)).route("/message", post(message)).with_state(state)
}

/// `GET /sse`: start a session and stream its outbound messages.
async fn open(State(legacy): State<Legacy>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (inbound_tx, inbound_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (outbound_tx, outbound_rx) = mpsc::channel(CHANNEL_CAPACITY);
    legacy.sessions.insert(id.clone(), inbound_tx);
    let ct = legacy.shutdown.child_token();
    let transport = ChannelTransport { inbound: inbound_rx, outbound: outbound_tx };
    tokio::spawn(run_session(legacy.server.session(), transport, ct.clone(), legacy.sessions.clone(), id.clone()));
    tracing::debug!(session = %id, "legacy SSE session opened");

    let endpoint = Event::default().event("endpoint").data(format!("/message?sessionId={id}"));
    // The guard rides along with the stream: when axum drops the stream (client gone) the
    // session goes too.
    let guard = SessionGuard { id, sessions: legacy.sessions, ct };
    let messages = futures::stream::unfold((outbound_rx, guard), |(mut rx, guard)| async move {
        let message = rx.recv().await?;
        Some((Ok(message_event(&message)), (rx, guard)))
    });
    let stream = futures::stream::once(async move { Ok(endpoint) }).chain(messages);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(legacy.keep_alive))
}

/// Serve one session until its transport or token ends, then forget it.
async fn run_session(
    server: MeshServer,
    transport: ChannelTransport,
    ct: CancellationToken,
    sessions: Sessions,
    id: String,
) {
    match server.serve_with_ct(transport, ct).await {
        Ok(running) => {
            let reason = running.waiting().await;
            tracing::debug!(session = %id, ?reason, "legacy SSE session ended");
        }
        Err(e) => tracing::debug!(session = %id, error = %e, "legacy SSE session ended before initialization"),
    }
    // Dropping the transport closed the outbound channel, which ends the SSE stream.
    sessions.remove(&id);
}

fn message_event(message: &ServerJsonRpcMessage) -> Event {
    let json = serde_json::to_string(message).expect("JSON-RPC messages always serialize");
    Event::default().event("message").data(json)
}

#[derive(serde::Deserialize)]
struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST /message?sessionId=<id>`: hand one JSON-RPC message to the session; its answer goes out
/// on the SSE stream.
async fn message(State(legacy): State<Legacy>, Query(query): Query<SessionQuery>, body: Bytes) -> Response {
    let Some(id) = query.session_id else {
        return (StatusCode::BAD_REQUEST, "Bad Request: missing sessionId query parameter").into_response();
    };
    // Clone the sender out of the map so that no shard lock is held across the await below.
    let Some(sender) = legacy.sessions.get(&id).map(|entry| entry.value().clone()) else {
        return (StatusCode::NOT_FOUND, "Not Found: no session with this sessionId").into_response();
    };
    let message = match serde_json::from_slice::<ClientJsonRpcMessage>(&body) {
        Ok(message) => message,
        Err(e) => return malformed(&e),
    };
    if sender.send(message).await.is_err() {
        return (StatusCode::NOT_FOUND, "Not Found: the session has ended").into_response();
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

/// 400 with a JSON-RPC error body: a parse error for broken JSON, an invalid request for JSON
/// that is not a JSON-RPC message.
fn malformed(e: &serde_json::Error) -> Response {
    let error = if e.is_data() {
        ErrorData::new(ErrorCode::INVALID_REQUEST, format!("Invalid Request: not a JSON-RPC message: {e}"), None)
    } else {
        ErrorData::new(ErrorCode::PARSE_ERROR, format!("Parse error: the body is not valid JSON: {e}"), None)
    };
    let body =
        serde_json::to_string(&ServerJsonRpcMessage::error(error, None)).expect("JSON-RPC errors always serialize");
    (StatusCode::BAD_REQUEST, [(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Removes the session and stops its service when the SSE stream is dropped.
struct SessionGuard {
    id: String,
    sessions: Sessions,
    ct: CancellationToken,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.remove(&self.id);
        self.ct.cancel();
    }
}

/// An rmcp transport over two channels: what arrives on `inbound` is read by the service, what the
/// service sends goes to `outbound`.
struct ChannelTransport {
    inbound: mpsc::Receiver<ClientJsonRpcMessage>,
    outbound: mpsc::Sender<ServerJsonRpcMessage>,
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = mpsc::error::SendError<ServerJsonRpcMessage>;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        async move { outbound.send(item).await }
    }

    fn receive(&mut self) -> impl std::future::Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.inbound.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}
