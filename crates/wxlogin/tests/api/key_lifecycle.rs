//! The life of a signing key as an operator drives it with the real `wxlogin keys` binary against
//! the database of a running server: a rotated key is published before it signs, the previous one
//! keeps verifying its tokens (through the JWKS and `/v1/auth/verify`) until the last of them has
//! expired and then retires by itself, and `keys retire` withdraws a superseded key at once.
//!
//! The CLI stamps times with the wall clock; the server decides from the stored times with its own
//! clock, which the test moves.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::helpers::*;

struct Setup {
    app: TestApp,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(database_url: Option<String>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let database_url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("keys.db").display()));
    let (url, key) = (database_url.clone(), sealing_key.clone());
    let app = TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(wxlogin::crypto::SealingKey::parse(&key).unwrap());
        // No periodic reload during the test: every change reaches the server when the test says.
        s.tokens.keyring_reload_secs = 3600;
    })
    .await;
    app.remember_secret(sealing_key.clone());
    let config = dir.path().join("wxlogin.toml");
    let text = format!(
        r#"
[server]
data_dir = "{data}"

[database]
url = "{database_url}"

[security]
sealing_key = "{sealing_key}"

[wechat]
base_url = "{wechat}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"
"#,
        data = dir.path().display(),
        wechat = app.wx.handle.base_url(),
    );
    std::fs::write(&config, text).unwrap();
    Setup {
        app,
        config,
        _dir: dir,
    }
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `wxlogin keys ARGS --config FILE`, with extra environment.
async fn keys(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        .env("WXLOGIN_METRICS__LISTEN", "")
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(config);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn list(config: &std::path::Path) -> Vec<Value> {
    let out = keys(config, &["list", "--json"], &[]).await;
    assert!(out.ok, "{}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn state_of(listed: &[Value], kid: &str) -> String {
    listed
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} listed"))["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks(app: &TestApp) -> Value {
    app.http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn published(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// What another backend does with a standard JWT library: the key of the token's kid from the
/// JWKS, the signature, `iss` and `aud`.
fn verifies_through(jwks: &Value, token: &str, app: &TestApp) -> bool {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let Some(jwk) = set.find(&kid_of(token)) else {
        return false;
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[&app.state.tokens.settings().issuer]);
    validation.set_audience(&["wxlogin"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

async fn forward_auth(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/v1/auth/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn access_token(app: &TestApp, user: &str) -> String {
    app.login(user).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The stored activation of `kid` (Unix ms), to move the server's clock to the edges exactly.
async fn activation(app: &TestApp, kid: &str) -> i64 {
    app.state
        .store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == kid)
        .unwrap()
        .activates_at
}

/// Moves the server's clock to `at` (Unix ms), forwards only.
fn move_to(app: &TestApp, at: i64) {
    let now = app.state.now_millis();
    assert!(at >= now, "the clock only moves forwards");
    app.wx
        .clock
        .advance(Duration::from_millis(u64::try_from(at - now).unwrap()));
}

async fn publish_then_sign_then_retire(database_url: Option<String>) {
    let Setup { app, config, _dir } = setup(database_url).await;
    let before = access_token(&app, "ann").await;
    let old_kid = kid_of(&before);
    let listed = list(&config).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(state_of(&listed, &old_kid), "current");

    let rotated = keys(&config, &["rotate"], &[]).await;
    assert!(rotated.ok, "{}", rotated.stderr);
    let new_kid = rotated.stdout.trim().to_owned();
    assert_eq!(new_kid.len(), 43, "the new kid alone on stdout");
    assert!(rotated.stderr.contains("signs from"), "{}", rotated.stderr);
    // What the announcement or the periodic reload does on a running instance.
    app.state.keys.reload().await.unwrap();

    // Published before it signs: every verifier can learn it before any token names it.
    let keys_now = jwks(&app).await;
    assert_eq!(published(&keys_now).len(), 2);
    assert!(published(&keys_now).contains(&new_kid));
    let during = access_token(&app, "ben").await;
    assert_eq!(
        kid_of(&during),
        old_kid,
        "the pending key does not sign yet"
    );
    assert!(verifies_through(&keys_now, &before, &app));
    assert_eq!(forward_auth(&app, &before).await, 200);
    let listed = list(&config).await;
    assert_eq!(state_of(&listed, &old_kid), "current");
    assert_eq!(state_of(&listed, &new_kid), "pending");
    let old = listed
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap();
    let new = listed
        .iter()
        .find(|k| k["kid"] == new_kid.as_str())
        .unwrap();
    assert_eq!(old["superseded_at"], new["activates_at"]);
    assert!(old["retires_at"].is_string(), "{old}");
    assert!(new["retires_at"].is_null(), "{new}");

    // Neither the pending key nor the current one can be retired.
    let refused = keys(&config, &["retire", &new_kid], &[]).await;
    assert!(!refused.ok);
    assert!(refused.stderr.contains("pending"), "{}", refused.stderr);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    let refused = keys(&config, &["retire", &old_kid], &[]).await;
    assert!(!refused.ok);
    assert!(refused.stderr.contains("current"), "{}", refused.stderr);
    let refused = keys(&config, &["retire", "no-such-kid"], &[]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("no signing key"),
        "{}",
        refused.stderr
    );

    // At its activation, by the server's own clock and without a reload, the new key signs.
    let activates_at = activation(&app, &new_kid).await;
    move_to(&app, activates_at - 1_000);
    assert_eq!(kid_of(&access_token(&app, "cat").await), old_kid);
    move_to(&app, activates_at);
    let after = access_token(&app, "dan").await;
    assert_eq!(
        kid_of(&after),
        new_kid,
        "the new key signs from its activation"
    );
    let keys_now = jwks(&app).await;
    assert!(
        verifies_through(&keys_now, &before, &app),
        "old tokens still verify"
    );
    assert!(verifies_through(&keys_now, &after, &app));
    assert_eq!(forward_auth(&app, &before).await, 200);
    assert_eq!(forward_auth(&app, &during).await, 200);

    // The old key stays published until its last token (signed just before the activation) has
    // expired: access_ttl_secs + leeway_secs after the activation. Then it retires by itself.
    let tokens = &app.state.settings.tokens;
    let retires_at =
        activates_at + i64::try_from((tokens.access_ttl_secs + tokens.leeway_secs) * 1000).unwrap();
    move_to(&app, retires_at - 1_000);
    assert!(published(&jwks(&app).await).contains(&old_kid));
    move_to(&app, retires_at);
    let keys_now = jwks(&app).await;
    assert_eq!(published(&keys_now), vec![new_kid.clone()]);
    assert!(!verifies_through(&keys_now, &before, &app));
    assert_eq!(forward_auth(&app, &before).await, 401);
    let fresh = access_token(&app, "eve").await;
    assert_eq!(kid_of(&fresh), new_kid);
    assert_eq!(forward_auth(&app, &fresh).await, 200);
}

async fn retire_a_superseded_key_early(database_url: Option<String>) {
    let Setup { app, config, _dir } = setup(database_url).await;
    let leaked = access_token(&app, "ann").await;
    let old_kid = kid_of(&leaked);
    let no_delay = [("WXLOGIN_TOKENS__KEY_PUBLISH_SECS", "0")];
    let rotated = keys(&config, &["rotate"], &no_delay).await;
    assert!(rotated.ok, "{}", rotated.stderr);
    let new_kid = rotated.stdout.trim().to_owned();
    app.state.keys.reload().await.unwrap();
    // The CLI activated the key by the wall clock, ahead of the server's by the test's run time.
    move_to(&app, activation(&app, &new_kid).await + 1_000);
    let fresh = access_token(&app, "ben").await;
    assert_eq!(kid_of(&fresh), new_kid);
    // Verified and remembered (the hot path) before the retirement.
    assert_eq!(forward_auth(&app, &leaked).await, 200);
    assert_eq!(app.get_authed("/v1/me", &leaked).await.status(), 200);

    let refused = keys(&config, &["retire", &new_kid], &[]).await;
    assert!(!refused.ok);
    assert!(refused.stderr.contains("current"), "{}", refused.stderr);
    let retired = keys(&config, &["retire", &old_kid], &[]).await;
    assert!(retired.ok, "{}", retired.stderr);
    assert_eq!(retired.stdout.trim(), format!("retired {old_kid}"));
    let listed = list(&config).await;
    assert_eq!(state_of(&listed, &old_kid), "retired");
    assert_eq!(state_of(&listed, &new_kid), "current");
    let again = keys(&config, &["retire", &old_kid], &[]).await;
    assert!(!again.ok);
    assert!(again.stderr.contains("already retired"), "{}", again.stderr);
    // A kid is base64url and may begin with `-`: it is still taken as the kid, not as a flag.
    let hyphen = keys(&config, &["retire", "-Cnot-a-kid"], &[]).await;
    assert!(!hyphen.ok);
    assert!(
        !hyphen.stderr.contains("unexpected argument") && hyphen.stderr.contains("-Cnot-a-kid"),
        "{}",
        hyphen.stderr
    );

    app.state.keys.reload().await.unwrap();
    let keys_now = jwks(&app).await;
    assert_eq!(published(&keys_now), vec![new_kid.clone()]);
    assert!(!verifies_through(&keys_now, &leaked, &app));
    assert_eq!(
        forward_auth(&app, &leaked).await,
        401,
        "not from memory either"
    );
    assert_eq!(app.get_authed("/v1/me", &leaked).await.status(), 401);
    assert_eq!(forward_auth(&app, &fresh).await, 200);
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_retires_after_its_last_token_on_sqlite()
 {
    publish_then_sign_then_retire(None).await;
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_old_one_retires_after_its_last_token_on_postgres()
 {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema.run(publish_then_sign_then_retire(Some(url))).await;
}

#[tokio::test]
async fn keys_retire_withdraws_a_superseded_key_at_once_and_refuses_the_current_one_on_sqlite() {
    retire_a_superseded_key_early(None).await;
}

#[tokio::test]
async fn keys_retire_withdraws_a_superseded_key_at_once_and_refuses_the_current_one_on_postgres() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema.run(retire_a_superseded_key_early(Some(url))).await;
}
