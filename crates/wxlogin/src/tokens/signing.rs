//! Signing keys live in the database, private halves sealed, so every instance signs with the same
//! key and publishes the same JWKS. Each key has the moment it starts signing; every instance
//! decides from the stored times, by its own clock, which key signs and which are still published
//! (`key_statuses`). One row per algorithm (`signing_key_current`) names the newest key, the value
//! a rotation compares and swaps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{KeyPair, KeySchedule, Keyring, SigningAlg, TokenService};
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

/// The associated data's purpose of sealed private keys (the kid is the context).
pub const PURPOSE: &str = "signing_key";

/// Loads the keys of the configured algorithm; creates the first one when there is none. Of
/// instances starting together on an empty database, one installs its key and the others read it
/// back, so all of them sign with the same key. `linger` is how long a key stays published after
/// it stopped signing (`tokens.access_ttl_secs` + `tokens.leeway_secs`).
pub async fn load_or_create(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
    linger: Duration,
) -> Result<Keyring, KeyringError> {
    if let Some(keyring) = load(store, sealing, alg, now_millis, linger).await? {
        return Ok(keyring);
    }
    let key = KeyPair::generate(alg).map_err(|e| KeyringError::Keys(e.to_string()))?;
    let record = record(&key, sealing, now_millis, whole_second(now_millis))?;
    if store.install_signing_key(&record, None).await? {
        tracing::info!(kid = key.kid(), alg = alg.as_str(), "created a signing key");
    }
    // Installed here or by another instance a moment ago: read back what the database holds.
    load(store, sealing, alg, now_millis, linger)
        .await?
        .ok_or_else(|| KeyringError::Keys("no signing key after creating one".into()))
}

/// A rotation: the new key and the moment it starts signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub kid: String,
    /// Unix ms.
    pub activates_at: i64,
}

/// Installs a new key of `alg` that is published at once and signs from `now_millis + publish`
/// (never before the newest key's own activation; at the same moment, the later created wins), so that every instance and every verifier's
/// cached JWKS knows it before the first token names it. The key that signed until then keeps
/// signing until that moment and stays published until its last token has expired. The swap is
/// conditional on the newest key being still the one read: of concurrent rotations one wins, the
/// others fail and change nothing.
pub async fn rotate(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
    publish: Duration,
) -> Result<Rotated, KeyringError> {
    let newest = store.current_signing_kid(alg.as_str()).await?;
    let newest_times = match &newest {
        Some(kid) => store
            .list_signing_keys()
            .await?
            .into_iter()
            .find(|k| &k.kid == kid)
            .map(|k| (k.activates_at, k.created_at)),
        None => None,
    };
    let (newest_activation, newest_creation) = newest_times.unwrap_or((i64::MIN, i64::MIN));
    let activates_at =
        whole_second(now_millis.saturating_add(millis(publish))).max(newest_activation);
    // Later than the newest key even when this clock is behind the one that made it: the order of
    // two keys activating at one moment.
    let created_at = now_millis.max(newest_creation.saturating_add(1));
    let key = KeyPair::generate(alg).map_err(|e| KeyringError::Keys(e.to_string()))?;
    let record = record(&key, sealing, created_at, activates_at)?;
    if !store
        .install_signing_key(&record, newest.as_deref())
        .await?
    {
        return Err(KeyringError::Keys(
            "another process changed the signing key at the same moment; try again".into(),
        ));
    }
    tracing::info!(
        kid = key.kid(),
        alg = alg.as_str(),
        activates_at,
        "rotated the signing key: published now, signing from its activation"
    );
    Ok(Rotated {
        kid: key.kid().to_owned(),
        activates_at,
    })
}

