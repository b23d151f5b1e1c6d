//! WeChat access tokens shared by the instances of one deployment, over the shared state: each
//! app's current token (sealed), and the lease under which one instance at a time fetches it. The
//! background renewal runs every `wechat.token_refresh_check_ms` on every instance; the one that
//! takes an app's lease renews its token in the last 5 minutes and publishes it, the others adopt
//! it. A holder that dies lets its lease expire and another instance takes over.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::crypto::SealingKey;
use crate::domain::{AccessToken, AppId};
use crate::shared::{Lease, Leases, SharedError, SharedState};
use crate::state::AppState;
use crate::wechat::{FetchLock, SharedToken, SharedTokens, SharedTokensError};

/// Longer than one fetch with the WeChat client's retries (3 attempts of at most 5 s by default);
/// short enough that a dead holder is replaced well inside the 5-minute renewal window and before
/// an instance's own copy runs out.
const LEASE_TTL: Duration = Duration::from_secs(20);
/// A request waits this long for another instance's fetch, then fetches itself: by then the
/// holder's lease has expired, so a waiter only gets here when others keep taking it.
const LEASE_WAIT: Duration = LEASE_TTL;
/// The associated data's purpose: a sealed token opens only as an access token of its appid.
pub(crate) const PURPOSE: &str = "wechat_access_token";

fn name(appid: &AppId) -> String {
    format!("wechat-access-token:{appid}")
}

/// [`SharedTokens`] over the shared state. Tokens are sealed with the server's sealing key, the
/// appid bound as associated data, so the shared store never holds a usable WeChat credential:
/// what it returns that does not open (another key, another app, damage) counts as absent.
pub struct SharedAccessTokens {
    shared: SharedState,
    sealing: SealingKey,
    clock: SharedClock,
}

impl SharedAccessTokens {
    pub fn new(shared: SharedState, sealing: SealingKey, clock: SharedClock) -> Self {
        Self {
            shared,
            sealing,
            clock,
        }
    }

    /// `<expires_at_ms>\n<token>`, sealed.
    fn seal(&self, appid: &AppId, token: &SharedToken) -> Vec<u8> {
        let plain = format!("{}\n{}", token.expires_at_ms, token.token.expose_secret());
        self.sealing
            .seal_bytes(plain.as_bytes(), PURPOSE, &[appid.as_str()])
    }

    fn open(&self, appid: &AppId, sealed: &[u8]) -> Option<SharedToken> {
        let plain = self
            .sealing
            .open_bytes(sealed, PURPOSE, &[appid.as_str()])
            .ok()?;
        let plain = String::from_utf8(plain).ok()?;
        let (expires_at_ms, token) = plain.split_once('\n')?;
        Some(SharedToken {
            token: AccessToken::parse(token).ok()?,
            expires_at_ms: expires_at_ms.parse().ok()?,
        })
    }

    /// The stored value and what it opens to; a value that does not open is reported and
    /// treated as absent (the next fetch overwrites it).
    async fn read(&self, appid: &AppId) -> Result<Option<(Vec<u8>, SharedToken)>, SharedError> {
        let Some(sealed) = self.shared.values.get(&name(appid)).await? else {
            return Ok(None);
        };
        let opened = self.open(appid, &sealed);
        if opened.is_none() {
            tracing::warn!(appid = %appid, "the shared WeChat access token does not open with this server's sealing key; ignored");
        }
        Ok(opened.map(|token| (sealed, token)))
    }

    fn held(&self, lease: Lease) -> Box<dyn FetchLock> {
        Box::new(HeldLease {
            leases: self.shared.leases.clone(),
            lease: Some(lease),
        })
    }
}

/// What [`SharedAccessTokens::reseal`] did with an app's shared token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedReseal {
    /// No shared token (or it expired meanwhile).
    Absent,
    /// Sealed under the current key already.
    Current,
    /// Sealed again under the current key.
    Resealed,
    /// Replaced by another writer meanwhile (who sealed it under its own key).
    Changed,
    /// An instance holds the fetch lease: try again.
    Busy,
    /// Opens with no configured key; the next fetch overwrites it.
    Unreadable,
}

impl SharedAccessTokens {
    /// The app's shared value as stored (sealed), for counting values by key.
    pub async fn sealed(&self, appid: &AppId) -> Result<Option<Vec<u8>>, SharedError> {
        self.shared.values.get(&name(appid)).await
    }

    /// Seals the app's shared token again under the current key, keeping its expiry. Under the
    /// app's fetch lease, the lock every instance takes to publish the value, and only while the
    /// value is still the one read: a token an instance published meanwhile is never replaced.
    pub async fn reseal(&self, appid: &AppId) -> Result<SharedReseal, SharedError> {
        let Some(sealed) = self.sealed(appid).await? else {
            return Ok(SharedReseal::Absent);
        };
        if self.sealing.is_current(&sealed) {
            return Ok(SharedReseal::Current);
        }
        let Some(token) = self.open(appid, &sealed) else {
            return Ok(SharedReseal::Unreadable);
        };
        let Some(lease) = self
            .shared
            .leases
            .try_acquire(&name(appid), LEASE_TTL)
            .await?
        else {
            return Ok(SharedReseal::Busy);
        };
        let outcome = async {
            if self.sealed(appid).await?.as_deref() != Some(sealed.as_slice()) {
                return Ok(SharedReseal::Changed);
            }
            let left = token.expires_at_ms.saturating_sub(self.clock.unix_millis());
            if left <= 0 {
                return Ok(SharedReseal::Absent);
            }
            let ttl = Duration::from_millis(left.unsigned_abs());
            let resealed = self.seal(appid, &token);
            self.shared.values.set(&name(appid), &resealed, ttl).await?;
            Ok(SharedReseal::Resealed)
        }
        .await;
        if let Err(e) = self.shared.leases.release(&lease).await {
            tracing::warn!(error = %e, "cannot release the access-token lease; it expires by itself");
        }
        outcome
    }
}

