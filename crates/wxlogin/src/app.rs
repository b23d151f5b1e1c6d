//! `AppState` and `Application`: build the server from settings, bind, run until stopped. The only
//! place that knows the concrete store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::{Registration, Settings};
use crate::crypto::SealingKey;
use crate::domain::{AppId, AppSecret};
use crate::login::CodeExchanges;
use crate::store::{PostgresStore, SqliteStore, Store};
use crate::tokens::{AccessTokenSettings, TokenService};
use crate::wechat::{AccessTokens, WechatClient};

/// A mini program this server serves.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub secret: AppSecret,
    pub registration: Registration,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    pub store: Arc<dyn Store>,
    pub wechat: WechatClient,
    pub wechat_tokens: AccessTokens,
    pub tokens: TokenService,
    pub sealing: SealingKey,
    pub apps: Arc<HashMap<AppId, AppEntry>>,
    pub code_exchanges: CodeExchanges,
    /// The built-in gateway, when `[[gateway.routes]]` are configured.
    pub gateway: Option<Arc<crate::gateway::Gateway>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("WeChat client: {0}")]
    Wechat(#[from] crate::wechat::WechatError),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the configured database (SQLite file or PostgreSQL URL).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, StartError> {
    let url = settings.database_url();
    let max = settings.database.max_connections;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect_sized(&url, max).await?))
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
        Ok(Arc::new(SqliteStore::connect_sized(path, max).await?))
    }
}

impl AppState {
    /// Connects and migrates the store, loads (or creates) the signing keys, and prepares the
    /// WeChat client.
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartError> {
        let sealing = settings.security.sealing_key.clone().ok_or_else(|| {
            StartError::Config(
                "security.sealing_key (or security.sealing_key_file) is required".into(),
            )
        })?;
        let store = open_store(&settings).await?;
        let gateway = crate::gateway::Gateway::new(&settings.gateway)
            .map_err(StartError::Config)?
            .map(Arc::new);
        store.migrate().await?;
        let keyring = crate::signing_keys::load_or_create(
            store.as_ref(),
            &sealing,
            settings.tokens.algorithm,
            clock.unix_millis(),
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
        let wechat = WechatClient::new(&settings.wechat_client_config())?;
        let apps: HashMap<AppId, AppEntry> = settings
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
        let wechat_tokens = AccessTokens::new(
            wechat.clone(),
            clock.clone(),
            settings.wechat.token_mode,
            apps.iter()
                .map(|(id, app)| (id.clone(), app.secret.clone())),
        );
        let clock_for_exchanges = clock.clone();
        Ok(Self {
            settings: Arc::new(settings),
            clock,
            store,
            wechat,
            wechat_tokens,
            tokens,
            sealing,
            apps: Arc::new(apps),
            code_exchanges: CodeExchanges::new(clock_for_exchanges),
            gateway,
        })
    }

    pub fn now_millis(&self) -> i64 {
        self.clock.unix_millis()
    }

    pub fn now_secs(&self) -> i64 {
        self.clock.unix_secs()
    }
}

/// A bound server: build, learn the port, run until a shutdown signal.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartError> {
        let addr = settings.server.listen;
        let state = AppState::build(settings, clock).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.settings.server.listen)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to
    /// `server.shutdown_grace_ms`).
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = Duration::from_millis(self.state.settings.server.shutdown_grace_ms);
        let refresher = self
            .state
            .wechat_tokens
            .spawn_refresher(Duration::from_millis(
                self.state.settings.wechat.token_refresh_check_ms,
            ));
        let _stop_refresher = AbortOnDrop(refresher);
        let router = crate::http::router(self.state);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(self.listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        });
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            result = &mut server => result,
            () = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; dropping the remaining requests");
                Ok(())
            }
        }
    }
}

/// Stops a background task when the server stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
