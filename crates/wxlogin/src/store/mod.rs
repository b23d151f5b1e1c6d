//! Persistence: one `Store` trait, implemented once (`sql.rs`) for both backends (SQLite,
//! PostgreSQL), which differ only in how they connect, migrate and lock (`sql::Backend`), and one
//! conformance suite run against both (`tests/api/store.rs`).
//!
//! Times are Unix milliseconds (`i64`) everywhere, so both backends store plain `BIGINT`s.

mod audit;
mod metered;
mod postgres;
mod rows;
mod sql;
mod sqlite;

pub use audit::{AuditCount, AuditCountQuery, AuditQuery, AuditRecord};
pub use metered::MeteredStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::domain::{AdminName, AdminRole, AppId, OpenId, Phone, SessionId, UnionId, UserId};

/// A wxlogin user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub nickname: Option<String>,
    /// The name of the user's avatar image (`Avatar::name`), when the user uploaded one.
    pub avatar: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set when an operator banned the user: tokens stop working at once.
    pub banned_at: Option<i64>,
    /// The bound phone number; one user per number.
    pub phone: Option<Phone>,
}

/// An avatar image, shared by every user who uploaded the same bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Avatar {
    /// `<sha256 hex of the bytes>.<png|jpg|webp>` (`users.avatar`).
    pub name: String,
    /// The sniffed format's media type.
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub created_at: i64,
}

impl std::fmt::Debug for Avatar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Avatar")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A WeChat identity: one openid of one app, linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub appid: AppId,
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
    pub user_id: UserId,
    /// The session_key sealed with `crypto::SealingKey` (never stored in clear).
    pub sealed_session_key: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One signed-in device; also the family of its refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub appid: AppId,
    pub created_at: i64,
    /// Absolute end of the session (refresh tokens never outlive it).
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// The `User-Agent` of the login that opened it (`services::audit::Origin`'s, cut to 256
    /// characters), when there was one.
    pub user_agent: Option<String>,
    /// When it was last used: the login or the latest refresh (its newest refresh token). Read by
    /// the listings (`list_sessions`, `list_sessions_of_user`) only; `None` elsewhere and ignored
    /// by `create_session`.
    pub last_used_at: Option<i64>,
}

/// Which sessions `Store::list_sessions` returns: every filter given must match; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionQuery {
    pub user: Option<UserId>,
    pub appid: Option<AppId>,
    /// Only sessions neither revoked nor past their end at this Unix millisecond.
    pub live_at: Option<i64>,
    /// Sessions created at or after this Unix millisecond.
    pub since: Option<i64>,
    /// Sessions before this one in the listing's order (`(created_at, id)`): the next page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// What access-token checks need to know about a session, in one read: its state, its user (the
/// ban, and the profile the signed-in routes answer with), and the user's WeChat identity in the
/// session's app (for the identity headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAccess {
    pub revoked: bool,
    /// The session's absolute end: its access tokens stop working then too.
    pub expires_at: i64,
    pub user: User,
    /// As [`Store::find_identity_by_user`] finds it in the session's app; `None` without one.
    pub identity: Option<SessionIdentity>,
}

/// The ids of a user's WeChat identity in one app (never its session_key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
}

/// A refresh token, known only by the SHA-256 of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token text (32 bytes).
    pub hash: Vec<u8>,
    pub session_id: SessionId,
    pub issued_at: i64,
    pub expires_at: i64,
    /// When this token was exchanged for a newer one (it may then only be replayed within the grace
    /// window), or retired because a sibling was (then `expires_at` is the same moment).
    pub rotated_at: Option<i64>,
}

/// A token signing key shared by all instances through the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// `ES256` or `EdDSA`.
    pub alg: String,
    /// The PKCS#8 private key sealed with the sealing key (associated data: the kid).
    pub sealed_private_key: Vec<u8>,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    pub created_at: i64,
    /// When it starts signing (Unix ms); published in the JWKS from its creation. It signs until
    /// the next key of its algorithm activates.
    pub activates_at: i64,
    /// Set when an operator retired it early (`wxlogin keys retire`): from then on it is neither
    /// published nor accepted. Otherwise it retires by itself once the last token it signed has
    /// expired (`crate::tokens`).
    pub retired_at: Option<i64>,
}

