//! Signing-key changes announced through the shared state: whoever rotates publishes
//! [`Revocation::SigningKeys`], and every serving instance reloads its keyring when it hears it (or
//! `Resync`, or that it lagged: an announcement may have been missed). The periodic reload
//! (`tokens.keyring_reload_secs`) stays as the backstop for an announcement that was lost.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::crypto::SealingKey;
use crate::shared::{Revocation, SharedState};
use crate::store::{Store, StoreError};
use crate::tokens::{KeyState, KeyringError, KeyringReloader, Rotated, SigningAlg};

/// Installs a new key of `alg`, published at once and signing from `now_millis + publish`
/// (`tokens::rotate`), and announces it on `shared` (when given). A failed announcement is logged
/// and not an error: the key is installed, and instances pick it up at their next periodic reload,
/// which `tokens.key_publish_secs` covers.
pub async fn rotate(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
    publish: Duration,
    shared: Option<&SharedState>,
) -> Result<Rotated, KeyringError> {
    let rotated = crate::tokens::rotate(store, sealing, alg, now_millis, publish).await?;
    if let Some(shared) = shared {
        announce(shared).await;
    }
    Ok(rotated)
}

/// Why a key was not retired.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    #[error("no signing key has the kid {0}")]
    Unknown(String),
    #[error(
        "{0} is the current signing key: rotate first (`wxlogin keys rotate`), then retire it once \
         the new key signs"
    )]
    Current(String),
    #[error(
        "{0} is pending (published, not signing yet): it cannot be retired before it has signed; \
         rotate again to replace it"
    )]
    Pending(String),
    #[error("{0} is already retired")]
    AlreadyRetired(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Retires a superseded key now, before its last token expires (a leaked key): it leaves the
/// JWKS and its tokens are refused. The current and pending keys are refused. Announced like a
/// rotation; without the announcement instances drop it at their next reload.
pub async fn retire(
    store: &dyn Store,
    kid: &str,
    now_millis: i64,
    linger: Duration,
    shared: Option<&SharedState>,
) -> Result<(), RetireError> {
    let records = store.list_signing_keys().await?;
    let status = crate::tokens::key_statuses(&records, now_millis, linger)
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| RetireError::Unknown(kid.to_owned()))?;
    match status.state {
        KeyState::Current => return Err(RetireError::Current(kid.to_owned())),
        KeyState::Pending => return Err(RetireError::Pending(kid.to_owned())),
        KeyState::Retired => return Err(RetireError::AlreadyRetired(kid.to_owned())),
        KeyState::Published => {}
    }
    // On a whole second, as every activation and retirement (`tokens::rotate`).
    let at = now_millis.div_euclid(1000).saturating_mul(1000);
    if !store.retire_signing_key(kid, at).await? {
        return Err(RetireError::AlreadyRetired(kid.to_owned()));
    }
    tracing::info!(kid, "retired a signing key");
    if let Some(shared) = shared {
        announce(shared).await;
    }
    Ok(())
}

/// Tells every instance that the signing keys changed.
pub async fn announce(shared: &SharedState) {
    match shared.events.publish(Revocation::SigningKeys).await {
        Ok(()) => tracing::info!("announced the signing-key change to every instance"),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot announce the signing-key change; instances switch at their next periodic reload"
        ),
    }
}

/// Reloads `keys` whenever a signing-key change is announced, until the task is aborted. Subscribes
/// before returning, so nothing announced after start is missed.
pub(crate) fn spawn_reload_on_announcement(
    shared: &SharedState,
    keys: KeyringReloader,
) -> tokio::task::JoinHandle<()> {
    let mut events = shared.events.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Revocation::SigningKeys | Revocation::Resync) | Err(RecvError::Lagged(_)) => {
                    if let Err(e) = keys.reload().await {
                        tracing::warn!(error = %e, "cannot reload the signing keys; keeping those in memory");
                    }
                }
                Ok(
                    Revocation::Session(_)
                    | Revocation::User(_)
                    | Revocation::Profile(_)
                    | Revocation::WechatAccessToken(_),
                ) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}
