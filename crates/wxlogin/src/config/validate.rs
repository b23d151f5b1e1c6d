//! Checks that span keys or that serde cannot express, and the stricter checks of `wxlogin serve`.

use std::collections::HashSet;
use std::net::IpAddr;

use reqwest::Url;

use super::{ConfigError, Settings};
use crate::crypto::SealingKey;

/// Every loaded configuration passes this, `dev` included.
pub(super) fn validate(s: &Settings) -> Result<(), ConfigError> {
    if let Some(url) = &s.server.public_url {
        http_url("server.public_url", url)?;
    }
    positive("server.request_timeout_ms", s.server.request_timeout_ms)?;
    positive("server.body_limit_bytes", s.server.body_limit_bytes as u64)?;
    positive("server.shutdown_grace_ms", s.server.shutdown_grace_ms)?;
    positive("server.avatar_max_bytes", s.server.avatar_max_bytes as u64)?;
    connections(s)?;

    if let Some(url) = &s.database.url {
        database_url(url)?;
    }

    redis(s)?;
    gateway(s)?;
    metrics(s)?;
    admin(s)?;
    super::retention::validate(&s.audit, &s.retention)?;
    positive(
        "database.max_connections",
        s.database.max_connections.into(),
    )?;

    if s.tokens.issuer.as_deref().is_some_and(str::is_empty) {
        return Err(ConfigError::invalid("tokens.issuer", "must not be empty"));
    }
    if s.tokens.audience.is_empty() {
        return Err(ConfigError::invalid("tokens.audience", "must not be empty"));
    }
    tokens(s)?;

    http_url("wechat.base_url", &s.wechat.base_url)?;
    positive("wechat.connect_timeout_ms", s.wechat.connect_timeout_ms)?;
    positive("wechat.timeout_ms", s.wechat.timeout_ms)?;
    positive(
        "wechat.open_data_max_age_secs",
        s.wechat.open_data_max_age_secs,
    )?;
    positive(
        "wechat.token_refresh_check_ms",
        s.wechat.token_refresh_check_ms,
    )?;
    positive(
        "wechat.retry.max_attempts",
        s.wechat.retry.max_attempts.into(),
    )?;
    if s.wechat.retry.base_delay_ms > s.wechat.retry.max_delay_ms {
        return Err(ConfigError::invalid(
            "wechat.retry.base_delay_ms",
            "must not exceed wechat.retry.max_delay_ms",
        ));
    }

    for (i, service) in s.services.iter().enumerate() {
        client_id(&format!("services[{i}].client_id"), &service.client_id)?;
    }
    unique(s)?;

    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&s.log.level) {
        return Err(ConfigError::invalid(
            "log.level",
            format!("is not a valid filter ({e}); try \"info\" or \"wxlogin=debug,info\""),
        ));
    }
    Ok(())
}

/// Bounds of the token settings: a long leeway or access lifetime keeps revoked or stolen tokens
/// usable, and a grace window near the refresh lifetime would switch reuse detection off.
pub(super) const MAX_LEEWAY_SECS: u64 = 300;
pub(super) const MAX_ACCESS_TTL_SECS: u64 = 86_400;
pub(super) const MAX_REFRESH_GRACE_SECS: u64 = 300;
pub(super) const MAX_KEYRING_RELOAD_SECS: u64 = 86_400;
pub(super) const MAX_KEY_PUBLISH_SECS: u64 = 604_800;

fn tokens(s: &Settings) -> Result<(), ConfigError> {
    let t = &s.tokens;
    within(
        "tokens.access_ttl_secs",
        t.access_ttl_secs,
        1,
        MAX_ACCESS_TTL_SECS,
    )?;
    positive("tokens.refresh_ttl_secs", t.refresh_ttl_secs)?;
    within("tokens.leeway_secs", t.leeway_secs, 0, MAX_LEEWAY_SECS)?;
    within(
        "tokens.refresh_grace_secs",
        t.refresh_grace_secs,
        0,
        MAX_REFRESH_GRACE_SECS,
    )?;
    if t.refresh_grace_secs.saturating_mul(2) >= t.refresh_ttl_secs {
        return Err(ConfigError::invalid(
            "tokens.refresh_grace_secs",
            "must be less than half of tokens.refresh_ttl_secs",
        ));
    }
    within(
        "tokens.keyring_reload_secs",
        t.keyring_reload_secs,
        1,
        MAX_KEYRING_RELOAD_SECS,
    )?;
    within(
        "tokens.key_publish_secs",
        t.key_publish_secs,
        0,
        MAX_KEY_PUBLISH_SECS,
    )?;
    // At most a second: logouts and bans must hold on every instance within one.
    within("tokens.session_cache_ms", t.session_cache_ms, 0, 1_000)
}

