use serde_json::json;

use crate::helpers::*;

fn token_url(app: &TestApp, appid: &str) -> String {
    app.url(&format!("/internal/v1/wechat/{appid}/access-token"))
}

#[tokio::test]
async fn a_hundred_services_on_a_cold_cache_cause_one_token_fetch() {
    let app = TestApp::spawn().await;
    let responses = futures::future::join_all((0..100).map(|_| {
        app.http
            .get(token_url(&app, DEMO_APPID))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
    }))
    .await;
    let mut tokens = std::collections::HashSet::new();
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["expires_in"].as_u64().unwrap() > 7000);
        tokens.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(tokens.len(), 1);
    assert_eq!(app.wx.calls("stable_token").await, 1);
    app.remember_secret(tokens.iter().next().unwrap());
}

#[tokio::test]
async fn invalidation_refreshes_only_the_token_still_cached() {
    let app =
        TestApp::spawn_with(|s| s.wechat.token_mode = wxlogin::wechat::TokenMode::Classic).await;
    let get = || {
        app.http
            .get(token_url(&app, DEMO_APPID))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
    };
    let first: serde_json::Value = get().await.unwrap().json().await.unwrap();
    let invalidate = |token: serde_json::Value| {
        app.http
            .post(format!("{}/invalidate", token_url(&app, DEMO_APPID)))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .json(&json!({ "access_token": token }))
            .send()
    };
    // A token that is not the cached one changes nothing.
    let unchanged: serde_json::Value = invalidate(json!("89_some_older_token"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["access_token"], first["access_token"]);
    assert_eq!(app.wx.calls("token").await, 1);
    // Ten services reporting the cached token: one refresh.
    let after =
        futures::future::join_all((0..10).map(|_| invalidate(first["access_token"].clone()))).await;
    let mut seen = std::collections::HashSet::new();
    for response in after {
        let body: serde_json::Value = response.unwrap().json().await.unwrap();
        seen.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1);
    assert!(!seen.contains(first["access_token"].as_str().unwrap()));
    assert_eq!(app.wx.calls("token").await, 2);
    app.remember_secret(first["access_token"].as_str().unwrap());
    app.remember_secret(seen.iter().next().unwrap());

    let bad = app
        .http
        .post(format!("{}/invalidate", token_url(&app, DEMO_APPID)))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({ "access_token": "" }))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "invalid_request").await;
}

#[tokio::test]
async fn internal_endpoints_need_a_service_and_a_configured_app() {
    let app = TestApp::spawn().await;
    let anonymous = app
        .http
        .get(token_url(&app, DEMO_APPID))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "invalid_client").await;
    let login = app.login("ivy").await;
    let as_user = app
        .get_authed(
            &format!(
                "/internal/v1/users/{}",
                login["user"]["id"].as_str().unwrap()
            ),
            login["access_token"].as_str().unwrap(),
        )
        .await;
    assert_error(as_user, 401, "invalid_client").await;
    for appid in ["wx00000000000000ff", "nope"] {
        let response = app
            .http
            .get(token_url(&app, appid))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "unknown_app").await;
    }
    app.wx
        .fault(json!({"api": "stable_token", "errcode": -1}))
        .await;
    let busy = app
        .http
        .get(token_url(&app, DEMO_APPID))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap();
    assert_error(busy, 503, "wechat_unavailable").await;
}

#[tokio::test]
async fn internal_users_show_the_wechat_identities() {
    let app = TestApp::spawn().await;
    let login = app.login("jade").await;
    let id = login["user"]["id"].as_str().unwrap();
    let user: serde_json::Value = app
        .http
        .get(app.url(&format!("/internal/v1/users/{id}")))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["id"], id);
    assert_eq!(user["banned"], false);
    assert_eq!(
        user["identities"],
        json!([{
            "appid": DEMO_APPID,
            "openid": wechat_mock::openid_for(DEMO_APPID, "jade"),
            "unionid": wechat_mock::unionid_for("demo", "jade"),
        }])
    );
    for missing in ["u_01J00000000000000000000000", "nope"] {
        let response = app
            .http
            .get(app.url(&format!("/internal/v1/users/{missing}")))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "not_found").await;
    }
}

#[tokio::test]
async fn the_background_refresher_renews_a_token_before_any_request_waits_for_it() {
    let app = TestApp::spawn_with(|s| s.wechat.token_refresh_check_ms = 20).await;
    let get = || async {
        let body: serde_json::Value = app
            .http
            .get(token_url(&app, DEMO_APPID))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    };
    let first = get().await;
    app.remember_secret(first.clone());
    assert_eq!(app.wx.calls("stable_token").await, 1);
    // Not due yet: the refresher leaves it alone.
    app.wx
        .clock
        .advance(std::time::Duration::from_secs(7200 - 400));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(app.wx.calls("stable_token").await, 1);
    // In its last five minutes: renewed in the background, without a request asking.
    app.wx.clock.advance(std::time::Duration::from_secs(200));
    let mut waited = 0;
    while app.wx.calls("stable_token").await < 2 {
        assert!(waited < 5_000, "the refresher renewed the token");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 10;
    }
    let renewed = get().await;
    app.remember_secret(renewed.clone());
    assert_ne!(renewed, first);
    assert_eq!(app.wx.calls("stable_token").await, 2);
}
