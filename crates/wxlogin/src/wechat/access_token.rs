//! WeChat access tokens for the apps this server serves: cached per appid, fetched by one caller at a
//! time, dropped only when the rejected token is still the cached one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::client::WechatClient;
use super::error::WechatError;
use crate::clock::SharedClock;
use crate::domain::{AccessToken, AppId, AppSecret};

/// Which WeChat API issues the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// `/cgi-bin/stable_token`: the same token for every caller until shortly before it expires.
    #[default]
    Stable,
    /// `/cgi-bin/token`: each fetch replaces the previous token (after a 5-minute overlap).
    Classic,
}

/// The background refresher renews a token when less than this is left: WeChat's own overlap
/// window, in which stable_token hands out the next token while the current one still works.
const PROACTIVE_MARGIN: Duration = Duration::from_secs(300);
/// A request fetches a token itself only when less than this is left (the refresher was late or is
/// not running); until then the cached token, still valid, is served without waiting.
const ON_DEMAND_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    expires_at_ms: i64,
}

#[derive(Debug)]
struct AppTokens {
    secret: AppSecret,
    cached: Mutex<Option<Cached>>,
    /// Held by the one caller that fetches; a dropped caller releases it, so nobody stays stuck.
    refresh: tokio::sync::Mutex<()>,
}

/// The access-token cache of all configured apps. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessTokens {
    client: WechatClient,
    clock: SharedClock,
    mode: TokenMode,
    apps: Arc<HashMap<AppId, AppTokens>>,
}

impl AccessTokens {
    pub fn new(
        client: WechatClient,
        clock: SharedClock,
        mode: TokenMode,
        apps: impl IntoIterator<Item = (AppId, AppSecret)>,
    ) -> Self {
        let apps = apps
            .into_iter()
            .map(|(appid, secret)| {
                let tokens = AppTokens {
                    secret,
                    cached: Mutex::new(None),
                    refresh: tokio::sync::Mutex::new(()),
                };
                (appid, tokens)
            })
            .collect();
        Self {
            client,
            clock,
            mode,
            apps: Arc::new(apps),
        }
    }

    fn app(&self, appid: &AppId) -> Result<&AppTokens, WechatError> {
        // Only configured apps reach here; answer like WeChat would for a stranger.
        self.apps
            .get(appid)
            .ok_or_else(|| WechatError::from_errcode(40013, "invalid appid"))
    }

    fn fresh(&self, app: &AppTokens) -> Option<(AccessToken, i64)> {
        self.cached_with_margin(app, ON_DEMAND_MARGIN)
    }

