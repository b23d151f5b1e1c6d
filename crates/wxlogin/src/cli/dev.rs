//! `wxlogin dev`: the server on SQLite with generated keys, pointed at the built-in WeChat
//! simulator, so a new user can log a simulated mini program user in with one command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::app::Application;
use crate::config::{AppSettings, Registration, ServiceSettings, Settings};
use crate::crypto::SealingKey;
use crate::domain::{AppId, AppSecret};

/// The credential `dev` configures for `POST /v1/introspect`.
pub const DEV_SERVICE_ID: &str = "demo-service";
pub const DEV_SERVICE_SECRET: &str = "demo-service-secret-change-me";

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where wxlogin listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the WeChat simulator listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub mock_listen: SocketAddr,
    /// The SQLite database and the generated sealing key live here.
    #[arg(long, default_value = "wxlogin-dev")]
    pub data_dir: PathBuf,
}

/// Reads the sealing key beside the database, or generates it (readable by this user only).
fn sealing_key(data_dir: &Path) -> Result<SealingKey, String> {
    let path = data_dir.join("sealing.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return SealingKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let text = SealingKey::generate_base64();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a sealing key");
    SealingKey::parse(&text).map_err(|e| e.to_string())
}

/// The settings `dev` runs with.
pub fn dev_settings(args: &DevArgs, mock_url: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    settings.server.listen = args.listen;
    settings.server.data_dir = args.data_dir.clone();
    settings.database.url = Some(format!(
        "sqlite://{}",
        args.data_dir.join("wxlogin.db").display()
    ));
    settings.security.sealing_key = Some(sealing_key(&args.data_dir)?);
    settings.wechat.base_url = mock_url.to_owned();
    settings.apps = vec![AppSettings {
        appid: AppId::parse(wechat_mock::DEMO_APPID).map_err(|e| e.to_string())?,
        secret: AppSecret::parse(wechat_mock::DEMO_SECRET).map_err(|e| e.to_string())?,
        registration: Registration::Auto,
    }];
    settings.services =
        vec![ServiceSettings::new(DEV_SERVICE_ID, DEV_SERVICE_SECRET).map_err(|e| e.to_string())?];
    Ok(settings)
}

pub async fn run(args: DevArgs) -> Result<(), String> {
    crate::telemetry::init(&Default::default());
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let mock_listener = tokio::net::TcpListener::bind(args.mock_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} for the simulator: {e}",
                args.mock_listen
            )
        })?;
    let mock_addr = mock_listener.local_addr().map_err(|e| e.to_string())?;
    let mock_url = format!("http://{mock_addr}");
    let settings = dev_settings(&args, &mock_url)?;
    let app = Application::build(settings, crate::clock::system())
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr();
    let (stop_mock, mock_stopped) = tokio::sync::oneshot::channel::<()>();
    let mock = tokio::spawn(wechat_mock::serve(
        mock_listener,
        wechat_mock::Mock::new(wechat_mock::MockConfig::demo()),
        async move {
            let _ = mock_stopped.await;
        },
    ));
    tracing::warn!(simulator = %mock_url, "DEV MODE: WeChat is the built-in SIMULATOR; logins are not real");
    print_welcome(addr, mock_addr, &args.data_dir);
    let result = app
        .run_until_stopped(super::shutdown_signal())
        .await
        .map_err(|e| format!("server stopped: {e}"));
    let _ = stop_mock.send(());
    let _ = mock.await;
    result
}

#[allow(clippy::print_stdout)]
fn print_welcome(addr: SocketAddr, mock: SocketAddr, data_dir: &Path) {
    println!(
        r#"
wxlogin dev is running
  server     http://{addr}   (API reference: http://{addr}/docs)
  simulator  http://{mock}   (demo app {appid})
  data       {data}/ (SQLite database, sealing key)

Try it (or follow the README walkthrough):
  CODE=$(curl -s -X POST http://{mock}/__mock/login -H 'content-type: application/json' \
    -d '{{"appid":"{appid}","user":"alice"}}' | sed 's/.*"code":"\([^"]*\)".*/\1/')
  curl -s -X POST http://{addr}/v1/auth/wechat/login -H 'content-type: application/json' \
    -d "{{\"code\":\"$CODE\"}}"
"#,
        appid = wechat_mock::DEMO_APPID,
        data = data_dir.display(),
    );
}
