//! The admin console's sign-in over HTTP (`admin.listen`), with a cookie jar as a browser keeps
//! one: password, then the TOTP code; the cookie's attributes, the CSRF token of every form, the
//! lockout, the idle timeout and the headers of every page. Time moves by the test clock.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use wxlogin::crypto::{TotpSecret, hash_password};
use wxlogin::domain::{AdminName, AdminPassword, AdminRole};
use wxlogin::services::admins::seal_totp_secret;
use wxlogin::store::{AdminAccount, AuditQuery, AuditRecord};

use crate::helpers::*;

pub(crate) const PASSWORD: &str = "console password 1";

pub(crate) async fn console() -> TestApp {
    TestApp::spawn_with(|s| {
        s.admin.listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin.max_failed_sign_ins = 3;
        s.admin.lockout_secs = 600;
        s.admin.session_idle_secs = 300;
    })
    .await
}

/// A browser: its own cookie jar, redirects not followed (the tests look at them).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub(crate) async fn add(app: &TestApp, name: &str, role: AdminRole, totp: Option<&TotpSecret>) {
    let password = AdminPassword::parse(PASSWORD.to_owned()).unwrap();
    let name = AdminName::parse(name).unwrap();
    let account = AdminAccount {
        name: name.clone(),
        role,
        password_hash: hash_password(&password),
        sealed_totp_secret: None,
        totp_confirmed_at: None,
        totp_last_step: None,
        totp_required: role == AdminRole::Owner,
        failed_attempts: 0,
        locked_until: None,
        created_at: 0,
        updated_at: 0,
    };
    app.state.store.insert_admin(&account).await.unwrap();
    if let Some(secret) = totp {
        let sealing = app.state.settings.security.sealing_key.as_ref().unwrap();
        let sealed = seal_totp_secret(sealing, &name, secret);
        assert!(
            app.state
                .store
                .set_admin_totp(&name, &sealed, 0)
                .await
                .unwrap()
        );
    }
    app.remember_secret(PASSWORD);
}

/// The audit log's entries of `kind`, oldest first.
pub(crate) async fn audited(app: &TestApp, kind: &str) -> Vec<(AuditRecord, serde_json::Value)> {
    let query = AuditQuery {
        user: None,
        kind: Some(kind.to_owned()),
        since: None,
        limit: 100,
    };
    let mut entries = app.state.store.list_audit_events(&query).await.unwrap();
    entries.reverse();
    entries
        .into_iter()
        .map(|e| {
            let details = serde_json::from_str(&e.details).unwrap();
            (e, details)
        })
        .collect()
}

fn url(app: &TestApp, path: &str) -> String {
    format!(
        "{}{path}",
        app.admin_address.as_deref().expect("the console is on")
    )
}

/// The hidden CSRF field of a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn get(app: &TestApp, browser: &reqwest::Client, path: &str) -> (StatusCode, String) {
    let response = browser.get(url(app, path)).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(url(app, path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap()
}

fn location(response: &reqwest::Response) -> &str {
    response.headers()["location"].to_str().unwrap()
}

/// Shows the sign-in form and posts the name and password with its token.
async fn sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let (status, page) = get(app, browser, "/login").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&page);
    post(
        app,
        browser,
        "/login",
        &[("csrf", &token), ("name", name), ("password", password)],
    )
    .await
}

