//! What an operator does to accounts, sessions and WeChat access tokens (`wxlogin users`,
//! `wxlogin sessions`, `wxlogin wechat access-token`), from a process of its own beside running
//! servers. One function per action, so that each action has one place where it happens.
//!
//! The database is the authority: every change is written there first, then announced through the
//! shared state when `[redis]` is configured, as a logout is, so running servers drop what they
//! cached at once. Without Redis there is nobody to tell: servers honour a ban or a revocation
//! within `tokens.session_cache_ms` (at most one second), since that is how long they trust what
//! they read of a session.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::domain::{AccessToken, AppId, AppSecret, Phone, SessionId, UserId};
use crate::services::audit::{Actor, AuditEvent, REASON_MAX_CHARS};
use crate::services::wechat_tokens::SharedAccessTokens;
use crate::shared::{Revocation, SessionCache, SharedState};
use crate::state::AppState;
use crate::store::{Identity, Session, Store, StoreError, User, UserSearch, UserSummary};
use crate::wechat::{SharedToken, SharedTokens as _, TokenMode, WechatClient, WechatError};

/// The most users one list shows.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// What the actions work on: the configured database, the shared state when `[redis]` is set,
/// the configuration (apps, sealing key, WeChat), the clock, and the operator the audit log names.
#[derive(Clone)]
pub struct Admin {
    pub store: Arc<dyn Store>,
    /// Who acts: recorded with every change in the audit log.
    pub actor: Actor,
    /// `None` without `[redis]`: the in-memory state of a running server is out of reach.
    pub shared: Option<SharedState>,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    /// This server's session cache, when the actions run inside a server (the admin console): a
    /// revocation applies to it before the action answers, as a logout does.
    pub(crate) local_sessions: Option<Arc<SessionCache>>,
}

/// Why an action was refused or failed; one line, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no user {0}")]
    UnknownUser(UserId),
    #[error("no session {0}")]
    UnknownSession(SessionId),
    #[error("app {0} is not configured (not among [[apps]])")]
    UnknownApp(AppId),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("WeChat: {0}")]
    Wechat(String),
}

/// Whether running servers were told of a change at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Published through Redis: every server dropped what it cached.
    AtOnce,
    /// No `[redis]`, or the publish failed (logged): servers honour it within
    /// `tokens.session_cache_ms`.
    WithinSessionCache,
}

/// One user as `users show` presents it.
#[derive(Debug, Clone)]
pub struct UserDetails {
    pub user: User,
    pub identities: Vec<Identity>,
    /// Sessions neither revoked nor expired now.
    pub sessions: Vec<Session>,
}

/// What a ban did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Banned {
    /// `false` when the user was banned already (the ban time is kept).
    pub newly: bool,
    pub banned_at: i64,
    /// Live sessions revoked with the ban.
    pub sessions_revoked: u64,
    pub announced: Announced,
}

/// The cached WeChat access token of an app as the shared state holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStatus {
    /// With `[redis]`: the token the instances share, if any.
    Shared(Option<TokenFacts>),
    /// Without `[redis]`: each running server keeps its own copy in its memory.
    PerProcess,
}

/// What may be shown of a token: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// The first 12 hex digits of the SHA-256 of the token, to compare copies without showing it.
    pub fingerprint: String,
    pub expires_at_ms: i64,
}

/// What a forced refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    pub mode: TokenMode,
    pub new: TokenFacts,
    /// The token it replaced, when one was known.
    pub previous: Option<String>,
    /// Stored in the shared state and announced (`[redis]`), so every server uses it at once.
    pub shared: bool,
}

/// A short fingerprint of a token: the first 12 hex digits of its SHA-256.
pub fn fingerprint(token: &AccessToken) -> String {
    let digest = Sha256::digest(token.expose_secret().as_bytes());
    hex::encode(&digest[..6])
}

