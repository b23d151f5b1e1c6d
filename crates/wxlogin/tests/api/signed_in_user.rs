//! `GET /v1/me` answers from what the session check read (no read of the user of its own), so these
//! tests hold it to the freshness of that read: every change wxlogin makes shows at once, on every
//! instance that hears of it; one made behind its back within `tokens.session_cache_ms`, never
//! later. No clock moves unless a test says so.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::shared::redis_settings;

fn token(login: &Value) -> &str {
    login["access_token"].as_str().unwrap()
}

fn user_id(login: &Value) -> wxlogin::domain::UserId {
    wxlogin::domain::UserId::parse(login["user"]["id"].as_str().unwrap()).unwrap()
}

async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.get_authed("/v1/me", token).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn patch_nickname(app: &TestApp, token: &str, nickname: &str) {
    let response = app
        .http
        .patch(app.url("/v1/me"))
        .bearer_auth(token)
        .json(&json!({ "nickname": nickname }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Lets the server's trust in what it read run out.
fn pass_session_cache(app: &TestApp) {
    let cache = app.state.settings.tokens.session_cache_ms;
    assert!(cache <= 1_000, "the bound the docs promise");
    app.wx.clock.advance(Duration::from_millis(cache + 1));
}

#[tokio::test]
async fn a_profile_change_shows_on_the_next_get_me_of_every_session() {
    let app = TestApp::spawn().await;
    let phone = app.login("lin").await;
    let laptop = app.login("lin").await;
    for session in [&phone, &laptop] {
        // Read, so that the session and the user are remembered.
        assert!(me(&app, token(session)).await["nickname"].is_null());
    }

    patch_nickname(&app, token(&phone), "Lin").await;
    for session in [&phone, &laptop] {
        assert_eq!(me(&app, token(session)).await["nickname"], "Lin");
    }

    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let upload = app
        .http
        .put(app.url("/v1/me/avatar"))
        .bearer_auth(token(&laptop))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={}", crate::profile::BOUNDARY),
        )
        .body(crate::profile::multipart("file", "image/png", png))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    for session in [&phone, &laptop] {
        assert!(me(&app, token(session)).await["avatar_url"].is_string());
    }

    let bound = app
        .post_authed(
            "/v1/me/phone",
            token(&phone),
            json!({ "code": app.phone_code_for("lin", "13800138000") }),
        )
        .await;
    assert_eq!(bound.status(), 200);
    for session in [&phone, &laptop] {
        assert_eq!(
            me(&app, token(session)).await["phone"]["masked"],
            "138****8000"
        );
    }
}

#[tokio::test]
async fn a_logout_on_all_devices_is_refused_at_once_on_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    let phone = app.login("mei").await;
    let laptop = app.login("mei").await;
    let other = app.login("nora").await;
    for session in [&phone, &laptop, &other] {
        me(&app, token(session)).await;
    }
    let logout = app
        .post_authed(
            "/v1/auth/logout",
            token(&phone),
            json!({ "all_devices": true }),
        )
        .await;
    assert_eq!(logout.status(), 204);
    for session in [&phone, &laptop] {
        assert_error(
            app.get_authed("/v1/me", token(session)).await,
            401,
            "invalid_token",
        )
        .await;
    }
    assert_eq!(me(&app, token(&other)).await["id"], other["user"]["id"]);
}

#[tokio::test]
async fn with_redis_a_ban_is_refused_at_once_on_a_server_that_remembered_the_user() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let app = TestApp::spawn_with(|s| s.redis = redis).await;
    let login = app.login("oscar").await;
    me(&app, token(&login)).await;
    // An operator's ban from another process, as `wxlogin users ban` makes it: written, then
    // announced.
    let user = user_id(&login);
    app.state
        .store
        .set_user_banned(&user, Some(app.state.now_millis()))
        .await
        .unwrap();
    app.state
        .store
        .revoke_user_sessions(&user, app.state.now_millis())
        .await
        .unwrap();
    // Published into Redis, and heard back from it, as every other instance hears it.
    app.state
        .shared
        .events
        .publish(wxlogin::shared::Revocation::User(user))
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..100 {
        if app.get_authed("/v1/me", token(&login)).await.status() == 401 {
            refused = true;
            break;
        }
        // An event crossing Redis: polled, the clock does not move.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the banned user's token still works");
}

#[tokio::test]
async fn a_change_behind_the_servers_back_shows_after_session_cache_ms_and_not_later() {
    let app = TestApp::spawn().await;
    let login = app.login("pia").await;
    patch_nickname(&app, token(&login), "Pia").await;
    assert_eq!(me(&app, token(&login)).await["nickname"], "Pia");
    // In the database, announcing nothing (SQL, or `wxlogin users unbind-phone` without Redis).
    let user = user_id(&login);
    let now = app.state.now_millis();
    assert!(
        app.state
            .store
            .set_nickname(&user, Some("P."), now)
            .await
            .unwrap()
    );
    app.wx.clock.advance(Duration::from_millis(
        app.state.settings.tokens.session_cache_ms - 1,
    ));
    assert_eq!(
        me(&app, token(&login)).await["nickname"],
        "Pia",
        "trusted for tokens.session_cache_ms"
    );
    app.wx.clock.advance(Duration::from_millis(1));
    assert_eq!(me(&app, token(&login)).await["nickname"], "P.");

    // A ban written the same way is refused as late, and no later.
    app.state
        .store
        .set_user_banned(&user, Some(app.state.now_millis()))
        .await
        .unwrap();
    pass_session_cache(&app);
    assert_error(
        app.get_authed("/v1/me", token(&login)).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn without_the_cache_every_get_me_reads_the_database() {
    let app = TestApp::spawn_with(|s| s.tokens.session_cache_ms = 0).await;
    let login = app.login("quinn").await;
    assert!(me(&app, token(&login)).await["nickname"].is_null());
    let now = app.state.now_millis();
    let user = user_id(&login);
    assert!(
        app.state
            .store
            .set_nickname(&user, Some("Q"), now)
            .await
            .unwrap()
    );
    assert_eq!(me(&app, token(&login)).await["nickname"], "Q");
}

#[tokio::test]
async fn with_redis_a_profile_change_on_one_server_shows_on_another_at_once() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let a = TestApp::spawn_with(|s| s.redis = redis).await;
    let issuer = a.state.settings.issuer();
    let b = a.spawn_beside(|s| s.tokens.issuer = Some(issuer)).await;
    let login = a.login("rui").await;
    // B remembers the user, and would for tokens.session_cache_ms; neither clock moves.
    assert!(me(&b, token(&login)).await["nickname"].is_null());
    patch_nickname(&a, token(&login), "Rui").await;
    let mut seen = false;
    for _ in 0..100 {
        if me(&b, token(&login)).await["nickname"] == "Rui" {
            seen = true;
            break;
        }
        // An event crossing Redis: polled, the clock does not move.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "B still shows the old nickname");
}

/// The `X-WX-UnionId` that `GET /v1/auth/verify` answers for `token` (it always names the openid).
async fn unionid_header(app: &TestApp, token: &str) -> Option<String> {
    let response = app.get_authed("/v1/auth/verify", token).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-wx-openid"));
    response
        .headers()
        .get("x-wx-unionid")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The identity headers of `GET /v1/auth/verify` come from the same read: a unionid that a login
/// back-fills shows at once on the instance of the login, on another within
/// `tokens.session_cache_ms`.
#[tokio::test]
async fn a_backfilled_unionid_shows_in_the_identity_headers_at_once_here_and_soon_elsewhere() {
    use wxlogin::domain::{AppId, OpenId, SessionId, UserId};
    use wxlogin::store::{Identity, RefreshToken, Session, User};

    let a = TestApp::spawn().await;
    let issuer = a.state.settings.issuer();
    let b = a.spawn_beside(|s| s.tokens.issuer = Some(issuer)).await;
    // A user whose identity was stored without a unionid (WeChat sends it only in some cases),
    // with a live session.
    let now = a.state.now_millis();
    let appid = AppId::parse(DEMO_APPID).unwrap();
    let user = UserId::generate(a.state.clock.now());
    let openid = OpenId::parse(wechat_mock::openid_for(DEMO_APPID, "tara")).unwrap();
    let stored = User {
        id: user.clone(),
        nickname: None,
        avatar: None,
        created_at: now,
        updated_at: now,
        banned_at: None,
        phone: None,
    };
    let identity = Identity {
        appid: appid.clone(),
        openid,
        unionid: None,
        user_id: user.clone(),
        sealed_session_key: vec![0; 32],
        created_at: now,
        updated_at: now,
    };
    a.state
        .store
        .create_user_with_identity(&stored, &identity)
        .await
        .unwrap();
    let session = Session {
        id: SessionId::generate(a.state.clock.now()),
        user_id: user.clone(),
        appid: appid.clone(),
        created_at: now,
        expires_at: now + 86_400_000,
        revoked_at: None,
        user_agent: None,
        last_used_at: None,
    };
    let first = RefreshToken {
        hash: vec![7; 32],
        session_id: session.id.clone(),
        issued_at: now,
        expires_at: session.expires_at,
        rotated_at: None,
    };
    a.state
        .store
        .create_session(&session, &first)
        .await
        .unwrap();
    let token = a
        .state
        .tokens
        .issue(&user, &session.id, &appid, a.state.now_secs())
        .unwrap()
        .token;
    assert_eq!(unionid_header(&a, &token).await, None);
    assert_eq!(unionid_header(&b, &token).await, None);

    // A login through A: the simulator's answer has the unionid, which A stores.
    let login = a.login("tara").await;
    assert_eq!(login["user"]["id"], user.as_str());
    let expected = wechat_mock::unionid_for(wechat_mock::DEMO_OPEN_PLATFORM, "tara");
    assert_eq!(
        unionid_header(&a, &token).await.as_deref(),
        Some(expected.as_str())
    );
    // B was not told (a login is not announced); it reads again within its trust.
    assert_eq!(unionid_header(&b, &token).await, None);
    pass_session_cache(&b);
    assert_eq!(
        unionid_header(&b, &token).await.as_deref(),
        Some(expected.as_str())
    );
}
