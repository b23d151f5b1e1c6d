//! The built-in gateway (`[[gateway.routes]]`): requests under a route's prefix go to the business
//! server with the caller's identity headers, for teams that run no reverse proxy of their own.
//!
//! - The path is normalised once (`gateway_path`), and that path is both routed and forwarded;
//!   paths an upstream could resolve to another route (dot segments, encoded slashes,
//!   backslashes) are 400 `invalid_request`.
//! - Incoming `X-WX-*` headers are always removed, so a client cannot claim an identity, also
//!   when spelt with underscores (`X_WX_User_Id`), which CGI-style servers read as dashes.
//! - `Authorization` is removed unless the route sets `pass_authorization`; a request with more
//!   than one is refused wherever one would be read or forwarded.
//! - `X-Forwarded-For` and `X-Real-IP` are wxlogin's (`ClientIp`), never the client's own.
//! - Bodies stream both ways (uploads and downloads are never buffered whole).
//! - An unreachable upstream is 502 `upstream_unavailable`; one that does not start answering within
//!   `gateway.timeout_ms` is 504 `upstream_timeout`, both in the API's error envelope.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;

use super::client_ip::ClientIp;
use super::extract::{bearer_token, single_authorization};
use super::gateway_path::normalise;
use super::identity_headers::{identity_headers, is_identity_header};
use crate::config::{GatewayRoute, GatewaySettings, RouteAuth};
use crate::error::{ApiError, ErrorCode};
use crate::services::sessions::authenticate;
use crate::state::AppState;

/// The routes and the HTTP client that forwards to them.
#[derive(Debug, Clone)]
pub struct Gateway {
    routes: Vec<GatewayRoute>,
    client: reqwest::Client,
    timeout: Duration,
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus `host`.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

impl Gateway {
    /// `None` when no route is configured.
    pub fn new(settings: &GatewaySettings) -> Result<Option<Self>, String> {
        if settings.routes.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .read_timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("gateway HTTP client: {e}"))?;
        Ok(Some(Self {
            routes: settings.routes.clone(),
            client,
            timeout: Duration::from_millis(settings.timeout_ms),
        }))
    }

    /// The route of a request's raw path, after normalisation (none for a path that is refused).
    pub fn route_of(&self, raw_path: &str) -> Option<&GatewayRoute> {
        self.route(&normalise(raw_path).ok()?)
    }

