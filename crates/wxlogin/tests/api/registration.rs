//! Registration policies (`auto`, `phone_required`, `closed`), `login_ticket` and
//! `POST /v1/auth/wechat/register`, operator imports, and several apps linked by unionid.

use std::time::Duration;

use serde_json::json;
use wechat_mock::AppConfig;
use wxlogin::config::{AppSettings, Registration};
use wxlogin::domain::{AppId, AppSecret};

use crate::helpers::*;

const APP_B: &str = "wx00000000000000b2";
const SECRET_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

async fn with_policy(policy: Registration) -> TestApp {
    TestApp::spawn_with(|s| s.apps[0].registration = policy).await
}

async fn login_response(app: &TestApp, body: serde_json::Value) -> reqwest::Response {
    app.post_json("/v1/auth/wechat/login", body).await
}

async fn refused_with_ticket(app: &TestApp, user: &str, code: &str) -> String {
    let response = login_response(app, json!({ "code": app.code_for(user) })).await;
    let error = assert_error(response, 403, code).await;
    let ticket = error["login_ticket"]
        .as_str()
        .expect("a login ticket")
        .to_owned();
    assert!(ticket.starts_with("wxt_"), "{ticket}");
    app.remember_secret(ticket.clone());
    ticket
}

async fn register(app: &TestApp, ticket: &str, phone_code: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/wechat/register",
        json!({ "login_ticket": ticket, "phone_code": phone_code }),
    )
    .await
}

