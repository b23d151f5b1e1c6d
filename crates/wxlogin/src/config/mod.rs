//! Settings, layered: built-in defaults → an optional TOML file → `WXLOGIN_*` environment variables
//! (`__` nests) → command-line flags (applied by the caller on the result). Every secret can be given
//! inline or as a `*_file` path, so that it can come from a container secret instead of the file or
//! the environment. `docs/configuration.md` is the user's guide; `config/wxlogin.example.toml` lists
//! every key.

mod error;
mod load;
mod rate_limits;
mod redact;
mod retention;
mod scopes;
mod trusted_proxies;
mod validate;

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod example_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::ConfigError;
pub use rate_limits::{
    EndpointLimits, LimitScope, LimitedEndpoint, MAX_RATE_COUNT, Rate, RateLimitSettings,
};
pub(crate) use redact::{redact_url_password, scrub_url_secrets};
pub use retention::{AuditSettings, RetentionSettings};
pub use scopes::{ServiceScope, unlisted_scope_warnings};
pub use trusted_proxies::TrustedProxy;

use crate::crypto::SealingKey;
use crate::domain::{AppId, AppSecret, ServiceSecret};
use crate::tokens::SigningAlg;
use crate::wechat::{ClientConfig, RetryPolicy, TokenMode};

/// The whole configuration, resolved: secrets read from their files and every value validated.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub security: SecuritySettings,
    pub tokens: TokenSettings,
    pub wechat: WechatSettings,
    pub apps: Vec<AppSettings>,
    pub services: Vec<ServiceSettings>,
    pub log: LogSettings,
    pub identity_headers: IdentityHeaderSettings,
    pub gateway: GatewaySettings,
    pub rate_limits: RateLimitSettings,
    pub metrics: MetricsSettings,
    pub admin: AdminSettings,
    pub audit: AuditSettings,
    pub retention: RetentionSettings,
}

/// The Prometheus metrics listener (`GET /metrics`, `docs/operations.md`, "Monitoring").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where `GET /metrics` is served, apart from the API; `None` (an empty string in the file or
    /// the environment) turns the listener off. Keep it off the public internet.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        }
    }
}

/// The admin console's listener and sign-in rules (`docs/admin.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Where the console is served, apart from the API; `None` (the default, or an empty string)
    /// turns it off. Keep it on loopback or a private address.
    #[serde(deserialize_with = "optional_addr")]
    pub listen: Option<SocketAddr>,
    /// A console session ends after this long without a request (60 to 86400).
    pub session_idle_secs: u64,
    /// Failed sign-ins (password or TOTP code) in a row that lock an administrator out (1 to 100).
    pub max_failed_sign_ins: u32,
    /// How long a lockout lasts (1 to 86400); `wxlogin admins reset-password` lifts it earlier.
    pub lockout_secs: u64,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            listen: None,
            session_idle_secs: 1800,
            max_failed_sign_ins: 5,
            lockout_secs: 900,
        }
    }
}

/// An address, or an empty string for none.
fn optional_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an address with a port (e.g. \"127.0.0.1:9090\"), nor empty for off"
        ))
    })
}

/// One identity header of forward auth (`GET /v1/auth/verify`) and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityHeader {
    /// `X-WX-User-Id`
    UserId,
    /// `X-WX-AppId`
    Appid,
    /// `X-WX-OpenId`
    Openid,
    /// `X-WX-UnionId` (only when WeChat gave one)
    Unionid,
    /// `X-WX-Session-Id`
    SessionId,
}

impl IdentityHeader {
    pub const ALL: [Self; 5] = [
        Self::UserId,
        Self::Appid,
        Self::Openid,
        Self::Unionid,
        Self::SessionId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::Appid => "appid",
            Self::Openid => "openid",
            Self::Unionid => "unionid",
            Self::SessionId => "session_id",
        }
    }

    /// The HTTP header name.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::UserId => "x-wx-user-id",
            Self::Appid => "x-wx-appid",
            Self::Openid => "x-wx-openid",
            Self::Unionid => "x-wx-unionid",
            Self::SessionId => "x-wx-session-id",
        }
    }
}

/// Which identity headers forward auth and the gateway set (all by default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaderSettings {
    pub include: Vec<IdentityHeader>,
}

impl Default for IdentityHeaderSettings {
    fn default() -> Self {
        Self {
            include: IdentityHeader::ALL.to_vec(),
        }
    }
}

/// The built-in gateway: requests under a route's prefix are forwarded to its upstream with the
/// caller's identity headers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Connection timeout to an upstream, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time limit for an upstream to start answering (and for each read of its body), in ms.
    pub timeout_ms: u64,
    pub routes: Vec<GatewayRoute>,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            timeout_ms: 30_000,
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    /// A path prefix, e.g. `/api/`; matched on whole path segments, the longest prefix wins.
    pub prefix: String,
    /// `http://` or `https://` base URL of the business server.
    pub upstream: String,
    #[serde(default)]
    pub auth: RouteAuth,
    /// Forward the client's `Authorization` header too (removed by default).
    #[serde(default)]
    pub pass_authorization: bool,
    /// Remove the prefix from the forwarded path (`/api/orders` → `/orders`).
    #[serde(default)]
    pub strip_prefix: bool,
}

