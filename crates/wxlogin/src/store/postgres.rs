//! The PostgreSQL backend: shared by any number of wxlogin instances.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Postgres};

use super::rows::db_error;
use super::sql::{Backend, WriteProbe, close_if_in_transaction};
use super::{PoolSizing, StoreError};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    probe: WriteProbe,
}

impl PostgresStore {
    /// Connects a pool to a `postgres://` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_sized(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As `connect`, with a pool of at most `max_connections` (`database.max_connections`).
    pub async fn connect_sized(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_pooled(
            url,
            PoolSizing {
                max_connections,
                ..PoolSizing::default()
            },
        )
        .await
    }

    /// As `connect`, with the pool's size and wait from `[database]`.
    pub async fn connect_pooled(url: &str, pool: PoolSizing) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(db_error)?;
        Self::connect_with_pool(options, pool).await
    }

    /// Connects a pool with options built in code (e.g. a `search_path`).
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        Self::connect_with_pool(
            options,
            PoolSizing {
                max_connections,
                ..PoolSizing::default()
            },
        )
        .await
    }

    /// As `connect_with`, with the pool's size and wait from `[database]`.
    pub async fn connect_with_pool(
        options: PgConnectOptions,
        pool: PoolSizing,
    ) -> Result<Self, StoreError> {
        // One plain connection first: the pool would report an unreachable server only as
        // "pool timed out", without the cause (refused, unknown host, authentication).
        PgConnection::connect_with(&options)
            .await
            .map_err(db_error)?
            .close()
            .await
            .map_err(db_error)?;
        let pool = PgPoolOptions::new()
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

impl Backend for PostgresStore {
    type Db = Postgres;

    /// READ COMMITTED, the default: the writes that race are single guarded UPDATEs or DELETEs,
    /// which wait for the other's row lock and then re-check their condition on the new row.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_READ_ROW: &'static str = " FOR UPDATE";
    /// sqlx's migrator holds `pg_advisory_lock` (keyed by the database name) for its run.
    const MIGRATE_BEGIN: Option<&'static str> = None;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn write_probe(&self) -> &WriteProbe {
        &self.probe
    }

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
