use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn login_creates_the_user_once_and_returns_the_contract_shape() {
    let app = TestApp::spawn().await;
    let body = app.login("alice").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 2_592_000);
    assert!(body["refresh_token"].as_str().unwrap().starts_with("wxr_"));
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    let user = &body["user"];
    assert!(user["id"].as_str().unwrap().starts_with("u_"));
    assert_eq!(user["is_new"], true);
    assert_eq!(user["nickname"], serde_json::Value::Null);
    assert_eq!(user["avatar_url"], serde_json::Value::Null);
    assert_eq!(user["phone"], serde_json::Value::Null);
    let text = body.to_string();
    assert!(
        !text.contains(&wechat_mock::openid_for(DEMO_APPID, "alice")),
        "no openid"
    );
    assert!(!text.contains(&app.wx.mock().session_key(DEMO_APPID, "alice").unwrap()));

    let again = app.login("alice").await;
    assert_eq!(again["user"]["id"], user["id"]);
    assert_eq!(again["user"]["is_new"], false);
    assert_ne!(again["refresh_token"], body["refresh_token"]);
}

#[tokio::test]
async fn appid_may_be_omitted_when_one_app_is_served() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("bob") }),
        )
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_session_key_is_sealed_at_rest_and_replaced_on_every_login() {
    let app = TestApp::spawn().await;
    app.login("carol").await;
    let appid = wxlogin::domain::AppId::parse(DEMO_APPID).unwrap();
    let openid =
        wxlogin::domain::OpenId::parse(wechat_mock::openid_for(DEMO_APPID, "carol")).unwrap();
    let first = app
        .state
        .store
        .find_identity(&appid, &openid)
        .await
        .unwrap()
        .unwrap();
    let key = app.wx.mock().session_key(DEMO_APPID, "carol").unwrap();
    assert!(
        !first
            .sealed_session_key
            .windows(key.len())
            .any(|w| w == key.as_bytes())
    );
    let opened = app
        .state
        .sealing
        .open(&first.sealed_session_key, DEMO_APPID, openid.as_str())
        .unwrap();
    assert_eq!(opened.expose_secret(), key);

    app.wx.clock.advance(std::time::Duration::from_secs(301));
    app.login("carol").await;
    let second = app
        .state
        .store
        .find_identity(&appid, &openid)
        .await
        .unwrap()
        .unwrap();
    let rotated = app.wx.mock().session_key(DEMO_APPID, "carol").unwrap();
    assert_ne!(rotated, key, "the simulator rotated the key");
    let opened = app
        .state
        .sealing
        .open(&second.sealed_session_key, DEMO_APPID, openid.as_str())
        .unwrap();
    assert_eq!(opened.expose_secret(), rotated);
}

