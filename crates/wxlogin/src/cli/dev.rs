//! `wxlogin dev`: the server on SQLite with generated keys, pointed at the built-in WeChat
//! simulator, so a new user can log a simulated mini program user in with one command.
//!
//! Its settings are layered like `serve`'s, with the generated ones as the base: defaults → the
//! generated dev settings → `--config FILE` → `WXLOGIN_*` variables → `--listen`. So a developer
//! can, say, shorten the access-token lifetime with `WXLOGIN_TOKENS__ACCESS_TTL_SECS=60` to watch a
//! client renew. Apps a config file adds are added to the simulator too. `wechat.base_url` always
//! points at the simulator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::app::Application;
use crate::config::Settings;
use crate::crypto::SealingKey;

/// The credential `dev` configures for `POST /v1/introspect`.
pub(crate) const DEV_SERVICE_ID: &str = "demo-service";
pub(crate) const DEV_SERVICE_SECRET: &str = "demo-service-secret-change-me";

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The console's administrator in dev: an operator, given a new password at every start.
pub(crate) const DEV_ADMIN: &str = "dev";

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Where wxlogin listens [default: 127.0.0.1:8080, or server.listen of the configuration].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where the WeChat simulator listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    mock_listen: SocketAddr,
    /// The SQLite database and the generated sealing key live here.
    #[arg(long, default_value = "wxlogin-dev")]
    data_dir: PathBuf,
    /// A configuration file over the generated settings (as for `serve`).
    #[arg(long, short, env = "WXLOGIN_CONFIG")]
    config: Option<PathBuf>,
    /// Allow listening on addresses other than loopback. dev serves a demo service secret and the
    /// simulator mints login codes for anyone: only for a trusted network.
    #[arg(long)]
    public: bool,
}

/// Reads the sealing key beside the database, or generates it (readable by this user only).
fn sealing_key(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("sealing.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        SealingKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(text.trim().to_owned());
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
    Ok(text)
}

/// The generated layer: SQLite and the sealing key in the data directory, the demo app and the
/// demo service credential.
fn generated(data_dir: &Path) -> Result<toml::Table, String> {
    let text = format!(
        r#"
[server]
listen = "{DEFAULT_LISTEN}"
data_dir = {data_dir}

[database]
url = {database}

[security]
sealing_key = "{sealing_key}"

[[apps]]
appid = "{appid}"
secret = "{secret}"

# Every scope, listed so that dev does not warn: the demo service tries every endpoint.
[[services]]
client_id = "{DEV_SERVICE_ID}"
client_secret = "{DEV_SERVICE_SECRET}"
scopes = ["introspect", "users:read", "phone:read", "wechat:token", "wechat:token:invalidate"]

# Off in dev (a Prometheus of the developer's may well have 127.0.0.1:9090); a config file or
# WXLOGIN_METRICS__LISTEN=127.0.0.1:9091 turns it on.
[metrics]
listen = ""

# The admin console, on loopback; the operator `dev` gets a new password at every start, printed
# below. WXLOGIN_ADMIN__LISTEN= (empty) turns it off.
[admin]
listen = "127.0.0.1:8090"
"#,
        data_dir = toml::Value::from(data_dir.display().to_string()),
        database = toml::Value::from(format!(
            "sqlite://{}",
            data_dir.join("wxlogin.db").display()
        )),
        sealing_key = sealing_key(data_dir)?,
        appid = wechat_mock::DEMO_APPID,
        secret = wechat_mock::DEMO_SECRET,
    );
    text.parse::<toml::Table>()
        .map_err(|e| format!("the generated dev settings: {e}"))
}

/// The settings `dev` runs with (see the module docs for the layers), but for `wechat.base_url`,
/// which points at the simulator once it is bound.
fn dev_settings(args: &DevArgs) -> Result<Settings, String> {
    let mut settings = Settings::load_over(generated(&args.data_dir)?, args.config.as_deref())
        .map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        settings.server.listen = listen;
    }
    Ok(settings)
}

/// dev must not expose its demo secret and the simulator's code minting by accident.
fn check_loopback(what: &str, addr: SocketAddr, public: bool) -> Result<(), String> {
    if public || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} for {what}: dev serves a demo service secret and the \
         simulator mints login codes for anyone who asks. Use a loopback address, or pass \
         --public on a trusted network"
    ))
}

