//! Phone numbers: `POST /v1/me/phone` (getPhoneNumber code or legacy encrypted data), `phone_code`
//! on login, masking, `phone_in_use`, the full number for internal services.

use serde_json::json;

use crate::helpers::*;

const ALICE_PHONE: &str = "13800138000";

fn access(login: &serde_json::Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

async fn bind(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.post_authed("/v1/me/phone", token, body).await
}

/// Binds `number` with a phone code minted for `user`, as the getPhoneNumber button would.
async fn bind_number(app: &TestApp, token: &str, user: &str, number: &str) -> reqwest::Response {
    bind(
        app,
        token,
        json!({ "code": app.phone_code_for(user, number) }),
    )
    .await
}

#[tokio::test]
async fn a_phone_code_binds_the_number_shown_masked_to_the_user_and_in_full_to_services() {
    let app = TestApp::spawn().await;
    let login = app.login("alice").await;
    assert_eq!(login["user"]["phone"], json!(null));
    let token = access(&login);

    let code = app.phone_code_for("alice", ALICE_PHONE);
    let response = bind(&app, &token, json!({ "code": code })).await;
    assert_eq!(response.status(), 200);
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        me["phone"],
        json!({ "masked": "138****8000", "country_code": "86" })
    );
    assert!(!me.to_string().contains(ALICE_PHONE));

    let me: serde_json::Value = app.get_authed("/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["phone"]["masked"], "138****8000");
    let again = app.login("alice").await;
    assert_eq!(again["user"]["phone"]["masked"], "138****8000");

    let user = app.internal_user(me["id"].as_str().unwrap()).await;
    assert_eq!(
        user["phone"],
        json!({ "e164": "+8613800138000", "country_code": "86", "number": ALICE_PHONE })
    );
    // The phone code is single use: WeChat refuses it the second time.
    let reused = bind(&app, &token, json!({ "code": code })).await;
    assert_error(reused, 400, "invalid_code").await;
    assert_eq!(app.wx.calls("getuserphonenumber").await, 2);
}

#[tokio::test]
async fn legacy_encrypted_phone_data_is_decrypted_with_the_stored_session_key() {
    let app = TestApp::spawn().await;
    let token = access(&app.login("alice").await);
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "alice").unwrap());
    let sealed = app
        .wx
        .mock()
        .encrypt(
            DEMO_APPID,
            "alice",
            json!({ "phoneNumber": "+85261234567", "purePhoneNumber": "61234567", "countryCode": "852" }),
        )
        .unwrap();
    let response = bind(
        &app,
        &token,
        json!({ "encrypted_data": sealed.encrypted_data, "iv": sealed.iv }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        me["phone"],
        json!({ "masked": "61****567", "country_code": "852" })
    );
    assert_eq!(app.wx.calls("getuserphonenumber").await, 0);

    // Other open data is not a phone number.
    let user_info = app
        .wx
        .mock()
        .encrypt(DEMO_APPID, "alice", json!({ "nickName": "A" }))
        .unwrap();
    let response = bind(
        &app,
        &token,
        json!({ "encrypted_data": user_info.encrypted_data, "iv": user_info.iv }),
    )
    .await;
    assert_error(response, 400, "invalid_request").await;

    // Data sealed with a key the server no longer holds (the client called wx.login again and
    // WeChat rotated the key): 422, then the documented recovery.
    app.wx.clock.advance(std::time::Duration::from_secs(301));
    let fresh = app.code_for("alice");
    app.remember_secret(app.wx.mock().session_key(DEMO_APPID, "alice").unwrap());
    let sealed = app
        .wx
        .mock()
        .encrypt(
            DEMO_APPID,
            "alice",
            json!({ "phoneNumber": "13900139000", "purePhoneNumber": "13900139000", "countryCode": "86" }),
        )
        .unwrap();
    let body = json!({ "encrypted_data": sealed.encrypted_data, "iv": sealed.iv });
    assert_error(
        bind(&app, &token, body.clone()).await,
        422,
        "stale_session_key",
    )
    .await;
    let me: serde_json::Value = app.get_authed("/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["phone"]["country_code"], "852", "nothing changed");
    let response = app
        .post_authed("/v1/wechat/session", &token, json!({ "code": fresh }))
        .await;
    assert_eq!(response.status(), 204);
    let me: serde_json::Value = bind(&app, &token, body).await.json().await.unwrap();
    assert_eq!(me["phone"]["masked"], "139****9000");
}

#[tokio::test]
async fn a_number_bound_to_another_account_is_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let alice = access(&app.login("alice").await);
    let bob = access(&app.login("bob").await);
    let response = bind_number(&app, &alice, "alice", ALICE_PHONE).await;
    assert_eq!(response.status(), 200);

    let response = bind_number(&app, &bob, "bob", ALICE_PHONE).await;
    assert_error(response, 409, "phone_in_use").await;
    let me: serde_json::Value = app.get_authed("/v1/me", &bob).await.json().await.unwrap();
    assert_eq!(me["phone"], json!(null));

    // Binding one's own number again is fine; a new number replaces the old one.
    let response = bind_number(&app, &alice, "alice", ALICE_PHONE).await;
    assert_eq!(response.status(), 200);
    let response = bind_number(&app, &alice, "alice", "13900139000").await;
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(me["phone"]["masked"], "139****9000");
    // Alice's old number is free again.
    let response = bind_number(&app, &bob, "bob", ALICE_PHONE).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn phone_code_on_login_binds_in_the_same_round_trip() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({
                "code": app.code_for("alice"),
                "phone_code": app.phone_code_for("alice", ALICE_PHONE),
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let login: serde_json::Value = response.json().await.unwrap();
    assert_eq!(login["user"]["is_new"], true);
    assert_eq!(login["user"]["phone"]["masked"], "138****8000");

    // An existing user binds on login too.
    app.login("bob").await;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({
                "code": app.code_for("bob"),
                "phone_code": app.phone_code_for("bob", "13900139000"),
            }),
        )
        .await;
    let login: serde_json::Value = response.json().await.unwrap();
    assert_eq!(login["user"]["is_new"], false);
    assert_eq!(login["user"]["phone"]["masked"], "139****9000");
}

#[tokio::test]
async fn a_new_user_whose_number_is_taken_is_not_created() {
    let app = TestApp::spawn().await;
    let alice = access(&app.login("alice").await);
    let response = bind_number(&app, &alice, "alice", ALICE_PHONE).await;
    assert_eq!(response.status(), 200);

    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({
                "code": app.code_for("carol"),
                "phone_code": app.phone_code_for("carol", ALICE_PHONE),
            }),
        )
        .await;
    assert_error(response, 409, "phone_in_use").await;
    // Nothing was written for carol: her next plain login creates her.
    assert_eq!(app.login("carol").await["user"]["is_new"], true);
}

