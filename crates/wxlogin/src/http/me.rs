//! `/v1/me`: the signed-in user.

use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde::{Deserialize, Deserializer, Serialize};

use super::ClientIp;
use super::extract::{AppJson, AuthUser};
use crate::config::LimitedEndpoint;
use crate::domain::Phone;
use crate::domain::PhoneCode;
use crate::error::{ApiError, ErrorBody};
use crate::services::audit::Origin;
use crate::services::phone::PhoneSource;
use crate::state::AppState;
use crate::store::User;

/// A bound phone number, masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhoneView {
    pub masked: String,
    pub country_code: String,
}

impl PhoneView {
    pub fn of(phone: &Phone) -> Self {
        Self {
            masked: phone.masked(),
            country_code: phone.country_code().to_owned(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub id: String,
    /// `null` until the user sets one; the client decides what to show then.
    pub nickname: Option<String>,
    /// `{public_url}/v1/avatars/{name}`; `null` until the user uploads one.
    pub avatar_url: Option<String>,
    pub phone: Option<PhoneView>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

fn me_response(state: &AppState, user: &User) -> MeResponse {
    let created = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(user.created_at).unwrap_or(0));
    MeResponse {
        id: user.id.as_str().to_owned(),
        avatar_url: crate::services::profile::avatar_url(&state.settings, user.avatar.as_deref()),
        phone: user.phone.as_ref().map(PhoneView::of),
        nickname: user.nickname.clone(),
        created_at: humantime::format_rfc3339_seconds(created).to_string(),
    }
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = MeResponse),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    ))]
pub async fn get_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<axum::Json<MeResponse>, ApiError> {
    // The user as the session check read it, with no read of its own: a change wxlogin makes is
    // seen at once (it forgets the user on every instance), one behind its back within
    // `tokens.session_cache_ms`.
    Ok(axum::Json(me_response(&state, &user.user)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// Trimmed; 1–64 characters after trimming, no control or invisible formatting characters.
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub nickname: Option<Option<String>>,
}

/// A field that is present (`null` included) is `Some`, an absent one `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Update the signed-in user's profile (the nickname). `PUT` does the same, for `wx.request`, which
/// cannot send `PATCH`.
#[utoipa::path(patch, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated profile", body = MeResponse),
        (status = 400, description = "`invalid_request` (names the field)", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    ))]
pub async fn update_me(
    state: State<AppState>,
    user: AuthUser,
    origin: Origin,
    request: AppJson<UpdateMeRequest>,
) -> Result<axum::Json<MeResponse>, ApiError> {
    update_profile(state, user, origin, request).await
}

/// `PATCH /v1/me` for `wx.request`, which cannot send `PATCH`.
#[utoipa::path(put, path = "/v1/me", tag = "me",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated profile", body = MeResponse),
        (status = 400, description = "`invalid_request` (names the field)", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    ))]
pub async fn update_me_put(
    state: State<AppState>,
    user: AuthUser,
    origin: Origin,
    request: AppJson<UpdateMeRequest>,
) -> Result<axum::Json<MeResponse>, ApiError> {
    update_profile(state, user, origin, request).await
}

async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    origin: Origin,
    AppJson(request): AppJson<UpdateMeRequest>,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let nickname = match request.nickname {
        None => return Err(ApiError::invalid_request("`nickname` is required")),
        Some(None) => None,
        Some(Some(text)) => Some(crate::services::profile::validate_nickname(&text)?),
    };
    let updated = crate::services::profile::set_nickname(
        &state,
        &user.user_id,
        nickname.as_deref(),
        &user.appid,
        &origin,
    )
    .await?;
    Ok(axum::Json(me_response(&state, &updated)))
}

/// The multipart form of `PUT /v1/me/avatar`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AvatarUpload {
    /// The image: PNG, JPEG or WebP (recognised by its content, not by the part's Content-Type),
    /// at most `server.avatar_max_bytes` (default 2 MiB).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Room for the multipart framing around the image (boundaries, part headers, small fields).
const MULTIPART_OVERHEAD: usize = 16 * 1024;

fn multipart_error(e: &MultipartError, max: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(max)
    } else {
        ApiError::invalid_request(format!("invalid multipart body: {}", e.body_text()))
    }
}

/// Upload the signed-in user's avatar. `POST` does the same, for `wx.uploadFile`, which only posts.
#[utoipa::path(put, path = "/v1/me/avatar", tag = "me",
    security(("bearer" = [])),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The updated profile, with `avatar_url`", body = MeResponse),
        (status = 400, description = "`invalid_request`: malformed multipart body or no `file` field", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not multipart/form-data, or the file is not PNG, JPEG or WebP", body = ErrorBody),
    ))]
pub async fn put_avatar(
    state: State<AppState>,
    user: AuthUser,
    origin: Origin,
    request: Request,
) -> Result<axum::Json<MeResponse>, ApiError> {
    upload_avatar(state, user, origin, request).await
}