    fn cached_with_margin(&self, app: &AppTokens, margin: Duration) -> Option<(AccessToken, i64)> {
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.unix_millis();
        let cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| c.expires_at_ms - margin_ms > now)
            .map(|c| (c.token.clone(), c.expires_at_ms))
    }

    /// A usable token for the app: the cached one, or one fetched by a single caller while the
    /// others wait for it.
    pub async fn get(&self, appid: &AppId) -> Result<AccessToken, WechatError> {
        self.get_with_expiry(appid).await.map(|(token, _)| token)
    }

    /// As `get`, with how long the token has left.
    pub async fn get_with_expiry(
        &self,
        appid: &AppId,
    ) -> Result<(AccessToken, Duration), WechatError> {
        let app = self.app(appid)?;
        if let Some(fresh) = self.fresh(app) {
            return Ok(self.with_remaining(fresh));
        }
        let _guard = app.refresh.lock().await;
        if let Some(fresh) = self.fresh(app) {
            return Ok(self.with_remaining(fresh));
        }
        self.fetch(appid, app).await
    }

    /// Fetches and caches a new token. The caller holds the app's refresh lock.
    async fn fetch(
        &self,
        appid: &AppId,
        app: &AppTokens,
    ) -> Result<(AccessToken, Duration), WechatError> {
        let issued = match self.mode {
            TokenMode::Stable => {
                self.client
                    .get_stable_access_token(appid, &app.secret, false)
                    .await?
            }
            TokenMode::Classic => self.client.get_access_token(appid, &app.secret).await?,
        };
        let expires_in_ms = i64::try_from(issued.expires_in.as_millis()).unwrap_or(i64::MAX);
        let expires_at_ms = self.clock.unix_millis().saturating_add(expires_in_ms);
        let mut cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
        *cached = Some(Cached {
            token: issued.token.clone(),
            expires_at_ms,
        });
        tracing::info!(appid = %appid, expires_in_s = issued.expires_in.as_secs(), "fetched a WeChat access token");
        Ok((issued.token, issued.expires_in))
    }

    /// Renews every cached token that is in its last 5 minutes, one app after the other, under the
    /// same single-flight lock as requests. Tokens nobody asked for yet are not fetched. Returns how
    /// many were renewed; failures are logged and retried at the next check (the old token still
    /// works, and requests fall back to fetching themselves near the very end).
    pub async fn refresh_due(&self) -> usize {
        let mut renewed = 0;
        for appid in self.due() {
            if self.renew_if_due(&appid).await {
                renewed += 1;
            }
        }
        renewed
    }

    /// The apps whose cached token is in its last 5 minutes.
    pub fn due(&self) -> Vec<AppId> {
        self.apps
            .iter()
            .filter(|(_, app)| {
                app.cached
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_some()
                    && self.cached_with_margin(app, PROACTIVE_MARGIN).is_none()
            })
            .map(|(appid, _)| appid.clone())
            .collect()
    }

    /// Renews the app's token if it is still due once the single-flight lock is held; false when
    /// a request renewed it meanwhile or the fetch failed (logged).
    pub async fn renew_if_due(&self, appid: &AppId) -> bool {
        let Ok(app) = self.app(appid) else {
            return false;
        };
        let _guard = app.refresh.lock().await;
        if self.cached_with_margin(app, PROACTIVE_MARGIN).is_some() {
            return false;
        }
        match self.fetch(appid, app).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(appid = %appid, error = %e, "proactive access-token refresh failed; will retry");
                false
            }
        }
    }

    fn with_remaining(
        &self,
        (token, expires_at_ms): (AccessToken, i64),
    ) -> (AccessToken, Duration) {
        let left = (expires_at_ms - self.clock.unix_millis()).max(0);
        (token, Duration::from_millis(left.unsigned_abs()))
    }

    /// Forgets `rejected` if it is still the cached token; a token someone else already replaced is
    /// left alone, so concurrent rejections cause one refresh.
    pub fn invalidate(&self, appid: &AppId, rejected: &AccessToken) {
        if let Ok(app) = self.app(appid) {
            let mut cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
            if cached.as_ref().is_some_and(|c| &c.token == rejected) {
                *cached = None;
                tracing::info!(appid = %appid, "dropped a WeChat access token that WeChat rejected");
            }
        }
    }

    pub fn client(&self) -> &WechatClient {
        &self.client
    }
}

/// Runs a call that needs the app's access token. If WeChat rejects the token (40001, 40014,
/// 42001), the token is invalidated, refreshed once and the call retried once: never a loop.
pub async fn with_access_token<T, F, Fut>(
    tokens: &AccessTokens,
    appid: &AppId,
    call: F,
) -> Result<T, WechatError>
where
    F: Fn(AccessToken) -> Fut,
    Fut: Future<Output = Result<T, WechatError>>,
{
    let token = tokens.get(appid).await?;
    match call(token.clone()).await {
        Err(e) if e.is_access_token_rejected() => {
            tracing::info!(appid = %appid, errcode = e.errcode(), rid = e.rid(), "access token rejected; refreshing once");
            tokens.invalidate(appid, &token);
            let fresh = tokens.get(appid).await?;
            call(fresh).await
        }
        other => other,
    }
}