/// The simulator knows the demo app and every app of the settings.
fn simulator_config(settings: &Settings) -> wechat_mock::MockConfig {
    let mut config = wechat_mock::MockConfig::demo();
    for app in &settings.apps {
        if app.appid.as_str() != wechat_mock::DEMO_APPID {
            config.apps.push(
                wechat_mock::AppConfig::new(app.appid.as_str(), app.secret.expose_secret())
                    .with_open_platform(wechat_mock::DEMO_OPEN_PLATFORM),
            );
        }
    }
    config
}

pub(crate) async fn run(args: DevArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    check_loopback("the simulator", args.mock_listen, args.public)?;
    let mut settings = dev_settings(&args)?;
    crate::telemetry::init(&settings.log);
    check_loopback("wxlogin", settings.server.listen, args.public)?;
    if let Some(metrics) = settings.metrics.listen {
        check_loopback("the metrics", metrics, args.public)?;
    }
    if let Some(console) = settings.admin.listen {
        check_loopback("the admin console", console, args.public)?;
    }
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
    settings.wechat.base_url = mock_url.clone();
    let mock_config = simulator_config(&settings);
    let app = Application::build(settings, crate::clock::system())
        .await
        .map_err(|e| e.to_string())?;
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let console = match app.admin_addr() {
        Some(console) => Some((console, dev_admin(&app).await?)),
        None => None,
    };
    let (stop_mock, mock_stopped) = tokio::sync::oneshot::channel::<()>();
    let mock = tokio::spawn(wechat_mock::serve(
        mock_listener,
        wechat_mock::Mock::new(mock_config),
        async move {
            let _ = mock_stopped.await;
        },
    ));
    tracing::warn!(simulator = %mock_url, "DEV MODE: WeChat is the built-in SIMULATOR; logins are not real");
    print_welcome(addr, mock_addr, metrics_addr, console, &args.data_dir);
    let result = app
        .run_until_stopped(super::shutdown_signal())
        .await
        .map_err(|e| format!("server stopped: {e}"));
    let _ = stop_mock.send(());
    let _ = mock.await;
    result
}
/// Makes the console's operator `dev` with a new random password (or gives it one), and returns
/// the password for the welcome text: a new one at every start, shown once.
async fn dev_admin(app: &Application) -> Result<String, String> {
    use base64::Engine as _;
    use rand::RngCore as _;

    use crate::domain::{AdminName, AdminPassword, AdminRole};
    use crate::services::admins::{self, AdminsError};

    let state = app.state();
    let admin = crate::services::admin::Admin {
        store: state.store.clone(),
        actor: crate::services::audit::Actor::System,
        shared: None,
        settings: state.settings.clone(),
        clock: state.clock.clone(),
        local_sessions: None,
    };
    let name = AdminName::parse(DEV_ADMIN)?;
    let mut bytes = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let password = AdminPassword::parse(text.clone())?;
    match admins::add(&admin, &name, AdminRole::Operator, &password).await {
        Ok(_) => {}
        Err(AdminsError::Exists(_)) => {
            admins::reset_password(&admin, &name, &password)
                .await
                .map_err(|e| format!("the console's dev administrator: {e}"))?;
        }
        Err(e) => return Err(format!("the console's dev administrator: {e}")),
    }
    Ok(text)
}

#[allow(clippy::print_stdout)]
fn print_welcome(
    addr: SocketAddr,
    mock: SocketAddr,
    metrics: Option<SocketAddr>,
    console: Option<(SocketAddr, String)>,
    data_dir: &Path,
) {
    let metrics = match metrics {
        Some(metrics) => format!("http://{metrics}/metrics"),
        None => "off (WXLOGIN_METRICS__LISTEN=127.0.0.1:9091 turns them on)".to_owned(),
    };
    let console = match console {
        Some((console, password)) => format!(
            "http://{console}/   (administrator `{DEV_ADMIN}`, password {password}: new at every start)"
        ),
        None => "off (WXLOGIN_ADMIN__LISTEN=127.0.0.1:8090 turns it on)".to_owned(),
    };
    println!(
        r#"
wxlogin dev is running
  server     http://{addr}   (API reference: http://{addr}/docs)
  simulator  http://{mock}   (demo app {appid})
  metrics    {metrics}
  console    {console}
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
