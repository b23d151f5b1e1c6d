//! `[rate_limits]` through HTTP: 429 `rate_limited` with `Retry-After` per client IP, per user
//! and per app, on memory and on one Redis shared by two servers; failing open while Redis is cut;
//! configuration errors through `wxlogin config check`. Time moves on the servers' `ManualClock`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use wxlogin::config::{Rate, RateLimitSettings, Settings};

use crate::helpers::*;

fn rate(text: &str) -> Option<Rate> {
    Some(text.parse().unwrap())
}

/// A server with every limit off but those `limits` sets.
async fn spawn(limits: impl FnOnce(&mut RateLimitSettings)) -> TestApp {
    spawn_with(limits, |_| {}).await
}

async fn spawn_with(
    limits: impl FnOnce(&mut RateLimitSettings),
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    TestApp::spawn_with(|s| {
        s.rate_limits = RateLimitSettings::off();
        limits(&mut s.rate_limits);
        configure(s);
    })
    .await
}

async fn login_from(app: &TestApp, user: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/v1/auth/wechat/login"))
        .json(&json!({ "code": app.code_for(user), "appid": DEMO_APPID }));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

async fn login(app: &TestApp, user: &str) -> reqwest::Response {
    login_from(app, user, None).await
}

/// Asserts a 429 in the error envelope and returns its `Retry-After` in seconds.
async fn assert_limited(response: reqwest::Response) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("429 sends Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    let body = assert_error(response, 429, "rate_limited").await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["error", "message", "request_id"], "{body}");
    retry_after
}

async fn refresh(app: &TestApp, token: &Value) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

#[tokio::test]
async fn the_login_after_the_per_ip_burst_is_429_before_wechat_until_the_clock_moves() {
    let app = spawn(|l| l.login.per_ip = rate("3/min")).await;
    for user in ["a1", "a2", "a3"] {
        assert_eq!(login(&app, user).await.status(), 200, "{user}");
    }
    let refused = login(&app, "a4").await;
    // 3 a minute: one more every 20 s.
    assert_eq!(assert_limited(refused).await, 20);
    assert_eq!(
        app.wx.calls("jscode2session").await,
        3,
        "the refused login did not reach WeChat"
    );

    app.wx.clock.advance(Duration::from_secs(19));
    assert_eq!(assert_limited(login(&app, "a4").await).await, 1);
    app.wx.clock.advance(Duration::from_secs(1));
    assert_eq!(login(&app, "a4").await.status(), 200);
    assert_limited(login(&app, "a5").await).await;
}

#[tokio::test]
async fn another_client_address_has_its_own_limit() {
    let app = spawn_with(
        |l| l.login.per_ip = rate("1/min"),
        |s| s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
    )
    .await;
    let (a, b) = (Some("203.0.113.1"), Some("198.51.100.7"));
    assert_eq!(login_from(&app, "b1", a).await.status(), 200);
    assert_limited(login_from(&app, "b2", a).await).await;
    assert_eq!(login_from(&app, "b3", b).await.status(), 200);
    // What a client writes left of the address the trusted proxy saw changes nothing.
    let spoofed = Some("192.0.2.1, 203.0.113.1");
    assert_limited(login_from(&app, "b4", spoofed).await).await;
    // IPv6 clients count by their /64.
    let (c, same_net) = (Some("2001:db8:1:2::1"), Some("2001:db8:1:2:abcd::9"));
    assert_eq!(login_from(&app, "b5", c).await.status(), 200);
    assert_limited(login_from(&app, "b6", same_net).await).await;
}

#[tokio::test]
async fn per_user_on_login_counts_the_wechat_user_after_the_code_exchange() {
    let app = spawn(|l| l.login.per_user = rate("1/min")).await;
    assert_eq!(login(&app, "carol").await.status(), 200);
    assert_limited(login(&app, "carol").await).await;
    // The code was exchanged (that is how the user became known) and is spent.
    assert_eq!(app.wx.calls("jscode2session").await, 2);
    assert_eq!(login(&app, "dave").await.status(), 200);
    app.wx.clock.advance(Duration::from_secs(60));
    assert_eq!(login(&app, "carol").await.status(), 200);
}

#[tokio::test]
async fn per_app_counts_every_login_of_the_app_whatever_its_address() {
    let app = spawn_with(
        |l| l.login.per_app = rate("2/min"),
        |s| s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
    )
    .await;
    assert_eq!(
        login_from(&app, "e1", Some("203.0.113.1")).await.status(),
        200
    );
    assert_eq!(
        login_from(&app, "e2", Some("203.0.113.2")).await.status(),
        200
    );
    assert_eq!(
        assert_limited(login_from(&app, "e3", Some("203.0.113.3")).await).await,
        30
    );
    assert_eq!(app.wx.calls("jscode2session").await, 2);
}

#[tokio::test]
async fn off_counts_nothing_and_the_defaults_are_on() {
    let app = spawn(|_| {}).await;
    for n in 0..30 {
        assert_eq!(login(&app, "frank").await.status(), 200, "login {n}");
    }
    // The defaults limit logins per WeChat user (10 a minute).
    let app = TestApp::spawn().await;
    for n in 0..10 {
        assert_eq!(login(&app, "grace").await.status(), 200, "login {n}");
    }
    assert_limited(login(&app, "grace").await).await;
}

#[tokio::test]
async fn per_user_on_refresh_counts_the_sessions_user_and_rotates_nothing_when_refused() {
    let app = spawn(|l| l.refresh.per_user = rate("2/min")).await;
    let alice = app.login("alice").await;
    let mut token = alice["refresh_token"].clone();
    for _ in 0..2 {
        let response = refresh(&app, &token).await;
        assert_eq!(response.status(), 200);
        token = response.json::<Value>().await.unwrap()["refresh_token"].clone();
    }
    assert_eq!(assert_limited(refresh(&app, &token).await).await, 30);
    // Another user is not held up.
    let bob = app.login("bob").await;
    assert_eq!(refresh(&app, &bob["refresh_token"]).await.status(), 200);
    // The refused token was not rotated: it still works (no reuse detected) once there is room.
    app.wx.clock.advance(Duration::from_secs(30));
    assert_eq!(refresh(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn per_user_on_phone_binding_counts_the_signed_in_user() {
    let app = spawn(|l| l.phone.per_user = rate("1/min")).await;
    let alice = app.login("alice").await;
    let token = alice["access_token"].as_str().unwrap();
    let bind = |user: &'static str, number: &'static str, token: String| {
        let app = &app;
        async move {
            let code = app.phone_code_for(user, number);
            app.post_authed("/v1/me/phone", &token, json!({ "code": code }))
                .await
        }
    };
    let first = bind("alice", "13800138000", token.to_owned()).await;
    assert_eq!(first.status(), 200);
    assert_limited(bind("alice", "13800138001", token.to_owned()).await).await;
    assert_eq!(app.wx.calls("getuserphonenumber").await, 1);
    let bob = app.login("bob").await;
    let bob_token = bob["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bind("bob", "13900139000", bob_token).await.status(), 200);
}

#[tokio::test]
async fn per_user_on_the_wechat_session_endpoints_counts_both_methods() {
    let app = spawn(|l| l.wechat_session.per_user = rate("2/min")).await;
    let alice = app.login("alice").await;
    let token = alice["access_token"].as_str().unwrap();
    let check = app.get_authed("/v1/wechat/session", token).await;
    assert_eq!(check.status(), 200);
    let renew = app
        .post_authed(
            "/v1/wechat/session",
            token,
            json!({ "code": app.code_for("alice") }),
        )
        .await;
    assert_eq!(renew.status(), 204);
    assert_limited(app.get_authed("/v1/wechat/session", token).await).await;
    assert_eq!(app.wx.calls("checksession").await, 1);
}

#[tokio::test]
async fn a_refused_registration_keeps_its_ticket_and_its_attempts() {
    let app = spawn_with(
        |l| l.register.per_user = rate("1/min"),
        |s| s.apps[0].registration = wxlogin::config::Registration::PhoneRequired,
    )
    .await;
    let response = login(&app, "alice").await;
    let ticket = assert_error(response, 403, "phone_required").await["login_ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    app.remember_secret(ticket.clone());
    let register = |phone_code: String| {
        let (app, ticket) = (&app, ticket.clone());
        async move {
            app.post_json(
                "/v1/auth/wechat/register",
                json!({ "login_ticket": ticket, "phone_code": phone_code }),
            )
            .await
        }
    };
    // A wrong code spends one attempt; the next is refused before WeChat, the ticket put back.
    assert_error(register(app.code_for("alice")).await, 400, "invalid_code").await;
    let phone_code = app.phone_code_for("alice", "13800138000");
    assert_limited(register(phone_code.clone()).await).await;
    assert_eq!(app.wx.calls("getuserphonenumber").await, 1);
    app.wx.clock.advance(Duration::from_secs(60));
    assert_eq!(register(phone_code).await.status(), 200);
}

#[tokio::test]
async fn service_auth_counts_attempts_per_address_before_the_credentials_and_clients_after() {
    let app = spawn(|l| l.service_auth.per_ip = rate("2/min")).await;
    let user = app.login("alice").await;
    let path = format!(
        "/internal/v1/users/{}",
        user["user"]["id"].as_str().unwrap()
    );
    let get = |secret: &'static str| {
        let (app, path) = (&app, path.clone());
        async move {
            app.http
                .get(app.url(&path))
                .basic_auth(SERVICE_ID, Some(secret))
                .send()
                .await
                .unwrap()
        }
    };
    assert_error(get("wrong-secret-0123456789").await, 401, "invalid_client").await;
    assert_error(get("wrong-secret-9876543210").await, 401, "invalid_client").await;
    // Guessing has used the address's allowance: even the right secret waits.
    assert_limited(get(SERVICE_SECRET).await).await;

    let app = spawn(|l| {
        l.service_auth.per_user = rate("1/min");
        l.introspect.per_user = rate("5/min");
    })
    .await;
    let introspect = || {
        app.http
            .post(app.url("/v1/introspect"))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .json(&json!({ "token": "not-a-token" }))
            .send()
    };
    assert_eq!(introspect().await.unwrap().status(), 200);
    // A wrong secret is nobody's: it does not use up the service's allowance.
    let wrong = app
        .http
        .post(app.url("/v1/introspect"))
        .basic_auth(SERVICE_ID, Some("wrong-secret-0123456789"))
        .json(&json!({ "token": "not-a-token" }))
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, "invalid_client").await;
    let body = assert_error(introspect().await.unwrap(), 429, "rate_limited").await;
    assert!(
        body["message"].as_str().unwrap().contains("service client"),
        "{body}"
    );
}

#[tokio::test]
async fn two_servers_sharing_redis_hold_one_per_ip_limit_together() {
    let Some(settings) = crate::shared::redis_settings() else {
        return;
    };
    let redis = settings.clone();
    let limits = |l: &mut RateLimitSettings| l.login.per_ip = rate("3/min");
    let a = spawn_with(limits, |s| s.redis = redis).await;
    let b = spawn_with(limits, |s| s.redis = settings).await;
    assert_eq!(login(&a, "h1").await.status(), 200);
    assert_eq!(login(&b, "h2").await.status(), 200);
    assert_eq!(login(&a, "h3").await.status(), 200);
    assert_limited(login(&b, "h4").await).await;
    assert_limited(login(&a, "h5").await).await;
    assert_eq!(
        a.wx.calls("jscode2session").await + b.wx.calls("jscode2session").await,
        3
    );
}

#[tokio::test]
async fn while_redis_is_cut_limits_fail_open_and_count_again_when_it_is_back() {
    let Some(mut settings) = crate::shared::redis_settings() else {
        return;
    };
    let relay = crate::shared::Relay::to(&settings.url).await;
    settings.url = relay.url.clone();
    settings.response_timeout_ms = 300;
    let app = spawn_with(|l| l.refresh.per_ip = rate("1/min"), |s| s.redis = settings).await;
    let alice = app.login("alice").await;
    let first = refresh(&app, &alice["refresh_token"]).await;
    assert_eq!(first.status(), 200);
    let mut token = first.json::<Value>().await.unwrap()["refresh_token"].clone();
    assert_limited(refresh(&app, &token).await).await;

    relay.cut();
    for _ in 0..3 {
        let response = refresh(&app, &token).await;
        assert_eq!(response.status(), 200, "fails open");
        token = response.json::<Value>().await.unwrap()["refresh_token"].clone();
    }
    assert!(logs_text().contains("rate limits cannot be counted"));

    relay.restore();
    // The command connection reconnects by itself (real time: well under a second here).
    let mut limited = false;
    for _ in 0..50 {
        let response = refresh(&app, &token).await;
        if response.status() == 429 {
            limited = true;
            break;
        }
        assert_eq!(response.status(), 200);
        token = response.json::<Value>().await.unwrap()["refresh_token"].clone();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(limited, "the limit holds again once Redis is back");
}

fn config_check(toml: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlogin.toml");
    std::fs::write(&path, toml).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090.
        .env("WXLOGIN_METRICS__LISTEN", "")
        .args(["config", "check", "--config"])
        .arg(&path);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Enough for `config check`, which applies `serve`'s checks.
fn production_toml(extra: &str) -> String {
    format!(
        r#"
[server]
public_url = "https://login.example.com"
[security]
sealing_key = "{}"
[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"
{extra}
"#,
        wxlogin::crypto::SealingKey::generate_base64()
    )
}

#[test]
fn config_check_takes_rates_from_the_file_and_the_environment_and_names_bad_ones() {
    let output = config_check(
        &production_toml("[rate_limits.refresh]\nper_user = \"off\"\nper_app = \"50/s\"\n"),
        &[("WXLOGIN_RATE_LIMITS__LOGIN__PER_IP", "5/min")],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: toml::Table = stdout.parse().unwrap();
    let limits = &printed["rate_limits"];
    assert_eq!(limits["login"]["per_ip"].as_str(), Some("5/min"));
    assert_eq!(limits["login"]["per_user"].as_str(), Some("10/min"));
    assert_eq!(limits["refresh"]["per_user"].as_str(), Some("off"));
    assert_eq!(limits["refresh"]["per_app"].as_str(), Some("50/s"));

    for (toml, env, named) in [
        (
            "[rate_limits.login]\nper_ip = \"5/day\"\n",
            None,
            "rate_limits.login.per_ip",
        ),
        (
            "[rate_limits.phone]\nper_user = \"0/min\"\n",
            None,
            "rate_limits.phone.per_user",
        ),
        (
            "[rate_limits.refresh]\nper_app = \"x/min\"\n",
            None,
            "rate_limits.refresh.per_app",
        ),
        (
            "[rate_limits.refresh]\nper_app = 5\n",
            None,
            "rate_limits.refresh.per_app",
        ),
        (
            "[rate_limits.logins]\nper_ip = \"5/min\"\n",
            None,
            "rate_limits.logins",
        ),
        (
            "[rate_limits.login]\nper_device = \"5/min\"\n",
            None,
            "rate_limits.login.per_device",
        ),
        (
            "[rate_limits.introspect]\nper_app = \"5/min\"\n",
            None,
            "rate_limits.introspect.per_app",
        ),
        (
            "",
            Some(("WXLOGIN_RATE_LIMITS__LOGIN__PER_IP", "5/fortnight")),
            "WXLOGIN_RATE_LIMITS__LOGIN__PER_IP",
        ),
    ] {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let output = config_check(&production_toml(toml), &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{toml} {env:?} accepted");
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}
