//! The background renewal of WeChat access tokens: every `wechat.token_refresh_check_ms`, each token
//! in its last 5 minutes is renewed by one instance, the holder of that app's lease in the shared
//! state; a holder that dies lets its lease expire and another instance takes over.

use std::time::Duration;

use crate::domain::AppId;
use crate::state::AppState;

/// Long enough for one renewal with WeChat's retries; short enough that a dead holder is replaced
/// well inside the 5-minute renewal window.
const LEASE_TTL: Duration = Duration::from_secs(60);

fn lease_name(appid: &AppId) -> String {
    format!("wechat-token-refresh:{appid}")
}

/// Renews the due tokens this instance may renew; returns how many it renewed.
pub async fn refresh_due(state: &AppState) -> usize {
    let mut renewed = 0;
    for appid in state.wechat_tokens.due() {
        let lease = match state
            .shared
            .leases
            .try_acquire(&lease_name(&appid), LEASE_TTL)
            .await
        {
            Ok(Some(lease)) => Some(lease),
            // Another instance holds the lease and renews this app's token.
            Ok(None) => continue,
            // Open: a renewal without the lease costs at most one extra WeChat call (in classic
            // mode it replaces the other instances' token, which they refetch on 40001), while no
            // renewal at all would leave every request to fetch in the token's last minute.
            Err(e) => {
                tracing::warn!(appid = %appid, error = %e, "cannot take the access-token lease; renewing anyway");
                None
            }
        };
        if state.wechat_tokens.renew_if_due(&appid).await {
            renewed += 1;
        }
        if let Some(lease) = lease
            && let Err(e) = state.shared.leases.release(&lease).await
        {
            tracing::warn!(appid = %appid, error = %e, "cannot release the access-token lease; it expires by itself");
        }
    }
    renewed
}

/// Runs [`refresh_due`] every `every` until the returned handle is aborted.
pub(crate) fn spawn_refresher(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            refresh_due(&state).await;
        }
    })
}
