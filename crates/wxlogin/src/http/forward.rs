//! `GET /v1/auth/verify`: forward auth for nginx `auth_request`, Caddy `forward_auth` and Traefik
//! `ForwardAuth`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::extract::bearer_token;
use crate::error::{ApiError, ErrorBody};
use crate::services::sessions::authenticate;
use crate::state::AppState;

/// Check the access token of a request a proxy is about to forward. 200 with the caller's identity
/// headers (`X-WX-User-Id`, `X-WX-AppId`, `X-WX-OpenId`, `X-WX-UnionId` when known,
/// `X-WX-Session-Id`; see `[identity_headers]`), or 401. Answers every method, so proxies that
/// forward the original one (with `X-Forwarded-Method` / `X-Original-URI`) work unchanged. The
/// body, if any, is ignored.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/auth/verify", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A valid, unrevoked access token; the identity is in the `X-WX-*` response headers"),
        (status = 401, description = "`invalid_token` (missing, malformed, expired, revoked)", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let token = bearer_token(&headers)?;
    let user = authenticate(&state, token).await?;
    if tracing::enabled!(tracing::Level::DEBUG) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        tracing::debug!(
            user = %user.user_id,
            method = %header("x-forwarded-method"),
            uri = %header("x-original-uri").chars().take(256).collect::<String>(),
            "forward auth granted"
        );
    }
    let identity = super::identity_headers::identity_headers(&state, &user).await?;
    Ok((StatusCode::OK, identity))
}
