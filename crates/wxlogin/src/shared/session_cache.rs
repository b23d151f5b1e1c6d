//! What an instance last read of each session (revoked, expiry, the user's WeChat identity in its
//! app) and of each signed-in user (the ban, the profile), so that a request with a valid access
//! token does not read the database every time, `GET /v1/me` answers from what the session check
//! read, and so do the identity headers of `GET /v1/auth/verify`.
//!
//! Safe because nothing is trusted for longer than `tokens.session_cache_ms` (at most one second),
//! and because every change wxlogin makes is applied at once: on this instance before the request
//! that made it answers ([`SessionCache::apply`] from `services::sessions`), on the others when its
//! event arrives ([`spawn_invalidator`]). A lost event (`Resync`, a lagging receiver) empties the
//! cache. A read that raced with an invalidation is not kept: every invalidation bumps a
//! generation, and a read is stored only if no invalidation happened since it started.
//!
//! Sessions and users are kept apart so that a user's change (a ban, a logout on all devices, a new
//! nickname) forgets one entry instead of every session: a session's entry names the version
//! (`epoch`) of its user's entry it was read with, and counts only while that version is the one
//! cached. Forgetting the user therefore forgets all of its sessions, and the next request of any
//! of them reads session and user again, in one query.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;

use super::{Revocation, SharedState};
use crate::domain::{SessionId, UserId};
use crate::store::{SessionAccess, SessionIdentity, User};

const SHARDS: usize = 16;
/// Sessions (about 100 bytes each) and users (about 300) remembered at most, each; a full shard is
/// emptied.
const MAX_ENTRIES: usize = 50_000;

#[derive(Debug)]
struct SessionEntry {
    user_id: UserId,
    revoked: bool,
    expires_at: i64,
    identity: Option<Arc<SessionIdentity>>,
    /// The version of the user's entry this session was read with.
    user_epoch: u64,
    read_at_ms: i64,
}

#[derive(Debug)]
struct UserEntry {
    user: Arc<User>,
    epoch: u64,
    read_at_ms: i64,
}

/// A session's state and its user, as read less than the TTL ago.
#[derive(Debug, Clone)]
pub struct CachedAccess {
    pub revoked: bool,
    pub expires_at: i64,
    pub user: Arc<User>,
    pub identity: Option<Arc<SessionIdentity>>,
}

type Shards<K, V> = Box<[Mutex<HashMap<K, V>>]>;

/// The cache; one per instance, shared by its requests.
#[derive(Debug)]
pub struct SessionCache {
    ttl_ms: i64,
    hasher: RandomState,
    sessions: Shards<SessionId, SessionEntry>,
    users: Shards<UserId, UserEntry>,
    generation: AtomicU64,
    epochs: AtomicU64,
}

/// Taken before a database read; the read may be stored only under the same generation.
#[derive(Debug, Clone, Copy)]
pub struct Generation(u64);