#[tokio::test]
async fn fifty_concurrent_logins_with_one_code_make_one_wechat_call_and_one_user() {
    let app = TestApp::spawn().await;
    let code = app.code_for("dave");
    // WeChat answers slowly, so all fifty are in flight together (a later one gets invalid_code).
    app.wx
        .fault(json!({"api": "jscode2session", "latency_ms": 300, "times": 1}))
        .await;
    let responses = futures::future::join_all((0..50).map(|_| {
        app.post_json(
            "/v1/auth/wechat/login",
            json!({ "code": code, "appid": DEMO_APPID }),
        )
    }))
    .await;
    let mut users = HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        users.insert(body["user"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(users.len(), 1);
    assert_eq!(app.wx.calls("jscode2session").await, 1);

    // A later duplicate within five minutes never reaches WeChat.
    let late = app
        .post_json("/v1/auth/wechat/login", json!({ "code": code }))
        .await;
    assert_error(late, 400, "invalid_code").await;
    assert_eq!(app.wx.calls("jscode2session").await, 1);
}

#[tokio::test]
async fn racing_first_logins_of_one_new_user_create_one_user() {
    let app = TestApp::spawn().await;
    let codes: Vec<String> = (0..8).map(|_| app.code_for("erin")).collect();
    let responses = futures::future::join_all(
        codes
            .iter()
            .map(|code| app.post_json("/v1/auth/wechat/login", json!({ "code": code }))),
    )
    .await;
    let mut users = HashSet::new();
    let mut new_count = 0;
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        users.insert(body["user"]["id"].as_str().unwrap().to_owned());
        new_count += usize::from(body["user"]["is_new"] == true);
    }
    assert_eq!(users.len(), 1, "one user for one openid");
    assert_eq!(new_count, 1, "exactly one login created it");
}

#[tokio::test]
async fn wechat_refusals_map_to_the_api_codes() {
    let app = TestApp::spawn().await;
    let login = |code: String| app.post_json("/v1/auth/wechat/login", json!({ "code": code }));

    assert_error(
        login("0000000000000000000000000000000A".into()).await,
        400,
        "invalid_code",
    )
    .await;

    let code = app.code_for("frank");
    app.state
        .wechat
        .code2session(
            &wxlogin::domain::AppId::parse(DEMO_APPID).unwrap(),
            &wxlogin::domain::AppSecret::parse(DEMO_SECRET).unwrap(),
            &wxlogin::domain::LoginCode::parse(code.clone()).unwrap(),
        )
        .await
        .unwrap();
    assert_error(login(code).await, 400, "invalid_code").await; // 40163 from WeChat

    app.wx
        .mock()
        .set_user_risky(DEMO_APPID, "mallory", true)
        .unwrap();
    assert_error(login(app.code_for("mallory")).await, 403, "login_blocked").await;

    app.wx
        .fault(json!({"api": "jscode2session", "errcode": 45011, "times": 1}))
        .await;
    assert_error(login(app.code_for("grace")).await, 429, "rate_limited").await;

    app.wx
        .fault(json!({"api": "jscode2session", "errcode": -1, "times": 1}))
        .await;
    assert_error(
        login(app.code_for("grace")).await,
        503,
        "wechat_unavailable",
    )
    .await;

    app.wx
        .fault(json!({"api": "jscode2session", "hang": true, "times": 1}))
        .await;
    assert_error(
        login(app.code_for("grace")).await,
        503,
        "wechat_unavailable",
    )
    .await;

    app.wx
        .fault(json!({"api": "jscode2session", "errcode": 40125, "times": 1}))
        .await;
    let body = assert_error(login(app.code_for("grace")).await, 502, "wechat_error").await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("40125") && message.contains("rid: "),
        "{message}"
    );

    app.wx
        .fault(json!({"api": "jscode2session", "errcode": 61999, "times": 1}))
        .await;
    let body = assert_error(login(app.code_for("grace")).await, 502, "wechat_error").await;
    assert!(body["message"].as_str().unwrap().contains("61999"));

    assert_eq!(login(app.code_for("grace")).await.status(), 200);
}

#[tokio::test]
async fn bad_login_requests_are_400s_naming_the_problem() {
    let app = TestApp::spawn().await;
    let url = app.url("/v1/auth/wechat/login");
    let missing = app
        .post_json("/v1/auth/wechat/login", json!({ "appid": DEMO_APPID }))
        .await;
    let body = assert_error(missing, 400, "invalid_request").await;
    assert!(body["message"].as_str().unwrap().contains("code"), "{body}");

    let body = assert_error(
        app.post_json("/v1/auth/wechat/login", json!({ "code": "bad code!" }))
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("`code`"));

    let body = assert_error(
        app.post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("h"), "appid": "nope" }),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("`appid`"));

    let unknown = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("h"), "appid": "wx00000000000000ff" }),
        )
        .await;
    assert_error(unknown, 404, "unknown_app").await;

    let malformed = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"code\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "invalid_request").await;

    let wrong_type = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(wrong_type, 415, "unsupported_media_type").await;

    let huge = json!({ "code": "x".repeat(70 * 1024) });
    assert_error(
        app.post_json("/v1/auth/wechat/login", huge).await,
        413,
        "payload_too_large",
    )
    .await;

    let extra = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("h"), "nickname": "x" }),
        )
        .await;
    assert_error(extra, 400, "invalid_request").await;
    assert_eq!(
        app.wx.calls("jscode2session").await,
        0,
        "nothing bad reached WeChat"
    );
}

#[tokio::test]
async fn a_banned_user_cannot_log_in_or_use_tokens() {
    let app = TestApp::spawn().await;
    let body = app.login("ivan").await;
    let access = body["access_token"].as_str().unwrap();
    let user = wxlogin::domain::UserId::parse(body["user"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(app.get_authed("/v1/me", access).await.status(), 200);
    // Banned behind the server's back (in the database, announcing nothing): the session state it
    // read is trusted for `tokens.session_cache_ms` (1 s), and no longer.
    app.state
        .store
        .set_user_banned(&user, Some(app.state.now_millis()))
        .await
        .unwrap();
    app.wx.clock.advance(Duration::from_millis(999));
    assert_eq!(app.get_authed("/v1/me", access).await.status(), 200);
    app.wx.clock.advance(Duration::from_millis(1));
    assert_error(app.get_authed("/v1/me", access).await, 401, "invalid_token").await;
    let refreshed = app
        .post_json(
            "/v1/auth/refresh",
            json!({ "refresh_token": body["refresh_token"] }),
        )
        .await;
    assert_error(refreshed, 403, "login_blocked").await;
    let again = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("ivan") }),
        )
        .await;
    assert_error(again, 403, "login_blocked").await;
}
