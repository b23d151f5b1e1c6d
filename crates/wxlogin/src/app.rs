//! The composition root: builds the server from settings (the one place that names the concrete
//! store and shared-state implementations), binds, and runs until stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::http::Gateway;
use crate::metrics::Metrics;
use crate::services::wechat_tokens::SharedAccessTokens;
use crate::shared::memory::MemoryState;
use crate::shared::redis::RedisState;
use crate::shared::{CodeExchanges, RateLimits, SessionCache, SharedError, SharedState};
use crate::state::{AppEntry, AppParts, AppState};
use crate::store::{MeteredStore, PostgresStore, SqliteStore, Store};
use crate::tokens::{AccessTokenSettings, KeyringError, KeyringReloader, TokenService};
use crate::wechat::{AccessTokens, WechatClient};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Opening or migrating the database failed; the URL is shown with its password redacted.
    #[error("database {url}: {message}")]
    Database { url: String, message: String },
    #[error("WeChat client: {0}")]
    Wechat(#[from] crate::wechat::WechatError),
    #[error("signing keys: {0}")]
    Keys(String),
    /// Redis did not answer at start; the URL is shown with its password redacted.
    #[error("redis {url}: {message}")]
    Redis { url: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The database's failure as an operator needs it: which database (password redacted) and the
/// driver's cause (with any password it might quote removed).
fn database_error(url: &str, error: &dyn std::fmt::Display) -> StartError {
    StartError::Database {
        url: crate::config::redact_url_password(url),
        message: crate::config::scrub_url_secrets(&error.to_string(), url),
    }
}

/// Opens the configured database and applies its migrations (serialised between instances that
/// start together).
pub async fn open_migrated_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    let store = open_store(settings).await?;
    store
        .migrate()
        .await
        .map_err(|e| database_error(&settings.database_url(), &e))?;
    Ok(store)
}

/// Opens the configured database (SQLite file or PostgreSQL URL).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    let url = settings.database_url();
    let pool = crate::store::PoolSizing {
        max_connections: settings.database.max_connections,
        acquire_timeout: Duration::from_millis(settings.database.acquire_timeout_ms),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect_pooled(&url, pool)
            .await
            .map_err(|e| database_error(&url, &e))?;
        Ok(Arc::new(store))
    } else {
        let path = std::path::Path::new(
            url.strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(&url),
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StartError::Config(format!("cannot create {}: {e}", dir.display())))?;
        }
        let store = SqliteStore::connect_pooled(path, pool)
            .await
            .map_err(|e| database_error(&url, &e))?;
        Ok(Arc::new(store))
    }
}

/// Redis when configured (every instance then sees the same claims, leases, events, rate limits and
/// values), else memory, which is right for one instance only.
pub(crate) async fn open_shared_state(
    settings: &Settings,
    clock: SharedClock,
) -> Result<SharedState, StartError> {
    if !settings.redis.enabled() {
        let url = settings.database_url();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            tracing::warn!(
                "PostgreSQL without [redis]: the shared state (login-code claims, leases, \
                 revocation events) stays in this process, so only one instance is safe; set \
                 redis.url to run several"
            );
        }
        return Ok(SharedState::from_one(Arc::new(MemoryState::new(clock))));
    }
    let redis = RedisState::connect(&settings.redis).await.map_err(
        |SharedError::Unavailable(message)| StartError::Redis {
            url: crate::config::redact_url_password(&settings.redis.url),
            message,
        },
    )?;
    tracing::info!(
        url = %crate::config::redact_url_password(&settings.redis.url),
        key_prefix = %settings.redis.key_prefix,
        "shared state in Redis"
    );
    Ok(SharedState::from_one(Arc::new(redis)))
}

impl From<KeyringError> for StartError {
    fn from(e: KeyringError) -> Self {
        match e {
            KeyringError::Store(e) => Self::Store(e),
            KeyringError::Keys(e) => Self::Keys(e),
        }
    }
}

