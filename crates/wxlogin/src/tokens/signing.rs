//! Signing keys live in the database, private halves sealed, so every instance signs with the same
//! key and publishes the same JWKS.

use super::{KeyPair, Keyring, SigningAlg};
use crate::crypto::SealingKey;
use crate::store::{SigningKey, Store, StoreError};

/// Why the keyring could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Keys(String),
}

const PURPOSE: &str = "signing_key";

/// Loads the keys of the configured algorithm; creates the first one when there is none. The newest
/// active key signs, older unretired ones only verify.
pub async fn load_or_create(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
) -> Result<Keyring, KeyringError> {
    let mut keys = usable(store, sealing, alg).await?;
    if keys.is_empty() {
        let key = KeyPair::generate(alg).map_err(|e| KeyringError::Keys(e.to_string()))?;
        let record = SigningKey {
            kid: key.kid().to_owned(),
            alg: alg.as_str().to_owned(),
            sealed_private_key: sealing.seal_bytes(key.pkcs8(), PURPOSE, &[key.kid()]),
            public_jwk: serde_json::to_string(key.public_jwk())
                .map_err(|e| KeyringError::Keys(e.to_string()))?,
            created_at: now_millis,
            retired_at: None,
        };
        match store.insert_signing_key(&record).await {
            Ok(()) => tracing::info!(kid = key.kid(), alg = alg.as_str(), "created a signing key"),
            // Another instance created one at the same moment: use what is stored.
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        // Read back, so that instances racing at first start agree on the newest key.
        keys = usable(store, sealing, alg).await?;
    }
    let current = keys
        .pop()
        .ok_or_else(|| KeyringError::Keys("no signing key after creating one".into()))?;
    Ok(Keyring::new(current, keys))
}

/// Active keys of `alg`, oldest first (ties broken by kid, so every instance orders them alike).
async fn usable(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
) -> Result<Vec<KeyPair>, KeyringError> {
    let mut records: Vec<SigningKey> = store
        .list_signing_keys()
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none() && SigningAlg::parse(&k.alg) == Some(alg))
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    records
        .iter()
        .map(|record| {
            let pkcs8 = sealing
                .open_bytes(&record.sealed_private_key, PURPOSE, &[&record.kid])
                .map_err(|_| {
                    KeyringError::Keys(format!(
                        "signing key {} does not open with the configured sealing key",
                        record.kid
                    ))
                })?;
            KeyPair::from_pkcs8(alg, pkcs8).map_err(|e| KeyringError::Keys(e.to_string()))
        })
        .collect()
}
