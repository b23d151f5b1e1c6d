//! A [`Store`] that counts its failed operations in the metrics (`wxlogin_database_errors_total`,
//! by operation and kind), around whichever backend `app.rs` opened. Conflicts are not failures:
//! they are how concurrent writers learn who won.

use std::sync::Arc;

use super::{
    AdminAccount, AdminRemoval, AuditCount, AuditCountQuery, AuditQuery, AuditRecord, Avatar,
    Identity, LoginTicket, RefreshToken, Session, SessionAccess, SessionQuery, SigningKey, Store,
    StoreError, User, UserSearch, UserSummary,
};
use crate::domain::{AdminName, AppId, OpenId, Phone, SessionId, UnionId, UserId};
use crate::metrics::Metrics;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    fn count<T>(
        &self,
        operation: &'static str,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Err(e) = &result
            && !matches!(e, StoreError::Conflict)
        {
            self.metrics.database_error(operation, e.metric_kind());
        }
        result
    }
}

/// Every method forwarded, its failures counted under its own name.
macro_rules! metered {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        #[async_trait::async_trait]
        impl Store for MeteredStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    let result = self.inner.$name($($arg),*).await;
                    self.count(stringify!($name), result)
                }
            )*
        }
    };
}

metered! {
    fn migrate() -> ();
    fn ping() -> ();
    fn check_writable(now: i64) -> ();
    fn find_identity(appid: &AppId, openid: &OpenId) -> Option<Identity>;
    fn create_user_with_identity(user: &User, identity: &Identity) -> ();
    fn record_identity_login(appid: &AppId, openid: &OpenId, unionid: Option<&UnionId>, sealed_session_key: &[u8], now: i64) -> ();
    fn get_user(id: &UserId) -> Option<User>;
    fn set_user_banned(id: &UserId, banned_at: Option<i64>) -> bool;
    fn create_session(session: &Session, first_token: &RefreshToken) -> ();
    fn get_session(id: &SessionId) -> Option<Session>;
    fn session_access(id: &SessionId) -> Option<SessionAccess>;
    fn revoke_session(id: &SessionId, now: i64) -> bool;
    fn revoke_user_sessions(user: &UserId, now: i64) -> u64;
    fn count_live_sessions(now: i64) -> u64;
    fn find_refresh_token(hash: &[u8]) -> Option<RefreshToken>;
    fn rotate_refresh_token(old_hash: &[u8], new: &RefreshToken, now: i64) -> bool;
    fn insert_refresh_token(token: &RefreshToken) -> ();
    fn list_signing_keys() -> Vec<SigningKey>;
    fn insert_signing_key(key: &SigningKey) -> ();
    fn current_signing_kid(alg: &str) -> Option<String>;
    fn install_signing_key(key: &SigningKey, replaces: Option<&str>) -> bool;
    fn set_nickname(user: &UserId, nickname: Option<&str>, now: i64) -> bool;
    fn replace_avatar(user: &UserId, avatar: Option<&Avatar>, now: i64) -> Option<Option<String>>;
    fn get_avatar(name: &str) -> Option<Avatar>;
    fn avatars_without_image(after: &str, limit: u32) -> Vec<String>;
    fn import_avatar(avatar: &Avatar) -> bool;
    fn find_identity_by_user(user: &UserId, appid: &AppId) -> Option<Identity>;
    fn list_identities_of_user(user: &UserId) -> Vec<Identity>;
    fn find_user_by_phone(phone: &Phone) -> Option<User>;
    fn set_user_phone(user: &UserId, phone: Option<&Phone>, now: i64) -> bool;
    fn create_user(user: &User) -> ();
    fn link_identity(identity: &Identity) -> ();
    fn find_users_by_unionid(unionid: &UnionId) -> Vec<UserId>;
    fn insert_login_ticket(ticket: &LoginTicket) -> ();
    fn take_login_ticket(hash: &[u8], now: i64) -> Option<LoginTicket>;
    // Administration.
    fn search_users(search: Option<&UserSearch>, limit: u32, offset: u32) -> Vec<UserSummary>;
    fn list_sessions(query: &SessionQuery) -> Vec<Session>;
    fn list_sessions_of_user(user: &UserId, live_at: Option<i64>) -> Vec<Session>;
    // Audit log and retention.
    fn append_audit_event(record: &AuditRecord) -> ();
    fn list_audit_events(query: &AuditQuery) -> Vec<AuditRecord>;
    fn count_audit_events(query: &AuditCountQuery) -> Vec<AuditCount>;
    fn purge_audit_events(before: i64, limit: u32) -> u64;
    fn purge_ended_session_tokens(now: i64, limit: u32) -> u64;
    fn purge_sessions_expired_before(before: i64, limit: u32) -> u64;
    fn purge_expired_login_tickets(now: i64, limit: u32) -> u64;
    // Signing-key lifecycle.
    fn retire_signing_key(kid: &str, now: i64) -> bool;
    // Sealing-key reseal.
    fn sealed_identity_keys(after: Option<(&str, &str)>, limit: u32) -> Vec<(String, String, Vec<u8>)>;
    fn reseal_identity_key(appid: &str, openid: &str, old: &[u8], new: &[u8]) -> bool;
    fn sealed_ticket_keys(after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, String, String, Vec<u8>)>;
    fn reseal_ticket_key(hash: &[u8], old: &[u8], new: &[u8]) -> bool;
    fn reseal_signing_key(kid: &str, old: &[u8], new: &[u8]) -> bool;
    // Administrators of the console.
    fn insert_admin(admin: &AdminAccount) -> ();
    fn get_admin(name: &AdminName) -> Option<AdminAccount>;
    fn list_admins() -> Vec<AdminAccount>;
    fn delete_admin(name: &AdminName) -> AdminRemoval;
    fn set_admin_password(name: &AdminName, password_hash: &str, now: i64) -> bool;
    fn set_admin_totp(name: &AdminName, sealed_secret: &[u8], now: i64) -> bool;
    fn accept_admin_totp_step(name: &AdminName, sealed_secret: &[u8], step: i64, now: i64) -> bool;
    fn reseal_admin_totp_secret(name: &AdminName, old: &[u8], new: &[u8]) -> bool;
    fn record_admin_sign_in_failure(name: &AdminName, max_failures: i64, lock_until: i64, now: i64) -> Option<i64>;
    fn record_admin_sign_in(name: &AdminName, now: i64) -> ();
}
