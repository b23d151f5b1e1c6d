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
#[utoipa::path(get, path = "/v1/auth/verify", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A valid, unrevoked access token; the identity is in the `X-WX-*` response headers"),
        (status = 401, description = "`invalid_token` (missing, malformed, expired, revoked)", body = ErrorBody),
    ))]
pub async fn verify(
    state: State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    check(state, headers).await
}

/// The other methods of `/v1/auth/verify`, each its own documented operation (an operationId is
/// unique in an OpenAPI document) with the same responses as `GET`.
macro_rules! verify_with {
    ($($method:ident => $handler:ident, $doc:tt;)*) => {$(
        #[doc = $doc]
        #[utoipa::path($method, path = "/v1/auth/verify", tag = "auth",
            security(("bearer" = [])),
            responses(
                (status = 200, description = "A valid, unrevoked access token; the identity is in the `X-WX-*` response headers"),
                (status = 401, description = "`invalid_token` (missing, malformed, expired, revoked)", body = ErrorBody),
            ))]
        pub async fn $handler(
            state: State<AppState>,
            headers: HeaderMap,
        ) -> Result<(StatusCode, HeaderMap), ApiError> {
            check(state, headers).await
        }
    )*};
}

verify_with! {
    head => verify_head, "`GET /v1/auth/verify` for proxies that send the original `HEAD`.";
    post => verify_post, "`GET /v1/auth/verify` for proxies that send the original `POST`.";
    put => verify_put, "`GET /v1/auth/verify` for proxies that send the original `PUT`.";
    patch => verify_patch, "`GET /v1/auth/verify` for proxies that send the original `PATCH`.";
    delete => verify_delete, "`GET /v1/auth/verify` for proxies that send the original `DELETE`.";
    options => verify_options, "`GET /v1/auth/verify` for proxies that send the original `OPTIONS`.";
}

async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, HeaderMap), ApiError> {
    let token = bearer_token(&headers)?;
    let user = authenticate(&state, token).await?;
    crate::telemetry::request::record_user(&user.user_id);
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
    let identity = super::identity_headers::identity_headers(&state, &user);
    Ok((StatusCode::OK, identity))
}
