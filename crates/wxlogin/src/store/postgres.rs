//! The PostgreSQL backend: shared by any number of wxlogin instances.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult};

use super::StoreError;
use super::rows::db_error;
use super::sql::Backend;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// A request waits this long for a free connection before failing, rather than hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool to a `postgres://` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_sized(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As `connect`, with a pool of at most `max_connections` (`database.max_connections`).
    pub async fn connect_sized(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects a pool with options built in code (e.g. a `search_path`).
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Ok(Self { pool })
    }

    /// Closes the pool's connections (they would otherwise close when the last clone is dropped).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Backend for PostgresStore {
    type Db = Postgres;

    /// READ COMMITTED, the default: the writes that race are single guarded UPDATEs or DELETEs,
    /// which wait for the other's row lock and then re-check their condition on the new row.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_READ_ROW: &'static str = " FOR UPDATE";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
