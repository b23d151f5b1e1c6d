//! Linking by unionid: apps of one WeChat Open Platform account share a person's unionid, and a
//! unionid maps to at most one wxlogin user.

use crate::domain::{UnionId, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Identity;

/// The one user whose identities carry `unionid`, if any; two is a conflict left to an operator.
pub(crate) async fn user_of_unionid(
    state: &AppState,
    unionid: &UnionId,
) -> Result<Option<UserId>, ApiError> {
    let mut users = state.store.find_users_by_unionid(unionid).await?;
    if users.len() > 1 {
        tracing::warn!(users = ?users, "one unionid is linked to several users");
        return Err(ApiError::identity_conflict());
    }
    Ok(users.pop())
}

/// A known identity may learn its unionid later (back-fill), but never one that links to another
/// user, nor a different one than it has.
pub(crate) async fn check_backfill(
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
