//! Three `wxlogin serve` processes on one PostgreSQL database, one Redis server and one simulator
//! process, as an operator runs several instances behind a load balancer.
//!
//! Each test starts its own Redis server (so it can stop and start it) and its own simulator, and
//! a fresh database; the processes are killed when the test ends, whatever its outcome.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::FutureExt;
use serde_json::{Value, json};

use crate::faults::FreshDatabase;
use crate::helpers::*;

const INSTANCES: usize = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_server_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A child process killed (SIGKILL) when dropped.
struct Process(Option<Child>);

impl Process {
    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One Redis server of the test's own, on a fixed port so it can come back where it was.
struct RedisServer {
    port: u16,
    dir: PathBuf,
    process: Process,
}

impl RedisServer {
    fn start(dir: &Path) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: dir.to_owned(),
            process: Process(None),
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn stop(&mut self) {
        self.process.kill();
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Process(Some(child));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

/// One `wxlogin serve` process.
struct Instance {
    base: String,
    port: u16,
    log: PathBuf,
    process: Process,
}

impl Instance {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The three instances, their Redis, their simulator and their database.
struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    database_url: String,
    redis: RedisServer,
    _mock: Process,
    mock_base: String,
    instances: Vec<Instance>,
    /// Environment variables for every `serve` (`WXLOGIN_*` settings of the test).
    env: Vec<(&'static str, &'static str)>,
    http: reqwest::Client,
}

/// What a test adds to the instances' configuration: TOML appended to the file (new tables only),
/// and `WXLOGIN_*` variables.
#[derive(Default)]
struct Setup {
    config: &'static str,
    env: &'static [(&'static str, &'static str)],
}

impl Cluster {
    /// Starts everything, the three instances at the same moment on the empty database.
    async fn start(db: &FreshDatabase, setup: &Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis = RedisServer::start(dir.path());
        let mock_port = free_port();
        let mock = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
            .args(["mock-wechat", "--listen", &format!("127.0.0.1:{mock_port}")])
            .env("WXLOGIN_LOG", "warn")
            // Off: processes of parallel tests would all want 127.0.0.1:9090.
            .env("WXLOGIN_METRICS__LISTEN", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mock_base = format!("http://127.0.0.1:{mock_port}");
        let config = dir.path().join("wxlogin.toml");
        let text = format!(
            r#"
[server]
public_url = "http://wxlogin.test"
# These processes are reached by the test itself over loopback.
allow_insecure_public_url = true
trusted_proxies = ["127.0.0.1/32"]

[security]
sealing_key = "{sealing_key}"

[redis]
url = "{redis_url}"

[wechat]
base_url = "{mock_base}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"

[[services]]
client_id = "{SERVICE_ID}"
client_secret = "{SERVICE_SECRET}"
{extra_config}
"#,
            extra_config = setup.config,
            sealing_key = wxlogin::crypto::SealingKey::generate_base64(),
            redis_url = redis.url(),
        );
        std::fs::write(&config, text).unwrap();
        let mut cluster = Self {
            env: setup.env.to_vec(),
            config,
            database_url: db.url(),
            redis,
            _mock: Process(Some(mock)),
            mock_base,
            instances: Vec::new(),
            http: reqwest::Client::new(),
            dir,
        };
        wait_for(&format!("{}/__mock/stats", cluster.mock_base)).await;
        for i in 0..INSTANCES {
            let port = free_port();
            let log = cluster.dir.path().join(format!("instance-{i}.log"));
            let data_dir = cluster.dir.path().join(format!("data-{i}"));
            std::fs::create_dir_all(&data_dir).unwrap();
            cluster.instances.push(Instance {
                base: format!("http://127.0.0.1:{port}"),
                port,
                log,
                process: Process(None),
            });
            cluster.spawn(i, &data_dir);
        }
        for i in 0..INSTANCES {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn spawn(&mut self, i: usize, data_dir: &Path) {
        let instance = &mut self.instances[i];
        let log = std::fs::File::create(&instance.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
            .args(["serve", "--allow-mock", "--config"])
            .arg(&self.config)
            .env_remove("WXLOGIN_CONFIG")
            .env("WXLOGIN_LOG", "warn")
            // Off: processes of parallel tests would all want 127.0.0.1:9090.
            .env("WXLOGIN_METRICS__LISTEN", "")
            .env("WXLOGIN_DATABASE__URL", &self.database_url)
            .env(
                "WXLOGIN_SERVER__LISTEN",
                format!("127.0.0.1:{}", instance.port),
            )
            .env("WXLOGIN_SERVER__DATA_DIR", data_dir)
            .envs(self.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        instance.process = Process(Some(child));
    }

    /// Waits until instance `i` answers `/readyz` with 200 (ten seconds at most).
    async fn wait_ready(&mut self, i: usize) {
        let url = self.instances[i].url("/readyz");
        for _ in 0..400 {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                self.instances[i].process.running(),
                "instance {i} exited: {}",
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("instance {i} did not become ready: {}", self.log(i));
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.instances[i].log).unwrap_or_default()
    }

    fn url(&self, i: usize, path: &str) -> String {
        self.instances[i % INSTANCES].url(path)
    }

    fn kill(&mut self, i: usize) {
        self.instances[i].process.kill();
    }

    /// A fresh `wx.login` code for `user` from the simulator.
    async fn code(&self, user: &str) -> String {
        let minted: Value = self
            .http
            .post(format!("{}/__mock/login", self.mock_base))
            .json(&json!({ "appid": DEMO_APPID, "user": user }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        minted["code"].as_str().unwrap().to_owned()
    }

    /// How many times the simulator answered `api` so far.
    async fn calls(&self, api: &str) -> u64 {
        let stats: Value = self
            .http
            .get(format!("{}/__mock/stats", self.mock_base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["calls"][api].as_u64().unwrap_or(0)
    }

    async fn login_on(&self, i: usize, code: &str) -> reqwest::Response {
        self.http
            .post(self.url(i, "/v1/auth/wechat/login"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    /// Logs `user` in on instance `i`: the login response.
    async fn login(&self, i: usize, user: &str) -> Value {
        let code = self.code(user).await;
        let response = self.login_on(i, &code).await;
        assert_eq!(response.status(), 200, "login on {i}: {}", self.log(i % 3));
        response.json().await.unwrap()
    }

    async fn refresh(&self, i: usize, refresh_token: &str) -> reqwest::Response {
        self.http
            .post(self.url(i, "/v1/auth/refresh"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .unwrap()
    }

    async fn me(&self, i: usize, access_token: &str) -> reqwest::StatusCode {
        self.http
            .get(self.url(i, "/v1/me"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

async fn wait_for(url: &str) {
    for _ in 0..400 {
        if reqwest::get(url).await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not come up");
}

/// Runs `scenario` on a started cluster and a fresh database, then drops the database whatever
/// the outcome. Outside CI, says "skipped" when PostgreSQL or redis-server is missing.
async fn with_cluster<F, Fut>(setup: Setup, scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    if !redis_server_available() {
        skip_outside_ci("three-instance tests", "redis-server is not installed");
        return;
    }
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let outcome = std::panic::AssertUnwindSafe(async {
        let cluster = Cluster::start(&db, &setup).await;
        scenario(cluster).await;
    })
    .catch_unwind()
    .await;
    db.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn three_instances_started_at_once_serve_identical_keys_and_honour_each_others_logouts() {
    with_cluster(Setup::default(), |cluster| async move {
        // Started at the same moment on an empty database: one signing key, the same JWKS.
        let mut jwks = Vec::new();
        for i in 0..INSTANCES {
            let body = cluster
                .http
                .get(cluster.url(i, "/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            jwks.push(body);
        }
        assert!(jwks.iter().all(|j| j == &jwks[0]), "{jwks:?}");
        let keys: Value = serde_json::from_str(&jwks[0]).unwrap();
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");

        // Login on A, refresh on B, logout on C: A refuses the access tokens at once.
        let login = cluster.login(0, "alice").await;
        let first_access = login["access_token"].as_str().unwrap().to_owned();
        assert_eq!(cluster.me(0, &first_access).await, 200);
        let refreshed: Value = cluster
            .refresh(1, login["refresh_token"].as_str().unwrap())
            .await
            .json()
            .await
            .unwrap();
        let access = refreshed["access_token"].as_str().unwrap().to_owned();
        assert_eq!(cluster.me(0, &access).await, 200);
        let logout = cluster
            .http
            .post(cluster.url(2, "/v1/auth/logout"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        // Each instance read the session for these tokens and may trust that read for a second;
        // the revocation event reaches them well before.
        for token in [&first_access, &access] {
            for i in 0..INSTANCES {
                let mut status = cluster.me(i, token).await;
                for _ in 0..100 {
                    if status == 401 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    status = cluster.me(i, token).await;
                }
                assert_eq!(status, 401, "instance {i}");
            }
        }
        let again = cluster
            .refresh(0, refreshed["refresh_token"].as_str().unwrap())
            .await;
        assert_eq!(again.status(), 401);

        // 50 concurrent logins with one code, spread over the three: one jscode2session call, one
        // success, every duplicate refused.
        let before = cluster.calls("jscode2session").await;
        let code = cluster.code("bob").await;
        let attempts = (0..50).map(|i| {
            let cluster = &cluster;
            let code = code.clone();
            async move { cluster.login_on(i, &code).await.status().as_u16() }
        });
        let statuses = futures::future::join_all(attempts).await;
        assert_eq!(cluster.calls("jscode2session").await - before, 1);
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert!(ok >= 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 400),
            "{statuses:?}"
        );
    })
    .await;
}

impl Cluster {
    /// `count` concurrent internal access-token requests spread over the three: the tokens.
    async fn access_tokens(&self, count: usize) -> Vec<String> {
        let path = format!("/internal/v1/wechat/{DEMO_APPID}/access-token");
        let requests = (0..count).map(|i| {
            let request = self
                .http
                .get(self.url(i, &path))
                .basic_auth(SERVICE_ID, Some(SERVICE_SECRET));
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200, "request {i}");
                let body: Value = response.json().await.unwrap();
                body["access_token"].as_str().unwrap().to_owned()
            }
        });
        futures::future::join_all(requests).await
    }
}

#[tokio::test]
async fn three_instances_share_one_wechat_access_token_and_every_avatar() {
    with_cluster(Setup::default(), |cluster| async move {
        // 300 concurrent requests on a cold cache: one stable_token call, one token everywhere.
        let tokens = cluster.access_tokens(300).await;
        assert_eq!(cluster.calls("stable_token").await, 1);
        assert!(tokens.iter().all(|t| t == &tokens[0]));

        // An avatar uploaded on A is served by B and C.
        let login = cluster.login(0, "frank").await;
        let access = login["access_token"].as_str().unwrap();
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&rand::random::<[u8; 32]>());
        use crate::profile::{BOUNDARY, multipart};
        let uploaded = cluster
            .http
            .post(cluster.url(0, "/v1/me/avatar"))
            .bearer_auth(access)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(multipart("file", "image/png", &png))
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), 200);
        let profile: Value = uploaded.json().await.unwrap();
        let avatar_url = profile["avatar_url"].as_str().unwrap();
        let path = &avatar_url[avatar_url.find("/v1/avatars/").unwrap()..];
        for i in 1..INSTANCES {
            let served = cluster.http.get(cluster.url(i, path)).send().await.unwrap();
            assert_eq!(served.status(), 200, "instance {i}");
            assert_eq!(served.bytes().await.unwrap().as_ref(), png.as_slice());
        }
    })
    .await;
}

#[tokio::test]
async fn in_classic_mode_three_instances_never_replace_each_others_access_token() {
    let setup = Setup {
        env: &[("WXLOGIN_WECHAT__TOKEN_MODE", "classic")],
        ..Setup::default()
    };
    with_cluster(setup, |cluster| async move {
        // Each /cgi-bin/token call replaces the app's previous token: one call in all means no
        // instance replaced the token the others serve.
        let tokens = cluster.access_tokens(300).await;
        assert_eq!(cluster.calls("token").await, 1);
        assert_eq!(cluster.calls("stable_token").await, 0);
        assert!(tokens.iter().all(|t| t == &tokens[0]));
    })
    .await;
}

#[tokio::test]
async fn an_instance_killed_with_sigkill_loses_no_session() {
    with_cluster(Setup::default(), |mut cluster| async move {
        let mut sessions = Vec::new();
        for n in 0..10 {
            let login = cluster.login(2, &format!("user-{n}")).await;
            sessions.push(login["refresh_token"].as_str().unwrap().to_owned());
        }
        cluster.kill(2);
        for (n, refresh_token) in sessions.iter().enumerate() {
            let refreshed = cluster.refresh(n % 2, refresh_token).await;
            assert_eq!(refreshed.status(), 200, "session {n}");
            let body: Value = refreshed.json().await.unwrap();
            let access = body["access_token"].as_str().unwrap();
            assert_eq!(cluster.me((n + 1) % 2, access).await, 200);
        }
    })
    .await;
}

#[tokio::test]
async fn redis_stopped_then_started_again_recovers_every_instance_without_a_restart() {
    with_cluster(Setup::default(), |mut cluster| async move {
        let signed_in = cluster.login(0, "carol").await;
        let access = signed_in["access_token"].as_str().unwrap().to_owned();
        cluster.redis.stop();

        // Logins need the code claim (closed: 503), readiness says so, verified tokens still work.
        for i in 0..INSTANCES {
            let code = cluster.code(&format!("dave-{i}")).await;
            let refused = cluster.login_on(i, &code).await;
            assert_eq!(refused.status(), 503, "instance {i}");
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"], "unavailable", "{body}");
            let ready = cluster
                .http
                .get(cluster.url(i, "/readyz"))
                .send()
                .await
                .unwrap();
            assert_eq!(ready.status(), 503, "instance {i}");
            assert_eq!(cluster.me(i, &access).await, 200, "instance {i}");
        }

        cluster.redis.restart();
        for i in 0..INSTANCES {
            cluster.wait_ready(i).await;
            cluster.login(i, &format!("erin-{i}")).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_per_ip_login_limit_holds_over_the_three_instances_together() {
    let setup = Setup {
        config: "\n[rate_limits.login]\nper_ip = \"5/min\"\n",
        ..Setup::default()
    };
    with_cluster(setup, |cluster| async move {
        let login_from = |i: usize, ip: &'static str, code: String| {
            let request = cluster
                .http
                .post(cluster.url(i, "/v1/auth/wechat/login"))
                .header("x-forwarded-for", ip)
                .json(&json!({ "code": code }));
            async move { request.send().await.unwrap() }
        };
        let mut statuses = Vec::new();
        for n in 0..9 {
            let code = cluster.code(&format!("grace-{n}")).await;
            let response = login_from(n, "203.0.113.7", code).await;
            if response.status() == 429 {
                let retry_after: u64 = response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry_after), "{retry_after}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "rate_limited", "{body}");
                statuses.push(429);
            } else {
                statuses.push(response.status().as_u16());
            }
        }
        assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429]);
        // Another client IP has its own allowance, on every instance.
        for i in 0..INSTANCES {
            let code = cluster.code(&format!("heidi-{i}")).await;
            assert_eq!(login_from(i, "198.51.100.9", code).await.status(), 200);
        }
    })
    .await;
}
