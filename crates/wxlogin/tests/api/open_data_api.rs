//! `/v1/wechat/*` through HTTP with the simulator: open data, rawData signatures, the stored
//! session_key and its refresh with a fresh `wx.login` code.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use serde_json::json;
use wxlogin::domain::{AppId, OpenId};

use crate::helpers::*;

/// WeChat's minimum session_key age before a new `wx.login` code rotates it, plus one second.
const PAST_MIN_ROTATION: Duration = Duration::from_secs(301);

/// Logs `user` in; returns the access token, and remembers the user's session_key as a secret.
async fn signed_in(app: &TestApp, user: &str) -> String {
    let login = app.login(user).await;
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, user).unwrap());
    login["access_token"].as_str().unwrap().to_owned()
}

async fn decrypt(app: &TestApp, token: &str, sealed: &wechat_mock::Encrypted) -> reqwest::Response {
    app.post_authed(
        "/v1/wechat/decrypt",
        token,
        json!({ "encrypted_data": sealed.encrypted_data, "iv": sealed.iv }),
    )
    .await
}

/// Encrypts `plaintext` as WeChat does (AES-128-CBC, PKCS#7) with the user's current session_key,
/// for payloads the simulator would never produce.
fn encrypt_as_wechat(app: &TestApp, user: &str, plaintext: &[u8]) -> wechat_mock::Encrypted {
    let key = app.wx.mock().session_key(DEMO_APPID, user).unwrap();
    let key = STANDARD.decode(key).unwrap();
    let iv: [u8; 16] = rand::random();
    let cipher = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv).unwrap();
    wechat_mock::Encrypted {
        encrypted_data: STANDARD.encode(cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext)),
        iv: STANDARD.encode(iv),
    }
}

/// The sealed session_key stored for `user`'s identity.
async fn stored_key(app: &TestApp, user: &str) -> Option<Vec<u8>> {
    let appid = AppId::parse(DEMO_APPID).unwrap();
    let openid = OpenId::parse(wechat_mock::openid_for(DEMO_APPID, user)).unwrap();
    let identity = app.state.store.find_identity(&appid, &openid).await;
    identity.unwrap().map(|i| i.sealed_session_key)
}

async fn check_session(app: &TestApp, token: &str) -> bool {
    let response = app.get_authed("/v1/wechat/session", token).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["valid"].as_bool().unwrap()
}

#[tokio::test]
async fn decrypt_returns_the_data_and_its_watermark() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "alice").await;
    let data = json!({ "nickName": "微信用户", "gender": 0, "stepInfoList": [{ "step": 100 }] });
    let sealed = app
        .wx
        .mock()
        .encrypt(DEMO_APPID, "alice", data.clone())
        .unwrap();

    let response = decrypt(&app, &token, &sealed).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"], data, "the data object without its watermark");
    assert!(body["data"].get("watermark").is_none());
    assert_eq!(body["watermark"]["appid"], DEMO_APPID);
    assert_eq!(
        body["watermark"]["timestamp"],
        app.wx.clock.shared().unix_secs()
    );
    let key = app.wx.mock().session_key(DEMO_APPID, "alice").unwrap();
    assert!(!body.to_string().contains(&key));
}

#[tokio::test]
async fn malformed_open_data_is_invalid_request_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "bob").await;
    let good = app.wx.mock().encrypt(DEMO_APPID, "bob", json!({})).unwrap();
    let cases = [
        (
            json!({ "encrypted_data": "!!not base64!!", "iv": good.iv }),
            "encrypted_data",
        ),
        (
            json!({ "encrypted_data": good.encrypted_data, "iv": "%%%" }),
            "iv",
        ),
        (
            json!({ "encrypted_data": good.encrypted_data, "iv": STANDARD.encode([0u8; 8]) }),
            "iv",
        ),
        (
            json!({ "encrypted_data": STANDARD.encode([0u8; 15]), "iv": good.iv }),
            "encrypted_data",
        ),
        (
            json!({ "encrypted_data": "", "iv": good.iv }),
            "encrypted_data",
        ),
        (json!({ "iv": good.iv }), "encrypted_data"),
    ];
    for (body, field) in cases {
        let response = app
            .post_authed("/v1/wechat/decrypt", &token, body.clone())
            .await;
        let error = assert_error(response, 400, "invalid_request").await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
}

#[tokio::test]
async fn data_without_a_watermark_is_invalid_request() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "carol").await;
    let sealed = encrypt_as_wechat(&app, "carol", br#"{"nickName":"x"}"#);
    let error = assert_error(decrypt(&app, &token, &sealed).await, 400, "invalid_request").await;
    assert!(error["message"].as_str().unwrap().contains("watermark"));
}