    /// The route of a normalised `path`: the longest prefix that matches on whole segments.
    fn route(&self, path: &str) -> Option<&GatewayRoute> {
        self.routes
            .iter()
            .filter(|r| prefix_matches(&r.prefix, path))
            .max_by_key(|r| r.prefix.len())
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    let bare = prefix.trim_end_matches('/');
    bare.is_empty()
        || path == bare
        || path
            .strip_prefix(bare)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The upstream URL of a request: the route's upstream, the normalised path (without the prefix
/// when `strip_prefix`), and the query. The URL is parsed as the HTTP client will parse it, and must
/// stay under the upstream's base path.
fn upstream_url(
    route: &GatewayRoute,
    path: &str,
    query: Option<&str>,
) -> Result<reqwest::Url, ApiError> {
    let text = upstream_text(route, path, query);
    let base = reqwest::Url::parse(&route.upstream).ok();
    let base_path = base
        .as_ref()
        .map_or("/", reqwest::Url::path)
        .trim_end_matches('/');
    reqwest::Url::parse(&text)
        .ok()
        .filter(|url| {
            url.path()
                .strip_prefix(base_path)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .ok_or_else(|| ApiError::invalid_request("the path cannot be forwarded"))
}

fn upstream_text(route: &GatewayRoute, path: &str, query: Option<&str>) -> String {
    let base = route.upstream.trim_end_matches('/');
    let path = if route.strip_prefix {
        let rest = &path[route.prefix.trim_end_matches('/').len().min(path.len())..];
        if rest.starts_with('/') {
            rest.to_owned()
        } else {
            format!("/{rest}")
        }
    } else {
        path.to_owned()
    };
    match query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    }
}

/// Headers named by the `Connection` header are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name_str = name.as_str();
        if HOP_BY_HOP.contains(&name_str) || listed.iter().any(|l| l == name_str) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Forwards `request` if a route matches its path; `None` otherwise (the caller answers 404). A
/// path that normalisation refuses is 400 whether or not a route would match it.
pub(crate) async fn forward(
    state: &AppState,
    gateway: &Gateway,
    request: Request,
) -> Option<Response> {
    let path = match normalise(request.uri().path()) {
        Ok(path) => path,
        Err(refusal) => return Some(ApiError::invalid_request(refusal).into_response()),
    };
    let route = gateway.route(&path)?.clone();
    Some(
        forward_to(state, gateway, &route, &path, request)
            .await
            .unwrap_or_else(IntoResponse::into_response),
    )
}

async fn forward_to(
    state: &AppState,
    gateway: &Gateway,
    route: &GatewayRoute,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    if route.auth != RouteAuth::None || route.pass_authorization {
        single_authorization(&parts.headers, ApiError::invalid_token)?;
    }
    let caller = match route.auth {
        RouteAuth::None => None,
        RouteAuth::Required => Some(authenticate(state, bearer_token(&parts.headers)?).await?),
        RouteAuth::Optional if parts.headers.contains_key(header::AUTHORIZATION) => {
            Some(authenticate(state, bearer_token(&parts.headers)?).await?)
        }
        RouteAuth::Optional => None,
    };
    if let Some(caller) = &caller {
        crate::telemetry::request::record_user(&caller.user_id);
    }

    let mut headers = end_to_end(&parts.headers);
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(&name);
    }
    // The client's own claims about its address; wxlogin's replace them below.
    for name in ["x-forwarded-for", "x-real-ip", "forwarded"] {
        headers.remove(name);
    }
    if let Some(client) = parts.extensions.get::<ClientIp>() {
        if let Ok(chain) = HeaderValue::from_str(&client.forwarded_for()) {
            headers.insert("x-forwarded-for", chain);
        }
        if let Ok(ip) = HeaderValue::from_str(&client.ip().to_string()) {
            headers.insert("x-real-ip", ip);
        }
    }
    if !route.pass_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    if let Some(host) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    if let Ok(id) = HeaderValue::from_str(&crate::error::current_request_id()) {
        headers.insert("x-request-id", id);
    }
    if let Some(caller) = &caller {
        headers.extend(identity_headers(state, caller));
    }

    let url = upstream_url(route, path, parts.uri.query())?;
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let sent = gateway
        .client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send();
    let upstream = match tokio::time::timeout(gateway.timeout, sent).await {
        Err(_) => return Err(upstream_timeout(route)),
        Ok(Err(e)) if e.is_timeout() => return Err(upstream_timeout(route)),
        Ok(Err(e)) => {
            tracing::warn!(prefix = %route.prefix, error = %e.without_url(), "gateway upstream unreachable");
            return Err(ApiError::new(
                ErrorCode::UpstreamUnavailable,
                "the service behind this path is unreachable; retry later",
            ));
        }
        Ok(Ok(response)) => response,
    };

    let status = upstream.status();
    let headers = end_to_end(upstream.headers());
    let stream = upstream.bytes_stream().map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn upstream_timeout(route: &GatewayRoute) -> ApiError {
    tracing::warn!(prefix = %route.prefix, "gateway upstream timed out");
    ApiError::new(
        ErrorCode::UpstreamTimeout,
        "the service behind this path did not answer in time; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, strip: bool) -> GatewayRoute {
        GatewayRoute {
            prefix: prefix.to_owned(),
            upstream: "http://127.0.0.1:9000/base".to_owned(),
            auth: RouteAuth::Required,
            pass_authorization: false,
            strip_prefix: strip,
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/api/", "/api/orders"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api/", "/ap"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn the_longest_prefix_wins() {
        let gateway = Gateway {
            routes: vec![route("/api/", false), route("/api/admin/", false)],
            client: reqwest::Client::new(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(gateway.route("/api/admin/x").unwrap().prefix, "/api/admin/");
        assert_eq!(gateway.route("/api/x").unwrap().prefix, "/api/");
        assert!(gateway.route("/other").is_none());
    }

    #[test]
    fn upstream_urls_keep_or_strip_the_prefix() {
        let url = |route: &GatewayRoute, path: &str, query: Option<&str>| {
            upstream_url(route, path, query).unwrap().to_string()
        };
        assert_eq!(
            url(&route("/api/", false), "/api/orders", Some("a=1")),
            "http://127.0.0.1:9000/base/api/orders?a=1"
        );
        assert_eq!(
            url(&route("/api/", true), "/api/orders", None),
            "http://127.0.0.1:9000/base/orders"
        );
        assert_eq!(
            url(&route("/api", true), "/api", None),
            "http://127.0.0.1:9000/base/"
        );
    }

    #[test]
    fn an_upstream_url_outside_the_base_path_is_refused() {
        // Normalised paths never get here with dot segments; this is the last line of defence.
        assert!(upstream_url(&route("/api/", true), "/api/../../etc", None).is_err());
        assert!(upstream_url(&route("/api/", true), "/api/%2e%2e/x", None).is_err());
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let kept = end_to_end(&headers);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key(header::CONTENT_TYPE));
    }
}
