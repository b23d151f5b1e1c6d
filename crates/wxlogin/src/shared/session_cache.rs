//! What an instance last read of each session (revoked, expiry, the user's ban), so that a request
//! with a valid access token does not read the database every time.
//!
//! Safe because nothing is trusted for longer than `tokens.session_cache_ms` (at most one second),
//! and because every revocation wxlogin makes is applied at once: on this instance before the
//! request that made it answers ([`SessionCache::apply`] from `services::sessions`), on the others
//! when the revocation event arrives ([`spawn_invalidator`]). A lost event (`Resync`, a lagging
//! receiver) empties the cache. A read that raced with a revocation is not kept: every
//! invalidation bumps a generation, and a read is stored only if no invalidation happened since
//! it started.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast::error::RecvError;

use super::{Revocation, SharedState};
use crate::domain::SessionId;
use crate::store::SessionAccess;

const SHARDS: usize = 16;
/// Sessions remembered at most (about 150 bytes each); a full shard is emptied.
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug)]
struct Entry {
    access: SessionAccess,
    read_at_ms: i64,
}

/// The cache; one per instance, shared by its requests.
#[derive(Debug)]
pub struct SessionCache {
    ttl_ms: i64,
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<SessionId, Entry>>]>,
    generation: AtomicU64,
}

/// Taken before a database read; the read may be stored only under the same generation.
#[derive(Debug, Clone, Copy)]
pub struct Generation(u64);

impl SessionCache {
    /// `ttl_ms` 0 turns the cache off.
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            generation: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &SessionId) -> &Mutex<HashMap<SessionId, Entry>> {
        let index = usize::try_from(self.hasher.hash_one(id)).unwrap_or(0) % SHARDS;
        &self.shards[index]
    }

    /// What was read of `id` less than the TTL ago.
    pub fn get(&self, id: &SessionId, now_ms: i64) -> Option<SessionAccess> {
        if self.ttl_ms == 0 {
            return None;
        }
        let shard = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        shard
            .get(id)
            .filter(|e| (0..self.ttl_ms).contains(&(now_ms - e.read_at_ms)))
            .map(|e| e.access.clone())
    }

    /// The generation to hand to [`SessionCache::put`] after reading the database.
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// Remembers a database read of `id`, unless something was invalidated since `read` began.
    pub fn put(&self, id: &SessionId, access: SessionAccess, now_ms: i64, read: Generation) {
        if self.ttl_ms == 0 {
            return;
        }
        let mut shard = self.shard(id).lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the shard lock: an invalidation bumps the generation before it takes the
        // lock, so it either sees this entry and removes it, or this check sees its bump.
        if self.generation.load(Ordering::Acquire) != read.0 {
            return;
        }
        if shard.len() >= MAX_ENTRIES / SHARDS && !shard.contains_key(id) {
            shard.clear();
        }
        let entry = Entry {
            access,
            read_at_ms: now_ms,
        };
        shard.insert(id.clone(), entry);
    }

    /// Forgets what `event` may have changed: one session, or everything (a user's sessions are
    /// not indexed: logouts on all devices and bans are rare, and the cache refills in a read).
    pub fn apply(&self, event: &Revocation) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match event {
            Revocation::Session(id) => {
                self.shard(id)
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
            }
            Revocation::User(_) | Revocation::Resync => self.clear(),
            Revocation::SigningKeys | Revocation::WechatAccessToken(_) => {}
        }
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

/// Applies the revocation events of every instance to `cache` until the task is aborted; a receiver
/// that lagged empties it. Subscribes before returning, so nothing published after start is missed.
pub(crate) fn spawn_invalidator(
    shared: &SharedState,
    cache: std::sync::Arc<SessionCache>,
) -> tokio::task::JoinHandle<()> {
    let mut events = shared.events.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => cache.apply(&event),
                Err(RecvError::Lagged(_)) => cache.apply(&Revocation::Resync),
                Err(RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    use crate::domain::UserId;

    fn access() -> SessionAccess {
        SessionAccess {
            user_id: UserId::generate(SystemTime::UNIX_EPOCH),
            revoked: false,
            expires_at: i64::MAX,
            user_banned: false,
        }
    }

    #[test]
    fn entries_last_the_ttl_and_no_longer() {
        let cache = SessionCache::new(1_000);
        let id = SessionId::generate(SystemTime::UNIX_EPOCH);
        cache.put(&id, access(), 10_000, cache.generation());
        assert!(cache.get(&id, 10_999).is_some());
        assert!(cache.get(&id, 11_000).is_none());
        assert!(cache.get(&id, 9_999).is_none(), "a clock that went back");
    }

    #[test]
    fn a_read_that_raced_with_a_revocation_is_not_kept() {
        let cache = SessionCache::new(1_000);
        let id = SessionId::generate(SystemTime::UNIX_EPOCH);
        let before = cache.generation();
        cache.apply(&Revocation::Session(id.clone()));
        cache.put(&id, access(), 0, before);
        assert!(cache.get(&id, 1).is_none());
    }

    #[test]
    fn revocations_forget_what_they_may_have_changed() {
        let cache = SessionCache::new(1_000);
        let (a, b) = (
            SessionId::generate(SystemTime::UNIX_EPOCH),
            SessionId::generate(SystemTime::UNIX_EPOCH),
        );
        cache.put(&a, access(), 0, cache.generation());
        cache.put(&b, access(), 0, cache.generation());
        cache.apply(&Revocation::Session(a.clone()));
        assert!(cache.get(&a, 1).is_none());
        assert!(cache.get(&b, 1).is_some());
        cache.apply(&Revocation::User(UserId::generate(SystemTime::UNIX_EPOCH)));
        assert!(cache.get(&b, 1).is_none());
    }

    #[test]
    fn off_at_zero_and_bounded() {
        let off = SessionCache::new(0);
        let id = SessionId::generate(SystemTime::UNIX_EPOCH);
        off.put(&id, access(), 0, off.generation());
        assert!(off.get(&id, 0).is_none());
        let cache = SessionCache::new(1_000);
        for _ in 0..MAX_ENTRIES * 2 {
            cache.put(
                &SessionId::generate(SystemTime::UNIX_EPOCH),
                access(),
                0,
                cache.generation(),
            );
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= MAX_ENTRIES, "{held}");
    }
}
