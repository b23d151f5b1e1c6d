//! `AppState`: what the handlers and services share. Built by the composition root (`app.rs`), the
//! only place that picks the concrete store and shared state.

use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::{Registration, Settings};
use crate::crypto::SealingKey;
use crate::domain::{AppId, AppSecret};
use crate::metrics::Metrics;
use crate::shared::{CodeExchanges, RateLimits, SessionCache, SharedState};
use crate::store::Store;
use crate::tokens::{KeyringReloader, TokenService};
use crate::wechat::{AccessTokens, WechatClient};

/// A mini program this server serves.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub secret: AppSecret,
    pub registration: Registration,
}

/// Everything a handler or service needs: one reference-counted pointer, so that the clone each
/// request makes of it (axum hands every handler and extractor its own) is one atomic increment
/// rather than one per part.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppParts {
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    pub store: Arc<dyn Store>,
    pub shared: SharedState,
    pub wechat: WechatClient,
    pub wechat_tokens: AccessTokens,
    pub tokens: TokenService,
    /// Brings `tokens`' keyring up to date with the database (unknown kids, periodically).
    pub keys: KeyringReloader,
    pub sealing: SealingKey,
    pub apps: Arc<HashMap<AppId, AppEntry>>,
    /// What `GET /metrics` on `metrics.listen` shows.
    pub metrics: Metrics,
    pub(crate) code_exchanges: CodeExchanges,
    /// `[rate_limits]` over the shared limiter.
    pub(crate) rate_limits: RateLimits,
    /// What this instance last read of each session (`tokens.session_cache_ms`).
    pub(crate) sessions: Arc<SessionCache>,
}

impl AppParts {
    pub fn now_millis(&self) -> i64 {
        self.clock.unix_millis()
    }

    pub fn now_secs(&self) -> i64 {
        self.clock.unix_secs()
    }
}
