//! The command line: `wxlogin dev | serve | migrate | users | sessions | wechat | keys |
//! sealing-key | admins | audit | config check | mock-wechat`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod admin_wechat;
mod admins;
mod audit;
#[cfg(feature = "simulator")]
mod dev;
mod keys;
mod sealing_key;

use crate::app::Application;
use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "wxlogin",
    version,
    about = "A self-hosted login server for WeChat Mini Programs"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run locally against the built-in WeChat simulator, with SQLite and generated keys.
    #[cfg(feature = "simulator")]
    Dev(dev::DevArgs),
    /// Run against real WeChat with a configuration file.
    Serve {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// Accept a WeChat base URL that points at a simulator (tests and staging only).
        #[arg(long)]
        allow_mock: bool,
    },
    /// Apply the database migrations, import the avatar files of `<data_dir>/avatars` that users
    /// still point at, and exit.
    Migrate {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// User administration.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Session administration.
    Sessions {
        #[command(subcommand)]
        command: admin::SessionsCommand,
    },
    /// WeChat access tokens of the configured apps.
    Wechat {
        #[command(subcommand)]
        command: admin_wechat::WechatCommand,
    },
    /// Token signing keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The sealing key of stored secrets: rotate, reseal, status.
    SealingKey {
        #[command(subcommand)]
        command: sealing_key::SealingKeyCommand,
    },
    /// Administrators of the console: add, list, remove, reset-password, totp.
    Admins {
        #[command(subcommand)]
        command: admins::AdminsCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the offline WeChat API simulator (never for production).
    #[cfg(feature = "simulator")]
    MockWechat {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// TOML file with `[[apps]]`; without it, the demo app wx0000000000000001.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create users from a CSV of phone numbers (for apps with `registration = "closed"`): one
    /// number per row, `13800138000`, `+852 61234567` or `country_code,number`. Every row is
    /// checked first; a bad row refuses the whole file. Numbers that already have a user are kept.
    Import {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// The CSV file (`-` for standard input).
        file: PathBuf,
        /// Who is importing, for the audit log (default: $USER, else `cli`).
        #[arg(long)]
        actor: Option<String>,
    },
    #[command(flatten)]
    Admin(admin::UsersAdmin),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) and check it for `serve`.
    Check {
        #[arg(long, short, env = "WXLOGIN_CONFIG")]
        config: Option<PathBuf>,
        /// Check as `serve --allow-mock` would.
        #[arg(long)]
        allow_mock: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// Errors before (or instead of) logging go to stderr as one line.
#[allow(clippy::print_stderr)]
fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("wxlogin: {message}");
    ExitCode::FAILURE
}

fn load(config: Option<&Path>) -> Result<Settings, String> {
    Settings::load(config).map_err(|e| e.to_string())
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        #[cfg(feature = "simulator")]
        Command::Dev(args) => dev::run(args).await,
        Command::Serve { config, allow_mock } => {
            let settings = load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            settings
                .check_for_production(allow_mock)
                .map_err(|e| e.to_string())?;
            serve(settings).await
        }
        Command::Migrate { config } => {
            let settings = load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            let store = crate::app::open_migrated_store(&settings)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("migrations applied");
            crate::services::avatar_files::import(
                store.as_ref(),
                &settings,
                crate::clock::system().unix_millis(),
            )
            .await
            .map_err(|e| format!("importing avatar files: {e}"))?;
            Ok(())
        }
        Command::Users {
            command:
                UsersCommand::Import {
                    config,
                    file,
                    actor,
                },
        } => {
            let actor = audit::actor(actor.as_deref())?;
            let settings = load(config.as_deref())?;
            crate::telemetry::init(&settings.log);
            import_users(&settings, &file, &actor).await
        }
        Command::Users {
            command: UsersCommand::Admin(command),
        } => admin::users(command).await,
        Command::Sessions { command } => admin::sessions(command).await,
        Command::Wechat { command } => admin_wechat::wechat(command).await,
        Command::Keys { command } => keys::run(command).await,
        Command::SealingKey { command } => sealing_key::run(command).await,
        Command::Admins { command } => admins::run(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Config {
            command: ConfigCommand::Check { config, allow_mock },
        } => config_check(config.as_deref(), allow_mock),
        #[cfg(feature = "simulator")]
        Command::MockWechat { listen, config } => {
            crate::telemetry::init(&Default::default());
            mock_wechat(listen, config).await
        }
    }
}

#[allow(clippy::print_stdout)]
fn config_check(config: Option<&Path>, allow_mock: bool) -> Result<(), String> {
    let settings = load(config)?;
    println!("{}", settings.to_redacted_toml());
    for warning in crate::config::unlisted_scope_warnings(&settings.services) {
        println!("# warning: {warning}");
    }
    settings
        .check_for_production(allow_mock)
        .map_err(|e| e.to_string())?;
    println!("# ok: this configuration can `serve`");
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn import_users(
    settings: &Settings,
    file: &Path,
    actor: &crate::services::audit::Actor,
) -> Result<(), String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?
    };
    let store = crate::app::open_migrated_store(settings)
        .await
        .map_err(|e| e.to_string())?;
    let report =
        crate::services::import::import_phones(store.as_ref(), &text, &crate::clock::system())
            .await
            .map_err(|e| e.to_string())?;
    let event = crate::services::audit::AuditEvent::UsersImported {
        created: report.created as u64,
        existing: report.existing as u64,
        duplicates: report.duplicates as u64,
    };
    audit::record(store.as_ref(), actor, event).await;
    println!(
        "imported {} new user(s); {} number(s) already had a user; {} duplicate row(s) skipped",
        report.created, report.existing, report.duplicates
    );
    Ok(())
}

/// Runs the server until SIGINT or SIGTERM.
async fn serve(settings: Settings) -> Result<(), String> {
    let app = Application::build(settings, crate::clock::system())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(addr = %app.local_addr(), "wxlogin listening");
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!(addr = %metrics, "metrics listening (GET /metrics)");
    }
    if let Some(console) = app.admin_addr() {
        tracing::info!(addr = %console, "admin console listening");
    }
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| format!("server stopped: {e}"))
}

#[cfg(feature = "simulator")]
async fn mock_wechat(listen: SocketAddr, config: Option<PathBuf>) -> Result<(), String> {
    let config = match &config {
        Some(path) => wechat_mock::MockConfig::from_toml_file(path)
            .map_err(|e| format!("simulator config {}: {e}", path.display()))?,
        None => wechat_mock::MockConfig::demo(),
    };
    let apps: Vec<&str> = config.apps.iter().map(|a| a.appid.as_str()).collect();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::warn!(%addr, ?apps, "WeChat SIMULATOR listening: an offline test double, never point production at it");
    wechat_mock::serve(listener, wechat_mock::Mock::new(config), shutdown_signal())
        .await
        .map_err(|e| format!("simulator stopped: {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
