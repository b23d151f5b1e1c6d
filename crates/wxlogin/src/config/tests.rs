use std::net::SocketAddr;

use super::*;

pub(super) const APPID: &str = "wx0000000000000001";
pub(super) const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
pub(super) const SEALING_KEY: &str = "arYA46iEUZBTLEHp2hEJHnud57LnV5bwzc831ytNu2w=";
pub(super) const SERVICE_SECRET: &str = "orders-service-secret-0123456789ab";

/// A configuration `serve` accepts (with an https `server.public_url`, see `production`): sealing
/// key, one app, one service.
fn production_toml() -> String {
    format!(
        r#"
[security]
sealing_key = "{SEALING_KEY}"

[[apps]]
appid = "{APPID}"
secret = "{APP_SECRET}"

[[services]]
client_id = "orders"
client_secret = "{SERVICE_SECRET}"
"#
    )
}

/// `production_toml` with the https public URL `serve` wants.
fn production() -> Settings {
    let mut s = Settings::from_toml_str(&production_toml()).unwrap();
    s.server.public_url = Some("https://login.example.com".into());
    s
}

fn error(toml: &str) -> String {
    match Settings::from_toml_str(toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults() {
    let s = Settings::from_toml_str("").unwrap();
    assert_eq!(s.server, ServerSettings::default());
    assert_eq!(s.server.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
    assert_eq!(s.server.request_timeout_ms, 10_000);
    assert_eq!(s.server.body_limit_bytes, 65_536);
    assert_eq!(s.server.avatar_max_bytes, 2_097_152);
    assert_eq!(s.database.max_connections, 10);
    assert!(s.security.sealing_key.is_none());
    assert_eq!(s.tokens.audience, "wxlogin");
    assert_eq!(s.tokens.access_ttl_secs, 900);
    assert_eq!(s.tokens.refresh_ttl_secs, 2_592_000);
    assert_eq!(s.tokens.refresh_grace_secs, 30);
    assert_eq!(s.tokens.algorithm, SigningAlg::Es256);
    assert_eq!(s.wechat.token_mode, TokenMode::Stable);
    assert_eq!(s.wechat.retry.max_attempts, 3);
    assert_eq!(s.wechat.open_data_max_age_secs, 86_400);
    assert_eq!(s.wechat.token_refresh_check_ms, 15_000);
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.log.level, "info");
    assert!(s.apps.is_empty() && s.services.is_empty());
    assert_eq!(s.public_url(), "http://127.0.0.1:8080");
    assert_eq!(s.issuer(), "http://127.0.0.1:8080");
    assert_eq!(s.database_url(), "sqlite://data/wxlogin.db");
    assert_eq!(s.wechat_client_config(), ClientConfig::default());
}

#[test]
fn toml_overrides_defaults() {
    let s = Settings::from_toml_str(&format!(
        r#"
[server]
listen = "0.0.0.0:9000"
public_url = "https://login.example.com"
data_dir = "/var/lib/wxlogin"

[tokens]
access_ttl_secs = 300
algorithm = "EdDSA"

[wechat]
base_url = "http://127.0.0.1:8081"
token_mode = "classic"

[wechat.retry]
max_attempts = 1

[log]
format = "json"
level = "wxlogin=debug,info"
{}
[[apps]]
appid = "wx0000000000000002"
secret = "{APP_SECRET}"
registration = "phone_required"
"#,
        production_toml()
    ))
    .unwrap();
    assert_eq!(s.server.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
    assert_eq!(s.public_url(), "https://login.example.com");
    assert_eq!(s.issuer(), "https://login.example.com");
    assert_eq!(s.database_url(), "sqlite:///var/lib/wxlogin/wxlogin.db");
    assert_eq!(s.tokens.access_ttl_secs, 300);
    assert_eq!(s.tokens.refresh_ttl_secs, 2_592_000);
    assert_eq!(s.tokens.algorithm, SigningAlg::EdDsa);
    assert_eq!(s.wechat.token_mode, TokenMode::Classic);
    assert_eq!(s.wechat.retry.max_attempts, 1);
    assert_eq!(s.wechat.retry.max_delay_ms, 2_000);
    let client = s.wechat_client_config();
    assert_eq!(client.base_url, "http://127.0.0.1:8081");
    assert_eq!(client.retry.max_attempts, 1);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.apps.len(), 2);
    assert_eq!(s.apps[0].appid.as_str(), APPID);
    assert_eq!(s.apps[0].secret.expose_secret(), APP_SECRET);
    assert_eq!(s.apps[0].registration, Registration::Auto);
    assert_eq!(s.apps[1].registration, Registration::PhoneRequired);
    assert!(s.services[0].client_secret.matches(SERVICE_SECRET));
}

#[test]
fn secret_inline_and_as_file_is_an_error() {
    let e = error(&format!(
        "[security]\nsealing_key = \"{SEALING_KEY}\"\nsealing_key_file = \"k\"\n"
    ));
    assert_eq!(
        e,
        "security.sealing_key and security.sealing_key_file are both set: keep one of them"
    );
    let e = error(&format!(
        "[[apps]]\nappid = \"{APPID}\"\nsecret = \"{APP_SECRET}\"\nsecret_file = \"s\"\n"
    ));
    assert!(e.contains("apps[0].secret and apps[0].secret_file"), "{e}");
    assert!(!e.contains(APP_SECRET));
}

#[test]
fn unreadable_secret_file_names_the_path_not_the_content() {
    let e = error(&format!(
        "[[apps]]\nappid = \"{APPID}\"\nsecret_file = \"/nonexistent/wxlogin/app-secret\"\n"
    ));
    assert!(e.starts_with("apps[0].secret_file: cannot read"), "{e}");
    assert!(e.contains("/nonexistent/wxlogin/app-secret"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-key");
    std::fs::write(&path, "not-a-key-but-a-secret-looking-text\n").unwrap();
    let e = error(&format!(
        "[security]\nsealing_key_file = {:?}\n",
        path.display().to_string()
    ));
    assert!(
        e.starts_with("security.sealing_key: must be 32 bytes"),
        "{e}"
    );
    assert!(!e.contains("secret-looking"), "{e}");
}

#[test]
fn app_and_service_secrets_are_required() {
    let e = error(&format!("[[apps]]\nappid = \"{APPID}\"\n"));
    assert!(e.starts_with("apps[0].secret: is required"), "{e}");
    let e = error("[[services]]\nclient_id = \"orders\"\nclient_secret = \"short\"\n");
    assert!(
        e.contains("services[0].client_secret: must be at least 16"),
        "{e}"
    );
    assert!(!e.contains("short\""));
}

#[test]
fn unknown_keys_in_toml_are_named() {
    let e = error("[server]\nlisten_addr = \"0.0.0.0:1\"\n");
    assert!(e.starts_with("server.listen_addr: unknown key"), "{e}");
    let e = error("[sever]\n");
    assert!(e.starts_with("sever: unknown key"), "{e}");
    let e = error(&format!(
        "[[apps]]\nappid = \"{APPID}\"\nsecret = \"{APP_SECRET}\"\nsecrett = \"x\"\n"
    ));
    assert!(e.starts_with("apps[0].secrett: unknown key"), "{e}");
    let e = error("[wechat.retry]\nattempts = 2\n");
    assert!(e.starts_with("wechat.retry.attempts: unknown key"), "{e}");
}

#[test]
fn bad_values_are_named_without_echoing_them() {
    let e = error("[tokens]\naccess_ttl_secs = \"hunter2-secret\"\n");
    assert!(e.starts_with("tokens.access_ttl_secs: expected"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    // An unquoted value is a syntax error, and the TOML parser's message would quote the line.
    let e = error("[security]\nsealing_key = hunter2-secret\n");
    assert!(e.contains("line 2"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = error("[database]\nurl = \"mysql://root:hunter2@db/x\"\n");
    assert!(e.starts_with("database.url: must start with"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = error("[tokens]\nalgorithm = \"RS256\"\n");
    assert!(
        e.starts_with("tokens.algorithm: unknown value `RS256`"),
        "{e}"
    );
    let e = error("[[apps]]\nappid = \"wx123\"\nsecret = \"x\"\n");
    assert!(e.starts_with("apps[0].appid: appid must be"), "{e}");
}

#[test]
fn ranges_and_urls_are_checked() {
    for (toml, key) in [
        ("[tokens]\naccess_ttl_secs = 0", "tokens.access_ttl_secs"),
        (
            "[tokens]\nrefresh_grace_secs = 2592000",
            "tokens.refresh_grace_secs",
        ),
        (
            "[server]\nrequest_timeout_ms = 0",
            "server.request_timeout_ms",
        ),
        ("[wechat]\ntimeout_ms = 0", "wechat.timeout_ms"),
        (
            "[wechat]\nopen_data_max_age_secs = 0",
            "wechat.open_data_max_age_secs",
        ),
        (
            "[wechat.retry]\nmax_attempts = 0",
            "wechat.retry.max_attempts",
        ),
        ("[server]\navatar_max_bytes = 0", "server.avatar_max_bytes"),
        (
            "[database]\nmax_connections = 0",
            "database.max_connections",
        ),
        (
            "[server]\npublic_url = \"https://a.example/\"",
            "server.public_url",
        ),
        (
            "[server]\npublic_url = \"ftp://a.example\"",
            "server.public_url",
        ),
        (
            "[wechat]\nbase_url = \"api.weixin.qq.com\"",
            "wechat.base_url",
        ),
        ("[log]\nlevel = \"info,[\"", "log.level"),
        (
            "[[services]]\nclient_id = \"a b\"\nclient_secret = \"0123456789abcdef\"",
            "services[0].client_id",
        ),
    ] {
        let e = error(toml);
        assert!(e.starts_with(&format!("{key}: ")), "{toml}: {e}");
    }
    for url in ["sqlite://x.db", "sqlite:x.db", "postgresql://h/db"] {
        Settings::from_toml_str(&format!("[database]\nurl = \"{url}\"")).unwrap();
    }
}

#[test]
fn duplicate_appids_and_client_ids_are_refused() {
    let app = format!("[[apps]]\nappid = \"{APPID}\"\nsecret = \"{APP_SECRET}\"\n");
    let e = error(&format!("{app}{app}"));
    assert_eq!(
        e,
        format!("apps.appid: {APPID} appears more than once; each must be unique")
    );
    let service =
        format!("[[services]]\nclient_id = \"orders\"\nclient_secret = \"{SERVICE_SECRET}\"\n");
    let e = error(&format!("{service}{service}"));
    assert!(
        e.starts_with("services.client_id: orders appears more than once"),
        "{e}"
    );

    let mut s = Settings::from_toml_str(&production_toml()).unwrap();
    s.apps.push(s.apps[0].clone());
    assert!(s.check_for_production(true).is_err());
}

#[test]
fn production_requires_a_sealing_key_and_an_app() {
    let s = production();
    s.check_for_production(false).unwrap();

    let mut no_key = s.clone();
    no_key.security.sealing_key = None;
    let e = no_key.check_for_production(true).unwrap_err().to_string();
    assert!(e.starts_with("security.sealing_key: is required"), "{e}");
    assert!(e.contains("sealing_key_file"), "{e}");

    let mut no_apps = s.clone();
    no_apps.apps.clear();
    let e = no_apps.check_for_production(true).unwrap_err().to_string();
    assert!(e.starts_with("apps: "), "{e}");
}

#[test]
fn production_refuses_a_simulator_unless_allowed() {
    let s = production();
    for url in [
        "http://api.weixin.qq.com",
        "http://127.0.0.1:8081",
        "https://localhost:8443",
        "https://mock.localhost",
        "https://127.0.0.2",
        "https://[::1]:8081",
    ] {
        let mut mock = s.clone();
        mock.wechat.base_url = url.into();
        let e = mock.check_for_production(false).unwrap_err().to_string();
        assert!(e.starts_with("wechat.base_url: "), "{url}: {e}");
        assert!(e.contains("--allow-mock"), "{e}");
        mock.check_for_production(true).unwrap();
    }
    let mut proxy = s.clone();
    proxy.wechat.base_url = "https://wechat-proxy.internal.example".into();
    proxy.check_for_production(false).unwrap();
}

#[test]
fn redacted_toml_shows_no_secret() {
    let s = Settings::from_toml_str(&format!(
        "{}\n[database]\nurl = \"postgres://wx:db-password-1@db:5432/wxlogin?sslmode=require&password=db-password-2\"\n",
        production_toml()
    ))
    .unwrap();
    let printed = s.to_redacted_toml();
    for secret in [
        SEALING_KEY,
        APP_SECRET,
        SERVICE_SECRET,
        "db-password-1",
        "db-password-2",
    ] {
        assert!(!printed.contains(secret), "{secret} in\n{printed}");
    }
    assert_eq!(printed.matches("<redacted>").count(), 5, "{printed}");
    assert!(printed.contains(
        "url = \"postgres://wx:<redacted>@db:5432/wxlogin?sslmode=require&password=<redacted>\""
    ));
    assert!(printed.contains(APPID) && printed.contains("client_id = \"orders\""));
    // What is printed reads back as the same configuration.
    let back: toml::Table = printed.parse().unwrap();
    assert_eq!(
        back["tokens"]["issuer"].as_str(),
        Some("http://127.0.0.1:8080")
    );
    assert!(!format!("{s:?}").contains(APP_SECRET));
}

#[test]
fn redis_is_off_by_default_and_its_password_comes_from_a_file_unprinted() {
    let defaults = Settings::default();
    assert!(!defaults.redis.enabled());
    assert_eq!(defaults.redis.key_prefix, "wxlogin:");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "redis-file-secret\n").unwrap();
    let s = Settings::from_toml_str(&format!(
        "[redis]\nurl = \"rediss://cache.internal:6380/2\"\npassword_file = {:?}\nkey_prefix = \"shop:\"\n",
        file.display().to_string()
    ))
    .unwrap();
    assert!(s.redis.enabled());
    assert_eq!(s.redis.password.as_deref(), Some("redis-file-secret"));
    assert_eq!(s.redis.key_prefix, "shop:");
    let printed = s.to_redacted_toml();
    assert!(!printed.contains("redis-file-secret"), "{printed}");
    assert!(printed.contains("password = \"<redacted>\""), "{printed}");
    assert!(!format!("{s:?}").contains("redis-file-secret"));

    let inline =
        Settings::from_toml_str("[redis]\nurl = \"redis://:url-secret@cache:6379/0\"\n").unwrap();
    assert!(!inline.to_redacted_toml().contains("url-secret"));
    assert!(!format!("{inline:?}").contains("url-secret"));
}

#[test]
fn redis_settings_are_checked() {
    for (toml, expected) in [
        (
            "url = \"http://cache:6379\"",
            "redis.url: must start with redis:// or rediss://",
        ),
        ("url = \"not a url\"", "redis.url: is not a URL"),
        (
            "password = \"pw\"",
            "redis.password: is set but redis.url is empty",
        ),
        (
            "url = \"redis://:a@cache/0\"\npassword = \"b\"",
            "redis.password: is given twice",
        ),
        (
            "connect_timeout_ms = 0",
            "redis.connect_timeout_ms: must be between 10 and 60000",
        ),
        (
            "response_timeout_ms = 60001",
            "redis.response_timeout_ms: must be between 10 and 60000",
        ),
        (
            "key_prefix = \"a b\"",
            "redis.key_prefix: must be at most 64 characters",
        ),
    ] {
        let e = error(&format!("[redis]\n{toml}\n"));
        assert!(e.contains(expected), "{toml}: {e}");
        assert!(!e.contains("cache:6379"), "{e}");
    }
}

#[test]
fn previous_sealing_keys_open_from_the_list_or_a_file_and_need_a_current_key() {
    let old = crate::crypto::SealingKey::generate_base64();
    let older = crate::crypto::SealingKey::generate_base64();
    let id = |text: &str| {
        crate::crypto::SealingKey::parse(text)
            .unwrap()
            .key_id()
            .to_string()
    };
    let s = Settings::from_toml_str(&format!(
        "[security]\nsealing_key = \"{SEALING_KEY}\"\nprevious_sealing_keys = [\"{old}\", \"{older}\"]\n"
    ))
    .unwrap();
    let key = s.security.sealing_key.as_ref().unwrap();
    assert_eq!(key.key_id().to_string(), id(SEALING_KEY));
    let previous: Vec<String> = key
        .previous_key_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(previous, [id(&old), id(&older)]);
    let shown = s.to_redacted_toml();
    assert!(
        !shown.contains(&old) && !shown.contains(SEALING_KEY),
        "{shown}"
    );
    assert!(shown.contains(&id(&old)), "the ids are shown: {shown}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("previous");
    std::fs::write(&path, format!("# retired 2026-01\n{old}\n\n{older}\n")).unwrap();
    let s = Settings::from_toml_str(&format!(
        "[security]\nsealing_key = \"{SEALING_KEY}\"\nprevious_sealing_keys_file = {:?}\n",
        path.display().to_string()
    ))
    .unwrap();
    assert_eq!(s.security.sealing_key.unwrap().previous_key_ids().len(), 2);

    let e = error(&format!(
        "[security]\nprevious_sealing_keys = [\"{old}\"]\n"
    ));
    assert!(
        e.starts_with("security.previous_sealing_keys: needs"),
        "{e}"
    );
    let e = error(&format!(
        "[security]\nsealing_key = \"{SEALING_KEY}\"\nprevious_sealing_keys = [\"{old}\", \"hunter2-secret\"]\n"
    ));
    assert!(
        e.starts_with("security.previous_sealing_keys[1]: must be 32 bytes"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}
