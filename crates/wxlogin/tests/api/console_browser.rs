//! The admin console's sign-in in a real browser (`browser.rs`): what `admin_console.rs` checks
//! over HTTP, as a person does it: typing into the forms, following the redirects, reading the
//! pages; then the pages' accessibility, their keyboard order and their screenshots.

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;
use wxlogin::crypto::TotpSecret;
use wxlogin::domain::AdminRole;

use crate::admin_console::{PASSWORD, add, audited, code_at, console};
use crate::browser::Browser;
use crate::helpers::*;

const REFUSED: &str = "This form has expired or did not come from this console. Sign in again.";
const WRONG: &str = "Wrong name or password.";
const LOCKED: &str = "Too many failed sign-ins";

async fn open(app: &TestApp) -> Option<Browser> {
    Browser::open(app.admin_address.as_deref().expect("the console is on")).await
}

/// Types the name and password into the sign-in page shown and submits it.
async fn sign_in(browser: &Browser, name: &str, password: &str) {
    browser.fill("#name", name).await;
    browser.fill("#password", password).await;
    browser.submit("form[action='/login']").await;
}

#[tokio::test]
async fn an_owner_signs_in_with_a_password_and_a_code_and_signs_out() {
    let app = console().await;
    let secret = TotpSecret::generate();
    add(&app, "root", AdminRole::Owner, Some(&secret)).await;
    let Some(browser) = open(&app).await else {
        return;
    };

    browser.goto("/").await;
    let address = app.admin_address.as_deref().unwrap();
    assert_eq!(
        browser.url().await,
        format!("{address}/login"),
        "sent to the sign-in"
    );
    sign_in(&browser, "root", PASSWORD).await;
    assert_eq!(browser.path().await, "/login/totp");
    // Leaving before the code is no way in: the sign-in starts over.
    browser.goto("/").await;
    assert_eq!(
        browser.path().await,
        "/login",
        "not signed in before the code"
    );
    sign_in(&browser, "root", PASSWORD).await;
    browser.wait_for("#code").await;
    browser
        .fill("#code", &code_at(&secret, app.state.clock.unix_millis()))
        .await;
    browser.submit("form[action='/login/totp']").await;
    assert_eq!(browser.path().await, "/");
    let home = browser.text().await;
    assert!(home.contains("root · owner"), "{home}");
    // The audit log names the browser that signed in.
    let signed_in = audited(&app, "admin_signed_in").await;
    assert_eq!(signed_in.len(), 1);
    let agent = signed_in[0].0.user_agent.as_deref().unwrap_or_default();
    assert!(agent.contains("HeadlessChrome"), "{agent}");

    browser.follow("form[action='/logout'] button").await;
    assert_eq!(browser.path().await, "/login");
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/login", "signed out");
    assert_eq!(audited(&app, "admin_signed_out").await.len(), 1);
}

