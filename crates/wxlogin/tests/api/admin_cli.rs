//! The operator's verbs (`users list | show | ban | unban | unbind-phone`, `sessions list |
//! revoke`, `wechat access-token show | refresh`) through the real `wxlogin` binary, beside a
//! running server whose users logged in through the simulator over HTTP. Each scenario runs on a
//! SQLite file and on a fresh PostgreSQL database (WXLOGIN_TEST_POSTGRES_URL); those that need
//! `[redis]` on WXLOGIN_TEST_REDIS_URL.
//!
//! The binary runs on the wall clock and the server on the test clock, which starts at the wall
//! clock's time: the tests move the test clock by seconds at most, so both agree on what is live.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::time::Duration;

use futures::FutureExt as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wxlogin::config::{Registration, Settings};

use crate::faults::FreshDatabase;
use crate::helpers::*;
use crate::shared::redis_settings;

/// What one run of the binary gave.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `wxlogin ARGS --config <the app's deployment>` as a separate process. Off the test's
/// runtime: the binary may call the simulator, which that runtime serves.
async fn cli(app: &TestApp, args: &[&str]) -> Ran {
    let config = app.write_cli_config();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .args(args)
        .arg("--config")
        .arg(&config)
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        .env("WXLOGIN_METRICS__LISTEN", "");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let ran = Ran {
        success: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    app.assert_no_secret_in(&ran.stdout);
    app.assert_no_secret_in(&ran.stderr);
    ran
}

/// Runs a verb that must succeed; its standard output.
async fn ok(app: &TestApp, args: &[&str]) -> String {
    let ran = cli(app, args).await;
    assert!(ran.success, "{args:?} failed: {}", ran.stderr);
    ran.stdout
}

/// The user's audit entries, newest first (`wxlogin audit list --user ID --json`).
async fn audit_of(app: &TestApp, user: &str) -> Vec<Value> {
    ok(app, &["audit", "list", "--user", user, "--json"])
        .await
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The one entry of type `kind` among `entries`.
fn entry<'a>(entries: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = entries.iter().filter(|e| e["type"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} entry in {entries:?}");
    found[0]
}

async fn ok_json(app: &TestApp, args: &[&str]) -> Value {
    let stdout = ok(app, args).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Runs a verb that must fail; its one line on standard error.
async fn fails(app: &TestApp, args: &[&str]) -> String {
    let ran = cli(app, args).await;
    assert!(!ran.success, "{args:?} succeeded: {}", ran.stdout);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one line on stderr: {}",
        ran.stderr
    );
    assert!(lines[0].starts_with("wxlogin: "), "{}", lines[0]);
    lines[0].to_owned()
}

/// Runs `scenario` against a server on a SQLite file, then on a fresh PostgreSQL database (also
/// for `admins_cli.rs`).
pub(crate) async fn on_both_backends<F, Fut>(
    configure: impl Fn(&mut Settings) + Clone + 'static,
    scenario: F,
) where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario(TestApp::spawn_with(configure.clone()).await).await;
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let url = db.url();
    let outcome = AssertUnwindSafe(async {
        let app = TestApp::spawn_with(move |s| {
            s.database.url = Some(url);
            configure(s);
        })
        .await;
        assert!(app.state.settings.database_url().starts_with("postgres"));
        scenario(app).await;
    })
    .catch_unwind()
    .await;
    db.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn user_of(login: &Value) -> String {
    login["user"]["id"].as_str().unwrap().to_owned()
}

fn access(login: &Value) -> &str {
    login["access_token"].as_str().unwrap()
}

async fn refresh(app: &TestApp, login: &Value) -> reqwest::Response {
    app.post_json(
        "/v1/auth/refresh",
        json!({ "refresh_token": login["refresh_token"] }),
    )
    .await
}

async fn login_response(app: &TestApp, user: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/wechat/login",
        json!({ "code": app.code_for(user), "appid": DEMO_APPID }),
    )
    .await
}

/// Lets the server's trust in what it read of a session run out.
fn pass_session_cache(app: &TestApp) {
    let cache = app.state.settings.tokens.session_cache_ms;
    assert!(cache <= 1_000, "the bound the docs promise");
    app.wx.clock.advance(Duration::from_millis(cache + 1));
}

