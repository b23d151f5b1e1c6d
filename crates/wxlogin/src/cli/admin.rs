//! The operator's verbs on accounts and sessions: `users list | show | ban | unban |
//! unbind-phone` and `sessions list | revoke` (`wechat access-token` is in `admin_wechat.rs`, on
//! the helpers here). Each acts on the configured database (and `[redis]`, when set) through
//! `services::admin`, prints a table or `--json` on standard output, logs on standard error, and
//! fails with one line.
#![allow(clippy::print_stdout, clippy::print_stderr)] // printing is what these commands are for

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::domain::{SessionId, UserId};
use crate::services::admin::{self, Admin, Announced, MAX_LIST_LIMIT, UserDetails};
use crate::store::{Session, User, UserSummary};

/// The `users` verbs besides `import`.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersAdmin {
    /// List users, newest first: id, created, nickname, phone (masked), banned, identities.
    List {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// A user id, openid, unionid, phone number (`13800138000`, `+852 61234567`) or a
        /// nickname substring.
        #[arg(long)]
        search: Option<String>,
        /// At most this many users (1 to 1000).
        #[arg(long, default_value = "50")]
        limit: String,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One user: its WeChat identities per app and its live sessions.
    Show {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        user_id: String,
        #[arg(long)]
        json: bool,
        /// Show the whole phone number instead of the masked one.
        #[arg(long)]
        reveal_phone: bool,
    },
    /// Ban a user: logins and refreshes are refused, and every live session is revoked (with
    /// `[redis]` running servers refuse its tokens at once, else within tokens.session_cache_ms).
    Ban {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        user_id: String,
        /// Why, for the record of the ban.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a ban: the user may log in again (its old sessions stay revoked).
    Unban {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        user_id: String,
    },
    /// Remove the user's phone number (the number is then free for another user).
    UnbindPhone {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        user_id: String,
    },
}

/// `wxlogin sessions ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SessionsCommand {
    /// A user's sessions: id, appid, created, expires, revoked (live ones unless --all).
    List {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// The user whose sessions to list.
        #[arg(long, value_name = "USER_ID")]
        user: String,
        /// Revoked and expired sessions too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one session, or every live session of a user (--user).
    Revoke {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// The session to revoke.
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        session_id: Option<String>,
        /// Revoke every live session of this user instead.
        #[arg(long, value_name = "USER_ID")]
        user: Option<String>,
    },
}

/// Settings, database and (when configured) the shared state. `need_shared`: a Redis that does
/// not answer is an error; otherwise the change is made and servers honour it a little later.
pub(super) async fn open(config: Option<&Path>, need_shared: bool) -> Result<Admin, String> {
    let settings = super::load(config)?;
    crate::telemetry::init_to_stderr(&settings.log);
    let store = crate::app::open_migrated_store(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let clock = crate::clock::system();
    let shared = if settings.redis.enabled() {
        match crate::app::open_shared_state(&settings, clock.clone()).await {
            Ok(shared) => Some(shared),
            Err(e) if need_shared => return Err(e.to_string()),
            Err(e) => {
                eprintln!(
                    "wxlogin: warning: {e}; running servers will honour the change within tokens.session_cache_ms"
                );
                None
            }
        }
    } else {
        None
    };
    Ok(Admin {
        store,
        // The OS user: the admin verbs take no `--actor` of their own.
        actor: super::audit::actor(None)?,
        shared,
        settings: Arc::new(settings),
        clock,
        local_sessions: None,
    })
}

fn user_id(text: &str) -> Result<UserId, String> {
    UserId::parse(text.trim()).map_err(|e| format!("invalid user id `{}`: {e}", shown(text)))
}

fn session_id(text: &str) -> Result<SessionId, String> {
    SessionId::parse(text.trim()).map_err(|e| format!("invalid session id `{}`: {e}", shown(text)))
}

/// Bad input echoed back, cut short and without control characters.
pub(super) fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

pub(super) fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(at).to_string()
}

fn opt_time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(time(ms)))
}

fn masked_phone(user: &User) -> Option<String> {
    user.phone.as_ref().map(|p| match p.country_code() {
        "86" => p.masked(),
        code => format!("+{code} {}", p.masked()),
    })
}

