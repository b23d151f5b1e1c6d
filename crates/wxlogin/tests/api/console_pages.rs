//! The admin console's pages over HTTP, with a cookie jar as a browser keeps one, against a real
//! server and the simulator: finding a user who logged in, acting on them (ban, unban, revoke,
//! unbind and reveal the phone), what each role may do, the CSRF token of every action, keys and
//! apps, the overview's counts, and both languages. `console_browser.rs` drives the same pages in
//! a real browser.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::cookie::Jar;
use serde_json::json;
use wxlogin::crypto::TotpSecret;
use wxlogin::domain::AdminRole;

use crate::admin_console::{
    PASSWORD, add, audited, code_at, console, csrf, get, location, post, sign_in,
};
use crate::helpers::*;

/// A signed-in browser of a new administrator `name` with `role` (owners with a TOTP code).
async fn signed_in(app: &TestApp, name: &str, role: AdminRole) -> reqwest::Client {
    signed_in_with(app, name, role, Arc::new(Jar::default())).await
}

/// The same, with the cookie jar given (to which a test adds the cookies a script would set).
async fn signed_in_with(
    app: &TestApp,
    name: &str,
    role: AdminRole,
    jar: Arc<Jar>,
) -> reqwest::Client {
    let secret = TotpSecret::generate();
    let totp = (role == AdminRole::Owner).then_some(&secret);
    add(app, name, role, totp).await;
    let browser = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = sign_in(app, &browser, name, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    if totp.is_some() {
        let (_, page) = get(app, &browser, "/login/totp").await;
        let code = code_at(&secret, app.state.clock.unix_millis());
        let response = post(
            app,
            &browser,
            "/login/totp",
            &[("csrf", &csrf(&page)), ("code", &code)],
        )
        .await;
        assert_eq!(location(&response), "/");
    }
    browser
}

/// A user who logged in through the simulator with a phone number bound: (user id, access token).
async fn user_with_phone(app: &TestApp, who: &str, number: &str) -> (String, String) {
    let body = app.login(who).await;
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let bound = app
        .post_authed(
            "/v1/me/phone",
            &token,
            json!({ "code": app.phone_code_for(who, number) }),
        )
        .await;
    assert_eq!(bound.status(), 200);
    (id, token)
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_authed("/v1/me", token).await.status().as_u16()
}

#[tokio::test]
async fn an_operator_finds_a_user_and_bans_unbans_and_revokes() {
    let app = console().await;
    let (id, token) = user_with_phone(&app, "ops-alice", "13800138000").await;
    let other = app.login("ops-bob").await;
    let op = signed_in(&app, "op", AdminRole::Operator).await;

    // Found by the phone number in any spelling, and by user id; listed with the number masked.
    for q in ["13800138000", "+86 138 0013 8000", id.as_str()] {
        let (status, page) = get(&app, &op, &format!("/users?q={}", urlencode(q))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains(&format!("href=\"/users/{id}\"")),
            "{q}: {page}"
        );
        let listing = &page[page.find("<table").unwrap()..];
        assert!(listing.contains("138****8000"), "{q}");
        assert!(!listing.contains("13800138000"), "masked in the listing");
        assert!(!page.contains(other["user"]["id"].as_str().unwrap()), "{q}");
    }
    let (_, page) = get(&app, &op, &format!("/users/{id}")).await;
    assert!(page.contains("138****8000") && !page.contains("13800138000"));
    assert!(page.contains("wx_demo_appid") || page.contains(DEMO_APPID));
    assert!(
        page.contains("action=\"/users/"),
        "an operator sees the actions"
    );
    let token_form = csrf(&page);

    // A ban without the form's token is refused and changes nothing.
    let refused = post(
        &app,
        &op,
        &format!("/users/{id}/ban"),
        &[("reason", "spam")],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(me_status(&app, &token).await, 200);

    // Banned: the access token is refused at once, the user's page says so, the log names "op".
    let response = post(
        &app,
        &op,
        &format!("/users/{id}/ban"),
        &[("csrf", &token_form), ("reason", "spam")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), format!("/users/{id}?done=banned"));
    assert_eq!(me_status(&app, &token).await, 401);
    let (_, page) = get(&app, &op, &format!("/users/{id}?done=banned")).await;
    assert!(page.contains("banned") && page.contains("role=\"status\""));
    let bans = audited(&app, "user_banned").await;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].0.actor_kind, "admin");
    assert_eq!(bans[0].0.actor_id.as_deref(), Some("op"));
    assert_eq!(bans[0].1["reason"], "spam");
    let refused_login = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("ops-alice"), "appid": DEMO_APPID }),
        )
        .await;
    assert_eq!(refused_login.status(), 403);

    // Unbanned: a new login works; the old token stays revoked.
    let response = post(
        &app,
        &op,
        &format!("/users/{id}/unban"),
        &[("csrf", &token_form)],
    )
    .await;
    assert_eq!(location(&response), format!("/users/{id}?done=unbanned"));
    assert_eq!(me_status(&app, &token).await, 401);
    let again = app.login("ops-alice").await;
    let fresh = again["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&app, &fresh).await, 200);

    // One session revoked from the sessions page, filtered by the user.
    let (_, page) = get(&app, &op, &format!("/sessions?user={id}")).await;
    let session = again["session_id"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| first_session(&page));
    assert!(page.contains(&session), "{page}");
    let response = post(
        &app,
        &op,
        &format!("/sessions/{session}/revoke"),
        &[("csrf", &token_form)],
    )
    .await;
    assert_eq!(location(&response), "/sessions?done=session-revoked");
    assert_eq!(me_status(&app, &fresh).await, 401);
    let revoked = audited(&app, "session_revoked").await;
    assert_eq!(revoked[0].0.actor_id.as_deref(), Some("op"));

    // Revealing the number is a POST, shows it once, and is audited.
    let response = post(
        &app,
        &op,
        &format!("/users/{id}/reveal-phone"),
        &[("csrf", &token_form)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("+8613800138000"));
    let reveals = audited(&app, "phone_revealed").await;
    assert_eq!(reveals.len(), 1);
    assert_eq!(
        reveals[0].0.user_id.as_ref().map(|u| u.as_str()),
        Some(id.as_str())
    );

    // Unbinding the number: gone from the user, and from what the server answers at once.
    let third = app.login("ops-alice").await;
    let third = third["access_token"].as_str().unwrap().to_owned();
    let me: serde_json::Value = app.get_authed("/v1/me", &third).await.json().await.unwrap();
    assert!(!me["phone"].is_null(), "{me}");
    let response = post(
        &app,
        &op,
        &format!("/users/{id}/unbind-phone"),
        &[("csrf", &token_form)],
    )
    .await;
    assert_eq!(
        location(&response),
        format!("/users/{id}?done=phone-unbound")
    );
    assert!(app.internal_user(&id).await["phone"].is_null());
    let me: serde_json::Value = app.get_authed("/v1/me", &third).await.json().await.unwrap();
    assert!(me["phone"].is_null(), "{me}");

    // The user's page shows the audit trail of all of it.
    let (_, page) = get(&app, &op, &format!("/users/{id}")).await;
    for kind in [
        "user_banned",
        "user_unbanned",
        "session_revoked",
        "phone_revealed",
        "phone_unbound",
    ] {
        assert!(page.contains(kind), "{kind} in the trail");
    }
}

/// The page at `path` for a browser that asks for `languages`.
async fn in_language(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    languages: &str,
) -> String {
    let response = browser
        .get(crate::admin_console::url(app, path))
        .header("accept-language", languages)
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// The first session id on a sessions page.
fn first_session(page: &str) -> String {
    let at = page.find("action=\"/sessions/").expect("a revoke form") + 18;
    page[at..].split('/').next().unwrap().to_owned()
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn a_viewer_sees_but_cannot_act_and_an_operator_cannot_touch_keys_or_apps() {
    let app = console().await;
    let (id, token) = user_with_phone(&app, "view-carol", "13900139000").await;
    let viewer = signed_in(&app, "watcher", AdminRole::Viewer).await;
    let (status, page) = get(&app, &viewer, &format!("/users/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains(&format!("action=\"/users/{id}/ban\"")),
        "no ban button"
    );
    assert!(!page.contains("reveal-phone"), "no reveal button");
    let form = csrf(&page);
    for action in ["ban", "unbind-phone", "reveal-phone", "revoke-sessions"] {
        let response = post(
            &app,
            &viewer,
            &format!("/users/{id}/{action}"),
            &[("csrf", &form)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(me_status(&app, &token).await, 200, "nothing changed");
    assert!(audited(&app, "phone_revealed").await.is_empty());
    for page in ["/", "/users", "/sessions", "/audit", "/keys", "/apps"] {
        let (status, _) = get(&app, &viewer, page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
    }

    let op = signed_in(&app, "op2", AdminRole::Operator).await;
    let (_, keys) = get(&app, &op, "/keys").await;
    assert!(
        !keys.contains("action=\"/keys/rotate\""),
        "an operator sees no rotate"
    );
    let form = csrf(&keys);
    let rotate = post(&app, &op, "/keys/rotate", &[("csrf", &form)]).await;
    assert_eq!(rotate.status(), StatusCode::FORBIDDEN);
    let refresh = post(
        &app,
        &op,
        "/apps/refresh-token",
        &[("csrf", &form), ("appid", DEMO_APPID)],
    )
    .await;
    assert_eq!(refresh.status(), StatusCode::FORBIDDEN);
    assert!(audited(&app, "key_rotated").await.is_empty());
}

#[tokio::test]
async fn an_owner_rotates_and_retires_a_key_and_sees_the_sealing_census() {
    let app = console().await;
    let before = app.state.store.list_signing_keys().await.unwrap();
    let owner = signed_in(&app, "root", AdminRole::Owner).await;
    let (_, page) = get(&app, &owner, "/keys").await;
    assert!(page.contains(&before[0].kid) && page.contains("current"));
    let response = post(&app, &owner, "/keys/rotate", &[("csrf", &csrf(&page))]).await;
    assert_eq!(location(&response), "/keys?done=rotated");
    let after = app.state.store.list_signing_keys().await.unwrap();
    assert_eq!(after.len(), before.len() + 1);
    let (_, page) = get(&app, &owner, "/keys").await;
    assert!(
        page.contains("pending"),
        "the new key is published, not signing yet"
    );
    let rotated = audited(&app, "key_rotated").await;
    assert_eq!(rotated[0].0.actor_id.as_deref(), Some("root"));

    // The current key cannot be retired: a clear refusal, nothing changed.
    let response = post(
        &app,
        &owner,
        "/keys/retire",
        &[("csrf", &csrf(&page)), ("kid", &before[0].kid)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("current signing key")
    );

    let (status, census) = get(&app, &owner, "/keys?census=1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(census.contains("previous keys can be removed"), "{census}");
}

#[tokio::test]
async fn the_overview_counts_logins_and_pages_speak_chinese() {
    let app = console().await;
    app.login("ov-dave").await;
    app.login("ov-dave").await;
    app.login("ov-erin").await;
    let jar = Arc::new(Jar::default());
    let op = signed_in_with(&app, "op3", AdminRole::Operator, jar.clone()).await;
    let (status, page) = get(&app, &op, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("new user (2)"), "{page}");
    assert!(page.contains("returning (1)"));
    assert!(page.contains("<svg") && page.contains("role=\"img\""));
    for range in ["7d", "30d"] {
        let (status, page) = get(&app, &op, &format!("/?range={range}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("new user (2)"), "{range}");
    }

    // Chinese from Accept-Language, and the switch back to English sticks in a cookie.
    let page = in_language(&app, &op, "/users", "zh-CN,zh;q=0.9,en;q=0.5").await;
    assert!(
        page.contains("<html lang=\"zh-CN\">") && page.contains("用户"),
        "{page}"
    );
    let switch = op
        .get(crate::admin_console::url(&app, "/lang?to=en&back=/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&switch), "/users");
    let page = in_language(&app, &op, "/users", "zh-CN").await;
    assert!(page.contains("<html lang=\"en\">"));
    // The switch goes back only within the console.
    let away = op
        .get(crate::admin_console::url(
            &app,
            "/lang?to=zh&back=//evil.example/",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&away), "/");

    // Times in the viewer's zone from the cookie the script sets.
    let base = crate::admin_console::url(&app, "/").parse().unwrap();
    jar.add_cookie_str("wxlogin_tz=480; Path=/", &base);
    let page = op
        .get(crate::admin_console::url(&app, "/audit"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("UTC+08:00"));
    assert!(page.contains("login"), "the audit log lists the logins");

    // A session shows the device it was opened from and its last use.
    let iphone =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) MicroMessenger/8.0.49(0x18003137)";
    let response = app
        .http
        .post(app.url("/v1/auth/wechat/login"))
        .header("user-agent", iphone)
        .json(&json!({ "code": app.code_for("ov-frank"), "appid": DEMO_APPID }))
        .send()
        .await
        .unwrap();
    let frank: serde_json::Value = response.json().await.unwrap();
    let frank = frank["user"]["id"].as_str().unwrap().to_owned();
    let (_, page) = get(&app, &op, &format!("/sessions?user={frank}")).await;
    assert!(page.contains("iPhone · WeChat 8.0.49"), "{page}");
    assert!(page.contains(&format!("title=\"{iphone}\"")));

    // A form larger than any of the console's is refused before it is read.
    let (_, users) = get(&app, &op, "/users").await;
    let huge = "x".repeat(64 * 1024);
    let response = post(
        &app,
        &op,
        "/logout",
        &[("csrf", &csrf(&users)), ("pad", &huge)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // A bad filter is a 400, not a 500.
    for bad in [
        "/audit?type=nope",
        "/sessions?user=%20x%20y",
        "/sessions?since=2y",
        "/audit?before=x",
    ] {
        let (status, _) = get(&app, &op, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = get(&app, &op, "/users/u_nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_owner_forces_a_new_wechat_access_token() {
    let app = console().await;
    let owner = signed_in(&app, "root2", AdminRole::Owner).await;
    let (status, page) = get(&app, &owner, "/apps").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(DEMO_APPID) && page.contains("auto"), "{page}");
    let response = post(
        &app,
        &owner,
        "/apps/refresh-token",
        &[("csrf", &csrf(&page)), ("appid", DEMO_APPID)],
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        response.text().await
    );
    let (_, page) = get(&app, &owner, location(&response)).await;
    assert!(page.contains("every server uses it now"), "{page}");
    let refreshed = audited(&app, "wechat_token_refreshed").await;
    assert_eq!(refreshed[0].0.actor_id.as_deref(), Some("root2"));
    let unknown = post(
        &app,
        &owner,
        "/apps/refresh-token",
        &[("csrf", &csrf(&page)), ("appid", "wx_not_configured")],
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_removed_administrator_is_signed_out_at_the_next_request() {
    let app = console().await;
    let owner = signed_in(&app, "boss", AdminRole::Owner).await;
    let op = signed_in(&app, "temp", AdminRole::Operator).await;
    let (status, page) = get(&app, &op, "/admins").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("boss") && !page.contains("action=\"/admins/remove\""));

    let (_, page) = get(&app, &owner, "/admins").await;
    let form = csrf(&page);
    assert!(page.contains("action=\"/admins/remove\""));
    let myself = post(
        &app,
        &owner,
        "/admins/remove",
        &[("csrf", &form), ("name", "boss")],
    )
    .await;
    assert_eq!(myself.status(), StatusCode::CONFLICT);
    let response = post(
        &app,
        &owner,
        "/admins/remove",
        &[("csrf", &form), ("name", "temp")],
    )
    .await;
    assert_eq!(location(&response), "/admins?done=removed");
    let removed = audited(&app, "admin_removed").await;
    assert_eq!(removed[0].0.actor_id.as_deref(), Some("boss"));
    assert_eq!(removed[0].1["admin"], "temp");

    let response = op
        .get(crate::admin_console::url(&app, "/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
}
