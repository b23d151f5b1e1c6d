//! The administrators of the console (`wxlogin admins`): created, listed, removed, given a new
//! password or a new TOTP secret, each change recorded in the audit log with the operator who
//! made it; and the checks the console's sign-in makes (password, TOTP code).
//!
//! Passwords are Argon2id hashes (`crypto::hash_password`); TOTP secrets are sealed with the
//! sealing key with the administrator's name as associated data, so a secret copied into another
//! row does not open there. Owners must use TOTP: the row says so (`totp_required`), and the
//! console refuses an owner without an enrolled secret.

use crate::crypto::{SealingKey, TotpSecret, hash_password, verify_password, verify_totp};
use crate::domain::{AdminName, AdminPassword, AdminRole};
use crate::services::admin::Admin;
use crate::services::audit::AuditEvent;
use crate::store::{AdminAccount, AdminRemoval, Store, StoreError};

/// The associated data's purpose of sealed TOTP secrets.
pub const TOTP_SECRET_PURPOSE: &str = "admin_totp_secret";

/// Why an action on administrators was refused or failed; one line, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum AdminsError {
    #[error("an administrator named `{0}` exists already")]
    Exists(AdminName),
    #[error("no administrator named `{0}`")]
    Unknown(AdminName),
    #[error("`{0}` is the last owner: add another owner before removing it")]
    LastOwner(AdminName),
    #[error("security.sealing_key (or security.sealing_key_file) is required to seal TOTP secrets")]
    NoSealingKey,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Whether an administrator can sign in with a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpState {
    /// No secret.
    Off,
    /// A secret made by `wxlogin admins totp`; no code accepted yet.
    Pending,
    /// A code of the secret was accepted.
    On,
}

impl TotpState {
    pub fn of(admin: &AdminAccount) -> Self {
        match (&admin.sealed_totp_secret, admin.totp_confirmed_at) {
            (None, _) => Self::Off,
            (Some(_), None) => Self::Pending,
            (Some(_), Some(_)) => Self::On,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Pending => "pending",
            Self::On => "on",
        }
    }
}

/// Whether sign-ins are refused at `now` (Unix ms).
pub fn is_locked(admin: &AdminAccount, now: i64) -> bool {
    admin.locked_until.is_some_and(|until| until > now)
}

