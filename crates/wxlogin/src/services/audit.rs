//! The audit log: one typed event per security-relevant change, appended to the store where it
//! happens, with who did it ([`Actor`]) and from where ([`Origin`]).
//!
//! Recording never fails the request it belongs to: the change it describes has already been
//! written, and refusing a login because the log could not take a line would turn an audit
//! problem into an outage. A failed append is logged as a warning (type, actor kind and the store's
//! error; never a secret) and counted (`wxlogin_audit_write_failures_total`), so an operator can
//! alert on gaps. The entry is therefore written after the change, not in its transaction: a
//! crash between the two loses the entry, which the counter cannot show; the change itself is
//! never lost or undone for the log's sake.
//!
//! `details` is a small JSON object per type (`docs/operations.md`, "Audit log"): counts, flags,
//! session ids and key ids, never a token, a key, a phone number, a nickname or an image.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::config::Registration;
use crate::domain::{AdminName, AdminRole, AppId, SessionId, UserId};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::{AuditRecord, Store};

/// The longest user agent kept, in characters; longer ones are cut.
pub const USER_AGENT_MAX_CHARS: usize = 256;
/// The longest ban reason kept, in characters; longer ones are cut.
pub const REASON_MAX_CHARS: usize = 200;
/// The longest operator name (`--actor`), in characters.
pub const ACTOR_NAME_MAX_CHARS: usize = 64;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in (or signing-in) user.
    User(UserId),
    /// A backend service, by its `client_id`.
    Service(String),
    /// An operator at the command line, by name.
    Admin(String),
    /// wxlogin itself.
    System,
}

impl Actor {
    /// `user`, `service`, `admin` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Service(_) => "service",
            Self::Admin(_) => "admin",
            Self::System => "system",
        }
    }

    fn id(&self) -> Option<String> {
        match self {
            Self::User(id) => Some(id.as_str().to_owned()),
            Self::Service(id) | Self::Admin(id) => Some(id.clone()),
            Self::System => None,
        }
    }

    /// The operator of a CLI command: `--actor NAME` if given, else the OS user (`$USER`), else
    /// `cli`. A given name must be 1–64 printable characters.
    pub fn cli(flag: Option<&str>, os_user: Option<&str>) -> Result<Self, String> {
        if let Some(name) = flag {
            let name = name.trim();
            let printable = !name.is_empty()
                && name.chars().count() <= ACTOR_NAME_MAX_CHARS
                && !name.chars().any(char::is_control);
            if !printable {
                return Err(format!(
                    "--actor must be 1 to {ACTOR_NAME_MAX_CHARS} printable characters"
                ));
            }
            return Ok(Self::Admin(name.to_owned()));
        }
        let os_user = os_user
            .map(str::trim)
            .filter(|u| !u.is_empty() && !u.chars().any(char::is_control))
            .map(|u| u.chars().take(ACTOR_NAME_MAX_CHARS).collect::<String>());
        Ok(Self::Admin(os_user.unwrap_or_else(|| "cli".to_owned())))
    }
}

/// Where a request came from: the client address (after `server.trusted_proxies`) and its user
/// agent, cut to [`USER_AGENT_MAX_CHARS`] and stripped of control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Origin {
    /// Nowhere in particular: the command line, background work.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(client_ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_MAX_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.trim().is_empty());
        Self {
            client_ip,
            user_agent,
        }
    }
}

/// How a new WeChat identity joined an existing user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkedBy {
    /// Its unionid belongs to the user (another app of the same Open Platform account).
    Unionid,
    /// Its phone number is an operator's imported user's (`closed` apps).
    Phone,
}

/// Which part of a profile changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileField {
    Nickname,
    Avatar,
}

/// Which kind of key changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A token signing key (`kid`).
    Signing,
    /// The sealing key of values at rest.
    Sealing,
}

