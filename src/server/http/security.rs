//! The guard in front of every HTTP route: DNS-rebinding protection (the `Host` and `Origin`
//! headers must name this machine or a host the operator allowed) and the optional bearer token.
//!
//! One axum middleware applies it to `/mcp`, `/sse`, `/message`, `/events` and the dashboard's
//! `/api/` alike, so every route answers a foreign page or a missing token the same way. The
//! dashboard's static page ([`guard_page`]) gets the Host/Origin checks only: it holds no state,
//! and a browser cannot attach a bearer header to a navigation. The page then presents the token
//! itself: as the header on its fetches, and as the `access_token` query parameter (RFC 6750
//! §2.3) on `GET /events`, since `EventSource` cannot set headers. The query form is accepted on
//! GET requests only, which change nothing.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};

/// Names that always mean this machine. Any port is accepted with them: the server may be bound
/// to port 0 or sit behind a local port forward.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A host the guard accepts; `port: None` accepts any port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parse `name`, `name:port`, `ip`, `[v6]` or `[v6]:port`, the way rmcp reads its own list.
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        match entry.parse::<http::uri::Authority>() {
            Ok(authority) => Some(Self { host: normalize(authority.host()), port: authority.port_u16() }),
            // A bare IPv6 address (`::1`) is not an authority; take it as a host with any port.
            Err(_) => Some(Self { host: normalize(entry), port: None }),
        }
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && self.port.is_none_or(|p| port == Some(p))
    }
}

fn normalize(host: &str) -> String {
    host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// What the guard checks. Cheap to clone: axum clones the state for every request.
#[derive(Clone)]
pub struct Guard {
    hosts: Arc<[HostPattern]>,
    /// SHA-256 of the bearer token, so the comparison does not depend on the token's length.
    token_digest: Option<Arc<[u8; 32]>>,
}

impl Guard {
    /// `hosts` are accepted besides [`LOOPBACK_HOSTS`]; `token`, when set, is required on every
    /// request as `Authorization: Bearer <token>`.
    pub fn new(hosts: &[String], token: Option<&str>) -> Self {
        let hosts = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).chain(hosts.iter().cloned());
        Self {
            hosts: hosts.filter_map(|h| HostPattern::parse(&h)).collect(),
            token_digest: token.map(|t| Arc::new(digest(t))),
        }
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.hosts.iter().any(|p| p.matches(host, port))
    }

    /// The first check that fails, as the answer to send instead of serving the request.
    fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Rejection> {
        self.check_page(uri, headers)?;
        self.check_token(method, uri, headers)
    }

    /// The checks that hold for a page with no state in it: Host and Origin, no token.
    fn check_page(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Rejection> {
        self.check_host(uri, headers)?;
        self.check_origin(headers)
    }

    /// A browser tricked by DNS rebinding sends the attacker's name as `Host`; refuse it.
    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Rejection> {
        // Two Host headers let a proxy and this server disagree on which one counts.
        if headers.get_all(HOST).iter().nth(1).is_some() {
            return Err(Rejection::new(StatusCode::BAD_REQUEST, "Bad Request: more than one Host header".into()));
        }
        let authority = match headers.get(HOST) {
            Some(value) => value.to_str().ok().and_then(|v| v.parse::<http::uri::Authority>().ok()),
            // HTTP/2 carries the host in the URI instead of a header.
            None => uri.authority().cloned(),
        };
        let Some(authority) = authority else {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "Bad Request: missing or malformed Host header".into(),
            ));
        };
        let host = normalize(authority.host());
        if self.allows(&host, authority.port_u16()) {
            return Ok(());
        }
        tracing::warn!(%host, "rejected a request for a foreign Host (possible DNS rebinding)");
        Err(Rejection::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden: Host `{host}` is not allowed (DNS-rebinding protection); start the server with --allow-host {host} to accept it"),
        ))
    }

    /// Browsers send `Origin` on cross-site requests; only pages served from an allowed host may
    /// call. Requests without `Origin` (non-browser clients) pass.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(value) = headers.get(ORIGIN) else { return Ok(()) };
        let origin = value.to_str().unwrap_or_default();
        if origin_host(origin).is_some_and(|(host, port)| self.allows(&host, port)) {
            return Ok(());
        }
        tracing::warn!(origin, "rejected a request from a foreign Origin");
        Err(Rejection::new(StatusCode::FORBIDDEN, format!("Forbidden: Origin `{origin}` is not allowed")))
    }

    fn check_token(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Rejection> {
        let Some(expected) = &self.token_digest else {
            // A client that sends a token expects it checked: serving it anyway would hide a
            // server started without its token (a config's `${MESH_MCP_AUTH_TOKEN}` unset).
            if headers.contains_key(AUTHORIZATION) {
                return Err(Rejection::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized: this server runs without a token and cannot check the `Authorization` header; \
                     start it with --auth-token (or MESH_MCP_AUTH_TOKEN), or send no header"
                        .into(),
                ));
            }
            return Ok(());
        };
        let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer).map(str::to_string);
        let query = (method == Method::GET).then(|| query_token(uri)).flatten();
        let presented = header.or(query);
        if presented.is_some_and(|token| constant_time_eq(&digest(&token), expected)) {
            return Ok(());
        }
        Err(Rejection::new(StatusCode::UNAUTHORIZED, "Unauthorized: send `Authorization: Bearer <token>`".into()))
    }
}