/// Argon2id takes tens of milliseconds of CPU and about 20 MiB: off the async runtime.
async fn hash(password: &AdminPassword) -> String {
    let password = password.clone();
    match tokio::task::spawn_blocking(move || hash_password(&password)).await {
        Ok(hash) => hash,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Creates an administrator. Owners are marked as requiring TOTP.
pub async fn add(
    admin: &Admin,
    name: &AdminName,
    role: AdminRole,
    password: &AdminPassword,
) -> Result<AdminAccount, AdminsError> {
    let now = admin.now();
    let account = AdminAccount {
        name: name.clone(),
        role,
        password_hash: hash(password).await,
        sealed_totp_secret: None,
        totp_confirmed_at: None,
        totp_last_step: None,
        totp_required: role.requires_totp(),
        failed_attempts: 0,
        locked_until: None,
        created_at: now,
        updated_at: now,
    };
    match admin.store.insert_admin(&account).await {
        Err(StoreError::Conflict) => return Err(AdminsError::Exists(name.clone())),
        other => other?,
    }
    admin
        .record(AuditEvent::AdminAdded {
            admin: name.clone(),
            role,
        })
        .await;
    Ok(account)
}

/// Every administrator, by name.
pub async fn list(admin: &Admin) -> Result<Vec<AdminAccount>, AdminsError> {
    Ok(admin.store.list_admins().await?)
}

/// Removes an administrator, never the last owner.
pub async fn remove(admin: &Admin, name: &AdminName) -> Result<AdminRole, AdminsError> {
    match admin.store.delete_admin(name).await? {
        AdminRemoval::Removed(role) => {
            admin
                .record(AuditEvent::AdminRemoved {
                    admin: name.clone(),
                    role,
                })
                .await;
            Ok(role)
        }
        AdminRemoval::NotFound => Err(AdminsError::Unknown(name.clone())),
        AdminRemoval::LastOwner => Err(AdminsError::LastOwner(name.clone())),
    }
}

/// Replaces the password and lifts a lockout; returns whether one was lifted.
pub async fn reset_password(
    admin: &Admin,
    name: &AdminName,
    password: &AdminPassword,
) -> Result<bool, AdminsError> {
    let before = admin
        .store
        .get_admin(name)
        .await?
        .ok_or_else(|| AdminsError::Unknown(name.clone()))?;
    let unlocked = before.failed_attempts > 0 || before.locked_until.is_some();
    let hash = hash(password).await;
    if !admin
        .store
        .set_admin_password(name, &hash, admin.now())
        .await?
    {
        return Err(AdminsError::Unknown(name.clone()));
    }
    admin
        .record(AuditEvent::AdminPasswordReset {
            admin: name.clone(),
            unlocked,
        })
        .await;
    Ok(unlocked)
}

/// What `enroll_totp` made: the new secret, to be shown once, and whether it replaced one.
#[derive(Debug)]
pub struct Enrolled {
    pub secret: TotpSecret,
    pub replaced: bool,
}

/// Makes a new TOTP secret for the administrator, sealed under the current sealing key. The
/// previous secret, if any, stops working at once.
pub async fn enroll_totp(admin: &Admin, name: &AdminName) -> Result<Enrolled, AdminsError> {
    let sealing = admin
        .settings
        .security
        .sealing_key
        .as_ref()
        .ok_or(AdminsError::NoSealingKey)?;
    let before = admin
        .store
        .get_admin(name)
        .await?
        .ok_or_else(|| AdminsError::Unknown(name.clone()))?;
    let secret = TotpSecret::generate();
    let sealed = seal_totp_secret(sealing, name, &secret);
    if !admin
        .store
        .set_admin_totp(name, &sealed, admin.now())
        .await?
    {
        return Err(AdminsError::Unknown(name.clone()));
    }
    let replaced = before.sealed_totp_secret.is_some();
    admin
        .record(AuditEvent::AdminTotpEnrolled {
            admin: name.clone(),
            replaced,
        })
        .await;
    Ok(Enrolled { secret, replaced })
}

pub fn seal_totp_secret(sealing: &SealingKey, name: &AdminName, secret: &TotpSecret) -> Vec<u8> {
    sealing.seal_bytes(secret.as_bytes(), TOTP_SECRET_PURPOSE, &[name.as_str()])
}

/// The administrator's TOTP secret, if one is enrolled and opens with the sealing keys.
pub fn open_totp_secret(sealing: &SealingKey, admin: &AdminAccount) -> Option<TotpSecret> {
    let sealed = admin.sealed_totp_secret.as_ref()?;
    match sealing.open_bytes(sealed, TOTP_SECRET_PURPOSE, &[admin.name.as_str()]) {
        Ok(bytes) => Some(TotpSecret::from_bytes(bytes)),
        Err(e) => {
            tracing::warn!(admin = %admin.name, error = %e, "a stored TOTP secret does not open");
            None
        }
    }
}

/// Whether `password` is the administrator's (constant time in the password, by Argon2).
pub async fn check_password(admin: &AdminAccount, password: &str) -> bool {
    let (stored, password) = (admin.password_hash.clone(), password.to_owned());
    tokio::task::spawn_blocking(move || verify_password(&stored, &password))
        .await
        .unwrap_or(false)
}

/// Checks a TOTP code of the administrator at `now_ms` and spends its step: a code is accepted
/// once, within one step (30 s) either side of now; a step before the last accepted one is
/// refused too. The first accepted code confirms the secret. `false` for a wrong, reused or
/// malformed code, an administrator without TOTP, or a secret that does not open.
pub async fn verify_totp_code(
    store: &dyn Store,
    sealing: &SealingKey,
    name: &AdminName,
    code: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let Some(account) = store.get_admin(name).await? else {
        return Ok(false);
    };
    let (Some(sealed), Some(secret)) = (
        account.sealed_totp_secret.as_ref(),
        open_totp_secret(sealing, &account),
    ) else {
        return Ok(false);
    };
    let now_secs = u64::try_from(now_ms / 1000).unwrap_or(0);
    let last = account.totp_last_step.and_then(|s| u64::try_from(s).ok());
    let Some(step) = verify_totp(&secret, code, now_secs, last) else {
        return Ok(false);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    store
        .accept_admin_totp_step(name, sealed, step, now_ms)
        .await
}