pub(super) fn check_for_production(s: &Settings, allow_mock: bool) -> Result<(), ConfigError> {
    if s.security.sealing_key.is_none() {
        return Err(ConfigError::NotForProduction {
            key: "security.sealing_key",
            reason:
                "is required: generate 32 random bytes (`openssl rand -base64 32`), store them \
                     in a file and set security.sealing_key_file to its path; keep the key, as \
                     stored session keys cannot be read without it"
                    .into(),
        });
    }
    if s.apps.is_empty() {
        return Err(ConfigError::NotForProduction {
            key: "apps",
            reason: "no mini program is configured: add an [[apps]] entry with appid and \
                     secret_file"
                .into(),
        });
    }
    if s.security
        .sealing_key
        .as_ref()
        .is_some_and(SealingKey::is_low_entropy)
    {
        return Err(ConfigError::NotForProduction {
            key: "security.sealing_key",
            reason: "is not random (one byte repeated, a short pattern, or too few distinct \
                     bytes): generate one with `openssl rand -base64 32`"
                .into(),
        });
    }
    for (i, service) in s.services.iter().enumerate() {
        if service.client_secret.expose_secret().chars().count() < MIN_PRODUCTION_SERVICE_SECRET {
            return Err(ConfigError::NotForProduction {
                key: "services.client_secret",
                reason: format!(
                    "of services[{i}] ({}) is shorter than {MIN_PRODUCTION_SERVICE_SECRET} \
                     characters: generate one with `openssl rand -base64 32`",
                    service.client_id
                ),
            });
        }
    }
    unique(s)?;
    if !allow_mock && is_simulator(&s.wechat.base_url) {
        return Err(ConfigError::NotForProduction {
            key: "wechat.base_url",
            reason: format!(
                "{} is not the real WeChat (not https, or a local address): remove the key to \
                 use https://api.weixin.qq.com, or pass --allow-mock to serve against a simulator",
                s.wechat.base_url
            ),
        });
    }
    if !s.server.allow_insecure_public_url && is_insecure_public_url(&s.public_url()) {
        return Err(ConfigError::NotForProduction {
            key: "server.public_url",
            reason: format!(
                "{} is not https or names a loopback address, yet tokens carry it as their issuer \
                 and avatar URLs point at it: set the https URL clients reach (behind a proxy, \
                 the proxy's), or server.allow_insecure_public_url = true for tests and local \
                 staging",
                s.public_url()
            ),
        });
    }
    Ok(())
}

fn unique(s: &Settings) -> Result<(), ConfigError> {
    let mut appids = HashSet::new();
    for app in &s.apps {
        if !appids.insert(app.appid.as_str()) {
            return Err(ConfigError::Duplicate {
                key: "apps.appid",
                value: app.appid.to_string(),
            });
        }
    }
    let mut client_ids = HashSet::new();
    for service in &s.services {
        if !client_ids.insert(service.client_id.as_str()) {
            return Err(ConfigError::Duplicate {
                key: "services.client_id",
                value: service.client_id.clone(),
            });
        }
    }
    Ok(())
}

/// Service secrets `serve` accepts: 32 characters, as `openssl rand -base64 32` gives 44.
pub(super) const MIN_PRODUCTION_SERVICE_SECRET: usize = 32;

/// Not https, or https to a loopback host: no client elsewhere can use it as the issuer.
fn is_insecure_public_url(public_url: &str) -> bool {
    let Ok(url) = Url::parse(public_url) else {
        return true;
    };
    url.scheme() != "https" || url.host_str().is_none_or(is_loopback_host)
}

