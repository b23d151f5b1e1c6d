//! `wxlogin admins add | list | remove | reset-password | totp`: the administrators of the
//! console, over `services::admins`, on the configured database while servers run. Passwords come
//! from a prompt without echo on a terminal, else from the first line of standard input; they are
//! never printed, nor are hashes or TOTP secrets, except the otpauth URI (and its QR code) that
//! `admins totp` exists to show.
#![allow(clippy::print_stdout)] // printing is what these commands are for

use std::io::{BufRead as _, IsTerminal as _, Read as _};
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::admin::{open, print_json, shown, table, time};
use crate::domain::{AdminName, AdminPassword, AdminRole, PASSWORD_MAX_CHARS};
use crate::services::admin::Admin;
use crate::services::admins::{self, TotpState, is_locked};
use crate::store::AdminAccount;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminsCommand {
    /// Create an administrator of the console. The password is asked for (twice, without echo)
    /// on a terminal, else read as one line from standard input: 12 to 1024 characters.
    Add {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// 1 to 64 of a-z, 0-9, '.', '_' and '-'.
        name: String,
        /// viewer (sees), operator (also acts on users and sessions) or owner (also on keys,
        /// apps and administrators; must use TOTP).
        #[arg(long)]
        role: String,
        /// Who is acting, for the audit log (default: $USER, else `cli`).
        #[arg(long)]
        actor: Option<String>,
    },
    /// The administrators: name, role, TOTP, locked, created. Never a hash or a secret.
    List {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove an administrator (never the last owner).
    Remove {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        name: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Give an administrator a new password (asked for as by `add`); lifts a sign-in lockout.
    ResetPassword {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        name: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Make a new TOTP secret for an administrator and print its otpauth:// URI and a QR code
    /// to scan with an authenticator app (the previous secret stops working).
    Totp {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        name: String,
        #[arg(long)]
        actor: Option<String>,
    },
}

pub(crate) async fn run(command: AdminsCommand) -> Result<(), String> {
    match command {
        AdminsCommand::Add {
            config,
            name,
            role,
            actor,
        } => {
            let name = admin_name(&name)?;
            let role = AdminRole::parse(role.trim())
                .map_err(|e| format!("--role `{}`: {e}", shown(&role)))?;
            let actor = super::audit::actor(actor.as_deref())?;
            let password = read_password(&name)?;
            let admin = acting(config, actor).await?;
            admins::add(&admin, &name, role, &password)
                .await
                .map_err(|e| e.to_string())?;
            println!("added administrator {name} ({})", role.as_str());
            if role.requires_totp() {
                println!(
                    "owners must sign in with TOTP: run `wxlogin admins totp {name}` now; \
                     the console refuses {name} until it has TOTP"
                );
            }
            Ok(())
        }
        AdminsCommand::List { config, json } => {
            let admin = open(config.as_deref(), false).await?;
            let list = admins::list(&admin).await.map_err(|e| e.to_string())?;
            print_admins(&list, admin.clock.unix_millis(), json);
            Ok(())
        }
        AdminsCommand::Remove {
            config,
            name,
            actor,
        } => {
            let name = admin_name(&name)?;
            let actor = super::audit::actor(actor.as_deref())?;
            let admin = acting(config, actor).await?;
            let role = admins::remove(&admin, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed administrator {name} ({})", role.as_str());
            Ok(())
        }
        AdminsCommand::ResetPassword {
            config,
            name,
            actor,
        } => {
            let name = admin_name(&name)?;
            let actor = super::audit::actor(actor.as_deref())?;
            let password = read_password(&name)?;
            let admin = acting(config, actor).await?;
            let unlocked = admins::reset_password(&admin, &name, &password)
                .await
                .map_err(|e| e.to_string())?;
            if unlocked {
                println!("replaced the password of {name} and lifted its sign-in lockout");
            } else {
                println!("replaced the password of {name}");
            }
            Ok(())
        }
        AdminsCommand::Totp {
            config,
            name,
            actor,
        } => {
            let name = admin_name(&name)?;
            let actor = super::audit::actor(actor.as_deref())?;
            let admin = acting(config, actor).await?;
            let enrolled = admins::enroll_totp(&admin, &name)
                .await
                .map_err(|e| e.to_string())?;
            let uri = enrolled.secret.otpauth_uri(name.as_str());
            println!("{uri}");
            println!("{}", qr(&uri)?);
            println!(
                "scan the code (or enter the URI) in an authenticator app; it is shown only now."
            );
            if enrolled.replaced {
                println!("the previous TOTP secret of {name} no longer works.");
            }
            Ok(())
        }
    }
}

/// The database and the operator named in the audit log.
async fn acting(
    config: Option<PathBuf>,
    actor: crate::services::audit::Actor,
) -> Result<Admin, String> {
    let mut admin = open(config.as_deref(), false).await?;
    admin.actor = actor;
    Ok(admin)
}

fn admin_name(text: &str) -> Result<AdminName, String> {
    AdminName::parse(text).map_err(|e| format!("invalid name `{}`: {e}", shown(text)))
}

/// The password from a prompt without echo on a terminal (asked twice), else the first line of
/// standard input (its line ending removed).
fn read_password(name: &AdminName) -> Result<AdminPassword, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| format!("reading the password: {e}"))?;
        AdminPassword::parse(first.clone())?;
        let again = rpassword::prompt_password("the same password again: ")
            .map_err(|e| format!("reading the password: {e}"))?;
        if again != first {
            return Err("the two passwords differ; nothing was changed".into());
        }
        return AdminPassword::parse(first);
    }
    // Enough bytes for the longest password in 4-byte characters; a longer line is too long.
    let cap = PASSWORD_MAX_CHARS * 4 + 2;
    let mut line = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    } else if line.len() >= cap {
        return Err(format!(
            "the password is too long: it may have at most {PASSWORD_MAX_CHARS} characters"
        ));
    }
    if line.is_empty() {
        return Err("no password on standard input: give it as the first line".into());
    }
    let text = String::from_utf8(line)
        .map_err(|_| "the password on standard input is not UTF-8 text".to_owned())?;
    AdminPassword::parse(text)
}

/// The QR code of `uri` in Unicode half blocks, two modules a character (light on dark, as most
/// terminals show it).
fn qr(uri: &str) -> Result<String, String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

fn totp_text(admin: &AdminAccount) -> String {
    let state = TotpState::of(admin).as_str();
    if admin.totp_required && TotpState::of(admin) == TotpState::Off {
        format!("{state} (required)")
    } else {
        state.to_owned()
    }
}

fn print_admins(list: &[AdminAccount], now: i64, json: bool) {
    if json {
        let list: Vec<Value> = list
            .iter()
            .map(|a| {
                let locked = is_locked(a, now);
                json!({
                    "name": a.name.as_str(),
                    "role": a.role.as_str(),
                    "totp": TotpState::of(a).as_str(),
                    "totp_required": a.totp_required,
                    "locked": locked,
                    "locked_until": if locked { a.locked_until.map(time) } else { None },
                    "failed_attempts": a.failed_attempts,
                    "created_at": time(a.created_at),
                    "updated_at": time(a.updated_at),
                })
            })
            .collect();
        print_json(&Value::Array(list));
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.to_string(),
                a.role.as_str().to_owned(),
                totp_text(a),
                match a.locked_until {
                    Some(until) if until > now => format!("until {}", time(until)),
                    _ => "no".to_owned(),
                },
                time(a.created_at),
            ]
        })
        .collect();
    println!(
        "{}",
        table(&["NAME", "ROLE", "TOTP", "LOCKED", "CREATED"], &rows)
    );
}