/// A WeChat identity waiting for its registration to complete (`phone_required`, `closed`): what
/// the login proved, kept a few minutes under the SHA-256 of the ticket handed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginTicket {
    pub hash: Vec<u8>,
    pub appid: AppId,
    pub openid: OpenId,
    pub unionid: Option<UnionId>,
    /// The login's session_key, sealed as an identity's is.
    pub sealed_session_key: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Registrations already tried with this ticket (each failed one puts it back with one more).
    pub attempts: u32,
}

/// What an operator's search of the users matches (`wxlogin users list --search`): the text as a
/// user id, an openid or unionid, a phone number (when it reads as one) and a nickname substring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSearch {
    pub text: String,
    /// The text read as a phone number, in any spelling the import accepts.
    pub phone: Option<Phone>,
}

/// A user as a list of users shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user: User,
    /// The user's WeChat identities (one per app and openid).
    pub identities: u64,
}

/// An administrator of the console (`wxlogin admins`).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAccount {
    pub name: AdminName,
    pub role: AdminRole,
    /// Argon2id, as a PHC string.
    pub password_hash: String,
    /// The TOTP secret sealed with the sealing key, the name as associated data; `None` before
    /// `wxlogin admins totp`. `insert_admin` stores none: enrolment is `set_admin_totp`.
    pub sealed_totp_secret: Option<Vec<u8>>,
    /// When the first code of the current secret was accepted.
    pub totp_confirmed_at: Option<i64>,
    /// The step of the last code accepted: it and earlier steps are spent.
    pub totp_last_step: Option<i64>,
    /// The console refuses this admin without TOTP (owners).
    pub totp_required: bool,
    /// Failed sign-ins since the last success or password reset.
    pub failed_attempts: i64,
    /// Sign-ins are refused until then.
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("totp_enrolled", &self.sealed_totp_secret.is_some())
            .field("totp_confirmed_at", &self.totp_confirmed_at)
            .field("totp_required", &self.totp_required)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// What `Store::delete_admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRemoval {
    /// Removed; it had this role.
    Removed(AdminRole),
    NotFound,
    /// Refused: the admin is the last owner.
    LastOwner,
}

