//! The shape of a row as it comes out of the database, its way back through the domain types, and
//! the mapping of database errors, for the queries in `sql.rs`.

use super::{
    AdminAccount, Identity, LoginTicket, RefreshToken, Session, SessionAccess, SessionIdentity,
    SigningKey, StoreError, User,
};
use crate::domain::{AdminName, AdminRole, AppId, OpenId, Phone, SessionId, UnionId, UserId};

/// A unique violation is a rule of the data (`Conflict`); anything else is the database's trouble.
/// Each sqlx driver does the recognising (SQLite's UNIQUE and PRIMARYKEY constraint codes,
/// PostgreSQL's SQLSTATE 23505), so this needs nothing per backend.
pub(super) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Database(error),
    }
}

pub(super) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Database(error.into())
}

fn user_id(value: String) -> Result<UserId, StoreError> {
    UserId::parse(value).map_err(|_| StoreError::Corrupt("user id"))
}

fn session_id(value: String) -> Result<SessionId, StoreError> {
    SessionId::parse(value).map_err(|_| StoreError::Corrupt("session id"))
}

fn appid(value: String) -> Result<AppId, StoreError> {
    AppId::parse(value).map_err(|_| StoreError::Corrupt("appid"))
}

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    nickname: Option<String>,
    avatar: Option<String>,
    created_at: i64,
    updated_at: i64,
    banned_at: Option<i64>,
    phone_country_code: Option<String>,
    phone_number: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: user_id(row.id)?,
            nickname: row.nickname,
            avatar: row.avatar,
            created_at: row.created_at,
            updated_at: row.updated_at,
            banned_at: row.banned_at,
            phone: match (row.phone_country_code, row.phone_number) {
                (Some(code), Some(number)) => Some(
                    Phone::new(&code, &number).map_err(|_| StoreError::Corrupt("phone number"))?,
                ),
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct IdentityRow {
    appid: String,
    openid: String,
    unionid: Option<String>,
    user_id: String,
    sealed_session_key: Vec<u8>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<IdentityRow> for Identity {
    type Error = StoreError;

    fn try_from(row: IdentityRow) -> Result<Self, StoreError> {
        Ok(Self {
            appid: appid(row.appid)?,
            openid: OpenId::parse(row.openid).map_err(|_| StoreError::Corrupt("openid"))?,
            unionid: row
                .unionid
                .map(UnionId::parse)
                .transpose()
                .map_err(|_| StoreError::Corrupt("unionid"))?,
            user_id: user_id(row.user_id)?,
            sealed_session_key: row.sealed_session_key,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    user_id: String,
    appid: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    user_agent: Option<String>,
    last_used_at: Option<i64>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: session_id(row.id)?,
            user_id: user_id(row.user_id)?,
            appid: appid(row.appid)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            user_agent: row.user_agent,
            last_used_at: row.last_used_at,
        })
    }
}

/// The timestamps are read as they are, so that "is it set" is decided here, the same way for both
/// backends. One row per identity of the user in the session's app (none: `identity_*` NULL).
#[derive(sqlx::FromRow)]
pub(super) struct SessionAccessRow {
    revoked_at: Option<i64>,
    expires_at: i64,
    #[sqlx(flatten)]
    user: UserRow,
    identity_openid: Option<String>,
    identity_unionid: Option<String>,
    identity_updated_at: Option<i64>,
}

impl SessionAccess {
    /// The session, its user and, of the user's identities in the session's app, the one
    /// `Store::find_identity_by_user` picks: the last updated (ties: the smaller openid).
    pub(super) fn from_rows(rows: Vec<SessionAccessRow>) -> Result<Option<Self>, StoreError> {
        let Some(row) = rows.into_iter().max_by(|a, b| {
            a.identity_updated_at
                .cmp(&b.identity_updated_at)
                .then_with(|| b.identity_openid.cmp(&a.identity_openid))
        }) else {
            return Ok(None);
        };
        let identity = match row.identity_openid {
            Some(openid) => Some(SessionIdentity {
                openid: OpenId::parse(openid).map_err(|_| StoreError::Corrupt("openid"))?,
                unionid: row
                    .identity_unionid
                    .map(UnionId::parse)
                    .transpose()
                    .map_err(|_| StoreError::Corrupt("unionid"))?,
            }),
            None => None,
        };
        Ok(Some(Self {
            revoked: row.revoked_at.is_some(),
            expires_at: row.expires_at,
            user: User::try_from(row.user)?,
            identity,
        }))
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct RefreshTokenRow {
    hash: Vec<u8>,
    session_id: String,
    issued_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
}

impl TryFrom<RefreshTokenRow> for RefreshToken {
    type Error = StoreError;

    fn try_from(row: RefreshTokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            hash: row.hash,
            session_id: session_id(row.session_id)?,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            rotated_at: row.rotated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SigningKeyRow {
    kid: String,
    alg: String,
    sealed_private_key: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl From<SigningKeyRow> for SigningKey {
    fn from(row: SigningKeyRow) -> Self {
        Self {
            kid: row.kid,
            alg: row.alg,
            sealed_private_key: row.sealed_private_key,
            public_jwk: row.public_jwk,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retired_at: row.retired_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct LoginTicketRow {
    hash: Vec<u8>,
    appid: String,
    openid: String,
    unionid: Option<String>,
    sealed_session_key: Vec<u8>,
    created_at: i64,
    expires_at: i64,
    attempts: i64,
}

impl TryFrom<LoginTicketRow> for LoginTicket {
    type Error = StoreError;

    fn try_from(row: LoginTicketRow) -> Result<Self, StoreError> {
        Ok(Self {
            hash: row.hash,
            appid: appid(row.appid)?,
            openid: OpenId::parse(row.openid).map_err(|_| StoreError::Corrupt("openid"))?,
            unionid: row
                .unionid
                .map(UnionId::parse)
                .transpose()
                .map_err(|_| StoreError::Corrupt("unionid"))?,
            sealed_session_key: row.sealed_session_key,
            created_at: row.created_at,
            expires_at: row.expires_at,
            attempts: u32::try_from(row.attempts)
                .map_err(|_| StoreError::Corrupt("login ticket attempts"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_read_picks_the_identity_find_identity_by_user_would_and_refuses_bad_ids() {
        let row = |openid: &str, updated_at| SessionAccessRow {
            revoked_at: None,
            expires_at: 0,
            user: UserRow {
                id: "u_01J9ZZZZZZZZZZZZZZZZZZZZZZ".to_owned(),
                nickname: None,
                avatar: None,
                created_at: 0,
                updated_at: 0,
                banned_at: None,
                phone_country_code: None,
                phone_number: None,
            },
            identity_openid: Some(openid.to_owned()),
            identity_unionid: None,
            identity_updated_at: Some(updated_at),
        };
        let picked = SessionAccess::from_rows(vec![
            row("o_test_b", 1),
            row("o_test_c", 2),
            row("o_test_a", 2),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(picked.identity.unwrap().openid.as_str(), "o_test_a");
        assert_eq!(SessionAccess::from_rows(Vec::new()).unwrap(), None);
        let mut corrupt = row("o_test_a", 0);
        corrupt.user.id = "s_01J9ZZZZZZZZZZZZZZZZZZZZZZ".to_owned();
        let err = SessionAccess::from_rows(vec![corrupt]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt("user id")), "{err:?}");
        assert_eq!(err.to_string(), "a stored value is invalid: user id");
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AdminRow {
    name: String,
    role: String,
    password_hash: String,
    sealed_totp_secret: Option<Vec<u8>>,
    totp_confirmed_at: Option<i64>,
    totp_last_step: Option<i64>,
    totp_required: i64,
    failed_attempts: i64,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AdminRow> for AdminAccount {
    type Error = StoreError;

    fn try_from(row: AdminRow) -> Result<Self, StoreError> {
        Ok(Self {
            name: AdminName::parse(&row.name).map_err(|_| StoreError::Corrupt("admin name"))?,
            role: AdminRole::parse(&row.role).map_err(|_| StoreError::Corrupt("admin role"))?,
            password_hash: row.password_hash,
            sealed_totp_secret: row.sealed_totp_secret,
            totp_confirmed_at: row.totp_confirmed_at,
            totp_last_step: row.totp_last_step,
            totp_required: row.totp_required != 0,
            failed_attempts: row.failed_attempts,
            locked_until: row.locked_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
