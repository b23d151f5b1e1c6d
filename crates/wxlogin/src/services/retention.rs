//! The retention purge: deletes, in batches, what no request can need any more.
//!
//! - expired login tickets;
//! - refresh tokens of sessions that have ended (revoked, or past their absolute end). A rotated
//!   token must stay as long as its session can still be refreshed: presenting it then is how a
//!   theft is detected (the thief refreshed first, the owner presents the old token, the session
//!   is revoked and the thief locked out). Once the session has ended, every one of its tokens is
//!   answered `invalid_grant` whether its row exists or not, so the rows are dead weight;
//! - sessions `retention.session_margin_days` after their absolute end (their remaining tokens go
//!   with them), so recent ones stay visible to operators;
//! - audit entries older than `audit.retention_days`.
//!
//! Every instance runs the timer; one at a time does the work: the `retention` lease of the shared
//! state (memory, or Redis for several instances) is held while a run lasts, and a shared value
//! `retention:done` (expiring after `retention.interval_secs`) tells the others that the round is
//! done. With the shared state unreachable the round is skipped, with a warning: purging later
//! costs nothing. Each batch is one statement of at most `retention.batch_size` rows, its own
//! short transaction, so logins wait at most for one batch; the run yields between batches and
//! stops early after half of its lease, leaving the rest to the next round.
//!
//! Times come from the server's `Clock`, so tests move them.

use std::time::Duration;

use crate::clock::Stopwatch;
use crate::metrics::RetentionTable;
use crate::shared::SharedError;
use crate::state::AppState;
use crate::store::StoreError;

const LEASE: &str = "retention";
const DONE: &str = "retention:done";
/// Held while a run lasts; a run stops starting batches after half of it.
const LEASE_TTL: Duration = Duration::from_secs(300);
/// The first round starts at most this long after the server (sooner when the interval is
/// shorter), so that servers restarted more often than the interval still purge.
const FIRST_ROUND_MAX_DELAY: Duration = Duration::from_secs(300);
const DAY_MS: i64 = 86_400_000;

/// What one run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub login_tickets: u64,
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub audit_events: u64,
    /// The run stopped at its time budget with work left.
    pub incomplete: bool,
}

/// Why a run did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Another instance is purging right now.
    #[error("another instance holds the retention lease")]
    Busy,
    #[error("{0}")]
    Shared(#[from] SharedError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs the purge unless another instance has done this round (the `retention:done` value) or is
/// doing it; `Ok(None)` then. What the background task calls every `retention.interval_secs`.
pub async fn run_due(state: &AppState) -> Result<Option<PurgeReport>, RetentionError> {
    let shared = &state.shared;
    let Some(lease) = shared.leases.try_acquire(LEASE, LEASE_TTL).await? else {
        return Ok(None);
    };
    // Read under the lease: an instance that finished just before wrote it before releasing.
    let outcome = match shared.values.get(DONE).await {
        Ok(Some(_)) => Ok(None),
        Ok(None) => purge_and_mark(state).await.map(Some),
        Err(e) => Err(e.into()),
    };
    release(state, &lease).await;
    outcome
}

/// Runs the purge now, whatever the round: an operator's or a test's request. `Busy` while
/// another instance runs it.
pub async fn run_now(state: &AppState) -> Result<PurgeReport, RetentionError> {
    let lease = state
        .shared
        .leases
        .try_acquire(LEASE, LEASE_TTL)
        .await?
        .ok_or(RetentionError::Busy)?;
    let outcome = purge_and_mark(state).await;
    release(state, &lease).await;
    outcome
}

async fn release(state: &AppState, lease: &crate::shared::Lease) {
    if let Err(e) = state.shared.leases.release(lease).await {
        tracing::warn!(error = %e, "cannot release the retention lease; it expires by itself");
    }
}

async fn purge_and_mark(state: &AppState) -> Result<PurgeReport, RetentionError> {
    let report = purge(state).await?;
    let interval = Duration::from_secs(state.settings.retention.interval_secs);
    // Slightly less than the interval, so that the next tick of the same instance finds it gone.
    let done_for = interval
        .saturating_sub(interval / 10)
        .max(Duration::from_millis(500));
    let at = state.now_millis().to_string();
    if let Err(e) = state.shared.values.set(DONE, at.as_bytes(), done_for).await {
        tracing::warn!(error = %e, "cannot mark the retention round done; another instance may purge again");
    }
    Ok(report)
}

/// One pass over every table, in batches, with the times of `state`'s clock.
async fn purge(state: &AppState) -> Result<PurgeReport, RetentionError> {
    let settings = &state.settings;
    let limit = settings.retention.batch_size;
    let budget = LEASE_TTL / 2;
    let watch = Stopwatch::start();
    let now = state.now_millis();
    let days = |n: u64| i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(DAY_MS);
    let session_horizon = now.saturating_sub(days(settings.retention.session_margin_days));
    let audit_horizon = now.saturating_sub(days(settings.audit.retention_days));
    let store = state.store.as_ref();
    let mut report = PurgeReport::default();
    for table in [
        RetentionTable::LoginTickets,
        RetentionTable::RefreshTokens,
        RetentionTable::Sessions,
        RetentionTable::AuditEvents,
    ] {
        loop {
            if watch.elapsed() > budget {
                report.incomplete = true;
                break;
            }
            let deleted = match table {
                RetentionTable::LoginTickets => store.purge_expired_login_tickets(now, limit).await,
                RetentionTable::RefreshTokens => store.purge_ended_session_tokens(now, limit).await,
                RetentionTable::Sessions => {
                    store
                        .purge_sessions_expired_before(session_horizon, limit)
                        .await
                }
                RetentionTable::AuditEvents => store.purge_audit_events(audit_horizon, limit).await,
            }?;
            state.metrics.retention_purged(table, deleted);
            *match table {
                RetentionTable::LoginTickets => &mut report.login_tickets,
                RetentionTable::RefreshTokens => &mut report.refresh_tokens,
                RetentionTable::Sessions => &mut report.sessions,
                RetentionTable::AuditEvents => &mut report.audit_events,
            } += deleted;
            if deleted < u64::from(limit) {
                break;
            }
            // Let the requests waiting for the database (SQLite's one writer) in between batches.
            tokio::task::yield_now().await;
        }
    }
    if report != PurgeReport::default() {
        tracing::info!(
            login_tickets = report.login_tickets,
            refresh_tokens = report.refresh_tokens,
            sessions = report.sessions,
            audit_events = report.audit_events,
            incomplete = report.incomplete,
            "retention purge"
        );
    }
    Ok(report)
}

/// Runs [`run_due`] every `retention.interval_secs` (the first round sooner, see
/// [`FIRST_ROUND_MAX_DELAY`]) until the returned handle is aborted.
pub(crate) fn spawn_purger(state: AppState) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(state.settings.retention.interval_secs);
    tokio::spawn(async move {
        tokio::time::sleep(every.min(FIRST_ROUND_MAX_DELAY)).await;
        loop {
            if let Err(e) = run_due(&state).await {
                tracing::warn!(error = %e, "retention purge skipped; the next round tries again");
            }
            tokio::time::sleep(every).await;
        }
    })
}