impl Admin {
    /// The actions of `actor` inside a running server (the admin console): its store, settings
    /// and clock, its shared state (Redis, or this process's own), and its session cache.
    pub fn in_server(state: &AppState, actor: Actor) -> Self {
        Self {
            store: state.store.clone(),
            actor,
            shared: Some(state.shared.clone()),
            settings: state.settings.clone(),
            clock: state.clock.clone(),
            local_sessions: Some(state.sessions.clone()),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.unix_millis()
    }

    /// Records a change in the audit log (never fails: the change is made; see `services::audit`).
    pub(crate) async fn record(&self, event: AuditEvent) {
        crate::services::audit::record_for_operator(
            self.store.as_ref(),
            &self.clock,
            &self.actor,
            event,
        )
        .await;
    }

    async fn user(&self, id: &UserId) -> Result<User, AdminError> {
        self.store
            .get_user(id)
            .await?
            .ok_or_else(|| AdminError::UnknownUser(id.clone()))
    }

    /// Tells every server about a revocation already written to the database; a failed publish is
    /// logged, not returned (the database holds the revocation anyway).
    async fn announce(&self, event: Revocation) -> Announced {
        if let Some(local) = &self.local_sessions {
            local.apply(&event);
        }
        let Some(shared) = &self.shared else {
            return Announced::WithinSessionCache;
        };
        match shared.events.publish(event).await {
            Ok(()) => Announced::AtOnce,
            Err(e) => {
                tracing::warn!(error = %e, "cannot announce to the running servers; they honour it within tokens.session_cache_ms");
                Announced::WithinSessionCache
            }
        }
    }

    fn app_secret(&self, appid: &AppId) -> Result<&AppSecret, AdminError> {
        self.settings
            .apps
            .iter()
            .find(|app| &app.appid == appid)
            .map(|app| &app.secret)
            .ok_or_else(|| AdminError::UnknownApp(appid.clone()))
    }

    fn shared_tokens(&self) -> Result<Option<SharedAccessTokens>, AdminError> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let sealing = self.settings.security.sealing_key.clone().ok_or_else(|| {
            AdminError::Invalid(
                "security.sealing_key (or security.sealing_key_file) is required: it seals the shared WeChat access token".into(),
            )
        })?;
        Ok(Some(SharedAccessTokens::new(
            shared.clone(),
            sealing,
            self.clock.clone(),
        )))
    }
}

