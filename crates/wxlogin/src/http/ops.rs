//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "`unavailable`", body = ErrorBody),
    ))]
pub async fn readyz(
    State(state): State<AppState>,
) -> Result<(StatusCode, axum::Json<Health>), ApiError> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return Err(ApiError::unavailable("the database is not reachable"));
    }
    if let Err(e) = state.store.check_writable(state.clock.unix_millis()).await {
        tracing::warn!(error = %e, "readiness check failed: the database refuses writes");
        return Err(ApiError::unavailable("the database refuses writes"));
    }
    if let Err(e) = state.shared.ping().await {
        tracing::warn!(error = %e, "readiness check failed: the shared state does not answer");
        return Err(ApiError::unavailable("the shared state is not reachable"));
    }
    Ok((StatusCode::OK, axum::Json(Health { status: "ok" })))
}