#[tokio::test]
async fn users_list_and_show_print_tables_and_json_with_masked_phones() {
    on_both_backends(
        |_| {},
        |app| async move {
            let alice = app
                .post_json(
                    "/v1/auth/wechat/login",
                    json!({
                        "code": app.code_for("alice"),
                        "appid": DEMO_APPID,
                        "phone_code": app.phone_code_for("alice", "13800138000"),
                    }),
                )
                .await;
            assert_eq!(alice.status(), 200);
            let alice: Value = alice.json().await.unwrap();
            // Distinct creation times, so "newest first" has one answer.
            app.wx.clock.advance(Duration::from_millis(10));
            let bob = app.login("bob").await;
            let renamed = app
                .http
                .patch(app.url("/v1/me"))
                .bearer_auth(access(&bob))
                .json(&json!({ "nickname": "Bob 小明" }))
                .send()
                .await
                .unwrap();
            assert_eq!(renamed.status(), 200);
            let (alice_id, bob_id) = (user_of(&alice), user_of(&bob));

            let all = ok_json(&app, &["users", "list", "--json"]).await;
            let all = all.as_array().unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0]["id"], bob_id.as_str(), "newest first");
            let listed_alice = &all[1];
            assert_eq!(listed_alice["id"], alice_id.as_str());
            assert_eq!(listed_alice["phone"], "138****8000", "masked in JSON too");
            assert_eq!(listed_alice["banned"], false);
            assert_eq!(listed_alice["banned_at"], Value::Null);
            assert_eq!(listed_alice["identities"], 1);
            assert_eq!(listed_alice["nickname"], Value::Null);
            assert!(listed_alice["created_at"].as_str().unwrap().ends_with('Z'));
            assert_eq!(all[0]["nickname"], "Bob 小明");

            let table = ok(&app, &["users", "list"]).await;
            let lines: Vec<&str> = table.lines().collect();
            assert_eq!(lines.len(), 3, "{table}");
            for column in ["ID", "CREATED", "NICKNAME", "PHONE", "BANNED", "IDENTITIES"] {
                assert!(lines[0].contains(column), "{table}");
            }
            assert!(
                table.contains("138****8000") && !table.contains("13800138000"),
                "{table}"
            );
            let phone_at = lines[0].find("PHONE").unwrap();
            assert_eq!(
                lines[2].find("138****8000"),
                Some(phone_at),
                "aligned: {table}"
            );

            // Search: the id, the phone in another spelling, the openid, a nickname substring.
            let openid = app
                .wx
                .mock()
                .mint_login_code(DEMO_APPID, "alice")
                .unwrap()
                .openid;
            for (search, expected) in [
                (alice_id.as_str(), &alice_id),
                ("+86 138-0013-8000", &alice_id),
                (openid.as_str(), &alice_id),
                ("小明", &bob_id),
                ("bob", &bob_id),
            ] {
                let found = ok_json(&app, &["users", "list", "--search", search, "--json"]).await;
                let ids: Vec<&str> = found
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["id"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, [expected.as_str()], "search {search}");
            }
            let none = ok_json(
                &app,
                &["users", "list", "--search", "100%_nobody", "--json"],
            )
            .await;
            assert_eq!(none, json!([]), "LIKE wildcards in the text are literal");
            let limited = ok_json(&app, &["users", "list", "--limit", "1", "--json"]).await;
            assert_eq!(limited.as_array().unwrap().len(), 1);

            let shown = ok_json(&app, &["users", "show", &alice_id, "--json"]).await;
            assert_eq!(shown["id"], alice_id.as_str());
            assert_eq!(shown["phone"], "138****8000");
            assert_eq!(shown["phone_country_code"], "86");
            assert_eq!(shown["banned"], false);
            let identities = shown["identities"].as_array().unwrap();
            assert_eq!(identities.len(), 1);
            assert_eq!(identities[0]["appid"], DEMO_APPID);
            assert_eq!(identities[0]["openid"], openid.as_str());
            assert!(identities[0]["last_login_at"].is_string());
            let sessions = shown["sessions"].as_array().unwrap();
            assert_eq!(sessions.len(), 1);
            assert_eq!(sessions[0]["appid"], DEMO_APPID);
            assert_eq!(sessions[0]["revoked_at"], Value::Null);

            let revealed = ok_json(
                &app,
                &["users", "show", &alice_id, "--json", "--reveal-phone"],
            )
            .await;
            assert_eq!(revealed["phone"], "13800138000");
            let text = ok(&app, &["users", "show", &alice_id]).await;
            assert!(
                text.contains("138****8000") && !text.contains("13800138000"),
                "{text}"
            );
            assert!(
                text.contains(&openid) && text.contains("LAST LOGIN"),
                "{text}"
            );
            let text = ok(&app, &["users", "show", &alice_id, "--reveal-phone"]).await;
            assert!(text.contains("13800138000"), "{text}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_ban_refuses_tokens_within_the_session_cache_and_logins_until_unbanned() {
    on_both_backends(
        |_| {},
        |app| async move {
            let login = app.login("mallory").await;
            let id = user_of(&login);
            assert_eq!(app.get_authed("/v1/me", access(&login)).await.status(), 200);

            let banned = ok(&app, &["users", "ban", &id, "--reason", "spam"]).await;
            assert!(banned.contains(&format!("banned {id}")), "{banned}");
            assert!(banned.contains("1 session(s) revoked"), "{banned}");
            assert!(banned.contains("tokens.session_cache_ms"), "{banned}");
            // Without Redis the server trusts its read of the session a little longer, never more
            // than tokens.session_cache_ms.
            assert_eq!(app.get_authed("/v1/me", access(&login)).await.status(), 200);
            pass_session_cache(&app);
            assert_error(
                app.get_authed("/v1/me", access(&login)).await,
                401,
                "invalid_token",
            )
            .await;
            assert_error(refresh(&app, &login).await, 401, "invalid_grant").await;
            assert_error(login_response(&app, "mallory").await, 403, "login_blocked").await;

            let shown = ok_json(&app, &["users", "show", &id, "--json"]).await;
            assert_eq!(shown["banned"], true);
            assert!(shown["banned_at"].is_string());
            assert_eq!(shown["sessions"], json!([]));
            let again = ok(&app, &["users", "ban", &id]).await;
            assert!(again.contains("already banned"), "{again}");

            let unbanned = ok(&app, &["users", "unban", &id]).await;
            assert!(unbanned.contains("unbanned"), "{unbanned}");
            let back = login_response(&app, "mallory").await;
            assert_eq!(back.status(), 200);
            let back: Value = back.json().await.unwrap();
            assert_eq!(user_of(&back), id);
            assert_eq!(app.get_authed("/v1/me", access(&back)).await.status(), 200);
            // The ban's revocation stays: the old session does not come back.
            assert_error(refresh(&app, &login).await, 401, "invalid_grant").await;
            assert!(
                ok(&app, &["users", "unban", &id])
                    .await
                    .contains("was not banned")
            );

            // Each change is in the audit log with the operator; the repeated ban and the unban
            // of a user who was not banned changed nothing, and the ban is recorded once more.
            let entries = audit_of(&app, &id).await;
            let bans: Vec<&Value> = entries
                .iter()
                .filter(|e| e["type"] == "user_banned")
                .collect();
            assert_eq!(bans.len(), 2, "{entries:?}");
            let first = bans[1];
            assert_eq!(first["actor"]["kind"], "admin", "{first}");
            assert_eq!(first["details"]["reason"], "spam", "{first}");
            assert_eq!(first["details"]["sessions_revoked"], 1, "{first}");
            assert_eq!(entry(&entries, "user_unbanned")["actor"]["kind"], "admin");
        },
    )
    .await;
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_at_a_time_or_all_of_a_user() {
    on_both_backends(
        |_| {},
        |app| async move {
            let phone = app.login("carol").await;
            app.wx.clock.advance(Duration::from_millis(10));
            let tablet = app.login("carol").await;
            let id = user_of(&phone);
            let sessions = ok_json(&app, &["sessions", "list", "--user", &id, "--json"]).await;
            let sessions = sessions.as_array().unwrap();
            assert_eq!(sessions.len(), 2);
            for session in sessions {
                assert_eq!(session["appid"], DEMO_APPID);
                assert!(session["id"].as_str().unwrap().starts_with("s_"));
                assert!(session["created_at"].is_string() && session["expires_at"].is_string());
                assert_eq!(session["revoked_at"], Value::Null);
            }
            // Newest first: the tablet's session.
            let tablet_session = sessions[0]["id"].as_str().unwrap().to_owned();

            let revoked = ok(&app, &["sessions", "revoke", &tablet_session]).await;
            assert!(
                revoked.contains(&format!("revoked {tablet_session}")),
                "{revoked}"
            );
            assert_error(refresh(&app, &tablet).await, 401, "invalid_grant").await;
            pass_session_cache(&app);
            assert_error(
                app.get_authed("/v1/me", access(&tablet)).await,
                401,
                "invalid_token",
            )
            .await;
            let phone = {
                let response = refresh(&app, &phone).await;
                assert_eq!(response.status(), 200, "the other session lives");
                response.json::<Value>().await.unwrap()
            };
            let again = ok(&app, &["sessions", "revoke", &tablet_session]).await;
            assert!(again.contains("already revoked"), "{again}");

            let live = ok_json(&app, &["sessions", "list", "--user", &id, "--json"]).await;
            assert_eq!(live.as_array().unwrap().len(), 1);
            let all = ok_json(
                &app,
                &["sessions", "list", "--user", &id, "--all", "--json"],
            )
            .await;
            let all = all.as_array().unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0]["id"], tablet_session.as_str());
            assert!(all[0]["revoked_at"].is_string());
            let table = ok(&app, &["sessions", "list", "--user", &id, "--all"]).await;
            assert_eq!(table.lines().count(), 3, "{table}");
            assert!(table.lines().next().unwrap().contains("REVOKED"), "{table}");

            let everything = ok(&app, &["sessions", "revoke", "--user", &id]).await;
            assert!(everything.contains("revoked 1 session(s)"), "{everything}");
            assert_error(refresh(&app, &phone).await, 401, "invalid_grant").await;
            assert_eq!(
                ok_json(&app, &["sessions", "list", "--user", &id, "--json"]).await,
                json!([])
            );
            // The user is not banned: logging in again works.
            assert_eq!(login_response(&app, "carol").await.status(), 200);

            let entries = audit_of(&app, &id).await;
            let one = entry(&entries, "session_revoked");
            assert_eq!(one["details"]["session"], tablet_session.as_str(), "{one}");
            assert_eq!(one["actor"]["kind"], "admin", "{one}");
            assert_eq!(
                entry(&entries, "user_sessions_revoked")["details"]["sessions"],
                1
            );
        },
    )
    .await;
}

