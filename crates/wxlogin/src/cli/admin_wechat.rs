//! `wxlogin wechat access-token show | refresh`: the WeChat access token of a configured app, its
//! status (never the token, at most its fingerprint) and a forced refresh for a leaked one,
//! through `services::admin`.
#![allow(clippy::print_stdout)] // printing is what these commands are for

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::admin::{open, print_json, time};
use crate::domain::AppId;
use crate::services::admin::{self, TokenStatus};
use crate::wechat::TokenMode;

/// `wxlogin wechat ...`
#[derive(Debug, Subcommand)]
pub(crate) enum WechatCommand {
    /// The WeChat access tokens of the configured apps.
    AccessToken {
        #[command(subcommand)]
        command: AccessTokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessTokenCommand {
    /// Where the app's token lives and, with [redis], whether one is shared, its fingerprint
    /// (SHA-256 prefix) and expiry. Never the token.
    Show {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        appid: String,
        #[arg(long)]
        json: bool,
    },
    /// Get a new token from WeChat for a leaked one (stable mode: force_refresh, 20 a day, 30 s
    /// apart). With [redis] every server uses it at once.
    Refresh {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        appid: String,
    },
}

fn appid(text: &str) -> Result<AppId, String> {
    AppId::parse(text.trim())
        .map_err(|e| format!("invalid appid `{}`: {e}", super::admin::shown(text)))
}

fn mode_name(mode: TokenMode) -> &'static str {
    match mode {
        TokenMode::Stable => "stable",
        TokenMode::Classic => "classic",
    }
}

pub(crate) async fn wechat(command: WechatCommand) -> Result<(), String> {
    let WechatCommand::AccessToken { command } = command;
    match command {
        AccessTokenCommand::Show {
            config,
            appid: app,
            json,
        } => {
            let app = appid(&app)?;
            let admin = open(config.as_deref(), true).await?;
            let status = admin::access_token_status(&admin, &app)
                .await
                .map_err(|e| e.to_string())?;
            let mode = mode_name(admin.settings.wechat.token_mode);
            let now = admin.clock.unix_millis();
            print_token_status(&app, mode, &status, now, json);
            Ok(())
        }
        AccessTokenCommand::Refresh { config, appid: app } => {
            let app = appid(&app)?;
            let admin = open(config.as_deref(), true).await?;
            let refreshed = admin::refresh_access_token(&admin, &app)
                .await
                .map_err(|e| e.to_string())?;
            let previous = refreshed.previous.as_deref().unwrap_or("unknown");
            println!(
                "{app}: new token {} (was {previous}), expires {}",
                refreshed.new.fingerprint,
                time(refreshed.new.expires_at_ms)
            );
            if refreshed.shared {
                println!("stored in Redis and announced: every running server uses it now");
            } else {
                println!(
                    "no [redis]: running servers keep the token in their memory until it expires or WeChat rejects it; restart them to use the new one at once"
                );
            }
            if refreshed.mode == TokenMode::Stable {
                println!(
                    "the previous token stays valid until its expiry; to invalidate it too, run this again after 30 s"
                );
            } else {
                println!("WeChat keeps the previous token valid for 5 more minutes");
            }
            Ok(())
        }
    }
}

fn print_token_status(app: &AppId, mode: &str, status: &TokenStatus, now: i64, json: bool) {
    let (location, facts) = match status {
        TokenStatus::Shared(facts) => ("redis", facts.as_ref()),
        TokenStatus::PerProcess => ("memory", None),
    };
    let left = facts.map(|f| ((f.expires_at_ms - now).max(0)) / 1000);
    if json {
        print_json(&json!({
            "appid": app,
            "mode": mode,
            "location": location,
            "present": match status {
                TokenStatus::Shared(facts) => Value::Bool(facts.is_some()),
                TokenStatus::PerProcess => Value::Null,
            },
            "fingerprint": facts.map(|f| f.fingerprint.clone()),
            "expires_at": facts.map(|f| time(f.expires_at_ms)),
            "expires_in_secs": left,
        }));
        return;
    }
    println!("appid        {app}");
    println!("mode         {mode}");
    match (status, facts) {
        (TokenStatus::PerProcess, _) => {
            println!("location     per-process memory of each running server (no [redis])");
            println!("present      unknown: this command cannot see a server's memory");
        }
        (TokenStatus::Shared(_), None) => {
            println!("location     Redis (shared by every server)");
            println!("present      no (the next server that needs one fetches it)");
        }
        (TokenStatus::Shared(_), Some(f)) => {
            println!("location     Redis (shared by every server)");
            println!("present      yes");
            println!("fingerprint  {} (SHA-256 prefix)", f.fingerprint);
            println!(
                "expires      {} ({} s left)",
                time(f.expires_at_ms),
                left.unwrap_or(0)
            );
        }
    }
}
