//! The queries, once for both backends: `Store` is implemented for every `Backend`, and a backend
//! supplies only what SQLite and PostgreSQL really do differently (`Backend`'s items).
//!
//! Placeholders are `$1`, `$2`, ... everywhere: sqlx binds SQLite's `$NNN` parameters by their
//! number, as PostgreSQL does, so one number may appear twice in a statement (`set_user_phone`).

use sqlx::migrate::{Migrate, Migrator};
use sqlx::query::Query;
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction,
    Type,
};

use super::audit::{AUDIT_COLUMNS, AuditRow};
use super::rows::{
    AdminRow, IdentityRow, LoginTicketRow, RefreshTokenRow, SessionAccessRow, SessionRow,
    SigningKeyRow, UserRow, db_error, migrate_error,
};
use super::{
    AdminAccount, AdminRemoval, AuditCount, AuditCountQuery, AuditQuery, AuditRecord, Avatar,
    Identity, LoginTicket, RefreshToken, Session, SessionAccess, SessionQuery, SigningKey, Store,
    StoreError, User, UserSearch, UserSummary,
};
use crate::domain::{AdminName, AdminRole, AppId, OpenId, Phone, SessionId, UnionId, UserId};

/// The columns of a session in a listing, `s` the sessions table: with when it was last used,
/// its newest refresh token's issue (by the index on `refresh_tokens.session_id`).
const SESSION_LISTING: &str = "s.id, s.user_id, s.appid, s.created_at, s.expires_at, \
     s.revoked_at, s.user_agent, \
     (SELECT MAX(r.issued_at) FROM refresh_tokens r WHERE r.session_id = s.id) AS last_used_at";

/// What a backend decides for itself. Public only to appear in the bounds of the `Store` impl;
/// the module is private, so nothing outside `store` can implement it.
pub trait Backend: Send + Sync + 'static {
    type Db: Database;

    /// Opens a transaction that will write. It must make concurrent writers of the same rows
    /// wait rather than fail.
    const BEGIN_WRITE: &'static str;
    /// How a migration run excludes concurrent ones: `Some(begin)` runs the whole migrator inside
    /// a transaction opened with it; `None` leaves it to the migrator (PostgreSQL: sqlx takes
    /// `pg_advisory_lock` around the run).
    const MIGRATE_BEGIN: Option<&'static str>;
    /// Appended to a read whose row the same transaction then updates, so that a concurrent
    /// writer cannot slip in between (`replace_avatar`, `import_avatar`).
    const LOCK_READ_ROW: &'static str;

    fn pool(&self) -> &Pool<Self::Db>;
    fn write_probe(&self) -> &WriteProbe;
    fn migrator() -> &'static Migrator;
    /// sqlx offers the count only on each driver's own result type.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

const ADMIN_COLUMNS: &str = "name, role, password_hash, sealed_totp_secret, totp_confirmed_at, \
     totp_last_step, totp_required, failed_attempts, locked_until, created_at, updated_at";

const USER_COLUMNS: &str =
    "id, nickname, avatar, created_at, updated_at, banned_at, phone_country_code, phone_number";
/// [`USER_COLUMNS`] of a table named `u`, for joins.
const USER_COLUMNS_OF_U: &str = "u.id, u.nickname, u.avatar, u.created_at, u.updated_at, \
     u.banned_at, u.phone_country_code, u.phone_number";

/// A connection that comes back to the pool still inside a transaction is closed instead of kept.
///
/// That happens when a `COMMIT` (or a statement) fails and the database has already ended the
/// transaction itself, as SQLite does on a full disk: the `ROLLBACK` that sqlx sends when the
/// transaction is dropped then fails too, sqlx still counts the transaction as open, and every
/// later `BEGIN` on that connection would fail ("begin_with at non-zero transaction depth") for
/// as long as the process lives. The ping first lets the dropped transaction's queued `ROLLBACK`
/// run, so a healthy connection is never closed for it.
pub(super) async fn close_if_in_transaction<C: Connection>(
    conn: &mut C,
) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    let keep = !conn.is_in_transaction();
    if !keep {
        tracing::warn!("a database connection was left in a failed transaction; closing it");
    }
    Ok(keep)
}

/// How long a successful write probe is trusted (`Store::check_writable`).
const WRITE_PROBE_TTL_MS: i64 = 5_000;

/// When the last write probe succeeded; one probe runs at a time.
#[derive(Debug, Clone, Default)]
pub struct WriteProbe(std::sync::Arc<tokio::sync::Mutex<Option<i64>>>);

async fn begin_write<B: Backend>(store: &B) -> Result<Transaction<'static, B::Db>, StoreError> {
    store
        .pool()
        .begin_with(B::BEGIN_WRITE)
        .await
        .map_err(db_error)
}

