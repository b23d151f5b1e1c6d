//! `/internal/v1/*`: for backend services with a `[[services]]` credential. The WeChat access token
//! comes from this server's cache, so services never fetch (and overwrite) tokens on their own.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::extract::{AppJson, ServiceClient};
use crate::config::ServiceScope;
use crate::domain::{AccessToken, AppId, UserId};
use crate::error::{ApiError, ErrorBody};
use crate::services::audit::{self, Actor, AuditEvent, Origin};
use crate::state::AppState;

fn configured_app(state: &AppState, appid: String) -> Result<AppId, ApiError> {
    AppId::parse(appid)
        .ok()
        .filter(|appid| state.apps.contains_key(appid))
        .ok_or_else(ApiError::unknown_app)
}

/// A WeChat access token, to an authenticated service only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    pub access_token: String,
    /// Seconds the token has left.
    pub expires_in: u64,
}

async fn current_token(state: &AppState, appid: &AppId) -> Result<AccessTokenResponse, ApiError> {
    let (token, left) = state.wechat_tokens.get_with_expiry(appid).await?;
    Ok(AccessTokenResponse {
        access_token: token.expose_secret().to_owned(),
        expires_in: left.as_secs(),
    })
}

/// The app's WeChat access token from the central cache (fetched once for all callers).
#[utoipa::path(get, path = "/internal/v1/wechat/{appid}/access-token", tag = "internal",
    params(("appid" = String, Path, description = "A configured appid")),
    security(("service" = [])),
    responses(
        (status = 200, description = "The token", body = AccessTokenResponse),
        (status = 401, description = "`invalid_client`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the service lacks `wechat:token`", body = ErrorBody),
        (status = 404, description = "`unknown_app`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.service_auth]`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn get_access_token(
    State(state): State<AppState>,
    client: ServiceClient,
    Path(appid): Path<String>,
) -> Result<axum::Json<AccessTokenResponse>, ApiError> {
    client.require(ServiceScope::WechatToken)?;
    let appid = configured_app(&state, appid)?;
    tracing::debug!(client = %client.client_id, appid = %appid, "access token handed out");
    current_token(&state, &appid).await.map(axum::Json)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// The token WeChat rejected (40001, 40014, 42001).
    pub access_token: String,
}

/// Reports a token WeChat rejected. It is dropped and refetched only if it is still the cached one,
/// so many services reporting the same token cause one refresh; answers the current token, so the
/// service needs `wechat:token` besides `wechat:token:invalidate`.
#[utoipa::path(post, path = "/internal/v1/wechat/{appid}/access-token/invalidate", tag = "internal",
    params(("appid" = String, Path, description = "A configured appid")),
    request_body = InvalidateRequest,
    security(("service" = [])),
    responses(
        (status = 200, description = "The current token", body = AccessTokenResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_client`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the service lacks `wechat:token:invalidate` or `wechat:token`", body = ErrorBody),
        (status = 404, description = "`unknown_app`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.service_auth]`", body = ErrorBody),
    ))]
pub async fn invalidate_access_token(
    State(state): State<AppState>,
    client: ServiceClient,
    origin: Origin,
    Path(appid): Path<String>,
    AppJson(request): AppJson<InvalidateRequest>,
) -> Result<axum::Json<AccessTokenResponse>, ApiError> {
    client.require(ServiceScope::WechatTokenInvalidate)?;
    client.require(ServiceScope::WechatToken)?;
    let appid = configured_app(&state, appid)?;
    let rejected = AccessToken::parse(request.access_token)
        .map_err(|e| ApiError::invalid_request(format!("`access_token` is invalid: {e}")))?;
    tracing::info!(client = %client.client_id, appid = %appid, "a service reported a rejected access token");
    state.wechat_tokens.invalidate(&appid, &rejected).await;
    let event = AuditEvent::WechatTokenInvalidated {
        appid: appid.clone(),
    };
    audit::record(&state, Actor::Service(client.client_id), &origin, event).await;
    current_token(&state, &appid).await.map(axum::Json)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub appid: String,
    pub openid: String,
    pub unionid: Option<String>,
}

/// A bound phone number in full.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FullPhone {
    /// `+8613800138000`
    pub e164: String,
    /// `86`
    pub country_code: String,
    /// The national number, digits only: `13800138000`.
    pub number: String,
}

/// A user as internal services see it: with its WeChat identities.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InternalUser {
    pub id: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The full phone number; never shown to the mini program (it sees it masked). `null` when
    /// the user has none, or when the service lacks `phone:read` (then `phone_withheld`).
    pub phone: Option<FullPhone>,
    /// True when the service lacks the scope `phone:read`: `phone` is then `null` whatever the user
    /// has.
    pub phone_withheld: bool,
    pub banned: bool,
    pub identities: Vec<IdentityView>,
}

/// A user with its identities (appid, openid, unionid); the full phone number with `phone:read`.
#[utoipa::path(get, path = "/internal/v1/users/{id}", tag = "internal",
    params(("id" = String, Path, description = "A user id (`u_...`)")),
    security(("service" = [])),
    responses(
        (status = 200, description = "The user", body = InternalUser),
        (status = 401, description = "`invalid_client`", body = ErrorBody),
        (status = 403, description = "`insufficient_scope`: the service lacks `users:read`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.service_auth]`", body = ErrorBody),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    client: ServiceClient,
    Path(id): Path<String>,
) -> Result<axum::Json<InternalUser>, ApiError> {
    client.require(ServiceScope::UsersRead)?;
    let phone_withheld = !client.allows(ServiceScope::PhoneRead);
    let id = UserId::parse(id).map_err(|_| ApiError::not_found())?;
    let (user, identities) = crate::services::users::with_identities(&state, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(InternalUser {
        id: user.id.as_str().to_owned(),
        avatar_url: crate::services::profile::avatar_url(&state.settings, user.avatar.as_deref()),
        nickname: user.nickname,
        phone: user
            .phone
            .as_ref()
            .filter(|_| !phone_withheld)
            .map(|p| FullPhone {
                e164: p.e164(),
                country_code: p.country_code().to_owned(),
                number: p.number().to_owned(),
            }),
        phone_withheld,
        banned: user.banned_at.is_some(),
        identities: identities
            .into_iter()
            .map(|identity| IdentityView {
                appid: identity.appid.as_str().to_owned(),
                openid: identity.openid.as_str().to_owned(),
                unionid: identity.unionid.map(|u| u.as_str().to_owned()),
            })
            .collect(),
    }))
}
