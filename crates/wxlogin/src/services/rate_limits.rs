//! `[rate_limits]` applied by the flows: a request over a limit is 429 `rate_limited` with
//! `Retry-After`. Which subjects each endpoint counts is in `docs/api.md` ("Rate limits").

use crate::config::{LimitScope, LimitedEndpoint};
use crate::domain::{AppId, UserId};
use crate::error::ApiError;
use crate::shared::Limited;
pub(crate) use crate::shared::Subject;
use crate::state::AppState;

/// Counts one request of `endpoint` for each subject (`None`: nothing to count by); 429 when one
/// of the limits is full. Fails open when the shared state cannot be asked (`shared::RateLimits`).
pub(crate) async fn check(
    state: &AppState,
    endpoint: LimitedEndpoint,
    subjects: &[Option<Subject<'_>>],
) -> Result<(), ApiError> {
    state
        .rate_limits
        .check(endpoint, subjects)
        .await
        .map_err(|limited| {
            state
                .metrics
                .rate_limited(limited.endpoint.as_str(), limited.scope.as_str());
            refused(limited)
        })
}

/// For an endpoint of the signed-in user: per IP, per user and per app of the access token.
pub(crate) async fn check_signed_in(
    state: &AppState,
    endpoint: LimitedEndpoint,
    ip: Option<Subject<'_>>,
    (user_id, appid): (&UserId, &AppId),
) -> Result<(), ApiError> {
    let subjects = [
        ip,
        Some(Subject::User(user_id.as_str())),
        Some(Subject::App(appid.as_str())),
    ];
    check(state, endpoint, &subjects).await
}

fn refused(limited: Limited) -> ApiError {
    let Limited {
        endpoint,
        scope,
        retry_after,
    } = limited;
    // Whole seconds, rounded up: a client that waits that long finds room.
    let secs = retry_after.as_micros().div_ceil(1_000_000);
    let secs = u64::try_from(secs).unwrap_or(u64::MAX).max(1);
    let whom = match (scope, endpoint) {
        (LimitScope::Ip, _) => "from this address",
        (LimitScope::User, LimitedEndpoint::Introspect | LimitedEndpoint::ServiceAuth) => {
            "by this service client"
        }
        (LimitScope::User, _) => "by this user",
        (LimitScope::App, _) => "for this app",
    };
    tracing::debug!(
        endpoint = endpoint.as_str(),
        limit = scope.as_str(),
        retry_after_secs = secs,
        "rate limited"
    );
    ApiError::too_many_requests(
        format!(
            "too many {} requests {whom}; retry in {secs} s",
            endpoint.as_str()
        ),
        secs,
    )
}