/// Connects and migrates the store, imports this instance's avatar files from before avatars were
/// kept in the database, loads (or creates) the signing keys, and prepares the shared state and the
/// WeChat client.
pub async fn build_state(settings: Settings, clock: SharedClock) -> Result<AppState, StartError> {
    let sealing = settings.security.sealing_key.clone().ok_or_else(|| {
        StartError::Config("security.sealing_key (or security.sealing_key_file) is required".into())
    })?;
    let metrics = Metrics::new(settings.apps.iter().map(|app| app.appid.as_str()));
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(
        open_migrated_store(&settings).await?,
        metrics.clone(),
    ));
    // Each instance holds the avatar files it received before avatars moved to the database.
    crate::services::avatar_files::import(store.as_ref(), &settings, clock.unix_millis()).await?;
    let keyring = crate::tokens::load_or_create(
        store.as_ref(),
        &sealing,
        settings.tokens.algorithm,
        clock.unix_millis(),
        settings.tokens.key_linger(),
    )
    .await?;
    let tokens = TokenService::new(
        AccessTokenSettings {
            issuer: settings.issuer(),
            audience: settings.tokens.audience.clone(),
            ttl: Duration::from_secs(settings.tokens.access_ttl_secs),
            alg: settings.tokens.algorithm,
            leeway: Duration::from_secs(settings.tokens.leeway_secs),
        },
        keyring,
    );
    let keys = KeyringReloader::new(
        store.clone(),
        sealing.clone(),
        settings.tokens.algorithm,
        tokens.clone(),
        clock.clone(),
    );
    let wechat = WechatClient::new(&settings.wechat_client_config())?.with_metrics(metrics.clone());
    let apps: HashMap<_, _> = settings
        .apps
        .iter()
        .map(|app| {
            let entry = AppEntry {
                secret: app.secret.clone(),
                registration: app.registration,
            };
            (app.appid.clone(), entry)
        })
        .collect();
    let shared = open_shared_state(&settings, clock.clone())
        .await?
        .metered(&metrics);
    let shared_tokens = SharedAccessTokens::new(shared.clone(), sealing.clone(), clock.clone());
    let wechat_tokens = AccessTokens::new(
        wechat.clone(),
        clock.clone(),
        settings.wechat.token_mode,
        apps.iter()
            .map(|(id, app)| (id.clone(), app.secret.clone())),
    )
    .with_shared(Arc::new(shared_tokens));
    let rate_limits = RateLimits::new(
        settings.rate_limits.clone(),
        shared.limiter.clone(),
        clock.clone(),
    );
    let sessions = Arc::new(SessionCache::new(settings.tokens.session_cache_ms));
    Ok(AppState::new(AppParts {
        settings: Arc::new(settings),
        clock,
        store,
        code_exchanges: CodeExchanges::new(shared.claims.clone()),
        rate_limits,
        sessions,
        shared,
        wechat,
        wechat_tokens,
        tokens,
        keys,
        sealing,
        apps: Arc::new(apps),
        metrics,
    }))
}

/// A bound server: build, learn the port, run until a shutdown signal.
pub struct Application {
    listener: tokio::net::TcpListener,
    /// `metrics.listen`, when set.
    metrics_listener: Option<tokio::net::TcpListener>,
    /// `admin.listen`, when set.
    admin_listener: Option<tokio::net::TcpListener>,
    state: AppState,
    gateway: Option<Arc<Gateway>>,
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartError> {
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            config = %settings.to_redacted_json(),
            "wxlogin starting"
        );
        for warning in crate::config::unlisted_scope_warnings(&settings.services) {
            tracing::warn!("{warning}");
        }
        let addr = settings.server.listen;
        let metrics_addr = settings.metrics.listen;
        let admin_addr = settings.admin.listen;
        let gateway = Gateway::new(&settings.gateway)
            .map_err(StartError::Config)?
            .map(Arc::new);
        let state = build_state(settings, clock).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics_listener = match metrics_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let admin_listener = match admin_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            metrics_listener,
            admin_listener,
            state,
            gateway,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.settings.server.listen)
    }

    /// Where `GET /metrics` is served; `None` when `metrics.listen` is off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Where the admin console is served; `None` when `admin.listen` is off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to
    /// `server.shutdown_grace_ms`). Connections are bounded as `[server]` says
    /// (`crate::http::serve`); each request carries the peer's `ConnectInfo<SocketAddr>`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = crate::http::Limits::new(
            &self.state.settings.server,
            self.state.settings.database.max_connections as usize,
        );
        let refresher = crate::services::wechat_tokens::spawn_refresher(
            self.state.clone(),
            Duration::from_millis(self.state.settings.wechat.token_refresh_check_ms),
        );
        let _stop_refresher = AbortOnDrop(refresher);
        let key_reloads = self.state.keys.spawn_periodic(Duration::from_secs(
            self.state.settings.tokens.keyring_reload_secs,
        ));
        let _stop_key_reloads = AbortOnDrop(key_reloads);
        let key_announcements = crate::services::signing_keys::spawn_reload_on_announcement(
            &self.state.shared,
            self.state.keys.clone(),
        );
        let _stop_key_announcements = AbortOnDrop(key_announcements);
        let session_invalidator =
            crate::shared::spawn_invalidator(&self.state.shared, self.state.sessions.clone());
        let _stop_session_invalidator = AbortOnDrop(session_invalidator);
        let token_adoptions = crate::services::wechat_tokens::spawn_adopt_on_announcement(
            &self.state.shared,
            self.state.wechat_tokens.clone(),
        );
        let _stop_token_adoptions = AbortOnDrop(token_adoptions);
        let _stop_purger =
            AbortOnDrop(crate::services::retention::spawn_purger(self.state.clone()));
        let _stop_metrics = self.metrics_listener.map(|listener| {
            AbortOnDrop(tokio::spawn(crate::http::serve_metrics(
                listener,
                self.state.clone(),
            )))
        });
        let _stop_admin = self.admin_listener.map(|listener| {
            AbortOnDrop(tokio::spawn(crate::admin::serve(
                listener,
                self.state.clone(),
            )))
        });
        let router = crate::http::router(self.state, self.gateway);
        crate::http::serve(self.listener, router, limits, shutdown).await
    }
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
