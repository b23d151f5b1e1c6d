//! The SQLite backend: one database file in WAL mode, for a single wxlogin process.

use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use super::rows::db_error;
use super::sql::{Backend, WriteProbe, close_if_in_transaction};
use super::{PoolSizing, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite has one writer at a time; a few connections are enough for the readers beside it.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// How long a writer waits for the write lock before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    probe: WriteProbe,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`.
    pub async fn connect(path: &Path) -> Result<Self, StoreError> {
        Self::connect_sized(path, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As `connect`, with a pool of at most `max_connections` (`database.max_connections`).
    pub async fn connect_sized(path: &Path, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_pooled(
            path,
            PoolSizing {
                max_connections,
                ..PoolSizing::default()
            },
        )
        .await
    }

    /// As `connect`, with the pool's size and wait from `[database]`.
    pub async fn connect_pooled(path: &Path, pool: PoolSizing) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool_options = SqlitePoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .after_release(|conn, _| Box::pin(close_if_in_transaction(conn)));
        let mut waited = Duration::ZERO;
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && waited < BUSY_TIMEOUT => {
                    let pause = Duration::from_millis(10 + u64::from(rand::random::<u8>() % 51));
                    tokio::time::sleep(pause).await;
                    waited += pause;
                }
                Err(e) => return Err(db_error(e)),
            }
        };
        Ok(Self {
            pool,
            probe: WriteProbe::default(),
        })
    }

    /// Closes the pool's connections (they would otherwise close when the last clone is dropped).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether SQLite refused for a lock another connection holds (SQLITE_BUSY or SQLITE_LOCKED,
/// with any extended code).
///
/// Opening a file still in rollback mode switches it to WAL, which upgrades the connection's read
/// to a write; SQLite answers that upgrade with SQLITE_BUSY at once, without the busy timeout,
/// while another connection holds the write lock. Instances starting together on one new file do
/// that to each other, so opening retries for as long as a writer would wait.
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    e.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

impl Backend for SqliteStore {
    type Db = Sqlite;

    /// Takes the write lock up front. A deferred transaction that reads before it writes cannot
    /// wait for the lock (SQLite answers SQLITE_BUSY at once instead of honouring busy_timeout).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// SQLite has no row locks (nor `FOR UPDATE`); `BEGIN IMMEDIATE` already holds the database's
    /// only write lock.
    const LOCK_READ_ROW: &'static str = "";
    /// SQLite has no advisory locks: instances starting together on one file take the write lock
    /// for the whole run (waiting up to the busy timeout), so the second finds the schema done
    /// instead of creating the same tables again.
    const MIGRATE_BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn write_probe(&self) -> &WriteProbe {
        &self.probe
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
