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
    assert!(home.contains("Signed in as root (owner)"), "{home}");
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
        ["input#name", "input#password", "button \"Sign in\""]
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
        ["input#code", "button \"Continue\""]
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
