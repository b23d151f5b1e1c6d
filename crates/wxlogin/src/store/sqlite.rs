//! The SQLite backend: one database file in WAL mode, for a single wxlogin process.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor, Sqlite, Transaction};

use super::rows::{
    IdentityRow, LoginTicketRow, RefreshTokenRow, SessionAccessRow, SessionRow, SigningKeyRow,
    UserRow, db_error, migrate_error,
};
use super::{
    Identity, LoginTicket, RefreshToken, Session, SessionAccess, SigningKey, Store, StoreError,
    User,
};
use crate::domain::{AppId, OpenId, Phone, SessionId, UnionId, UserId};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite has one writer at a time; a few connections are enough for the readers beside it.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// How long a writer waits for the write lock before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database file at `path`.
    pub async fn connect(path: &Path) -> Result<Self, StoreError> {
        Self::connect_sized(path, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As `connect`, with a pool of at most `max_connections` (`database.max_connections`).
    pub async fn connect_sized(path: &Path, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_with(options, max_connections).await
    }

    /// Opens a `sqlite:` URL; whether a missing file is created is up to the URL (`?mode=rwc`).
    pub async fn connect_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(db_error)?;
        Self::connect_with(options, DEFAULT_MAX_CONNECTIONS).await
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Ok(Self { pool })
    }

    /// Closes the pool's connections (they would otherwise close when the last clone is dropped).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the write lock up front. A deferred transaction that reads before it writes cannot
    /// wait for the lock (SQLite answers SQLITE_BUSY at once instead of honouring busy_timeout).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }
}

const INSERT_USER: &str = "INSERT INTO users \
     (id, nickname, avatar, created_at, updated_at, banned_at, phone_country_code, phone_number, \
      phone_bound_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const USER_COLUMNS: &str =
    "id, nickname, avatar, created_at, updated_at, banned_at, phone_country_code, phone_number";