#[tokio::test]
async fn data_stamped_for_another_app_is_watermark_mismatch() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "dave").await;
    let now = app.wx.clock.shared().unix_secs();
    let plaintext = json!({
        "nickName": "x",
        "watermark": { "appid": "wx4f4bc4dec97d474b", "timestamp": now },
    });
    let sealed = encrypt_as_wechat(&app, "dave", plaintext.to_string().as_bytes());
    assert_error(
        decrypt(&app, &token, &sealed).await,
        400,
        "watermark_mismatch",
    )
    .await;
}

#[tokio::test]
async fn data_older_than_the_maximum_age_is_watermark_mismatch() {
    let app = TestApp::spawn_with(|s| s.wechat.open_data_max_age_secs = 600).await;
    let token = signed_in(&app, "erin").await;
    let sealed = app
        .wx
        .mock()
        .encrypt(DEMO_APPID, "erin", json!({ "a": 1 }))
        .unwrap();

    app.wx.clock.advance(Duration::from_secs(600));
    assert_eq!(
        decrypt(&app, &token, &sealed).await.status(),
        200,
        "exactly the maximum age"
    );
    app.wx.clock.advance(Duration::from_secs(1));
    assert_error(
        decrypt(&app, &token, &sealed).await,
        400,
        "watermark_mismatch",
    )
    .await;
}

#[tokio::test]
async fn plaintext_that_is_not_json_is_stale_session_key() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "frank").await;
    let sealed = encrypt_as_wechat(&app, "frank", b"\xff\xfe not json at all");
    assert_error(
        decrypt(&app, &token, &sealed).await,
        422,
        "stale_session_key",
    )
    .await;
}

/// The real-world failure: the client called `wx.login` again, WeChat rotated the key and encrypts
/// with the new one; wxlogin holds the old one until the client sends the fresh code.
#[tokio::test]
async fn a_rotated_session_key_is_stale_until_the_client_sends_a_fresh_code() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "grace").await;
    let old_key = app.wx.mock().session_key(DEMO_APPID, "grace").unwrap();
    assert!(check_session(&app, &token).await);

    app.wx.clock.advance(PAST_MIN_ROTATION);
    let code = app.code_for("grace");
    let new_key = app.wx.mock().session_key(DEMO_APPID, "grace").unwrap();
    assert_ne!(new_key, old_key, "the simulator rotated the key");
    app.remember_secret(new_key.clone());
    let sealed = app
        .wx
        .mock()
        .encrypt(DEMO_APPID, "grace", json!({ "step": 7 }))
        .unwrap();

    let stale = assert_error(
        decrypt(&app, &token, &sealed).await,
        422,
        "stale_session_key",
    )
    .await;
    assert!(!stale.to_string().contains(&new_key) && !stale.to_string().contains(&old_key));
    assert!(
        !check_session(&app, &token).await,
        "WeChat no longer takes the old key"
    );

    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": code }))
        .await;
    assert_eq!(response.status(), 204);

    let response = decrypt(&app, &token, &sealed).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["data"], json!({ "step": 7 }));
    assert!(check_session(&app, &token).await);
}

#[tokio::test]
async fn a_code_of_another_wechat_user_is_identity_mismatch_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "heidi").await;
    let before = stored_key(&app, "heidi").await.unwrap();
    let code = app.code_for("ivan");
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "ivan").unwrap());

    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": code }))
        .await;
    assert_error(response, 409, "identity_mismatch").await;
    assert_eq!(
        stored_key(&app, "heidi").await.unwrap(),
        before,
        "key unchanged"
    );
    assert_eq!(
        stored_key(&app, "ivan").await,
        None,
        "no identity for the other user"
    );
    let sealed = app
        .wx
        .mock()
        .encrypt(DEMO_APPID, "heidi", json!({ "ok": true }))
        .unwrap();
    assert_eq!(decrypt(&app, &token, &sealed).await.status(), 200);
}

#[tokio::test]
async fn a_replayed_session_code_is_invalid_code_without_a_second_exchange() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "judy").await;
    app.wx.clock.advance(PAST_MIN_ROTATION);
    let code = app.code_for("judy");
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "judy").unwrap());

    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": code }))
        .await;
    assert_eq!(response.status(), 204);
    let exchanges = app.wx.calls("jscode2session").await;
    let stored = stored_key(&app, "judy").await;

    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": code }))
        .await;
    assert_error(response, 400, "invalid_code").await;
    assert_eq!(app.wx.calls("jscode2session").await, exchanges);
    assert_eq!(stored_key(&app, "judy").await, stored);

    // One guard for every use of a code: a code that logged in is spent for the session too.
    let login_code = app.code_for("judy");
    let login = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": login_code, "appid": DEMO_APPID }),
        )
        .await;
    assert_eq!(login.status(), 200);
    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": login_code }))
        .await;
    assert_error(response, 400, "invalid_code").await;
    assert_eq!(app.wx.calls("jscode2session").await, exchanges + 1);
}