/// Activations and retirements fall on whole seconds (rounded down): tokens carry times in
/// seconds, and a key then starts or stops at the same instant for signing (seconds) and the JWKS
/// (milliseconds).
fn whole_second(unix_millis: i64) -> i64 {
    unix_millis.div_euclid(1000).saturating_mul(1000)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn record(
    key: &KeyPair,
    sealing: &SealingKey,
    now_millis: i64,
    activates_at: i64,
) -> Result<SigningKey, KeyringError> {
    Ok(SigningKey {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        sealed_private_key: sealing.seal_bytes(key.pkcs8(), PURPOSE, &[key.kid()]),
        public_jwk: serde_json::to_string(key.public_jwk())
            .map_err(|e| KeyringError::Keys(e.to_string()))?,
        created_at: now_millis,
        activates_at,
        retired_at: None,
    })
}

/// The stored keyring of `alg` as of `now_millis`, without the keys retired by then; `None`
/// before its first key was installed.
async fn load(
    store: &dyn Store,
    sealing: &SealingKey,
    alg: SigningAlg,
    now_millis: i64,
    linger: Duration,
) -> Result<Option<Keyring>, KeyringError> {
    if store.current_signing_kid(alg.as_str()).await?.is_none() {
        return Ok(None);
    }
    let records = store.list_signing_keys().await?;
    let statuses = key_statuses(&records, now_millis, linger);
    let mut keys = Vec::with_capacity(statuses.len());
    for status in statuses {
        if status.alg != alg || status.state == KeyState::Retired {
            continue;
        }
        let Some(record) = records.iter().find(|r| r.kid == status.kid) else {
            continue;
        };
        let pkcs8 = sealing
            .open_bytes(&record.sealed_private_key, PURPOSE, &[&record.kid])
            .map_err(|_| unsealable(record))?;
        let key = KeyPair::from_pkcs8(alg, pkcs8).map_err(|e| KeyringError::Keys(e.to_string()))?;
        let schedule = KeySchedule {
            activates_at: status.activates_at,
            retires_at: status.retires_at,
        };
        keys.push((key, schedule));
    }
    Keyring::scheduled(keys, now_millis)
        .map(Some)
        .ok_or_else(|| KeyringError::Keys(format!("every {} signing key is retired", alg.as_str())))
}

/// A stored signing key that the configured sealing keys do not open: the operator changed
/// `security.sealing_key` without keeping the old one in `security.previous_sealing_keys`.
fn unsealable(record: &SigningKey) -> KeyringError {
    let by = match SealingKey::sealed_by(&record.sealed_private_key) {
        crate::crypto::SealedBy::Key(id) => format!(" was sealed under sealing key id {id}, which"),
        _ => String::new(),
    };
    KeyringError::Keys(format!(
        "signing key {}{by} does not open with security.sealing_key nor any of \
         security.previous_sealing_keys: if the sealing key was changed, list the previous one in \
         security.previous_sealing_keys (docs/operations.md, \"Key rotation\")",
        record.kid
    ))
}

/// Where a signing key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// Signs new tokens.
    Current,
    /// Superseded: no longer signs, still verifies the tokens it signed.
    Published,
    /// Neither published nor accepted.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Current => "current",
            Self::Published => "published",
            Self::Retired => "retired",
        }
    }
}

/// A stored signing key's schedule and state at one moment (`wxlogin keys list`, and what each
/// instance loads). Times are Unix ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub created_at: i64,
    pub activates_at: i64,
    /// When the next key of its algorithm activates (it stops signing then).
    pub superseded_at: Option<i64>,
    /// When it leaves the JWKS: retired by an operator, or `linger` after it was superseded.
    pub retires_at: Option<i64>,
}

/// The state of every stored key at `now_millis`, by algorithm then activation (then creation:
/// of two keys activating at one moment the later created is the newer). A key stops
/// signing when the next key of its algorithm activates and retires `linger` later (the last token
/// it signed has expired by then), or when an operator retired it; the key that signs is, of the
/// keys not retired, the one with the latest activation that has passed (as
/// [`Keyring::signing_key`] decides).
pub fn key_statuses(records: &[SigningKey], now_millis: i64, linger: Duration) -> Vec<KeyStatus> {
    let mut out = Vec::with_capacity(records.len());
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa] {
        let mut keys: Vec<&SigningKey> = records
            .iter()
            .filter(|k| SigningAlg::parse(&k.alg) == Some(alg))
            .collect();
        keys.sort_by(|a, b| {
            (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
        });
        let first = out.len();
        for (i, key) in keys.iter().enumerate() {
            let superseded_at = keys.get(i + 1).map(|next| next.activates_at);
            let lingering = superseded_at.map(|at| at.saturating_add(millis(linger)));
            let retires_at = match (key.retired_at, lingering) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let retired = retires_at.is_some_and(|at| at <= now_millis);
            out.push(KeyStatus {
                kid: key.kid.clone(),
                alg,
                state: if retired {
                    KeyState::Retired
                } else if key.activates_at > now_millis {
                    KeyState::Pending
                } else {
                    KeyState::Published
                },
                created_at: key.created_at,
                activates_at: key.activates_at,
                superseded_at,
                retires_at,
            });
        }
        let live = || (first..out.len()).filter(|&i| out[i].state != KeyState::Retired);
        let signing = live()
            .rev()
            .find(|&i| out[i].activates_at <= now_millis)
            .or_else(|| live().next());
        if let Some(i) = signing {
            out[i].state = KeyState::Current;
        }
    }
    out
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
        let settings = inner.tokens.settings();
        let keyring = load(
            inner.store.as_ref(),
            &inner.sealing,
            inner.alg,
            inner.clock.unix_millis(),
            settings.ttl.saturating_add(settings.leeway),
        )
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
