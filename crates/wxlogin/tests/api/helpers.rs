use futures::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use wechat_mock::{MockConfig, MockHandle};
use wxlogin::clock::ManualClock;
use wxlogin::domain::{AppId, AppSecret};
use wxlogin::store::{PostgresStore, SqliteStore, Store};
use wxlogin::wechat::{ClientConfig, RetryPolicy, WechatClient};

pub const DEMO_APPID: &str = "wx0000000000000001";
pub const DEMO_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Every log line of the whole test binary, at TRACE, `log` records included, in the server's
/// text format (a request's lines carry its context).
pub fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(wxlogin::telemetry::Lines::Text)
            .try_init();
        buffer
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// The simulator on port 0 with the demo app and a clock the test moves.
pub struct TestWechat {
    pub handle: MockHandle,
    pub clock: ManualClock,
}

impl TestWechat {
    pub async fn spawn() -> Self {
        captured_logs();
        let clock = ManualClock::starting_now();
        let handle = wechat_mock::spawn(MockConfig::demo().with_clock(clock.shared()))
            .await
            .expect("simulator starts");
        Self { handle, clock }
    }

    pub fn mock(&self) -> &wechat_mock::Mock {
        self.handle.mock()
    }

    pub fn client(&self) -> WechatClient {
        client_for(&self.handle.base_url())
    }
}

/// A client with short timeouts and near-zero backoff, so failure paths are quick.
pub fn client_for(base_url: &str) -> WechatClient {
    client_with_timeout(base_url, 500)
}

pub fn client_with_timeout(base_url: &str, timeout_ms: u64) -> WechatClient {
    WechatClient::new(&ClientConfig {
        base_url: base_url.to_owned(),
        connect_timeout_ms: timeout_ms,
        timeout_ms,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 1,
            max_delay_ms: 5,
        },
    })
    .expect("client builds")
}

pub fn demo_app() -> (AppId, AppSecret) {
    (
        AppId::parse(DEMO_APPID).unwrap(),
        AppSecret::parse(DEMO_SECRET).unwrap(),
    )
}

