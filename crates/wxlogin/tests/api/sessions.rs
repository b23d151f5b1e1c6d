use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::*;

async fn refresh(app: &TestApp, token: &serde_json::Value) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

#[tokio::test]
async fn refresh_rotates_and_the_new_pair_works() {
    let app = TestApp::spawn().await;
    let login = app.login("alice").await;
    let response = refresh(&app, &login["refresh_token"]).await;
    assert_eq!(response.status(), 200);
    let pair: serde_json::Value = response.json().await.unwrap();
    assert_ne!(pair["refresh_token"], login["refresh_token"]);
    assert_eq!(pair["user"]["is_new"], false);
    assert_eq!(pair["user"]["id"], login["user"]["id"]);
    assert_eq!(pair["expires_in"], 900);
    let me = app
        .get_authed("/v1/me", pair["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);
    assert_eq!(refresh(&app, &pair["refresh_token"]).await.status(), 200);
}

#[tokio::test]
async fn a_replay_within_the_grace_window_gets_a_fresh_pair() {
    let app = TestApp::spawn().await;
    let login = app.login("bob").await;
    let first: serde_json::Value = refresh(&app, &login["refresh_token"])
        .await
        .json()
        .await
        .unwrap();
    app.wx.clock.advance(Duration::from_secs(29));
    let replay = refresh(&app, &login["refresh_token"]).await;
    assert_eq!(replay.status(), 200, "a response lost on a flaky network");
    let second: serde_json::Value = replay.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    // One chain: the replay's token and the first one are siblings, and using one retires the
    // other (`refresh_chain.rs` has every interleaving).
    assert_eq!(refresh(&app, &second["refresh_token"]).await.status(), 200);
    assert_error(
        refresh(&app, &first["refresh_token"]).await,
        401,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn a_reuse_after_the_grace_window_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let login = app.login("carol").await;
    let rotated: serde_json::Value = refresh(&app, &login["refresh_token"])
        .await
        .json()
        .await
        .unwrap();
    app.wx.clock.advance(Duration::from_secs(31));
    assert_error(
        refresh(&app, &login["refresh_token"]).await,
        401,
        "invalid_grant",
    )
    .await;
    // The thief's and the owner's newest tokens die with it, and so does the access token.
    assert_error(
        refresh(&app, &rotated["refresh_token"]).await,
        401,
        "invalid_grant",
    )
    .await;
    let me = app
        .get_authed("/v1/me", rotated["access_token"].as_str().unwrap())
        .await;
    assert_error(me, 401, "invalid_token").await;
    // Other sessions of the user are untouched.
    let other = app.login("carol").await;
    assert_eq!(refresh(&app, &other["refresh_token"]).await.status(), 200);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_succeed_within_the_grace() {
    let app = TestApp::spawn().await;
    let login = app.login("dave").await;
    let responses =
        futures::future::join_all((0..5).map(|_| refresh(&app, &login["refresh_token"]))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
}

#[tokio::test]
async fn unknown_malformed_and_expired_refresh_tokens_are_invalid_grant() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_ttl_secs = 3_600).await;
    let login = app.login("erin").await;
    assert_error(
        refresh(&app, &json!("nonsense")).await,
        401,
        "invalid_grant",
    )
    .await;
    assert_error(
        refresh(&app, &json!(format!("wxr_{}", "A".repeat(43)))).await,
        401,
        "invalid_grant",
    )
    .await;
    assert_error(
        app.post_json("/v1/auth/refresh", json!({})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        app.post_json("/v1/auth/refresh", json!({ "refresh_token": 7 }))
            .await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(login["refresh_expires_in"], 3_600);
    app.wx.clock.advance(Duration::from_secs(3_601));
    assert_error(
        refresh(&app, &login["refresh_token"]).await,
        401,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn logout_takes_effect_at_once_for_access_and_refresh_tokens() {
    let app = TestApp::spawn().await;
    let login = app.login("frank").await;
    let other = app.login("frank").await;
    let access = login["access_token"].as_str().unwrap();
    let response = app
        .http
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_error(app.get_authed("/v1/me", access).await, 401, "invalid_token").await;
    assert_error(
        refresh(&app, &login["refresh_token"]).await,
        401,
        "invalid_grant",
    )
    .await;
    // Only this device.
    assert_eq!(
        app.get_authed("/v1/me", other["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let third = app.login("frank").await;
    let response = app
        .http
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(third["access_token"].as_str().unwrap())
        .json(&json!({ "all_devices": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for session in [&other, &third] {
        assert_error(
            app.get_authed("/v1/me", session["access_token"].as_str().unwrap())
                .await,
            401,
            "invalid_token",
        )
        .await;
        assert_error(
            refresh(&app, &session["refresh_token"]).await,
            401,
            "invalid_grant",
        )
        .await;
    }
    let anonymous = app
        .http
        .post(app.url("/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "invalid_token").await;
    let bad_body = app
        .http
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(app.login("frank").await["access_token"].as_str().unwrap())
        .header("content-type", "application/json")
        .body("{\"all_devices\": \"yes\"}")
        .send()
        .await
        .unwrap();
    assert_error(bad_body, 400, "invalid_request").await;
}

#[tokio::test]
async fn me_returns_the_profile() {
    let app = TestApp::spawn().await;
    let login = app.login("grace").await;
    let me: serde_json::Value = app
        .get_authed("/v1/me", login["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], login["user"]["id"]);
    assert_eq!(me["nickname"], serde_json::Value::Null);
    assert_eq!(me["phone"], serde_json::Value::Null);
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));
}

fn forge(token: &str, edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    };
    let (mut header, mut claims) = (decode(parts[0]), decode(parts[1]));
    edit(&mut header, &mut claims);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn expired_forged_and_foreign_access_tokens_are_401() {
    let app = TestApp::spawn().await;
    let login = app.login("heidi").await;
    let token = login["access_token"].as_str().unwrap().to_owned();
    let keyring = app.state.tokens.keyring();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();

    let mut refused = vec![
        (
            "tampered",
            forge(&token, |_, c| {
                c["sub"] = "u_01J00000000000000000000000".into()
            }),
        ),
        ("alg none", {
            let unsigned = forge(&token, |h, _| h["alg"] = "none".into());
            format!("{}.", unsigned.rsplit_once('.').unwrap().0)
        }),
        (
            "unknown kid",
            forge(&token, |h, _| h["kid"] = "not-a-key".into()),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    // HS256 keyed with the public JWK.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(keyring.current().kid().into());
    let public = serde_json::to_vec(keyring.current().public_jwk()).unwrap();
    refused.push((
        "HS256 with the public key",
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&public),
        )
        .unwrap(),
    ));
    // Properly signed with the server's own key, for another audience or issuer.
    for (name, edit) in [("wrong aud", "aud"), ("wrong iss", "iss")] {
        let mut settings = app.state.tokens.settings().clone();
        if edit == "aud" {
            settings.audience = "another-service".into();
        } else {
            settings.issuer = "https://evil.example.com".into();
        }
        let other = wxlogin::tokens::TokenService::new(settings, (*keyring).clone());
        let user = wxlogin::domain::UserId::parse(claims["sub"].as_str().unwrap()).unwrap();
        let sid = wxlogin::domain::SessionId::parse(claims["sid"].as_str().unwrap()).unwrap();
        let appid = wxlogin::domain::AppId::parse(DEMO_APPID).unwrap();
        refused.push((
            name,
            other
                .issue(&user, &sid, &appid, app.state.now_secs())
                .unwrap()
                .token,
        ));
    }
    for (name, forged) in refused {
        let response = app.get_authed("/v1/me", &forged).await;
        assert_eq!(response.status(), 401, "{name}");
        assert_error(response, 401, "invalid_token").await;
    }
    for header in ["Basic abc", "Bearer", "Bearer ", "token"] {
        let response = app
            .http
            .get(app.url("/v1/me"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "invalid_token").await;
    }
    assert_error(
        app.http.get(app.url("/v1/me")).send().await.unwrap(),
        401,
        "invalid_token",
    )
    .await;

    assert_eq!(app.get_authed("/v1/me", &token).await.status(), 200);
    app.wx.clock.advance(Duration::from_secs(900 + 30));
    let expired = app.get_authed("/v1/me", &token).await;
    assert_eq!(
        expired.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_error(expired, 401, "invalid_token").await;
}
