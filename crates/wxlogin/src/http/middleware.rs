//! Cross-cutting request handling: request ids, the request log line, timeouts, panics.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Gateway;
use crate::error::ApiError;
use crate::telemetry::request::{RequestContext, in_request};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's id is echoed when it is short and printable; otherwise we make one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned)
}

/// Set on a response of the built-in gateway, so that its requests are counted as `gateway`
/// rather than `unmatched`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GatewayForwarded;

/// What the outermost layer needs: the metrics it counts requests in, the head limits it enforces
/// and the proxies whose `X-Forwarded-For` it believes.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) head_limits: HeadLimits,
    pub(crate) trusted_proxies: Arc<[crate::config::TrustedProxy]>,
}

/// Outermost layer: gives the request an id (in its log context and in the response header),
/// refuses a head over its limits (`head_limits`), resolves the client address
/// (`client_ip::attach`), and logs one line when it ends, with the route template (never the raw
/// path, which may carry ids), the status, the duration, and the client address and user id once
/// known; counts it in the metrics by the same route template, method and status. One layer for
/// all of it: each layer more is a clone and a boxed future on every request. The request's log
/// context is a task-local (`telemetry::request`), not a span: no span is created, entered on
/// every poll and closed per request, and the line is one event.
pub(crate) async fn request_context(
    State(edge): State<Edge>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request_id(&request);
    let header = HeaderValue::from_str(&id).ok();
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = request.method().clone();
    let context = RequestContext::new(id, method.clone(), matched.clone());
    let watch = crate::clock::Stopwatch::start();
    let (mut response, elapsed) = in_request(context, async move {
        let response = match head_limits(edge.head_limits, &request) {
            Some(refused) => refused,
            None => {
                super::client_ip::attach(&mut request, &edge.trusted_proxies);
                next.run(request).await
            }
        };
        let elapsed = watch.elapsed();
        // Tenths of a millisecond: a number in JSON lines, `1.2` in text.
        let duration_ms = (elapsed.as_secs_f64() * 10_000.0).round() / 10.0;
        tracing::info!(status = response.status().as_u16(), duration_ms, "request");
        (response, elapsed)
    })
    .await;
    let route = match &matched {
        Some(path) => crate::metrics::Route::Template(path.as_str()),
        None if response.extensions().get::<GatewayForwarded>().is_some() => {
            crate::metrics::Route::Gateway
        }
        None => crate::metrics::Route::Unmatched,
    };
    edge.metrics
        .http_request(route, method.as_str(), response.status().as_u16(), elapsed);
    if let Some(header) = header {
        response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    }
    response
}

/// Headers a request may carry at most.
pub(crate) const MAX_HEADERS: usize = 100;

/// `server.max_uri_bytes` and `server.max_header_bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_uri_bytes: usize,
}

/// A request target or head over its limit: 414 or 431 in the error envelope (hyper's own answers
/// to heads beyond its buffer have no body; its buffer is set well above these limits).
fn head_limits(limits: HeadLimits, request: &Request) -> Option<Response> {
    let uri = request.uri();
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Some(ApiError::uri_too_long(limits.max_uri_bytes).into_response());
    }
    let headers = request.headers();
    // As on the wire: `METHOD target HTTP/1.1\r\n`, `name: value\r\n` each, `\r\n`.
    let head_len = request.method().as_str().len()
        + 1
        + uri_len
        + 11
        + headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>()
        + 2;
    if headers.len() > MAX_HEADERS || head_len > limits.max_header_bytes {
        return Some(
            ApiError::headers_too_large(limits.max_header_bytes, MAX_HEADERS).into_response(),
        );
    }
    None
}

/// The request time limit, and the gateway whose routes are exempt from it.
#[derive(Clone)]
pub(crate) struct Timeout {
    pub(crate) limit: Duration,
    pub(crate) gateway: Option<Arc<Gateway>>,
}

/// Ends a request that takes longer than `server.request_timeout_ms` with a 503.
pub(crate) async fn timeout(
    State(timeout): State<Timeout>,
    request: Request,
    next: Next,
) -> Response {
    // The gateway applies its own upstream timeout, and its responses stream for as long as the
    // upstream sends.
    if timeout
        .gateway
        .as_ref()
        .is_some_and(|g| g.route_of(request.uri().path()).is_some())
    {
        return next.run(request).await;
    }
    let limit = timeout.limit;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ApiError::unavailable("the request took too long; retry later").into_response()
        }
    }
}

/// A panic in a handler is a bug: log it, answer the generic 500 in the API's shape.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(&format!("handler panicked: {detail}")).into_response()
}
