//! Signing-key changes announced through the shared state: whoever rotates publishes
//! [`Revocation::SigningKeys`], and every serving instance reloads its keyring when it hears it (or
//! `Resync`, or that it lagged: an announcement may have been missed). The periodic reload
//! (`tokens.keyring_reload_secs`) stays as the backstop for an announcement that was lost.

use tokio::sync::broadcast::error::RecvError;

use crate::crypto::SealingKey;
use crate::shared::{Revocation, SharedState};
use crate::store::Store;
use crate::tokens::{KeyringError, KeyringReloader, SigningAlg};

/// Makes a new key the signing key of `alg` and announces it on `shared` (when given). A failed
/// announcement is logged and not an error: the key is rotated, and instances pick it up at their
/// next periodic reload. Returns the new kid.
pub async fn rotate(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
    shared: Option<&SharedState>,
) -> Result<String, KeyringError> {
    let kid = crate::tokens::rotate(store, sealing, alg, now_millis).await?;
    if let Some(shared) = shared {
        announce(shared).await;
    }
    Ok(kid)
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
                    Revocation::Session(_) | Revocation::User(_) | Revocation::WechatAccessToken(_),
                ) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}
