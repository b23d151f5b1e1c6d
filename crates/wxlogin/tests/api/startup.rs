//! Start-up through the `wxlogin` binary: errors name their cause (without a database password),
//! and instances that migrate one database at the same moment all succeed.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::faults::{FreshDatabase, Tmpfs};
use crate::helpers::{DEMO_APPID, DEMO_SECRET};

fn wxlogin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env_remove("WXLOGIN_DATABASE__URL")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090.
        .env("WXLOGIN_METRICS__LISTEN", "");
    command
}

/// A configuration for `serve --allow-mock` in `dir`, listening on `listen`.
fn config(dir: &Path, listen: &str) -> std::path::PathBuf {
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"{}\"\nallow_insecure_public_url = true\n\n[security]\nsealing_key = \
         \"{sealing_key}\"\n\n[wechat]\nbase_url = \"http://127.0.0.1:9\"\n\n[[apps]]\n\
         appid = \"{DEMO_APPID}\"\nsecret = \"{DEMO_SECRET}\"\n",
        dir.display()
    );
    let path = dir.join("wxlogin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(config: &Path, database_url: &str) -> Output {
    wxlogin()
        .args(["serve", "--allow-mock", "--config"])
        .arg(config)
        .env("WXLOGIN_DATABASE__URL", database_url)
        .output()
        .unwrap()
}

fn failed_with(output: &Output) -> String {
    assert!(!output.status.success(), "it started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_database_directory_that_cannot_be_created_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0");
    // A regular file where a directory should be: not even root can create the directory.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let url = format!("sqlite://{}/file/sub/wxlogin.db", dir.path().display());
    let stderr = failed_with(&serve(&config, &url));
    assert!(stderr.contains("Not a directory"), "{stderr}");
}

#[test]
fn a_port_in_use_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config(dir.path(), &taken.local_addr().unwrap().to_string());
    let url = format!("sqlite://{}/wxlogin.db", dir.path().display());
    let stderr = failed_with(&serve(&config, &url));
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(!stderr.contains("storage: database error"), "{stderr}");
}

#[test]
fn a_read_only_database_names_the_cause() {
    let Some(disk) = Tmpfs::mount("8m") else {
        return;
    };
    let config = config(disk.path(), "127.0.0.1:0");
    let url = format!("sqlite://{}/wxlogin.db", disk.path().display());
    let migrated = wxlogin()
        .args(["migrate", "--config"])
        .arg(&config)
        .env("WXLOGIN_DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(migrated.status.success());
    // Read-only for root too: the file system itself.
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(disk.path())
        .status()
        .unwrap();
    assert!(remounted.success());
    let stderr = failed_with(&serve(&config, &url));
    // SQLite names a read-only file system either way, depending on which file it opens first
    // (the database, or the WAL's shared memory beside it).
    let cause = stderr.to_ascii_lowercase();
    assert!(
        cause.contains("read") || cause.contains("unable to open database file"),
        "{stderr}"
    );
    assert!(!stderr.contains("storage: database error\n"), "{stderr}");
}

#[test]
fn an_unreachable_postgres_names_the_cause_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://wxlogin:hunter2-secret@127.0.0.1:{port}/wxlogin");
    let stderr = failed_with(&serve(&config, &url));
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

/// Starts `count` `wxlogin migrate` at once on `url` and asserts that they all succeed.
fn migrate_at_once(dir: &Path, url: &str, count: usize) {
    let config = config(dir, "127.0.0.1:0");
    let children: Vec<_> = (0..count)
        .map(|_| {
            wxlogin()
                .args(["migrate", "--config"])
                .arg(&config)
                .env("WXLOGIN_DATABASE__URL", url)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every migration of the backend, as the binary embeds them.
fn migrations(backend: &str) -> i64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(dir).unwrap().count() as i64
}

const TABLES: [&str; 9] = [
    "users",
    "wechat_identities",
    "sessions",
    "refresh_tokens",
    "signing_keys",
    "login_tickets",
    "signing_key_current",
    "unionid_owners",
    "avatars",
];

#[tokio::test]
async fn several_instances_migrating_one_empty_sqlite_file_at_once_all_succeed() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wxlogin.db");
        let url = format!("sqlite://{}", db.display());
        migrate_at_once(dir.path(), &url, 6);
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(applied, migrations("sqlite"));
        for table in TABLES {
            let found: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(found, 1, "{table}");
        }
        conn.close().await.unwrap();
    }
}

#[tokio::test]
async fn several_instances_migrating_one_empty_postgres_database_at_once_all_succeed() {
    let Some(db) = FreshDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url();
    let outcome = std::panic::catch_unwind(|| migrate_at_once(dir.path(), &url, 6));
    let check = async {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name = ANY($1)",
        )
        .bind(TABLES.map(str::to_owned).to_vec())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        (applied, tables)
    };
    let counts = if outcome.is_ok() {
        Some(check.await)
    } else {
        None
    };
    db.drop_now().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(counts, Some((migrations("postgres"), TABLES.len() as i64)));
}

/// `PRAGMA journal_mode = WAL` on a file in rollback mode upgrades a read to a write, and SQLite
/// answers such an upgrade with SQLITE_BUSY at once, without waiting, while another connection
/// holds the write lock (what instances starting together on one new file do to each other).
#[tokio::test]
async fn migrate_waits_for_another_writer_holding_a_new_sqlite_file() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wxlogin.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let mut holder = SqliteConnection::connect(&url).await.unwrap();
    holder
        .execute("CREATE TABLE other (x INTEGER)")
        .await
        .unwrap();
    holder.execute("BEGIN IMMEDIATE").await.unwrap();
    let config = config(dir.path(), "127.0.0.1:0");
    let mut child = wxlogin()
        .args(["migrate", "--config"])
        .arg(&config)
        .env(
            "WXLOGIN_DATABASE__URL",
            format!("sqlite://{}", db.display()),
        )
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The migration must still be waiting while the lock is held (it gave up at once before).
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            panic!(
                "migrate ended ({status}) while the lock was held: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    holder.execute("COMMIT").await.unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert_eq!(applied, migrations("sqlite"));
}

#[tokio::test]
async fn migrate_imports_the_avatar_files_users_point_at() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0");
    let url = format!("sqlite://{}/wxlogin.db", dir.path().display());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&rand::random::<[u8; 16]>());
    let name = format!("{}.png", hex::encode(Sha256::digest(&png)));
    crate::profile::legacy_deployment(dir.path(), &url, &[(&name, Some(&png))]).await;
    let migrated = wxlogin()
        .args(["migrate", "--config"])
        .arg(&config)
        .env("WXLOGIN_DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let mut settings = wxlogin::config::Settings::default();
    settings.database.url = Some(url);
    let store = wxlogin::app::open_store(&settings).await.unwrap();
    let stored = store.get_avatar(&name).await.unwrap().unwrap();
    assert_eq!(stored.bytes, png);
    assert_eq!(stored.content_type, "image/png");
    assert!(
        dir.path().join("avatars").join(&name).exists(),
        "the file stays"
    );
}
