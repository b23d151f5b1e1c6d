//! Accounts: the user behind a WeChat identity that a code exchange (or a login ticket) has just
//! proved, under the app's registration policy, with unionid linking and phone binding.

use crate::config::Registration;
use crate::domain::{AppId, OpenId, Phone, UnionId, UserId};
use crate::error::{ApiError, LoginTicketText};
use crate::state::AppState;
use crate::store::{Identity, LoginTicket, StoreError, User};
use crate::wechat::Code2Session;

use super::audit::{self, Actor, AuditEvent, LinkedBy, Origin};
use super::unionid::{check_backfill, user_of_unionid};

/// How long a `login_ticket` lets a refused new user finish registration (API.md: 5 minutes).
pub(crate) const LOGIN_TICKET_TTL_MS: i64 = 5 * 60 * 1000;
/// How many registrations one `login_ticket` allows: each costs a WeChat call, and a failed one puts
/// the ticket back, so without a bound a ticket would be a free pass to WeChat for 5 minutes.
pub(crate) const LOGIN_TICKET_ATTEMPTS: u32 = 5;

/// A WeChat identity a code exchange has just proved, with its session_key already sealed.
#[derive(Clone)]
pub(crate) struct Proven {
    pub(crate) appid: AppId,
    openid: OpenId,
    unionid: Option<UnionId>,
    sealed_session_key: Vec<u8>,
}

impl Proven {
    pub(crate) fn from_session(state: &AppState, appid: &AppId, session: &Code2Session) -> Self {
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
    pub(crate) fn from_ticket(ticket: &LoginTicket) -> Self {
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
            attempts: 0,
        })
        .await?;
    Ok(LoginTicketText(text))
}

/// The user of a proven WeChat identity, under the app's registration policy:
///
/// - a known identity is that identity's user (its unionid back-filled, its session_key stored);
/// - a new identity whose unionid another app's identity has joins that user;
/// - otherwise, with a phone number: `closed` joins the user who has the number if that user has
///   no WeChat identity yet (an operator's import); a number whose user signed in through WeChat
///   before is refused (`phone_in_use`) under every policy, since mainland numbers are recycled and
///   the caller may be the number's next holder; other policies create the user with a new number;
/// - otherwise `auto` creates the user, `phone_required` and `closed` refuse with a ticket.
///
/// A link that would join two users is refused (`identity_conflict`), never merged. Concurrent
/// first logins of one identity race on its primary key, and of one person in two apps on the
/// unionid's owner (both written with the identity); the loser starts over and finds the winner.
pub(crate) async fn admit(
    state: &AppState,
    policy: Registration,
    proven: &Proven,
    phone: Option<Phone>,
    origin: &Origin,
) -> Result<(User, bool), ApiError> {
    for _ in 0..3 {
        let now = state.now_millis();
        if let Some(identity) = state
            .store
            .find_identity(&proven.appid, &proven.openid)
            .await?
        {
            check_backfill(state, &identity, proven.unionid.as_ref()).await?;
            match state
                .store
                .record_identity_login(
                    &proven.appid,
                    &proven.openid,
                    proven.unionid.as_ref(),
                    &proven.sealed_session_key,
                    now,
                )
                .await
            {
                Ok(()) => {}
                // Another user took the unionid since the check: the next look refuses it.
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
            super::sessions::identity_changed(state, &identity.user_id);
            return existing_user(state, &identity.user_id, &proven.appid, phone, origin).await;
        }

        let linked = match &proven.unionid {
            Some(unionid) => user_of_unionid(state, unionid).await?,
            None => None,
        };
        let by_unionid = linked.is_some();
        let linked = match (linked, &phone) {
            (Some(user), _) => Some(user),
            (None, Some(phone)) => match state.store.find_user_by_phone(phone).await? {
                Some(owner) if policy == Registration::Closed => {
                    if !state
                        .store
                        .list_identities_of_user(&owner.id)
                        .await?
                        .is_empty()
                    {
                        // Not an operator's import: the number's user signed in through WeChat
                        // (in any app). A recycled number must not hand that account over.
                        tracing::info!(owner = %owner.id, appid = %proven.appid, "phone number of a WeChat user refused for linking");
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
            super::sessions::identity_changed(state, &user_id);
            tracing::info!(user = %user_id, appid = %proven.appid, "linked a new WeChat identity to an existing user");
            let via = if by_unionid {
                LinkedBy::Unionid
            } else {
                LinkedBy::Phone
            };
            let event = AuditEvent::IdentityLinked {
                user: user_id.clone(),
                appid: proven.appid.clone(),
                via,
            };
            audit::record(state, Actor::User(user_id.clone()), origin, event).await;
            return existing_user(state, &user_id, &proven.appid, phone, origin).await;
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
            Ok(()) => {
                if let Some(phone) = &user.phone {
                    let event = AuditEvent::PhoneBound {
                        user: user.id.clone(),
                        appid: proven.appid.clone(),
                        changed: false,
                        country_code: phone.country_code().to_owned(),
                    };
                    audit::record(state, Actor::User(user.id.clone()), origin, event).await;
                }
                return Ok((user, true));
            }
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
    appid: &AppId,
    phone: Option<Phone>,
    origin: &Origin,
) -> Result<(User, bool), ApiError> {
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::internal(&"identity without its user"))?;
    let user = match phone {
        Some(phone) => super::phone::bind_phone(state, user, phone, appid, origin).await?,
        None => user,
    };
    Ok((user, false))
}
