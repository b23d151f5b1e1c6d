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
use crate::config::Registration;
use crate::domain::{AppId, LoginCode, OpenId, Phone, PhoneCode, UnionId, UserId};
use crate::error::{ApiError, LoginTicketText};
use crate::sessions::{LoginResponse, start_session};
use crate::store::{Identity, LoginTicket, StoreError, User};
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

/// How long a `login_ticket` lets a refused new user finish registration (API.md: 5 minutes).
pub const LOGIN_TICKET_TTL_MS: i64 = 5 * 60 * 1000;

/// A WeChat identity a code exchange has just proved, with its session_key already sealed.
#[derive(Clone)]
struct Proven {
    appid: AppId,
    openid: OpenId,
    unionid: Option<UnionId>,
    sealed_session_key: Vec<u8>,
}

impl Proven {
    fn from_session(state: &AppState, appid: &AppId, session: &Code2Session) -> Self {
        Self {
            appid: appid.clone(),
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            sealed_session_key: state.sealing.seal(
                &session.session_key,
                appid.as_str(),
                session.openid.as_str(),
            ),
        }
    }

    /// The identity a login ticket kept while its registration was pending.
    fn from_ticket(ticket: &LoginTicket) -> Self {
        Self {
            appid: ticket.appid.clone(),
            openid: ticket.openid.clone(),
            unionid: ticket.unionid.clone(),
            sealed_session_key: ticket.sealed_session_key.clone(),
        }
    }