#[tokio::test]
async fn concurrent_session_requests_with_one_code_share_one_exchange() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "ken").await;
    app.wx.clock.advance(PAST_MIN_ROTATION);
    let code = app.code_for("ken");
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "ken").unwrap());
    let before = app.wx.calls("jscode2session").await;
    // WeChat answers slowly, so all five are in flight together (a later one gets invalid_code).
    app.wx
        .fault(json!({"api": "jscode2session", "latency_ms": 300, "times": 1}))
        .await;
    let responses = futures::future::join_all(
        (0..5).map(|_| app.post_authed("/v1/wechat/session", &token, json!({ "code": code }))),
    )
    .await;
    assert!(responses.iter().all(|r| r.status() == 204));
    assert_eq!(app.wx.calls("jscode2session").await, before + 1);
}

#[tokio::test]
async fn wechat_errors_on_the_session_exchange_map_as_in_login_and_store_nothing() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "leo").await;
    let stored = stored_key(&app, "leo").await;
    app.wx.clock.advance(PAST_MIN_ROTATION);
    for (errcode, status, error) in [
        (40029, 400, "invalid_code"),
        (40226, 403, "login_blocked"),
        (-1, 503, "wechat_unavailable"),
    ] {
        app.wx
            .fault(json!({ "api": "jscode2session", "errcode": errcode, "times": 1 }))
            .await;
        let code = app.code_for("leo");
        let response = app
            .post_authed("/v1/wechat/session", &token, json!({ "code": code }))
            .await;
        assert_error(response, status, error).await;
        assert_eq!(stored_key(&app, "leo").await, stored);
    }
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "leo").unwrap());
    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": "" }))
        .await;
    let error = assert_error(response, 400, "invalid_request").await;
    assert!(error["message"].as_str().unwrap().contains("code"));
}

#[tokio::test]
async fn verify_signature_checks_raw_data_with_the_stored_key() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "mallory").await;
    let raw = r#"{"nickName":"微信用户","gender":0,"avatarUrl":""}"#;
    let signature = app.wx.mock().sign(DEMO_APPID, "mallory", raw).unwrap();
    let verify = async |raw: &str, signature: &str| {
        let response = app
            .post_authed(
                "/v1/wechat/verify-signature",
                &token,
                json!({ "raw_data": raw, "signature": signature }),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        body["valid"].as_bool().unwrap()
    };
    assert!(verify(raw, &signature).await);
    assert!(verify(raw, &signature.to_uppercase()).await);
    assert!(!verify(&format!("{raw} "), &signature).await);
    assert!(!verify(raw, "not hex").await);
    assert!(!verify(raw, &"0".repeat(40)).await);
}

#[tokio::test]
async fn a_rejected_access_token_is_refreshed_once_for_check_session() {
    let app = TestApp::spawn().await;
    let token = signed_in(&app, "niaj").await;
    assert!(check_session(&app, &token).await);
    let fetches = app.wx.calls("stable_token").await;
    let checks = app.wx.calls("checksession").await;

    app.wx
        .fault(json!({ "api": "checksession", "errcode": 40001, "times": 1 }))
        .await;
    assert!(check_session(&app, &token).await);
    assert_eq!(app.wx.calls("stable_token").await, fetches + 1);
    assert_eq!(app.wx.calls("checksession").await, checks + 2);
}

#[tokio::test]
async fn every_wechat_endpoint_requires_a_token() {
    let app = TestApp::spawn().await;
    let body =
        json!({ "encrypted_data": "", "iv": "", "raw_data": "", "signature": "", "code": "" });
    for path in [
        "/v1/wechat/decrypt",
        "/v1/wechat/verify-signature",
        "/v1/wechat/session",
    ] {
        assert_error(
            app.post_json(path, body.clone()).await,
            401,
            "invalid_token",
        )
        .await;
    }
    let response = app
        .http
        .get(app.url("/v1/wechat/session"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
    let response = app.get_authed("/v1/wechat/session", "not.a.token").await;
    assert_error(response, 401, "invalid_token").await;
}