// sqlx's generic API asks for every capability by name: executing on a pool and a transaction,
// migrating, binding the parameter types used below, and decoding the columns of the row types.
// Both drivers have them all; the list only grows when a query binds or reads a new type.
#[async_trait::async_trait]
impl<B> Store for B
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Connection: Migrate,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'r> &'r str: ColumnIndex<<B::Db as Database>::Row>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'r> String: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> Vec<u8>: Decode<'r, B::Db> + Type<B::Db>,
    for<'r> i64: Decode<'r, B::Db>,
{
    async fn migrate(&self) -> Result<(), StoreError> {
        let Some(begin) = B::MIGRATE_BEGIN else {
            return B::migrator().run(self.pool()).await.map_err(migrate_error);
        };
        let mut tx = self.pool().begin_with(begin).await.map_err(db_error)?;
        B::migrator()
            .run_direct(&mut *tx)
            .await
            .map_err(migrate_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn check_writable(&self, now: i64) -> Result<(), StoreError> {
        let mut last_success = self.write_probe().0.lock().await;
        if last_success.is_some_and(|at| (0..WRITE_PROBE_TTL_MS).contains(&(now - at))) {
            return Ok(());
        }
        // A row no one else reads: a random hash, already expired, gone again before the commit.
        let hash: [u8; 32] = rand::random();
        let mut tx = begin_write(self).await?;
        sqlx::query(
            "INSERT INTO login_tickets \
             (hash, appid, openid, unionid, sealed_session_key, created_at, expires_at) \
             VALUES ($1, '-', '-', NULL, $1, 0, 0)",
        )
        .bind(hash.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query("DELETE FROM login_tickets WHERE hash = $1")
            .bind(hash.as_slice())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        *last_success = Some(now);
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
        .fetch_optional(self.pool())
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
        let mut tx = begin_write(self).await?;
        insert_user(user)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // On a conflict the transaction is dropped here, which rolls the user back too.
        insert_identity(identity)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(unionid) = &identity.unionid {
            own_unionid(&mut tx, unionid, &identity.user_id, identity.created_at).await?;
        }
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
        let update = sqlx::query(
            "UPDATE wechat_identities \
             SET sealed_session_key = $3, unionid = COALESCE($4, unionid), updated_at = $5 \
             WHERE appid = $1 AND openid = $2",
        )
        .bind(appid.as_str())
        .bind(openid.as_str())
        .bind(sealed_session_key)
        .bind(unionid.map(UnionId::as_str))
        .bind(now);
        let Some(unionid) = unionid else {
            update.execute(self.pool()).await.map_err(db_error)?;
            return Ok(());
        };
        // A unionid the identity did not have yet (a back-fill) must become its user's, in the
        // same transaction, or be refused.
        let mut tx = begin_write(self).await?;
        let known: Option<(String, Option<String>)> = sqlx::query_as(&format!(
            "SELECT user_id, unionid FROM wechat_identities WHERE appid = $1 AND openid = $2{}",
            B::LOCK_READ_ROW
        ))
        .bind(appid.as_str())
        .bind(openid.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some((user, known_unionid)) = known
            && known_unionid.as_deref() != Some(unionid.as_str())
        {
            let user = UserId::parse(user).map_err(|_| StoreError::Corrupt("user id"))?;
            own_unionid(&mut tx, unionid, &user, now).await?;
        }
        update.execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
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
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshToken,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        sqlx::query(
            "INSERT INTO sessions \
             (id, user_id, appid, created_at, expires_at, revoked_at, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(session.appid.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.revoked_at)
        .bind(session.user_agent.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_refresh_token(first_token)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT id, user_id, appid, created_at, expires_at, revoked_at, user_agent, \
             CAST(NULL AS BIGINT) AS last_used_at FROM sessions WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(db_error)?
        .map(Session::try_from)
        .transpose()
    }

    async fn session_access(&self, id: &SessionId) -> Result<Option<SessionAccess>, StoreError> {
        // One row per identity of the user in the session's app (one, in practice): joined rather
        // than picked by an ORDER BY ... LIMIT 1 subquery, which costs SQLite a sort per read;
        // `from_rows` picks the one find_identity_by_user would.
        let rows = sqlx::query_as::<_, SessionAccessRow>(&format!(
            "SELECT s.revoked_at, s.expires_at, {USER_COLUMNS_OF_U}, \
             i.openid AS identity_openid, i.unionid AS identity_unionid, \
             i.updated_at AS identity_updated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             LEFT JOIN wechat_identities i ON i.user_id = s.user_id AND i.appid = s.appid \
             WHERE s.id = $1"
        ))
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        SessionAccess::from_rows(rows)
    }

    async fn revoke_session(&self, id: &SessionId, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.as_str())
                .bind(now)
                .execute(self.pool())
                .await
                .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn revoke_user_sessions(&self, user: &UserId, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.as_str())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done))
    }

    async fn count_live_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>, StoreError> {
        sqlx::query_as::<_, RefreshTokenRow>(
            "SELECT hash, session_id, issued_at, expires_at, rotated_at \
             FROM refresh_tokens WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.pool())
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
        let mut tx = begin_write(self).await?;
        // Rotations of one session queue up on its row (SQLite: BEGIN IMMEDIATE already holds the
        // only write lock), so two siblings rotated at once cannot both win, nor deadlock on each
        // other's rows.
        sqlx::query(&format!(
            "SELECT id FROM sessions WHERE id = $1{}",
            B::LOCK_READ_ROW
        ))
        .bind(new.session_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        // The guard on rotated_at makes this UPDATE the arbiter between concurrent rotations: a
        // second one waits for the first's lock, then sees rotated_at set and matches nothing.
        let done = sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2 \
             WHERE hash = $1 AND session_id = $3 AND rotated_at IS NULL",
        )
        .bind(old_hash)
        .bind(now)
        .bind(new.session_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if B::rows_affected(&done) == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        // The siblings: tokens handed out to replays of an earlier token within its grace window.
        // They end here (rotated and expired at once, so they get no grace of their own).
        sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $2, expires_at = $2 \
             WHERE session_id = $1 AND rotated_at IS NULL",
        )
        .bind(new.session_id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_refresh_token(new)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        insert_refresh_token(token)
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let rows = sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, alg, sealed_private_key, public_jwk, created_at, activates_at, \
             retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(SigningKey::from).collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        insert_signing_key(key)
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn current_signing_kid(&self, alg: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT kid FROM signing_key_current WHERE alg = $1")
                .bind(alg)
                .fetch_optional(self.pool())
                .await
                .map_err(db_error)?;
        Ok(row.map(|(kid,)| kid))
    }

    async fn install_signing_key(
        &self,
        key: &SigningKey,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = begin_write(self).await?;
        insert_signing_key(key)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        // The primary key on alg decides a race for the first key: a concurrent insert waits
        // for the other transaction and then does nothing; a rotation swaps only the kid it read.
        let done = match replaces {
            None => sqlx::query(
                "INSERT INTO signing_key_current (alg, kid, since) VALUES ($1, $2, $3) \
                 ON CONFLICT (alg) DO NOTHING",
            )
            .bind(key.alg.as_str())
            .bind(key.kid.as_str())
            .bind(key.activates_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?,
            Some(previous) => sqlx::query(
                "UPDATE signing_key_current SET kid = $2, since = $3 WHERE alg = $1 AND kid = $4",
            )
            .bind(key.alg.as_str())
            .bind(key.kid.as_str())
            .bind(key.activates_at)
            .bind(previous)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?,
        };
        if B::rows_affected(&done) == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
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
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn replace_avatar(
        &self,
        user: &UserId,
        avatar: Option<&Avatar>,
        now: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        let mut tx = begin_write(self).await?;
        let previous: Option<(Option<String>,)> = sqlx::query_as(&format!(
            "SELECT avatar FROM users WHERE id = $1{}",
            B::LOCK_READ_ROW
        ))
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some((previous,)) = previous else {
            return Ok(None);
        };
        let replaced = previous
            .as_deref()
            .filter(|p| Some(*p) != avatar.map(|a| a.name.as_str()));
        // Both images' rows are locked, in name order, so that two users swapping images cannot
        // deadlock. The new one by an upsert that always takes the row's lock: a transaction
        // deleting it (below) either finished before, and the image is inserted again, or waits
        // until this one has pointed its user at it, and then counts that user.
        let mut steps: Vec<(&str, Option<&Avatar>)> = avatar
            .map(|a| (a.name.as_str(), Some(a)))
            .into_iter()
            .chain(replaced.map(|name| (name, None)))
            .collect();
        steps.sort_by(|a, b| a.0.cmp(b.0));
        for (name, image) in steps {
            match image {
                Some(image) => {
                    sqlx::query(
                        "INSERT INTO avatars (name, content_type, bytes, created_at) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO UPDATE SET content_type = excluded.content_type",
                    )
                    .bind(image.name.as_str())
                    .bind(image.content_type.as_str())
                    .bind(image.bytes.as_slice())
                    .bind(image.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
                None => {
                    sqlx::query(&format!(
                        "SELECT name FROM avatars WHERE name = $1{}",
                        B::LOCK_READ_ROW
                    ))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                }
            }
        }
        sqlx::query("UPDATE users SET avatar = $2, updated_at = $3 WHERE id = $1")
            .bind(user.as_str())
            .bind(avatar.map(|a| a.name.as_str()))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(replaced) = replaced {
            // A statement of its own, after the lock: it sees every user pointed at the image by
            // a transaction that held the lock before.
            let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE avatar = $1")
                .bind(replaced)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            if users == 0 {
                sqlx::query("DELETE FROM avatars WHERE name = $1")
                    .bind(replaced)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(previous))
    }

    async fn get_avatar(&self, name: &str) -> Result<Option<Avatar>, StoreError> {
        let row: Option<(String, String, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT name, content_type, bytes, created_at FROM avatars WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await
        .map_err(db_error)?;
        Ok(row.map(|(name, content_type, bytes, created_at)| Avatar {
            name,
            content_type,
            bytes,
            created_at,
        }))
    }

    async fn avatars_without_image(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT u.avatar FROM users u \
             WHERE u.avatar > $1 \
             AND NOT EXISTS (SELECT 1 FROM avatars a WHERE a.name = u.avatar) \
             ORDER BY u.avatar LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    async fn import_avatar(&self, avatar: &Avatar) -> Result<bool, StoreError> {
        let mut tx = begin_write(self).await?;
        // One user who points at it, locked (as `replace_avatar` locks its user first), so that
        // nobody can drop the last reference before the image is in.
        let user: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT id FROM users WHERE avatar = $1 LIMIT 1{}",
            B::LOCK_READ_ROW
        ))
        .bind(avatar.name.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if user.is_none() {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        let done = sqlx::query(
            "INSERT INTO avatars (name, content_type, bytes, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(avatar.name.as_str())
        .bind(avatar.content_type.as_str())
        .bind(avatar.bytes.as_slice())
        .bind(avatar.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn find_identity_by_user(
        &self,
        user: &UserId,
        appid: &AppId,
    ) -> Result<Option<Identity>, StoreError> {
        // All of them (one, in practice), the last updated picked here (ties: the smaller openid,
        // as session_access picks it): an ORDER BY ... LIMIT 1 costs SQLite a sort on every
        // decrypt, the index being on user_id alone.
        sqlx::query_as::<_, IdentityRow>(
            "SELECT appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at \
             FROM wechat_identities WHERE user_id = $1 AND appid = $2",
        )
        .bind(user.as_str())
        .bind(appid.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Identity::try_from)
        .try_fold(None, |last: Option<Identity>, identity| {
            let identity = identity?;
            Ok(match last {
                Some(last)
                    if (last.updated_at, std::cmp::Reverse(&last.openid))
                        >= (identity.updated_at, std::cmp::Reverse(&identity.openid)) =>
                {
                    Some(last)
                }
                _ => Some(identity),
            })
        })
    }

    async fn list_identities_of_user(&self, user: &UserId) -> Result<Vec<Identity>, StoreError> {
        sqlx::query_as::<_, IdentityRow>(
            "SELECT appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at \
             FROM wechat_identities WHERE user_id = $1 ORDER BY appid, openid",
        )
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(Identity::try_from)
        .collect()
    }

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, UserRow>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE phone_country_code = $1 AND phone_number = $2"
        ))
        .bind(phone.country_code())
        .bind(phone.number())
        .fetch_optional(self.pool())
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
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        insert_user(user)
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn link_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        insert_identity(identity)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(unionid) = &identity.unionid {
            own_unionid(&mut tx, unionid, &identity.user_id, identity.created_at).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn find_users_by_unionid(&self, unionid: &UnionId) -> Result<Vec<UserId>, StoreError> {
        // The owner, and any other user with an identity of it (only data from before owners).
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT user_id FROM unionid_owners WHERE unionid = $1 \
             UNION SELECT user_id FROM wechat_identities WHERE unionid = $1 \
             ORDER BY user_id",
        )
        .bind(unionid.as_str())
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(id,)| UserId::parse(id).map_err(|_| StoreError::Corrupt("user id")))
            .collect()
    }

    async fn insert_login_ticket(&self, ticket: &LoginTicket) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_tickets \
             (hash, appid, openid, unionid, sealed_session_key, created_at, expires_at, attempts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(ticket.hash.as_slice())
        .bind(ticket.appid.as_str())
        .bind(ticket.openid.as_str())
        .bind(ticket.unionid.as_ref().map(UnionId::as_str))
        .bind(ticket.sealed_session_key.as_slice())
        .bind(ticket.created_at)
        .bind(ticket.expires_at)
        .bind(i64::from(ticket.attempts))
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn take_login_ticket(
        &self,
        hash: &[u8],
        now: i64,
    ) -> Result<Option<LoginTicket>, StoreError> {
        let mut tx = begin_write(self).await?;
        sqlx::query("DELETE FROM login_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let row = sqlx::query_as::<_, LoginTicketRow>(
            "DELETE FROM login_tickets WHERE hash = $1 \
             RETURNING hash, appid, openid, unionid, sealed_session_key, created_at, expires_at, \
             attempts",
        )
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        row.map(LoginTicket::try_from).transpose()
    }

    // Administration (`wxlogin users`, `wxlogin sessions`).
    async fn search_users(
        &self,
        search: Option<&UserSearch>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<UserSummary>, StoreError> {
        let columns = USER_COLUMNS_OF_U;
        // Each condition only when the search has it, so no parameter is ever untyped NULL.
        let mut conditions = Vec::new();
        if search.is_some() {
            conditions.push("u.id = $2".to_owned());
            conditions.push(
                "EXISTS (SELECT 1 FROM wechat_identities i WHERE i.user_id = u.id \
                 AND (i.openid = $2 OR i.unionid = $2))"
                    .to_owned(),
            );
            // LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            conditions.push("LOWER(u.nickname) LIKE LOWER($3) ESCAPE '\\'".to_owned());
        }
        if search.is_some_and(|s| s.phone.is_some()) {
            conditions.push("(u.phone_country_code = $4 AND u.phone_number = $5)".to_owned());
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" OR "))
        };
        let sql = format!(
            "SELECT {columns}, \
             (SELECT COUNT(*) FROM wechat_identities i WHERE i.user_id = u.id) AS identities \
             FROM users u {filter} ORDER BY u.created_at DESC, u.id DESC LIMIT $1 OFFSET {offset}"
        );
        let pattern = search.map(|s| format!("%{}%", escape_like(&s.text)));
        let mut query = sqlx::query_as::<_, UserSummaryRow>(&sql).bind(i64::from(limit));
        if let (Some(search), Some(pattern)) = (search, pattern.as_deref()) {
            query = query.bind(search.text.as_str()).bind(pattern);
            if let Some(phone) = &search.phone {
                query = query.bind(phone.country_code()).bind(phone.number());
            }
        }
        query
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|row| {
                Ok(UserSummary {
                    user: User::try_from(row.user)?,
                    identities: u64::try_from(row.identities).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn list_sessions_of_user(
        &self,
        user: &UserId,
        live_at: Option<i64>,
    ) -> Result<Vec<Session>, StoreError> {
        let live = if live_at.is_some() {
            " AND revoked_at IS NULL AND expires_at > $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {SESSION_LISTING} FROM sessions s WHERE user_id = $1{live} \
             ORDER BY created_at DESC, id DESC"
        );
        let mut query = sqlx::query_as::<_, SessionRow>(&sql).bind(user.as_str());
        if let Some(now) = live_at {
            query = query.bind(now);
        }
        query
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }

    async fn list_sessions(&self, query: &SessionQuery) -> Result<Vec<Session>, StoreError> {
        // Only the filters given, each with its own parameter.
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if query.user.is_some() {
            conditions.push(format!("user_id = ${}", next()));
        }
        if query.appid.is_some() {
            conditions.push(format!("appid = ${}", next()));
        }
        if query.live_at.is_some() {
            conditions.push(format!("revoked_at IS NULL AND expires_at > ${}", next()));
        }
        if query.since.is_some() {
            conditions.push(format!("created_at >= ${}", next()));
        }
        if query.before.is_some() {
            let (at, id) = (next(), next());
            conditions.push(format!(
                "(created_at < ${at} OR (created_at = ${at} AND id < ${id}))"
            ));
        }
        let limit = next();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {SESSION_LISTING} FROM sessions s{filter} \
             ORDER BY created_at DESC, id DESC LIMIT ${limit}"
        );
        let mut statement = sqlx::query_as::<_, SessionRow>(&sql);
        if let Some(user) = &query.user {
            statement = statement.bind(user.as_str());
        }
        if let Some(appid) = &query.appid {
            statement = statement.bind(appid.as_str());
        }
        if let Some(now) = query.live_at {
            statement = statement.bind(now);
        }
        if let Some(since) = query.since {
            statement = statement.bind(since);
        }
        if let Some((at, id)) = &query.before {
            statement = statement.bind(*at).bind(id.as_str());
        }
        statement
            .bind(i64::from(query.limit))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Session::try_from)
            .collect()
    }

    // Audit log and retention.
    async fn append_audit_event(&self, record: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events \
             (at, type, actor_kind, actor_id, user_id, appid, client_ip, user_agent, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.at)
        .bind(record.kind.as_str())
        .bind(record.actor_kind.as_str())
        .bind(record.actor_id.as_deref())
        .bind(record.user_id.as_ref().map(UserId::as_str))
        .bind(record.appid.as_ref().map(AppId::as_str))
        .bind(record.client_ip.as_deref())
        .bind(record.user_agent.as_deref())
        .bind(record.details.as_str())
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn list_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        // Only the filters given, so that each listing can use its index.
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if query.user.is_some() {
            conditions.push(format!("user_id = ${}", next()));
        }
        if query.kind.is_some() {
            conditions.push(format!("type = ${}", next()));
        }
        if query.appid.is_some() {
            conditions.push(format!("appid = ${}", next()));
        }
        if query.since.is_some() {
            conditions.push(format!("at >= ${}", next()));
        }
        if query.before.is_some() {
            let (at, id) = (next(), next());
            conditions.push(format!("(at < ${at} OR (at = ${at} AND id < ${id}))"));
        }
        let limit = next();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events{filter} ORDER BY at DESC, id DESC LIMIT ${limit}"
        );
        let mut statement = sqlx::query_as::<_, AuditRow>(&sql);
        if let Some(user) = &query.user {
            statement = statement.bind(user.as_str());
        }
        if let Some(kind) = &query.kind {
            statement = statement.bind(kind.as_str());
        }
        if let Some(appid) = &query.appid {
            statement = statement.bind(appid.as_str());
        }
        if let Some(since) = query.since {
            statement = statement.bind(since);
        }
        if let Some((at, id)) = query.before {
            statement = statement.bind(at).bind(id);
        }
        statement
            .bind(i64::from(query.limit))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(AuditRecord::try_from)
            .collect()
    }

    async fn count_audit_events(
        &self,
        query: &AuditCountQuery,
    ) -> Result<Vec<AuditCount>, StoreError> {
        if query.kinds.is_empty() || query.bucket_ms <= 0 {
            return Ok(Vec::new());
        }
        // Entries since a recent `since` with an offset of at most a day: `at + offset` is
        // positive, so the integer division is a floor in both databases.
        let kinds = (0..query.kinds.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT CAST((at + $1) / $2 AS BIGINT) AS bucket, type, details, \
             CAST(COUNT(*) AS BIGINT) AS count \
             FROM audit_events WHERE at >= $3 AND type IN ({kinds}) \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        );
        let mut statement = sqlx::query_as::<_, AuditCount>(&sql)
            .bind(query.offset_ms)
            .bind(query.bucket_ms)
            .bind(query.since);
        for kind in &query.kinds {
            statement = statement.bind(kind.as_str());
        }
        statement.fetch_all(self.pool()).await.map_err(db_error)
    }

    async fn purge_audit_events(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        delete_batch(
            self,
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn purge_ended_session_tokens(&self, now: i64, limit: u32) -> Result<u64, StoreError> {
        // Two statements, each led by an index of `sessions` (expired, revoked), rather than one
        // with an OR that would scan the table on every batch.
        let purged = delete_batch(
            self,
            "DELETE FROM refresh_tokens WHERE hash IN \
             (SELECT t.hash FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id \
              WHERE s.expires_at <= $1 LIMIT $2)",
            now,
            limit,
        )
        .await?;
        let left = u64::from(limit).saturating_sub(purged);
        if left == 0 {
            return Ok(purged);
        }
        let revoked = sqlx::query(
            "DELETE FROM refresh_tokens WHERE hash IN \
             (SELECT t.hash FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id \
              WHERE s.revoked_at IS NOT NULL LIMIT $1)",
        )
        .bind(i64::try_from(left).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(purged + B::rows_affected(&revoked))
    }

    async fn purge_sessions_expired_before(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        // Their refresh tokens go too (ON DELETE CASCADE; SQLite connections set foreign_keys).
        delete_batch(
            self,
            "DELETE FROM sessions WHERE id IN \
             (SELECT id FROM sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2)",
            before,
            limit,
        )
        .await
    }

    async fn purge_expired_login_tickets(&self, now: i64, limit: u32) -> Result<u64, StoreError> {
        delete_batch(
            self,
            "DELETE FROM login_tickets WHERE hash IN \
             (SELECT hash FROM login_tickets WHERE expires_at <= $1 LIMIT $2)",
            now,
            limit,
        )
        .await
    }

    // Signing-key lifecycle (`wxlogin keys retire`).
    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 \
             WHERE kid = $1 AND (retired_at IS NULL OR retired_at > $2)",
        )
        .bind(kid)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    // Sealing-key reseal (`wxlogin sealing-key reseal`).
    async fn sealed_identity_keys(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let (appid, openid) = after.unwrap_or(("", ""));
        sqlx::query_as(
            "SELECT appid, openid, sealed_session_key FROM wechat_identities \
             WHERE (appid, openid) > ($1, $2) ORDER BY appid, openid LIMIT $3",
        )
        .bind(appid)
        .bind(openid)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db_error)
    }

    async fn reseal_identity_key(
        &self,
        appid: &str,
        openid: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE wechat_identities SET sealed_session_key = $4 \
             WHERE appid = $1 AND openid = $2 AND sealed_session_key = $3",
        )
        .bind(appid)
        .bind(openid)
        .bind(old)
        .bind(new)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn sealed_ticket_keys(
        &self,
        after: Option<&[u8]>,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, String, String, Vec<u8>)>, StoreError> {
        sqlx::query_as(
            "SELECT hash, appid, openid, sealed_session_key FROM login_tickets \
             WHERE hash > $1 ORDER BY hash LIMIT $2",
        )
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db_error)
    }

    async fn reseal_ticket_key(
        &self,
        hash: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE login_tickets SET sealed_session_key = $3 \
             WHERE hash = $1 AND sealed_session_key = $2",
        )
        .bind(hash)
        .bind(old)
        .bind(new)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_private_key = $3 \
             WHERE kid = $1 AND sealed_private_key = $2",
        )
        .bind(kid)
        .bind(old)
        .bind(new)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    // Administrators of the console.
    async fn insert_admin(&self, admin: &AdminAccount) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admins (name, role, password_hash, totp_required, failed_attempts, \
             locked_until, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(admin.name.as_str())
        .bind(admin.role.as_str())
        .bind(admin.password_hash.as_str())
        .bind(i64::from(admin.totp_required))
        .bind(admin.failed_attempts)
        .bind(admin.locked_until)
        .bind(admin.created_at)
        .bind(admin.updated_at)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn get_admin(&self, name: &AdminName) -> Result<Option<AdminAccount>, StoreError> {
        sqlx::query_as::<_, AdminRow>(&format!(
            "SELECT {ADMIN_COLUMNS} FROM admins WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(db_error)?
        .map(AdminAccount::try_from)
        .transpose()
    }

    async fn list_admins(&self) -> Result<Vec<AdminAccount>, StoreError> {
        sqlx::query_as::<_, AdminRow>(&format!("SELECT {ADMIN_COLUMNS} FROM admins ORDER BY name"))
            .fetch_all(self.pool())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(AdminAccount::try_from)
            .collect()
    }

    async fn delete_admin(&self, name: &AdminName) -> Result<AdminRemoval, StoreError> {
        let mut tx = begin_write(self).await?;
        // The owners are locked (PostgreSQL; SQLite holds its one write lock already), so that of
        // two removals of the last two owners the second counts after the first committed.
        let owners: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT name FROM admins WHERE role = 'owner'{}",
            B::LOCK_READ_ROW
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let role: Option<(String,)> = sqlx::query_as("SELECT role FROM admins WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let Some((role,)) = role else {
            return Ok(AdminRemoval::NotFound);
        };
        let role = AdminRole::parse(&role).map_err(|_| StoreError::Corrupt("admin role"))?;
        if role == AdminRole::Owner && owners.len() <= 1 {
            return Ok(AdminRemoval::LastOwner);
        }
        sqlx::query("DELETE FROM admins WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(AdminRemoval::Removed(role))
    }

    async fn set_admin_password(
        &self,
        name: &AdminName,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE admins SET password_hash = $2, failed_attempts = 0, locked_until = NULL, \
             updated_at = $3 WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(password_hash)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn set_admin_totp(
        &self,
        name: &AdminName,
        sealed_secret: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE admins SET sealed_totp_secret = $2, totp_confirmed_at = NULL, \
             totp_last_step = NULL, updated_at = $3 WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(sealed_secret)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn accept_admin_totp_step(
        &self,
        name: &AdminName,
        sealed_secret: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE admins SET totp_last_step = $3, \
             totp_confirmed_at = COALESCE(totp_confirmed_at, $4), updated_at = $4 \
             WHERE name = $1 AND sealed_totp_secret = $2 \
             AND (totp_last_step IS NULL OR totp_last_step < $3)",
        )
        .bind(name.as_str())
        .bind(sealed_secret)
        .bind(step)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn reseal_admin_totp_secret(
        &self,
        name: &AdminName,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE admins SET sealed_totp_secret = $3 \
             WHERE name = $1 AND sealed_totp_secret = $2",
        )
        .bind(name.as_str())
        .bind(old)
        .bind(new)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(B::rows_affected(&done) > 0)
    }

    async fn record_admin_sign_in_failure(
        &self,
        name: &AdminName,
        max_failures: i64,
        lock_until: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        // One statement, so concurrent failures each count.
        let locked: Option<(Option<i64>,)> = sqlx::query_as(
            "UPDATE admins SET \
             locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_until END, \
             failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 \
                               ELSE failed_attempts + 1 END, \
             updated_at = $4 WHERE name = $1 RETURNING locked_until",
        )
        .bind(name.as_str())
        .bind(max_failures)
        .bind(lock_until)
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(db_error)?;
        Ok(locked
            .and_then(|(until,)| until)
            .filter(|until| *until == lock_until))
    }

    async fn record_admin_sign_in(&self, name: &AdminName, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE admins SET failed_attempts = 0, updated_at = $2 \
             WHERE name = $1 AND failed_attempts > 0",
        )
        .bind(name.as_str())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

/// A row of `search_users`: the user and how many identities it has.
#[derive(sqlx::FromRow)]
struct UserSummaryRow {
    #[sqlx(flatten)]
    user: UserRow,
    identities: i64,
}

/// One batch of a purge: `sql` deletes at most `$2` rows older than the horizon `$1`, in a
/// statement of its own (a short transaction that never holds up a login); how many went.
async fn delete_batch<B>(
    store: &B,
    sql: &'static str,
    horizon: i64,
    limit: u32,
) -> Result<u64, StoreError>
where
    B: Backend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
{
    let done = sqlx::query(sql)
        .bind(horizon)
        .bind(i64::from(limit))
        .execute(store.pool())
        .await
        .map_err(db_error)?;
    Ok(B::rows_affected(&done))
}

/// `text` as a literal inside a LIKE pattern whose escape character is `\`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Makes `user` the owner of `unionid`, in the caller's transaction so that the owner and the
/// identity bringing the unionid commit together; `Conflict` when another user owns it. Of two
/// concurrent owners the second's INSERT waits for the first (PostgreSQL's unique index, SQLite's
/// one write lock), then does nothing, and the SELECT reads the first.
async fn own_unionid<DB>(
    tx: &mut Transaction<'static, DB>,
    unionid: &UnionId,
    user: &UserId,
    now: i64,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
{
    sqlx::query(
        "INSERT INTO unionid_owners (unionid, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (unionid) DO NOTHING",
    )
    .bind(unionid.as_str())
    .bind(user.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let (owner,): (String,) =
        sqlx::query_as("SELECT user_id FROM unionid_owners WHERE unionid = $1")
            .bind(unionid.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(db_error)?;
    if owner == user.as_str() {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

// The inserts run both alone and inside a transaction, so they are built here and executed by
// the caller on whichever it has.

fn insert_user<'q, DB>(user: &'q User) -> Statement<'q, DB>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
{
    let phone = user.phone.as_ref();
    sqlx::query(
        "INSERT INTO users \
         (id, nickname, avatar, created_at, updated_at, banned_at, phone_country_code, \
          phone_number, phone_bound_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(user.id.as_str())
    .bind(user.nickname.as_deref())
    .bind(user.avatar.as_deref())
    .bind(user.created_at)
    .bind(user.updated_at)
    .bind(user.banned_at)
    .bind(phone.map(Phone::country_code))
    .bind(phone.map(Phone::number))
    .bind(phone.map(|_| user.updated_at))
}

fn insert_identity<'q, DB>(identity: &'q Identity) -> Statement<'q, DB>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
{
    sqlx::query(
        "INSERT INTO wechat_identities \
         (appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(identity.appid.as_str())
    .bind(identity.openid.as_str())
    .bind(identity.unionid.as_ref().map(UnionId::as_str))
    .bind(identity.user_id.as_str())
    .bind(identity.sealed_session_key.as_slice())
    .bind(identity.created_at)
    .bind(identity.updated_at)
}

fn insert_refresh_token<'q, DB>(token: &'q RefreshToken) -> Statement<'q, DB>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, session_id, issued_at, expires_at, rotated_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.hash.as_slice())
    .bind(token.session_id.as_str())
    .bind(token.issued_at)
    .bind(token.expires_at)
    .bind(token.rotated_at)
}

fn insert_signing_key<'q, DB>(key: &'q SigningKey) -> Statement<'q, DB>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
{
    sqlx::query(
        "INSERT INTO signing_keys \
         (kid, alg, sealed_private_key, public_jwk, created_at, activates_at, retired_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(key.kid.as_str())
    .bind(key.alg.as_str())
    .bind(key.sealed_private_key.as_slice())
    .bind(key.public_jwk.as_str())
    .bind(key.created_at)
    .bind(key.activates_at)
    .bind(key.retired_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_joined_user_columns_are_the_user_columns() {
        let prefixed: Vec<String> = USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect();
        assert_eq!(USER_COLUMNS_OF_U, prefixed.join(", "));
    }
}