/// Whether a gateway route needs a signed-in caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    /// A valid access token, else 401 (the upstream is not called).
    #[default]
    Required,
    /// Identity headers when a valid token came; none without a token; 401 for an invalid one.
    Optional,
    /// No token checked; identity headers are never set (and a client's are still removed).
    None,
}

impl RouteAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The base URL clients and other services see (behind a proxy it differs from `listen`).
    pub public_url: Option<String>,
    pub request_timeout_ms: u64,
    pub body_limit_bytes: usize,
    pub data_dir: PathBuf,
    pub shutdown_grace_ms: u64,
    /// Largest accepted avatar upload (the image itself), in bytes.
    pub avatar_max_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed (none by default: the TCP peer is the
    /// client).
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Lets `serve` run with a `public_url` that is not https or names a loopback address (token
    /// issuer and avatar URLs then point there): for tests and local staging only.
    pub allow_insecure_public_url: bool,
    /// A connection must deliver a complete request head (request line and headers) this long
    /// after it opens or after it starts a new request, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection without a request in progress is closed after this long, in
    /// milliseconds.
    pub idle_timeout_ms: u64,
    /// Open client connections at most; beyond it new connections get a 503 and are closed.
    pub max_connections: usize,
    /// Largest accepted request head (request line and headers), in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Longest accepted request target (path and query), in bytes (414 beyond).
    pub max_uri_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            request_timeout_ms: 10_000,
            body_limit_bytes: 65_536,
            data_dir: PathBuf::from("data"),
            shutdown_grace_ms: 10_000,
            avatar_max_bytes: 2 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            allow_insecure_public_url: false,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
            max_header_bytes: 32_768,
            max_uri_bytes: 8_192,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path`, `sqlite:path`, `postgres://...` or `postgresql://...`; a SQLite file in
    /// `server.data_dir` when absent.
    pub url: Option<String>,
    pub max_connections: u32,
    /// How long a query waits for a pool connection (or a new one to open) before the request
    /// fails with 503, in milliseconds; less than `server.request_timeout_ms`.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            acquire_timeout_ms: 3_000,
        }
    }
}

/// The shared state of several instances (`src/shared/redis.rs`); off while `url` is empty.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:6379/0` or `rediss://...` (TLS); empty: no Redis, the shared state stays in
    /// memory (one instance only).
    pub url: String,
    /// From `password` or `password_file`, put into the URL when connecting; never printed.
    pub password: Option<String>,
    /// Put before every key and the events channel, so deployments can share one Redis.
    pub key_prefix: String,
    /// Time limit to open a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time limit for an answer to one command, in milliseconds.
    pub response_timeout_ms: u64,
}

impl RedisSettings {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            password: None,
            key_prefix: "wxlogin:".into(),
            connect_timeout_ms: 2_000,
            response_timeout_ms: 1_000,
        }
    }
}

/// Passwords shown neither inline in the URL nor from `password`.
impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url_password(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// Seals session keys at rest. Optional here so that `dev` can generate one; `serve` requires it.
    pub sealing_key: Option<SealingKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// The `iss` claim; `server.public_url` when absent.
    pub issuer: Option<String>,
    pub audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// How long an already-rotated refresh token still yields a pair (a response lost on the way).
    pub refresh_grace_secs: u64,
    pub algorithm: SigningAlg,
    pub leeway_secs: u64,
    /// How often, in seconds, the signing keys are reloaded from the database (a key rotated by
    /// another instance or `wxlogin keys rotate`); a token with an unknown kid also triggers one.
    pub keyring_reload_secs: u64,
    /// How long, in milliseconds, an instance trusts what it read of a session (revoked, expired,
    /// user banned) before reading it again; 0 reads it on every request. Logouts, reuse
    /// detection and bans made through wxlogin are applied at once on every instance (revocation
    /// events); this bounds how late a change made behind its back (SQL) or an event lost with
    /// the connection to Redis is honoured.
    pub session_cache_ms: u64,
    /// How long, in seconds, a rotated key is published before it signs (`wxlogin keys rotate`):
    /// long enough for every instance to reload its keyring (`keyring_reload_secs`) and for
    /// verifiers' cached JWKS to expire (the JWKS is served with `max-age=300`).
    pub key_publish_secs: u64,
}

