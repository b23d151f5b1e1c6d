//! Replacing the sealing key as an operator does, with the real `wxlogin` binary on the database
//! of running servers: `sealing-key rotate` prints a new key, a server with the new key and the old
//! one listed in `security.previous_sealing_keys` keeps opening what the old one sealed, `reseal`
//! (while logins go on, and after being killed) leaves every value under the new key, and then a
//! server without the old key starts and opens everything; one that lacks it before says so.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use wxlogin::crypto::SealingKey;

use crate::helpers::*;

fn wxlogin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        .env("WXLOGIN_METRICS__LISTEN", "");
    command
}

fn key(text: &str) -> SealingKey {
    SealingKey::parse(text).unwrap()
}

fn id(text: &str) -> String {
    key(text).key_id().to_string()
}

/// A configuration for the CLI and `serve` on `database_url` with `current` sealing and
/// `previous` opening.
fn config(
    dir: &std::path::Path,
    database_url: &str,
    current: &str,
    previous: &[&str],
    wechat: &str,
    redis: Option<&wxlogin::config::RedisSettings>,
) -> std::path::PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let previous: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    let redis = redis.map_or_else(String::new, |r| {
        format!(
            "[redis]\nurl = \"{}\"\nkey_prefix = \"{}\"\n",
            r.url, r.key_prefix
        )
    });
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "{data}"
allow_insecure_public_url = true

[database]
url = "{database_url}"

[security]
sealing_key = "{current}"
previous_sealing_keys = [{previous}]

