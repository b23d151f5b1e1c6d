//! Login with a `wx.login` code: exchange it with WeChat exactly once, find or create the user, open
//! a session; and the registration that finishes a login a policy refused.

use futures::FutureExt as _;

use crate::config::{LimitedEndpoint, Registration};
use crate::domain::{AppId, LoginCode, PhoneCode};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::{LoginTicket, User};
use crate::tokens::hash_login_ticket;

use super::accounts::{LOGIN_TICKET_ATTEMPTS, Proven, admit};
use super::audit::{self, Actor, AuditEvent, Origin};
use super::exchange::exchange_key;
use super::rate_limits::{self, Subject};
use super::sessions::{SignedIn, start_session};

type Outcome = Result<SignedIn, ApiError>;

/// `POST /v1/auth/wechat/login`, with an optional getPhoneNumber code to bind in the same round
/// trip.
pub async fn login_with_wechat(
    state: &AppState,
    appid: AppId,
    code: LoginCode,
    phone_code: Option<PhoneCode>,
    origin: Origin,
) -> Outcome {
    if !state.apps.contains_key(&appid) {
        return Err(ApiError::unknown_app());
    }
    let key = exchange_key(&appid, &code);
    let work = {
        let state = state.clone();
        async move { complete_login(&state, &appid, &code, phone_code.as_ref(), &origin).await }
            .boxed()
    };
    state.code_exchanges.run(key, work).await
}

async fn complete_login(
    state: &AppState,
    appid: &AppId,
    code: &LoginCode,
    phone_code: Option<&PhoneCode>,
    origin: &Origin,
) -> Outcome {
    let app = state.apps.get(appid).ok_or_else(ApiError::unknown_app)?;
    let session = state.wechat.code2session(appid, &app.secret, code).await?;
    // Only now is the WeChat user known. The code is spent either way; what this limit bounds is
    // the sessions (and the phone calls) one WeChat user can open.
    let user = format!("{appid}:{}", session.openid.as_str());
    rate_limits::check(state, LimitedEndpoint::Login, &[Some(Subject::User(&user))]).await?;
    // Both WeChat calls come before any write: a refused phone code leaves nothing half done.
    let phone = match phone_code {
        Some(code) => Some(super::phone::fetch_phone(state, appid, code).await?),
        None => None,
    };
    let proven = Proven::from_session(state, appid, &session);
    let (user, is_new) = admit(state, app.registration, &proven, phone, origin).await?;
    finish_login(state, appid, &user, is_new, None, origin).await
}

/// Opens the session and records the login, or with `registration` (the policy that had refused
/// it) the completed registration.
async fn finish_login(
    state: &AppState,
    appid: &AppId,
    user: &User,
    is_new: bool,
    registration: Option<Registration>,
    origin: &Origin,
) -> Outcome {
    if user.banned_at.is_some() {
        return Err(ApiError::login_blocked("this account is banned"));
    }
    tracing::info!(user = %user.id, appid = %appid, is_new, "logged in with WeChat");
    let signed_in = start_session(state, user, appid, is_new, origin).await?;
    let (user_id, appid) = (user.id.clone(), appid.clone());
    let event = match registration {
        Some(policy) => AuditEvent::Registration {
            user: user_id,
            appid,
            policy,
            new: is_new,
        },
        None => AuditEvent::Login {
            user: user_id,
            appid,
            new: is_new,
        },
    };
    audit::record(state, Actor::User(user.id.clone()), origin, event).await;
    Ok(signed_in)
}

/// `POST /v1/auth/wechat/register`: finishes a login that `phone_required` (or `closed`) refused,
/// with the ticket it gave and a getPhoneNumber code. The ticket is single use; if the phone step
/// fails in a way the user can fix (another phone code, WeChat busy, a number already in use), it
/// is put back so the user can try again until it expires, at most `LOGIN_TICKET_ATTEMPTS` times
/// in all.
pub async fn register(
    state: &AppState,
    ticket: &str,
    phone_code: &PhoneCode,
    origin: &Origin,
) -> Outcome {
    let hash = hash_login_ticket(ticket).ok_or_else(ApiError::invalid_ticket)?;
    let taken = state
        .store
        .take_login_ticket(&hash, state.now_millis())
        .await?
        .ok_or_else(ApiError::invalid_ticket)?;
    let Some(app) = state.apps.get(&taken.appid) else {
        return Err(ApiError::unknown_app());
    };
    let user = format!("{}:{}", taken.appid, taken.openid.as_str());
    let subjects = [
        Some(Subject::User(&user)),
        Some(Subject::App(taken.appid.as_str())),
    ];
    if let Err(limited) = rate_limits::check(state, LimitedEndpoint::Register, &subjects).await {
        // Before WeChat is asked: the ticket goes back as it was, no attempt spent.
        state.store.insert_login_ticket(&taken).await?;
        return Err(limited);
    }
    let proven = Proven::from_ticket(&taken);
    let admitted = match super::phone::fetch_phone(state, &proven.appid, phone_code).await {
        Ok(phone) => admit(state, app.registration, &proven, Some(phone), origin).await,
        Err(e) => Err(e),
    };
    match admitted {
        Ok((user, is_new)) => {
            let policy = Some(app.registration);
            finish_login(state, &proven.appid, &user, is_new, policy, origin).await
        }
        Err(e) => {
            let attempts = taken.attempts.saturating_add(1);
            let retryable = matches!(
                e.code,
                ErrorCode::InvalidCode
                    | ErrorCode::PhoneInUse
                    | ErrorCode::WechatUnavailable
                    | ErrorCode::RateLimited
            );
            if retryable && attempts < LOGIN_TICKET_ATTEMPTS {
                let tried = LoginTicket { attempts, ..taken };
                state.store.insert_login_ticket(&tried).await?;
            } else if retryable {
                tracing::info!(appid = %proven.appid, attempts, "a login ticket used up its attempts");
            }
            Err(e)
        }
    }
}