/// The simulator is plain http on a local address; anything else that is not https is no
/// production WeChat either.
fn is_simulator(base_url: &str) -> bool {
    let Ok(url) = Url::parse(base_url) else {
        return true;
    };
    if url.scheme() != "https" {
        return true;
    }
    url.host_str().is_none_or(is_loopback_host)
}

fn is_loopback_host(host: &str) -> bool {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            let domain = host.trim_end_matches('.').to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
    }
}

/// The connection limits and the pool's wait: bounded, so that a typo cannot disable them.
fn connections(s: &Settings) -> Result<(), ConfigError> {
    let server = &s.server;
    within(
        "server.header_read_timeout_ms",
        server.header_read_timeout_ms,
        100,
        300_000,
    )?;
    within(
        "server.idle_timeout_ms",
        server.idle_timeout_ms,
        100,
        3_600_000,
    )?;
    within(
        "server.max_connections",
        server.max_connections as u64,
        1,
        1_000_000,
    )?;
    within(
        "server.max_header_bytes",
        server.max_header_bytes as u64,
        1_024,
        1_048_576,
    )?;
    within(
        "server.max_uri_bytes",
        server.max_uri_bytes as u64,
        256,
        65_534,
    )?;
    if server.max_uri_bytes > server.max_header_bytes {
        return Err(ConfigError::invalid(
            "server.max_uri_bytes",
            "must not exceed server.max_header_bytes",
        ));
    }
    within(
        "database.acquire_timeout_ms",
        s.database.acquire_timeout_ms,
        100,
        60_000,
    )?;
    if s.database.acquire_timeout_ms >= server.request_timeout_ms {
        return Err(ConfigError::invalid(
            "database.acquire_timeout_ms",
            "must be less than server.request_timeout_ms",
        ));
    }
    Ok(())
}

/// Redis: a `redis://` or `rediss://` URL when on; its time limits bounded either way, so a typo
/// can neither disable them nor make every request wait for a dead server.
fn redis(s: &Settings) -> Result<(), ConfigError> {
    let redis = &s.redis;
    within(
        "redis.connect_timeout_ms",
        redis.connect_timeout_ms,
        10,
        60_000,
    )?;
    within(
        "redis.response_timeout_ms",
        redis.response_timeout_ms,
        10,
        60_000,
    )?;
    if redis.response_timeout_ms >= s.server.request_timeout_ms {
        return Err(ConfigError::invalid(
            "redis.response_timeout_ms",
            "must be less than server.request_timeout_ms",
        ));
    }
    let prefix = &redis.key_prefix;
    if prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid(
            "redis.key_prefix",
            "must be at most 64 characters without spaces",
        ));
    }
    if !redis.enabled() {
        if redis.password.is_some() {
            return Err(ConfigError::invalid(
                "redis.password",
                "is set but redis.url is empty",
            ));
        }
        return Ok(());
    }
    // Not echoed: the URL may carry a password.
    let url = Url::parse(&redis.url)
        .map_err(|_| ConfigError::invalid("redis.url", "is not a URL (redis://host:6379/0)"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(ConfigError::invalid(
            "redis.url",
            "must start with redis:// or rediss://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid("redis.url", "must name a host"));
    }
    if redis.password.is_some() && url.password().is_some() {
        return Err(ConfigError::invalid(
            "redis.password",
            "is given twice: in redis.url and as redis.password",
        ));
    }
    Ok(())
}

fn within(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::invalid(
            key,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

fn positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be greater than 0"));
    }
    Ok(())
}

/// A base URL to which paths are appended: http(s), a host, no path end slash, query or fragment.
/// Paths the server answers itself: a gateway route there would never be reached, or would shadow
/// the login API.
const OWN_PREFIXES: [&str; 3] = ["/v1/", "/internal/", "/.well-known/"];

fn gateway(s: &Settings) -> Result<(), ConfigError> {
    positive("gateway.connect_timeout_ms", s.gateway.connect_timeout_ms)?;
    positive("gateway.timeout_ms", s.gateway.timeout_ms)?;
    let mut prefixes = HashSet::new();
    for (i, route) in s.gateway.routes.iter().enumerate() {
        let key = format!("gateway.routes[{i}].prefix");
        let prefix = route.prefix.as_str();
        if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) || prefix.contains("//") {
            return Err(ConfigError::invalid(
                &key,
                "must be a path starting with / (e.g. \"/api/\")",
            ));
        }
        // Request paths are normalised before they are matched (http::gateway_path); a prefix that
        // is not normalised itself would never match.
        if prefix.contains(['\\', '%']) || prefix.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(ConfigError::invalid(
                &key,
                "must be a plain path: no . or .. segments, backslashes or percent-escapes",
            ));
        }
        let with_slash = if prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        if OWN_PREFIXES
            .iter()
            .any(|own| with_slash.starts_with(own) || own.starts_with(&with_slash) && prefix != "/")
            || ["/healthz", "/readyz", "/docs", "/openapi.json"].contains(&prefix)
        {
            return Err(ConfigError::invalid(
                &key,
                "overlaps wxlogin's own paths (/v1/, /internal/, /.well-known/, /healthz, /readyz, /docs, /openapi.json)",
            ));
        }
        if !prefixes.insert(with_slash) {
            return Err(ConfigError::invalid(&key, "is listed twice"));
        }
        let key = format!("gateway.routes[{i}].upstream");
        let upstream = route.upstream.trim_end_matches('/');
        http_url(&key, upstream)?;
    }
    Ok(())
}