#[tokio::test]
async fn phone_required_refuses_a_new_user_with_a_ticket_that_register_completes_once() {
    let app = with_policy(Registration::PhoneRequired).await;
    let ticket = refused_with_ticket(&app, "alice", "phone_required").await;
    assert_eq!(app.wx.calls("jscode2session").await, 1);

    let response = register(&app, &ticket, &app.phone_code_for("alice", "13800138000")).await;
    assert_eq!(response.status(), 200);
    let registered: serde_json::Value = response.json().await.unwrap();
    assert_eq!(registered["user"]["is_new"], true);
    assert_eq!(registered["user"]["phone"]["masked"], "138****8000");
    // No second wx.login was needed, and the session works.
    assert_eq!(app.wx.calls("jscode2session").await, 1);
    let me = app
        .get_authed("/v1/me", registered["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);

    // Single use.
    let again = register(&app, &ticket, &app.phone_code_for("alice", "13800138000")).await;
    assert_error(again, 400, "invalid_ticket").await;
    // The user exists now: a plain login is enough.
    let login = app.login("alice").await;
    assert_eq!(login["user"]["is_new"], false);
    assert_eq!(login["user"]["id"], registered["user"]["id"]);
}

#[tokio::test]
async fn phone_required_takes_the_phone_code_on_login_directly() {
    let app = with_policy(Registration::PhoneRequired).await;
    let response = login_response(
        &app,
        json!({ "code": app.code_for("alice"), "phone_code": app.phone_code_for("alice", "13800138000") }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let login: serde_json::Value = response.json().await.unwrap();
    assert_eq!(login["user"]["is_new"], true);
    assert_eq!(login["user"]["phone"]["masked"], "138****8000");
}

#[tokio::test]
async fn a_failed_registration_keeps_the_ticket_until_it_expires() {
    let app = with_policy(Registration::PhoneRequired).await;
    let ticket = refused_with_ticket(&app, "alice", "phone_required").await;
    // A wx.login code where the phone code belongs: WeChat refuses it; the ticket stays usable.
    let wrong = register(&app, &ticket, &app.code_for("alice")).await;
    assert_error(wrong, 400, "invalid_code").await;
    // A number already bound to someone else: refused, never merged; the ticket stays usable.
    let bob = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("bob"), "phone_code": app.phone_code_for("bob", "13900139000") }),
        )
        .await;
    assert_eq!(bob.status(), 200);
    let taken = register(&app, &ticket, &app.phone_code_for("alice", "13900139000")).await;
    assert_error(taken, 409, "phone_in_use").await;

    let ok = register(&app, &ticket, &app.phone_code_for("alice", "13800138000")).await;
    assert_eq!(ok.status(), 200);

    // A ticket lives 5 minutes.
    let late = refused_with_ticket(&app, "carol", "phone_required").await;
    app.wx.clock.advance(Duration::from_secs(301));
    let response = register(&app, &late, &app.phone_code_for("carol", "13700137000")).await;
    assert_error(response, 400, "invalid_ticket").await;
}

#[tokio::test]
async fn bad_register_requests_get_their_4xx() {
    let app = with_policy(Registration::PhoneRequired).await;
    let cases = [
        (json!({}), "invalid_request"),
        (json!({ "login_ticket": "wxt_x" }), "invalid_request"),
        (
            json!({ "login_ticket": "wxt_x", "phone_code": "" }),
            "invalid_request",
        ),
        (
            json!({ "login_ticket": "nonsense", "phone_code": "0123456789abcdef" }),
            "invalid_ticket",
        ),
        (
            json!({ "login_ticket": format!("wxt_{}", "A".repeat(43)), "phone_code": "0123456789abcdef" }),
            "invalid_ticket",
        ),
    ];
    for (body, code) in cases {
        let response = app.post_json("/v1/auth/wechat/register", body).await;
        assert_error(response, 400, code).await;
    }
    assert_eq!(app.wx.calls("getuserphonenumber").await, 0);
}

#[tokio::test]
async fn closed_admits_only_imported_numbers_and_existing_users() {
    let app = with_policy(Registration::Closed).await;
    let report = wxlogin::services::import::import_phones(
        app.state.store.as_ref(),
        "phone\n13800138000\n+852 61234567\n",
        &app.wx.clock.shared(),
    )
    .await
    .unwrap();
    assert_eq!(report.created, 2);

    // Unknown WeChat user, no phone: refused, with a ticket to try a phone number.
    let ticket = refused_with_ticket(&app, "alice", "registration_closed").await;
    // A number nobody imported: refused without a ticket.
    let response = register(&app, &ticket, &app.phone_code_for("alice", "13900139000")).await;
    let error = assert_error(response, 403, "registration_closed").await;
    assert!(error.get("login_ticket").is_none());
    // The imported number: the WeChat account joins the imported user.
    let ticket = refused_with_ticket(&app, "alice", "registration_closed").await;
    let response = register(&app, &ticket, &app.phone_code_for("alice", "13800138000")).await;
    assert_eq!(response.status(), 200);
    let login: serde_json::Value = response.json().await.unwrap();
    assert_eq!(login["user"]["is_new"], false);
    let user = app
        .internal_user(login["user"]["id"].as_str().unwrap())
        .await;
    assert_eq!(user["phone"]["e164"], "+8613800138000");
    assert_eq!(user["identities"].as_array().unwrap().len(), 1);
    // From now on a plain login works.
    assert_eq!(app.login("alice").await["user"]["id"], login["user"]["id"]);

    // phone_code on login works the same way; a second WeChat account with the same number is
    // refused (the number's user already uses this app).
    let response = login_response(
        &app,
        json!({ "code": app.code_for("mallory"), "phone_code": app.phone_code_for("mallory", "13800138000") }),
    )
    .await;
    assert_error(response, 409, "phone_in_use").await;
}

fn two_apps(policy_b: Registration) -> impl FnOnce(&mut wxlogin::config::Settings) {
    move |s| {
        s.apps.push(AppSettings {
            appid: AppId::parse(APP_B).unwrap(),
            secret: AppSecret::parse(SECRET_B).unwrap(),
            registration: policy_b,
        });
    }
}

fn code_b(app: &TestApp, user: &str) -> String {
    app.wx.mock().mint_login_code(APP_B, user).unwrap().code
}

async fn login_b(app: &TestApp, user: &str) -> reqwest::Response {
    login_response(app, json!({ "code": code_b(app, user), "appid": APP_B })).await
}

#[tokio::test]
async fn a_second_app_with_the_same_unionid_links_to_the_same_user() {
    let app = TestApp::spawn_with(two_apps(Registration::Closed)).await;
    app.wx.mock().add_app(
        AppConfig::new(APP_B, SECRET_B).with_open_platform(wechat_mock::DEMO_OPEN_PLATFORM),
    );
    app.remember_secret(SECRET_B);
    let first = app.login("alice").await;
    assert_eq!(first["user"]["is_new"], true);
    // App B is closed, but alice is an existing user by her unionid.
    let response = login_b(&app, "alice").await;
    assert_eq!(response.status(), 200);
    let second: serde_json::Value = response.json().await.unwrap();
    assert_eq!(second["user"]["is_new"], false);
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    let user = app
        .internal_user(first["user"]["id"].as_str().unwrap())
        .await;
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2);
    assert_eq!(identities[0]["unionid"], identities[1]["unionid"]);
    assert_ne!(identities[0]["openid"], identities[1]["openid"]);
    // A stranger to both apps is still refused by B.
    assert_error(login_b(&app, "bob").await, 403, "registration_closed").await;
}

