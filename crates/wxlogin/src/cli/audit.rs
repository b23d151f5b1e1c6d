//! `wxlogin audit list`: the audit log, newest first, as a table or one JSON object per line.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::domain::UserId;
use crate::services::audit::{Actor, AuditEvent, EventType};
use crate::store::{AuditQuery, AuditRecord, Store};

pub(crate) const DEFAULT_LIMIT: u32 = 100;
pub(crate) const MAX_LIMIT: u32 = 10_000;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Security events, newest first: logins, registrations, links, phone and profile changes,
    /// refresh-token reuse, logouts, bans, revocations, key changes, WeChat token invalidations,
    /// imports.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long, short, env = "WXLOGIN_CONFIG")]
    config: Option<PathBuf>,
    /// Only events about this user (`u_...`).
    #[arg(long)]
    user: Option<String>,
    /// Only events of this type (`login`, `logout`, `refresh_reuse_detected`, ...).
    #[arg(long = "type")]
    kind: Option<String>,
    /// Only events since then: a duration back from now (`30m`, `2h`, `7d`) or an RFC 3339 time
    /// (`2026-01-02T03:04:05Z`, `2026-01-02T11:04:05+08:00`).
    #[arg(long)]
    since: Option<String>,
    /// At most this many events (default 100, at most 10000).
    #[arg(long)]
    limit: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(command: AuditCommand) -> Result<(), String> {
    match command {
        AuditCommand::List(args) => list(args).await,
    }
}

/// The listing's filters from the flags; every error is one line naming the flag and what it takes.
pub(crate) fn query(
    user: Option<&str>,
    kind: Option<&str>,
    since: Option<&str>,
    limit: Option<&str>,
    now: SystemTime,
) -> Result<AuditQuery, String> {
    let user = user
        .map(|id| {
            UserId::parse(id.trim()).map_err(|_| {
                "--user must be a user id such as u_01JD5M8Q2Y7ZC4T0V6B3N9W1XK".to_owned()
            })
        })
        .transpose()?;
    let kind = kind
        .map(|t| {
            EventType::parse(t.trim())
                .map(|t| t.as_str().to_owned())
                .map_err(|e| format!("--type: {e}"))
        })
        .transpose()?;
    let since = since.map(|s| parse_since(s.trim(), now)).transpose()?;
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| format!("--limit must be a whole number from 1 to {MAX_LIMIT}"))?,
    };
    Ok(AuditQuery {
        user,
        kind,
        since,
        limit,
        ..AuditQuery::default()
    })
}

/// `30m`, `2h`, `7d` (back from `now`) or an RFC 3339 time, as Unix milliseconds.
pub(crate) fn parse_since(text: &str, now: SystemTime) -> Result<i64, String> {
    let refused = || {
        "--since must be a duration back from now (30m, 2h, 7d) or an RFC 3339 time \
         (2026-01-02T03:04:05Z, 2026-01-02T11:04:05+08:00)"
            .to_owned()
    };
    let at = if text.contains('T') || text.contains(' ') && text.contains(':') {
        parse_time(text).ok_or_else(refused)?
    } else {
        let back = humantime::parse_duration(text).map_err(|_| refused())?;
        now.checked_sub(back).ok_or_else(refused)?
    };
    Ok(crate::clock::unix_millis(at))
}

/// RFC 3339 with `Z` or a `±HH:MM` offset.
fn parse_time(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    let offset = text.len().checked_sub(6).filter(|&i| {
        matches!(bytes[i], b'+' | b'-') && bytes[i + 3] == b':' && text.is_char_boundary(i)
    });
    let Some(i) = offset else {
        return humantime::parse_rfc3339_weak(text).ok();
    };
    let local = humantime::parse_rfc3339_weak(&text[..i]).ok()?;
    let hours: u64 = text[i + 1..i + 3].parse().ok()?;
    let minutes: u64 = text[i + 4..].parse().ok()?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    // A local time ahead of UTC by the offset: UTC is earlier.
    if bytes[i] == b'+' {
        local.checked_sub(shift)
    } else {
        local.checked_add(shift)
    }
}

