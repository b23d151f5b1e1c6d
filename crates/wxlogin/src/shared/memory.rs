//! The shared state of a single instance, in memory. Bounded: each table holds at most a fixed number
//! of entries, and expired entries leave in insertion order, so every operation costs O(1)
//! amortised however many keys a flood of requests brings.
//!
//! When a table is full of live entries, the oldest one is dropped. For login-code claims that
//! means a code older than the newest 100,000 could be sent to WeChat a second time, where WeChat's
//! own single-use rule refuses it (`invalid_code`); for rate limits it means the key counted
//! longest ago is forgotten first (its next request finds a full bucket).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{
    Claims, Events, Lease, Leases, Limit, Limiter, Ping, Revocation, SharedError, Verdict, gcra,
};
use crate::clock::SharedClock;

/// Claims remembered at most (about 100 bytes each).
const MAX_CLAIMS: usize = 100_000;
/// Rate-limit keys remembered at most (about 150 bytes each).
const MAX_LIMIT_KEYS: usize = 100_000;
/// Shared values remembered at most (one WeChat access token per app is what they hold today).
const MAX_VALUES: usize = 10_000;
/// Events a slow subscriber may fall behind by before it is told it lagged.
const EVENT_BUFFER: usize = 1024;
/// How often a waiter for a lease looks again when no release woke it (the holder's lease may have
/// expired instead).
const LEASE_POLL: Duration = Duration::from_millis(20);

/// A map whose entries expire, with a queue to find the expired ones: each key is queued once, at
/// the expiry it had when it was queued.
struct Expiring<K, V> {
    entries: HashMap<K, (V, i64)>,
    /// `(expires_at, key)`, one per entry, in the order queued. An entry extended since it was
    /// queued is queued again at its new expiry when it reaches the front.
    order: VecDeque<(i64, K)>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Drops expired entries from the front, and the front one while full (room for one more).
    /// Each step either drops an entry or re-queues one that was extended, so the work is O(1)
    /// amortised per insert.
    fn purge(&mut self, now: i64) {
        while let Some((queued_at, _)) = self.order.front() {
            let full = self.entries.len() >= self.capacity;
            if *queued_at > now && !full {
                break;
            }
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            match self.entries.get(&key) {
                Some((_, at)) if *at > now && !full => self.order.push_back((*at, key)),
                _ => {
                    self.entries.remove(&key);
                }
            }
        }
    }

    /// The live value of `key`.
    fn get_mut(&mut self, key: &K, now: i64) -> Option<&mut (V, i64)> {
        self.entries.get_mut(key).filter(|(_, at)| *at > now)
    }

