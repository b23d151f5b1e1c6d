//! Sessions and their tokens: open, refresh with rotation and reuse detection, log out, and check an
//! access token on every authenticated request.

use std::sync::Arc;
use std::time::Duration;

use crate::config::LimitedEndpoint;
use crate::domain::{AppId, SessionId, UserId};
use crate::error::ApiError;
use crate::shared::Revocation;
use crate::state::AppState;
use crate::store::{RefreshToken, Session, SessionIdentity, User};
use crate::tokens::{
    AccessClaims, KeyringError, TokenError, generate_refresh_token, hash_refresh_token,
};

use super::audit::{self, Actor, AuditEvent, Origin};
use super::rate_limits::Subject;

/// What login, register and refresh hand out: a token pair for a session of `user`.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The access token (a JWT).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token's text; only its hash is stored.
    pub refresh_token: String,
    /// Seconds until the refresh token (and its session) expires.
    pub refresh_expires_in: u64,
    pub user: User,
    /// Whether this login created the user.
    pub is_new: bool,
}

fn secs_until(now_ms: i64, until_ms: i64) -> u64 {
    u64::try_from((until_ms - now_ms).max(0) / 1000).unwrap_or(0)
}

/// `now` is the moment the session or the rotation was written, so that `refresh_expires_in` is
/// the lifetime just granted, not that minus the time taken to get here.
fn pair(
    state: &AppState,
    user: &User,
    session: &Session,
    refresh_token: String,
    is_new: bool,
    now: i64,
) -> Result<SignedIn, ApiError> {
    let issued = state
        .tokens
        .issue(&user.id, &session.id, &session.appid, state.now_secs())
        .map_err(|e| ApiError::internal(&e))?;
    Ok(SignedIn {
        access_token: issued.token,
        expires_in: issued.expires_in.as_secs(),
        refresh_token,
        refresh_expires_in: secs_until(now, session.expires_at),
        user: user.clone(),
        is_new,
    })
}

/// Opens a session for a user who just proved a WeChat identity, from the device `origin` names.
pub async fn start_session(
    state: &AppState,
    user: &User,
    appid: &AppId,
    is_new: bool,
    origin: &Origin,
) -> Result<SignedIn, ApiError> {
    let now = state.now_millis();
    let lifetime = Duration::from_secs(state.settings.tokens.refresh_ttl_secs);
    let session = Session {
        id: SessionId::generate(state.clock.now()),
        user_id: user.id.clone(),
        appid: appid.clone(),
        created_at: now,
        expires_at: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        revoked_at: None,
        user_agent: origin.user_agent.clone(),
        last_used_at: None,
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
        now,
    )
}

/// `POST /v1/auth/refresh`: rotate, allow a replay within the grace window, revoke the family on a
/// later reuse.
///
/// A session has one live chain: its live refresh tokens form one generation. Rotating any of
/// them retires all of them (in the store, atomically); a replay within the grace window adds a
/// sibling to the current generation instead of starting a second chain. So a stolen token
/// replayed in the window yields a token that dies with the owner's next refresh, and a later use
/// of either side is a reuse that revokes the session.
pub async fn refresh(
    state: &AppState,
    presented: &str,
    origin: &Origin,
) -> Result<SignedIn, ApiError> {
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
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Err(ApiError::invalid_grant());
    }
    // A rotated token that has expired while its session lives was retired because a sibling was
    // used: the session moved on without it, so presenting it is a reuse.
    let superseded = token.rotated_at.is_some() && token.expires_at <= now;
    if token.rotated_at.is_none() && token.expires_at <= now {
        return Err(ApiError::invalid_grant());
    }
    if !state.apps.contains_key(&session.appid) {
        tracing::info!(session = %session.id, appid = %session.appid, "refresh for an app no longer configured");
        return Err(ApiError::invalid_grant());
    }
    // Before anything rotates: a refused refresh leaves the presented token as it was.
    super::rate_limits::check(
        state,
        LimitedEndpoint::Refresh,
        &[
            Some(Subject::User(session.user_id.as_str())),
            Some(Subject::App(session.appid.as_str())),
        ],
    )
    .await?;
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
    let replay_in_grace = match token.rotated_at {
        None => {
            if store.rotate_refresh_token(&hash, &next, now).await? {
                false
            } else {
                // A concurrent refresh retired it a moment ago. If that was a rotation of this
                // very token, this is a replay within the grace; if a sibling's, a reuse.
                let again = store
                    .find_refresh_token(&hash)
                    .await?
                    .ok_or_else(ApiError::invalid_grant)?;
                let sibling_won = again.rotated_at.is_some_and(|_| again.expires_at <= now);
                if sibling_won {
                    return Err(reuse(state, &session, &user, now, origin).await);
                }
                true
            }
        }
        Some(rotated_at) if !superseded && now - rotated_at <= grace_ms => true,
        Some(_) => return Err(reuse(state, &session, &user, now, origin).await),
    };
    if replay_in_grace {
        // Joins the session's live generation: the next rotation of any of them retires it.
        store.insert_refresh_token(&next).await?;
    }
    state.metrics.refresh_rotated();
    pair(
        state,
        &user,
        &session,
        text.expose_secret().to_owned(),
        false,
        now,
    )
}