#[tokio::test]
async fn unbind_phone_frees_the_number_and_a_phone_required_app_still_logs_the_user_in() {
    let phone_required = |s: &mut Settings| s.apps[0].registration = Registration::PhoneRequired;
    on_both_backends(phone_required, |app| async move {
        let first = app
            .post_json(
                "/v1/auth/wechat/login",
                json!({
                    "code": app.code_for("dave"),
                    "appid": DEMO_APPID,
                    "phone_code": app.phone_code_for("dave", "13900139000"),
                }),
            )
            .await;
        assert_eq!(first.status(), 200, "registered with a phone number");
        let first: Value = first.json().await.unwrap();
        let id = user_of(&first);

        let removed = ok(&app, &["users", "unbind-phone", &id]).await;
        let entries = audit_of(&app, &id).await;
        assert_eq!(entry(&entries, "phone_unbound")["actor"]["kind"], "admin");
        assert!(
            !entries
                .iter()
                .any(|e| e.to_string().contains("13900139000"))
        );
        assert!(
            removed.contains("139****9000") && !removed.contains("13900139000"),
            "{removed}"
        );
        let me: Value = app
            .get_authed("/v1/me", access(&first))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["phone"], Value::Null);
        // The policy governs registration: the known identity logs in without a number.
        let again = login_response(&app, "dave").await;
        assert_eq!(again.status(), 200);
        let again: Value = again.json().await.unwrap();
        assert_eq!(user_of(&again), id);
        assert_eq!(again["user"]["phone"], Value::Null);
        // The number is free: another user binds it.
        let erin = app
            .post_json(
                "/v1/auth/wechat/login",
                json!({
                    "code": app.code_for("erin"),
                    "appid": DEMO_APPID,
                    "phone_code": app.phone_code_for("erin", "13900139000"),
                }),
            )
            .await;
        assert_eq!(erin.status(), 200);
        let twice = ok(&app, &["users", "unbind-phone", &id]).await;
        assert!(twice.contains("has no phone number"), "{twice}");
    })
    .await;
}

