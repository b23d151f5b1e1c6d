//! Sessions and their tokens: open, refresh with rotation and reuse detection, log out.

use std::time::Duration;

use serde::Serialize;

use crate::app::AppState;
use crate::domain::{AppId, Phone, SessionId, UserId};
use crate::error::ApiError;
use crate::store::{RefreshToken, Session, User};
use crate::tokens::{generate_refresh_token, hash_refresh_token};

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

fn secs_until(now_ms: i64, until_ms: i64) -> u64 {
    u64::try_from((until_ms - now_ms).max(0) / 1000).unwrap_or(0)
}

fn login_user(state: &AppState, user: &User, is_new: bool) -> LoginUser {
    LoginUser {
        id: user.id.as_str().to_owned(),
        is_new,
        nickname: user.nickname.clone(),
        avatar_url: crate::profile::avatar_url(&state.settings, user.avatar.as_deref()),
        phone: user.phone.as_ref().map(PhoneView::of),
    }
}

fn pair(
    state: &AppState,
    user: &User,
    session: &Session,
    refresh_token: String,
    is_new: bool,
) -> Result<LoginResponse, ApiError> {
    let issued = state
        .tokens
        .issue(&user.id, &session.id, &session.appid, state.now_secs())
        .map_err(|e| ApiError::internal(&e))?;
    Ok(LoginResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in.as_secs(),
        refresh_token,
        refresh_expires_in: secs_until(state.now_millis(), session.expires_at),
        user: login_user(state, user, is_new),
    })
}

/// Opens a session for a user who just proved a WeChat identity.
pub async fn start_session(
    state: &AppState,
    user: &User,
    appid: &AppId,
    is_new: bool,
) -> Result<LoginResponse, ApiError> {
    let now = state.now_millis();
    let lifetime = Duration::from_secs(state.settings.tokens.refresh_ttl_secs);
    let session = Session {
        id: SessionId::generate(state.clock.now()),
        user_id: user.id.clone(),
        appid: appid.clone(),
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        revoked_at: None,
    };
    let (text, hash) = generate_refresh_token();
    let first = RefreshToken {
        hash: hash.to_vec(),
        session_id: session.id.clone(),
        issued_at: now,
        expires_at: session.expires_at,
        rotated_at: None,
    };
    state.store.create_session(&session, &first).await?;
    pair(
        state,
        user,
        &session,
        text.expose_secret().to_owned(),
        is_new,
    )
}

/// `POST /v1/auth/refresh`: rotate, allow a replay within the grace window, revoke the family on a
/// later reuse.
pub async fn refresh(state: &AppState, presented: &str) -> Result<LoginResponse, ApiError> {
    let hash = hash_refresh_token(presented).ok_or_else(ApiError::invalid_grant)?;
    let store = &state.store;
    let token = store
        .find_refresh_token(&hash)
        .await?
        .ok_or_else(ApiError::invalid_grant)?;
    let now = state.now_millis();
    let session = store
        .get_session(&token.session_id)
        .await?
        .ok_or_else(ApiError::invalid_grant)?;
    if session.revoked_at.is_some() || token.expires_at <= now || session.expires_at <= now {
        return Err(ApiError::invalid_grant());
    }
    let user = store
        .get_user(&session.user_id)
        .await?
        .ok_or_else(ApiError::invalid_grant)?;
    if user.banned_at.is_some() {
        return Err(ApiError::login_blocked("this account is banned"));
    }
    let grace_ms = i64::try_from(state.settings.tokens.refresh_grace_secs)
        .unwrap_or(0)
        .saturating_mul(1000);
    let (text, new_hash) = generate_refresh_token();
    let next = RefreshToken {
        hash: new_hash.to_vec(),
        session_id: session.id.clone(),
        issued_at: now,
        expires_at: session.expires_at,
        rotated_at: None,
    };
    match token.rotated_at {
        None => {
            if !store.rotate_refresh_token(&hash, &next, now).await? {
                // A concurrent refresh rotated it a moment ago: that is a replay within the grace.
                store.insert_refresh_token(&next).await?;
            }
        }
        Some(rotated_at) if now - rotated_at <= grace_ms => {
            store.insert_refresh_token(&next).await?;
        }
        Some(_) => {
            store.revoke_session(&session.id, now).await?;
            tracing::warn!(session = %session.id, user = %user.id, "refresh token reused after rotation; session revoked");
            return Err(ApiError::invalid_grant());
        }
    }
    pair(
        state,
        &user,
        &session,
        text.expose_secret().to_owned(),
        false,
    )
}

/// `POST /v1/auth/logout`: revoke this session, or all of the user's.
pub async fn logout(
    state: &AppState,
    user: &UserId,
    session: &SessionId,
    all_devices: bool,
) -> Result<(), ApiError> {
    let now = state.now_millis();
    if all_devices {
        let count = state.store.revoke_user_sessions(user, now).await?;
        tracing::info!(user = %user, sessions = count, "logged out on all devices");
    } else {
        state.store.revoke_session(session, now).await?;
        tracing::info!(user = %user, session = %session, "logged out");
    }
    Ok(())
}
