//! The effective configuration for `wxlogin config check`: derived values filled in (public URL,
//! issuer, database URL) and every secret, the database password included, replaced.

use serde::Serialize;

use super::{EndpointLimits, Settings};

const REDACTED: &str = "<redacted>";

// Views rather than `Serialize` on the settings: the printed form differs (effective values,
// redaction), and the settings must not be serializable with their secrets by accident.
#[derive(Serialize)]
struct View {
    server: ServerView,
    database: DatabaseView,
    redis: RedisView,
    security: SecurityView,
    tokens: TokensView,
    wechat: WechatView,
    log: LogView,
    identity_headers: IdentityHeadersView,
    gateway: GatewayView,
    rate_limits: RateLimitsView,
    metrics: MetricsView,
    admin: AdminView,
    audit: super::AuditSettings,
    retention: super::RetentionSettings,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    apps: Vec<AppView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    services: Vec<ServiceView>,
}

#[derive(Serialize)]
struct IdentityHeadersView {
    include: Vec<&'static str>,
}

#[derive(Serialize)]
struct GatewayView {
    connect_timeout_ms: u64,
    timeout_ms: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteView>,
}

#[derive(Serialize)]
struct RouteView {
    prefix: String,
    upstream: String,
    auth: &'static str,
    pass_authorization: bool,
    strip_prefix: bool,
}

#[derive(Serialize)]
struct RateLimitsView {
    login: LimitsView,
    register: LimitsView,
    refresh: LimitsView,
    phone: LimitsView,
    wechat_session: LimitsView,
    introspect: LimitsView,
    service_auth: LimitsView,
}

#[derive(Serialize)]
struct LimitsView {
    per_ip: String,
    per_user: String,
    per_app: String,
}

impl LimitsView {
    fn of(limits: &EndpointLimits) -> Self {
        let [per_ip, per_user, per_app] = limits.shown();
        Self {
            per_ip,
            per_user,
            per_app,
        }
    }
}

#[derive(Serialize)]
struct ServerView {
    listen: String,
    public_url: String,
    request_timeout_ms: u64,
    body_limit_bytes: u64,
    data_dir: String,
    shutdown_grace_ms: u64,
    avatar_max_bytes: u64,
    trusted_proxies: Vec<String>,
    allow_insecure_public_url: bool,
    header_read_timeout_ms: u64,
    idle_timeout_ms: u64,
    max_connections: u64,
    max_header_bytes: u64,
    max_uri_bytes: u64,
}

#[derive(Serialize)]
struct DatabaseView {
    url: String,
    max_connections: u32,
    acquire_timeout_ms: u64,
}

#[derive(Serialize)]
struct RedisView {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
    key_prefix: String,
    connect_timeout_ms: u64,
    response_timeout_ms: u64,
}

#[derive(Serialize)]
struct SecurityView {
    #[serde(skip_serializing_if = "Option::is_none")]
    sealing_key: Option<&'static str>,
    /// Redacted, each with its key id (`wxlogin sealing-key status` counts values by id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    previous_sealing_keys: Vec<String>,
}

#[derive(Serialize)]
struct TokensView {
    issuer: String,
    audience: String,
    access_ttl_secs: u64,
    refresh_ttl_secs: u64,
    refresh_grace_secs: u64,
    algorithm: &'static str,
    leeway_secs: u64,
    keyring_reload_secs: u64,
    session_cache_ms: u64,
    key_publish_secs: u64,
}

#[derive(Serialize)]
struct WechatView {
    base_url: String,
    connect_timeout_ms: u64,
    timeout_ms: u64,
    token_mode: &'static str,
    open_data_max_age_secs: u64,
    token_refresh_check_ms: u64,
    retry: RetryView,
}

#[derive(Serialize)]
struct RetryView {
    max_attempts: u32,
    base_delay_ms: u64,
    max_delay_ms: u64,
}

