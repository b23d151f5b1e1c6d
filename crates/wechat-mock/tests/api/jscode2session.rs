//! `/sns/jscode2session`: parameters, code lifetime and single use, risk control, the per-user
//! minute limit, and session_key rotation.

use std::time::Duration;

use wechat_mock::{AppConfig, MockConfig, openid_for, unionid_for};

use crate::helpers::*;

#[tokio::test]
async fn jscode2session_returns_openid_current_session_key_and_unionid() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    assert_eq!(login.openid, openid_for(APPID, "alice"));
    assert_eq!(
        login.unionid.as_deref(),
        Some(unionid_for("demo", "alice").as_str())
    );
    let body = t.code2session(&login.code).await;
    assert_eq!(body["openid"], login.openid);
    assert_eq!(body["unionid"], unionid_for("demo", "alice"));
    let key = body["session_key"].as_str().unwrap();
    assert_eq!(key, t.mock().session_key(APPID, "alice").unwrap());
    assert_eq!(key.len(), 24);
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

#[tokio::test]
async fn jscode2session_without_open_platform_has_no_unionid() {
    let t = TestMock::start().await;
    t.mock()
        .add_app(AppConfig::new("wx00000000000000a1", "secret-a1"));
    let login = t
        .mock()
        .mint_login_code("wx00000000000000a1", "alice")
        .unwrap();
    assert_eq!(login.unionid, None);
    let body = t
        .code2session_for("wx00000000000000a1", "secret-a1", &login.code)
        .await;
    assert_eq!(body["openid"], openid_for("wx00000000000000a1", "alice"));
    assert!(body.get("unionid").is_none(), "{body}");
}

#[tokio::test]
async fn jscode2session_missing_params_are_41002_41004_41008() {
    let t = TestMock::start().await;
    let path = "/sns/jscode2session";
    let grant = ("grant_type", "authorization_code");
    let body = t
        .get(path, &[("secret", SECRET), ("js_code", "x"), grant])
        .await;
    assert_wx_error(&body, 41002, "appid missing");
    let body = t
        .get(
            path,
            &[("appid", ""), ("secret", SECRET), ("js_code", "x"), grant],
        )
        .await;
    assert_wx_error(&body, 41002, "appid missing");
    let body = t
        .get(path, &[("appid", APPID), ("js_code", "x"), grant])
        .await;
    assert_wx_error(&body, 41004, "appsecret missing");
    let body = t
        .get(
            path,
            &[("appid", APPID), ("secret", SECRET), ("jscode", "x"), grant],
        )
        .await;
    assert_wx_error(&body, 41008, "missing code");
}

#[tokio::test]
async fn jscode2session_wrong_grant_type_is_40002() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let query = [
        ("appid", APPID),
        ("secret", SECRET),
        ("js_code", login.code.as_str()),
    ];
    let body = t.get("/sns/jscode2session", &query).await;
    assert_wx_error(&body, 40002, "invalid grant_type");
    let mut with_grant = query.to_vec();
    with_grant.push(("grant_type", "client_credential"));
    let body = t.get("/sns/jscode2session", &with_grant).await;
    assert_wx_error(&body, 40002, "invalid grant_type");
}

#[tokio::test]
async fn jscode2session_unknown_appid_is_40013() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let body = t
        .code2session_for("wx9999999999999999", SECRET, &login.code)
        .await;
    assert_wx_error(&body, 40013, "invalid appid");
}

#[tokio::test]
async fn jscode2session_wrong_secret_is_40125() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let body = t.code2session_for(APPID, "wrong", &login.code).await;
    assert_wx_error(&body, 40125, "invalid appsecret");
    // The code was not used up by the refused call.
    assert!(t.code2session(&login.code).await.get("openid").is_some());
}

#[tokio::test]
async fn jscode2session_unknown_code_is_40029() {
    let t = TestMock::start().await;
    assert_wx_error(
        &t.code2session("083tjT000WK8kM17Dw000FdPPi4tjT0F").await,
        40029,
        "invalid code",
    );
}

#[tokio::test]
async fn jscode2session_code_of_another_app_is_40029() {
    let t = TestMock::start().await;
    t.mock()
        .add_app(AppConfig::new("wx00000000000000a2", "secret-a2"));
    let login = t.login("alice");
    let body = t
        .code2session_for("wx00000000000000a2", "secret-a2", &login.code)
        .await;
    assert_wx_error(&body, 40029, "invalid code");
}

#[tokio::test]
async fn jscode2session_code_expires_after_5_minutes() {
    let t = TestMock::start().await;
    let first = t.login("alice");
    let second = t.login("bob");
    t.advance(300);
    assert!(t.code2session(&first.code).await.get("openid").is_some());
    t.clock.advance(Duration::from_millis(1));
    assert_wx_error(&t.code2session(&second.code).await, 40029, "invalid code");
}

