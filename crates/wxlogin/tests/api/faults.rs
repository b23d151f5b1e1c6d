//! Database faults through the HTTP API: an unreachable PostgreSQL, a full disk under SQLite. The
//! server must answer 503 `unavailable` with `Retry-After` during the fault, say so on `/readyz`,
//! and recover by itself when the fault clears.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use tokio::net::TcpListener;

use crate::helpers::{DEMO_APPID, TestApp, assert_error};

const POSTGRES_URL_VAR: &str = "WXLOGIN_TEST_POSTGRES_URL";

/// In CI a skipped fault test is a failure: the suite must not pass there without it.
fn skip(reason: &str) {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!in_ci, "CI=true but {reason}");
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}

/// A fresh, empty PostgreSQL database of its own (dropped by [`FreshDatabase::drop_now`]), or
/// `None` when no PostgreSQL is configured.
pub struct FreshDatabase {
    admin_url: String,
    pub name: String,
}

impl FreshDatabase {
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            skip(&format!("PostgreSQL fault tests (set {POSTGRES_URL_VAR})"));
            return None;
        };
        let name = format!("wxlogin_t_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        Some(Self { admin_url, name })
    }

    /// The URL of this database at `host:port` (e.g. a proxy in front of the server).
    pub fn url_via(&self, addr: &str) -> String {
        let rest = self.admin_url.split_once("://").map_or("", |(_, r)| r);
        let user = rest.split_once('@').map_or("postgres", |(u, _)| u);
        format!("postgres://{user}@{addr}/{}", self.name)
    }

    pub fn url(&self) -> String {
        let rest = self.admin_url.split_once("://").map_or("", |(_, r)| r);
        let host = rest
            .split_once('@')
            .map_or(rest, |(_, h)| h)
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432");
        self.url_via(host)
    }

    pub async fn drop_now(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
    }

    /// The PostgreSQL server's address, from the configured URL.
    pub fn server(&self) -> String {
        let rest = self.admin_url.split_once("://").map_or("", |(_, r)| r);
        rest.split_once('@')
            .map_or(rest, |(_, h)| h)
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:5432")
            .to_owned()
    }
}

/// A TCP proxy to PostgreSQL that the test can cut (closing its port and every connection through
/// it) and restore on the same port.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = Some(tokio::spawn(Self::run(listener, upstream.clone())));
        Self {
            addr,
            upstream,
            task,
        }
    }

    async fn run(listener: TcpListener, upstream: String) {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    }

    /// The database becomes unreachable: the port closes, open connections drop.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(Self::run(listener, self.upstream.clone())));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn login(app: &TestApp, user: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/wechat/login",
        json!({"appid": DEMO_APPID, "code": app.code_for(user)}),
    )
    .await
}

#[tokio::test]
async fn an_unreachable_postgres_gives_503_with_retry_after_within_the_acquire_timeout() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let mut proxy = Proxy::start(db.server()).await;
    let url = db.url_via(&proxy.addr.to_string());
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let app = TestApp::spawn_with(|s| {
            s.database.url = Some(url);
            s.database.acquire_timeout_ms = 500;
        })
        .await;
        assert_eq!(login(&app, "before").await.status(), 200);

        proxy.cut();
        for user in ["during-1", "during-2"] {
            let response = tokio::time::timeout(Duration::from_secs(3), login(&app, user))
                .await
                .expect("an answer well inside the request time limit");
            assert_error(response, 503, "unavailable").await;
        }
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_error(ready, 503, "unavailable").await;

        // Back without a restart.
        proxy.restore().await;
        assert_eq!(login(&app, "after").await.status(), 200);
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }))
    .await;
    drop(proxy);
    db.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A small tmpfs, unmounted (lazily, so open files cannot keep it) when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(Self { dir }),
            _ => {
                skip("SQLite disk-full test (mounting a tmpfs is not permitted)");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system under `dir` until it refuses more.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[tokio::test]
async fn a_full_disk_gives_503_and_writes_recover_when_space_is_freed() {
    let Some(disk) = Tmpfs::mount("4m") else {
        return;
    };
    let db = disk.path().join("wxlogin.db");
    let app = TestApp::spawn_with(|s| {
        s.database.url = Some(format!("sqlite://{}", db.display()));
    })
    .await;
    assert_eq!(login(&app, "before").await.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let filler = fill(disk.path());
    let mut refused = 0;
    for i in 0..8 {
        let response = login(&app, &format!("during-{i}")).await;
        match response.status().as_u16() {
            200 => {} // a write that still fit into pages SQLite already had
            _ => {
                assert_error(response, 503, "unavailable").await;
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "every write succeeded on a full disk");
    // Past the window in which a successful write probe is trusted.
    app.wx.clock.advance(Duration::from_secs(10));
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_error(ready, 503, "unavailable").await;

    std::fs::remove_file(filler).unwrap();
    // Every pooled connection has to work again: more logins than the pool has connections.
    for i in 0..12 {
        let response = login(&app, &format!("after-{i}")).await;
        assert_eq!(response.status(), 200, "login {i} after the disk was freed");
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
