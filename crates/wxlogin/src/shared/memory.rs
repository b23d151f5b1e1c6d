//! The shared state of a single instance, in memory. Bounded: each table holds at most a fixed number
//! of entries, and expired entries leave in insertion order, so every operation costs O(1)
//! amortised however many keys a flood of requests brings.
//!
//! When a table is full of live entries, the oldest one is dropped. For login-code claims that
//! means a code older than the newest 100,000 could be sent to WeChat a second time, where WeChat's
//! own single-use rule refuses it (`invalid_code`); for counters it means a rate limit forgets the
//! oldest key first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{Claims, Counters, Events, Lease, Leases, Ping, Revocation, SharedError};
use crate::clock::SharedClock;

/// Claims remembered at most (about 100 bytes each).
const MAX_CLAIMS: usize = 100_000;
/// Counter keys remembered at most.
const MAX_COUNTERS: usize = 100_000;
/// Shared values remembered at most (one WeChat access token per app is what they hold today).
const MAX_VALUES: usize = 10_000;
/// Events a slow subscriber may fall behind by before it is told it lagged.
const EVENT_BUFFER: usize = 1024;
/// How often a waiter for a lease looks again when no release woke it (the holder's lease may have
/// expired instead).
const LEASE_POLL: Duration = Duration::from_millis(20);

/// A map whose entries expire, with a queue in insertion order to find the expired ones.
struct Expiring<K, V> {
    entries: HashMap<K, (V, i64)>,
    /// `(expires_at, key)` in insertion order; an entry whose key was re-inserted since is stale
    /// and skipped when it reaches the front.
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

    /// Drops expired entries from the front, and the oldest ones while over capacity.
    fn purge(&mut self, now: i64) {
        while let Some((expires_at, _)) = self.order.front() {
            if *expires_at > now && self.order.len() < self.capacity {
                break;
            }
            if let Some((expires_at, key)) = self.order.pop_front()
                && self
                    .entries
                    .get(&key)
                    .is_some_and(|(_, at)| *at == expires_at)
            {
                self.entries.remove(&key);
            }
        }
    }

    /// The live value of `key`.
    fn get_mut(&mut self, key: &K, now: i64) -> Option<&mut (V, i64)> {
        self.entries.get_mut(key).filter(|(_, at)| *at > now)
    }

    fn insert(&mut self, key: K, value: V, expires_at: i64) {
        self.order.push_back((expires_at, key.clone()));
        self.entries.insert(key, (value, expires_at));
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
    counters: Mutex<Expiring<String, u64>>,
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
            counters: Mutex::new(Expiring::new(MAX_COUNTERS)),
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
impl Counters for MemoryState {
    async fn increment(&self, key: &str, window: Duration) -> Result<(u64, Duration), SharedError> {
        let now = self.now();
        let mut counters = lock(&self.counters);
        counters.purge(now);
        let key = key.to_owned();
        if let Some((count, ends_at)) = counters.get_mut(&key, now) {
            *count = count.saturating_add(1);
            let left = (*ends_at - now).max(0).unsigned_abs();
            return Ok((*count, Duration::from_millis(left)));
        }
        counters.insert(key, 1, now.saturating_add(millis(window)));
        Ok((1, window))
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
}
