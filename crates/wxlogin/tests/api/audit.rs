//! The audit log: the entry each flow writes (over HTTP, the simulator behind), what it says and
//! never says, that a log that cannot be written fails nothing, and `wxlogin audit list` (the real
//! binary) on a SQLite file and on PostgreSQL.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};
use wxlogin::config::{AppSettings, Registration};
use wxlogin::domain::{AppId, AppSecret, UserId};
use wxlogin::store::{AuditQuery, AuditRecord, Store};

use crate::helpers::*;

const UA: &str = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50";

/// The entries of one type, newest first.
async fn entries(app: &TestApp, kind: &str) -> Vec<AuditRecord> {
    app.state
        .store
        .list_audit_events(&AuditQuery {
            kind: Some(kind.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

/// The one entry of `kind`, with its details parsed.
async fn only(app: &TestApp, kind: &str) -> (AuditRecord, Value) {
    let found = entries(app, kind).await;
    assert_eq!(found.len(), 1, "one {kind} entry: {found:#?}");
    let details = serde_json::from_str(&found[0].details).unwrap();
    (found[0].clone(), details)
}

async fn login_with_ua(app: &TestApp, user: &str) -> Value {
    let response = app
        .http
        .post(app.url("/v1/auth/wechat/login"))
        .header("user-agent", UA)
        .json(&json!({ "code": app.code_for(user), "appid": DEMO_APPID }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn by_user(record: &AuditRecord, user: &str) {
    assert_eq!(record.actor_kind, "user");
    assert_eq!(record.actor_id.as_deref(), Some(user));
    assert_eq!(record.user_id.as_ref().map(UserId::as_str), Some(user));
    assert_eq!(record.appid.as_ref().map(AppId::as_str), Some(DEMO_APPID));
}

#[tokio::test]
async fn logins_profile_phone_and_logouts_are_recorded_with_actor_ip_and_user_agent() {
    let app = TestApp::spawn().await;
    let first = login_with_ua(&app, "alice").await;
    let user = first["user"]["id"].as_str().unwrap().to_owned();
    let again = login_with_ua(&app, "alice").await;
    let logins = entries(&app, "login").await;
    assert_eq!(logins.len(), 2);
    let outcomes: Vec<String> = logins.iter().map(|r| r.details.clone()).collect();
    assert_eq!(
        outcomes,
        [r#"{"outcome":"returning"}"#, r#"{"outcome":"new"}"#],
        "newest first"
    );
    for record in &logins {
        by_user(record, &user);
        assert_eq!(record.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(record.user_agent.as_deref(), Some(UA));
    }

    let token = again["access_token"].as_str().unwrap();
    let nickname = "Alice 的小号";
    let response = app
        .http
        .patch(app.url("/v1/me"))
        .bearer_auth(token)
        .json(&json!({ "nickname": nickname }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let png = b"\x89PNG\r\n\x1a\n0000000000000000";
    let response = app
        .http
        .put(app.url("/v1/me/avatar"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={}", crate::profile::BOUNDARY),
        )
        .body(crate::profile::multipart("file", "image/png", png))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let changes = entries(&app, "profile_changed").await;
    let details: Vec<&str> = changes.iter().map(|r| r.details.as_str()).collect();
    assert_eq!(
        details,
        [
            r#"{"cleared":false,"field":"avatar"}"#,
            r#"{"cleared":false,"field":"nickname"}"#
        ]
    );
    by_user(&changes[0], &user);

    for phone in ["13800138000", "13900139000"] {
        let code = app.phone_code_for("alice", phone);
        let response = app
            .post_authed("/v1/me/phone", token, json!({ "code": code }))
            .await;
        assert_eq!(response.status(), 200);
    }
    let bound = entries(&app, "phone_bound").await;
    let details: Vec<&str> = bound.iter().map(|r| r.details.as_str()).collect();
    assert_eq!(
        details,
        [
            r#"{"changed":true,"country_code":"86"}"#,
            r#"{"changed":false,"country_code":"86"}"#
        ]
    );
    by_user(&bound[0], &user);

    // Logout of this session, then on all devices (the first login's session is the one left).
    let response = app.post_authed("/v1/auth/logout", token, json!({})).await;
    assert_eq!(response.status(), 204);
    let (logout, details) = only(&app, "logout").await;
    by_user(&logout, &user);
    let session = details["session"].as_str().unwrap();
    assert!(session.starts_with("s_"), "{details}");
    let response = app
        .post_authed(
            "/v1/auth/logout",
            first["access_token"].as_str().unwrap(),
            json!({ "all_devices": true }),
        )
        .await;
    assert_eq!(response.status(), 204);
    let (all, details) = only(&app, "logout_all").await;
    by_user(&all, &user);
    assert_eq!(details, json!({ "sessions": 1 }));

    // Nothing the user typed or WeChat gave beyond what is listed, in any column.
    let everything = app
        .state
        .store
        .list_audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(everything.len(), 8);
    let text = format!("{everything:?}");
    for secret in [
        nickname,
        "13800138000",
        "13900139000",
        first["refresh_token"].as_str().unwrap(),
        token,
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
}

#[tokio::test]
async fn a_reused_refresh_token_records_the_revoked_session() {
    let app = TestApp::spawn().await;
    let login = app.login("bob").await;
    let user = login["user"]["id"].as_str().unwrap().to_owned();
    let old = login["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        app.http
            .post(app.url("/v1/auth/refresh"))
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    assert_eq!(refresh(old.clone()).await.unwrap().status(), 200);
    assert!(entries(&app, "refresh_reuse_detected").await.is_empty());
    app.wx.clock.advance(Duration::from_secs(31));
    assert_error(refresh(old).await.unwrap(), 401, "invalid_grant").await;
    let (reuse, details) = only(&app, "refresh_reuse_detected").await;
    by_user(&reuse, &user);
    assert_eq!(details["session_revoked"], true);
    assert!(details["session"].as_str().unwrap().starts_with("s_"));
    // No proxy is trusted: the address is the connection's, not the header's.
    assert_eq!(reuse.client_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_client_address_behind_a_trusted_proxy_is_the_forwarded_one() {
    let app = TestApp::spawn_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let response = app
        .http
        .post(app.url("/v1/auth/wechat/login"))
        .header("x-forwarded-for", "203.0.113.50")
        .json(&json!({ "code": app.code_for("carl"), "appid": DEMO_APPID }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (login, _) = only(&app, "login").await;
    assert_eq!(login.client_ip.as_deref(), Some("203.0.113.50"));
    assert_eq!(login.user_agent, None, "no User-Agent sent");
}

const APP_B: &str = "wx00000000000000b2";
const SECRET_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

#[tokio::test]
async fn a_registration_and_a_unionid_link_are_recorded() {
    let app = TestApp::spawn_with(|s| {
        s.apps[0].registration = Registration::PhoneRequired;
        s.apps.push(AppSettings {
            appid: AppId::parse(APP_B).unwrap(),
            secret: AppSecret::parse(SECRET_B).unwrap(),
            registration: Registration::Auto,
        });
    })
    .await;
    app.wx.mock().add_app(
        wechat_mock::AppConfig::new(APP_B, SECRET_B)
            .with_open_platform(wechat_mock::DEMO_OPEN_PLATFORM),
    );
    app.remember_secret(SECRET_B);
    let refused = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("dora"), "appid": DEMO_APPID }),
        )
        .await;
    let refused = assert_error(refused, 403, "phone_required").await;
    let ticket = refused["login_ticket"].as_str().unwrap().to_owned();
    app.remember_secret(ticket.clone());
    assert!(
        entries(&app, "login").await.is_empty(),
        "a refusal changes nothing"
    );
    let response = app
        .post_json(
            "/v1/auth/wechat/register",
            json!({ "login_ticket": ticket, "phone_code": app.phone_code_for("dora", "13700137000") }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let registered: Value = response.json().await.unwrap();
    let user = registered["user"]["id"].as_str().unwrap().to_owned();
    let (registration, details) = only(&app, "registration").await;
    by_user(&registration, &user);
    assert_eq!(details, json!({ "policy": "phone_required", "new": true }));
    let (bound, details) = only(&app, "phone_bound").await;
    by_user(&bound, &user);
    assert_eq!(details, json!({ "changed": false, "country_code": "86" }));
    assert!(entries(&app, "login").await.is_empty());

    // Dora in the second app of the same open platform: her unionid links her there.
    let code = app.wx.mock().mint_login_code(APP_B, "dora").unwrap().code;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": code, "appid": APP_B }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (linked, details) = only(&app, "identity_linked").await;
    assert_eq!(
        linked.user_id.as_ref().map(UserId::as_str),
        Some(user.as_str())
    );
    assert_eq!(linked.appid.as_ref().map(AppId::as_str), Some(APP_B));
    assert_eq!(details, json!({ "via": "unionid" }));
    let (login, details) = only(&app, "login").await;
    assert_eq!(login.appid.as_ref().map(AppId::as_str), Some(APP_B));
    assert_eq!(details, json!({ "outcome": "returning" }));
}

#[tokio::test]
async fn a_service_invalidating_the_wechat_token_is_recorded_as_the_service() {
    let app = TestApp::spawn().await;
    let (token, response) = app.report_wechat_token_rejected().await;
    assert_eq!(response.status(), 200);
    let renewed: Value = response.json().await.unwrap();
    app.remember_secret(renewed["access_token"].as_str().unwrap());
    let (entry, details) = only(&app, "wechat_token_invalidated").await;
    assert_eq!(
        (entry.actor_kind.as_str(), entry.actor_id.as_deref()),
        ("service", Some(SERVICE_ID))
    );
    assert_eq!(entry.appid.as_ref().map(AppId::as_str), Some(DEMO_APPID));
    assert_eq!(details, json!({}));
    assert!(!format!("{entry:?}").contains(&token));
}

#[tokio::test]
async fn a_log_that_cannot_be_written_fails_no_login_and_is_counted() {
    let app = TestApp::spawn().await;
    let url = app.state.settings.database_url();
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    db.execute("DROP TABLE audit_events").await.unwrap();
    db.close().await.unwrap();
    let login = app.login("erin").await;
    assert!(login["access_token"].is_string(), "the login stands");
    let text = app.state.metrics.render();
    assert!(
        text.contains("wxlogin_audit_write_failures_total 1"),
        "{text}"
    );
    assert!(logs_text().contains("cannot write an audit log entry"));
}

// --- `wxlogin audit list`, the real binary --------------------------------------------------

fn wxlogin(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        .env("WXLOGIN_METRICS__LISTEN", "")
        .env("WXLOGIN_DATABASE__URL", database_url);
    command
}

fn record(at: i64, kind: &str, user: Option<&UserId>, details: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        kind: kind.to_owned(),
        actor_kind: "user".to_owned(),
        actor_id: user.map(|u| u.as_str().to_owned()),
        user_id: user.cloned(),
        appid: Some(AppId::parse(DEMO_APPID).unwrap()),
        client_ip: Some("203.0.113.9".to_owned()),
        user_agent: Some(UA.to_owned()),
        details: details.to_owned(),
    }
}

fn stdout_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Three days of a user's events and one of another, then every filter of `audit list`.
async fn audit_list_filters_and_prints(store: std::sync::Arc<dyn Store>, database_url: String) {
    let now = wxlogin::clock::system().unix_millis();
    let hour = 3_600_000;
    let ann = UserId::generate(wxlogin::clock::system().now());
    let ben = UserId::generate(wxlogin::clock::system().now());
    for r in [
        record(now - 72 * hour, "login", Some(&ann), r#"{"outcome":"new"}"#),
        record(now - 3 * hour, "logout", Some(&ann), r#"{"session":"s_x"}"#),
        record(
            now - hour,
            "login",
            Some(&ben),
            r#"{"outcome":"returning"}"#,
        ),
        record(
            now - 60_000,
            "login",
            Some(&ann),
            r#"{"outcome":"returning"}"#,
        ),
    ] {
        store.append_audit_event(&r).await.unwrap();
    }
    let list = |args: &[&str]| {
        wxlogin(&database_url)
            .args(["audit", "list"])
            .args(args)
            .output()
            .unwrap()
    };
    let table = stdout_of(&list(&[]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    for column in ["TIME", "TYPE", "ACTOR", "USER", "APPID", "IP", "DETAILS"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(
        lines[1].contains(r#"{"outcome":"returning"}"#),
        "newest first: {table}"
    );
    assert!(lines[1].contains(&format!("user:{ann}")), "{table}");
    assert!(lines[1].contains("203.0.113.9") && lines[1].contains(DEMO_APPID));
    assert!(
        lines[1].ends_with('}') && lines[1].contains("Z "),
        "UTC time: {table}"
    );
    assert!(lines[4].contains(r#"{"outcome":"new"}"#), "{table}");

    let json_lines = |args: &[&str]| -> Vec<Value> {
        stdout_of(&list(args))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mine = json_lines(&["--user", ann.as_str(), "--json"]);
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|e| e["user_id"] == ann.as_str()));
    assert_eq!(mine[0]["type"], "login");
    assert_eq!(
        mine[0]["actor"],
        json!({ "kind": "user", "id": ann.as_str() })
    );
    assert_eq!(mine[0]["details"], json!({ "outcome": "returning" }));
    assert_eq!(mine[0]["user_agent"], UA);
    assert!(mine[0]["at"].as_str().unwrap().ends_with('Z'));
    let logins = json_lines(&["--type", "login", "--json"]);
    assert_eq!(logins.len(), 3);
    let recent = json_lines(&["--since", "2h", "--json"]);
    assert_eq!(recent.len(), 2, "{recent:?}");
    let since = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis((now - 4 * hour) as u64),
    )
    .to_string();
    let after = json_lines(&["--since", &since, "--type", "logout", "--json"]);
    assert_eq!(after.len(), 1);
    let one = json_lines(&["--limit", "1", "--json", "--user", ann.as_str()]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["at_ms"], now - 60_000);
    let none = stdout_of(&list(&["--type", "user_banned"]));
    let down = wxlogin("postgres://postgres@127.0.0.1:1/wxlogin")
        .args(["audit", "list"])
        .output()
        .unwrap();
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1"),
        "names the database: {stderr}"
    );
    assert_eq!(none.trim(), "no audit events match");

    // Bad values: a non-zero exit and one line naming the flag and what it takes.
    for (args, expected) in [
        (&["--type", "logins"][..], "refresh_reuse_detected"),
        (&["--since", "yesterday"][..], "--since must be"),
        (&["--user", "ann"][..], "--user must be a user id"),
        (&["--limit", "0"][..], "--limit must be"),
        (&["--limit", "10001"][..], "from 1 to 10000"),
    ] {
        let output = list(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn audit_list_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxlogin.db");
    let store = wxlogin::store::SqliteStore::connect(&path).await.unwrap();
    store.migrate().await.unwrap();
    let url = format!("sqlite://{}", path.display());
    audit_list_filters_and_prints(std::sync::Arc::new(store), url).await;
}

#[tokio::test]
async fn audit_list_on_postgres() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema
        .run(async move {
            let store = wxlogin::store::PostgresStore::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            audit_list_filters_and_prints(std::sync::Arc::new(store), url).await;
        })
        .await;
}

#[tokio::test]
async fn keys_rotate_and_users_import_are_recorded_with_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxlogin.db");
    let url = format!("sqlite://{}", db.display());
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let rotate = wxlogin(&url)
        .args(["keys", "rotate", "--actor", "ops-mei"])
        .env("WXLOGIN_SECURITY__SEALING_KEY", &sealing_key)
        .output()
        .unwrap();
    let kid = stdout_of(&rotate).trim().to_owned();
    let csv = dir.path().join("phones.csv");
    std::fs::write(&csv, "13800138000\n13800138000\n").unwrap();
    let import = wxlogin(&url)
        .args(["users", "import"])
        .arg(&csv)
        .env("USER", "mei")
        .output()
        .unwrap();
    stdout_of(&import);
    let refused = wxlogin(&url)
        .args(["keys", "rotate", "--actor", ""])
        .env("WXLOGIN_SECURITY__SEALING_KEY", &sealing_key)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--actor"));

    let listed = stdout_of(
        &wxlogin(&url)
            .args(["audit", "list", "--json"])
            .output()
            .unwrap(),
    );
    let entries: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{listed}");
    assert_eq!(entries[0]["type"], "users_imported");
    assert_eq!(entries[0]["actor"], json!({ "kind": "admin", "id": "mei" }));
    assert_eq!(
        entries[0]["details"],
        json!({ "created": 1, "existing": 0, "duplicates": 1 })
    );
    assert_eq!(entries[1]["type"], "key_rotated");
    assert_eq!(
        entries[1]["actor"],
        json!({ "kind": "admin", "id": "ops-mei" })
    );
    assert_eq!(
        entries[1]["details"],
        json!({ "key": "signing", "kid": kid })
    );
    assert!(!listed.contains(&sealing_key) && !listed.contains("13800138000"));
}