#[tokio::test]
async fn jscode2session_reused_code_is_40163() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    assert!(
        t.code2session(&login.code)
            .await
            .get("session_key")
            .is_some()
    );
    assert_wx_error(&t.code2session(&login.code).await, 40163, "code been used");
    // Once expired, a used code is just invalid.
    t.advance(301);
    assert_wx_error(&t.code2session(&login.code).await, 40029, "invalid code");
}

#[tokio::test]
async fn jscode2session_risky_user_is_40226() {
    let mut config = MockConfig::demo();
    config.apps[0].risky_users = vec!["mallory".into()];
    let t = TestMock::with_config(config).await;
    let login = t.login("mallory");
    assert_wx_error(&t.code2session(&login.code).await, 40226, "code blocked");

    t.mock().set_user_risky(APPID, "mallory", false).unwrap();
    assert!(t.code2session(&login.code).await.get("openid").is_some());

    t.mock().set_user_risky(APPID, "alice", true).unwrap();
    let alice = t.login("alice");
    assert_wx_error(&t.code2session(&alice.code).await, 40226, "code blocked");
}

#[tokio::test]
async fn jscode2session_101st_exchange_within_a_minute_is_45011_and_ok_after_the_window() {
    let t = TestMock::start().await;
    for _ in 0..100 {
        let login = t.login("alice");
        assert!(t.code2session(&login.code).await.get("openid").is_some());
    }
    // Other users have their own budget.
    assert!(
        t.code2session(&t.login("bob").code)
            .await
            .get("openid")
            .is_some()
    );
    let refused = t.login("alice");
    assert_wx_error(
        &t.code2session(&refused.code).await,
        45011,
        "api minute-quota reach limit mustslower retry next minute",
    );
    t.advance(59);
    assert_errcode(&t.code2session(&refused.code).await, 45011);
    t.advance(1);
    // The refused code was not used up.
    assert!(t.code2session(&refused.code).await.get("openid").is_some());
}

#[tokio::test]
async fn jscode2session_session_key_rotates_on_mint_only_after_the_minimum_period() {
    let t = TestMock::start().await;
    let first = t.login("alice");
    let key = t.mock().session_key(APPID, "alice").unwrap();
    let second = t.login("alice");
    assert_eq!(
        t.mock().session_key(APPID, "alice").unwrap(),
        key,
        "too soon to rotate"
    );
    t.advance(299);
    t.login("alice");
    assert_eq!(t.mock().session_key(APPID, "alice").unwrap(), key);
    t.advance(1);
    t.login("alice");
    let rotated = t.mock().session_key(APPID, "alice").unwrap();
    assert_ne!(rotated, key);
    // Codes are exchanged for the key current at exchange time.
    assert_eq!(t.code2session(&first.code).await["session_key"], rotated);
    assert_eq!(t.code2session(&second.code).await["session_key"], rotated);
}

#[tokio::test]
async fn jscode2session_zero_minimum_period_rotates_on_every_mint() {
    let mut config = MockConfig::demo();
    config.session_key_min_rotation = Duration::ZERO;
    let t = TestMock::with_config(config).await;
    t.login("alice");
    let key = t.mock().session_key(APPID, "alice").unwrap();
    t.login("alice");
    let next = t.mock().session_key(APPID, "alice").unwrap();
    assert_ne!(next, key);
    t.login("alice");
    assert_ne!(t.mock().session_key(APPID, "alice").unwrap(), next);
}

#[tokio::test]
async fn openids_are_per_app_and_unionids_shared_by_apps_of_one_open_platform() {
    let t = TestMock::start().await;
    t.mock()
        .add_app(AppConfig::new("wx00000000000000b1", "s-b1").with_open_platform("demo"));
    t.mock()
        .add_app(AppConfig::new("wx00000000000000b2", "s-b2").with_open_platform("other"));
    let demo = t.code2session(&t.login("carol").code).await;
    let login_b1 = t
        .mock()
        .mint_login_code("wx00000000000000b1", "carol")
        .unwrap();
    let b1 = t
        .code2session_for("wx00000000000000b1", "s-b1", &login_b1.code)
        .await;
    let login_b2 = t
        .mock()
        .mint_login_code("wx00000000000000b2", "carol")
        .unwrap();
    let b2 = t
        .code2session_for("wx00000000000000b2", "s-b2", &login_b2.code)
        .await;

    assert_ne!(demo["openid"], b1["openid"]);
    assert_eq!(demo["unionid"], b1["unionid"]);
    assert_ne!(demo["unionid"], b2["unionid"]);
    assert_eq!(b2["unionid"], unionid_for("other", "carol"));
    assert_ne!(demo["session_key"], b1["session_key"], "keys are per app");
    for id in [
        &demo["openid"],
        &demo["unionid"],
        &b1["openid"],
        &b2["unionid"],
    ] {
        let id = id.as_str().unwrap();
        assert_eq!(id.len(), 28);
        assert!(id.starts_with('o'));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }
    // Deterministic across simulator instances.
    let other = TestMock::start().await;
    assert_eq!(
        other.login("carol").openid,
        demo["openid"].as_str().unwrap()
    );
}
