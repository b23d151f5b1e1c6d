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
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .after_release(|conn, _| Box::pin(close_if_in_transaction(conn)))
            .connect_with(options)
            .await
            .map_err(db_error)?;
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
