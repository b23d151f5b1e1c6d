//! Users and their WeChat identities as backend services see them.

use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Identity, User};

/// A user with every WeChat identity it has, or `None` for an unknown id.
pub async fn with_identities(
    state: &AppState,
    id: &UserId,
) -> Result<Option<(User, Vec<Identity>)>, ApiError> {
    let Some(user) = state.store.get_user(id).await? else {
        return Ok(None);
    };
    let identities = state.store.list_identities_of_user(id).await?;
    Ok(Some((user, identities)))
}
