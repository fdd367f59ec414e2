//! SSE priming events only for the clients that expect them.
//!
//! rmcp opens every SSE stream with a priming event (`id`, `retry` and an empty `data`), which a
//! client of protocol 2025-11-25 or later uses to resume a dropped stream. Older clients' SDKs
//! (Gemini CLI's among them) hand the empty `data` to `JSON.parse` and drop the server. Like the
//! reference SDKs (typescript-sdk #1233, python-sdk #1719), send priming events only to clients
//! on [`PRIMING_SINCE`] or later: from the streams of older ones, they are cut out here.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::{Stream, StreamExt};
use http::header::CONTENT_TYPE;
use http::Method;

/// The first protocol version whose clients expect priming events.
pub const PRIMING_SINCE: &str = "2025-11-25";

/// The middleware of `/mcp`.
pub async fn only_for_new_clients(request: Request, next: Next) -> Response {
    let (request, version) = protocol_version(request).await;
    let response = next.run(request).await;
    let streams = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streams || version.as_deref().is_some_and(|v| v >= PRIMING_SINCE) {
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, without_priming(body.into_data_stream()))
}

/// The protocol version a request speaks: its `MCP-Protocol-Version` header, or, for an
/// `initialize` (sent before any version is agreed), the version it asks for. `None` means
/// 2025-03-26, as the specification says of a request without the header.
async fn protocol_version(request: Request) -> (Request, Option<String>) {
    if let Some(v) = request.headers().get("mcp-protocol-version") {
        let version = v.to_str().ok().map(str::to_string);
        return (request, version);
    }
    if request.method() != Method::POST {
        return (request, None);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES).await.unwrap_or_default();
    // Only an `initialize` is worth parsing (old clients send every request without the header).
    let maybe_initialize = bytes.windows(12).any(|w| w == b"\"initialize\"");
    let asked = maybe_initialize
        .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .flatten()
        .filter(|m| m["method"] == "initialize")
        .and_then(|m| m["params"]["protocolVersion"].as_str().map(str::to_string));
    (Request::from_parts(parts, Body::from(bytes)), asked)
}

type Chunks = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, axum::Error>> + Send>>;

/// `body` without its priming events. Events are passed on whole, as soon as they are complete.
fn without_priming(body: impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static) -> Body {
    let body: Chunks = Box::pin(body);
    let stream = futures::stream::unfold((body, Vec::new(), false), |(mut body, mut pending, ended)| async move {
        if ended {
            return None;
        }
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    let out = complete_events(&mut pending);
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), (body, pending, false)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), (body, pending, true))),
                None if pending.is_empty() => return None,
                None => {
                    let rest = Bytes::from(std::mem::take(&mut pending));
                    return Some((Ok(rest), (body, pending, true)));
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// Take the complete events off the front of `pending`: those that are not priming events.
fn complete_events(pending: &mut Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = pending.drain(..end + 2).collect();
        if !is_priming(&event) {
            out.extend_from_slice(&event);
        }
    }
    out
}

/// An event with no data to read and no comment (keep-alives are comments): only `id`/`retry`.
fn is_priming(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    let mut lines = text.lines().filter(|l| !l.is_empty());
    lines.all(|l| !l.starts_with(':') && l.strip_prefix("data:").is_none_or(|v| v.trim().is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priming_events_go_and_everything_else_stays() {
        let mut pending =
            b"data: \nid: 0\nretry: 3000\n\n:\n\ndata: {\"a\":1}\nid: 1\n\nretry: 5\n\ndata: {\"b\"".to_vec();
        let out = complete_events(&mut pending);
        assert_eq!(String::from_utf8(out).unwrap(), ":\n\ndata: {\"a\":1}\nid: 1\n\n");
        assert_eq!(pending, b"data: {\"b\"", "an incomplete event waits for the rest");
    }
}
