//! The command line: `wxlogin <command>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wxlogin",
    version,
    about = "A self-hosted login server for WeChat Mini Programs"
)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "WXLOGIN_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the offline WeChat API simulator (never for production).
    MockWechat {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// TOML file with `[[apps]]`; without it, the demo app wx0000000000000001.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init(cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::MockWechat { listen, config } => mock_wechat(listen, config).await,
    }
}

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
    tracing::warn!(%addr, ?apps, "WeChat SIMULATOR listening: offline test double, never point production at it");
    wechat_mock::serve(listener, wechat_mock::Mock::new(config), shutdown_signal())
        .await
        .map_err(|e| format!("simulator stopped: {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