#[tokio::test]
async fn bad_input_fails_with_one_clear_line() {
    let app = TestApp::spawn().await;
    let unknown_user = "u_01J00000000000000000000000";
    let unknown_session = "s_01J00000000000000000000000";
    for (args, expected) in [
        (vec!["users", "show", "alice"], "invalid user id `alice`"),
        (vec!["users", "show", unknown_user], "no user u_01J"),
        (vec!["users", "ban", "u_"], "invalid user id"),
        (vec!["users", "ban", unknown_user], "no user"),
        (vec!["users", "unban", unknown_user], "no user"),
        (vec!["users", "unbind-phone", unknown_user], "no user"),
        (
            vec!["users", "list", "--limit", "0"],
            "--limit must be a number from 1 to 1000",
        ),
        (
            vec!["users", "list", "--limit", "1001"],
            "--limit must be a number from 1 to 1000",
        ),
        (
            vec!["users", "list", "--limit", "many"],
            "--limit must be a number from 1 to 1000",
        ),
        (
            vec!["sessions", "list", "--user", "nobody"],
            "invalid user id `nobody`",
        ),
        (vec!["sessions", "list", "--user", unknown_user], "no user"),
        (
            vec!["sessions", "revoke", "s_nope"],
            "invalid session id `s_nope`",
        ),
        (
            vec!["sessions", "revoke", unknown_session],
            "no session s_01J",
        ),
        (
            vec!["sessions", "revoke", "--user", unknown_user],
            "no user",
        ),
        (
            vec!["wechat", "access-token", "show", "wx123"],
            "invalid appid `wx123`",
        ),
        (
            vec!["wechat", "access-token", "show", "wx00000000000000ff"],
            "app wx00000000000000ff is not configured",
        ),
        (
            vec!["wechat", "access-token", "refresh", "wx00000000000000ff"],
            "app wx00000000000000ff is not configured",
        ),
    ] {
        let line = fails(&app, &args).await;
        assert!(line.contains(expected), "{args:?}: {line}");
    }
    assert_eq!(
        app.wx.calls("stable_token").await,
        0,
        "nothing reached WeChat"
    );
}

