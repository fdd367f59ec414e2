//! Whether an HTTP session's client is still there. A stdio session ends with its process; an
//! HTTP session outlives a killed client until rmcp reaps it (after minutes idle), so a session
//! bound to an agent holds the agent's presence only while its client shows life: a request
//! within the agent's message timeout, or an open server-to-client stream (`GET /mcp`, which
//! the agent CLIs keep open and which ends when the client's connection does). A session that
//! ends with a `DELETE` ended cleanly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use dashmap::DashMap;
use futures::StreamExt;

/// What was last seen of one session's client.
#[derive(Debug, Clone, Copy)]
struct Seen {
    last_request: Instant,
    open_streams: usize,
    deleted: bool,
}

/// What each HTTP session's client was last seen doing, by `Mcp-Session-Id`.
#[derive(Debug, Default)]
pub struct Attendance {
    seen: DashMap<String, Seen>,
}

impl Attendance {
    /// Whether the client of `session` showed life within `window`, or keeps a stream open.
    /// A session not seen since its `initialize` counts as attended.
    pub fn attended(&self, session: Option<&str>, window: Duration) -> bool {
        let Some(seen) = session.and_then(|id| self.seen.get(id).map(|s| *s)) else { return true };
        !seen.deleted && (seen.open_streams > 0 || seen.last_request.elapsed() < window)
    }

    /// Whether `session` was ended by its client's `DELETE`.
    pub fn deleted(&self, session: Option<&str>) -> bool {
        session.and_then(|id| self.seen.get(id).map(|s| s.deleted)).unwrap_or(false)
    }

    pub fn forget(&self, session: &str) {
        self.seen.remove(session);
    }

    fn saw(&self, session: &str, stream: bool, delete: bool) {
        let mut seen = self.seen.entry(session.to_string()).or_insert(Seen {
            last_request: Instant::now(),
            open_streams: 0,
            deleted: false,
        });
        seen.last_request = Instant::now();
        seen.open_streams += usize::from(stream);
        seen.deleted |= delete;
    }

    fn stream_closed(&self, session: &str) {
        if let Some(mut seen) = self.seen.get_mut(session) {
            seen.open_streams = seen.open_streams.saturating_sub(1);
            seen.last_request = Instant::now();
        }
    }
}

/// Counts a stream open until its body is dropped (the connection closed or the session ended).
struct OpenStream {
    attendance: Arc<Attendance>,
    session: String,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.attendance.stream_closed(&self.session);
    }
}

/// Middleware on `/mcp`: note every request of a session, and each server-to-client stream for
/// as long as it stays open.
pub async fn track(State(attendance): State<Arc<Attendance>>, request: Request, next: Next) -> Response {
    let session = request.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some(session) = session else { return next.run(request).await };
    let method = request.method().clone();
    let stream = method == http::Method::GET;
    let response = next.run(request).await;
    let ok = response.status().is_success();
    attendance.saw(&session, stream && ok, method == http::Method::DELETE && ok);
    if !(stream && ok) {
        return response;
    }
    let open = OpenStream { attendance, session };
    response.map(|body| {
        let body = body.into_data_stream().inspect(move |_| {
            let _ = &open;
        });
        axum::body::Body::from_stream(body)
    })
}