#[tokio::test]
async fn bad_phone_requests_get_their_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let token = access(&app.login("alice").await);
    let cases = [
        (json!({}), 400, "invalid_request"),
        (json!({ "code": "" }), 400, "invalid_request"),
        (json!({ "code": "x y" }), 400, "invalid_request"),
        (json!({ "encrypted_data": "abc" }), 400, "invalid_request"),
        (json!({ "iv": "abc" }), 400, "invalid_request"),
        (
            json!({ "code": "c0de0c0de0c0de", "encrypted_data": "abc", "iv": "abc" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "encrypted_data": "!!!", "iv": "AAAAAAAAAAAAAAAAAAAAAA==" }),
            400,
            "invalid_request",
        ),
        (
            json!({ "encrypted_data": "AAAA", "iv": "AAAA" }),
            400,
            "invalid_request",
        ),
        (json!({ "code": 42 }), 400, "invalid_request"),
        (json!({ "code": "abc", "extra": 1 }), 400, "invalid_request"),
        // A wx.login code where a phone code belongs: WeChat refuses it (40029).
        (
            json!({ "code": app.code_for("alice") }),
            400,
            "invalid_code",
        ),
    ];
    for (body, status, code) in cases {
        let response = bind(&app, &token, body.clone()).await;
        let error = assert_error(response, status, code).await;
        assert!(!error["message"].as_str().unwrap().is_empty(), "{body}");
    }
    let me: serde_json::Value = app.get_authed("/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["phone"], json!(null));
    let response = app
        .http
        .post(app.url("/v1/me/phone"))
        .json(&json!({ "code": app.phone_code_for("alice", ALICE_PHONE) }))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;
}