    /// Sets `key`, live until `expires_at` (never earlier than an expiry it had: entries are only
    /// extended).
    fn insert(&mut self, key: K, value: V, expires_at: i64) {
        if self
            .entries
            .insert(key.clone(), (value, expires_at))
            .is_none()
        {
            self.order.push_back((expires_at, key));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Every function of the seam, for one instance.
pub struct MemoryState {
    clock: SharedClock,
    claims: Mutex<Expiring<[u8; 32], ()>>,
    /// Rate-limit key → nothing; the entry's expiry (in microseconds) is the key's TAT.
    limits: Mutex<Expiring<String, ()>>,
    leases: Mutex<HashMap<String, (u128, i64)>>,
    released: tokio::sync::Notify,
    events: tokio::sync::broadcast::Sender<Revocation>,
    values: Mutex<Expiring<String, Vec<u8>>>,
}

impl MemoryState {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            claims: Mutex::new(Expiring::new(MAX_CLAIMS)),
            limits: Mutex::new(Expiring::new(MAX_LIMIT_KEYS)),
            leases: Mutex::new(HashMap::new()),
            released: tokio::sync::Notify::new(),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            values: Mutex::new(Expiring::new(MAX_VALUES)),
        }
    }

    fn now(&self) -> i64 {
        self.clock.unix_millis()
    }
}

/// A poisoned lock only means another request panicked mid-update of plain data; carry on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Claims for MemoryState {
    async fn claim(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedError> {
        let now = self.now();
        let mut claims = lock(&self.claims);
        claims.purge(now);
        if claims.get_mut(key, now).is_some() {
            return Ok(false);
        }
        claims.insert(*key, (), now.saturating_add(millis(ttl)));
        Ok(true)
    }
}

#[async_trait]
impl Leases for MemoryState {
    async fn try_acquire(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, SharedError> {
        let now = self.now();
        let mut leases = lock(&self.leases);
        if leases.get(name).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let token = rand::random::<u128>();
        leases.insert(name.to_owned(), (token, now.saturating_add(millis(ttl))));
        Ok(Some(Lease {
            name: name.to_owned(),
            token,
        }))
    }

    async fn acquire(&self, name: &str, ttl: Duration) -> Result<Lease, SharedError> {
        loop {
            let released = self.released.notified();
            if let Some(lease) = self.try_acquire(name, ttl).await? {
                return Ok(lease);
            }
            let _ = tokio::time::timeout(LEASE_POLL, released).await;
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), SharedError> {
        let mut leases = lock(&self.leases);
        if leases
            .get(&lease.name)
            .is_some_and(|(token, _)| *token == lease.token)
        {
            leases.remove(&lease.name);
            drop(leases);
            self.released.notify_waiters();
        }
        Ok(())
    }
}

#[async_trait]
impl Events for MemoryState {
    async fn publish(&self, event: Revocation) -> Result<(), SharedError> {
        // No subscriber is not an error: nobody caches anything that the event would revoke.
        let _ = self.events.send(event);
        Ok(())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Revocation> {
        self.events.subscribe()
    }
}

#[async_trait]
impl Ping for MemoryState {
    async fn ping(&self) -> Result<(), SharedError> {
        Ok(())
    }
}

#[async_trait]
impl Limiter for MemoryState {
    async fn take(&self, limits: &[Limit], now: SystemTime) -> Result<Verdict, SharedError> {
        let now = gcra::micros(now);
        let mut table = lock(&self.limits);
        table.purge(now);
        let mut next = Vec::with_capacity(limits.len());
        let mut refused: Option<(usize, i64)> = None;
        for (i, limit) in limits.iter().enumerate() {
            let tat = table.get_mut(&limit.key, now).map(|(_, tat)| *tat);
            match gcra::step(tat, now, limit.rate) {
                Ok(tat) => next.push(tat),
                Err(wait) => {
                    if refused.is_none_or(|(_, longest)| wait > longest) {
                        refused = Some((i, wait));
                    }
                }
            }
        }
        if let Some((limit, wait)) = refused {
            return Ok(gcra::refused(limit, wait));
        }
        for (limit, tat) in limits.iter().zip(next) {
            table.insert(limit.key.clone(), (), tat);
        }
        Ok(Verdict::Allowed)
    }
}

#[async_trait]
impl super::Values for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError> {
        let now = self.now();
        let mut values = lock(&self.values);
        values.purge(now);
        Ok(values.get_mut(&key.to_owned(), now).map(|(v, _)| v.clone()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let now = self.now();
        let mut values = lock(&self.values);
        values.purge(now);
        values.insert(
            key.to_owned(),
            value.to_vec(),
            now.saturating_add(millis(ttl)),
        );
        Ok(())
    }

    async fn delete_if_equal(&self, key: &str, expected: &[u8]) -> Result<bool, SharedError> {
        let now = self.now();
        let mut values = lock(&self.values);
        let key = key.to_owned();
        if values
            .get_mut(&key, now)
            .is_some_and(|(v, _)| v.as_slice() == expected)
        {
            // Its place in the expiry queue goes stale and is skipped when it reaches the front.
            values.entries.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// What every implementation does alike is tested in `tests/api/shared.rs`, on memory and Redis;
/// here only the bounds of this one.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn state() -> MemoryState {
        MemoryState::new(Arc::new(ManualClock::starting_now()))
    }

    #[test]
    fn expired_entries_leave_and_capacity_bounds_the_table() {
        let mut table: Expiring<u32, ()> = Expiring::new(3);
        for key in 0..3 {
            table.purge(0);
            table.insert(key, (), 10);
        }
        table.purge(0);
        table.insert(3, (), 10);
        assert_eq!(table.len(), 3, "the oldest live entry made room");
        assert!(table.get_mut(&0, 0).is_none());
        table.purge(11);
        assert_eq!(table.len(), 0);
        assert!(table.order.is_empty());
    }

    #[tokio::test]
    async fn a_flood_of_claims_stays_bounded() {
        let state = state();
        for n in 0..(MAX_CLAIMS as u32 + 5_000) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&n.to_be_bytes());
            assert!(state.claim(&key, Duration::from_secs(300)).await.unwrap());
        }
        let claims = lock(&state.claims);
        assert!(claims.len() <= MAX_CLAIMS);
        assert!(claims.order.len() <= MAX_CLAIMS);
    }

    #[tokio::test]
    async fn a_flood_of_limit_keys_stays_bounded_and_a_busy_key_is_queued_once() {
        let state = state();
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let rate: crate::config::Rate = "1000000/s".parse().unwrap();
        let busy = [Limit {
            key: "login:per_app:busy".into(),
            rate,
        }];
        for n in 0..(MAX_LIMIT_KEYS + 5_000) {
            let limits = [Limit {
                key: format!("login:per_ip:{n}"),
                rate,
            }];
            assert_eq!(state.take(&limits, now).await.unwrap(), Verdict::Allowed);
            assert_eq!(state.take(&busy, now).await.unwrap(), Verdict::Allowed);
        }
        let table = lock(&state.limits);
        assert!(table.len() <= MAX_LIMIT_KEYS);
        assert_eq!(table.order.len(), table.len(), "one queue entry per key");
    }

    #[test]
    fn an_extended_entry_is_queued_again_not_dropped() {
        let mut table: Expiring<u32, ()> = Expiring::new(10);
        table.insert(1, (), 10);
        table.insert(2, (), 10);
        table.insert(1, (), 30);
        table.purge(20);
        assert!(table.get_mut(&1, 20).is_some(), "extended: still live");
        assert!(table.get_mut(&2, 20).is_none());
        assert_eq!(table.order.len(), 1);
        table.purge(31);
        assert_eq!(table.len(), 0);
    }
}
