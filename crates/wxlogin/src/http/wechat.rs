//! `/v1/wechat/*`: WeChat session utilities for the signed-in user (open data, rawData signatures,
//! the stored session_key).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::ClientIp;
use super::extract::{AppJson, AuthUser};
use crate::config::LimitedEndpoint;
use crate::domain::LoginCode;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// `encryptedData` as the mini program received it (base64).
    pub encrypted_data: String,
    /// `iv` as the mini program received it (base64 of 16 bytes).
    pub iv: String,
}

/// WeChat's stamp on the data: the app it was made for and when (Unix seconds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WatermarkView {
    pub appid: String,
    pub timestamp: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DecryptResponse {
    /// The decrypted JSON object, without its `watermark`.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    pub watermark: WatermarkView,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySignatureRequest {
    /// `rawData` exactly as `wx.getUserInfo` gave it.
    pub raw_data: String,
    /// `signature` as `wx.getUserInfo` gave it (hex SHA-1).
    pub signature: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidResponse {
    pub valid: bool,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// A fresh code from `wx.login` (valid 5 minutes, single use).
    pub code: String,
}

/// Decrypt open data (`encryptedData` + `iv`) with the caller's stored session_key.
#[utoipa::path(post, path = "/v1/wechat/decrypt", tag = "wechat",
    request_body = DecryptRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The data and its watermark", body = DecryptResponse),
        (status = 400, description = "`invalid_request`, `watermark_mismatch`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 422, description = "`stale_session_key`: call wx.login, `POST /v1/wechat/session`, retry", body = ErrorBody),
    ))]
pub async fn decrypt(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(request): AppJson<DecryptRequest>,
) -> Result<axum::Json<DecryptResponse>, ApiError> {
    let opened = crate::services::session_key::decrypt(
        &state,
        &user.user_id,
        &user.appid,
        &request.encrypted_data,
        &request.iv,
    )
    .await?;
    Ok(axum::Json(DecryptResponse {
        data: opened.data,
        watermark: WatermarkView {
            appid: opened.watermark.appid,
            timestamp: opened.watermark.timestamp,
        },
    }))
}

/// Check a rawData signature: `sha1(raw_data + session_key)`, compared in constant time.
#[utoipa::path(post, path = "/v1/wechat/verify-signature", tag = "wechat",
    request_body = VerifySignatureRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether the signature matches", body = ValidResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    ))]
pub async fn verify_signature(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(request): AppJson<VerifySignatureRequest>,
) -> Result<axum::Json<ValidResponse>, ApiError> {
    let valid = crate::services::session_key::verify_signature(
        &state,
        &user.user_id,
        &user.appid,
        &request.raw_data,
        &request.signature,
    )
    .await?;
    Ok(axum::Json(ValidResponse { valid }))
}

/// Store a new session_key from a fresh `wx.login` code of the signed-in WeChat user.
#[utoipa::path(post, path = "/v1/wechat/session", tag = "wechat",
    request_body = SessionRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The new session_key is stored"),
        (status = 400, description = "`invalid_request`, `invalid_code`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 403, description = "`login_blocked`", body = ErrorBody),
        (status = 409, description = "`identity_mismatch`: the code is another WeChat user's", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.wechat_session]` per IP, per user and per app, or WeChat's minute quota", body = ErrorBody),
        (status = 502, description = "`wechat_error`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn refresh_session(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    user: AuthUser,
    AppJson(request): AppJson<SessionRequest>,
) -> Result<StatusCode, ApiError> {
    let code = LoginCode::parse(request.code)
        .map_err(|e| ApiError::invalid_request(format!("`code` is invalid: {e}")))?;
    crate::services::rate_limits::check_signed_in(
        &state,
        LimitedEndpoint::WechatSession,
        ClientIp::subject(client.as_ref()),
        (&user.user_id, &user.appid),
    )
    .await?;
    crate::services::session_key::refresh_session_key(&state, &user.user_id, &user.appid, code)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask WeChat whether the stored session_key is still the user's current one (checkSessionKey).
#[utoipa::path(get, path = "/v1/wechat/session", tag = "wechat",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether WeChat takes the stored session_key", body = ValidResponse),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.wechat_session]` per IP, per user and per app, or WeChat's minute quota", body = ErrorBody),
        (status = 502, description = "`wechat_error`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn check_session(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    user: AuthUser,
) -> Result<axum::Json<ValidResponse>, ApiError> {
    crate::services::rate_limits::check_signed_in(
        &state,
        LimitedEndpoint::WechatSession,
        ClientIp::subject(client.as_ref()),
        (&user.user_id, &user.appid),
    )
    .await?;
    let valid =
        crate::services::session_key::check_session_key(&state, &user.user_id, &user.appid).await?;
    Ok(axum::Json(ValidResponse { valid }))
}