fn shards<K, V>() -> Shards<K, V> {
    (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()
}

fn lock<K, V>(shard: &Mutex<HashMap<K, V>>) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl SessionCache {
    /// `ttl_ms` 0 turns the cache off.
    pub fn new(ttl_ms: u64) -> Self {
        Self {
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            hasher: RandomState::new(),
            sessions: shards(),
            users: shards(),
            generation: AtomicU64::new(0),
            epochs: AtomicU64::new(0),
        }
    }

    fn shard<'a, K: Hash, V>(&self, shards: &'a Shards<K, V>, key: &K) -> &'a Mutex<HashMap<K, V>> {
        let index = usize::try_from(self.hasher.hash_one(key)).unwrap_or(0) % SHARDS;
        &shards[index]
    }

    fn fresh(&self, read_at_ms: i64, now_ms: i64) -> bool {
        (0..self.ttl_ms).contains(&(now_ms - read_at_ms))
    }

    /// What was read of `id` and of its user less than the TTL ago, unless the user changed since.
    pub fn get(&self, id: &SessionId, now_ms: i64) -> Option<CachedAccess> {
        if self.ttl_ms == 0 {
            return None;
        }
        let sessions = lock(self.shard(&self.sessions, id));
        let session = sessions
            .get(id)
            .filter(|e| self.fresh(e.read_at_ms, now_ms))?;
        // Both locks at once, always a session's before a user's (no other path holds two).
        let users = lock(self.shard(&self.users, &session.user_id));
        let user = users
            .get(&session.user_id)
            .filter(|e| e.epoch == session.user_epoch && self.fresh(e.read_at_ms, now_ms))?;
        Some(CachedAccess {
            revoked: session.revoked,
            expires_at: session.expires_at,
            user: user.user.clone(),
            identity: session.identity.clone(),
        })
    }

    /// The generation to hand to [`SessionCache::put`] after reading the database.
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// Remembers a database read of `id` (begun at `now_ms`), unless something was invalidated
    /// since `read` began; returns it as the cache hands it out either way.
    pub fn put(
        &self,
        id: &SessionId,
        access: SessionAccess,
        now_ms: i64,
        read: Generation,
    ) -> CachedAccess {
        let SessionAccess {
            revoked,
            expires_at,
            user,
            identity,
        } = access;
        let user = Arc::new(user);
        let identity = identity.map(Arc::new);
        let cached = CachedAccess {
            revoked,
            expires_at,
            user: user.clone(),
            identity: identity.clone(),
        };
        if self.ttl_ms == 0 {
            return cached;
        }
        let user_id = user.id.clone();
        let epoch = {
            let mut users = lock(self.shard(&self.users, &user_id));
            // Checked under the shard lock: an invalidation bumps the generation before it takes
            // the lock, so it either sees this entry and removes it, or this check sees its bump.
            if self.generation.load(Ordering::Acquire) != read.0 {
                return cached;
            }
            match users.get_mut(&user_id) {
                // The same user as cached, read again: its other sessions stay valid.
                Some(entry) if self.fresh(entry.read_at_ms, now_ms) && *entry.user == *user => {
                    entry.read_at_ms = entry.read_at_ms.max(now_ms);
                    entry.epoch
                }
                _ => {
                    if users.len() >= MAX_ENTRIES / SHARDS && !users.contains_key(&user_id) {
                        users.clear();
                    }
                    let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
                    let entry = UserEntry {
                        user,
                        epoch,
                        read_at_ms: now_ms,
                    };
                    users.insert(user_id.clone(), entry);
                    epoch
                }
            }
        };
        let mut sessions = lock(self.shard(&self.sessions, id));
        if self.generation.load(Ordering::Acquire) != read.0 {
            return cached;
        }
        if sessions.len() >= MAX_ENTRIES / SHARDS && !sessions.contains_key(id) {
            sessions.clear();
        }
        let entry = SessionEntry {
            user_id,
            revoked,
            expires_at,
            identity,
            user_epoch: epoch,
            read_at_ms: now_ms,
        };
        sessions.insert(id.clone(), entry);
        cached
    }

    /// Forgets what `event` may have changed: one session, one user (and so its sessions), or
    /// everything.
    pub fn apply(&self, event: &Revocation) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        match event {
            Revocation::Session(id) => {
                lock(self.shard(&self.sessions, id)).remove(id);
            }
            Revocation::User(id) | Revocation::Profile(id) => self.remove_user(id),
            Revocation::Resync => self.clear(),
            Revocation::SigningKeys | Revocation::WechatAccessToken(_) => {}
        }
    }

    /// Forgets `user` and its sessions on this instance only: for a change the others need not
    /// hear of at once (a login, which may change the user's identity in its app).
    pub fn forget_user(&self, user: &UserId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.remove_user(user);
    }

    fn remove_user(&self, id: &UserId) {
        lock(self.shard(&self.users, id)).remove(id);
    }

    fn clear(&self) {
        for shard in &self.sessions {
            lock(shard).clear();
        }
        for shard in &self.users {
            lock(shard).clear();
        }
    }
}

