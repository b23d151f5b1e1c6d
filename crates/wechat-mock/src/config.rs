//! Which apps the simulator knows and how strict it is.
//!
//! A config file is TOML:
//!
//! ```toml
//! session_key_min_rotation_secs = 300   # optional
//! token_daily_quota = 10000             # optional
//! errcode_on_success = false            # optional
//!
//! [[apps]]
//! appid = "wx0000000000000002"
//! secret = "fedcba9876543210fedcba9876543210"
//! open_platform = "demo"        # optional
//! risky_users = ["mallory"]     # optional: their codes get 40226
//! ```
//!
//! Unknown keys are an error, so a typo cannot silently fall back to a default. A file without any
//! `[[apps]]` gives a simulator with **no** apps (not the demo app): apps can then be added at run time
//! through `POST /__mock/apps` or [`crate::Mock::add_app`].

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::{self, SharedClock};

/// The demo app's appid, used when no config file is given.
pub const DEMO_APPID: &str = "wx0000000000000001";
/// The demo app's AppSecret.
pub const DEMO_SECRET: &str = "0123456789abcdef0123456789abcdef";
/// The demo app's open platform name (so it returns unionids).
pub const DEMO_OPEN_PLATFORM: &str = "demo";

/// One mini program known to the simulator.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub appid: String,
    pub secret: String,
    /// Apps with the same open platform name share unionids; without one, no unionid is returned.
    #[serde(default)]
    pub open_platform: Option<String>,
    /// Users whose login codes are refused with 40226 (WeChat's risk control).
    #[serde(default)]
    pub risky_users: Vec<String>,
}

impl AppConfig {
    /// An app without open platform binding or risky users.
    pub fn new(appid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            appid: appid.into(),
            secret: secret.into(),
            open_platform: None,
            risky_users: Vec::new(),
        }
    }

    /// Binds the app to an open platform account, so it returns unionids.
    pub fn with_open_platform(mut self, name: impl Into<String>) -> Self {
        self.open_platform = Some(name.into());
        self
    }

    /// The demo app (see [`DEMO_APPID`]).
    pub fn demo() -> Self {
        Self::new(DEMO_APPID, DEMO_SECRET).with_open_platform(DEMO_OPEN_PLATFORM)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.appid.is_empty() {
            return Err("appid must not be empty".into());
        }
        if self.secret.is_empty() {
            return Err(format!("app {}: secret must not be empty", self.appid));
        }
        if self.open_platform.as_deref() == Some("") {
            return Err(format!(
                "app {}: open_platform must not be empty",
                self.appid
            ));
        }
        Ok(())
    }
}

// The secret stays out of logs and panic messages.
impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("appid", &self.appid)
            .field("secret", &"<redacted>")
            .field("open_platform", &self.open_platform)
            .field("risky_users", &self.risky_users)
            .finish()
    }
}

/// Everything the simulator needs to start.
#[derive(Clone, Debug)]
pub struct MockConfig {
    pub apps: Vec<AppConfig>,
    pub clock: SharedClock,
    /// Minimum age of a user's session_key before minting a new login code rotates it (WeChat's
    /// "minimum refresh period", whose real value is undisclosed). Default 300 s.
    /// `Duration::ZERO` = every new code rotates the key.
    pub session_key_min_rotation: Duration,
    /// Daily quota of /cgi-bin/token per appid (default 10_000) → 45009 beyond. The real number is
    /// unconfirmed for mini programs (2000 and 10000 have both been reported).
    pub token_daily_quota: u32,
    /// When true, jscode2session success bodies also carry `"errcode":0,"errmsg":"ok"` (default
    /// false: omitted, as often seen in real traffic).
    pub errcode_on_success: bool,
}

/// Default for [`MockConfig::session_key_min_rotation`].
pub const DEFAULT_SESSION_KEY_MIN_ROTATION: Duration = Duration::from_secs(300);
/// Default for [`MockConfig::token_daily_quota`].
pub const DEFAULT_TOKEN_DAILY_QUOTA: u32 = 10_000;