/// Every event the audit log knows. Each names the user and app it is about, when there is one;
/// the rest goes to `details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A login with a WeChat code: a new user or a returning one.
    Login {
        user: UserId,
        appid: AppId,
        new: bool,
    },
    /// A registration that a `phone_required` or `closed` policy had refused, completed with the
    /// phone number (`POST /v1/auth/wechat/register`).
    Registration {
        user: UserId,
        appid: AppId,
        policy: Registration,
        new: bool,
    },
    /// A new WeChat identity joined an existing user.
    IdentityLinked {
        user: UserId,
        appid: AppId,
        via: LinkedBy,
    },
    /// A phone number bound to the user; `changed` when it replaced another number.
    PhoneBound {
        user: UserId,
        appid: AppId,
        changed: bool,
        country_code: String,
    },
    /// The nickname or avatar set (or, `cleared`, removed). Never the value.
    ProfileChanged {
        user: UserId,
        appid: AppId,
        field: ProfileField,
        cleared: bool,
    },
    /// A rotated refresh token presented again: the session was revoked.
    RefreshReuseDetected {
        user: UserId,
        appid: AppId,
        session: SessionId,
    },
    /// One session logged out.
    Logout {
        user: UserId,
        appid: AppId,
        session: SessionId,
    },
    /// Every session of the user logged out.
    LogoutAll {
        user: UserId,
        appid: AppId,
        sessions: u64,
    },
    /// A service reported the app's WeChat access token rejected; it was dropped and refetched.
    WechatTokenInvalidated {
        appid: AppId,
    },
    /// An operator forced a new WeChat access token (a leaked one).
    WechatTokenRefreshed {
        appid: AppId,
    },
    /// `wxlogin users import`.
    UsersImported {
        created: u64,
        existing: u64,
        duplicates: u64,
    },
    UserBanned {
        user: UserId,
        /// Sessions revoked with the ban.
        sessions: u64,
        /// The operator's `--reason`, cut to [`REASON_MAX_CHARS`].
        reason: Option<String>,
    },
    UserUnbanned {
        user: UserId,
    },
    /// An operator removed the user's phone number (`wxlogin users unbind-phone`).
    PhoneUnbound {
        user: UserId,
    },
    /// An administrator of the console was shown the user's whole phone number.
    PhoneRevealed {
        user: UserId,
    },
    /// One session revoked by an operator.
    SessionRevoked {
        user: Option<UserId>,
        session: SessionId,
    },
    /// Every session of a user revoked by an operator.
    UserSessionsRevoked {
        user: UserId,
        sessions: u64,
    },
    /// A new key made current.
    KeyRotated {
        key: KeyKind,
        kid: String,
    },
    /// A key taken out of use.
    KeyRetired {
        key: KeyKind,
        kid: String,
    },
    /// An administrator of the console created (`wxlogin admins add`).
    AdminAdded {
        admin: AdminName,
        role: AdminRole,
    },
    /// An administrator removed (`wxlogin admins remove`).
    AdminRemoved {
        admin: AdminName,
        role: AdminRole,
    },
    /// An administrator's password replaced (`wxlogin admins reset-password`); `unlocked` when it
    /// also lifted a lockout.
    AdminPasswordReset {
        admin: AdminName,
        unlocked: bool,
    },
    /// A new TOTP secret made for an administrator (`wxlogin admins totp`); `replaced` when it
    /// replaced one. Never the secret.
    AdminTotpEnrolled {
        admin: AdminName,
        replaced: bool,
    },
    /// An administrator signed in to the console (password, and TOTP code when enrolled).
    AdminSignedIn {
        admin: AdminName,
    },
    /// A console sign-in step failed for a known administrator: `step` is `password` or `totp`;
    /// `locked` when this failure locked the administrator out.
    AdminSignInFailed {
        admin: AdminName,
        step: SignInStep,
        locked: bool,
    },
    /// An administrator signed out of the console.
    AdminSignedOut {
        admin: AdminName,
    },
}

/// Which step of a console sign-in failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStep {
    Password,
    Totp,
}

impl SignInStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
        }
    }
}