/// Storage failures. The text never carries SQL or values; the cause is logged where it happens.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. the identity already exists).
    #[error("the record already exists")]
    Conflict,
    /// A stored value does not parse back (corruption or a manual edit).
    #[error("a stored value is invalid: {0}")]
    Corrupt(&'static str),
    /// The driver's text names the cause (e.g. "Connection refused", "database or disk is full")
    /// and never a query's values.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// The pool of a store: `database.max_connections` and `database.acquire_timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizing {
    pub max_connections: u32,
    /// How long a query waits for a free (or newly opened) connection before failing with an
    /// unavailable error, rather than hanging.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSizing {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}

impl StoreError {
    /// The `kind` label of `wxlogin_database_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            _ if self.is_unavailable() => "unavailable",
            Self::Conflict => "conflict",
            Self::Corrupt(_) => "corrupt",
            Self::Database(_) => "other",
        }
    }

    /// The database cannot serve right now but may soon: unreachable, no free connection within
    /// `database.acquire_timeout_ms`, out of disk space, locked or read-only, shutting down. The
    /// request is answered 503 with `Retry-After` rather than 500.
    pub fn is_unavailable(&self) -> bool {
        let Self::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => {
                let code = e.code().unwrap_or_default();
                if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // The primary result code is the low byte of the extended one.
                    let primary = code.parse::<i32>().unwrap_or(0) & 0xff;
                    matches!(
                        primary,
                        SQLITE_BUSY
                            | SQLITE_LOCKED
                            | SQLITE_NOMEM
                            | SQLITE_READONLY
                            | SQLITE_IOERR
                            | SQLITE_FULL
                            | SQLITE_CANTOPEN
                    )
                } else if e
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    // 08: connection exception; 53: insufficient resources (disk full, out of
                    // memory, too many connections); 57P0x: the server is shutting down or
                    // starting; 25006: a read-only transaction (a standby); 40001, 40P01:
                    // serialization failure, deadlock.
                    code.starts_with("08")
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || ["25006", "40001", "40P01"].contains(&code.as_ref())
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies the embedded migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether the database takes a write (a committed insert and delete of a probe row), for
    /// `/readyz`: a full disk or a read-only file answer `SELECT 1` but refuse every write. A
    /// success is trusted for a few seconds (`now`, Unix ms), so readiness checks stay cheap.
    async fn check_writable(&self, now: i64) -> Result<(), StoreError>;

    async fn find_identity(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Identity>, StoreError>;
    /// Creates the user and its first identity in one transaction. `Conflict` (and nothing
    /// written) when the (appid, openid) already exists, e.g. a concurrent first login won, or when
    /// the identity's unionid belongs to another user (one unionid, one user).
    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &Identity,
    ) -> Result<(), StoreError>;
    /// Records a login on an existing identity: the new sealed session_key, the unionid when WeChat
    /// gave one, and `updated_at`. `Conflict`, with nothing written, when that unionid is new to the
    /// identity and belongs to another user.
    async fn record_identity_login(
        &self,
        appid: &AppId,
        openid: &OpenId,
        unionid: Option<&UnionId>,
        sealed_session_key: &[u8],
        now: i64,
    ) -> Result<(), StoreError>;
    async fn get_user(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// Bans (`Some(now)`) or unbans (`None`) a user; `false` if there is no such user.
    async fn set_user_banned(
        &self,
        id: &UserId,
        banned_at: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Creates a session and its first refresh token in one transaction.
    async fn create_session(
        &self,
        session: &Session,
        first_token: &RefreshToken,
    ) -> Result<(), StoreError>;
    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError>;
    async fn session_access(&self, id: &SessionId) -> Result<Option<SessionAccess>, StoreError>;
    /// `false` if the session did not exist or was already revoked.
    async fn revoke_session(&self, id: &SessionId, now: i64) -> Result<bool, StoreError>;
    /// Revokes every live session of the user; returns how many.
    async fn revoke_user_sessions(&self, user: &UserId, now: i64) -> Result<u64, StoreError>;
    /// Sessions neither revoked nor expired at `now`, in the whole database (one `COUNT(*)`, for
    /// the `wxlogin_sessions_active` gauge, at most once a minute).
    async fn count_live_sessions(&self, now: i64) -> Result<u64, StoreError>;

    async fn find_refresh_token(&self, hash: &[u8]) -> Result<Option<RefreshToken>, StoreError>;
    /// Marks `old_hash` rotated at `now`, retires every other live token of its session with it
    /// (rotated and expired at `now`: tokens handed out to replays within the grace window are
    /// siblings of the rotated one, so a session never has two live chains), and inserts `new`,
    /// atomically. Rotations of one
    /// session are serialised. `Ok(false)`, with nothing written, when `old_hash` was no longer
    /// live (a concurrent rotation of it or of a sibling won).
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshToken,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Adds a live token to an existing family without rotating anything (a replay within the
    /// grace window gets a sibling of the session's live tokens, retired with them by the next
    /// rotation).
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;

    async fn list_signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError>;
    /// The kid of the key that signs with `alg` (`ES256`, `EdDSA`), once one was installed.
    async fn current_signing_kid(&self, alg: &str) -> Result<Option<String>, StoreError>;
    /// Inserts `key` and makes it the signing key of its algorithm, provided the current one is
    /// still `replaces` (`None`: there is none yet), atomically. `Ok(false)`, with nothing
    /// written, when another process installed a key first: of instances creating the first key
    /// at the same moment, exactly one succeeds.
    async fn install_signing_key(
        &self,
        key: &SigningKey,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Sets (`Some`) or clears (`None`) the user's nickname and `updated_at`; `false` if there is
    /// no such user.
    async fn set_nickname(
        &self,
        user: &UserId,
        nickname: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Sets (`Some`) or clears (`None`) the user's avatar and `updated_at`, in one transaction:
    /// stores the image unless one of that name exists (names are content hashes), points the
    /// user at it, and deletes the image it replaces when no user references it any more.
    /// Returns the name it replaces: `None` if there is no such user (nothing written),
    /// `Some(previous)` otherwise.
    async fn replace_avatar(
        &self,
        user: &UserId,
        avatar: Option<&Avatar>,
        now: i64,
    ) -> Result<Option<Option<String>>, StoreError>;
    /// The stored image of this name.
    async fn get_avatar(&self, name: &str) -> Result<Option<Avatar>, StoreError>;
    /// Avatar names that users point at but that have no stored image (avatars from before they
    /// were kept in the database), after `after` in name order, at most `limit` of them.
    async fn avatars_without_image(
        &self,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Stores an image from before avatars were kept in the database, provided a user still
    /// points at its name and none is stored yet; `true` if it was stored.
    async fn import_avatar(&self, avatar: &Avatar) -> Result<bool, StoreError>;
    /// The user's identity in `appid` (the most recently used one, should there be several).
    async fn find_identity_by_user(
        &self,
        user: &UserId,
        appid: &AppId,
    ) -> Result<Option<Identity>, StoreError>;
    /// Every WeChat identity of the user, by appid then openid.
    async fn list_identities_of_user(&self, user: &UserId) -> Result<Vec<Identity>, StoreError>;

    async fn find_user_by_phone(&self, phone: &Phone) -> Result<Option<User>, StoreError>;
    /// Binds (`Some`) or unbinds (`None`) the user's phone and sets `updated_at`. `Conflict`, with
    /// nothing written, when another user has the number; `false` if there is no such user.
    async fn set_user_phone(
        &self,
        user: &UserId,
        phone: Option<&Phone>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Creates a user without a WeChat identity (an operator's import). `Conflict` when the id or
    /// the phone number exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Adds a WeChat identity to an existing user. `Conflict`, with nothing written, when the
    /// (appid, openid) exists or the identity's unionid belongs to another user.
    async fn link_identity(&self, identity: &Identity) -> Result<(), StoreError>;
    /// The distinct users that own this unionid or have an identity of it. More than one (data from
    /// before unionids had a single owner) is a conflict to refuse.
    async fn find_users_by_unionid(&self, unionid: &UnionId) -> Result<Vec<UserId>, StoreError>;

    async fn insert_login_ticket(&self, ticket: &LoginTicket) -> Result<(), StoreError>;
    /// Removes the ticket and returns it if it has not expired at `now` (single use: of concurrent
    /// takers, one gets it). Expired tickets are purged on the way.
    async fn take_login_ticket(
        &self,
        hash: &[u8],
        now: i64,
    ) -> Result<Option<LoginTicket>, StoreError>;

    // Administration (`wxlogin users`, `wxlogin sessions`).
    /// Users matching `search` (every user without one), newest first, at most `limit` after
    /// skipping `offset`.
    async fn search_users(
        &self,
        search: Option<&UserSearch>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<UserSummary>, StoreError>;
    /// Sessions matching `query`, newest first, at most `query.limit`.
    async fn list_sessions(&self, query: &SessionQuery) -> Result<Vec<Session>, StoreError>;
    /// The user's sessions, newest first: only those neither revoked nor expired at `live_at`,
    /// or all of them (`None`).
    async fn list_sessions_of_user(
        &self,
        user: &UserId,
        live_at: Option<i64>,
    ) -> Result<Vec<Session>, StoreError>;

    // Audit log and retention (`services::audit`, `services::retention`).
    /// Appends an entry (its `id` is ignored: the database assigns it).
    async fn append_audit_event(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Entries matching `query`, newest first (by time, then by id), at most `query.limit`.
    async fn list_audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Entries of `query.kinds` since `query.since`, counted by time bucket, type and details.
    async fn count_audit_events(
        &self,
        query: &AuditCountQuery,
    ) -> Result<Vec<AuditCount>, StoreError>;
    /// Deletes at most `limit` entries older than `before`; returns how many.
    async fn purge_audit_events(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
    /// Deletes at most `limit` refresh tokens of sessions that can no longer be refreshed: revoked,
    /// or past their absolute end at `now`. Tokens of live sessions stay, rotated ones included
    /// (reuse detection needs them). Returns how many.
    async fn purge_ended_session_tokens(&self, now: i64, limit: u32) -> Result<u64, StoreError>;
    /// Deletes at most `limit` sessions whose absolute end is before `before`, with their
    /// remaining refresh tokens; returns how many sessions.
    async fn purge_sessions_expired_before(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<u64, StoreError>;
    /// Deletes at most `limit` login tickets expired at `now`; returns how many.
    async fn purge_expired_login_tickets(&self, now: i64, limit: u32) -> Result<u64, StoreError>;
    // Signing-key lifecycle (`wxlogin keys retire`).
    /// Retires the key at `now` (it leaves the JWKS and stops verifying), unless it was retired
    /// at or before `now` already; `false` when nothing changed (no such key, or retired before).
    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool, StoreError>;

    // Sealing-key reseal (`wxlogin sealing-key reseal`): every sealed value read in key order, a
    // page at a time, and replaced only while it is still the value read (compare and swap), so
    // that a session key a login wrote meanwhile is never overwritten.
    /// `(appid, openid, sealed_session_key)` of the identities after `after` in (appid, openid)
    /// order, at most `limit`.
    async fn sealed_identity_keys(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError>;
    /// Replaces the identity's sealed session key with `new` if it is still `old`.
    async fn reseal_identity_key(
        &self,
        appid: &str,
        openid: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// `(hash, appid, openid, sealed_session_key)` of the login tickets after `after` in hash
    /// order, at most `limit`.
    async fn sealed_ticket_keys(
        &self,
        after: Option<&[u8]>,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, String, String, Vec<u8>)>, StoreError>;
    /// Replaces the ticket's sealed session key with `new` if it is still `old`.
    async fn reseal_ticket_key(
        &self,
        hash: &[u8],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// Replaces the signing key's sealed private key with `new` if it is still `old`.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;

    // Administrators of the console (`wxlogin admins`, `services::admins`).
    /// Stores a new administrator (without a TOTP secret); `Conflict` when the name exists.
    async fn insert_admin(&self, admin: &AdminAccount) -> Result<(), StoreError>;
    async fn get_admin(&self, name: &AdminName) -> Result<Option<AdminAccount>, StoreError>;
    /// Every administrator, by name.
    async fn list_admins(&self) -> Result<Vec<AdminAccount>, StoreError>;
    /// Removes the administrator unless it is the last owner. Concurrent removals of the last
    /// two owners cannot both succeed.
    async fn delete_admin(&self, name: &AdminName) -> Result<AdminRemoval, StoreError>;
    /// Replaces the password hash and clears the lockout (failed attempts, locked until);
    /// `false` when there is no such administrator.
    async fn set_admin_password(
        &self,
        name: &AdminName,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a new sealed TOTP secret, unconfirmed and with no step spent; `false` when there is
    /// no such administrator.
    async fn set_admin_totp(
        &self,
        name: &AdminName,
        sealed_secret: &[u8],
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Spends `step` if it is later than the last step accepted and the secret is still
    /// `sealed_secret` (the one the code was checked against); confirms the secret on its first
    /// code. Of concurrent uses of one code, one gets `true`.
    async fn accept_admin_totp_step(
        &self,
        name: &AdminName,
        sealed_secret: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Replaces the administrator's sealed TOTP secret with `new` if it is still `old`
    /// (`wxlogin sealing-key reseal`); the spent steps and the confirmation stay.
    async fn reseal_admin_totp_secret(
        &self,
        name: &AdminName,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
    /// A failed sign-in (password or TOTP code): counts it, and at `max_failures` in a row locks
    /// the administrator until `lock_until` (and starts the count again). Returns the lock time
    /// when this failure locked it; `None` otherwise, also for an unknown name.
    async fn record_admin_sign_in_failure(
        &self,
        name: &AdminName,
        max_failures: i64,
        lock_until: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// A successful sign-in: the failure count starts again.
    async fn record_admin_sign_in(&self, name: &AdminName, now: i64) -> Result<(), StoreError>;
}
