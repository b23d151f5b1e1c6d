//! Who a login joins: one user per unionid even when two apps race, phone links under `closed`
//! only to imported numbers, and a login ticket's bounded number of attempts.

use serde_json::json;
use wechat_mock::AppConfig;
use wxlogin::config::{AppSettings, Registration};
use wxlogin::domain::{AppId, AppSecret};

use crate::helpers::*;

const APP_B: &str = "wx00000000000000b2";
const SECRET_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

/// The demo app (policy `policy_a`) and app B (`policy_b`), both in the simulator; B on the demo
/// open platform when `shared_platform`, so one person has one unionid in both.
async fn two_apps(
    policy_a: Registration,
    policy_b: Registration,
    shared_platform: bool,
) -> TestApp {
    let app = TestApp::spawn_with(|s| {
        s.apps[0].registration = policy_a;
        s.apps.push(AppSettings {
            appid: AppId::parse(APP_B).unwrap(),
            secret: AppSecret::parse(SECRET_B).unwrap(),
            registration: policy_b,
        });
    })
    .await;
    let b = AppConfig::new(APP_B, SECRET_B);
    let b = if shared_platform {
        b.with_open_platform(wechat_mock::DEMO_OPEN_PLATFORM)
    } else {
        b
    };
    app.wx.mock().add_app(b);
    app.remember_secret(SECRET_B);
    app
}

async fn login_in(app: &TestApp, appid: &str, user: &str) -> reqwest::Response {
    let code = app.wx.mock().mint_login_code(appid, user).unwrap().code;
    app.post_json(
        "/v1/auth/wechat/login",
        json!({ "code": code, "appid": appid }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_logins_of_one_person_in_two_apps_at_once_make_one_user() {
    let app = two_apps(Registration::Auto, Registration::Auto, true).await;
    let rounds = (0..20).map(|round| {
        let app = &app;
        async move {
            let person = format!("racer{round}");
            let (a, b) = futures::join!(
                login_in(app, DEMO_APPID, &person),
                login_in(app, APP_B, &person)
            );
            let mut ids = Vec::new();
            for response in [a, b] {
                assert_eq!(response.status(), 200, "round {round}");
                let body: serde_json::Value = response.json().await.unwrap();
                ids.push(body["user"]["id"].as_str().unwrap().to_owned());
            }
            (round, person, ids)
        }
    });
    for (round, person, ids) in futures::future::join_all(rounds).await {
        assert_eq!(ids[0], ids[1], "round {round}: one person, one user");
        let user = app.internal_user(&ids[0]).await;
        assert_eq!(user["identities"].as_array().unwrap().len(), 2, "{user}");
        // And the person keeps logging in to both, without identity_conflict.
        for appid in [DEMO_APPID, APP_B] {
            let again = login_in(&app, appid, &person).await;
            assert_eq!(again.status(), 200, "round {round}, {appid}");
            let body: serde_json::Value = again.json().await.unwrap();
            assert_eq!(body["user"]["id"], ids[0].as_str());
        }
    }
}

#[tokio::test]
async fn closed_links_a_number_only_to_a_user_without_a_wechat_account() {
    // App A is closed; app B (another open platform: no shared unionid) lets anyone in.
    let app = two_apps(Registration::Closed, Registration::Auto, false).await;
    let report = wxlogin::services::import::import_phones(
        app.state.store.as_ref(),
        "13800138000\n",
        &app.wx.clock.shared(),
    )
    .await
    .unwrap();
    assert_eq!(report.created, 1);

    // The imported number: the WeChat account joins the imported user.
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({
                "code": app.code_for("alice"),
                "appid": DEMO_APPID,
                "phone_code": app.phone_code_for("alice", "13800138000"),
            }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let alice: serde_json::Value = response.json().await.unwrap();
    assert_eq!(alice["user"]["is_new"], false);

    // An old owner signed up through WeChat in app B with a number that was later recycled.
    let phone_b = app
        .wx
        .mock()
        .mint_phone_code(APP_B, "old-owner", "13900139000", "86")
        .unwrap();
    let code_b = app
        .wx
        .mock()
        .mint_login_code(APP_B, "old-owner")
        .unwrap()
        .code;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": code_b, "appid": APP_B, "phone_code": phone_b }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let old_owner: serde_json::Value = response.json().await.unwrap();
    let old_id = old_owner["user"]["id"].as_str().unwrap().to_owned();

    // The number's new holder tries the closed app with it: refused, nothing linked.
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({
                "code": app.code_for("new-holder"),
                "appid": DEMO_APPID,
                "phone_code": app.phone_code_for("new-holder", "13900139000"),
            }),
        )
        .await;
    assert_error(response, 409, "phone_in_use").await;
    let user = app.internal_user(&old_id).await;
    assert_eq!(user["identities"].as_array().unwrap().len(), 1, "{user}");
    // Through a login ticket as well.
    let response = login_in(&app, DEMO_APPID, "new-holder").await;
    let refused = assert_error(response, 403, "registration_closed").await;
    let ticket = refused["login_ticket"].as_str().unwrap().to_owned();
    app.remember_secret(ticket.clone());
    let response = app
        .post_json(
            "/v1/auth/wechat/register",
            json!({
                "login_ticket": ticket,
                "phone_code": app.phone_code_for("new-holder", "13900139000"),
            }),
        )
        .await;
    assert_error(response, 409, "phone_in_use").await;
    let user = app.internal_user(&old_id).await;
    assert_eq!(user["identities"].as_array().unwrap().len(), 1, "{user}");
    assert_error(
        login_in(&app, DEMO_APPID, "new-holder").await,
        403,
        "registration_closed",
    )
    .await;
}

async fn ticket_for(app: &TestApp, user: &str) -> String {
    let response = login_in(app, DEMO_APPID, user).await;
    let refused = assert_error(response, 403, "phone_required").await;
    let ticket = refused["login_ticket"].as_str().unwrap().to_owned();
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
async fn a_login_ticket_allows_five_attempts() {
    let app = TestApp::spawn_with(|s| s.apps[0].registration = Registration::PhoneRequired).await;

    // Four failures (a wx.login code where the phone code belongs), then the fifth attempt works.
    let ticket = ticket_for(&app, "alice").await;
    for _ in 0..4 {
        let wrong = register(&app, &ticket, &app.code_for("alice")).await;
        assert_error(wrong, 400, "invalid_code").await;
    }
    let ok = register(&app, &ticket, &app.phone_code_for("alice", "13800138000")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.wx.calls("getuserphonenumber").await, 5);

    // Five failures spend the ticket: the sixth attempt does not reach WeChat.
    let ticket = ticket_for(&app, "bob").await;
    for _ in 0..5 {
        let wrong = register(&app, &ticket, &app.code_for("bob")).await;
        assert_error(wrong, 400, "invalid_code").await;
    }
    let late = register(&app, &ticket, &app.phone_code_for("bob", "13900139000")).await;
    assert_error(late, 400, "invalid_ticket").await;
    assert_eq!(app.wx.calls("getuserphonenumber").await, 10);
    // A fresh wx.login gives a fresh ticket.
    let ticket = ticket_for(&app, "bob").await;
    let ok = register(&app, &ticket, &app.phone_code_for("bob", "13900139000")).await;
    assert_eq!(ok.status(), 200);
}