fn unusable(e: SharedError) -> SharedTokensError {
    SharedTokensError(e.to_string())
}

#[async_trait]
impl SharedTokens for SharedAccessTokens {
    async fn load(&self, appid: &AppId) -> Result<Option<SharedToken>, SharedTokensError> {
        Ok(self.read(appid).await.map_err(unusable)?.map(|(_, t)| t))
    }

    async fn store(&self, appid: &AppId, token: &SharedToken) -> Result<(), SharedTokensError> {
        let left = token.expires_at_ms.saturating_sub(self.clock.unix_millis());
        if left <= 0 {
            return Ok(());
        }
        let ttl = Duration::from_millis(left.unsigned_abs());
        self.shared
            .values
            .set(&name(appid), &self.seal(appid, token), ttl)
            .await
            .map_err(unusable)
    }

    async fn remove_if_current(
        &self,
        appid: &AppId,
        rejected: &AccessToken,
    ) -> Result<bool, SharedTokensError> {
        match self.read(appid).await.map_err(unusable)? {
            Some((sealed, current)) if &current.token == rejected => self
                .shared
                .values
                .delete_if_equal(&name(appid), &sealed)
                .await
                .map_err(unusable),
            _ => Ok(false),
        }
    }

    async fn lock_fetch(&self, appid: &AppId) -> Result<Box<dyn FetchLock>, SharedTokensError> {
        let name = name(appid);
        let acquire = self.shared.leases.acquire(&name, LEASE_TTL);
        match tokio::time::timeout(LEASE_WAIT, acquire).await {
            Ok(lease) => Ok(self.held(lease.map_err(unusable)?)),
            Err(_) => Err(SharedTokensError(format!(
                "other instances held the access-token lease for {} s",
                LEASE_WAIT.as_secs()
            ))),
        }
    }

    async fn try_lock_fetch(
        &self,
        appid: &AppId,
    ) -> Result<Option<Box<dyn FetchLock>>, SharedTokensError> {
        let lease = self
            .shared
            .leases
            .try_acquire(&name(appid), LEASE_TTL)
            .await
            .map_err(unusable)?;
        Ok(lease.map(|lease| self.held(lease)))
    }
}

/// The fetch lease; one dropped without [`FetchLock::release`] (a cancelled request) is released in
/// the background, and expires by itself if even that fails.
struct HeldLease {
    leases: Arc<dyn Leases>,
    lease: Option<Lease>,
}

#[async_trait]
impl FetchLock for HeldLease {
    async fn release(mut self: Box<Self>) {
        if let Some(lease) = self.lease.take()
            && let Err(e) = self.leases.release(&lease).await
        {
            tracing::warn!(error = %e, "cannot release the access-token lease; it expires by itself");
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let leases = self.leases.clone();
            runtime.spawn(async move {
                let _ = leases.release(&lease).await;
            });
        }
    }
}

/// Adopts the token an operator replaced (`Revocation::WechatAccessToken`) whenever one is
/// announced, until the task is aborted. Subscribes before returning.
pub(crate) fn spawn_adopt_on_announcement(
    shared: &SharedState,
    tokens: crate::wechat::AccessTokens,
) -> tokio::task::JoinHandle<()> {
    use crate::shared::Revocation;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = shared.events.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Revocation::WechatAccessToken(appid)) => {
                    tokens.adopt_published(&appid).await;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// Renews the due tokens; returns how many this instance fetched.
pub async fn refresh_due(state: &AppState) -> usize {
    state.wechat_tokens.refresh_due().await
}

/// Runs [`refresh_due`] every `every` until the returned handle is aborted.
pub(crate) fn spawn_refresher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            refresh_due(&state).await;
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::shared::memory::MemoryState;

    fn tokens(sealing: SealingKey) -> SharedAccessTokens {
        let clock = crate::clock::ManualClock::starting_now().shared();
        let shared = SharedState::from_one(Arc::new(MemoryState::new(clock.clone())));
        SharedAccessTokens::new(shared, sealing, clock)
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_app_and_key() {
        let key = SealingKey::parse(&SealingKey::generate_base64()).unwrap();
        let store = tokens(key.clone());
        let (app, other) = (
            AppId::parse("wx0000000000000001").unwrap(),
            AppId::parse("wx0000000000000002").unwrap(),
        );
        let token = SharedToken {
            token: AccessToken::parse("89_sealed-token-text").unwrap(),
            expires_at_ms: 1_700_000_000_000,
        };
        let sealed = store.seal(&app, &token);
        assert!(
            !String::from_utf8_lossy(&sealed).contains("sealed-token-text"),
            "never in clear"
        );
        assert_eq!(store.open(&app, &sealed), Some(token));
        assert_eq!(store.open(&other, &sealed), None, "bound to its appid");
        let stranger = tokens(SealingKey::parse(&SealingKey::generate_base64()).unwrap());
        assert_eq!(stranger.open(&app, &sealed), None, "bound to the key");
        assert_eq!(store.open(&app, b"garbage"), None);
    }
}
