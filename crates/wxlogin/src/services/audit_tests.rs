//! The audit events' stored form, the actor and origin rules.
#![allow(clippy::unwrap_used)]
use super::*;

fn user() -> UserId {
    UserId::parse("u_01JD0000000000000000000000").unwrap()
}

fn appid() -> AppId {
    AppId::parse("wx0000000000000001").unwrap()
}

fn admin() -> AdminName {
    AdminName::parse("ops.bob").unwrap()
}

fn session() -> SessionId {
    SessionId::parse("s_01JD0000000000000000000000").unwrap()
}

/// One event of every type, with its stored type, user, app and details.
fn every_event() -> Vec<(AuditEvent, &'static str, bool, bool, Value)> {
    let (u, a, s) = (user(), appid(), session());
    vec![
        (
            AuditEvent::Login {
                user: u.clone(),
                appid: a.clone(),
                new: true,
            },
            "login",
            true,
            true,
            json!({"outcome": "new"}),
        ),
        (
            AuditEvent::Registration {
                user: u.clone(),
                appid: a.clone(),
                policy: Registration::PhoneRequired,
                new: true,
            },
            "registration",
            true,
            true,
            json!({"policy": "phone_required", "new": true}),
        ),
        (
            AuditEvent::IdentityLinked {
                user: u.clone(),
                appid: a.clone(),
                via: LinkedBy::Unionid,
            },
            "identity_linked",
            true,
            true,
            json!({"via": "unionid"}),
        ),
        (
            AuditEvent::PhoneBound {
                user: u.clone(),
                appid: a.clone(),
                changed: true,
                country_code: "86".into(),
            },
            "phone_bound",
            true,
            true,
            json!({"changed": true, "country_code": "86"}),
        ),
        (
            AuditEvent::ProfileChanged {
                user: u.clone(),
                appid: a.clone(),
                field: ProfileField::Avatar,
                cleared: false,
            },
            "profile_changed",
            true,
            true,
            json!({"field": "avatar", "cleared": false}),
        ),
        (
            AuditEvent::RefreshReuseDetected {
                user: u.clone(),
                appid: a.clone(),
                session: s.clone(),
            },
            "refresh_reuse_detected",
            true,
            true,
            json!({"session": s.as_str(), "session_revoked": true}),
        ),
        (
            AuditEvent::Logout {
                user: u.clone(),
                appid: a.clone(),
                session: s.clone(),
            },
            "logout",
            true,
            true,
            json!({"session": s.as_str()}),
        ),
        (
            AuditEvent::LogoutAll {
                user: u.clone(),
                appid: a.clone(),
                sessions: 3,
            },
            "logout_all",
            true,
            true,
            json!({"sessions": 3}),
        ),
        (
            AuditEvent::WechatTokenInvalidated { appid: a.clone() },
            "wechat_token_invalidated",
            false,
            true,
            json!({}),
        ),
        (
            AuditEvent::WechatTokenRefreshed { appid: a.clone() },
            "wechat_token_refreshed",
            false,
            true,
            json!({}),
        ),
        (
            AuditEvent::UsersImported {
                created: 2,
                existing: 1,
                duplicates: 0,
            },
            "users_imported",
            false,
            false,
            json!({"created": 2, "existing": 1, "duplicates": 0}),
        ),
        (
            AuditEvent::UserBanned {
                user: u.clone(),
                sessions: 2,
                reason: None,
            },
            "user_banned",
            true,
            false,
            json!({"sessions_revoked": 2}),
        ),
        (
            AuditEvent::PhoneUnbound { user: u.clone() },
            "phone_unbound",
            true,
            false,
            json!({}),
        ),
        (
            AuditEvent::PhoneRevealed { user: u.clone() },
            "phone_revealed",
            true,
            false,
            json!({}),
        ),
        (
            AuditEvent::UserUnbanned { user: u.clone() },
            "user_unbanned",
            true,
            false,
            json!({}),
        ),
        (
            AuditEvent::SessionRevoked {
                user: Some(u.clone()),
                session: s.clone(),
            },
            "session_revoked",
            true,
            false,
            json!({"session": s.as_str()}),
        ),
        (
            AuditEvent::UserSessionsRevoked {
                user: u.clone(),
                sessions: 4,
            },
            "user_sessions_revoked",
            true,
            false,
            json!({"sessions": 4}),
        ),
        (
            AuditEvent::KeyRotated {
                key: KeyKind::Signing,
                kid: "k1".into(),
            },
            "key_rotated",
            false,
            false,
            json!({"key": "signing", "kid": "k1"}),
        ),
        (
            AuditEvent::KeyRetired {
                key: KeyKind::Sealing,
                kid: "k0".into(),
            },
            "key_retired",
            false,
            false,
            json!({"key": "sealing", "kid": "k0"}),
        ),
        (
            AuditEvent::AdminAdded {
                admin: admin(),
                role: AdminRole::Owner,
            },
            "admin_added",
            false,
            false,
            json!({"admin": "ops.bob", "role": "owner"}),
        ),
        (
            AuditEvent::AdminRemoved {
                admin: admin(),
                role: AdminRole::Viewer,
            },
            "admin_removed",
            false,
            false,
            json!({"admin": "ops.bob", "role": "viewer"}),
        ),
        (
            AuditEvent::AdminPasswordReset {
                admin: admin(),
                unlocked: true,
            },
            "admin_password_reset",
            false,
            false,
            json!({"admin": "ops.bob", "unlocked": true}),
        ),
        (
            AuditEvent::AdminTotpEnrolled {
                admin: admin(),
                replaced: false,
            },
            "admin_totp_enrolled",
            false,
            false,
            json!({"admin": "ops.bob", "replaced": false}),
        ),
        (
            AuditEvent::AdminSignedIn { admin: admin() },
            "admin_signed_in",
            false,
            false,
            json!({"admin": "ops.bob"}),
        ),
        (
            AuditEvent::AdminSignInFailed {
                admin: admin(),
                step: SignInStep::Totp,
                locked: true,
            },
            "admin_sign_in_failed",
            false,
            false,
            json!({"admin": "ops.bob", "step": "totp", "locked": true}),
        ),
        (
            AuditEvent::AdminSignedOut { admin: admin() },
            "admin_signed_out",
            false,
            false,
            json!({"admin": "ops.bob"}),
        ),
    ]
}

