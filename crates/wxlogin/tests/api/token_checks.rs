//! What an access token must satisfy beyond its signature: `nbf`, the session's absolute end, an
//! app still configured; the claims and introspection answers the standards ask for; and the
//! bounds of the token settings.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::*;

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// `claims` signed with the server's current key, with the server's header.
fn sign_as_server(app: &TestApp, claims: &Value) -> String {
    let keyring = app.state.tokens.keyring();
    let key = keyring.current();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid().into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(key.pkcs8()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_not_valid_before_a_later_time_is_refused_until_then() {
    let app = TestApp::spawn().await;
    let login = app.login("nora").await;
    let mut claims = claims_of(login["access_token"].as_str().unwrap());
    let now = app.state.now_secs();

    claims["nbf"] = json!(now + 3_600);
    let early = sign_as_server(&app, &claims);
    assert_error(app.get_authed("/v1/me", &early).await, 401, "invalid_token").await;

    // Within the clock-skew leeway (30 s), as for iat and exp.
    claims["nbf"] = json!(now + 20);
    let skewed = sign_as_server(&app, &claims);
    assert_eq!(app.get_authed("/v1/me", &skewed).await.status(), 200);

    claims["nbf"] = json!("tomorrow");
    let malformed = sign_as_server(&app, &claims);
    assert_error(
        app.get_authed("/v1/me", &malformed).await,
        401,
        "invalid_token",
    )
    .await;

    // The control: the same claims, correctly signed, with nbf in the past.
    claims["nbf"] = json!(now - 5);
    assert_eq!(
        app.get_authed("/v1/me", &sign_as_server(&app, &claims))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn access_tokens_stop_at_the_sessions_absolute_end() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_ttl_secs = 3_600).await;
    let login = app.login("omar").await;
    // Refreshed shortly before the session ends: the access token outlives the session.
    app.wx.clock.advance(Duration::from_secs(3_500));
    let pair: Value = app
        .post_json(
            "/v1/auth/refresh",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let token = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_authed("/v1/me", &token).await.status(), 200);
    app.wx.clock.advance(Duration::from_secs(101));
    let me = app.get_authed("/v1/me", &token).await;
    assert_error(me, 401, "invalid_token").await;
    let verify = app.get_authed("/v1/auth/verify", &token).await;
    assert_error(verify, 401, "invalid_token").await;
}

#[tokio::test]
async fn an_app_removed_from_the_configuration_can_neither_refresh_nor_use_its_tokens() {
    let before = TestApp::spawn().await;
    let login = before.login("pia").await;
    // The same database and keys, restarted with another app configured instead.
    let url = before.state.settings.database_url();
    let sealing = before.state.sealing.clone();
    let after = TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(sealing);
        s.apps = vec![wxlogin::config::AppSettings {
            appid: wxlogin::domain::AppId::parse("wx0000000000000002").unwrap(),
            secret: wxlogin::domain::AppSecret::parse("fedcba9876543210fedcba9876543210").unwrap(),
            registration: wxlogin::config::Registration::Auto,
        }];
    })
    .await;
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(before.get_authed("/v1/me", token).await.status(), 200);
    assert_error(
        after.get_authed("/v1/me", token).await,
        401,
        "invalid_token",
    )
    .await;
    let refresh = after
        .post_json(
            "/v1/auth/refresh",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_error(refresh, 401, "invalid_grant").await;
    let introspection: Value = after
        .http
        .post(after.url("/v1/introspect"))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection, json!({ "active": false }));
}

#[tokio::test]
async fn tokens_carry_client_id_and_introspection_says_bearer() {
    let app = TestApp::spawn().await;
    let login = app.login("quinn").await;
    let token = login["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; and every claim wxlogin had before.
    for claim in [
        "iss",
        "exp",
        "aud",
        "sub",
        "client_id",
        "iat",
        "jti",
        "sid",
        "appid",
    ] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert_eq!(claims["client_id"], DEMO_APPID);
    assert_eq!(claims["appid"], DEMO_APPID);

    let active: Value = app
        .http
        .post(app.url("/v1/introspect"))
        .header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode(format!("{SERVICE_ID}:{SERVICE_SECRET}"))
            ),
        )
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(
        active["token_type"], "Bearer",
        "RFC 7662 uses RFC 6749's token types"
    );
    assert_eq!(active["client_id"], DEMO_APPID);
}

#[test]
fn token_settings_are_bounded() {
    let refused = [
        ("leeway_secs = 301", "tokens.leeway_secs"),
        ("access_ttl_secs = 86401", "tokens.access_ttl_secs"),
        ("access_ttl_secs = 0", "tokens.access_ttl_secs"),
        ("refresh_grace_secs = 301", "tokens.refresh_grace_secs"),
        (
            "refresh_ttl_secs = 100\nrefresh_grace_secs = 50",
            "tokens.refresh_grace_secs",
        ),
        ("keyring_reload_secs = 0", "tokens.keyring_reload_secs"),
        ("keyring_reload_secs = 86401", "tokens.keyring_reload_secs"),
    ];
    for (lines, key) in refused {
        let text = format!("[tokens]\n{lines}\n");
        let err = wxlogin::config::Settings::from_toml_str(&text)
            .expect_err(lines)
            .to_string();
        assert!(err.contains(key), "{lines}: {err}");
        assert!(err.contains("must be"), "{lines}: {err}");
    }
    for lines in [
        "leeway_secs = 300",
        "leeway_secs = 0",
        "access_ttl_secs = 86400",
        "refresh_grace_secs = 300",
        "refresh_grace_secs = 0",
        "refresh_ttl_secs = 100\nrefresh_grace_secs = 49",
        "keyring_reload_secs = 1",
    ] {
        let text = format!("[tokens]\n{lines}\n");
        assert!(
            wxlogin::config::Settings::from_toml_str(&text).is_ok(),
            "{lines}"
        );
    }
}