async fn list(args: ListArgs) -> Result<(), String> {
    let clock: SharedClock = crate::clock::system();
    // The flags first: a typo is answered without touching the database.
    let query = query(
        args.user.as_deref(),
        args.kind.as_deref(),
        args.since.as_deref(),
        args.limit.as_deref(),
        clock.now(),
    )?;
    let settings = super::load(args.config.as_deref())?;
    crate::telemetry::init(&settings.log);
    let store = crate::app::open_migrated_store(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let records = store
        .list_audit_events(&query)
        .await
        .map_err(|e| format!("reading the audit log: {e}"))?;
    print(&records, args.json);
    Ok(())
}

fn time_text(at: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

fn actor_text(record: &AuditRecord) -> String {
    match &record.actor_id {
        Some(id) => format!("{}:{id}", record.actor_kind),
        None => record.actor_kind.clone(),
    }
}

/// One entry as a JSON object (the `--json` line).
pub(crate) fn to_json(record: &AuditRecord) -> Value {
    let details: Value = serde_json::from_str(&record.details)
        .unwrap_or_else(|_| Value::String(record.details.clone()));
    json!({
        "id": record.id,
        "at": time_text(record.at),
        "at_ms": record.at,
        "type": record.kind,
        "actor": { "kind": record.actor_kind, "id": record.actor_id },
        "user_id": record.user_id.as_ref().map(UserId::as_str),
        "appid": record.appid.as_ref().map(|a| a.as_str()),
        "client_ip": record.client_ip,
        "user_agent": record.user_agent,
        "details": details,
    })
}

/// The entries as an aligned table (a header line, then one line each).
pub(crate) fn table(records: &[AuditRecord]) -> String {
    let dash = || "-".to_owned();
    let header = ["TIME", "TYPE", "ACTOR", "USER", "APPID", "IP", "DETAILS"].map(str::to_owned);
    let mut rows = vec![header];
    for r in records {
        rows.push([
            time_text(r.at),
            r.kind.clone(),
            actor_text(r),
            r.user_id
                .as_ref()
                .map_or_else(dash, |u| u.as_str().to_owned()),
            r.appid
                .as_ref()
                .map_or_else(dash, |a| a.as_str().to_owned()),
            r.client_ip.clone().unwrap_or_else(dash),
            if r.details == "{}" {
                dash()
            } else {
                r.details.clone()
            },
        ]);
    }
    let mut widths = [0; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[allow(clippy::print_stdout)]
fn print(records: &[AuditRecord], json: bool) {
    if json {
        for record in records {
            println!("{}", to_json(record));
        }
    } else if records.is_empty() {
        println!("no audit events match");
    } else {
        print!("{}", table(records));
    }
}

/// The operator of this command: `--actor NAME`, else `$USER`, else `cli`.
pub(crate) fn actor(flag: Option<&str>) -> Result<Actor, String> {
    Actor::cli(flag, std::env::var("USER").ok().as_deref())
}

/// Records an operator's change. Never fails: the change is made; a failed entry is logged.
pub(crate) async fn record(store: &dyn Store, actor: &Actor, event: AuditEvent) {
    let clock = crate::clock::system();
    crate::services::audit::record_for_operator(store, &clock, actor, event).await;
}

/// `wxlogin keys rotate` made `kid` the signing key.
pub(crate) async fn record_key_rotated(store: &dyn Store, actor: &Actor, kid: &str) {
    let event = AuditEvent::KeyRotated {
        key: crate::services::audit::KeyKind::Signing,
        kid: kid.to_owned(),
    };
    record(store, actor, event).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_225_600) // 2026-01-01T00:00:00Z
    }

    #[test]
    fn since_takes_durations_and_rfc3339_times_with_offsets() {
        let now_ms = 1_767_225_600_000;
        assert_eq!(parse_since("2h", now()).unwrap(), now_ms - 7_200_000);
        assert_eq!(parse_since("30m", now()).unwrap(), now_ms - 1_800_000);
        assert_eq!(parse_since("7d", now()).unwrap(), now_ms - 7 * 86_400_000);
        assert_eq!(
            parse_since("2025-12-31T23:00:00Z", now()).unwrap(),
            now_ms - 3_600_000
        );
        assert_eq!(
            parse_since("2026-01-01T08:00:00+08:00", now()).unwrap(),
            now_ms
        );
        assert_eq!(
            parse_since("2025-12-31T19:00:00-05:00", now()).unwrap(),
            now_ms
        );
        for bad in [
            "",
            "2",
            "yesterday",
            "2h ago",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+25:00",
        ] {
            assert!(parse_since(bad, now()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_flags_are_refused_with_what_they_take() {
        let q = |user, kind, limit| query(user, kind, None, limit, now());
        assert!(q(Some("alice"), None, None).unwrap_err().contains("--user"));
        let e = q(None, Some("logins"), None).unwrap_err();
        assert!(
            e.contains("--type") && e.contains("refresh_reuse_detected"),
            "{e}"
        );
        for limit in ["0", "10001", "-1", "many"] {
            assert!(q(None, None, Some(limit)).unwrap_err().contains("--limit"));
        }
        let ok = q(None, Some("logout"), Some("10000")).unwrap();
        assert_eq!((ok.kind.as_deref(), ok.limit), (Some("logout"), 10_000));
        assert_eq!(q(None, None, None).unwrap().limit, DEFAULT_LIMIT);
    }
}
