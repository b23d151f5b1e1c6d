//! The metrics listener (`metrics.listen`): `GET /metrics` in the Prometheus text format, 404 for
//! anything else. Apart from the API's listener, so that it can stay on a private address.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::services::monitoring::render(&state).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: this listener serves GET /metrics\n",
    )
        .into_response()
}

fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

/// Serves the metrics on `listener` until the task is aborted (when the server stops).
pub(crate) async fn serve_metrics(listener: tokio::net::TcpListener, state: AppState) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}