{redis}
[wechat]
base_url = "{wechat}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"
"#,
        data = dir.display(),
        previous = previous.join(", "),
    );
    let path = dir.join(format!("wxlogin-{}.toml", rand::random::<u32>()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn run(mut command: Command) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn sealing_key(config: &std::path::Path, args: &[&str]) -> String {
    let mut command = wxlogin();
    command
        .arg("sealing-key")
        .args(args)
        .arg("--config")
        .arg(config);
    let (ok, stdout, stderr) = run(command).await;
    assert!(ok, "sealing-key {args:?}: {stderr}");
    stdout
}

fn token(login: &Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

/// Open data the simulator encrypts with `user`'s session key, decrypted by `app`.
async fn decrypts(app: &TestApp, wx: &TestWechat, user: &str, access_token: &str) -> bool {
    let sealed = wx
        .mock()
        .encrypt(DEMO_APPID, user, json!({ "nickName": user }))
        .unwrap();
    let response = app
        .post_authed(
            "/v1/wechat/decrypt",
            access_token,
            json!({ "encrypted_data": sealed.encrypted_data, "iv": sealed.iv }),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    status == 200 && body["data"]["nickName"] == user
}

/// A login at `app` with a code of `wx`, the simulator the servers beside the first one share.
async fn login_at(app: &TestApp, wx: &TestWechat, user: &str) -> Value {
    let code = wx.mock().mint_login_code(DEMO_APPID, user).unwrap().code;
    let response = app
        .post_json("/v1/auth/wechat/login", json!({ "code": code }))
        .await;
    assert_eq!(response.status(), 200, "login of {user}");
    response.json().await.unwrap()
}

fn with_previous(current: &str, previous: &str) -> SealingKey {
    key(current).with_previous([key(previous)])
}

async fn rotate_reseal_and_drop_the_old_key(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("sealed.db").display()));
    let old = SealingKey::generate_base64();
    let (url, k) = (database_url.clone(), old.clone());
    let mut first = TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(key(&k));
    })
    .await;
    first.remember_secret(old.clone());
    let ann = token(&first.login("ann").await);
    let cat = token(&first.login("cat").await);
    first.login("ben").await;
    // An administrator's TOTP secret, sealed under the old key.
    let root = wxlogin::domain::AdminName::parse("root").unwrap();
    let totp = wxlogin::crypto::TotpSecret::generate();
    let mut admin = wxlogin::store::AdminAccount {
        name: root.clone(),
        role: wxlogin::domain::AdminRole::Owner,
        password_hash: "$argon2id$unused".into(),
        sealed_totp_secret: None,
        totp_confirmed_at: None,
        totp_last_step: None,
        totp_required: true,
        failed_attempts: 0,
        locked_until: None,
        created_at: 0,
        updated_at: 0,
    };
    first.state.store.insert_admin(&admin).await.unwrap();
    let sealed = wxlogin::services::admins::seal_totp_secret(&key(&old), &root, &totp);
    assert!(
        first
            .state
            .store
            .set_admin_totp(&root, &sealed, 0)
            .await
            .unwrap()
    );
    first.stop().await;

    // rotate prints a key and the steps, and changes nothing.
    let mut command = wxlogin();
    command.args(["sealing-key", "rotate"]);
    let (ok, stdout, _) = run(command).await;
    assert!(ok);
    let new = stdout.lines().next().unwrap().trim().to_owned();
    first.remember_secret(new.clone());
    assert!(!key(&new).is_low_entropy());
    assert!(stdout.contains("previous_sealing_keys"), "{stdout}");
    assert!(stdout.contains("sealing-key reseal"), "{stdout}");
    assert!(stdout.contains(&id(&new)), "{stdout}");

    // Without the old key listed, serve refuses and says what to do.
    let wechat = first.wx.handle.base_url();
    let lacking = config(dir.path(), &database_url, &new, &[], &wechat, None);
    let mut command = wxlogin();
    command
        .args(["serve", "--allow-mock", "--config"])
        .arg(&lacking);
    let (ok, _, stderr) = run(command).await;
    assert!(!ok, "serve started without the old sealing key");
    assert!(
        stderr.contains("security.previous_sealing_keys"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains(&old) && !stderr.contains(&new), "{stderr}");

    // With it: existing users log in, old tokens verify, stored session keys open.
    let (n, o) = (new.clone(), old.clone());
    let mut second = first
        .spawn_beside(move |s| s.security.sealing_key = Some(with_previous(&n, &o)))
        .await;
    second.remember_secret(old.clone());
    second.remember_secret(new.clone());
    assert_eq!(second.get_authed("/v1/me", &ann).await.status(), 200);
    assert!(decrypts(&second, &first.wx, "cat", &cat).await);
    assert!(login_at(&second, &first.wx, "ben").await["user"]["id"].is_string());

    let both = config(dir.path(), &database_url, &new, &[&old], &wechat, None);
    let status = sealing_key(&both, &["status"]).await;
    assert!(status.contains(&id(&old)), "{status}");
    assert!(status.contains("not yet under the current key"), "{status}");

    // Reseal while the server logs users in (new ones, and returning ones whose session key it
    // replaces under the new key meanwhile).
    let mut command = wxlogin();
    command
        .args(["sealing-key", "reseal", "--batch", "1", "--config"])
        .arg(&both);
    let resealing = tokio::spawn(run(command));
    let logins =
        ["ann", "ben", "dan", "eve", "fay", "gus"].map(|u| login_at(&second, &first.wx, u));
    let logins = futures::future::join_all(logins).await;
    let (ok, stdout, stderr) = resealing.await.unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("done: resealed"), "{stdout}");
    assert!(
        stdout.contains("every value is sealed under the current key"),
        "{stdout}"
    );
    let ann = token(&logins[0]);
    assert!(decrypts(&second, &first.wx, "ann", &ann).await);
    second.stop().await;

    // Now without the old key: the server starts and everything opens.
    let n = new.clone();
    let third = first
        .spawn_beside(move |s| s.security.sealing_key = Some(key(&n)))
        .await;
    third.remember_secret(old.clone());
    third.remember_secret(new.clone());
    assert!(decrypts(&third, &first.wx, "cat", &cat).await, "resealed");
    assert!(
        decrypts(&third, &first.wx, "ann", &ann).await,
        "written by a login"
    );
    assert_eq!(third.get_authed("/v1/me", &cat).await.status(), 200);
    admin = third.state.store.get_admin(&root).await.unwrap().unwrap();
    let opened = wxlogin::services::admins::open_totp_secret(&key(&new), &admin);
    assert_eq!(opened, Some(totp), "the TOTP secret was resealed");
    let only_new = config(dir.path(), &database_url, &new, &[], &wechat, None);
    let status = sealing_key(&only_new, &["status"]).await;
    assert!(
        status.contains("every value is sealed under the current key"),
        "{status}"
    );
}

#[tokio::test]
async fn a_rotated_sealing_key_keeps_opening_old_values_and_reseal_lets_the_old_key_go_on_sqlite() {
    rotate_reseal_and_drop_the_old_key(None).await;
}

