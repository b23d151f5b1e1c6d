//! Login with a `wx.login` code: exchange it with WeChat exactly once, find or create the user, open
//! a session.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::app::AppState;
use crate::clock::SharedClock;
use crate::domain::{AppId, LoginCode, UserId};
use crate::error::ApiError;
use crate::sessions::{LoginResponse, start_session};
use crate::store::{Identity, StoreError, User};
use crate::wechat::Code2Session;

/// WeChat codes live 5 minutes: a code seen within that time is never sent to WeChat again.
const CODE_MEMORY_MS: i64 = 5 * 60 * 1000;

type Outcome = Result<LoginResponse, ApiError>;

/// A running exchange whose outcome is `Result<T, ApiError>`.
type Running<T> = Shared<BoxFuture<'static, Result<T, ApiError>>>;

#[derive(Default)]
struct Exchanges {
    /// Each value is a `Running<T>` of the purpose that started it (login, session refresh, ...).
    in_flight: HashMap<[u8; 32], Box<dyn Any + Send>>,
    /// Codes already exchanged, with the time until which they are remembered.
    used: HashMap<[u8; 32], i64>,
}

/// Single-flight of code exchanges: concurrent requests with one code share one WeChat call and one
/// outcome; later duplicates are refused without reaching WeChat. One instance serves every use of a
/// `wx.login` code (login, `POST /v1/wechat/session`), so a code is exchanged once whatever it is
/// presented for. Hand-written rather than a cache crate because expiry must follow the server's
/// `Clock`.
#[derive(Clone)]
pub struct CodeExchanges {
    state: Arc<Mutex<Exchanges>>,
    clock: SharedClock,
}

impl CodeExchanges {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            state: Arc::new(Mutex::new(Exchanges::default())),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Exchanges> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` for `key` unless it already ran (→ `invalid_code`) or is running (→ its outcome;
    /// `invalid_code` when it runs for another purpose, whose outcome this caller cannot use).
    /// The work is spawned, so a client that disconnects does not abandon a code WeChat consumed.
    pub(crate) async fn run<T>(
        &self,
        key: [u8; 32],
        work: BoxFuture<'static, Result<T, ApiError>>,
    ) -> Result<T, ApiError>
    where
        T: Clone + Send + Sync + 'static,
    {
        let shared = {
            let mut exchanges = self.lock();
            let now = self.clock.unix_millis();
            if exchanges.used.get(&key).is_some_and(|until| *until > now) {
                return Err(ApiError::invalid_code());
            }
            if let Some(running) = exchanges.in_flight.get(&key) {
                running
                    .downcast_ref::<Running<T>>()
                    .cloned()
                    .ok_or_else(ApiError::invalid_code)?
            } else {
                let this = self.clone();
                let task = tokio::spawn(
                    async move {
                        let outcome = work.await;
                        this.finish(key);
                        outcome
                    }
                    .in_current_span(),
                );
                let shared: Running<T> = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(ApiError::internal(&format!("code exchange task: {e}")))
                    })
                }
                .boxed()
                .shared();
                exchanges.in_flight.insert(key, Box::new(shared.clone()));
                shared
            }
        };
        shared.await
    }

    fn finish(&self, key: [u8; 32]) {
        let now = self.clock.unix_millis();
        let mut exchanges = self.lock();
        exchanges.in_flight.remove(&key);
        if exchanges.used.len() > 10_000 {
            exchanges.used.retain(|_, until| *until > now);
        }
        exchanges.used.insert(key, now + CODE_MEMORY_MS);
    }
}

/// The single-flight key of a code: SHA-256 of the appid and the code.
pub(crate) fn exchange_key(appid: &AppId, code: &LoginCode) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(appid.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(code.as_str().as_bytes());
    hasher.finalize().into()
}

/// `POST /v1/auth/wechat/login`.
pub async fn login_with_wechat(state: &AppState, appid: AppId, code: LoginCode) -> Outcome {
    if !state.apps.contains_key(&appid) {
        return Err(ApiError::unknown_app());
    }
    let key = exchange_key(&appid, &code);
    let work = {
        let state = state.clone();
        async move { complete_login(&state, &appid, &code).await }.boxed()
    };
    state.code_exchanges.run(key, work).await
}

async fn complete_login(state: &AppState, appid: &AppId, code: &LoginCode) -> Outcome {
    let app = state.apps.get(appid).ok_or_else(ApiError::unknown_app)?;
    let session = state.wechat.code2session(appid, &app.secret, code).await?;
    let (user, is_new) = find_or_create_user(state, appid, &session).await?;
    if user.banned_at.is_some() {
        return Err(ApiError::login_blocked("this account is banned"));
    }
    tracing::info!(user = %user.id, appid = %appid, is_new, "logged in with WeChat");
    start_session(state, &user, appid, is_new).await
}

/// The user of this WeChat identity, created on first login. Two first logins of one new openid race
/// on the identity's primary key; the loser reads the winner's user instead of making a second one.
async fn find_or_create_user(
    state: &AppState,
    appid: &AppId,
    session: &Code2Session,
) -> Result<(User, bool), ApiError> {
    let now = state.now_millis();
    let sealed = state.sealing.seal(
        &session.session_key,
        appid.as_str(),
        session.openid.as_str(),
    );
    for _ in 0..2 {
        if let Some(identity) = state.store.find_identity(appid, &session.openid).await? {
            state
                .store
                .record_identity_login(
                    appid,
                    &session.openid,
                    session.unionid.as_ref(),
                    &sealed,
                    now,
                )
                .await?;
            let user = state
                .store
                .get_user(&identity.user_id)
                .await?
                .ok_or_else(|| ApiError::internal(&"identity without its user"))?;
            return Ok((user, false));
        }
        let user = User {
            id: UserId::generate(state.clock.now()),
            nickname: None,
            avatar: None,
            created_at: now,
            updated_at: now,
            banned_at: None,
        };
        let identity = Identity {
            appid: appid.clone(),
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            user_id: user.id.clone(),
            sealed_session_key: sealed.clone(),
            created_at: now,
            updated_at: now,
        };
        match state
            .store
            .create_user_with_identity(&user, &identity)
            .await
        {
            Ok(()) => return Ok((user, true)),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(&"identity missing after a conflict"))
}