/// Applies the events of every instance to `cache` until the task is aborted; a receiver that
/// lagged empties it. Subscribes before returning, so nothing published after start is missed.
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

    fn user(id: &UserId) -> User {
        User {
            id: id.clone(),
            nickname: None,
            avatar: None,
            created_at: 0,
            updated_at: 0,
            banned_at: None,
            phone: None,
        }
    }

    fn access_of(user_id: &UserId) -> SessionAccess {
        SessionAccess {
            revoked: false,
            expires_at: i64::MAX,
            user: user(user_id),
            identity: None,
        }
    }

    fn access() -> SessionAccess {
        access_of(&UserId::generate(SystemTime::UNIX_EPOCH))
    }

    fn session() -> SessionId {
        SessionId::generate(SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn entries_last_the_ttl_and_no_longer() {
        let cache = SessionCache::new(1_000);
        let id = session();
        cache.put(&id, access(), 10_000, cache.generation());
        assert!(cache.get(&id, 10_999).is_some());
        assert!(cache.get(&id, 11_000).is_none());
        assert!(cache.get(&id, 9_999).is_none(), "a clock that went back");
    }

    #[test]
    fn a_read_that_raced_with_a_revocation_is_not_kept() {
        let cache = SessionCache::new(1_000);
        let id = session();
        let before = cache.generation();
        cache.apply(&Revocation::Session(id.clone()));
        let handed = cache.put(&id, access(), 0, before);
        assert!(!handed.revoked, "the read is still the caller's answer");
        assert!(cache.get(&id, 1).is_none());
    }

    #[test]
    fn revocations_forget_what_they_may_have_changed() {
        let cache = SessionCache::new(1_000);
        let (a, b, c) = (session(), session(), session());
        let (one, other) = (
            UserId::generate(SystemTime::UNIX_EPOCH),
            UserId::generate(SystemTime::UNIX_EPOCH),
        );
        cache.put(&a, access_of(&one), 0, cache.generation());
        cache.put(&b, access_of(&one), 0, cache.generation());
        cache.put(&c, access_of(&other), 0, cache.generation());
        cache.apply(&Revocation::Session(a.clone()));
        assert!(cache.get(&a, 1).is_none());
        assert!(cache.get(&b, 1).is_some());
        cache.apply(&Revocation::User(one.clone()));
        assert!(cache.get(&b, 1).is_none(), "every session of the user");
        assert!(cache.get(&c, 1).is_some(), "another user's stay");
        cache.apply(&Revocation::Profile(other.clone()));
        assert!(cache.get(&c, 1).is_none());
        cache.put(&c, access_of(&other), 2, cache.generation());
        cache.apply(&Revocation::Resync);
        assert!(cache.get(&c, 3).is_none());
        cache.put(&c, access_of(&other), 4, cache.generation());
        cache.forget_user(&other);
        assert!(cache.get(&c, 5).is_none());
    }

    #[test]
    fn a_session_counts_only_with_the_user_it_was_read_with() {
        let cache = SessionCache::new(1_000);
        let (a, b) = (session(), session());
        let id = UserId::generate(SystemTime::UNIX_EPOCH);
        cache.put(&a, access_of(&id), 0, cache.generation());
        // The same user read again through another session: both sessions stay.
        cache.put(&b, access_of(&id), 10, cache.generation());
        assert!(cache.get(&a, 20).is_some() && cache.get(&b, 20).is_some());
        // Read again, changed (by another instance, or behind wxlogin's back): the session read
        // with the old user no longer counts; the one read with the new user shows the change.
        let mut renamed = access_of(&id);
        renamed.user.nickname = Some("new".into());
        cache.put(&b, renamed, 30, cache.generation());
        assert!(cache.get(&a, 40).is_none());
        let seen = cache.get(&b, 40).unwrap();
        assert_eq!(seen.user.nickname.as_deref(), Some("new"));
    }

    #[test]
    fn off_at_zero_and_bounded() {
        let off = SessionCache::new(0);
        let id = session();
        off.put(&id, access(), 0, off.generation());
        assert!(off.get(&id, 0).is_none());
        let cache = SessionCache::new(1_000);
        for _ in 0..MAX_ENTRIES * 2 {
            cache.put(&session(), access(), 0, cache.generation());
        }
        let sessions: usize = cache.sessions.iter().map(|s| s.lock().unwrap().len()).sum();
        let users: usize = cache.users.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(sessions <= MAX_ENTRIES, "{sessions}");
        assert!(users <= MAX_ENTRIES, "{users}");
    }
}