impl TestWechat {
    /// Sets a fault through the simulator's control API, as any client of it would.
    pub async fn fault(&self, fault: serde_json::Value) {
        let status = reqwest::Client::new()
            .post(format!("{}/__mock/faults", self.handle.base_url()))
            .json(&fault)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204, "fault accepted");
    }

    /// Calls received per API, from the simulator's control API.
    pub async fn calls(&self, api: &str) -> u64 {
        let stats: serde_json::Value =
            reqwest::get(format!("{}/__mock/stats", self.handle.base_url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        stats["calls"][api].as_u64().unwrap_or(0)
    }
}

/// A migrated SQLite store on a fresh file in a temporary directory (WAL adds files beside it).
pub struct SqliteTestStore {
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl SqliteTestStore {
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

pub async fn sqlite_store() -> SqliteTestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::connect(&dir.path().join("wxlogin.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    SqliteTestStore {
        store: Arc::new(store),
        _dir: dir,
    }
}

/// Whether the suite runs in CI (`CI=true`), where every external tool and service must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// For a test that needs a missing external tool or service: outside CI, says `skipped: <what>
/// (<why>)` and the caller returns; in CI it fails the test instead. Written to the real stderr,
/// because the test harness swallows `eprintln!` of a passing test.
pub fn skip_outside_ci(what: &str, why: &str) {
    assert!(!in_ci(), "CI=true but {what} cannot run: {why}");
    let _ = writeln!(std::io::stderr(), "skipped: {what} ({why})");
}

/// A migrated PostgreSQL store in a schema of its own, so that tests run in parallel on one database.
pub struct PostgresTestStore {
    store: Arc<PostgresStore>,
    url: String,
    schema: String,
}

const POSTGRES_URL_VAR: &str = "WXLOGIN_TEST_POSTGRES_URL";

/// `None` (after saying so once on stderr) when no PostgreSQL is configured. In CI (`CI=true`) a
/// missing URL fails the test instead: the suite must not pass there without its second backend.
/// A configured but unreachable server always fails.
pub async fn postgres_store() -> Option<PostgresTestStore> {
    let Ok(url) = std::env::var(POSTGRES_URL_VAR) else {
        assert!(!in_ci(), "CI=true but {POSTGRES_URL_VAR} is not set");
        // Said once for the whole binary, not once per store test.
        static NOTICE: std::sync::Once = std::sync::Once::new();
        NOTICE.call_once(|| {
            skip_outside_ci("PostgreSQL store tests", &format!("set {POSTGRES_URL_VAR}"));
        });
        return None;
    };
    let schema = format!("t_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {POSTGRES_URL_VAR} is unreachable: {e}"));
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let store = PostgresStore::connect_with(options, 5).await.unwrap();
    store.migrate().await.unwrap();
    Some(PostgresTestStore {
        store: Arc::new(store),
        url,
        schema,
    })
}

impl PostgresTestStore {
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Runs `scenario`, then drops the schema whether it passed or not.
    pub async fn run<F: Future<Output = ()>>(self, scenario: F) {
        let outcome = AssertUnwindSafe(scenario).catch_unwind().await;
        self.store.close().await;
        let mut admin = PgConnection::connect(&self.url).await.unwrap();
        admin
            .execute(format!("DROP SCHEMA {} CASCADE", self.schema).as_str())
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
/// The server on port 0 with a fresh SQLite file, the simulator, and one clock for both.
pub struct TestApp {
    pub address: String,
    /// `http://host:port` of the metrics listener, when the test turned it on
    /// (`settings.metrics.listen = Some("127.0.0.1:0".parse().unwrap())`).
    pub metrics_address: Option<String>,
    /// `http://host:port` of the admin console, when the test turned it on
    /// (`settings.admin.listen = Some("127.0.0.1:0".parse().unwrap())`).
    pub admin_address: Option<String>,
    pub wx: TestWechat,
    pub state: wxlogin::state::AppState,
    pub http: reqwest::Client,
    /// Every secret this app handed out or used, checked against the captured logs on drop.
    secrets: Mutex<Vec<String>>,
    /// The sealing key this app generated (a `spawn_beside` instance uses the first one's).
    sealing_key: String,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub const SERVICE_ID: &str = "billing";
pub const SERVICE_SECRET: &str = "billing-service-secret-0123456789";

impl TestApp {
    /// As the service `SERVICE_ID`: fetches the demo app's WeChat access token, then reports it
    /// rejected (`POST .../access-token/invalidate`); the token reported and the report's answer.
    /// The token is remembered as a secret.
    pub async fn report_wechat_token_rejected(&self) -> (String, reqwest::Response) {
        let url = self.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token"));
        let current: serde_json::Value = self
            .http
            .get(&url)
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rejected = current["access_token"].as_str().unwrap().to_owned();
        self.remember_secret(rejected.clone());
        let response = self
            .http
            .post(format!("{url}/invalidate"))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .json(&serde_json::json!({ "access_token": rejected }))
            .send()
            .await
            .unwrap();
        (rejected, response)
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A second instance beside this one, as another machine of the same deployment: its database,
    /// sealing key, simulator and `[redis]`, a data directory of its own, then `configure`.
    pub async fn spawn_beside(
        &self,
        configure: impl FnOnce(&mut wxlogin::config::Settings),
    ) -> Self {
        let database = self.state.settings.database_url();
        let sealing_key = self.state.settings.security.sealing_key.clone();
        let simulator = self.wx.handle.base_url();
        let redis = self.state.settings.redis.clone();
        Self::spawn_with(move |s| {
            s.database.url = Some(database);
            s.security.sealing_key = sealing_key;
            s.wechat.base_url = simulator;
            s.redis = redis;
            configure(s);
        })
        .await
    }

    /// Spawns with settings adjusted by `configure` (after the test defaults are set).
    pub async fn spawn_with(configure: impl FnOnce(&mut wxlogin::config::Settings)) -> Self {
        let wx = TestWechat::spawn().await;
        let dir = tempfile::tempdir().unwrap();
        let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
        let mut settings = wxlogin::config::Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.server.data_dir = dir.path().to_owned();
        settings.database.url = Some(format!(
            "sqlite://{}",
            dir.path().join("wxlogin.db").display()
        ));
        settings.security.sealing_key =
            Some(wxlogin::crypto::SealingKey::parse(&sealing_key).unwrap());
        settings.wechat.base_url = wx.handle.base_url();
        settings.wechat.timeout_ms = 1_000;
        settings.wechat.retry.base_delay_ms = 1;
        settings.wechat.retry.max_delay_ms = 5;
        settings.apps = vec![wxlogin::config::AppSettings {
            appid: AppId::parse(DEMO_APPID).unwrap(),
            secret: AppSecret::parse(DEMO_SECRET).unwrap(),
            registration: wxlogin::config::Registration::Auto,
        }];
        settings.services =
            vec![wxlogin::config::ServiceSettings::new(SERVICE_ID, SERVICE_SECRET).unwrap()];
        // Off unless a test turns it on: the default port would be taken by the first app.
        settings.metrics.listen = None;
        configure(&mut settings);
        let app = wxlogin::app::Application::build(settings, wx.clock.shared())
            .await
            .expect("the app builds");
        let address = format!("http://{}", app.local_addr());
        let metrics_address = app.metrics_addr().map(|addr| format!("http://{addr}"));
        let admin_address = app.admin_addr().map(|addr| format!("http://{addr}"));
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Self {
            address,
            metrics_address,
            admin_address,
            wx,
            state,
            http: reqwest::Client::new(),
            secrets: Mutex::new(vec![
                DEMO_SECRET.to_owned(),
                SERVICE_SECRET.to_owned(),
                sealing_key.clone(),
            ]),
            sealing_key,
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A configuration file for the `wxlogin` binary that acts on this app's deployment: its
    /// database, sealing key, simulator, token mode, apps and `[redis]`. For an app spawned on its
    /// own sealing key (not a `spawn_beside` instance).
    pub fn write_cli_config(&self) -> std::path::PathBuf {
        let settings = &self.state.settings;
        let mut text = format!(
            "[server]\ndata_dir = {data:?}\n\n[database]\nurl = {db:?}\n\n[security]\n\
             sealing_key = {key:?}\n\n[wechat]\nbase_url = {wx:?}\ntoken_mode = {mode:?}\n",
            data = self._dir.path().display().to_string(),
            db = settings.database_url(),
            key = self.sealing_key,
            wx = settings.wechat.base_url,
            mode = match settings.wechat.token_mode {
                wxlogin::wechat::TokenMode::Stable => "stable",
                wxlogin::wechat::TokenMode::Classic => "classic",
            },
        );
        if settings.redis.enabled() {
            text.push_str(&format!(
                "\n[redis]\nurl = {:?}\nkey_prefix = {:?}\n",
                settings.redis.url, settings.redis.key_prefix
            ));
        }
        for app in &settings.apps {
            text.push_str(&format!(
                "\n[[apps]]\nappid = {:?}\nsecret = {:?}\nregistration = {:?}\n",
                app.appid.as_str(),
                app.secret.expose_secret(),
                app.registration.as_str(),
            ));
        }
        let path = self._dir.path().join("cli.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Asserts that none of this app's secrets known so far is in `text` (a command's output).
    pub fn assert_no_secret_in(&self, text: &str) {
        for secret in self.secrets.lock().unwrap().iter() {
            assert!(!text.contains(secret.as_str()), "a secret in the output");
        }
    }

    /// Adds a secret (e.g. a session_key the test learnt) to those checked against the logs on drop.
    pub fn remember_secret(&self, secret: impl Into<String>) {
        self.secrets.lock().unwrap().push(secret.into());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Asks the server to stop and waits for it to finish its in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// What `wx.login` gives the mini program for `user`.
    pub fn code_for(&self, user: &str) -> String {
        self.wx
            .mock()
            .mint_login_code(DEMO_APPID, user)
            .unwrap()
            .code
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, user: &str) -> serde_json::Value {
        let response = self
            .post_json(
                "/v1/auth/wechat/login",
                serde_json::json!({ "code": self.code_for(user), "appid": DEMO_APPID }),
            )
            .await;
        assert_eq!(response.status(), 200, "login of {user}");
        response.json().await.unwrap()
    }

    /// What the getPhoneNumber button gives `user` for `phone` (country code 86).
    pub fn phone_code_for(&self, user: &str, phone: &str) -> String {
        self.wx
            .mock()
            .mint_phone_code(DEMO_APPID, user, phone, "86")
            .unwrap()
    }

    pub async fn post_authed(
        &self,
        path: &str,
        access_token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(access_token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The user as internal services see it (`GET /internal/v1/users/{id}`).
    pub async fn internal_user(&self, id: &str) -> serde_json::Value {
        let response = self
            .http
            .get(self.url(&format!("/internal/v1/users/{id}")))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn get_authed(&self, path: &str, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if std::thread::panicking() {
            return;
        }
        // The logs of the whole suite so far, at TRACE: none of this app's secrets may be there.
        let logs = logs_text();
        for secret in self.secrets.lock().unwrap().iter() {
            assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        }
    }
}

/// Asserts the API's error envelope and returns it.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "status");
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id on every response")
        .to_str()
        .unwrap()
        .to_owned();
    if status == 401 {
        assert!(
            response.headers().get("www-authenticate").is_some(),
            "401 sends WWW-Authenticate"
        );
    }
    if status == 429 || status == 503 {
        assert!(
            response.headers().get("retry-after").is_some(),
            "{status} sends Retry-After"
        );
    }
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    body
}

/// A fresh, empty schema on the test PostgreSQL and a database URL whose connections use it, for
/// servers (in process or real processes) that connect by URL. `None` as for `postgres_store`.
pub struct PostgresSchema {
    /// `postgres://...?options[search_path]=<schema>`
    pub url: String,
    admin_url: String,
    schema: String,
}

pub async fn postgres_schema() -> Option<PostgresSchema> {
    // Checks the variable (and CI) the same way, then gives its schema back: only the URL is used.
    let db = postgres_store().await?;
    let admin_url = db.url.clone();
    let schema = format!("t_{:016x}", rand::random::<u64>());
    db.run(async {}).await;
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    admin.close().await.unwrap();
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    Some(PostgresSchema {
        url: format!("{admin_url}{separator}options[search_path]={schema}"),
        admin_url,
        schema,
    })
}

impl PostgresSchema {
    /// Runs `scenario`, then drops the schema whether it passed or not.
    pub async fn run<F: Future<Output = ()>>(self, scenario: F) {
        let outcome = AssertUnwindSafe(scenario).catch_unwind().await;
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(format!("DROP SCHEMA {} CASCADE", self.schema).as_str())
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// `on_both_backends!(scenario, ...)`: for each `async fn scenario(store: Arc<dyn Store>)` of the
/// calling module, a test on a fresh SQLite file (module `sqlite`) and one on a fresh PostgreSQL
/// database (module `postgres`, which says it skipped when no server answers).
macro_rules! store_on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let db = crate::helpers::sqlite_store().await;
                    super::$scenario(db.store()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(db) = crate::helpers::postgres_store().await else {
                        return;
                    };
                    let store = db.store();
                    db.run(super::$scenario(store)).await;
                }
            )*
        }
    };
}
pub(crate) use store_on_both_backends as on_both_backends;