pub(crate) fn code_at(secret: &TotpSecret, unix_ms: i64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&(unix_ms / 1000 / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let at = usize::from(digest[19] & 0xf);
    let value = u32::from_be_bytes(digest[at..at + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

#[tokio::test]
async fn an_operator_signs_in_with_a_password_and_out_with_the_csrf_token() {
    let app = console().await;
    add(&app, "op", AdminRole::Operator, None).await;
    let browser = browser();

    // Unsigned: the console sends to the sign-in page, whose headers forbid script and framing.
    let response = browser.get(url(&app, "/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    let response = browser.get(url(&app, "/login")).send().await.unwrap();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("wxlogin_admin="), "{cookie}");
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "on loopback: {cookie}");
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script"), "no script");
    assert!(page.contains("<label for=\"password\">"));
    let css = browser.get(url(&app, "/console.css")).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // A post without the form's token, or with another, is refused.
    let refused = post(
        &app,
        &browser,
        "/login",
        &[("name", "op"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let token = csrf(&page);
    let wrong = post(
        &app,
        &browser,
        "/login",
        &[("csrf", "x"), ("name", "op"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    // Without the cookie (another browser) the token alone is refused too.
    let stranger = post(
        &app,
        &reqwest::Client::new(),
        "/login",
        &[("csrf", &token), ("name", "op"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);

    let response = post(
        &app,
        &browser,
        "/login",
        &[("csrf", &token), ("name", "op"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let (status, home) = get(&app, &browser, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        home.contains("Signed in as <strong>op</strong> (operator)"),
        "{home}"
    );
    assert_ne!(csrf(&home), token, "a new session after the sign-in");

    let refused = post(&app, &browser, "/logout", &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get(&app, &browser, "/").await.0,
        StatusCode::OK,
        "still signed in"
    );
    let out = post(&app, &browser, "/logout", &[("csrf", &csrf(&home))]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let response = browser.get(url(&app, "/")).send().await.unwrap();
    assert_eq!(location(&response), "/login");

    // Both are in the audit log, naming the administrator and the connection's address.
    for kind in ["admin_signed_in", "admin_signed_out"] {
        let entries = audited(&app, kind).await;
        assert_eq!(entries.len(), 1, "{kind}");
        let (entry, details) = &entries[0];
        assert_eq!(
            (entry.actor_kind.as_str(), entry.actor_id.as_deref()),
            ("admin", Some("op"))
        );
        assert_eq!(entry.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(details["admin"], "op");
    }
}

#[tokio::test]
async fn totp_is_asked_after_the_password_used_once_and_required_for_owners() {
    let app = console().await;
    let secret = TotpSecret::generate();
    add(&app, "root", AdminRole::Owner, Some(&secret)).await;
    add(&app, "bare", AdminRole::Owner, None).await;

    let refused = sign_in(&app, &browser(), "bare", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("wxlogin admins totp")
    );

    let browser = browser();
    let response = sign_in(&app, &browser, "root", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login/totp");
    let response = browser.get(url(&app, "/")).send().await.unwrap();
    assert_eq!(
        location(&response),
        "/login",
        "not signed in before the code"
    );
    let (status, page) = get(&app, &browser, "/login/totp").await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&page);
    let now = app.state.clock.unix_millis();
    let code = code_at(&secret, now);
    let no_token = post(&app, &browser, "/login/totp", &[("code", &code)]).await;
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let response = post(
        &app,
        &browser,
        "/login/totp",
        &[("csrf", &token), ("code", &wrong)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = post(
        &app,
        &browser,
        "/login/totp",
        &[("csrf", &token), ("code", &code)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let (_, home) = get(&app, &browser, "/").await;
    assert!(home.contains("Signed in as <strong>root</strong> (owner)"));

    // The same code in another sign-in is refused: it was used.
    let other = self::browser();
    sign_in(&app, &other, "root", PASSWORD).await;
    let (_, page) = get(&app, &other, "/login/totp").await;
    let response = post(
        &app,
        &other,
        "/login/totp",
        &[("csrf", &csrf(&page)), ("code", &code)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.wx.clock.advance(Duration::from_secs(30));
    let next = code_at(&secret, app.state.clock.unix_millis());
    let response = post(
        &app,
        &other,
        "/login/totp",
        &[("csrf", &csrf(&page)), ("code", &next)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_failures_lock_an_administrator_out_until_the_lockout_ends() {
    let app = console().await;
    add(&app, "op", AdminRole::Operator, None).await;
    let browser = browser();
    for _ in 0..2 {
        let response = sign_in(&app, &browser, "op", "not the password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = sign_in(&app, &browser, "op", "not the password").await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the third locks"
    );
    let response = sign_in(&app, &browser, "op", PASSWORD).await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked out, right password or not"
    );
    let name = AdminName::parse("op").unwrap();
    let account = app.state.store.get_admin(&name).await.unwrap().unwrap();
    assert!(account.locked_until.unwrap() > app.state.clock.unix_millis());
    // Each failed password is in the audit log; the third says it locked the administrator out.
    // The sign-in refused for the lockout is not a failure of the password.
    let failures = audited(&app, "admin_sign_in_failed").await;
    let locked: Vec<bool> = failures
        .iter()
        .map(|(_, details)| details["locked"].as_bool().unwrap())
        .collect();
    assert_eq!(locked, [false, false, true]);
    assert!(failures.iter().all(|(entry, details)| {
        details["step"] == "password" && entry.actor_id.as_deref() == Some("op")
    }));

    // Unknown names are answered as a wrong password.
    let response = sign_in(&app, &browser, "nobody", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    app.wx.clock.advance(Duration::from_secs(599));
    let response = sign_in(&app, &browser, "op", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.wx.clock.advance(Duration::from_secs(1));
    let response = sign_in(&app, &browser, "op", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    assert_eq!(audited(&app, "admin_signed_in").await.len(), 1);
    // An unknown name is recorded nowhere: the log holds no name a stranger typed.
    assert_eq!(audited(&app, "admin_sign_in_failed").await.len(), 3);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let app = console().await;
    add(&app, "op", AdminRole::Viewer, None).await;
    let browser = browser();
    sign_in(&app, &browser, "op", PASSWORD).await;
    app.wx.clock.advance(Duration::from_secs(299));
    assert_eq!(get(&app, &browser, "/").await.0, StatusCode::OK);
    app.wx.clock.advance(Duration::from_secs(299));
    assert_eq!(
        get(&app, &browser, "/").await.0,
        StatusCode::OK,
        "each request restarts the idle time"
    );
    app.wx.clock.advance(Duration::from_secs(300));
    let response = browser.get(url(&app, "/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
}
