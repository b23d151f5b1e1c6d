//! Reading the layers and resolving secrets. Sections with a secret are first read into a raw form
//! (`x` and `x_file` side by side), then resolved into the typed settings.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use super::{
    AdminSettings, AppSettings, AuditSettings, ConfigError, DatabaseSettings, GatewaySettings,
    IdentityHeaderSettings, LogSettings, MetricsSettings, RedisSettings, Registration,
    RetentionSettings, SecuritySettings, ServerSettings, ServiceSettings, Settings, TokenSettings,
    WechatSettings, rate_limits::RawRateLimits, validate,
};
use crate::crypto::SealingKey;
use crate::domain::{AppId, AppSecret, InvalidSecret, ServiceSecret};

/// Raw structs carry secrets as plain strings, so they derive no `Debug`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSettings {
    server: ServerSettings,
    database: DatabaseSettings,
    redis: RawRedis,
    security: RawSecurity,
    tokens: TokenSettings,
    wechat: WechatSettings,
    apps: Vec<RawApp>,
    services: Vec<RawService>,
    log: LogSettings,
    identity_headers: IdentityHeaderSettings,
    gateway: GatewaySettings,
    rate_limits: RawRateLimits,
    metrics: MetricsSettings,
    admin: AdminSettings,
    audit: AuditSettings,
    retention: RetentionSettings,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSecurity {
    sealing_key: Option<String>,
    sealing_key_file: Option<PathBuf>,
    previous_sealing_keys: Vec<String>,
    previous_sealing_keys_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRedis {
    url: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
    key_prefix: String,
    connect_timeout_ms: u64,
    response_timeout_ms: u64,
}

impl Default for RawRedis {
    fn default() -> Self {
        let defaults = RedisSettings::default();
        Self {
            url: defaults.url,
            password: None,
            password_file: None,
            key_prefix: defaults.key_prefix,
            connect_timeout_ms: defaults.connect_timeout_ms,
            response_timeout_ms: defaults.response_timeout_ms,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    appid: AppId,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    #[serde(default)]
    registration: Registration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    client_id: String,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    scopes: Option<Vec<super::ServiceScope>>,
}

pub(super) fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    load_over(Figment::new(), file)
}

/// As `load`, over a base layer of the caller's instead of the bare defaults (`wxlogin dev`).
pub(super) fn load_over_table(
    base: toml::Table,
    file: Option<&Path>,
) -> Result<Settings, ConfigError> {
    load_over(
        Figment::from(figment::providers::Serialized::defaults(base)),
        file,
    )
}

fn load_over(mut figment: Figment, file: Option<&Path>) -> Result<Settings, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        check_syntax(&path.display().to_string(), &text)?;
        // From the file rather than the text read above, so that errors name the file.
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = Env::prefixed("WXLOGIN_")
        .filter(|key| key.as_str().contains("__"))
        .split("__");
    extract(&figment.merge(env))
}

pub(super) fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
    check_syntax("the TOML text", text)?;
    extract(&Figment::from(Toml::string(text)))
}

/// figment's TOML errors quote the offending line, which may hold a secret: report the position.
fn check_syntax(origin: &str, text: &str) -> Result<(), ConfigError> {
    let Err(e) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let offset = e.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        reason: e.message().to_owned(),
    })
}

fn extract(figment: &Figment) -> Result<Settings, ConfigError> {
    let raw: RawSettings = figment
        .extract()
        .map_err(|e| ConfigError::from_figment(e, figment))?;
    let settings = resolve(raw)?;
    validate::validate(&settings)?;
    Ok(settings)
}