fn http_url(key: &str, text: &str) -> Result<(), ConfigError> {
    let url =
        Url::parse(text).map_err(|e| ConfigError::invalid(key, format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            key,
            "must start with http:// or https://",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, "must name a host"));
    }
    if text.ends_with('/') {
        return Err(ConfigError::invalid(key, "must not end with a slash"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            key,
            "must not have a query or fragment",
        ));
    }
    Ok(())
}

fn database_url(url: &str) -> Result<(), ConfigError> {
    let rest = ["sqlite://", "sqlite:", "postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(()),
        Some(_) => Err(ConfigError::invalid("database.url", "names no database")),
        // Not echoed: the URL may carry a password.
        None => Err(ConfigError::invalid(
            "database.url",
            "must start with sqlite://, sqlite:, postgres:// or postgresql://",
        )),
    }
}

fn client_id(key: &str, id: &str) -> Result<(), ConfigError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ConfigError::invalid(key, "must be 1 to 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ConfigError::invalid(
            key,
            "may only contain letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(())
}

/// The metrics listener cannot share the API's port.
fn metrics(s: &Settings) -> Result<(), ConfigError> {
    if let Some(addr) = s.metrics.listen
        && addr.port() != 0
        && addr.port() == s.server.listen.port()
        && (addr.ip() == s.server.listen.ip()
            || addr.ip().is_unspecified()
            || s.server.listen.ip().is_unspecified())
    {
        return Err(ConfigError::invalid(
            "metrics.listen",
            "must differ from server.listen (the metrics have a listener of their own)",
        ));
    }
    Ok(())
}

/// The console's listener is its own, and its sign-in rules stay within sense.
fn admin(s: &Settings) -> Result<(), ConfigError> {
    let a = &s.admin;
    if let Some(addr) = a.listen
        && addr.port() != 0
        && [Some(s.server.listen), s.metrics.listen]
            .into_iter()
            .flatten()
            .any(|other| other.port() == addr.port())
    {
        return Err(ConfigError::invalid(
            "admin.listen",
            "must differ from server.listen and metrics.listen (the console has a listener of its own)",
        ));
    }
    if !(60..=86_400).contains(&a.session_idle_secs) {
        return Err(ConfigError::invalid(
            "admin.session_idle_secs",
            "must be 60 to 86400",
        ));
    }
    if !(1..=100).contains(&a.max_failed_sign_ins) {
        return Err(ConfigError::invalid(
            "admin.max_failed_sign_ins",
            "must be 1 to 100",
        ));
    }
    if !(1..=86_400).contains(&a.lockout_secs) {
        return Err(ConfigError::invalid(
            "admin.lockout_secs",
            "must be 1 to 86400",
        ));
    }
    Ok(())
}
