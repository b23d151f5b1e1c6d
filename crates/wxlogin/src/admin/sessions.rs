//! The console's sessions, in this instance's memory: a random token in the cookie, its SHA-256
//! as the key, the stage of the sign-in, a CSRF token, and the time of the last request (a session
//! idle longer than `admin.session_idle_secs` is gone). Bounded: the least recently created
//! sessions make room. A restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::domain::AdminName;

/// At most this many sessions (signed in or not) are kept.
const MAX_SESSIONS: usize = 10_000;

/// How far a session has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Showed the sign-in form.
    Anonymous,
    /// The password was right; the TOTP code is next.
    PasswordChecked(AdminName),
    /// Signed in as this administrator; their role is read with the account at every request.
    SignedIn(AdminName),
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub stage: Stage,
    pub csrf: String,
    last_seen: i64,
    created: u64,
}

pub(crate) struct Sessions {
    idle_ms: i64,
    table: Mutex<(HashMap<[u8; 32], Session>, u64)>,
}

/// A fresh random token, base64url.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub(crate) fn new(idle_secs: u64) -> Self {
        Self {
            idle_ms: i64::try_from(idle_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            table: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Starts a session at `stage`; returns its token (for the cookie) and the session.
    pub(crate) fn start(&self, stage: Stage, now: i64) -> (String, Session) {
        let token = random_token();
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (table, counter) = &mut *guard;
        *counter += 1;
        if table.len() >= MAX_SESSIONS {
            table.retain(|_, s| now - s.last_seen < self.idle_ms);
            if table.len() >= MAX_SESSIONS
                && let Some(oldest) = table.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let session = Session {
            stage,
            csrf: random_token(),
            last_seen: now,
            created: *counter,
        };
        table.insert(key(&token), session.clone());
        (token, session)
    }

    /// The session of `token`, if it exists and has not been idle too long; its idle time starts
    /// again.
    pub(crate) fn get(&self, token: &str, now: i64) -> Option<Session> {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let table = &mut guard.0;
        let k = key(token);
        let session = table.get_mut(&k)?;
        if now - session.last_seen >= self.idle_ms {
            table.remove(&k);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    pub(crate) fn end(&self, token: &str) {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(&key(token));
    }
}