/// `PUT /v1/me/avatar` for `wx.uploadFile`, which only posts.
#[utoipa::path(post, path = "/v1/me/avatar", tag = "me",
    security(("bearer" = [])),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The updated profile, with `avatar_url`", body = MeResponse),
        (status = 400, description = "`invalid_request`: malformed multipart body or no `file` field", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not multipart/form-data, or the file is not PNG, JPEG or WebP", body = ErrorBody),
    ))]
pub async fn post_avatar(
    state: State<AppState>,
    user: AuthUser,
    origin: Origin,
    request: Request,
) -> Result<axum::Json<MeResponse>, ApiError> {
    upload_avatar(state, user, origin, request).await
}

async fn upload_avatar(
    State(state): State<AppState>,
    user: AuthUser,
    origin: Origin,
    request: Request,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let max = state.settings.server.avatar_max_bytes;
    let body_max = max.saturating_add(MULTIPART_OVERHEAD);
    let is_multipart = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(ApiError::unsupported_media_type(
            "expected Content-Type: multipart/form-data with a `file` field",
        ));
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > body_max as u64) {
        return Err(ApiError::payload_too_large(max));
    }
    // This route has no DefaultBodyLimit (see http::router); it gets its own.
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, body_max)));
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| {
            ApiError::invalid_request(format!("invalid multipart body: {}", e.body_text()))
        })?;
    let mut file = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, max))?
    {
        let is_file = field.name() == Some("file");
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e, max))? {
            if is_file {
                if bytes.len() + chunk.len() > max {
                    return Err(ApiError::payload_too_large(max));
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        if is_file {
            file = Some(bytes);
            break;
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::invalid_request("`file` is required: a multipart field holding the image")
    })?;
    let updated =
        crate::services::profile::set_avatar(&state, &user.user_id, &file, &user.appid, &origin)
            .await?;
    Ok(axum::Json(me_response(&state, &updated)))
}

/// `POST /v1/me/phone`: a getPhoneNumber code (preferred) or legacy encrypted phone data.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindPhoneRequest {
    /// A code from the getPhoneNumber button (`e.detail.code`).
    pub code: Option<String>,
    /// Legacy: `e.detail.encryptedData`, decrypted with the stored session_key.
    pub encrypted_data: Option<String>,
    /// Legacy: `e.detail.iv`.
    pub iv: Option<String>,
}

/// Bind a phone number to the signed-in user (WeChat's verified number, never typed in).
#[utoipa::path(post, path = "/v1/me/phone", tag = "me",
    security(("bearer" = [])),
    request_body = BindPhoneRequest,
    responses(
        (status = 200, description = "The profile with the masked `phone`", body = MeResponse),
        (status = 400, description = "`invalid_request` (names the field), `invalid_code` (the phone code), `watermark_mismatch`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 409, description = "`phone_in_use`: bound to another account", body = ErrorBody),
        (status = 422, description = "`stale_session_key` (legacy data): call wx.login, POST /v1/wechat/session, retry", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `[rate_limits.phone]` per IP, per user and per app, or WeChat's minute quota", body = ErrorBody),
        (status = 502, description = "`wechat_error`", body = ErrorBody),
        (status = 503, description = "`wechat_unavailable`", body = ErrorBody),
    ))]
pub async fn bind_phone(
    State(state): State<AppState>,
    client: Option<ClientIp>,
    origin: Origin,
    user: AuthUser,
    AppJson(request): AppJson<BindPhoneRequest>,
) -> Result<axum::Json<MeResponse>, ApiError> {
    let source = match (request.code, request.encrypted_data, request.iv) {
        (Some(code), None, None) => PhoneSource::Code(
            PhoneCode::parse(code)
                .map_err(|e| ApiError::invalid_request(format!("`code` is invalid: {e}")))?,
        ),
        (None, Some(encrypted_data), Some(iv)) => PhoneSource::Encrypted { encrypted_data, iv },
        (None, Some(_), None) => return Err(ApiError::invalid_request("`iv` is required")),
        (None, None, Some(_)) => {
            return Err(ApiError::invalid_request("`encrypted_data` is required"));
        }
        (None, None, None) => {
            return Err(ApiError::invalid_request(
                "`code` (from getPhoneNumber) or `encrypted_data` and `iv` are required",
            ));
        }
        (Some(_), _, _) => {
            return Err(ApiError::invalid_request(
                "send either `code` or `encrypted_data` and `iv`, not both",
            ));
        }
    };
    crate::services::rate_limits::check_signed_in(
        &state,
        LimitedEndpoint::Phone,
        ClientIp::subject(client.as_ref()),
        (&user.user_id, &user.appid),
    )
    .await?;
    let updated =
        crate::services::phone::bind_for_user(&state, &user.user_id, &user.appid, source, &origin)
            .await?;
    Ok(axum::Json(me_response(&state, &updated)))
}