#[tokio::test]
async fn failed_passwords_lock_the_administrator_out_of_the_browser() {
    let app = console().await;
    add(&app, "op", AdminRole::Operator, None).await;
    let Some(browser) = open(&app).await else {
        return;
    };
    let attempts = app.state.settings.admin.max_failed_sign_ins;

    browser.goto("/login").await;
    for attempt in 1..=attempts {
        sign_in(&browser, "op", "not the password").await;
        assert_eq!(browser.path().await, "/login");
        let notice = browser.text_of("[role=alert]").await;
        if attempt < attempts {
            assert_eq!(notice, WRONG, "attempt {attempt}");
        } else {
            assert!(notice.starts_with(LOCKED), "attempt {attempt}: {notice}");
        }
    }
    sign_in(&browser, "op", PASSWORD).await;
    assert_eq!(browser.path().await, "/login");
    let notice = browser.text_of("[role=alert]").await;
    assert!(notice.starts_with(LOCKED), "the right password: {notice}");
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/login", "not signed in");

    // Nor does the browser's session cookie grant the console to anyone holding it.
    let cookie = browser
        .cookie("wxlogin_admin")
        .await
        .expect("a session cookie");
    let response = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", app.admin_address.as_deref().unwrap()))
        .header("cookie", format!("wxlogin_admin={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = console().await;
    add(&app, "op", AdminRole::Operator, None).await;
    let Some(browser) = open(&app).await else {
        return;
    };

    browser.goto("/login").await;
    // Script run through WebDriver works under the console's policy; the page's own does not.
    let inline = browser
        .execute(
            "const s = document.createElement('script');\
             s.textContent = 'document.body.dataset.inline = \"ran\"';\
             document.body.appendChild(s);\
             return document.body.dataset.inline || null;",
            vec![],
        )
        .await;
    assert_eq!(inline, Value::Null, "inline script is blocked");
    let left = browser
        .execute(REMOVE_CSRF, vec![Value::from("form[action='/login']")])
        .await;
    assert_eq!(left, 0);
    sign_in(&browser, "op", PASSWORD).await;
    assert_eq!(browser.title().await, "Refused · wxlogin");
    assert_eq!(browser.text_of("[role=alert]").await, REFUSED);
    browser.goto("/").await;
    assert_eq!(
        browser.path().await,
        "/login",
        "the right password did not count"
    );

    // Signed in, a sign-out without the token is refused too, and the session goes on.
    browser.goto("/login").await;
    sign_in(&browser, "op", PASSWORD).await;
    assert_eq!(browser.path().await, "/");
    browser
        .execute(REMOVE_CSRF, vec![Value::from("form[action='/logout']")])
        .await;
    browser.submit("form[action='/logout']").await;
    assert_eq!(browser.text_of("[role=alert]").await, REFUSED);
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/", "still signed in");
    assert!(audited(&app, "admin_signed_out").await.is_empty());
}

/// Removes the hidden CSRF field of the form `arguments[0]`; the fields left.
const REMOVE_CSRF: &str = "const form = document.querySelector(arguments[0]);\
    form.querySelector('input[name=csrf]').remove();\
    return form.querySelectorAll('input[name=csrf]').length;";

#[tokio::test]
async fn the_sign_in_pages_are_accessible_by_keyboard_and_pictured() {
    let app = console().await;
    let secret = TotpSecret::generate();
    add(&app, "root", AdminRole::Owner, Some(&secret)).await;
    let Some(browser) = open(&app).await else {
        return;
    };

    browser.goto("/login").await;
    browser.assert_accessible().await;
    assert_eq!(
        browser.tab_order().await,
        [
            "a \"中文\"",
            "input#name",
            "input#password",
            "button \"Sign in\""
        ]
    );
    // A click on a label puts the cursor in its field.
    browser.click("label[for=password]").await;
    let focused = browser
        .execute("return document.activeElement.id", vec![])
        .await;
    assert_eq!(focused, "password");
    browser.goto("/login").await;
    browser.screenshot("sign-in").await;

    sign_in(&browser, "root", PASSWORD).await;
    assert_eq!(browser.path().await, "/login/totp");
    browser.assert_accessible().await;
    assert_eq!(
        browser.tab_order().await,
        ["a \"中文\"", "input#code", "button \"Continue\""]
    );
    browser.goto("/login/totp").await;
    let picture = browser.screenshot("totp").await;
    let png = std::fs::read(picture).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    // IHDR: the size of the page's viewport, the window's width.
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    let viewport = browser
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await;
    assert_eq!(viewport[0], crate::browser::WIDTH);
    assert_eq!(serde_json::json!([size(16), size(20)]), viewport);
}

/// Signs `name` in (with the code of `totp` when given) in a browser that has shown `/login`.
async fn signed_in(app: &TestApp, browser: &Browser, name: &str, totp: Option<&TotpSecret>) {
    browser.goto("/login").await;
    sign_in(browser, name, PASSWORD).await;
    if let Some(secret) = totp {
        browser.wait_for("#code").await;
        browser
            .fill("#code", &code_at(secret, app.state.clock.unix_millis()))
            .await;
        browser.submit("form[action='/login/totp']").await;
    }
    assert_eq!(browser.path().await, "/", "{name} signed in");
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get_authed("/v1/me", token).await.status().as_u16()
}

/// The user a mini program logged in through the simulator: its id and access token.
async fn mini_program_user(app: &TestApp, who: &str, phone: &str) -> (String, String) {
    let body = app.login(who).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let bound = app
        .post_authed(
            "/v1/me/phone",
            &token,
            serde_json::json!({ "code": app.phone_code_for(who, phone) }),
        )
        .await;
    assert_eq!(bound.status(), 200);
    (body["user"]["id"].as_str().unwrap().to_owned(), token)
}

#[tokio::test]
async fn an_operator_finds_a_user_bans_unbans_and_revokes_a_session() {
    let app = console().await;
    let (id, token) = mini_program_user(&app, "browser-alice", "13700137000").await;
    add(&app, "op", AdminRole::Operator, None).await;
    let Some(browser) = open(&app).await else {
        return;
    };
    signed_in(&app, &browser, "op", None).await;

    // Found by the phone number typed into the search.
    browser.follow("nav a[href='/users']").await;
    browser.fill("#q", "137 0013 7000").await;
    browser.submit("form[action='/users']").await;
    let listing = browser.text_of("table").await;
    assert!(listing.contains("137****7000"), "{listing}");
    assert!(!listing.contains("13700137000"), "masked: {listing}");
    browser.follow(&format!("a[href='/users/{id}']")).await;
    assert_eq!(browser.path().await, format!("/users/{id}"));

    // Banned with a reason: the mini program's token is refused at once.
    browser.fill("#reason", "fraud report 42").await;
    browser.submit("form[action$='/ban']").await;
    assert!(browser.text_of("[role=status]").await.starts_with("Banned"));
    assert_eq!(me_status(&app, &token).await, 401);
    let bans = audited(&app, "user_banned").await;
    assert_eq!(bans[0].0.actor_id.as_deref(), Some("op"));
    assert_eq!(bans[0].1["reason"], "fraud report 42");
    assert!(browser.text().await.contains("banned"));

    // Unbanned: the user logs in again, with a new session that an operator then revokes.
    browser.submit("form[action$='/unban']").await;
    assert!(
        browser
            .text_of("[role=status]")
            .await
            .starts_with("Unbanned")
    );
    let again = app.login("browser-alice").await;
    let fresh = again["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&app, &fresh).await, 200);
    browser.goto(&format!("/users/{id}")).await;
    browser
        .submit("form[action^='/sessions/'][action$='/revoke']")
        .await;
    assert_eq!(
        browser.path().await,
        format!("/users/{id}?done=session-revoked")
    );
    assert_eq!(
        browser.text_of("[role=status]").await,
        "The session was revoked."
    );
    assert_eq!(me_status(&app, &fresh).await, 401);
    assert_eq!(
        audited(&app, "session_revoked").await[0]
            .0
            .actor_id
            .as_deref(),
        Some("op")
    );
}

#[tokio::test]
async fn a_viewer_cannot_ban_even_with_a_forged_form() {
    let app = console().await;
    let (id, token) = mini_program_user(&app, "browser-bob", "13600136000").await;
    add(&app, "watcher", AdminRole::Viewer, None).await;
    let Some(browser) = open(&app).await else {
        return;
    };
    signed_in(&app, &browser, "watcher", None).await;
    browser.goto(&format!("/users/{id}")).await;
    let forms = browser
        .execute(
            "return document.querySelectorAll('form[action$=\"/ban\"]').length",
            vec![],
        )
        .await;
    assert_eq!(forms, 0, "no ban button for a viewer");
    // A ban form made in the page, with the session's own CSRF token: refused by the server.
    browser
        .execute(
            "const form = document.createElement('form');\
             form.method = 'post'; form.action = arguments[0];\
             const csrf = document.querySelector('input[name=csrf]').cloneNode();\
             form.appendChild(csrf);\
             const go = document.createElement('button'); go.textContent = 'Ban';\
             form.appendChild(go); form.id = 'forged';\
             document.body.appendChild(form);",
            vec![Value::from(format!("/users/{id}/ban"))],
        )
        .await;
    browser.submit("#forged").await;
    assert_eq!(browser.title().await, "Refused · wxlogin");
    assert!(browser.text_of("[role=alert]").await.contains("operator"));
    assert_eq!(me_status(&app, &token).await, 200, "not banned");
    assert!(audited(&app, "user_banned").await.is_empty());
}

#[tokio::test]
async fn an_owner_rotates_the_signing_key() {
    let app = console().await;
    let secret = TotpSecret::generate();
    add(&app, "root", AdminRole::Owner, Some(&secret)).await;
    let Some(browser) = open(&app).await else {
        return;
    };
    signed_in(&app, &browser, "root", Some(&secret)).await;
    browser.follow("nav a[href='/keys']").await;
    let before = browser.text_of("table").await;
    assert!(before.contains("current") && !before.contains("pending"));
    browser.submit("form[action='/keys/rotate']").await;
    assert!(
        browser
            .text_of("[role=status]")
            .await
            .starts_with("A new key is published")
    );
    assert!(browser.text_of("table").await.contains("pending"));
    assert_eq!(
        audited(&app, "key_rotated").await[0].0.actor_id.as_deref(),
        Some("root")
    );
}

/// Every page, in both languages: accessible, no wider than the window, and pictured.
#[tokio::test]
async fn every_page_is_accessible_and_pictured_in_both_languages() {
    let app = console().await;
    let (id, _) = mini_program_user(&app, "browser-carol", "13500135000").await;
    app.login("browser-dan").await;
    app.login("browser-dan").await;
    let secret = TotpSecret::generate();
    add(&app, "root", AdminRole::Owner, Some(&secret)).await;
    let user_page = format!("/users/{id}");
    let pages = [
        ("overview", "/"),
        ("users", "/users"),
        ("user", user_page.as_str()),
        ("sessions", "/sessions"),
        ("audit", "/audit"),
        ("keys", "/keys?census=1"),
        ("apps", "/apps"),
        ("admins", "/admins"),
    ];
    for (languages, suffix, expect) in [("en-US,en", "en", "Sign out"), ("zh-CN,zh", "zh", "退出")]
    {
        let Some(browser) =
            Browser::open_in(app.admin_address.as_deref().unwrap(), languages).await
        else {
            return;
        };
        signed_in(&app, &browser, "root", Some(&secret)).await;
        // The console's script ran under its policy and told the server the browser's zone.
        let offset = browser
            .execute("return String(-new Date().getTimezoneOffset())", vec![])
            .await;
        assert_eq!(
            browser.cookie("wxlogin_tz").await,
            offset.as_str().map(str::to_owned)
        );
        // The next code of the same step would be refused as used: move on a step.
        app.wx.clock.advance(std::time::Duration::from_secs(30));
        for (name, path) in pages {
            browser.goto(path).await;
            let text = browser.text().await;
            assert!(text.contains(expect), "{path} in {suffix}: {text}");
            browser.assert_accessible().await;
            browser.screenshot(&format!("{name}-{suffix}")).await;
        }
        // The header's links and buttons come first by keyboard, in order.
        browser.goto("/users").await;
        let order = browser.tab_order().await;
        assert!(order.len() >= 10, "{order:?}");
        assert!(order.iter().any(|f| f == "input#q"), "{order:?}");
    }
}