/// The `access_token` query parameter, percent-decoded.
fn query_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// The middleware: run the checks, then the route.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.check(request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// The middleware of pages without state (the dashboard's HTML, script and style): Host and
/// Origin checks, no token.
pub async fn guard_page(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.check_page(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Host and port of an `Origin` value; `None` for `null` and anything unparsable. The port is
/// the explicit one or the scheme's default.
fn origin_host(origin: &str) -> Option<(String, Option<u16>)> {
    let uri: Uri = origin.trim().parse().ok()?;
    let authority = uri.authority()?;
    let port = authority.port_u16().or(match uri.scheme_str()? {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    Some((normalize(authority.host()), port))
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compare without an early exit, so the time taken says nothing about where a guess went wrong.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request was refused; becomes a plain-text response.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: String) -> Self {
        Self { status, message }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.message).into_response();
        // RFC 6750: a 401 names the scheme the client should use.
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn status(guard: &Guard, pairs: &[(&'static str, &str)]) -> Option<StatusCode> {
        guard.check(&Method::POST, &Uri::from_static("/mcp"), &headers(pairs)).err().map(|r| r.status)
    }

    #[test]
    fn loopback_hosts_pass_with_any_port() {
        let guard = Guard::new(&[], None);
        for host in ["localhost", "localhost:7070", "127.0.0.1:1", "[::1]:8080", "LOCALHOST"] {
            assert_eq!(status(&guard, &[("host", host)]), None, "{host}");
        }
    }

    #[test]
    fn foreign_hosts_are_forbidden() {
        let guard = Guard::new(&[], None);
        for host in ["evil.example", "evil.example:7070", "localhost.evil.example", "0.0.0.0"] {
            assert_eq!(status(&guard, &[("host", host)]), Some(StatusCode::FORBIDDEN), "{host}");
        }
        assert_eq!(status(&guard, &[]), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn allowed_hosts_honour_their_port() {
        let guard = Guard::new(&["mesh.internal".into(), "proxy.example:8443".into()], None);
        assert_eq!(status(&guard, &[("host", "mesh.internal:9")]), None);
        assert_eq!(status(&guard, &[("host", "proxy.example:8443")]), None);
        assert_eq!(status(&guard, &[("host", "proxy.example:80")]), Some(StatusCode::FORBIDDEN));
        assert_eq!(status(&guard, &[("host", "localhost"), ("origin", "https://proxy.example:8443")]), None);
        assert_eq!(
            status(&guard, &[("host", "localhost"), ("origin", "https://proxy.example")]),
            Some(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn origins_must_be_loopback_or_allowed() {
        let guard = Guard::new(&[], None);
        assert_eq!(status(&guard, &[("host", "localhost"), ("origin", "http://localhost:3000")]), None);
        assert_eq!(status(&guard, &[("host", "localhost"), ("origin", "http://[::1]")]), None);
        for origin in ["http://evil.example", "null", "garbage"] {
            assert_eq!(
                status(&guard, &[("host", "localhost"), ("origin", origin)]),
                Some(StatusCode::FORBIDDEN),
                "{origin}"
            );
        }
    }

    #[test]
    fn bearer_token_is_required_when_set() {
        let guard = Guard::new(&[], Some("s3cret"));
        assert_eq!(status(&guard, &[("host", "localhost")]), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(&guard, &[("host", "localhost"), ("authorization", "Bearer nope")]),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(&guard, &[("host", "localhost"), ("authorization", "Basic s3cret")]),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(status(&guard, &[("host", "localhost"), ("authorization", "Bearer s3cret")]), None);
        assert_eq!(status(&guard, &[("host", "localhost"), ("authorization", "bearer s3cret")]), None);
        let denied = guard
            .check(&Method::GET, &Uri::from_static("/"), &headers(&[("host", "localhost")]))
            .unwrap_err()
            .into_response();
        assert_eq!(denied.headers()[WWW_AUTHENTICATE], "Bearer");
    }

    #[test]
    fn the_query_token_counts_on_get_only() {
        let guard = Guard::new(&[], Some("s3 cret"));
        let check = |method: &Method, uri: &'static str| {
            guard.check(method, &Uri::from_static(uri), &headers(&[("host", "localhost")])).err().map(|r| r.status)
        };
        assert_eq!(check(&Method::GET, "/events?access_token=s3%20cret"), None);
        assert_eq!(check(&Method::GET, "/events?x=1&access_token=s3+cret"), None);
        assert_eq!(check(&Method::GET, "/events?access_token=nope"), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(check(&Method::POST, "/mcp?access_token=s3%20cret"), Some(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn a_page_needs_no_token_but_a_loopback_host() {
        let guard = Guard::new(&[], Some("s3cret"));
        let uri = Uri::from_static("/");
        assert!(guard.check_page(&uri, &headers(&[("host", "localhost:7071")])).is_ok());
        assert_eq!(
            guard.check_page(&uri, &headers(&[("host", "evil.example")])).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            guard
                .check_page(&uri, &headers(&[("host", "localhost"), ("origin", "http://evil.example")]))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }
}
