//! The rows of the audit log as the store keeps them, and what the retention purge asks of it.
//! The meaning of `kind` and `details` belongs to `services::audit`; the store only keeps them.

use crate::domain::{AppId, UserId};

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Assigned by the database in insertion order; 0 in a record not yet appended.
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The event's type (`login`, `logout`, ...).
    pub kind: String,
    /// `user`, `service`, `admin` or `system`.
    pub actor_kind: String,
    /// The user id, the service's client_id or the operator's name; `None` for the system.
    pub actor_id: Option<String>,
    /// The user the event is about, if any.
    pub user_id: Option<UserId>,
    pub appid: Option<AppId>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// A small JSON object.
    pub details: String,
}

/// Which entries `Store::list_audit_events` returns: every filter given must match; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub user: Option<UserId>,
    pub kind: Option<String>,
    pub appid: Option<AppId>,
    /// Entries at or after this Unix millisecond.
    pub since: Option<i64>,
    /// Entries before this one in the listing's order (`(at, id)`): the next page.
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

/// What `Store::count_audit_events` counts: entries of `kinds` at or after `since`, in buckets of
/// `bucket_ms` that begin `offset_ms` before whole multiples of it since the epoch (a time zone's
/// hours and days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCountQuery {
    pub kinds: Vec<String>,
    pub since: i64,
    pub bucket_ms: i64,
    pub offset_ms: i64,
}

/// How many entries of one type and `details` fell into one bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditCount {
    /// The bucket's number: it begins at `bucket * bucket_ms - offset_ms`.
    pub bucket: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub details: String,
    pub count: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: i64,
    #[sqlx(rename = "type")]
    kind: String,
    actor_kind: String,
    actor_id: Option<String>,
    user_id: Option<String>,
    appid: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    details: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = super::StoreError;

    fn try_from(row: AuditRow) -> Result<Self, Self::Error> {
        use super::StoreError::Corrupt;
        Ok(Self {
            id: row.id,
            at: row.at,
            kind: row.kind,
            actor_kind: row.actor_kind,
            actor_id: row.actor_id,
            user_id: row
                .user_id
                .map(|id| UserId::parse(id).map_err(|_| Corrupt("audit user id")))
                .transpose()?,
            appid: row
                .appid
                .map(|id| AppId::parse(id).map_err(|_| Corrupt("audit appid")))
                .transpose()?,
            client_ip: row.client_ip,
            user_agent: row.user_agent,
            details: row.details,
        })
    }
}

pub(super) const AUDIT_COLUMNS: &str =
    "id, at, type, actor_kind, actor_id, user_id, appid, client_ip, user_agent, details";
