//! The environment layer, through `figment::Jail`, which serializes the tests that change the
//! process environment and the working directory.

// Jail's closures must return `figment::Error`, which is large; nothing to box here.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::Path;

use figment::Jail;

use super::Settings;
use super::tests::{APP_SECRET, APPID, SEALING_KEY, SERVICE_SECRET};

#[test]
fn env_overrides_toml_with_double_underscore_nesting() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "wxlogin.toml",
            "[server]\nlisten = \"127.0.0.1:7000\"\nshutdown_grace_ms = 5\n\
             [tokens]\naccess_ttl_secs = 60\n",
        )?;
        jail.set_env("WXLOGIN_SERVER__LISTEN", "0.0.0.0:9000");
        jail.set_env("WXLOGIN_TOKENS__ACCESS_TTL_SECS", "120");
        jail.set_env("WXLOGIN_WECHAT__RETRY__MAX_ATTEMPTS", "5");
        jail.set_env("WXLOGIN_DATABASE__URL", "postgres://wx:pw@db/wxlogin");
        let s = Settings::load(Some(Path::new("wxlogin.toml"))).unwrap();
        assert_eq!(s.server.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert_eq!(s.server.shutdown_grace_ms, 5);
        assert_eq!(s.tokens.access_ttl_secs, 120);
        assert_eq!(s.wechat.retry.max_attempts, 5);
        assert_eq!(s.database_url(), "postgres://wx:pw@db/wxlogin");
        Ok(())
    });
}

#[test]
fn unrelated_wxlogin_variables_are_ignored() {
    Jail::expect_with(|jail| {
        jail.set_env("WXLOGIN_LOG", "debug");
        jail.set_env("WXLOGIN_LOG_JSON", "true");
        jail.set_env("WXLOGIN_TEST_POSTGRES_URL", "postgres://localhost/test");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.log.level, "info");
        assert_eq!(s.database_url(), "sqlite://data/wxlogin.db");
        Ok(())
    });
}

#[test]
fn missing_config_file_is_an_error() {
    Jail::expect_with(|_| {
        let e = Settings::load(Some(Path::new("nope.toml"))).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn secret_files_are_read_and_trimmed() {
    Jail::expect_with(|jail| {
        jail.create_file("sealing", &format!("{SEALING_KEY}\n"))?;
        jail.create_file("app", &format!("  {APP_SECRET}\r\n"))?;
        jail.create_file("service", &format!("{SERVICE_SECRET}\n\n"))?;
        jail.create_file(
            "wxlogin.toml",
            &format!(
                "[server]\npublic_url = \"https://login.example.com\"\n\
                 [[apps]]\nappid = \"{APPID}\"\nsecret_file = \"app\"\n\
                 [[services]]\nclient_id = \"orders\"\nclient_secret_file = \"service\"\n"
            ),
        )?;
        jail.set_env("WXLOGIN_SECURITY__SEALING_KEY_FILE", "sealing");
        let s = Settings::load(Some(Path::new("wxlogin.toml"))).unwrap();
        assert!(s.security.sealing_key.is_some());
        assert_eq!(s.apps[0].secret.expose_secret(), APP_SECRET);
        assert_eq!(s.services[0].client_secret.expose_secret(), SERVICE_SECRET);
        s.check_for_production(false).unwrap();
        Ok(())
    });
}

#[test]
fn unknown_keys_in_env_are_named() {
    Jail::expect_with(|jail| {
        jail.create_file("wxlogin.toml", "[server]\nlisten = \"127.0.0.1:7000\"\n")?;
        jail.set_env("WXLOGIN_SERVER__LISTN", "0.0.0.0:9000");
        let e = Settings::load(Some(Path::new("wxlogin.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("server.listn: unknown key"), "{e}");
        assert!(e.contains("WXLOGIN_SERVER__LISTN"), "{e}");
        Ok(())
    });
}

#[test]
fn the_metrics_listener_and_the_log_format_come_from_the_environment() {
    Jail::expect_with(|jail| {
        let s = Settings::load(None).unwrap();
        assert_eq!(
            s.metrics.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        jail.set_env("WXLOGIN_METRICS__LISTEN", "");
        jail.set_env("WXLOGIN_LOG__FORMAT", "json");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.metrics.listen, None, "empty: off");
        assert_eq!(s.log.format, super::LogFormat::Json);
        jail.set_env("WXLOGIN_METRICS__LISTEN", "0.0.0.0:9100");
        let s = Settings::load(None).unwrap();
        assert_eq!(
            s.metrics.listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
        );
        jail.set_env("WXLOGIN_METRICS__LISTEN", "localhost");
        let e = Settings::load(None).unwrap_err();
        assert!(e.to_string().contains("metrics.listen"), "{e}");
        jail.set_env("WXLOGIN_METRICS__LISTEN", "127.0.0.1:8080");
        let e = Settings::load(None).unwrap_err();
        assert!(
            e.to_string().contains("must differ from server.listen"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
fn the_admin_console_is_off_by_default_and_its_listener_comes_from_the_environment() {
    Jail::expect_with(|jail| {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.admin.listen, None, "off by default");
        assert_eq!(
            (
                s.admin.session_idle_secs,
                s.admin.max_failed_sign_ins,
                s.admin.lockout_secs
            ),
            (1800, 5, 900)
        );
        jail.set_env("WXLOGIN_ADMIN__LISTEN", "127.0.0.1:8090");
        jail.set_env("WXLOGIN_ADMIN__MAX_FAILED_SIGN_INS", "3");
        let s = Settings::load(None).unwrap();
        assert_eq!(
            s.admin.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 8090)))
        );
        assert_eq!(s.admin.max_failed_sign_ins, 3);
        jail.set_env("WXLOGIN_ADMIN__LISTEN", "127.0.0.1:9090");
        let e = Settings::load(None).unwrap_err().to_string();
        assert!(
            e.contains("admin.listen") && e.contains("must differ"),
            "{e}"
        );
        jail.set_env("WXLOGIN_ADMIN__LISTEN", "");
        jail.set_env("WXLOGIN_ADMIN__SESSION_IDLE_SECS", "5");
        let e = Settings::load(None).unwrap_err().to_string();
        assert!(e.contains("admin.session_idle_secs"), "{e}");
        Ok(())
    });
}