/// Terminal columns of `text`: 2 for East Asian wide and fullwidth characters (the CJK of most
/// nicknames, fullwidth forms, common emoji), 1 otherwise. `unicode-width` knows every case; these
/// ranges cover what nicknames hold, without a dependency for one table.
fn columns(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// Columns padded to their widest cell, in terminal columns.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| columns(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(columns(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - columns(c))))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub(super) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn announced(what: &str, how: Announced, cache_ms: u64) -> String {
    match how {
        Announced::AtOnce => format!("{what}; running servers were told at once"),
        Announced::WithinSessionCache => format!(
            "{what}; running servers refuse its tokens within tokens.session_cache_ms ({cache_ms} ms)"
        ),
    }
}

pub(crate) async fn users(command: UsersAdmin) -> Result<(), String> {
    match command {
        UsersAdmin::List {
            config,
            search,
            limit,
            json,
        } => {
            let limit = limit
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=MAX_LIST_LIMIT).contains(l))
                .ok_or_else(|| format!("--limit must be a number from 1 to {MAX_LIST_LIMIT}"))?;
            let admin = open(config.as_deref(), false).await?;
            let users = admin::list_users(&admin, search.as_deref(), limit, 0)
                .await
                .map_err(|e| e.to_string())?;
            print_users(&users, json);
            Ok(())
        }
        UsersAdmin::Show {
            config,
            user_id: id,
            json,
            reveal_phone,
        } => {
            let id = user_id(&id)?;
            let admin = open(config.as_deref(), false).await?;
            let details = admin::show_user(&admin, &id)
                .await
                .map_err(|e| e.to_string())?;
            print_user(&details, json, reveal_phone);
            Ok(())
        }
        UsersAdmin::Ban {
            config,
            user_id: id,
            reason,
        } => {
            let id = user_id(&id)?;
            let admin = open(config.as_deref(), false).await?;
            let banned = admin::ban(&admin, &id, reason.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            let what = if banned.newly {
                format!("banned {id}")
            } else {
                format!("{id} was already banned (since {})", time(banned.banned_at))
            };
            let what = format!("{what}; {} session(s) revoked", banned.sessions_revoked);
            println!(
                "{}",
                announced(
                    &what,
                    banned.announced,
                    admin.settings.tokens.session_cache_ms
                )
            );
            Ok(())
        }
        UsersAdmin::Unban {
            config,
            user_id: id,
        } => {
            let id = user_id(&id)?;
            let admin = open(config.as_deref(), false).await?;
            if admin::unban(&admin, &id).await.map_err(|e| e.to_string())? {
                println!("unbanned {id}: the user may log in again");
            } else {
                println!("{id} was not banned");
            }
            Ok(())
        }
        UsersAdmin::UnbindPhone {
            config,
            user_id: id,
        } => {
            let id = user_id(&id)?;
            let admin = open(config.as_deref(), false).await?;
            match admin::unbind_phone(&admin, &id)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(phone) => println!("removed the phone number {} from {id}", phone.masked()),
                None => println!("{id} has no phone number"),
            }
            Ok(())
        }
    }
}

