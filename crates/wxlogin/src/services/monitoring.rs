//! What `GET /metrics` shows: the metrics, with the live-session gauge brought up to date at most
//! once a minute (by the deployment's clock) however often it is scraped.

use crate::state::AppState;

/// How old the live-session count may be before a scrape counts again.
pub const SESSIONS_COUNT_MAX_AGE_MS: i64 = 60_000;

/// The metrics in the Prometheus text format. A scrape that finds the session count stale counts
/// the live sessions (one `COUNT(*)`); concurrent scrapes meanwhile show the previous count. A
/// failed count keeps the previous one (the failure is counted as a database error).
pub async fn render(state: &AppState) -> String {
    let now = state.now_millis();
    if let Some(due) = state
        .metrics
        .sessions_active_due(now, SESSIONS_COUNT_MAX_AGE_MS)
    {
        match state.store.count_live_sessions(now).await {
            Ok(live) => due.set(live),
            Err(e) => tracing::warn!(error = %e, "cannot count the live sessions for the metrics"),
        }
    }
    state.metrics.render()
}