fn resolve(raw: RawSettings) -> Result<Settings, ConfigError> {
    let sealing_key = secret_text(
        "security.sealing_key",
        raw.security.sealing_key,
        raw.security.sealing_key_file,
    )?
    .map(|text| SealingKey::parse(&text).map_err(|e| invalid_secret("security.sealing_key", e)))
    .transpose()?;
    let sealing_key = with_previous_sealing_keys(
        sealing_key,
        raw.security.previous_sealing_keys,
        raw.security.previous_sealing_keys_file,
    )?;

    let redis = RedisSettings {
        password: secret_text(
            "redis.password",
            raw.redis.password,
            raw.redis.password_file,
        )?
        .filter(|password| !password.is_empty()),
        url: raw.redis.url,
        key_prefix: raw.redis.key_prefix,
        connect_timeout_ms: raw.redis.connect_timeout_ms,
        response_timeout_ms: raw.redis.response_timeout_ms,
    };

    let mut apps = Vec::with_capacity(raw.apps.len());
    for (i, app) in raw.apps.into_iter().enumerate() {
        let key = format!("apps[{i}].secret");
        let secret = secret_text(&key, app.secret, app.secret_file)?
            .ok_or_else(|| ConfigError::invalid(&key, "is required (or secret_file)"))?;
        apps.push(AppSettings {
            appid: app.appid,
            secret: AppSecret::parse(secret).map_err(|e| invalid_secret(&key, e))?,
            registration: app.registration,
        });
    }

    let mut services = Vec::with_capacity(raw.services.len());
    for (i, service) in raw.services.into_iter().enumerate() {
        let key = format!("services[{i}].client_secret");
        let secret = secret_text(&key, service.client_secret, service.client_secret_file)?
            .ok_or_else(|| ConfigError::invalid(&key, "is required (or client_secret_file)"))?;
        let (scopes, scopes_listed) = super::scopes::resolve(service.scopes);
        services.push(ServiceSettings {
            client_id: service.client_id,
            client_secret: ServiceSecret::parse(secret).map_err(|e| invalid_secret(&key, e))?,
            scopes,
            scopes_listed,
        });
    }

    Ok(Settings {
        server: raw.server,
        database: raw.database,
        redis,
        security: SecuritySettings { sealing_key },
        tokens: raw.tokens,
        wechat: raw.wechat,
        apps,
        services,
        log: raw.log,
        identity_headers: raw.identity_headers,
        gateway: raw.gateway,
        rate_limits: raw.rate_limits.resolve()?,
        metrics: raw.metrics,
        admin: raw.admin,
        audit: raw.audit,
        retention: raw.retention,
    })
}

/// The one rule for every secret: inline or `<key>_file` (whose content is trimmed, as files end
/// with a newline), not both.
fn secret_text(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::SecretTwice {
            key: key.to_owned(),
        }),
        (Some(text), None) => Ok(Some(text)),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(e) => Err(ConfigError::SecretFile {
                key: key.to_owned(),
                path,
                reason: e.to_string(),
            }),
        },
        (None, None) => Ok(None),
    }
}

/// The keys of `security.previous_sealing_keys` (inline, or one per line of the file) open what
/// they sealed; the current key seals.
fn with_previous_sealing_keys(
    current: Option<SealingKey>,
    inline: Vec<String>,
    file: Option<PathBuf>,
) -> Result<Option<SealingKey>, ConfigError> {
    const KEY: &str = "security.previous_sealing_keys";
    let texts: Vec<String> = match (inline.is_empty(), file) {
        (false, Some(_)) => {
            return Err(ConfigError::SecretTwice {
                key: KEY.to_owned(),
            });
        }
        (_, Some(path)) => secret_text(KEY, None, Some(path))?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect(),
        (_, None) => inline,
    };
    if texts.is_empty() {
        return Ok(current);
    }
    let Some(current) = current else {
        return Err(ConfigError::invalid(
            KEY,
            "needs security.sealing_key (or sealing_key_file): the previous keys only open, the \
             current one seals",
        ));
    };
    let mut previous = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let key = SealingKey::parse(text).map_err(|e| invalid_secret(&format!("{KEY}[{i}]"), e))?;
        previous.push(key);
    }
    Ok(Some(current.with_previous(previous)))
}

fn invalid_secret(key: &str, e: InvalidSecret) -> ConfigError {
    ConfigError::invalid(key, e.reason)
}
