//! `wxlogin keys list | rotate | retire`: the token signing keys in the configured database.
//!
//! These commands only write stored times; every running instance decides from them, by its own
//! clock, which key signs and which are published, so nothing here has to reach the instances at
//! the right moment. The announcement (with `[redis]`) only makes them reload at once.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Subcommand;

use crate::config::Settings;
use crate::services::audit::{Actor, AuditEvent, KeyKind};
use crate::shared::SharedState;
use crate::store::Store;
use crate::tokens::{KeyState, KeyStatus};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Show every signing key with its state (pending, current, published, retired) and its
    /// times: created, activation, superseded, retires at.
    List {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key: published in the JWKS at once, signing after
    /// `tokens.key_publish_secs`. The key signing until then stays published until its last token
    /// has expired, then retires by itself. Prints the new kid. With `[redis]` running instances
    /// reload at once; otherwise within `tokens.keyring_reload_secs`.
    Rotate {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// Who is rotating, for the audit log (default: $USER, else `cli`).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Retire a superseded key now, before its last token has expired (a leaked key): it leaves
    /// the JWKS and its tokens are refused. The current and a pending key cannot be retired.
    Retire {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// The key's kid, as `keys list` shows it (a kid may begin with `-`: it is taken as the
        /// kid all the same).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Who is retiring it, for the audit log (default: $USER, else `cli`).
        #[arg(long)]
        actor: Option<String>,
    },
}

pub(crate) async fn run(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::List { config, json } => {
            let settings = super::load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            list(&settings, json).await
        }
        KeysCommand::Rotate { config, actor } => {
            let actor = super::audit::actor(actor.as_deref())?;
            let settings = super::load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            rotate_key(&settings, &actor).await
        }
        KeysCommand::Retire { config, kid, actor } => {
            let actor = super::audit::actor(actor.as_deref())?;
            let settings = super::load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            retire(&settings, &kid, &actor).await
        }
    }
}

async fn open_store(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, String> {
    crate::app::open_migrated_store(settings)
        .await
        .map_err(|e| e.to_string())
}

/// With Redis, running instances hear of a change at once instead of at their next reload; Redis
/// being away does not stop the change (the periodic reload is the backstop).
async fn announcer(settings: &Settings) -> Option<SharedState> {
    if !settings.redis.enabled() {
        return None;
    }
    match crate::app::open_shared_state(settings, crate::clock::system()).await {
        Ok(shared) => Some(shared),
        Err(e) => {
            tracing::warn!(error = %e, "cannot announce the change; instances see it at their next periodic reload");
            None
        }
    }
}

#[allow(clippy::print_stdout, clippy::print_stderr)]
async fn rotate_key(settings: &Settings, actor: &Actor) -> Result<(), String> {
    let sealing = settings.security.sealing_key.as_ref().ok_or(
        "security.sealing_key (or security.sealing_key_file) is required: it seals the signing keys",
    )?;
    let store = open_store(settings).await?;
    let clock = crate::clock::system();
    let alg = settings.tokens.algorithm;
    let tokens = &settings.tokens;
    crate::tokens::load_or_create(
        store.as_ref(),
        sealing,
        alg,
        clock.unix_millis(),
        tokens.key_linger(),
    )
    .await
    .map_err(|e| format!("signing keys: {e}"))?;
    let shared = announcer(settings).await;
    let now = clock.unix_millis();
    let rotated = crate::services::signing_keys::rotate(
        store.as_ref(),
        sealing,
        alg,
        now,
        tokens.key_publish(),
        shared.as_ref(),
    )
    .await
    .map_err(|e| format!("signing keys: {e}"))?;
    super::audit::record_key_rotated(store.as_ref(), actor, &rotated.kid).await;
    println!("{}", rotated.kid);
    let retires = rotated
        .activates_at
        .saturating_add(millis(tokens.key_linger()));
    eprintln!(
        "published now; signs from {} (in {} s); the key signing until then retires at {}",
        time(rotated.activates_at),
        rotated.activates_at.saturating_sub(now).max(0) / 1000,
        time(retires),
    );
    let reload_and_cache = tokens.keyring_reload_secs.saturating_add(JWKS_MAX_AGE_SECS);
    if shared.is_none() && tokens.key_publish_secs < reload_and_cache {
        eprintln!(
            "warning: tokens.key_publish_secs ({}) is shorter than tokens.keyring_reload_secs plus \
             the JWKS cache lifetime ({reload_and_cache} s): an instance or a verifier may see a \
             token of the new key before it knows the key",
            tokens.key_publish_secs
        );
    }
    Ok(())
}

/// The `max-age` of `GET /.well-known/jwks.json`.
const JWKS_MAX_AGE_SECS: u64 = 300;

#[allow(clippy::print_stdout)]
async fn retire(settings: &Settings, kid: &str, actor: &Actor) -> Result<(), String> {
    let store = open_store(settings).await?;
    let shared = announcer(settings).await;
    let now = crate::clock::system().unix_millis();
    crate::services::signing_keys::retire(
        store.as_ref(),
        kid,
        now,
        settings.tokens.key_linger(),
        shared.as_ref(),
    )
    .await
    .map_err(|e| format!("signing keys: {e}"))?;
    let event = AuditEvent::KeyRetired {
        key: KeyKind::Signing,
        kid: kid.to_owned(),
    };
    super::audit::record(store.as_ref(), actor, event).await;
    println!("retired {kid}");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn list(settings: &Settings, json: bool) -> Result<(), String> {
    let store = open_store(settings).await?;
    let records = store
        .list_signing_keys()
        .await
        .map_err(|e| format!("signing keys: {e}"))?;
    let now = crate::clock::system().unix_millis();
    let keys = crate::tokens::key_statuses(&records, now, settings.tokens.key_linger());
    if json {
        let rows: Vec<serde_json::Value> = keys.iter().map(json_row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if keys.is_empty() {
        println!("no signing key yet: the first `serve` (or `keys rotate`) creates one");
        return Ok(());
    }
    println!(
        "{:<43}  {:<5}  {:<9}  {:<20}  {:<20}  {:<20}  {:<20}",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATION", "SUPERSEDED", "RETIRES AT"
    );
    for key in &keys {
        println!(
            "{:<43}  {:<5}  {:<9}  {:<20}  {:<20}  {:<20}  {:<20}",
            key.kid,
            key.alg.as_str(),
            key.state.as_str(),
            time(key.created_at),
            time(key.activates_at),
            key.superseded_at.map_or_else(|| "-".to_owned(), time),
            key.retires_at.map_or_else(|| "-".to_owned(), time),
        );
    }
    Ok(())
}

fn json_row(key: &KeyStatus) -> serde_json::Value {
    serde_json::json!({
        "kid": key.kid,
        "alg": key.alg.as_str(),
        "state": key.state,
        "created_at": time(key.created_at),
        "activates_at": time(key.activates_at),
        "superseded_at": key.superseded_at.map(time),
        "retires_at": key.retires_at.map(time),
        "signs": key.state == KeyState::Current,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC, to the second.
fn time(unix_millis: i64) -> String {
    let at = u64::try_from(unix_millis)
        .ok()
        .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    humantime::format_rfc3339_seconds(at).to_string()
}