/// A refresh token used after the session moved on without it: whoever holds the other branch, the
/// session is no longer trustworthy, so it ends for everyone.
async fn reuse(
    state: &AppState,
    session: &Session,
    user: &User,
    now: i64,
    origin: &Origin,
) -> ApiError {
    if let Err(e) = state.store.revoke_session(&session.id, now).await {
        return e.into();
    }
    state.metrics.refresh_reuse_detected();
    announce(state, Revocation::Session(session.id.clone())).await;
    tracing::warn!(session = %session.id, user = %user.id, "refresh token reused after rotation; session revoked");
    let event = AuditEvent::RefreshReuseDetected {
        user: user.id.clone(),
        appid: session.appid.clone(),
        session: session.id.clone(),
    };
    audit::record(state, Actor::User(user.id.clone()), origin, event).await;
    ApiError::invalid_grant()
}

/// `POST /v1/auth/logout`: revoke this session, or all of the user's.
pub async fn logout(
    state: &AppState,
    user: &UserId,
    session: &SessionId,
    all_devices: bool,
    appid: &AppId,
    origin: &Origin,
) -> Result<(), ApiError> {
    let now = state.now_millis();
    let event = if all_devices {
        let count = state.store.revoke_user_sessions(user, now).await?;
        announce(state, Revocation::User(user.clone())).await;
        tracing::info!(user = %user, sessions = count, "logged out on all devices");
        AuditEvent::LogoutAll {
            user: user.clone(),
            appid: appid.clone(),
            sessions: count,
        }
    } else {
        state.store.revoke_session(session, now).await?;
        announce(state, Revocation::Session(session.clone())).await;
        tracing::info!(user = %user, session = %session, "logged out");
        AuditEvent::Logout {
            user: user.clone(),
            appid: appid.clone(),
            session: session.clone(),
        }
    };
    audit::record(state, Actor::User(user.clone()), origin, event).await;
    Ok(())
}

/// Tells every instance about a revocation already written to the database. The database stays
/// the authority, so a failed announcement is logged, not returned: the revocation holds anyway,
/// and only caches that rely on the events could lag.
async fn announce(state: &AppState, event: Revocation) {
    // This instance first, before the request that revoked answers.
    state.sessions.apply(&event);
    if let Err(e) = state.shared.events.publish(event).await {
        tracing::warn!(error = %e, "cannot announce a revocation to the other instances");
    }
}

/// A user's profile (nickname, avatar, phone number) changed: every instance forgets what it
/// remembers of the user, this one before the request that changed it answers, so that the next
/// `GET /v1/me` anywhere shows the change (the others when the event arrives, at the latest after
/// `tokens.session_cache_ms`).
pub(crate) async fn profile_changed(state: &AppState, user: &UserId) {
    announce(state, Revocation::Profile(user.clone())).await;
}

/// A login or a new session_key of `user` wrote its WeChat identity (a unionid back-filled, the
/// identity most recently used in an app): this instance forgets what it remembers of the user, so
/// its identity headers show the change at once. The others are not told; they re-read within
/// `tokens.session_cache_ms` (a login is too frequent to announce, and neither change lets anyone
/// else in: the user is the same).
pub(crate) fn identity_changed(state: &AppState, user: &UserId) {
    state.sessions.forget_user(user);
}

/// The caller behind a valid, unrevoked access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub appid: AppId,
    pub claims: AccessClaims,
    /// The user as the session check read it: from the database, or as remembered for at most
    /// `tokens.session_cache_ms` and not since anything wxlogin changed of it.
    pub user: Arc<User>,
    /// The user's WeChat identity in the token's app (openid, unionid), read with the user.
    pub identity: Option<Arc<SessionIdentity>>,
}

/// Verifies an access token and checks that its session is live, its app still configured and
/// its user not banned.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let refused = || ApiError::invalid_token("the access token is invalid or expired");
    let claims = match state.tokens.verify(token, state.now_secs()) {
        Err(TokenError::UnknownKey) => {
            // Another instance may have rotated the key: look in the database (rate-limited,
            // single flight), then try once more.
            match state.keys.reload_for_unknown_kid().await {
                Ok(()) => {}
                Err(KeyringError::Store(e)) => return Err(e.into()),
                Err(KeyringError::Keys(e)) => {
                    tracing::error!(error = %e, "cannot reload the signing keys");
                }
            }
            state.tokens.verify(token, state.now_secs())
        }
        other => other,
    }
    .map_err(|e| {
        tracing::debug!(reason = %e, "access token refused");
        refused()
    })?;
    let user_id = UserId::parse(claims.sub.as_str()).map_err(|_| refused())?;
    let session_id = SessionId::parse(claims.sid.as_str()).map_err(|_| refused())?;
    let appid = AppId::parse(claims.appid.as_str()).map_err(|_| refused())?;
    if !state.apps.contains_key(&appid) {
        return Err(ApiError::invalid_token(
            "the token's app is no longer served here",
        ));
    }
    let now = state.now_millis();
    let access = match state.sessions.get(&session_id, now) {
        Some(access) => access,
        None => {
            let read = state.sessions.generation();
            let access = state
                .store
                .session_access(&session_id)
                .await?
                .ok_or_else(refused)?;
            state.sessions.put(&session_id, access, now, read)
        }
    };
    if access.user.id != user_id {
        return Err(refused());
    }
    if access.revoked {
        return Err(ApiError::invalid_token("the session has been logged out"));
    }
    if access.expires_at <= now {
        return Err(ApiError::invalid_token("the session has expired"));
    }
    if access.user.banned_at.is_some() {
        return Err(ApiError::invalid_token("the account is banned"));
    }
    Ok(AuthUser {
        user_id,
        session_id,
        appid,
        claims,
        user: access.user,
        identity: access.identity,
    })
}
