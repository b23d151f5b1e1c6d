//! Signing keys shared through the database: instances that start together on an empty database
//! agree on one key, a rotation reaches every instance, and a token signed by a key an instance
//! has not loaded yet makes it look in the database (once, not per request).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `wxlogin serve` process, stopped (SIGKILL is fine: the test is done with it) when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(
    dir: &std::path::Path,
    name: &str,
    database_url: &str,
    sealing_key: &str,
    wechat: &str,
) -> std::path::PathBuf {
    let port = free_port();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "{data}"
allow_insecure_public_url = true

[database]
url = "{database_url}"

[security]
sealing_key = "{sealing_key}"

[tokens]
# One issuer for the instances, as behind a load balancer.
issuer = "https://login.example.com"
keyring_reload_secs = 1
# Rotations sign at once here; the publication delay is tested in key_lifecycle.rs.
key_publish_secs = 0

[wechat]
base_url = "{wechat}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"
"#,
        data = dir.join(name).display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_serve(config: &std::path::Path) -> Server {
    let text = std::fs::read_to_string(config).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090.
        .env("WXLOGIN_METRICS__LISTEN", "")
        .args(["serve", "--allow-mock", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Server {
        child,
        base: format!("http://{listen}"),
    }
}

/// Polls `/readyz` of a process that is starting (real time: it is another process).
async fn wait_until_up(server: &mut Server) {
    for _ in 0..400 {
        if let Ok(response) = reqwest::get(format!("{}/readyz", server.base)).await
            && response.status() == 200
        {
            return;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("wxlogin serve exited during start-up: {status}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} did not come up", server.base);
}

async fn jwks(server: &Server) -> Value {
    reqwest::get(format!("{}/.well-known/jwks.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
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

async fn login_at(server: &Server, wx: &TestWechat, user: &str) -> String {
    let code = wx.mock().mint_login_code(DEMO_APPID, user).unwrap().code;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/wechat/login", server.base))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login at {}", server.base);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn me_status(server: &Server, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/v1/me", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Two instances started at the same moment on one empty database, several times over: the same
/// JWKS, one signing key, and each accepts the other's tokens.
async fn instances_agree(database_url: impl Fn(usize, &std::path::Path) -> String) {
    let wx = TestWechat::spawn().await;
    for attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = database_url(attempt, dir.path());
        let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
        let configs: Vec<_> = ["a", "b"]
            .iter()
            .map(|name| write_config(dir.path(), name, &url, &sealing_key, &wx.handle.base_url()))
            .collect();
        let mut a = spawn_serve(&configs[0]);
        let mut b = spawn_serve(&configs[1]);
        wait_until_up(&mut a).await;
        wait_until_up(&mut b).await;

        let (jwks_a, jwks_b) = (jwks(&a).await, jwks(&b).await);
        assert_eq!(
            jwks_a, jwks_b,
            "attempt {attempt}: the instances publish the same keys"
        );
        assert_eq!(kids(&jwks_a).len(), 1, "attempt {attempt}: one first key");
        let from_a = login_at(&a, &wx, &format!("ann{attempt}")).await;
        let from_b = login_at(&b, &wx, &format!("ben{attempt}")).await;
        assert_eq!(kid_of(&from_a), kid_of(&from_b), "attempt {attempt}");
        assert_eq!(
            me_status(&b, &from_a).await,
            200,
            "attempt {attempt}: b accepts a's token"
        );
        assert_eq!(
            me_status(&a, &from_b).await,
            200,
            "attempt {attempt}: a accepts b's token"
        );

        if attempt == 0 {
            rotation_reaches_both(&configs[0], &a, &b, &wx).await;
        }
    }
}

/// `wxlogin keys rotate` while both run: each switches to the new key at its next periodic reload
/// (`keyring_reload_secs = 1` above) and still accepts tokens of the previous key.
async fn rotation_reaches_both(config: &std::path::Path, a: &Server, b: &Server, wx: &TestWechat) {
    let old_token = login_at(a, wx, "old-key").await;
    let output = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090.
        .env("WXLOGIN_METRICS__LISTEN", "")
        .args(["keys", "rotate", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(new_kid.len(), 43, "the new kid is printed");
    // Real time: the periodic reload runs in the other processes, once a second here.
    for _ in 0..100 {
        let (ka, kb) = (kids(&jwks(a).await), kids(&jwks(b).await));
        if ka.contains(&new_kid) && kb.contains(&new_kid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(jwks(a).await, jwks(b).await);
    assert_eq!(
        kids(&jwks(a).await).len(),
        2,
        "the previous key stays published"
    );
    let fresh = login_at(b, wx, "new-key").await;
    assert_eq!(kid_of(&fresh), new_kid, "the rotated key signs");
    assert_eq!(me_status(a, &fresh).await, 200);
    assert_eq!(
        me_status(b, &old_token).await,
        200,
        "the previous key still verifies"
    );
}

#[tokio::test]
async fn instances_started_together_on_one_empty_sqlite_file_agree_on_the_signing_key() {
    instances_agree(|_, dir| format!("sqlite://{}", dir.join("shared.db").display())).await;
}

#[tokio::test]
async fn instances_started_together_on_one_empty_postgres_database_agree_on_the_signing_key() {
    let mut schemas = Vec::new();
    for _ in 0..5 {
        let Some(schema) = postgres_schema().await else {
            return;
        };
        schemas.push(schema);
    }
    let urls: Vec<String> = schemas.iter().map(|s| s.url.clone()).collect();
    let scenario = instances_agree(move |attempt, _| urls[attempt].clone());
    // Each schema is dropped after the scenario, whether it passed or not.
    let mut schemas = schemas.into_iter();
    let first = schemas.next().unwrap();
    first.run(scenario).await;
    for schema in schemas {
        schema.run(async {}).await;
    }
}

/// A second in-process instance on the first one's database and sealing key.
async fn beside(
    first: &TestApp,
    configure: impl FnOnce(&mut wxlogin::config::Settings),
) -> TestApp {
    let url = first.state.settings.database_url();
    let sealing = first.state.sealing.clone();
    TestApp::spawn_with(move |s| {
        s.database.url = Some(url);
        s.security.sealing_key = Some(sealing);
        configure(s);
    })
    .await
}

#[tokio::test]
async fn a_token_of_a_key_rotated_elsewhere_reloads_the_keyring_once() {
    let x = TestApp::spawn().await;
    let y = beside(&x, |_| {}).await;
    let state = &x.state;
    let new_kid = wxlogin::tokens::rotate(
        state.store.as_ref(),
        &state.sealing,
        state.settings.tokens.algorithm,
        state.now_millis(),
        Duration::ZERO,
    )
    .await
    .unwrap()
    .kid;
    x.state.keys.reload().await.unwrap();
    let token = x.login("rita").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&token), new_kid);

    let before = y.state.keys.reloads();
    assert_eq!(y.get_authed("/v1/me", &token).await.status(), 200);
    assert_eq!(y.state.keys.reloads(), before + 1);
    assert_eq!(y.state.tokens.keyring().current().kid(), new_kid);

    // Forged kids do not make every request read the database: at most one reload per 10 s
    // (by the server's clock, which the test moves), one at a time.
    let forged = {
        let parts: Vec<&str> = token.split('.').collect();
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "ES256", "typ": "at+jwt", "kid": "no-such-key"}).to_string());
        format!("{header}.{}.{}", parts[1], parts[2])
    };
    let burst = || futures::future::join_all((0..20).map(|_| y.get_authed("/v1/me", &forged)));
    for response in burst().await {
        assert_eq!(response.status(), 401);
    }
    assert_eq!(
        y.state.keys.reloads(),
        before + 1,
        "within 10 s of the last reload"
    );
    y.wx.clock.advance(Duration::from_secs(11));
    for response in burst().await {
        assert_eq!(response.status(), 401);
    }
    assert_eq!(
        y.state.keys.reloads(),
        before + 2,
        "one reload for the whole burst"
    );
}

/// `wxlogin keys rotate` (another process) on the PostgreSQL database and Redis a running instance
/// uses: the announcement makes it reload at once, long before its periodic reload.
#[tokio::test]
async fn a_rotation_announced_through_redis_reaches_a_running_instance_within_a_second() {
    let Some(redis) = crate::shared::redis_settings() else {
        return;
    };
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let database_url = schema.url.clone();
    schema
        .run(async move {
            let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
            let settings_redis = redis.clone();
            let (url, key) = (database_url.clone(), sealing_key.clone());
            let app = TestApp::spawn_with(move |s| {
                s.database.url = Some(url);
                s.redis = settings_redis;
                s.security.sealing_key = Some(wxlogin::crypto::SealingKey::parse(&key).unwrap());
                s.tokens.keyring_reload_secs = 3600;
            })
            .await;
            let jwks_kids = || async {
                let jwks: Value = app
                    .http
                    .get(app.url("/.well-known/jwks.json"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                kids(&jwks)
            };
            assert_eq!(jwks_kids().await.len(), 1);

            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("rotate.toml");
            let text = format!(
                r#"
[server]
data_dir = "{data}"

[database]
url = "{database_url}"

[redis]
url = "{redis_url}"
key_prefix = "{prefix}"

[security]
sealing_key = "{sealing_key}"

[tokens]
# The new key signs at once (the publication delay is tested in key_lifecycle.rs).
key_publish_secs = 0

[wechat]
base_url = "{wechat}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"
"#,
                data = dir.path().display(),
                redis_url = redis.url,
                prefix = redis.key_prefix,
                wechat = app.wx.handle.base_url(),
            );
            std::fs::write(&config, text).unwrap();
            let output = tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_wxlogin"))
                    .env_remove("WXLOGIN_CONFIG")
                    .env("WXLOGIN_LOG", "warn")
                    // Off: processes of parallel tests would all want 127.0.0.1:9090.
                    .env("WXLOGIN_METRICS__LISTEN", "")
                    .args(["keys", "rotate", "--config"])
                    .arg(&config)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();

            // Waiting for the announcement to arrive (real time), not for time to pass.
            let listed = tokio::time::timeout(Duration::from_secs(1), async {
                loop {
                    if jwks_kids().await.contains(&new_kid) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            assert!(listed.is_ok(), "the running instance lists the new key");
            assert_eq!(
                jwks_kids().await.len(),
                2,
                "the previous key stays published"
            );
            // The CLI activated the key at once by the wall clock, which is ahead of this
            // server's clock by the time the test took so far.
            app.wx.clock.advance(Duration::from_secs(30));
            let token = app.login("after-rotation").await["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(kid_of(&token), new_kid, "and signs with it");
        })
        .await;
}