/// `users list`: users matching `search` (a user id, openid, unionid, phone number in any spelling
/// the import accepts, or a nickname substring), newest first, at most `limit` after `offset`.
pub async fn list_users(
    admin: &Admin,
    search: Option<&str>,
    limit: u32,
    offset: u32,
) -> Result<Vec<UserSummary>, AdminError> {
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(AdminError::Invalid(format!(
            "--limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let search = search.map(|text| UserSearch {
        text: text.to_owned(),
        phone: Phone::parse_text(text).ok(),
    });
    Ok(admin
        .store
        .search_users(search.as_ref(), limit, offset)
        .await?)
}

/// `users show`: the user, its identities and its live sessions.
pub async fn show_user(admin: &Admin, id: &UserId) -> Result<UserDetails, AdminError> {
    let user = admin.user(id).await?;
    let identities = admin.store.list_identities_of_user(id).await?;
    let sessions = admin
        .store
        .list_sessions_of_user(id, Some(admin.now()))
        .await?;
    Ok(UserDetails {
        user,
        identities,
        sessions,
    })
}

/// `users ban`: refuses the user's logins and refreshes, and revokes every live session, so that
/// an unban later does not bring old (possibly stolen) sessions back. `reason` goes with the
/// action's record.
pub async fn ban(admin: &Admin, id: &UserId, reason: Option<&str>) -> Result<Banned, AdminError> {
    let user = admin.user(id).await?;
    let now = admin.now();
    let (newly, banned_at) = match user.banned_at {
        Some(at) => (false, at),
        None => {
            if !admin.store.set_user_banned(id, Some(now)).await? {
                return Err(AdminError::UnknownUser(id.clone()));
            }
            (true, now)
        }
    };
    let sessions_revoked = admin.store.revoke_user_sessions(id, now).await?;
    let announced = admin.announce(Revocation::User(id.clone())).await;
    tracing::info!(user = %id, reason = reason.unwrap_or(""), sessions_revoked, "user banned by an operator");
    admin
        .record(AuditEvent::UserBanned {
            user: id.clone(),
            sessions: sessions_revoked,
            reason: reason.map(|r| {
                r.chars()
                    .filter(|c| !c.is_control())
                    .take(REASON_MAX_CHARS)
                    .collect()
            }),
        })
        .await;
    Ok(Banned {
        newly,
        banned_at,
        sessions_revoked,
        announced,
    })
}

/// `users unban`: the user may log in again (with new sessions). `false` when it was not banned.
pub async fn unban(admin: &Admin, id: &UserId) -> Result<bool, AdminError> {
    let user = admin.user(id).await?;
    if user.banned_at.is_none() {
        return Ok(false);
    }
    if !admin.store.set_user_banned(id, None).await? {
        return Err(AdminError::UnknownUser(id.clone()));
    }
    tracing::info!(user = %id, "user unbanned by an operator");
    admin
        .record(AuditEvent::UserUnbanned { user: id.clone() })
        .await;
    Ok(true)
}

/// `users unbind-phone`: removes the user's phone number (which another user may then bind).
/// Returns the number it removed, `None` when there was none.
pub async fn unbind_phone(admin: &Admin, id: &UserId) -> Result<Option<Phone>, AdminError> {
    let user = admin.user(id).await?;
    let Some(previous) = user.phone else {
        return Ok(None);
    };
    if !admin.store.set_user_phone(id, None, admin.now()).await? {
        return Err(AdminError::UnknownUser(id.clone()));
    }
    // What servers remember of the user (`GET /v1/me` answers from it) is stale now.
    admin.announce(Revocation::Profile(id.clone())).await;
    tracing::info!(user = %id, "phone number unbound by an operator");
    admin
        .record(AuditEvent::PhoneUnbound { user: id.clone() })
        .await;
    Ok(Some(previous))
}

/// `sessions list`: the user's live sessions, or all of them.
pub async fn list_sessions(
    admin: &Admin,
    user: &UserId,
    all: bool,
) -> Result<Vec<Session>, AdminError> {
    admin.user(user).await?;
    let live_at = (!all).then(|| admin.now());
    Ok(admin.store.list_sessions_of_user(user, live_at).await?)
}

/// `sessions revoke SESSION_ID`: `None` (and nothing announced) when it was revoked already.
pub async fn revoke_session(
    admin: &Admin,
    id: &SessionId,
) -> Result<Option<Announced>, AdminError> {
    let session = admin
        .store
        .get_session(id)
        .await?
        .ok_or_else(|| AdminError::UnknownSession(id.clone()))?;
    if !admin.store.revoke_session(id, admin.now()).await? {
        return Ok(None);
    }
    let announced = admin.announce(Revocation::Session(id.clone())).await;
    tracing::info!(user = %session.user_id, session = %id, "session revoked by an operator");
    admin
        .record(AuditEvent::SessionRevoked {
            user: Some(session.user_id.clone()),
            session: id.clone(),
        })
        .await;
    Ok(Some(announced))
}

/// `sessions revoke --user USER_ID`: every live session of the user; returns how many.
pub async fn revoke_user_sessions(
    admin: &Admin,
    user: &UserId,
) -> Result<(u64, Announced), AdminError> {
    admin.user(user).await?;
    let count = admin.store.revoke_user_sessions(user, admin.now()).await?;
    let announced = admin.announce(Revocation::User(user.clone())).await;
    tracing::info!(user = %user, sessions = count, "sessions revoked by an operator");
    admin
        .record(AuditEvent::UserSessionsRevoked {
            user: user.clone(),
            sessions: count,
        })
        .await;
    Ok((count, announced))
}

/// `wechat access-token show`: where the app's token lives and, with `[redis]`, the shared one.
pub async fn access_token_status(admin: &Admin, appid: &AppId) -> Result<TokenStatus, AdminError> {
    admin.app_secret(appid)?;
    let Some(tokens) = admin.shared_tokens()? else {
        return Ok(TokenStatus::PerProcess);
    };
    let found = tokens
        .load(appid)
        .await
        .map_err(|e| AdminError::Invalid(format!("shared state: {e}")))?;
    let now = admin.now();
    Ok(TokenStatus::Shared(
        found.filter(|t| t.expires_at_ms > now).map(|t| TokenFacts {
            fingerprint: fingerprint(&t.token),
            expires_at_ms: t.expires_at_ms,
        }),
    ))
}

/// `wechat access-token refresh`: a new token from WeChat for a leaked one. In `stable` mode a
/// `force_refresh` (20 a day, at least 30 s apart: sooner, WeChat hands back the current token
/// unchanged, which is refused here as an error); in `classic` mode a `/cgi-bin/token` fetch. With
/// `[redis]` the new token is stored for every server and announced; they adopt it at once.
pub async fn refresh_access_token(admin: &Admin, appid: &AppId) -> Result<Refreshed, AdminError> {
    let secret = admin.app_secret(appid)?.clone();
    let client = WechatClient::new(&admin.settings.wechat_client_config())
        .map_err(|e| AdminError::Wechat(e.to_string()))?;
    let shared = admin.shared_tokens()?;
    // Under the app's fetch lease, so that no server fetches (in classic mode: replaces) the
    // token between this fetch and its publication.
    let lock = match &shared {
        Some(tokens) => Some(
            tokens
                .lock_fetch(appid)
                .await
                .map_err(|e| AdminError::Invalid(format!("shared state: {e}")))?,
        ),
        None => None,
    };
    let outcome = refresh_with(admin, appid, &secret, &client, shared.as_ref()).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let refreshed = outcome?;
    if refreshed.shared {
        admin
            .announce(Revocation::WechatAccessToken(appid.clone()))
            .await;
    }
    tracing::info!(appid = %appid, fingerprint = %refreshed.new.fingerprint, "WeChat access token force-refreshed by an operator");
    admin
        .record(AuditEvent::WechatTokenRefreshed {
            appid: appid.clone(),
        })
        .await;
    Ok(refreshed)
}

async fn refresh_with(
    admin: &Admin,
    appid: &AppId,
    secret: &AppSecret,
    client: &WechatClient,
    shared: Option<&SharedAccessTokens>,
) -> Result<Refreshed, AdminError> {
    let mode = admin.settings.wechat.token_mode;
    let known = match shared {
        Some(tokens) => tokens.load(appid).await.ok().flatten().map(|t| t.token),
        None => None,
    };
    let issued = match mode {
        TokenMode::Stable => {
            // The current token, to tell a refresh from WeChat's "too soon" answer (the same
            // token again). A normal call: it counts against no force-refresh allowance.
            let previous = match known {
                Some(token) => token,
                None => {
                    client
                        .get_stable_access_token(appid, secret, false)
                        .await
                        .map_err(wechat_error)?
                        .token
                }
            };
            let issued = client
                .get_stable_access_token(appid, secret, true)
                .await
                .map_err(wechat_error)?;
            if issued.token == previous {
                return Err(AdminError::Wechat(
                    "WeChat kept the current token: force refreshes less than 30 s apart do nothing; run it again in 30 s".into(),
                ));
            }
            (issued, Some(previous))
        }
        TokenMode::Classic => (
            client
                .get_access_token(appid, secret)
                .await
                .map_err(wechat_error)?,
            known,
        ),
    };
    let (issued, previous) = issued;
    let expires_in_ms = i64::try_from(issued.expires_in.as_millis()).unwrap_or(i64::MAX);
    let new = SharedToken {
        token: issued.token,
        expires_at_ms: admin.now().saturating_add(expires_in_ms),
    };
    if let Some(tokens) = shared {
        tokens.store(appid, &new).await.map_err(|e| {
            AdminError::Invalid(format!(
                "WeChat issued a new token but it cannot be shared ({e}); servers keep their copies"
            ))
        })?;
    }
    Ok(Refreshed {
        mode,
        new: TokenFacts {
            fingerprint: fingerprint(&new.token),
            expires_at_ms: new.expires_at_ms,
        },
        previous: previous.as_ref().map(fingerprint),
        shared: shared.is_some(),
    })
}

fn wechat_error(e: WechatError) -> AdminError {
    let text = match e.errcode() {
        Some(45009) => format!(
            "{e}: the app's daily allowance is used up (stable_token force refreshes: 20 a day)"
        ),
        _ => e.to_string(),
    };
    AdminError::Wechat(text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_short_stable_and_not_the_token() {
        let token = AccessToken::parse("89_a-leaked-token-text").unwrap();
        let print = fingerprint(&token);
        assert_eq!(print.len(), 12);
        assert_eq!(print, fingerprint(&token));
        assert!(!print.contains("leaked"));
        let digest = hex::encode(Sha256::digest(b"89_a-leaked-token-text"));
        assert!(digest.starts_with(&print));
    }
}