const INSERT_LOGIN_TICKET: &str = "INSERT INTO login_tickets \
     (hash, appid, openid, unionid, sealed_session_key, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_IDENTITY: &str = "INSERT INTO wechat_identities \
     (appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, appid, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens \
     (hash, session_id, issued_at, expires_at, rotated_at) VALUES ($1, $2, $3, $4, $5)";

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(migrate_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn find_identity(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Identity>, StoreError> {
        sqlx::query_as::<_, IdentityRow>(
            "SELECT appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at \
             FROM wechat_identities WHERE appid = $1 AND openid = $2",
        )
        .bind(appid.as_str())
        .bind(openid.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(Identity::try_from)
        .transpose()
    }

    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &Identity,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_user(&mut *tx, user).await?;
        // On a conflict the transaction is dropped here, which rolls the user back too.
        insert_identity(&mut *tx, identity).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn record_identity_login(
        &self,
        appid: &AppId,
        openid: &OpenId,
        unionid: Option<&UnionId>,
        sealed_session_key: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        // WeChat sends the unionid only in some cases: a login without one must not forget it.
        sqlx::query(
            "UPDATE wechat_identities \
             SET sealed_session_key = $3, unionid = COALESCE($4, unionid), updated_at = $5 \
             WHERE appid = $1 AND openid = $2",
        )
        .bind(appid.as_str())
        .bind(openid.as_str())
        .bind(sealed_session_key)
        .bind(unionid.map(UnionId::as_str))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .map(User::try_from)
            .transpose()
    }

    async fn set_user_banned(
        &self,
        id: &UserId,
        banned_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET banned_at = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(banned_at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(INSERT_SESSION)
            .bind(session.id.as_str())
            .bind(session.user_id.as_str())
            .bind(session.appid.as_str())
            .bind(session.created_at)
            .bind(session.expires_at)
            .bind(session.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_refresh_token(&mut *tx, first_token).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT id, user_id, appid, created_at, expires_at, revoked_at \
             FROM sessions WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(Session::try_from)
        .transpose()
    }

    async fn session_access(&self, id: &SessionId) -> Result<Option<SessionAccess>, StoreError> {
        sqlx::query_as::<_, SessionAccessRow>(
            "SELECT s.user_id, s.revoked_at, u.banned_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(SessionAccess::try_from)
        .transpose()
    }

    async fn revoke_session(&self, id: &SessionId, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.as_str())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_user_sessions(&self, user: &UserId, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>, StoreError> {
        sqlx::query_as::<_, RefreshTokenRow>(
            "SELECT hash, session_id, issued_at, expires_at, rotated_at \
             FROM refresh_tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(RefreshToken::try_from)
        .transpose()
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshToken,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // The guard on rotated_at makes this UPDATE the arbiter between concurrent rotations.
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2 WHERE hash = $1 AND rotated_at IS NULL",
        )
        .bind(old_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        insert_refresh_token(&mut *tx, new).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        insert_refresh_token(&self.pool, token).await
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, alg, sealed_private_key, public_jwk, created_at, retired_at \
             FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(SigningKey::from).collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, alg, sealed_private_key, public_jwk, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.sealed_private_key.as_slice())
        .bind(key.public_jwk.as_str())
        .bind(key.created_at)
        .bind(key.retired_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }
    async fn set_nickname(
        &self,
        user: &UserId,
        nickname: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET nickname = $2, updated_at = $3 WHERE id = $1")
            .bind(user.as_str())
            .bind(nickname)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn replace_avatar(
        &self,
        user: &UserId,
        avatar: Option<&str>,
        now: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let previous: Option<(Option<String>,)> =
            sqlx::query_as("SELECT avatar FROM users WHERE id = $1")
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        let Some((previous,)) = previous else {
            return Ok(None);
        };
        sqlx::query("UPDATE users SET avatar = $2, updated_at = $3 WHERE id = $1")
            .bind(user.as_str())
            .bind(avatar)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(previous))
    }

    async fn count_users_with_avatar(&self, avatar: &str) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE avatar = $1")
            .bind(avatar)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn list_identities_of_user(&self, user: &UserId) -> Result<Vec<Identity>, StoreError> {
        sqlx::query_as::<_, IdentityRow>(
            "SELECT appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at \
             FROM wechat_identities WHERE user_id = ? ORDER BY appid, openid",
        )
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Identity::try_from)
        .collect()
    }

    async fn find_identity_by_user(
        &self,
        user: &UserId,
        appid: &AppId,
    ) -> Result<Option<Identity>, StoreError> {
        sqlx::query_as::<_, IdentityRow>(
            "SELECT appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at \
             FROM wechat_identities WHERE user_id = $1 AND appid = $2 \
             ORDER BY updated_at DESC, openid LIMIT 1",
        )
        .bind(user.as_str())
        .bind(appid.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(Identity::try_from)
        .transpose()
    }

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE phone_country_code = $1 AND phone_number = $2"
        ))
        .bind(phone.country_code())
        .bind(phone.number())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .map(User::try_from)
        .transpose()
    }

    async fn set_user_phone(
        &self,
        user: &UserId,
        phone: Option<&Phone>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET phone_country_code = $2, phone_number = $3, \
             phone_bound_at = CASE WHEN $3 IS NULL THEN NULL ELSE $4 END, updated_at = $4 \
             WHERE id = $1",
        )
        .bind(user.as_str())
        .bind(phone.map(Phone::country_code))
        .bind(phone.map(Phone::number))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        insert_user(&self.pool, user).await
    }

    async fn link_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        insert_identity(&self.pool, identity).await
    }

    async fn find_users_by_unionid(&self, unionid: &UnionId) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT user_id FROM wechat_identities WHERE unionid = $1 ORDER BY user_id",
        )
        .bind(unionid.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id,)| UserId::parse(id).map_err(|_| StoreError::Corrupt("user id")))
            .collect()
    }

    async fn insert_login_ticket(&self, ticket: &LoginTicket) -> Result<(), StoreError> {
        sqlx::query(INSERT_LOGIN_TICKET)
            .bind(ticket.hash.as_slice())
            .bind(ticket.appid.as_str())
            .bind(ticket.openid.as_str())
            .bind(ticket.unionid.as_ref().map(UnionId::as_str))
            .bind(ticket.sealed_session_key.as_slice())
            .bind(ticket.created_at)
            .bind(ticket.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn take_login_ticket(
        &self,
        hash: &[u8],
        now: i64,
    ) -> Result<Option<LoginTicket>, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let row = sqlx::query_as::<_, LoginTicketRow>(
            "DELETE FROM login_tickets WHERE hash = $1 \
             RETURNING hash, appid, openid, unionid, sealed_session_key, created_at, expires_at",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        row.map(LoginTicket::try_from).transpose()
    }
}

async fn insert_refresh_token<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    token: &RefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_REFRESH_TOKEN)
        .bind(token.hash.as_slice())
        .bind(token.session_id.as_str())
        .bind(token.issued_at)
        .bind(token.expires_at)
        .bind(token.rotated_at)
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_user<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    user: &User,
) -> Result<(), StoreError> {
    let phone = user.phone.as_ref();
    sqlx::query(INSERT_USER)
        .bind(user.id.as_str())
        .bind(user.nickname.as_deref())
        .bind(user.avatar.as_deref())
        .bind(user.created_at)
        .bind(user.updated_at)
        .bind(user.banned_at)
        .bind(phone.map(Phone::country_code))
        .bind(phone.map(Phone::number))
        .bind(phone.map(|_| user.updated_at))
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_identity<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    identity: &Identity,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_IDENTITY)
        .bind(identity.appid.as_str())
        .bind(identity.openid.as_str())
        .bind(identity.unionid.as_ref().map(UnionId::as_str))
        .bind(identity.user_id.as_str())
        .bind(identity.sealed_session_key.as_slice())
        .bind(identity.created_at)
        .bind(identity.updated_at)
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}
