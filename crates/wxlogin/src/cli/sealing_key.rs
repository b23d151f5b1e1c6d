//! `wxlogin sealing-key rotate | reseal | status`: replacing `security.sealing_key`.
//!
//! `rotate` changes nothing: it prints a new key and the steps. The configuration then lists the
//! replaced key in `security.previous_sealing_keys`, so that every instance still opens what it
//! sealed; `reseal` seals every stored value again under the new key while servers run, and
//! `status` counts the values under each key, so the operator knows when the old one can go.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use crate::config::Settings;
use crate::crypto::SealingKey;
use crate::services::resealing::{self, Tally};
use crate::services::wechat_tokens::SharedAccessTokens;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub(crate) enum SealingKeyCommand {
    /// Print a new random sealing key and the steps to switch to it. Changes nothing.
    Rotate,
    /// Seal every stored value again under `security.sealing_key`: safe while servers run,
    /// resumable (run it again after an interruption). Values under the current key are skipped.
    Reseal {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// Values read and written per step (1 to 10000).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Count the stored values under each sealing key: a previous key can be removed from
    /// `security.previous_sealing_keys` once no value is under it.
    Status {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub(crate) async fn run(command: SealingKeyCommand) -> Result<(), String> {
    match command {
        SealingKeyCommand::Rotate => {
            rotate();
            Ok(())
        }
        SealingKeyCommand::Reseal { config, batch } => {
            let settings = super::load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            reseal(&settings, batch).await
        }
        SealingKeyCommand::Status { config } => {
            let settings = super::load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            status(&settings).await
        }
    }
}

fn rotate() {
    use std::io::Write as _;
    let key = SealingKey::generate_base64();
    let id = SealingKey::parse(&key)
        .map(|k| k.key_id().to_string())
        .unwrap_or_default();
    // Written rather than printed: `sealing-key rotate | head -1` closes the pipe early, which is
    // not an error here.
    let _ = writeln!(
        std::io::stdout(),
        "{key}

This is a new sealing key (key id {id}). Nothing was changed. To switch to it:
  1. On every instance, add the key now in security.sealing_key to
     security.previous_sealing_keys (or as a line of security.previous_sealing_keys_file).
  2. Set security.sealing_key (or the file of security.sealing_key_file) to the key above.
  3. Restart the instances one by one with this configuration (`wxlogin sealing-key status`
     shows the current key id); each seals under the new key and still opens the old values.
  4. Run `wxlogin sealing-key reseal --config FILE` (safe while they run; run it again if it is
     interrupted), then `wxlogin sealing-key status --config FILE`.
  5. Once status shows no value under the old key id, remove the old key from
     security.previous_sealing_keys and restart the instances again.
Keep a copy of the new key with the configuration backup, apart from the database backup."
    );
}

struct Opened {
    store: Arc<dyn Store>,
    sealing: SealingKey,
    tokens: Option<SharedAccessTokens>,
}

async fn open(settings: &Settings) -> Result<Opened, String> {
    let sealing = settings.security.sealing_key.clone().ok_or(
        "security.sealing_key (or security.sealing_key_file) is required: values are sealed under it",
    )?;
    let store = crate::app::open_migrated_store(settings)
        .await
        .map_err(|e| e.to_string())?;
    // The shared WeChat access tokens are in Redis only; without it each instance keeps its own.
    let tokens = if settings.redis.enabled() {
        let clock = crate::clock::system();
        let shared = crate::app::open_shared_state(settings, clock.clone())
            .await
            .map_err(|e| e.to_string())?;
        Some(SharedAccessTokens::new(shared, sealing.clone(), clock))
    } else {
        None
    };
    Ok(Opened {
        store,
        sealing,
        tokens,
    })
}

fn line(tally: &Tally) -> String {
    format!(
        "resealed {}, already under the current key {}, changed by a server meanwhile {}, \
         unreadable {}, busy {}",
        tally.resealed, tally.current, tally.changed, tally.unreadable, tally.busy
    )
}

#[allow(clippy::print_stdout)]
async fn reseal(settings: &Settings, batch: u32) -> Result<(), String> {
    let opened = open(settings).await?;
    let apps: Vec<_> = settings.apps.iter().map(|a| a.appid.clone()).collect();
    let shared = opened.tokens.as_ref().map(|t| (t, apps.as_slice()));
    let tally = resealing::reseal(
        opened.store.as_ref(),
        &opened.sealing,
        shared,
        batch,
        |tally| println!("{}", line(tally)),
    )
    .await
    .map_err(|e| format!("reseal: {e}"))?;
    println!("done: {}", line(&tally));
    print_census(&opened, &apps).await?;
    if tally.busy > 0 {
        return Err(format!(
            "{} shared access token(s) were being refreshed: run reseal again",
            tally.busy
        ));
    }
    Ok(())
}

async fn status(settings: &Settings) -> Result<(), String> {
    let opened = open(settings).await?;
    let apps: Vec<_> = settings.apps.iter().map(|a| a.appid.clone()).collect();
    print_census(&opened, &apps).await
}

#[allow(clippy::print_stdout)]
async fn print_census(opened: &Opened, apps: &[crate::domain::AppId]) -> Result<(), String> {
    let shared = opened.tokens.as_ref().map(|t| (t, apps));
    let counts = resealing::census(opened.store.as_ref(), &opened.sealing, shared)
        .await
        .map_err(|e| format!("counting sealed values: {e}"))?;
    let rows = resealing::census_rows(&opened.sealing, &counts);
    println!("{:<30}  {:<8}  VALUES", "KEY ID", "KEY");
    for row in &rows {
        println!(
            "{:<30}  {:<8}  {}",
            row.label,
            row.role.as_str(),
            row.values
        );
    }
    let behind = resealing::behind(&rows);
    if behind == 0 {
        println!("every value is sealed under the current key: previous keys can be removed");
    } else {
        println!(
            "{behind} value(s) not yet under the current key: run `wxlogin sealing-key reseal`"
        );
    }
    Ok(())
}
