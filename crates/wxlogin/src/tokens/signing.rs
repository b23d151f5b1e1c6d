//! Signing keys live in the database, private halves sealed, so every instance signs with the same
//! key and publishes the same JWKS. One row per algorithm (`signing_key_current`) names the key
//! that signs; the others of that algorithm, until retired, only verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{KeyPair, Keyring, SigningAlg, TokenService};
use crate::clock::SharedClock;
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

/// Loads the keys of the configured algorithm; creates the first one when there is none. Of
/// instances starting together on an empty database, one installs its key and the others read it
/// back, so all of them sign with the same key.
pub async fn load_or_create(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
) -> Result<Keyring, KeyringError> {
    if let Some(keyring) = load(store, sealing, alg).await? {
        return Ok(keyring);
    }
    let key = KeyPair::generate(alg).map_err(|e| KeyringError::Keys(e.to_string()))?;
    let record = record(&key, sealing, now_millis)?;
    if store.install_signing_key(&record, None).await? {
        tracing::info!(kid = key.kid(), alg = alg.as_str(), "created a signing key");
    }
    // Installed here or by another instance a moment ago: read back what the database holds.
    load(store, sealing, alg)
        .await?
        .ok_or_else(|| KeyringError::Keys("no signing key after creating one".into()))
}

/// Makes a new key the signing key of `alg`; the previous ones keep verifying (and stay in the
/// JWKS). Other instances pick it up at their next reload. Returns the new kid.
pub async fn rotate(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
) -> Result<String, KeyringError> {
    let current = store.current_signing_kid(alg.as_str()).await?;
    let key = KeyPair::generate(alg).map_err(|e| KeyringError::Keys(e.to_string()))?;
    let record = record(&key, sealing, now_millis)?;
    if !store
        .install_signing_key(&record, current.as_deref())
        .await?
    {
        return Err(KeyringError::Keys(
            "another process changed the signing key at the same moment; try again".into(),
        ));
    }
    tracing::info!(
        kid = key.kid(),
        alg = alg.as_str(),
        "rotated the signing key"
    );
    Ok(key.kid().to_owned())
}

fn record(
    key: &KeyPair,
    sealing: &SealingKey,
    now_millis: i64,
) -> Result<SigningKey, KeyringError> {
    Ok(SigningKey {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        sealed_private_key: sealing.seal_bytes(key.pkcs8(), PURPOSE, &[key.kid()]),
        public_jwk: serde_json::to_string(key.public_jwk())
            .map_err(|e| KeyringError::Keys(e.to_string()))?,
        created_at: now_millis,
        retired_at: None,
    })
}

/// The stored keyring of `alg`, or `None` before its first key was installed.
async fn load(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
) -> Result<Option<Keyring>, KeyringError> {
    let Some(current_kid) = store.current_signing_kid(alg.as_str()).await? else {
        return Ok(None);
    };
    let mut records: Vec<SigningKey> = store
        .list_signing_keys()
        .await?
        .into_iter()
        .filter(|k| k.retired_at.is_none() && SigningAlg::parse(&k.alg) == Some(alg))
        .collect();
    records.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    let mut current = None;
    let mut previous = Vec::with_capacity(records.len());
    for record in &records {
        let pkcs8 = sealing
            .open_bytes(&record.sealed_private_key, PURPOSE, &[&record.kid])
            .map_err(|_| {
                KeyringError::Keys(format!(
                    "signing key {} does not open with the configured sealing key",
                    record.kid
                ))
            })?;
        let key = KeyPair::from_pkcs8(alg, pkcs8).map_err(|e| KeyringError::Keys(e.to_string()))?;
        if record.kid == current_kid {
            current = Some(key);
        } else {
            previous.push(key);
        }
    }
    let current = current.ok_or_else(|| {
        KeyringError::Keys(format!(
            "the current signing key {current_kid} is missing or retired"
        ))
    })?;
    Ok(Some(Keyring::new(current, previous)))
}

/// Reloads the keyring from the database: when a token names a kid this instance does not know
/// (another instance rotated), at most once per [`UNKNOWN_KID_RELOAD_INTERVAL`] and one reload at
/// a time, and periodically (`tokens.keyring_reload_secs`).
#[derive(Clone)]
pub struct KeyringReloader {
    inner: Arc<Reloader>,
}

struct Reloader {
    store: Arc<dyn Store>,
    sealing: SealingKey,
    alg: SigningAlg,
    tokens: TokenService,
    clock: SharedClock,
    /// When the last reload started (Unix ms); held while one runs, so callers queue behind it.
    last: tokio::sync::Mutex<Option<i64>>,
    reloads: AtomicU64,
}

impl std::fmt::Debug for KeyringReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringReloader")
            .field("alg", &self.inner.alg)
            .field("reloads", &self.reloads())
            .finish_non_exhaustive()
    }
}

/// An unknown kid triggers at most one reload in this interval, so forged kids cannot hammer the
/// database.
pub const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

impl KeyringReloader {
    pub fn new(
        store: Arc<dyn Store>,
        sealing: SealingKey,
        alg: SigningAlg,
        tokens: TokenService,
        clock: SharedClock,
    ) -> Self {
        Self {
            inner: Arc::new(Reloader {
                store,
                sealing,
                alg,
                tokens,
                clock,
                last: tokio::sync::Mutex::new(None),
                reloads: AtomicU64::new(0),
            }),
        }
    }

    /// How many reloads ran (successful or not) since start.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// Reloads now, whatever the last reload was (the periodic reload; an operator's tooling).
    pub async fn reload(&self) -> Result<(), KeyringError> {
        let mut last = self.inner.last.lock().await;
        self.run(&mut last).await
    }

    /// After a token named an unknown kid: reloads unless a reload ran within the last
    /// [`UNKNOWN_KID_RELOAD_INTERVAL`]. Concurrent callers wait for the one reload in flight and
    /// then verify again against its result.
    pub async fn reload_for_unknown_kid(&self) -> Result<(), KeyringError> {
        let mut last = self.inner.last.lock().await;
        let interval = i64::try_from(UNKNOWN_KID_RELOAD_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        if last.is_some_and(|at| self.inner.clock.unix_millis().saturating_sub(at) < interval) {
            return Ok(());
        }
        self.run(&mut last).await
    }

    async fn run(&self, last: &mut Option<i64>) -> Result<(), KeyringError> {
        let inner = &self.inner;
        *last = Some(inner.clock.unix_millis());
        inner.reloads.fetch_add(1, Ordering::Relaxed);
        let keyring = load(inner.store.as_ref(), &inner.sealing, inner.alg)
            .await?
            .ok_or_else(|| KeyringError::Keys("the database holds no signing key".into()))?;
        let before = inner.tokens.keyring();
        if before.current().kid() != keyring.current().kid()
            || before.jwks().keys.len() != keyring.jwks().keys.len()
        {
            tracing::info!(
                kid = keyring.current().kid(),
                keys = keyring.jwks().keys.len(),
                "reloaded the signing keys"
            );
        }
        inner.tokens.replace_keyring(keyring);
        Ok(())
    }

    /// Reloads every `period` until the task is aborted; a failure keeps the keys in memory.
    pub fn spawn_periodic(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let reloader = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = reloader.reload().await {
                    tracing::warn!(error = %e, "cannot reload the signing keys; keeping those in memory");
                }
            }
        })
    }
}