impl Default for MockConfig {
    /// No apps, the system clock and default limits.
    fn default() -> Self {
        Self {
            apps: Vec::new(),
            clock: clock::system(),
            session_key_min_rotation: DEFAULT_SESSION_KEY_MIN_ROTATION,
            token_daily_quota: DEFAULT_TOKEN_DAILY_QUOTA,
            errcode_on_success: false,
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid simulator config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid simulator config: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    apps: Vec<AppConfig>,
    session_key_min_rotation_secs: Option<u64>,
    token_daily_quota: Option<u32>,
    errcode_on_success: Option<bool>,
}

impl MockConfig {
    /// One app: appid `wx0000000000000001`, secret `0123456789abcdef0123456789abcdef`, open platform
    /// `demo`, on the system clock.
    pub fn demo() -> Self {
        Self {
            apps: vec![AppConfig::demo()],
            ..Self::default()
        }
    }

    /// Parses a TOML config (see the module docs). Uses the system clock.
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(s)?;
        let mut seen = HashSet::new();
        for app in &file.apps {
            app.validate().map_err(ConfigError::Invalid)?;
            if !seen.insert(app.appid.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "app {} is listed twice",
                    app.appid
                )));
            }
        }
        let defaults = Self::default();
        Ok(Self {
            apps: file.apps,
            session_key_min_rotation: file
                .session_key_min_rotation_secs
                .map_or(defaults.session_key_min_rotation, Duration::from_secs),
            token_daily_quota: file.token_daily_quota.unwrap_or(defaults.token_daily_quota),
            errcode_on_success: file.errcode_on_success.unwrap_or(false),
            clock: defaults.clock,
        })
    }

    /// Reads and parses a TOML config file.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The same config on another clock (e.g. a test's `ManualClock`).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_has_the_documented_app() {
        let config = MockConfig::demo();
        assert_eq!(config.apps, vec![AppConfig::demo()]);
        assert_eq!(config.apps[0].appid, "wx0000000000000001");
        assert_eq!(config.apps[0].secret, "0123456789abcdef0123456789abcdef");
        assert_eq!(config.apps[0].open_platform.as_deref(), Some("demo"));
        assert_eq!(config.session_key_min_rotation, Duration::from_secs(300));
        assert_eq!(config.token_daily_quota, 10_000);
        assert!(!config.errcode_on_success);
    }

    #[test]
    fn toml_with_apps_and_options_parses() {
        let config = MockConfig::from_toml_str(
            r#"
            session_key_min_rotation_secs = 0
            token_daily_quota = 5
            errcode_on_success = true

            [[apps]]
            appid = "wx0000000000000002"
            secret = "fedcba9876543210fedcba9876543210"
            open_platform = "demo"
            risky_users = ["mallory"]

            [[apps]]
            appid = "wx0000000000000003"
            secret = "s3"
            "#,
        )
        .unwrap();
        assert_eq!(config.apps.len(), 2);
        assert_eq!(config.apps[0].risky_users, vec!["mallory".to_string()]);
        assert_eq!(config.apps[1].open_platform, None);
        assert!(config.apps[1].risky_users.is_empty());
        assert_eq!(config.session_key_min_rotation, Duration::ZERO);
        assert_eq!(config.token_daily_quota, 5);
        assert!(config.errcode_on_success);
    }

    #[test]
    fn toml_without_apps_has_no_apps() {
        let config = MockConfig::from_toml_str("").unwrap();
        assert!(config.apps.is_empty());
        assert_eq!(config.token_daily_quota, DEFAULT_TOKEN_DAILY_QUOTA);
    }

    #[test]
    fn toml_unknown_keys_are_errors() {
        assert!(MockConfig::from_toml_str("token_quota = 3").is_err());
        let err = MockConfig::from_toml_str(
            "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\nopen_platfrom = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("open_platfrom"), "{err}");
    }

    #[test]
    fn toml_rejects_duplicate_and_empty_apps() {
        let dup = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n[[apps]]\nappid = \"wx1\"\nsecret = \"t\"\n";
        assert!(matches!(
            MockConfig::from_toml_str(dup),
            Err(ConfigError::Invalid(_))
        ));
        let empty = "[[apps]]\nappid = \"\"\nsecret = \"s\"\n";
        assert!(matches!(
            MockConfig::from_toml_str(empty),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn toml_file_that_does_not_exist_is_a_read_error() {
        let err = MockConfig::from_toml_file(Path::new("/nonexistent/apps.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let text = format!("{:?}", AppConfig::demo());
        assert!(!text.contains(DEMO_SECRET));
    }
}