#[tokio::test]
async fn without_redis_the_token_lives_in_each_server_and_a_refresh_is_honest_about_it() {
    let app = TestApp::spawn().await;
    let before = token_at(&app).await;
    let shown = ok_json(
        &app,
        &["wechat", "access-token", "show", DEMO_APPID, "--json"],
    )
    .await;
    assert_eq!(shown["location"], "memory");
    assert_eq!(shown["present"], Value::Null);
    assert_eq!(shown["mode"], "stable");
    let text = ok(&app, &["wechat", "access-token", "show", DEMO_APPID]).await;
    assert!(text.contains("per-process memory"), "{text}");

    let refreshed = ok(&app, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    assert!(
        refreshed.contains(&format!("(was {})", fingerprint(&before))),
        "{refreshed}"
    );
    assert!(refreshed.contains("restart them"), "{refreshed}");
    // The running server keeps its copy, as documented; the old token still works at WeChat.
    assert_eq!(token_at(&app).await, before);
    assert_ne!(
        wechat_errcode_for(&app, &before).await,
        40001,
        "still valid"
    );
    // Sooner than 30 s later WeChat keeps the token: refused, with the reason.
    let line = fails(&app, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    assert!(line.contains("30 s"), "{line}");
    // The second force refresh, 30 s later, kills the leaked token at WeChat; a service that
    // reports it rejected gets the current one from the server.
    app.wx.clock.advance(Duration::from_secs(31));
    let second = ok(&app, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    assert_eq!(token_at(&app).await, before, "still the server's copy");
    assert_eq!(
        wechat_errcode_for(&app, &before).await,
        40001,
        "dead at WeChat"
    );
    let reported = app
        .http
        .post(app.url(&format!(
            "/internal/v1/wechat/{DEMO_APPID}/access-token/invalidate"
        )))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({ "access_token": before }))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 200);
    let current: Value = reported.json().await.unwrap();
    let current = current["access_token"].as_str().unwrap().to_owned();
    app.remember_secret(current.clone());
    assert_ne!(current, before);
    assert!(
        second.contains(&format!("new token {}", fingerprint(&current))),
        "{second}"
    );
}

/// What WeChat answers a call made with `token` (checkSessionKey with nonsense arguments: the
/// token is checked first, 40001 when it no longer works).
async fn wechat_errcode_for(app: &TestApp, token: &str) -> i64 {
    let answer: Value = app
        .http
        .get(format!("{}/wxa/checksession", app.wx.handle.base_url()))
        .query(&[
            ("access_token", token),
            ("openid", "o-nobody"),
            ("signature", "0"),
            ("sig_method", "hmac_sha256"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["errcode"].as_i64().unwrap()
}

fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..6])
}

async fn token_at(app: &TestApp) -> String {
    let response = app
        .http
        .get(app.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token")))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    app.remember_secret(token.clone());
    token
}

/// Polls (without moving any clock) until `check` holds: an event crossing Redis.
async fn eventually<Fut: Future<Output = bool>>(what: &str, check: impl Fn() -> Fut) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 2 s");
}

#[tokio::test]
async fn with_redis_a_ban_and_a_revocation_reach_a_second_server_at_once() {
    let Some(redis) = redis_settings() else {
        return;
    };
    on_both_backends(
        move |s| s.redis = redis.clone(),
        |a| async move {
            let issuer = a.state.settings.issuer();
            let b = a
                .spawn_beside(move |s| s.tokens.issuer = Some(issuer))
                .await;
            let banned = a.login("mallory").await;
            let revoked = a.login("carol").await;
            for login in [&banned, &revoked] {
                // B has read the session and trusts it for tokens.session_cache_ms; no clock moves.
                assert_eq!(b.get_authed("/v1/me", access(login)).await.status(), 200);
            }
            let out = ok(&a, &["users", "ban", &user_of(&banned)]).await;
            assert!(out.contains("told at once"), "{out}");
            eventually("B refusing the banned user", || async {
                b.get_authed("/v1/me", access(&banned)).await.status() == 401
            })
            .await;

            let session = ok_json(
                &a,
                &["sessions", "list", "--user", &user_of(&revoked), "--json"],
            )
            .await;
            let session = session[0]["id"].as_str().unwrap().to_owned();
            let out = ok(&a, &["sessions", "revoke", &session]).await;
            assert!(out.contains("told at once"), "{out}");
            eventually("B refusing the revoked session", || async {
                b.get_authed("/v1/me", access(&revoked)).await.status() == 401
            })
            .await;
        },
    )
    .await;
}

#[tokio::test]
async fn with_redis_a_refresh_replaces_the_token_every_server_hands_out() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let a = TestApp::spawn_with(move |s| s.redis = redis).await;
    let b = a.spawn_beside(|_| {}).await;
    let empty = ok_json(
        &a,
        &["wechat", "access-token", "show", DEMO_APPID, "--json"],
    )
    .await;
    assert_eq!(empty["location"], "redis");
    assert_eq!(empty["present"], false);

    let before = token_at(&a).await;
    assert_eq!(token_at(&b).await, before);
    let shown = ok_json(
        &a,
        &["wechat", "access-token", "show", DEMO_APPID, "--json"],
    )
    .await;
    assert_eq!(shown["present"], true);
    assert_eq!(shown["fingerprint"], fingerprint(&before).as_str());
    let left = shown["expires_in_secs"].as_i64().unwrap();
    assert!((7000..=7200).contains(&left), "{shown}");
    let text = ok(&a, &["wechat", "access-token", "show", DEMO_APPID]).await;
    assert!(
        text.contains(&fingerprint(&before)) && !text.contains(&before),
        "{text}"
    );

    let out = ok(&a, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    assert!(!out.contains(&before), "never the token: {out}");
    assert!(out.contains("every running server uses it now"), "{out}");
    for app in [&a, &b] {
        eventually("the server handing out the new token", || async {
            token_at(app).await != before
        })
        .await;
    }
    let after = token_at(&a).await;
    assert_eq!(token_at(&b).await, after);
    assert!(out.contains(&fingerprint(&after)), "{out}");
    let shown = ok_json(
        &a,
        &["wechat", "access-token", "show", DEMO_APPID, "--json"],
    )
    .await;
    assert_eq!(shown["fingerprint"], fingerprint(&after).as_str());

    // WeChat's spacing: a second force refresh within 30 s changes nothing, and says so.
    let line = fails(&a, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    assert!(line.contains("30 s"), "{line}");
    assert_eq!(token_at(&a).await, after);
    // 30 s later it works again.
    a.wx.clock.advance(Duration::from_secs(31));
    b.wx.clock.advance(Duration::from_secs(31));
    ok(&a, &["wechat", "access-token", "refresh", DEMO_APPID]).await;
    eventually("the second refresh reaching B", || async {
        token_at(&b).await != after
    })
    .await;
}