/// The `type` of an entry, as stored and as `wxlogin audit list --type` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Login,
    Registration,
    IdentityLinked,
    PhoneBound,
    ProfileChanged,
    RefreshReuseDetected,
    Logout,
    LogoutAll,
    WechatTokenInvalidated,
    WechatTokenRefreshed,
    UsersImported,
    UserBanned,
    UserUnbanned,
    PhoneUnbound,
    PhoneRevealed,
    SessionRevoked,
    UserSessionsRevoked,
    KeyRotated,
    KeyRetired,
    AdminAdded,
    AdminRemoved,
    AdminPasswordReset,
    AdminTotpEnrolled,
    AdminSignedIn,
    AdminSignInFailed,
    AdminSignedOut,
}

impl EventType {
    pub const ALL: [Self; 26] = [
        Self::Login,
        Self::Registration,
        Self::IdentityLinked,
        Self::PhoneBound,
        Self::ProfileChanged,
        Self::RefreshReuseDetected,
        Self::Logout,
        Self::LogoutAll,
        Self::WechatTokenInvalidated,
        Self::WechatTokenRefreshed,
        Self::UsersImported,
        Self::UserBanned,
        Self::UserUnbanned,
        Self::PhoneUnbound,
        Self::PhoneRevealed,
        Self::SessionRevoked,
        Self::UserSessionsRevoked,
        Self::KeyRotated,
        Self::KeyRetired,
        Self::AdminAdded,
        Self::AdminRemoved,
        Self::AdminPasswordReset,
        Self::AdminTotpEnrolled,
        Self::AdminSignedIn,
        Self::AdminSignInFailed,
        Self::AdminSignedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Registration => "registration",
            Self::IdentityLinked => "identity_linked",
            Self::PhoneBound => "phone_bound",
            Self::ProfileChanged => "profile_changed",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::WechatTokenInvalidated => "wechat_token_invalidated",
            Self::WechatTokenRefreshed => "wechat_token_refreshed",
            Self::UsersImported => "users_imported",
            Self::UserBanned => "user_banned",
            Self::UserUnbanned => "user_unbanned",
            Self::PhoneUnbound => "phone_unbound",
            Self::PhoneRevealed => "phone_revealed",
            Self::SessionRevoked => "session_revoked",
            Self::UserSessionsRevoked => "user_sessions_revoked",
            Self::KeyRotated => "key_rotated",
            Self::KeyRetired => "key_retired",
            Self::AdminAdded => "admin_added",
            Self::AdminRemoved => "admin_removed",
            Self::AdminPasswordReset => "admin_password_reset",
            Self::AdminTotpEnrolled => "admin_totp_enrolled",
            Self::AdminSignedIn => "admin_signed_in",
            Self::AdminSignInFailed => "admin_sign_in_failed",
            Self::AdminSignedOut => "admin_signed_out",
        }
    }

    /// A type by its name; the error lists the valid ones.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown event type; valid types: {}", names.join(", "))
            })
    }
}

impl LinkedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Unionid => "unionid",
            Self::Phone => "phone",
        }
    }
}

impl ProfileField {
    fn as_str(self) -> &'static str {
        match self {
            Self::Nickname => "nickname",
            Self::Avatar => "avatar",
        }
    }
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Sealing => "sealing",
        }
    }
}