#[tokio::test]
async fn a_rotated_sealing_key_keeps_opening_old_values_and_reseal_lets_the_old_key_go_on_postgres()
{
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema
        .run(rotate_reseal_and_drop_the_old_key(Some(url)))
        .await;
}

#[tokio::test]
async fn a_reseal_killed_midway_finishes_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("sealed.db").display());
    let old = SealingKey::generate_base64();
    let (url, k) = (database_url.clone(), old.clone());
    let mut app = TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(key(&k));
    })
    .await;
    app.remember_secret(old.clone());
    let users: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    let logins = futures::future::join_all(users.iter().map(|u| app.login(u))).await;
    app.stop().await;
    let new = SealingKey::generate_base64();
    app.remember_secret(new.clone());
    let both = config(
        dir.path(),
        &database_url,
        &new,
        &[&old],
        &app.wx.handle.base_url(),
        None,
    );

    let mut child = wxlogin()
        .args(["sealing-key", "reseal", "--batch", "1", "--config"])
        .arg(&both)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert!(first_line.starts_with("resealed 1,"), "{first_line}");
    let finished_before_the_kill = child.try_wait().unwrap().is_some();
    child.kill().unwrap();
    child.wait().unwrap();
    if !finished_before_the_kill {
        let status = sealing_key(&both, &["status"]).await;
        assert!(status.contains(&id(&old)), "{status}");
    }

    let again = sealing_key(&both, &["reseal"]).await;
    assert!(
        again.contains("every value is sealed under the current key"),
        "{again}"
    );
    let last = again.lines().find(|l| l.starts_with("done:")).unwrap();
    assert!(last.contains("changed by a server meanwhile 0"), "{last}");
    // The old key can go: a server with the new key alone opens every stored session key.
    let n = new.clone();
    let server = app
        .spawn_beside(move |s| s.security.sealing_key = Some(key(&n)))
        .await;
    server.remember_secret(old.clone());
    server.remember_secret(new.clone());
    for i in [0, 7, 39] {
        let user = format!("user{i}");
        assert!(
            decrypts(&server, &app.wx, &user, &token(&logins[i])).await,
            "{user}"
        );
    }
}

/// The shared WeChat access token in Redis is sealed again under the new key, not refetched.
#[tokio::test]
async fn reseal_seals_the_shared_access_token_in_redis_again_without_a_refetch() {
    let Some(redis) = crate::shared::redis_settings() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("sealed.db").display());
    let old = SealingKey::generate_base64();
    let (url, k, r) = (database_url.clone(), old.clone(), redis.clone());
    let mut first = TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(key(&k));
        s.redis = r;
    })
    .await;
    first.remember_secret(old.clone());
    let name = format!("wechat-access-token:{DEMO_APPID}");
    let response = first
        .http
        .get(first.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token")))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    first.remember_secret(token.clone());
    let sealed_by = |value: Option<Vec<u8>>| SealingKey::sealed_by(&value.unwrap());
    let stored = first.state.shared.values.get(&name).await.unwrap();
    assert_eq!(
        sealed_by(stored),
        wxlogin::crypto::SealedBy::Key(key(&old).key_id())
    );
    first.stop().await;

    let new = SealingKey::generate_base64();
    first.remember_secret(new.clone());
    let wechat = first.wx.handle.base_url();
    let both = config(
        dir.path(),
        &database_url,
        &new,
        &[&old],
        &wechat,
        Some(&redis),
    );
    let out = sealing_key(&both, &["reseal"]).await;
    assert!(
        out.contains("every value is sealed under the current key"),
        "{out}"
    );
    let n = new.clone();
    let second = first
        .spawn_beside(move |s| s.security.sealing_key = Some(key(&n)))
        .await;
    second.remember_secret(old.clone());
    second.remember_secret(new.clone());
    let stored = second.state.shared.values.get(&name).await.unwrap();
    assert_eq!(
        sealed_by(stored),
        wxlogin::crypto::SealedBy::Key(key(&new).key_id())
    );
    let response = second
        .http
        .get(second.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token")))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["access_token"],
        token.as_str(),
        "the same token, opened"
    );
    assert_eq!(first.wx.calls("stable_token").await, 1, "not fetched again");
}