#[test]
fn every_event_serialises_to_its_type_subject_and_details() {
    let events = every_event();
    assert_eq!(events.len(), EventType::ALL.len(), "one example per type");
    let origin = Origin::new(Some("203.0.113.9".parse().unwrap()), Some("ua"));
    for (event, kind, has_user, has_app, details) in events {
        let record = event.to_record(1_700_000_000_000, &Actor::System, &origin);
        assert_eq!(record.kind, kind);
        assert_eq!(EventType::parse(kind).unwrap(), event.event_type());
        assert_eq!(record.user_id.is_some(), has_user, "{kind}");
        assert_eq!(record.appid.is_some(), has_app, "{kind}");
        let parsed: Value = serde_json::from_str(&record.details).unwrap();
        assert_eq!(parsed, details, "{kind}");
        assert_eq!(record.client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(record.actor_kind, "system");
        assert_eq!(record.actor_id, None);
    }
}

#[test]
fn actors_are_stored_by_kind_and_id() {
    let origin = Origin::none();
    let event = AuditEvent::UserUnbanned { user: user() };
    for (actor, kind, id) in [
        (
            Actor::User(user()),
            "user",
            Some(user().as_str().to_owned()),
        ),
        (
            Actor::Service("billing".into()),
            "service",
            Some("billing".into()),
        ),
        (Actor::Admin("alice".into()), "admin", Some("alice".into())),
    ] {
        let record = event.to_record(0, &actor, &origin);
        assert_eq!((record.actor_kind.as_str(), record.actor_id), (kind, id));
    }
}

#[test]
fn an_unknown_type_lists_the_valid_ones() {
    let error = EventType::parse("logins").unwrap_err();
    for t in EventType::ALL {
        assert!(error.contains(t.as_str()), "{error}");
    }
}

#[test]
fn the_cli_actor_comes_from_the_flag_then_the_os_user_then_cli() {
    assert_eq!(
        Actor::cli(Some(" ops-bob "), Some("root")).unwrap(),
        Actor::Admin("ops-bob".into())
    );
    assert_eq!(
        Actor::cli(None, Some("root")).unwrap(),
        Actor::Admin("root".into())
    );
    assert_eq!(Actor::cli(None, None).unwrap(), Actor::Admin("cli".into()));
    assert_eq!(
        Actor::cli(None, Some("")).unwrap(),
        Actor::Admin("cli".into())
    );
    assert!(Actor::cli(Some(""), None).is_err());
    assert!(Actor::cli(Some("a\nb"), None).is_err());
    assert!(Actor::cli(Some(&"x".repeat(65)), None).is_err());
}

#[test]
fn user_agents_are_cut_and_cleaned() {
    let long = "a".repeat(1000);
    let origin = Origin::new(None, Some(&long));
    assert_eq!(
        origin.user_agent.unwrap().chars().count(),
        USER_AGENT_MAX_CHARS
    );
    let origin = Origin::new(None, Some("Mozilla\r\n\u{7}x"));
    assert_eq!(origin.user_agent.as_deref(), Some("Mozillax"));
    assert_eq!(Origin::new(None, Some("  ")).user_agent, None);
}

#[test]
fn a_ban_reason_goes_into_the_details() {
    let event = AuditEvent::UserBanned {
        user: user(),
        sessions: 0,
        reason: Some("spam".into()),
    };
    assert_eq!(
        event.details(),
        json!({"sessions_revoked": 0, "reason": "spam"})
    );
}
