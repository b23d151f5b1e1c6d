//! The shared-state seam: the ephemeral state that every instance of one deployment must see alike.
//!
//! - [`Claims`]: single-use keys (login codes), so a code reaches WeChat once whichever instance
//!   receives it;
//! - [`Leases`]: named leases and locks with an expiry (the WeChat access-token refresher), so a
//!   crashed holder never blocks the others for long;
//! - [`Events`]: revocation events (logout, bans, reuse detection, signing-key changes, profile
//!   changes), published by one instance and heard by all;
//! - [`Limiter`]: rate limits, a GCRA bucket per key, so a limit holds across instances;
//! - [`Values`]: small values with an expiry, replaced and removed atomically (the WeChat access
//!   token every instance uses).
//!
//! Every call is async and fallible because the state may live in a network store; the in-memory
//! implementation ([`memory`]) serves a single instance, the Redis one ([`redis`]) any number.
//! Only the composition root (`app.rs`) names an implementation; everything else holds a
//! [`SharedState`].

mod flight;
mod gcra;
mod limits;
pub mod memory;
mod metered;
pub mod redis;
mod session_cache;

pub(crate) use flight::CodeExchanges;
pub(crate) use limits::{Limited, RateLimits, Subject};
pub(crate) use session_cache::spawn_invalidator;
pub use session_cache::{CachedAccess, SessionCache};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::config::Rate;
use crate::domain::{AppId, SessionId, UserId};

/// The shared state could not be reached or answered nonsense. Callers decide, per function,
/// whether to fail open or closed.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
}

/// Claims on single-use keys.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Claims `key` for `ttl`: true for the first claim, false while an earlier claim lasts.
    async fn claim(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedError>;
}

/// A lease someone holds: only the holder can release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// Random, so a late release after the lease expired and was taken again frees nothing.
    pub token: u128,
}

/// Named leases with an expiry.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes `name` for `ttl` unless someone else holds it.
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, SharedError>;

    /// Waits until `name` is free (or its holder's lease expired), then takes it for `ttl`.
    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, SharedError>;

    /// Gives the lease back, if it is still this holder's.
    async fn release(&self, lease: &Lease) -> Result<(), SharedError>;
}

/// Something every instance must stop honouring at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// One session logged out, or revoked by reuse detection.
    Session(SessionId),
    /// Every session of a user (logout on all devices, a ban).
    User(UserId),
    /// Not a revocation: the user's profile (nickname, avatar, phone number) changed, so what an
    /// instance remembers of the user is stale. Instances of a version before this event log it
    /// as malformed and ignore it; they read the profile on every request.
    Profile(UserId),
    /// The signing keys changed: reload the keyring.
    SigningKeys,
    /// An operator replaced the app's WeChat access token (`wxlogin wechat access-token
    /// refresh`, for a leaked one) and published the new one in the shared values: adopt it.
    WechatAccessToken(AppId),
    /// Events may have been missed (the connection to the shared state was lost and has come
    /// back): treat it like `RecvError::Lagged`, i.e. assume anything may have been revoked and
    /// drop whatever was cached. Sent by an implementation to its own receivers; services never
    /// publish it.
    Resync,
}

/// Publish and subscribe for [`Revocation`]s.
#[async_trait]
pub trait Events: Send + Sync {
    async fn publish(&self, event: Revocation) -> Result<(), SharedError>;

    /// Every event published from now on, by any instance. A receiver that falls behind is told how
    /// many it missed (`RecvError::Lagged`) and must then assume anything may have been revoked;
    /// [`Revocation::Resync`] means the same, for events missed while the implementation was cut
    /// off from the other instances (it re-sends nothing it did not receive).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revocation>;
}

/// One limit a request is counted against: a key (the endpoint, what it counts by and whom) and
/// its rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub key: String,
    pub rate: Rate,
}

/// What [`Limiter::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted against every limit.
    Allowed,
    /// Counted against none: `limit` (an index into the limits given) has no room, and will have
    /// room for this request again after `retry_after` (the longest wait among the full ones).
    Refused { limit: usize, retry_after: Duration },
}

/// Rate limits by the generic cell rate algorithm: a rate of N per period T lets N requests pass
/// at once and then one each T/N, as a bucket of N refilling steadily would. Each key keeps one
/// number, its theoretical arrival time (TAT); a request at `now` fits while
/// `max(TAT, now) + T/N - now <= T`, and moves the TAT by T/N.
///
/// The time is the caller's (the deployment's [`Clock`](crate::clock::Clock)), not the
/// implementation's, so both implementations count alike and tests move it; instances of one
/// deployment keep their clocks in step anyway (tokens expire by them).
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Counts one request at `now` against every one of `limits` if each has room, else against
    /// none of them.
    async fn take(&self, limits: &[Limit], now: SystemTime) -> Result<Verdict, SharedError>;
}

/// Small values with an expiry, seen alike by every instance.
#[async_trait]
pub trait Values: Send + Sync {
    /// The value of `key`, unless it is absent or expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError>;

    /// Sets `key` to `value` for `ttl`, replacing whatever it held.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedError>;

    /// Deletes `key` only while it still holds `expected` (one atomic step): true when it did. A
    /// value someone replaced meanwhile stays.
    async fn delete_if_equal(&self, key: &str, expected: &[u8]) -> Result<bool, SharedError>;
}

/// Whether the shared state answers (readiness).
#[async_trait]
pub trait Ping: Send + Sync {
    async fn ping(&self) -> Result<(), SharedError>;
}

/// The seam as the services hold it; cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    pub claims: Arc<dyn Claims>,
    pub leases: Arc<dyn Leases>,
    pub events: Arc<dyn Events>,
    pub limiter: Arc<dyn Limiter>,
    health: Arc<dyn Ping>,

    pub values: Arc<dyn Values>,
}

impl SharedState {
    /// One implementation serving every function.
    pub fn from_one<T>(implementation: Arc<T>) -> Self
    where
        T: Claims + Leases + Events + Limiter + Values + Ping + 'static,
    {
        Self {
            claims: implementation.clone(),
            leases: implementation.clone(),
            events: implementation.clone(),
            limiter: implementation.clone(),
            values: implementation.clone(),
            health: implementation,
        }
    }

    /// The same state with every failed call counted in `metrics`.
    pub fn metered(self, metrics: &crate::metrics::Metrics) -> Self {
        fn wrap<T: ?Sized>(
            inner: Arc<T>,
            metrics: &crate::metrics::Metrics,
        ) -> metered::Metered<T> {
            metered::Metered {
                inner,
                metrics: metrics.clone(),
            }
        }
        Self {
            claims: Arc::new(wrap(self.claims, metrics)),
            leases: Arc::new(wrap(self.leases, metrics)),
            events: Arc::new(wrap(self.events, metrics)),
            limiter: Arc::new(wrap(self.limiter, metrics)),
            values: Arc::new(wrap(self.values, metrics)),
            health: Arc::new(wrap(self.health, metrics)),
        }
    }

    /// Whether the shared state answers: always for memory, a `PING` for Redis.
    pub async fn ping(&self) -> Result<(), SharedError> {
        self.health.ping().await
    }
}
