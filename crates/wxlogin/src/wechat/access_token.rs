//! WeChat access tokens for the apps this server serves: cached per appid, fetched by one caller at a
//! time, dropped only when the rejected token is still the cached one.
//!
//! With [`SharedTokens`] (every server wires it), the instances of one deployment use one token per
//! app: an instance without a fresh copy adopts the one the others published, and only the holder
//! of the app's cross-instance fetch lock calls WeChat. In `classic` mode this is what keeps the
//! instances from replacing each other's token. When the shared store cannot be used, each
//! instance fetches for itself (fail open, with a warning).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::client::WechatClient;
use super::error::WechatError;
use crate::clock::SharedClock;
use crate::domain::{AccessToken, AppId, AppSecret};
use crate::metrics::TokenTrigger;

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

/// An app's token as the other instances see it: the token and its expiry (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedToken {
    pub token: AccessToken,
    pub expires_at_ms: i64,
}

/// The cross-instance store could not be used; the caller carries on alone. The text names the
/// cause, never a token.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SharedTokensError(pub String);

/// Held by the one instance that fetches an app's token.
#[async_trait]
pub trait FetchLock: Send {
    /// Lets the next instance in. A lock dropped without this (a cancelled request) is released by
    /// the implementation in the background, or expires.
    async fn release(self: Box<Self>);
}

/// Where the instances of one deployment keep each app's current token, and the lock under which
/// one of them fetches it. Implemented over the shared state by the services.
#[async_trait]
pub trait SharedTokens: Send + Sync {
    /// The token the instances share, if any (a value that cannot be read counts as none).
    async fn load(&self, appid: &AppId) -> Result<Option<SharedToken>, SharedTokensError>;

    /// Publishes `token` until it expires.
    async fn store(&self, appid: &AppId, token: &SharedToken) -> Result<(), SharedTokensError>;

    /// Removes the shared token only while it is still `rejected`; true when it did.
    async fn remove_if_current(
        &self,
        appid: &AppId,
        rejected: &AccessToken,
    ) -> Result<bool, SharedTokensError>;

    /// Waits while another instance fetches the app's token, then holds the fetch lock.
    async fn lock_fetch(&self, appid: &AppId) -> Result<Box<dyn FetchLock>, SharedTokensError>;

    /// The fetch lock if nobody holds it, without waiting.
    async fn try_lock_fetch(
        &self,
        appid: &AppId,
    ) -> Result<Option<Box<dyn FetchLock>>, SharedTokensError>;
}

/// A token obtained under the app's local lock: adopted from the other instances or fetched.
struct Obtained {
    token: AccessToken,
    expires_at_ms: i64,
    fetched: bool,
}

#[derive(Debug)]
struct AppTokens {
    secret: AppSecret,
    cached: Mutex<Option<Cached>>,
    /// Held by the one caller that fetches; a dropped caller releases it, so nobody stays stuck.
    refresh: tokio::sync::Mutex<()>,
    /// WeChat rejected the cached token and it was dropped: the next fetch is `invalidated`.
    invalidated: AtomicBool,
}