impl AuditEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Login { .. } => EventType::Login,
            Self::Registration { .. } => EventType::Registration,
            Self::IdentityLinked { .. } => EventType::IdentityLinked,
            Self::PhoneBound { .. } => EventType::PhoneBound,
            Self::ProfileChanged { .. } => EventType::ProfileChanged,
            Self::RefreshReuseDetected { .. } => EventType::RefreshReuseDetected,
            Self::Logout { .. } => EventType::Logout,
            Self::LogoutAll { .. } => EventType::LogoutAll,
            Self::WechatTokenInvalidated { .. } => EventType::WechatTokenInvalidated,
            Self::WechatTokenRefreshed { .. } => EventType::WechatTokenRefreshed,
            Self::UsersImported { .. } => EventType::UsersImported,
            Self::UserBanned { .. } => EventType::UserBanned,
            Self::UserUnbanned { .. } => EventType::UserUnbanned,
            Self::PhoneUnbound { .. } => EventType::PhoneUnbound,
            Self::PhoneRevealed { .. } => EventType::PhoneRevealed,
            Self::SessionRevoked { .. } => EventType::SessionRevoked,
            Self::UserSessionsRevoked { .. } => EventType::UserSessionsRevoked,
            Self::KeyRotated { .. } => EventType::KeyRotated,
            Self::KeyRetired { .. } => EventType::KeyRetired,
            Self::AdminAdded { .. } => EventType::AdminAdded,
            Self::AdminRemoved { .. } => EventType::AdminRemoved,
            Self::AdminPasswordReset { .. } => EventType::AdminPasswordReset,
            Self::AdminTotpEnrolled { .. } => EventType::AdminTotpEnrolled,
            Self::AdminSignedIn { .. } => EventType::AdminSignedIn,
            Self::AdminSignInFailed { .. } => EventType::AdminSignInFailed,
            Self::AdminSignedOut { .. } => EventType::AdminSignedOut,
        }
    }

    /// The user the event is about.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Self::Login { user, .. }
            | Self::Registration { user, .. }
            | Self::IdentityLinked { user, .. }
            | Self::PhoneBound { user, .. }
            | Self::ProfileChanged { user, .. }
            | Self::RefreshReuseDetected { user, .. }
            | Self::Logout { user, .. }
            | Self::LogoutAll { user, .. }
            | Self::UserBanned { user, .. }
            | Self::UserUnbanned { user }
            | Self::PhoneUnbound { user }
            | Self::PhoneRevealed { user }
            | Self::UserSessionsRevoked { user, .. } => Some(user),
            Self::SessionRevoked { user, .. } => user.as_ref(),
            Self::WechatTokenInvalidated { .. }
            | Self::WechatTokenRefreshed { .. }
            | Self::UsersImported { .. }
            | Self::KeyRotated { .. }
            | Self::KeyRetired { .. }
            | Self::AdminAdded { .. }
            | Self::AdminRemoved { .. }
            | Self::AdminPasswordReset { .. }
            | Self::AdminTotpEnrolled { .. }
            | Self::AdminSignedIn { .. }
            | Self::AdminSignInFailed { .. }
            | Self::AdminSignedOut { .. } => None,
        }
    }

    /// The app the event is about.
    pub fn appid(&self) -> Option<&AppId> {
        match self {
            Self::Login { appid, .. }
            | Self::Registration { appid, .. }
            | Self::IdentityLinked { appid, .. }
            | Self::PhoneBound { appid, .. }
            | Self::ProfileChanged { appid, .. }
            | Self::RefreshReuseDetected { appid, .. }
            | Self::Logout { appid, .. }
            | Self::LogoutAll { appid, .. }
            | Self::WechatTokenInvalidated { appid }
            | Self::WechatTokenRefreshed { appid } => Some(appid),
            _ => None,
        }
    }

    /// What the event says beyond its type, user and app.
    pub fn details(&self) -> Value {
        match self {
            Self::Login { new, .. } => {
                json!({ "outcome": if *new { "new" } else { "returning" } })
            }
            Self::Registration { policy, new, .. } => {
                json!({ "policy": policy.as_str(), "new": new })
            }
            Self::IdentityLinked { via, .. } => json!({ "via": via.as_str() }),
            Self::PhoneBound {
                changed,
                country_code,
                ..
            } => json!({ "changed": changed, "country_code": country_code }),
            Self::ProfileChanged { field, cleared, .. } => {
                json!({ "field": field.as_str(), "cleared": cleared })
            }
            Self::RefreshReuseDetected { session, .. } => {
                json!({ "session": session.as_str(), "session_revoked": true })
            }
            Self::Logout { session, .. } => json!({ "session": session.as_str() }),
            Self::LogoutAll { sessions, .. } | Self::UserSessionsRevoked { sessions, .. } => {
                json!({ "sessions": sessions })
            }
            Self::UserBanned {
                sessions, reason, ..
            } => match reason {
                Some(reason) => json!({ "sessions_revoked": sessions, "reason": reason }),
                None => json!({ "sessions_revoked": sessions }),
            },
            Self::SessionRevoked { session, .. } => json!({ "session": session.as_str() }),
            Self::UsersImported {
                created,
                existing,
                duplicates,
            } => json!({ "created": created, "existing": existing, "duplicates": duplicates }),
            Self::KeyRotated { key, kid } | Self::KeyRetired { key, kid } => {
                json!({ "key": key.as_str(), "kid": kid })
            }
            Self::AdminAdded { admin, role } | Self::AdminRemoved { admin, role } => {
                json!({ "admin": admin.as_str(), "role": role.as_str() })
            }
            Self::AdminPasswordReset { admin, unlocked } => {
                json!({ "admin": admin.as_str(), "unlocked": unlocked })
            }
            Self::AdminTotpEnrolled { admin, replaced } => {
                json!({ "admin": admin.as_str(), "replaced": replaced })
            }
            Self::AdminSignedIn { admin } | Self::AdminSignedOut { admin } => {
                json!({ "admin": admin.as_str() })
            }
            Self::AdminSignInFailed {
                admin,
                step,
                locked,
            } => json!({ "admin": admin.as_str(), "step": step.as_str(), "locked": locked }),
            Self::WechatTokenInvalidated { .. }
            | Self::WechatTokenRefreshed { .. }
            | Self::UserUnbanned { .. }
            | Self::PhoneUnbound { .. }
            | Self::PhoneRevealed { .. } => json!({}),
        }
    }

    /// The entry as the store keeps it.
    pub fn to_record(&self, at: i64, actor: &Actor, origin: &Origin) -> AuditRecord {
        AuditRecord {
            id: 0,
            at,
            kind: self.event_type().as_str().to_owned(),
            actor_kind: actor.kind().to_owned(),
            actor_id: actor.id(),
            user_id: self.user().cloned(),
            appid: self.appid().cloned(),
            client_ip: origin.client_ip.map(|ip| ip.to_string()),
            user_agent: origin.user_agent.clone(),
            details: self.details().to_string(),
        }
    }
}