impl TokenSettings {
    /// How long a key stays published after it stopped signing: its last token's lifetime plus
    /// the clock-skew leeway.
    pub fn key_linger(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.access_ttl_secs.saturating_add(self.leeway_secs))
    }

    /// `key_publish_secs` as a duration.
    pub fn key_publish(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.key_publish_secs)
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: "wxlogin".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 2_592_000,
            refresh_grace_secs: 30,
            algorithm: SigningAlg::Es256,
            leeway_secs: 30,
            keyring_reload_secs: 300,
            session_cache_ms: 1_000,
            key_publish_secs: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatSettings {
    pub base_url: String,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub retry: RetryPolicy,
    pub token_mode: TokenMode,
    /// The oldest open data (by its watermark timestamp) `POST /v1/wechat/decrypt` accepts, in
    /// seconds.
    pub open_data_max_age_secs: u64,
    /// How often, in milliseconds, the background refresher looks for access tokens near their
    /// end (it renews them in their last 5 minutes, before any request has to wait).
    pub token_refresh_check_ms: u64,
}

impl Default for WechatSettings {
    fn default() -> Self {
        let client = ClientConfig::default();
        Self {
            base_url: client.base_url,
            connect_timeout_ms: client.connect_timeout_ms,
            timeout_ms: client.timeout_ms,
            retry: client.retry,
            token_mode: TokenMode::default(),
            open_data_max_age_secs: 86_400,
            token_refresh_check_ms: 15_000,
        }
    }
}

/// One mini program served by this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    pub appid: AppId,
    pub secret: AppSecret,
    pub registration: Registration,
}

/// What happens when someone unknown logs in (API.md, "Registration policy").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    #[default]
    Auto,
    PhoneRequired,
    Closed,
}

impl Registration {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::PhoneRequired => "phone_required",
            Self::Closed => "closed",
        }
    }
}

/// A backend service allowed to introspect tokens and use the internal endpoints its scopes name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    pub client_id: String,
    pub client_secret: ServiceSecret,
    /// What it may do, sorted, each once.
    pub scopes: Vec<ServiceScope>,
    /// False when its entry lists no `scopes` (it then has every scope, as before scopes existed).
    pub scopes_listed: bool,
}

impl ServiceSettings {
    /// A credential built in code (tests) with every scope; the secret is checked like a configured
    /// one.
    pub fn new(client_id: &str, client_secret: &str) -> Result<Self, crate::domain::InvalidSecret> {
        Ok(Self {
            client_id: client_id.to_owned(),
            client_secret: ServiceSecret::parse(client_secret)?,
            scopes: ServiceScope::ALL.to_vec(),
            scopes_listed: true,
        })
    }

    /// The same credential with only `scopes`.
    pub fn with_scopes(mut self, scopes: &[ServiceScope]) -> Self {
        (self.scopes, self.scopes_listed) = scopes::resolve(Some(scopes.to_vec()));
        self
    }

    pub fn allows(&self, scope: ServiceScope) -> bool {
        self.scopes.contains(&scope)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `wxlogin=debug,info`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given (it must exist), then the `WXLOGIN_*` variables whose name
    /// contains `__` (`WXLOGIN_SERVER__LISTEN`, `WXLOGIN_SECURITY__SEALING_KEY_FILE`, ...). Variables
    /// without `__` such as `WXLOGIN_LOG` belong to other parts of the program and are ignored.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        load::load(file)
    }

    /// As [`Settings::load`], with `base` between the defaults and the file: `wxlogin dev` puts its
    /// generated settings there, so a file and the environment can still change any of them.
    pub fn load_over(base: toml::Table, file: Option<&Path>) -> Result<Settings, ConfigError> {
        load::load_over_table(base, file)
    }

    /// Only the given TOML over the defaults, without the environment.
    pub fn from_toml_str(s: &str) -> Result<Settings, ConfigError> {
        load::from_toml_str(s)
    }

    /// The externally visible base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.server.listen),
        }
    }

    /// The `iss` of access tokens.
    pub fn issuer(&self) -> String {
        self.tokens
            .issuer
            .clone()
            .unwrap_or_else(|| self.public_url())
    }

    /// The database to connect to; may carry a password, so never log it as is.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("wxlogin.db").display()
            ),
        }
    }

    /// What `wxlogin serve` needs beyond a valid file: a sealing key, at least one app, unique
    /// appids and client_ids, and the real WeChat unless `allow_mock`.
    pub fn check_for_production(&self, allow_mock: bool) -> Result<(), ConfigError> {
        validate::check_for_production(self, allow_mock)
    }

    /// The effective configuration as TOML, every secret replaced by `<redacted>`.
    pub fn to_redacted_toml(&self) -> String {
        redact::to_redacted_toml(self)
    }

    /// The same, as one line of JSON: the summary `serve` and `dev` log at start.
    pub fn to_redacted_json(&self) -> String {
        redact::to_redacted_json(self)
    }

    pub fn wechat_client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.wechat.base_url.clone(),
            connect_timeout_ms: self.wechat.connect_timeout_ms,
            timeout_ms: self.wechat.timeout_ms,
            retry: self.wechat.retry.clone(),
        }
    }
}