/// The access-token cache of all configured apps. Cheap to clone.
#[derive(Clone)]
pub struct AccessTokens {
    client: WechatClient,
    clock: SharedClock,
    mode: TokenMode,
    apps: Arc<HashMap<AppId, AppTokens>>,
    shared: Option<Arc<dyn SharedTokens>>,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("mode", &self.mode)
            .field("apps", &self.apps)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
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
                    invalidated: AtomicBool::new(false),
                };
                (appid, tokens)
            })
            .collect();
        Self {
            client,
            clock,
            mode,
            apps: Arc::new(apps),
            shared: None,
        }
    }

    /// Shares the tokens with the other instances through `shared`.
    pub fn with_shared(mut self, shared: Arc<dyn SharedTokens>) -> Self {
        self.shared = Some(shared);
        self
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

    /// A usable token for the app: the cached one, the one the other instances share, or one
    /// fetched by a single caller (of all instances) while the others wait for it.
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
        let trigger = if app.invalidated.swap(false, Ordering::Relaxed) {
            TokenTrigger::Invalidated
        } else {
            TokenTrigger::Request
        };
        let obtained = match self
            .obtain(appid, app, ON_DEMAND_MARGIN, true, trigger)
            .await?
        {
            Some(obtained) => obtained,
            // Only a caller that does not wait for the fetch lock is ever turned away.
            None => self.fetch(appid, app, trigger).await?,
        };
        Ok(self.with_remaining((obtained.token, obtained.expires_at_ms)))
    }

    /// Under the app's local lock: the other instances' token when it has more than `margin`
    /// left, else one fetched under the cross-instance fetch lock (re-checked once held) and
    /// published to them. Without `wait`, `None` when another instance holds the lock (it
    /// publishes what it fetches). Whatever fails in the shared store leaves this instance to
    /// fetch for itself.
    async fn obtain(
        &self,
        appid: &AppId,
        app: &AppTokens,
        margin: Duration,
        wait: bool,
        trigger: TokenTrigger,
    ) -> Result<Option<Obtained>, WechatError> {
        let Some(shared) = self.shared.as_deref() else {
            return self.fetch(appid, app, trigger).await.map(Some);
        };
        match self.adopt(appid, app, shared, margin).await {
            Ok(Some(adopted)) => return Ok(Some(adopted)),
            Ok(None) => {}
            Err(e) => return self.fetch_alone(appid, app, &e, trigger).await.map(Some),
        }
        let lock = if wait {
            shared.lock_fetch(appid).await.map(Some)
        } else {
            shared.try_lock_fetch(appid).await
        };
        let lock = match lock {
            Ok(Some(lock)) => lock,
            Ok(None) => return Ok(None),
            Err(e) => return self.fetch_alone(appid, app, &e, trigger).await.map(Some),
        };
        // The holder before us may have published a token while we waited.
        let outcome = match self.adopt(appid, app, shared, margin).await {
            Ok(Some(adopted)) => Ok(Some(adopted)),
            Ok(None) => self
                .fetch_and_publish(appid, app, shared, trigger)
                .await
                .map(Some),
            Err(e) => self.fetch_alone(appid, app, &e, trigger).await.map(Some),
        };
        lock.release().await;
        outcome
    }

    /// Takes the shared token as this instance's copy if it has more than `margin` left.
    async fn adopt(
        &self,
        appid: &AppId,
        app: &AppTokens,
        shared: &dyn SharedTokens,
        margin: Duration,
    ) -> Result<Option<Obtained>, SharedTokensError> {
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        let Some(found) = shared.load(appid).await? else {
            return Ok(None);
        };
        if found.expires_at_ms.saturating_sub(margin_ms) <= self.clock.unix_millis() {
            return Ok(None);
        }
        *app.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            token: found.token.clone(),
            expires_at_ms: found.expires_at_ms,
        });
        tracing::debug!(appid = %appid, "adopted the WeChat access token the instances share");
        Ok(Some(Obtained {
            token: found.token,
            expires_at_ms: found.expires_at_ms,
            fetched: false,
        }))
    }

    async fn fetch_and_publish(
        &self,
        appid: &AppId,
        app: &AppTokens,
        shared: &dyn SharedTokens,
        trigger: TokenTrigger,
    ) -> Result<Obtained, WechatError> {
        let obtained = self.fetch(appid, app, trigger).await?;
        let published = SharedToken {
            token: obtained.token.clone(),
            expires_at_ms: obtained.expires_at_ms,
        };
        if let Err(e) = shared.store(appid, &published).await {
            tracing::warn!(appid = %appid, error = %e, "cannot share the new WeChat access token; other instances fetch their own");
        }
        Ok(obtained)
    }

    /// Fail open: without the shared store, this instance fetches for itself. In classic mode
    /// that replaces the other instances' token (they refetch on 40001 after WeChat's 5-minute
    /// overlap); not fetching would fail every call that needs a token.
    async fn fetch_alone(
        &self,
        appid: &AppId,
        app: &AppTokens,
        cause: &SharedTokensError,
        trigger: TokenTrigger,
    ) -> Result<Obtained, WechatError> {
        tracing::warn!(appid = %appid, error = %cause, "shared state unusable: fetching the WeChat access token on this instance alone");
        self.fetch(appid, app, trigger).await
    }

    /// Fetches and caches a new token, and counts the fetch. The caller holds the app's refresh
    /// lock.
    async fn fetch(
        &self,
        appid: &AppId,
        app: &AppTokens,
        trigger: TokenTrigger,
    ) -> Result<Obtained, WechatError> {
        let issued = match self.mode {
            TokenMode::Stable => {
                self.client
                    .get_stable_access_token(appid, &app.secret, false)
                    .await
            }
            TokenMode::Classic => self.client.get_access_token(appid, &app.secret).await,
        };
        self.client
            .metrics()
            .access_token_refresh(appid.as_str(), trigger, issued.is_ok());
        let issued = issued.inspect_err(|e| {
            tracing::warn!(
                appid = %appid,
                trigger = ?trigger,
                errcode = e.errcode(),
                rid = e.rid(),
                error = %e,
                "cannot fetch a WeChat access token"
            );
        })?;
        let expires_in_ms = i64::try_from(issued.expires_in.as_millis()).unwrap_or(i64::MAX);
        let expires_at_ms = self.clock.unix_millis().saturating_add(expires_in_ms);
        let mut cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
        *cached = Some(Cached {
            token: issued.token.clone(),
            expires_at_ms,
        });
        tracing::info!(appid = %appid, expires_in_s = issued.expires_in.as_secs(), "fetched a WeChat access token");
        Ok(Obtained {
            token: issued.token,
            expires_at_ms,
            fetched: true,
        })
    }

    /// Renews every cached token that is in its last 5 minutes, one app after the other, under the
    /// same single-flight locks as requests. Tokens nobody asked for yet are not fetched. Returns how
    /// many this instance fetched; failures are logged and retried at the next check (the old
    /// token still works, and requests fall back to fetching themselves near the very end).
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

    /// Renews the app's token if it is still due once the single-flight lock is held: adopts the
    /// token another instance renewed, or fetches it under the fetch lock unless another instance
    /// holds it. True when this instance fetched; false when a request or another instance
    /// renewed it, or the fetch failed (logged).
    pub async fn renew_if_due(&self, appid: &AppId) -> bool {
        let Ok(app) = self.app(appid) else {
            return false;
        };
        let _guard = app.refresh.lock().await;
        if self.cached_with_margin(app, PROACTIVE_MARGIN).is_some() {
            return false;
        }
        match self
            .obtain(appid, app, PROACTIVE_MARGIN, false, TokenTrigger::Proactive)
            .await
        {
            Ok(obtained) => obtained.is_some_and(|o| o.fetched),
            Err(e) => {
                tracing::warn!(appid = %appid, errcode = e.errcode(), rid = e.rid(), error = %e, "proactive access-token refresh failed; will retry");
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

    /// Forgets `rejected` if it is still the cached token, here and in the shared store; a token
    /// someone else already replaced is left alone, so concurrent rejections (on any instance)
    /// cause one refresh. Another instance keeps its copy until WeChat rejects it there too; it
    /// then adopts the replacement.
    pub async fn invalidate(&self, appid: &AppId, rejected: &AccessToken) {
        let Ok(app) = self.app(appid) else {
            return;
        };
        // Under the app's lock, so that no request adopts the rejected token again in between.
        let _guard = app.refresh.lock().await;
        {
            let mut cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
            if cached.as_ref().is_some_and(|c| &c.token == rejected) {
                *cached = None;
                app.invalidated.store(true, Ordering::Relaxed);
                tracing::info!(appid = %appid, "dropped a WeChat access token that WeChat rejected");
            }
        }
        if let Some(shared) = &self.shared {
            match shared.remove_if_current(appid, rejected).await {
                Ok(true) => {
                    tracing::info!(appid = %appid, "dropped the rejected WeChat access token from the shared state");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(appid = %appid, error = %e, "cannot drop the rejected WeChat access token from the shared state");
                }
            }
        }
    }

    /// Takes the token the instances share as this instance's copy, when it is another one with
    /// time left: an operator replaced it (`wxlogin wechat access-token refresh`). Never calls
    /// WeChat; true when the copy changed.
    pub async fn adopt_published(&self, appid: &AppId) -> bool {
        let (Ok(app), Some(shared)) = (self.app(appid), self.shared.as_deref()) else {
            return false;
        };
        let _guard = app.refresh.lock().await;
        let found = match shared.load(appid).await {
            Ok(Some(found)) if found.expires_at_ms > self.clock.unix_millis() => found,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(appid = %appid, error = %e, "cannot read the replaced WeChat access token; keeping this instance's copy");
                return false;
            }
        };
        let mut cached = app.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_some_and(|c| c.token == found.token) {
            return false;
        }
        *cached = Some(Cached {
            token: found.token,
            expires_at_ms: found.expires_at_ms,
        });
        tracing::info!(appid = %appid, "adopted the WeChat access token an operator replaced");
        true
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
            tokens.invalidate(appid, &token).await;
            let fresh = tokens.get(appid).await?;
            call(fresh).await
        }
        other => other,
    }
}