fn print_users(users: &[UserSummary], json: bool) {
    if json {
        let list: Vec<Value> = users
            .iter()
            .map(|s| {
                json!({
                    "id": s.user.id,
                    "created_at": time(s.user.created_at),
                    "nickname": s.user.nickname,
                    "phone": masked_phone(&s.user),
                    "banned": s.user.banned_at.is_some(),
                    "banned_at": opt_time(s.user.banned_at),
                    "identities": s.identities,
                })
            })
            .collect();
        print_json(&Value::Array(list));
        return;
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|s| {
            vec![
                s.user.id.to_string(),
                time(s.user.created_at),
                s.user.nickname.clone().unwrap_or_else(|| "-".into()),
                masked_phone(&s.user).unwrap_or_else(|| "-".into()),
                if s.user.banned_at.is_some() {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                s.identities.to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["ID", "CREATED", "NICKNAME", "PHONE", "BANNED", "IDENTITIES"],
            &rows
        )
    );
}

fn print_user(details: &UserDetails, json: bool, reveal_phone: bool) {
    let user = &details.user;
    let phone = if reveal_phone {
        user.phone.as_ref().map(|p| p.number().to_owned())
    } else {
        user.phone.as_ref().map(|p| p.masked())
    };
    if json {
        let identities: Vec<Value> = details
            .identities
            .iter()
            .map(|i| {
                json!({
                    "appid": i.appid,
                    "openid": i.openid.as_str(),
                    "unionid": i.unionid.as_ref().map(|u| u.as_str()),
                    "created_at": time(i.created_at),
                    "last_login_at": time(i.updated_at),
                })
            })
            .collect();
        print_json(&json!({
            "id": user.id,
            "created_at": time(user.created_at),
            "updated_at": time(user.updated_at),
            "nickname": user.nickname,
            "phone": phone,
            "phone_country_code": user.phone.as_ref().map(|p| p.country_code()),
            "banned": user.banned_at.is_some(),
            "banned_at": opt_time(user.banned_at),
            "identities": identities,
            "sessions": details.sessions.iter().map(session_json).collect::<Vec<_>>(),
        }));
        return;
    }
    let phone = match (&user.phone, phone) {
        (Some(p), Some(shown)) if p.country_code() != "86" => {
            format!("+{} {shown}", p.country_code())
        }
        (_, Some(shown)) => shown,
        _ => "-".into(),
    };
    println!("id        {}", user.id);
    println!("created   {}", time(user.created_at));
    println!("nickname  {}", user.nickname.as_deref().unwrap_or("-"));
    println!("phone     {phone}");
    println!(
        "banned    {}",
        user.banned_at
            .map_or("no".to_owned(), |at| format!("since {}", time(at)))
    );
    println!("\nidentities");
    let rows: Vec<Vec<String>> = details
        .identities
        .iter()
        .map(|i| {
            vec![
                i.appid.to_string(),
                i.openid.as_str().to_owned(),
                i.unionid
                    .as_ref()
                    .map_or("-".into(), |u| u.as_str().to_owned()),
                time(i.created_at),
                time(i.updated_at),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["APPID", "OPENID", "UNIONID", "CREATED", "LAST LOGIN"],
            &rows
        )
    );
    println!("\nlive sessions");
    println!("{}", sessions_table(&details.sessions));
}

fn session_json(s: &Session) -> Value {
    json!({
        "id": s.id,
        "appid": s.appid,
        "created_at": time(s.created_at),
        "expires_at": time(s.expires_at),
        "revoked_at": opt_time(s.revoked_at),
    })
}

fn sessions_table(sessions: &[Session]) -> String {
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.appid.to_string(),
                time(s.created_at),
                time(s.expires_at),
                s.revoked_at.map_or("-".into(), time),
            ]
        })
        .collect();
    table(&["ID", "APPID", "CREATED", "EXPIRES", "REVOKED"], &rows)
}

pub(crate) async fn sessions(command: SessionsCommand) -> Result<(), String> {
    match command {
        SessionsCommand::List {
            config,
            user,
            all,
            json,
        } => {
            let user = user_id(&user)?;
            let admin = open(config.as_deref(), false).await?;
            let sessions = admin::list_sessions(&admin, &user, all)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&Value::Array(sessions.iter().map(session_json).collect()));
            } else {
                println!("{}", sessions_table(&sessions));
            }
            Ok(())
        }
        SessionsCommand::Revoke {
            config,
            session_id: session,
            user,
        } => {
            // clap makes exactly one of them present.
            let (session, user) = match (session, user) {
                (Some(s), None) => (Some(session_id(&s)?), None),
                (None, Some(u)) => (None, Some(user_id(&u)?)),
                _ => return Err("give a SESSION_ID or --user USER_ID".into()),
            };
            let admin = open(config.as_deref(), false).await?;
            let cache_ms = admin.settings.tokens.session_cache_ms;
            if let Some(id) = session {
                match admin::revoke_session(&admin, &id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(how) => println!("{}", announced(&format!("revoked {id}"), how, cache_ms)),
                    None => println!("{id} was already revoked"),
                }
            } else if let Some(user) = user {
                let (count, how) = admin::revoke_user_sessions(&admin, &user)
                    .await
                    .map_err(|e| e.to_string())?;
                let what = format!("revoked {count} session(s) of {user}");
                println!("{}", announced(&what, how, cache_ms));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_cjk_nicknames_by_terminal_columns() {
        let rows = vec![
            vec![
                "u_1".to_owned(),
                "小明".to_owned(),
                "138****8000".to_owned(),
            ],
            vec!["u_2".to_owned(), "Bob".to_owned(), "-".to_owned()],
        ];
        let out = table(&["ID", "NICKNAME", "PHONE"], &rows);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID   NICKNAME  PHONE");
        assert_eq!(lines[1], "u_1  小明      138****8000");
        assert_eq!(lines[2], "u_2  Bob       -");
        let at = |line: &str| columns(&line[..line.rfind("  ").unwrap() + 2]);
        assert_eq!(at(lines[1]), at(lines[0]));
        assert_eq!(at(lines[2]), at(lines[0]));
        assert_eq!(columns("微信 ok"), 7);
    }
}
