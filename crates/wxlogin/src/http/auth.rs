//! `/v1/auth/*`: log in with WeChat, refresh, log out.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ClientIp;
use super::extract::{AppBytes, AppJson, AuthUser, optional_json};
use super::me::PhoneView;
use crate::config::LimitedEndpoint;
use crate::domain::{AppId, LoginCode, PhoneCode};
use crate::error::{ApiError, ErrorBody};
use crate::services::audit::Origin;
use crate::services::rate_limits::{self, Subject};
use crate::services::sessions::SignedIn;
use crate::state::AppState;

/// The answer of login, register and refresh.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The access token (a JWT); send it as `Authorization: Bearer ...`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange it at `POST /v1/auth/refresh` for a new pair; it rotates on every use.
    pub refresh_token: String,
    /// Seconds until the refresh token (and its session) expires.
    pub refresh_expires_in: u64,
    pub user: LoginUser,
}

/// The signed-in user as the login answer shows it. Never the openid or unionid.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoginUser {
    pub id: String,
    /// Whether this login created the user.
    pub is_new: bool,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<PhoneView>,
}

impl LoginResponse {
    fn of(state: &AppState, signed_in: SignedIn) -> Self {
        let user = &signed_in.user;
        Self {
            access_token: signed_in.access_token,
            token_type: "Bearer",
            expires_in: signed_in.expires_in,
            refresh_token: signed_in.refresh_token,
            refresh_expires_in: signed_in.refresh_expires_in,
            user: LoginUser {
                id: user.id.as_str().to_owned(),
                is_new: signed_in.is_new,
                nickname: user.nickname.clone(),
                avatar_url: crate::services::profile::avatar_url(
                    &state.settings,
                    user.avatar.as_deref(),
                ),
                phone: user.phone.as_ref().map(PhoneView::of),
            },
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The code from `wx.login` (valid 5 minutes, single use).
    pub code: String,
    /// May be omitted when the server serves exactly one app.
    pub appid: Option<String>,
    /// From the getPhoneNumber button, to bind the phone in the same round trip.
    pub phone_code: Option<String>,
}

fn resolve_appid(state: &AppState, appid: Option<String>) -> Result<AppId, ApiError> {
    match appid {
        Some(text) => AppId::parse(text)
            .map_err(|e| ApiError::invalid_request(format!("`appid` is invalid: {e}"))),
        None if state.apps.len() == 1 => state
            .apps
            .keys()
            .next()
            .cloned()
            .ok_or_else(ApiError::unknown_app),
        None => Err(ApiError::invalid_request(
            "`appid` is required: this server serves several apps",
        )),
    }
}

/// Exchange a `wx.login` code for wxlogin tokens.
#[utoipa::path(post, path = "/v1/auth/wechat/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "`invalid_request`, `invalid_code` (the login or the phone code)", body = ErrorBody),
        (status = 403, description = "`login_blocked`; `phone_required` or `registration_closed`, with a `login_ticket` for `POST /v1/auth/wechat/register`", body = ErrorBody),
        (status = 404, description = "`unknown_app`", body = ErrorBody),
        (status = 409, description = "`phone_in_use`, `identity_conflict`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.login]` per IP and per app (before WeChat is asked), per WeChat user (after the code exchange), or WeChat's minute quota", body = ErrorBody),
        (status = 502, description = "`wechat_error`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn login_with_wechat(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    origin: Origin,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    // Counted by the appid asked for (or the one app served); one not configured is `unknown`.
    let appid = match &request.appid {
        Some(appid) => Some(appid.clone()),
        None if state.apps.len() == 1 => state.apps.keys().next().map(|a| a.as_str().to_owned()),
        None => None,
    };
    let result = login(&state, client, origin, request).await;
    let outcome = match &result {
        Ok(response) if response.user.is_new => "new",
        Ok(_) => "returning",
        Err(e) => e.code.as_str(),
    };
    state.metrics.login(appid.as_deref(), outcome);
    result
}

async fn login(
    state: &AppState,
    client: Option<ClientIp>,
    origin: Origin,
    request: LoginRequest,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    let code = LoginCode::parse(request.code)
        .map_err(|e| ApiError::invalid_request(format!("`code` is invalid: {e}")))?;
    let appid = resolve_appid(state, request.appid)?;
    let phone_code = request.phone_code.map(parse_phone_code).transpose()?;
    // An appid this server does not serve is refused next (`unknown_app`), counted per IP only,
    // so made-up appids cannot fill the limiter with keys.
    let app = state
        .apps
        .contains_key(&appid)
        .then(|| Subject::App(appid.as_str()));
    rate_limits::check(
        state,
        LimitedEndpoint::Login,
        &[ClientIp::subject(client.as_ref()), app],
    )
    .await?;
    crate::services::login::login_with_wechat(state, appid, code, phone_code, origin)
        .await
        .map(|signed_in| axum::Json(LoginResponse::of(state, signed_in)))
}

fn parse_phone_code(text: String) -> Result<PhoneCode, ApiError> {
    PhoneCode::parse(text)
        .map_err(|e| ApiError::invalid_request(format!("`phone_code` is invalid: {e}")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The `login_ticket` of the 403 `phone_required` (or `registration_closed`) answer.
    pub login_ticket: String,
    /// A code from the getPhoneNumber button.
    pub phone_code: String,
}

/// Finish a sign-up that the registration policy refused, with the phone number, without a second
/// `wx.login`.
#[utoipa::path(post, path = "/v1/auth/wechat/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "Registered (or, under `closed`, linked) and logged in", body = LoginResponse),
        (status = 400, description = "`invalid_request`, `invalid_ticket` (unknown, expired or used: log in again), `invalid_code` (the phone code)", body = ErrorBody),
        (status = 403, description = "`registration_closed` (no user has this phone number), `login_blocked`", body = ErrorBody),
        (status = 409, description = "`phone_in_use`, `identity_conflict`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.register]` per IP, per WeChat user and per app of the ticket (the ticket stays usable), or WeChat's minute quota", body = ErrorBody),
        (status = 502, description = "`wechat_error`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    origin: Origin,
    AppJson(request): AppJson<RegisterRequest>,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    let phone_code = parse_phone_code(request.phone_code)?;
    rate_limits::check(
        &state,
        LimitedEndpoint::Register,
        &[ClientIp::subject(client.as_ref())],
    )
    .await?;
    crate::services::login::register(&state, &request.login_ticket, &phone_code, &origin)
        .await
        .map(|signed_in| axum::Json(LoginResponse::of(&state, signed_in)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh (`wxr_...`).
    pub refresh_token: String,
}

/// Exchange a refresh token for a new pair (the refresh token rotates).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair", body = LoginResponse),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`invalid_grant`", body = ErrorBody),
        (status = 403, description = "`login_blocked`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.refresh]` per IP, per user and per app of the session; the refresh token stays usable", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    origin: Origin,
    AppJson(request): AppJson<RefreshRequest>,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    rate_limits::check(
        &state,
        LimitedEndpoint::Refresh,
        &[ClientIp::subject(client.as_ref())],
    )
    .await?;
    crate::services::sessions::refresh(&state, &request.refresh_token, &origin)
        .await
        .map(|signed_in| axum::Json(LoginResponse::of(&state, signed_in)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Revoke every session of the user, not only this one.
    #[serde(default)]
    pub all_devices: bool,
}

/// Log out this session (or all of the user's). The body is optional.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    request_body(content = Option<LogoutRequest>),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    origin: Origin,
    headers: HeaderMap,
    AppBytes(body): AppBytes,
) -> Result<StatusCode, ApiError> {
    let request: LogoutRequest = optional_json(&headers, &body)?;
    crate::services::sessions::logout(
        &state,
        &user.user_id,
        &user.session_id,
        request.all_devices,
        &user.appid,
        &origin,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