#[derive(Serialize)]
struct AppView {
    appid: String,
    secret: &'static str,
    registration: &'static str,
}

#[derive(Serialize)]
struct ServiceView {
    client_id: String,
    client_secret: &'static str,
    /// Effective: every scope for an entry that lists none.
    scopes: Vec<&'static str>,
}

#[derive(Serialize)]
struct MetricsView {
    /// Empty when off.
    listen: String,
}

#[derive(Serialize)]
struct AdminView {
    /// Empty when off.
    listen: String,
    session_idle_secs: u64,
    max_failed_sign_ins: u32,
    lockout_secs: u64,
}

#[derive(Serialize)]
struct LogView {
    format: &'static str,
    level: String,
}

pub(super) fn to_redacted_toml(s: &Settings) -> String {
    toml::to_string(&view(s)).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
}

/// The same view on one line (JSON), for the start-up log.
pub(super) fn to_redacted_json(s: &Settings) -> String {
    serde_json::to_string(&view(s))
        .unwrap_or_else(|e| format!("cannot print the configuration: {e}"))
}

fn view(s: &Settings) -> View {
    View {
        server: ServerView {
            listen: s.server.listen.to_string(),
            public_url: s.public_url(),
            request_timeout_ms: s.server.request_timeout_ms,
            body_limit_bytes: s.server.body_limit_bytes as u64,
            data_dir: s.server.data_dir.display().to_string(),
            shutdown_grace_ms: s.server.shutdown_grace_ms,
            avatar_max_bytes: s.server.avatar_max_bytes as u64,
            trusted_proxies: s
                .server
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect(),
            allow_insecure_public_url: s.server.allow_insecure_public_url,
            header_read_timeout_ms: s.server.header_read_timeout_ms,
            idle_timeout_ms: s.server.idle_timeout_ms,
            max_connections: s.server.max_connections as u64,
            max_header_bytes: s.server.max_header_bytes as u64,
            max_uri_bytes: s.server.max_uri_bytes as u64,
        },
        database: DatabaseView {
            url: redact_url_password(&s.database_url()),
            max_connections: s.database.max_connections,
            acquire_timeout_ms: s.database.acquire_timeout_ms,
        },
        redis: RedisView {
            url: redact_url_password(&s.redis.url),
            password: s.redis.password.as_ref().map(|_| REDACTED),
            key_prefix: s.redis.key_prefix.clone(),
            connect_timeout_ms: s.redis.connect_timeout_ms,
            response_timeout_ms: s.redis.response_timeout_ms,
        },
        security: SecurityView {
            sealing_key: s.security.sealing_key.as_ref().map(|_| REDACTED),
            previous_sealing_keys: s
                .security
                .sealing_key
                .as_ref()
                .map(|k| {
                    k.previous_key_ids()
                        .iter()
                        .map(|id| format!("{REDACTED} (key id {id})"))
                        .collect()
                })
                .unwrap_or_default(),
        },
        tokens: TokensView {
            issuer: s.issuer(),
            audience: s.tokens.audience.clone(),
            access_ttl_secs: s.tokens.access_ttl_secs,
            refresh_ttl_secs: s.tokens.refresh_ttl_secs,
            refresh_grace_secs: s.tokens.refresh_grace_secs,
            algorithm: s.tokens.algorithm.as_str(),
            leeway_secs: s.tokens.leeway_secs,
            keyring_reload_secs: s.tokens.keyring_reload_secs,
            session_cache_ms: s.tokens.session_cache_ms,
            key_publish_secs: s.tokens.key_publish_secs,
        },
        wechat: WechatView {
            base_url: s.wechat.base_url.clone(),
            connect_timeout_ms: s.wechat.connect_timeout_ms,
            timeout_ms: s.wechat.timeout_ms,
            token_mode: match s.wechat.token_mode {
                crate::wechat::TokenMode::Stable => "stable",
                crate::wechat::TokenMode::Classic => "classic",
            },
            open_data_max_age_secs: s.wechat.open_data_max_age_secs,
            token_refresh_check_ms: s.wechat.token_refresh_check_ms,
            retry: RetryView {
                max_attempts: s.wechat.retry.max_attempts,
                base_delay_ms: s.wechat.retry.base_delay_ms,
                max_delay_ms: s.wechat.retry.max_delay_ms,
            },
        },
        log: LogView {
            format: s.log.format.as_str(),
            level: s.log.level.clone(),
        },
        identity_headers: IdentityHeadersView {
            include: s
                .identity_headers
                .include
                .iter()
                .map(|h| h.as_str())
                .collect(),
        },
        gateway: GatewayView {
            connect_timeout_ms: s.gateway.connect_timeout_ms,
            timeout_ms: s.gateway.timeout_ms,
            routes: s
                .gateway
                .routes
                .iter()
                .map(|r| RouteView {
                    prefix: r.prefix.clone(),
                    upstream: redact_url_password(&r.upstream),
                    auth: r.auth.as_str(),
                    pass_authorization: r.pass_authorization,
                    strip_prefix: r.strip_prefix,
                })
                .collect(),
        },
        rate_limits: RateLimitsView {
            login: LimitsView::of(&s.rate_limits.login),
            register: LimitsView::of(&s.rate_limits.register),
            refresh: LimitsView::of(&s.rate_limits.refresh),
            phone: LimitsView::of(&s.rate_limits.phone),
            wechat_session: LimitsView::of(&s.rate_limits.wechat_session),
            introspect: LimitsView::of(&s.rate_limits.introspect),
            service_auth: LimitsView::of(&s.rate_limits.service_auth),
        },
        metrics: MetricsView {
            listen: s
                .metrics
                .listen
                .map(|addr| addr.to_string())
                .unwrap_or_default(),
        },
        admin: AdminView {
            listen: s
                .admin
                .listen
                .map(|addr| addr.to_string())
                .unwrap_or_default(),
            session_idle_secs: s.admin.session_idle_secs,
            max_failed_sign_ins: s.admin.max_failed_sign_ins,
            lockout_secs: s.admin.lockout_secs,
        },
        audit: s.audit.clone(),
        retention: s.retention.clone(),
        apps: s
            .apps
            .iter()
            .map(|app| AppView {
                appid: app.appid.to_string(),
                secret: REDACTED,
                registration: app.registration.as_str(),
            })
            .collect(),
        services: s
            .services
            .iter()
            .map(|service| ServiceView {
                client_id: service.client_id.clone(),
                client_secret: REDACTED,
                scopes: service.scopes.iter().map(|s| s.as_str()).collect(),
            })
            .collect(),
    }
}

/// `text` with every password of `url` (its userinfo's, a `password` parameter's, as written and
/// percent-decoded) replaced: for error messages that might quote the URL.
pub(crate) fn scrub_url_secrets(text: &str, url: &str) -> String {
    let mut secrets = Vec::new();
    if let Ok(parsed) = reqwest::Url::parse(url) {
        secrets.extend(parsed.password().map(str::to_owned));
        secrets.extend(
            parsed
                .query_pairs()
                .filter(|(name, _)| name.to_ascii_lowercase().contains("password"))
                .map(|(_, value)| value.into_owned()),
        );
    }
    let decoded: Vec<String> = secrets
        .iter()
        .filter_map(|s| {
            reqwest::Url::parse(&format!("x://u:{s}@h"))
                .ok()
                .and_then(|u| u.password().map(str::to_owned))
        })
        .collect();
    let mut text = text.to_owned();
    for secret in secrets.iter().chain(&decoded).filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), REDACTED);
    }
    text
}

/// `postgres://user:pw@host/db?password=pw` → both passwords replaced.
pub(crate) fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                        format!("{name}={REDACTED}")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}
