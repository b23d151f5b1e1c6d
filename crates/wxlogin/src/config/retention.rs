//! `[audit]` and `[retention]`: how long the audit log keeps entries, and the background purge
//! that enforces it and removes sessions, refresh tokens and login tickets no longer needed
//! (`services::retention`, `docs/operations.md`, "Retention").

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub(super) const MAX_AUDIT_RETENTION_DAYS: u64 = 3_650;
pub(super) const MAX_RETENTION_INTERVAL_SECS: u64 = 86_400;
pub(super) const MAX_RETENTION_BATCH_SIZE: u32 = 100_000;
pub(super) const MAX_SESSION_MARGIN_DAYS: u64 = 365;

/// The audit log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Entries older than this many days are purged.
    pub retention_days: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention_days: 180,
        }
    }
}

/// The background purge.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// How often, in seconds, the purge runs (on one instance of the deployment at a time).
    pub interval_secs: u64,
    /// Rows deleted per statement: each batch is a short transaction of its own.
    pub batch_size: u32,
    /// Sessions are deleted this many days after their absolute end (revoked ones too), so that
    /// operators can still look at recent ones.
    pub session_margin_days: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            interval_secs: 3_600,
            batch_size: 1_000,
            session_margin_days: 7,
        }
    }
}

pub(super) fn validate(
    audit: &AuditSettings,
    retention: &RetentionSettings,
) -> Result<(), ConfigError> {
    let within = |key: &str, value: u64, min: u64, max: u64| {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(ConfigError::invalid(
                key,
                format!("must be between {min} and {max}"),
            ))
        }
    };
    within(
        "audit.retention_days",
        audit.retention_days,
        1,
        MAX_AUDIT_RETENTION_DAYS,
    )?;
    within(
        "retention.interval_secs",
        retention.interval_secs,
        1,
        MAX_RETENTION_INTERVAL_SECS,
    )?;
    within(
        "retention.batch_size",
        retention.batch_size.into(),
        1,
        MAX_RETENTION_BATCH_SIZE.into(),
    )?;
    within(
        "retention.session_margin_days",
        retention.session_margin_days,
        0,
        MAX_SESSION_MARGIN_DAYS,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn defaults_and_bounds() {
        let s = Settings::from_toml_str("").unwrap();
        assert_eq!(s.audit.retention_days, 180);
        assert_eq!(s.retention.interval_secs, 3_600);
        assert_eq!(s.retention.batch_size, 1_000);
        assert_eq!(s.retention.session_margin_days, 7);
        let s = Settings::from_toml_str(
            "[audit]\nretention_days = 3650\n[retention]\ninterval_secs = 1\nbatch_size = 1\nsession_margin_days = 0\n",
        )
        .unwrap();
        assert_eq!(s.retention.session_margin_days, 0);
        for (text, key) in [
            ("[audit]\nretention_days = 0\n", "audit.retention_days"),
            ("[audit]\nretention_days = 3651\n", "audit.retention_days"),
            (
                "[retention]\ninterval_secs = 0\n",
                "retention.interval_secs",
            ),
            (
                "[retention]\ninterval_secs = 86401\n",
                "retention.interval_secs",
            ),
            ("[retention]\nbatch_size = 0\n", "retention.batch_size"),
            ("[retention]\nbatch_size = 100001\n", "retention.batch_size"),
            (
                "[retention]\nsession_margin_days = 366\n",
                "retention.session_margin_days",
            ),
            ("[retention]\nkeep = 1\n", "keep"),
        ] {
            let error = Settings::from_toml_str(text).unwrap_err().to_string();
            assert!(error.contains(key), "{text}: {error}");
        }
    }
}
