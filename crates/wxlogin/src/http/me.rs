//! `/v1/me`: the signed-in user.

use axum::extract::State;
use serde::Serialize;

use super::extract::AuthUser;
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::sessions::PhoneView;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub id: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub phone: Option<PhoneView>,
    /// RFC 3339, UTC.
    pub created_at: String,
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
    let found = state
        .store
        .get_user(&user.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("the user no longer exists"))?;
    let created = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(found.created_at).unwrap_or(0));
    Ok(axum::Json(MeResponse {
        id: found.id.as_str().to_owned(),
        nickname: found.nickname,
        avatar_url: None,
        phone: None,
        created_at: humantime::format_rfc3339_seconds(created).to_string(),
    }))
}