/// Appends `event` to the log of the server `state`. Never fails (see the module docs).
pub async fn record(state: &AppState, actor: Actor, origin: &Origin, event: AuditEvent) {
    record_to(
        state.store.as_ref(),
        &state.metrics,
        &state.clock,
        &actor,
        origin,
        &event,
    )
    .await;
}

/// Appends an operator's `event` (the command line: no request it came from, and no server whose
/// metrics would count a failed write; the warning is logged all the same). Never fails.
pub async fn record_for_operator(
    store: &dyn Store,
    clock: &SharedClock,
    actor: &Actor,
    event: AuditEvent,
) {
    record_to(
        store,
        &Metrics::default(),
        clock,
        actor,
        &Origin::none(),
        &event,
    )
    .await;
}

/// Appends `event` to `store` at `clock`'s time (for the command line, which has no server
/// state). Never fails: a store error is logged and counted in `metrics`; returns whether the
/// entry was written.
pub async fn record_to(
    store: &dyn Store,
    metrics: &Metrics,
    clock: &SharedClock,
    actor: &Actor,
    origin: &Origin,
    event: &AuditEvent,
) -> bool {
    let record = event.to_record(clock.unix_millis(), actor, origin);
    match store.append_audit_event(&record).await {
        Ok(()) => true,
        Err(e) => {
            metrics.audit_write_failed();
            tracing::warn!(
                event = record.kind,
                actor = record.actor_kind,
                error = %e,
                "cannot write an audit log entry; the change it records stands"
            );
            false
        }
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