#[tokio::test]
async fn a_unionid_that_appears_later_is_back_filled_and_then_links() {
    let app = TestApp::spawn_with(two_apps(Registration::Auto)).await;
    // App A is not bound to an open platform yet: no unionid.
    app.wx
        .mock()
        .add_app(AppConfig::new(DEMO_APPID, DEMO_SECRET));
    app.wx
        .mock()
        .add_app(AppConfig::new(APP_B, SECRET_B).with_open_platform("acme"));
    app.remember_secret(SECRET_B);
    let first = app.login("alice").await;
    let id = first["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.internal_user(&id).await["identities"][0]["unionid"],
        json!(null)
    );

    // The operator binds app A to the open platform: the next login back-fills the unionid...
    app.wx
        .mock()
        .add_app(AppConfig::new(DEMO_APPID, DEMO_SECRET).with_open_platform("acme"));
    assert_eq!(app.login("alice").await["user"]["id"], id.as_str());
    let unionid = app.internal_user(&id).await["identities"][0]["unionid"].clone();
    assert!(unionid.is_string());
    // ...and app B's first login links to the same user.
    let second: serde_json::Value = login_b(&app, "alice").await.json().await.unwrap();
    assert_eq!(second["user"]["id"], id.as_str());
    assert_eq!(second["user"]["is_new"], false);
}

#[tokio::test]
async fn a_link_that_would_join_two_users_is_refused_not_merged() {
    let app = TestApp::spawn_with(two_apps(Registration::Auto)).await;
    app.wx
        .mock()
        .add_app(AppConfig::new(DEMO_APPID, DEMO_SECRET));
    app.wx
        .mock()
        .add_app(AppConfig::new(APP_B, SECRET_B).with_open_platform("acme"));
    app.remember_secret(SECRET_B);
    // Alice uses A (no unionid yet), then B, which cannot know she is the same person.
    let on_a = app.login("alice").await;
    let on_b: serde_json::Value = login_b(&app, "alice").await.json().await.unwrap();
    assert_ne!(on_a["user"]["id"], on_b["user"]["id"]);
    // A gets its unionid: it would tie A's user to B's. Refused, and nothing is back-filled.
    app.wx
        .mock()
        .add_app(AppConfig::new(DEMO_APPID, DEMO_SECRET).with_open_platform("acme"));
    let response = login_response(
        &app,
        json!({ "code": app.code_for("alice"), "appid": DEMO_APPID }),
    )
    .await;
    let error = assert_error(response, 409, "identity_conflict").await;
    assert!(error["message"].as_str().unwrap().contains("support"));
    let user = app
        .internal_user(on_a["user"]["id"].as_str().unwrap())
        .await;
    assert_eq!(user["identities"][0]["unionid"], json!(null));
    // B keeps working.
    assert_eq!(login_b(&app, "alice").await.status(), 200);
}