    fn identity(&self, user: &UserId, now: i64) -> Identity {
        Identity {
            appid: self.appid.clone(),
            openid: self.openid.clone(),
            unionid: self.unionid.clone(),
            user_id: user.clone(),
            sealed_session_key: self.sealed_session_key.clone(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// `POST /v1/auth/wechat/login`, with an optional getPhoneNumber code to bind in the same round
/// trip.
pub async fn login_with_wechat(
    state: &AppState,
    appid: AppId,
    code: LoginCode,
    phone_code: Option<PhoneCode>,
) -> Outcome {
    if !state.apps.contains_key(&appid) {
        return Err(ApiError::unknown_app());
    }
    let key = exchange_key(&appid, &code);
    let work = {
        let state = state.clone();
        async move { complete_login(&state, &appid, &code, phone_code.as_ref()).await }.boxed()
    };
    state.code_exchanges.run(key, work).await
}

async fn complete_login(
    state: &AppState,
    appid: &AppId,
    code: &LoginCode,
    phone_code: Option<&PhoneCode>,
) -> Outcome {
    let app = state.apps.get(appid).ok_or_else(ApiError::unknown_app)?;
    let session = state.wechat.code2session(appid, &app.secret, code).await?;
    // Both WeChat calls come before any write: a refused phone code leaves nothing half done.
    let phone = match phone_code {
        Some(code) => Some(crate::phone::fetch_phone(state, appid, code).await?),
        None => None,
    };
    let proven = Proven::from_session(state, appid, &session);
    let (user, is_new) = admit(state, app.registration, &proven, phone).await?;
    finish_login(state, appid, &user, is_new).await
}

async fn finish_login(state: &AppState, appid: &AppId, user: &User, is_new: bool) -> Outcome {
    if user.banned_at.is_some() {
        return Err(ApiError::login_blocked("this account is banned"));
    }
    tracing::info!(user = %user.id, appid = %appid, is_new, "logged in with WeChat");
    start_session(state, user, appid, is_new).await
}

/// `POST /v1/auth/wechat/register`: finishes a login that `phone_required` (or `closed`) refused,
/// with the ticket it gave and a getPhoneNumber code. The ticket is single use; if the phone step
/// fails in a way the user can fix (another phone code, WeChat busy, a number already in use), it
/// is put back so the user can try again until it expires.
pub async fn register(state: &AppState, ticket: &str, phone_code: &PhoneCode) -> Outcome {
    let hash = crate::tokens::hash_login_ticket(ticket).ok_or_else(ApiError::invalid_ticket)?;
    let taken = state
        .store
        .take_login_ticket(&hash, state.now_millis())
        .await?
        .ok_or_else(ApiError::invalid_ticket)?;
    let Some(app) = state.apps.get(&taken.appid) else {
        return Err(ApiError::unknown_app());
    };
    let proven = Proven::from_ticket(&taken);
    let admitted = match crate::phone::fetch_phone(state, &proven.appid, phone_code).await {
        Ok(phone) => admit(state, app.registration, &proven, Some(phone)).await,
        Err(e) => Err(e),
    };
    match admitted {
        Ok((user, is_new)) => finish_login(state, &proven.appid, &user, is_new).await,
        Err(e) => {
            if matches!(
                e.code,
                "invalid_code" | "phone_in_use" | "wechat_unavailable" | "rate_limited"
            ) {
                state.store.insert_login_ticket(&taken).await?;
            }
            Err(e)
        }
    }
}

/// Hands out a ticket for this proven identity (5 minutes, single use).
async fn issue_ticket(state: &AppState, proven: &Proven) -> Result<LoginTicketText, ApiError> {
    let (text, hash) = crate::tokens::generate_login_ticket();
    let now = state.now_millis();
    state
        .store
        .insert_login_ticket(&LoginTicket {
            hash: hash.to_vec(),
            appid: proven.appid.clone(),
            openid: proven.openid.clone(),
            unionid: proven.unionid.clone(),
            sealed_session_key: proven.sealed_session_key.clone(),
            created_at: now,
            expires_at: now + LOGIN_TICKET_TTL_MS,
        })
        .await?;
    Ok(LoginTicketText(text))
}

/// The user of a proven WeChat identity, under the app's registration policy:
///
/// - a known identity is that identity's user (its unionid back-filled, its session_key stored);
/// - a new identity whose unionid another app's identity has joins that user;
/// - otherwise, with a phone number: `closed` joins the user who has the number (an operator's
///   import), other policies refuse a number in use (`phone_in_use`) and create the user with it;
/// - otherwise `auto` creates the user, `phone_required` and `closed` refuse with a ticket.
///
/// A link that would join two users is refused (`identity_conflict`), never merged. Concurrent
/// first logins of one identity race on its primary key; the loser starts over and finds it.
async fn admit(
    state: &AppState,
    policy: Registration,
    proven: &Proven,
    phone: Option<Phone>,
) -> Result<(User, bool), ApiError> {
    for _ in 0..3 {
        let now = state.now_millis();
        if let Some(identity) = state
            .store
            .find_identity(&proven.appid, &proven.openid)
            .await?
        {
            check_unionid_backfill(state, &identity, proven.unionid.as_ref()).await?;
            state
                .store
                .record_identity_login(
                    &proven.appid,
                    &proven.openid,
                    proven.unionid.as_ref(),
                    &proven.sealed_session_key,
                    now,
                )
                .await?;
            return existing_user(state, &identity.user_id, phone).await;
        }

        let linked = match &proven.unionid {
            Some(unionid) => user_of_unionid(state, unionid).await?,
            None => None,
        };
        let linked = match (linked, &phone) {
            (Some(user), _) => Some(user),
            (None, Some(phone)) => match state.store.find_user_by_phone(phone).await? {
                Some(owner) if policy == Registration::Closed => {
                    if state
                        .store
                        .find_identity_by_user(&owner.id, &proven.appid)
                        .await?
                        .is_some()
                    {
                        // The number's owner already uses this app with another WeChat account.
                        return Err(ApiError::phone_in_use());
                    }
                    Some(owner.id)
                }
                Some(_) => return Err(ApiError::phone_in_use()),
                None => None,
            },
            (None, None) => None,
        };
        if let Some(user_id) = linked {
            match state
                .store
                .link_identity(&proven.identity(&user_id, now))
                .await
            {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(user = %user_id, appid = %proven.appid, "linked a new WeChat identity to an existing user");
            return existing_user(state, &user_id, phone).await;
        }

        match (policy, &phone) {
            (Registration::Closed, None) => {
                return Err(ApiError::registration_closed(Some(
                    issue_ticket(state, proven).await?,
                )));
            }
            (Registration::Closed, Some(_)) => return Err(ApiError::registration_closed(None)),
            (Registration::PhoneRequired, None) => {
                return Err(ApiError::phone_required(issue_ticket(state, proven).await?));
            }
            _ => {}
        }
        let user = User {
            id: UserId::generate(state.clock.now()),
            nickname: None,
            avatar: None,
            created_at: now,
            updated_at: now,
            banned_at: None,
            phone: phone.clone(),
        };
        match state
            .store
            .create_user_with_identity(&user, &proven.identity(&user.id, now))
            .await
        {
            Ok(()) => return Ok((user, true)),
            // The identity (a concurrent first login) or the number appeared meanwhile: look again.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(&"a WeChat identity kept conflicting"))
}

/// An existing user (not new), with `phone` bound when the login brought one.
async fn existing_user(
    state: &AppState,
    id: &UserId,
    phone: Option<Phone>,
) -> Result<(User, bool), ApiError> {
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::internal(&"identity without its user"))?;
    let user = match phone {
        Some(phone) => crate::phone::bind_phone(state, user, phone).await?,
        None => user,
    };
    Ok((user, false))
}

/// The one user whose identities carry `unionid`, if any; two is a conflict left to an operator.
async fn user_of_unionid(state: &AppState, unionid: &UnionId) -> Result<Option<UserId>, ApiError> {
    let mut users = state.store.find_users_by_unionid(unionid).await?;
    if users.len() > 1 {
        tracing::warn!(users = ?users, "one unionid is linked to several users");
        return Err(ApiError::identity_conflict());
    }
    Ok(users.pop())
}

/// A known identity may learn its unionid later (back-fill), but never one that links to another
/// user, nor a different one than it has.
pub(crate) async fn check_unionid_backfill(
    state: &AppState,
    identity: &Identity,
    unionid: Option<&UnionId>,
) -> Result<(), ApiError> {
    let Some(unionid) = unionid else {
        return Ok(());
    };
    match &identity.unionid {
        Some(known) if known == unionid => return Ok(()),
        Some(_) => {
            tracing::warn!(user = %identity.user_id, appid = %identity.appid, "WeChat gave this identity a different unionid than the stored one");
            return Err(ApiError::identity_conflict());
        }
        None => {}
    }
    if let Some(other) = user_of_unionid(state, unionid).await?
        && other != identity.user_id
    {
        tracing::warn!(user = %identity.user_id, other = %other, appid = %identity.appid, "a unionid back-fill would link two users; refused");
        return Err(ApiError::identity_conflict());
    }
    Ok(())
}
