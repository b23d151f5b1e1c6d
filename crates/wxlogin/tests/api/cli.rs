//! The `wxlogin` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

fn wxlogin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090 (and dev's console
        // 127.0.0.1:8090).
        .env("WXLOGIN_METRICS__LISTEN", "")
        .env("WXLOGIN_ADMIN__LISTEN", "");
    command
}

/// Polls `url` until it answers 200 (five seconds at most) and returns that answer.
async fn wait_until_up(url: &str) -> reqwest::Response {
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(url).await
            && response.status() == 200
        {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not come up");
}

/// Sends SIGTERM, as a service manager would, and waits for the process to exit.
async fn stop_with_sigterm(mut child: std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

struct Config {
    dir: tempfile::TempDir,
    path: std::path::PathBuf,
    sealing_key: String,
}

fn config(base_url: &str, listen: &str, with_sealing_key: bool) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let sealing = if with_sealing_key {
        format!("sealing_key = \"{sealing_key}\"")
    } else {
        String::new()
    };
    let text = format!(
        r#"
[server]
listen = "{listen}"
data_dir = "{data}"
# Loopback on purpose: these processes are reached by the test itself.
allow_insecure_public_url = true

[security]
{sealing}

[wechat]
base_url = "{base_url}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"

[[services]]
client_id = "{SERVICE_ID}"
client_secret = "{SERVICE_SECRET}"
"#,
        data = dir.path().display(),
    );
    let path = dir.path().join("wxlogin.toml");
    std::fs::write(&path, text).unwrap();
    Config {
        dir,
        path,
        sealing_key,
    }
}

#[test]
fn config_check_prints_the_effective_configuration_with_secrets_redacted() {
    let config = config("https://api.weixin.qq.com", "127.0.0.1:8080", true);
    let output = wxlogin()
        .args(["config", "check", "--config"])
        .arg(&config.path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("<redacted>"));
    assert!(stdout.contains("wx0000000000000001"));
    assert!(stdout.contains("# ok"));
    for secret in [DEMO_SECRET, SERVICE_SECRET, config.sealing_key.as_str()] {
        assert!(!stdout.contains(secret));
    }
}

#[test]
fn serve_refuses_a_simulator_without_allow_mock_and_a_missing_sealing_key() {
    let simulator = config("http://127.0.0.1:9", "127.0.0.1:0", true);
    let output = wxlogin()
        .args(["serve", "--config"])
        .arg(&simulator.path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-mock"), "{stderr}");

    let keyless = config("https://api.weixin.qq.com", "127.0.0.1:0", false);
    let output = wxlogin()
        .args(["serve", "--config"])
        .arg(&keyless.path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("sealing_key"), "{stderr}");

    let unknown = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        unknown.path(),
        "[server]\nlisten = \"127.0.0.1:0\"\nlistne = 1\n",
    )
    .unwrap();
    let output = wxlogin()
        .args(["serve", "--config"])
        .arg(unknown.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listne"));
}

#[test]
fn migrate_creates_the_database_and_its_directory() {
    let config = config("https://api.weixin.qq.com", "127.0.0.1:0", true);
    let db = config.dir.path().join("nested/dir/wxlogin.db");
    let output = wxlogin()
        .args(["migrate", "--config"])
        .arg(&config.path)
        .env(
            "WXLOGIN_DATABASE__URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(db.exists());
}

#[tokio::test]
async fn serve_runs_against_a_simulator_with_allow_mock_and_stops_on_sigterm() {
    let wx = TestWechat::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(&wx.handle.base_url(), &format!("127.0.0.1:{port}"), true);
    let child = wxlogin()
        .args(["serve", "--allow-mock", "--config"])
        .arg(&config.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/readyz")).await;
    let code = wx.mock().mint_login_code(DEMO_APPID, "oscar").unwrap().code;
    let login = reqwest::Client::new()
        .post(format!("{base}/v1/auth/wechat/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let status = stop_with_sigterm(child).await;
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
}

#[tokio::test]
async fn mock_wechat_serves_the_simulator_on_the_given_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = wxlogin()
        .args(["mock-wechat", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let stats: serde_json::Value = wait_until_up(&format!("{base}/__mock/stats"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["calls"]["jscode2session"], 0);
    let unknown: serde_json::Value = reqwest::get(format!("{base}/sns/jsCode2Session"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["errcode"], 40066);
    let status = stop_with_sigterm(child).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn users_import_creates_users_from_a_csv_and_refuses_a_bad_file_whole() {
    let config = config("https://api.weixin.qq.com", "127.0.0.1:0", true);
    let db = config.dir.path().join("wxlogin.db");
    let import = |file: &std::path::Path| {
        wxlogin()
            .args(["users", "import", "--config"])
            .arg(&config.path)
            .arg(file)
            .env(
                "WXLOGIN_DATABASE__URL",
                format!("sqlite://{}", db.display()),
            )
            .output()
            .unwrap()
    };
    let good = config.dir.path().join("phones.csv");
    std::fs::write(&good, "phone\n13800138000\n+852 61234567\n13800138000\n").unwrap();
    let output = import(&good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("imported 2 new user(s)"), "{stdout}");
    assert!(stdout.contains("1 duplicate row(s)"), "{stdout}");
    // Run again: nothing new, nothing doubled.
    let output = import(&good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("imported 0 new user(s); 2 number(s) already had a user"),
        "{stdout}"
    );

    // One bad row refuses the whole file; the message names the line, not the number.
    let bad = config.dir.path().join("bad.csv");
    std::fs::write(&bad, "13900139000\n1234567\n").unwrap();
    let output = import(&bad);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("1234567"), "{stderr}");
    use wxlogin::store::Store as _;
    let store = wxlogin::store::SqliteStore::connect(&db).await.unwrap();
    let phone = wxlogin::domain::Phone::new("86", "13900139000").unwrap();
    assert!(store.find_user_by_phone(&phone).await.unwrap().is_none());
    let imported = wxlogin::domain::Phone::new("852", "61234567").unwrap();
    assert!(store.find_user_by_phone(&imported).await.unwrap().is_some());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn dev_refuses_a_public_address_without_public() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["--listen", "0.0.0.0:0", "--mock-listen", "127.0.0.1:0"],
        ["--listen", "127.0.0.1:0", "--mock-listen", "0.0.0.0:0"],
    ] {
        let output = wxlogin()
            .arg("dev")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("refusing to listen on 0.0.0.0:0"),
            "{stderr}"
        );
        assert!(stderr.contains("--public"), "{stderr}");
    }
    // The same address through the configuration is refused too.
    let output = wxlogin()
        .args(["dev", "--mock-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("WXLOGIN_SERVER__LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to listen"));
}

#[tokio::test]
async fn dev_takes_a_config_file_and_the_environment_over_its_generated_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (port, mock_port) = (free_port(), free_port());
    let config = dir.path().join("dev.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n[tokens]\nrefresh_ttl_secs = 3600\n"),
    )
    .unwrap();
    let child = wxlogin()
        .args(["dev", "--mock-listen", &format!("127.0.0.1:{mock_port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("WXLOGIN_TOKENS__ACCESS_TTL_SECS", "60")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/readyz")).await;
    let client = reqwest::Client::new();
    let minted: serde_json::Value = client
        .post(format!("http://127.0.0.1:{mock_port}/__mock/login"))
        .json(&serde_json::json!({ "appid": DEMO_APPID, "user": "dana" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login: serde_json::Value = client
        .post(format!("{base}/v1/auth/wechat/login"))
        .json(&serde_json::json!({ "code": minted["code"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Messages name the fields only: the answer holds live tokens.
    assert_eq!(login["expires_in"], 60, "expires_in from the environment");
    // A real clock: the second may turn between issuing and answering.
    let refresh = login["refresh_expires_in"].as_u64().unwrap();
    assert!(
        (3590..=3600).contains(&refresh),
        "refresh_expires_in from the file: {refresh}"
    );
    let status = stop_with_sigterm(child).await;
    assert!(status.success(), "{status}");
}

/// Starts `dev` with its console on `console_port` and returns it with the password its welcome
/// text printed for the operator `dev`.
fn dev_with_console(
    data_dir: &std::path::Path,
    port: u16,
    console_port: u16,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = wxlogin()
        .args(["dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--mock-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("WXLOGIN_ADMIN__LISTEN", format!("127.0.0.1:{console_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read on a thread of its own to the end, so that the server never writes to a closed pipe.
    let stdout = child.stdout.take().unwrap();
    let (found, line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for text in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if text.trim_start().starts_with("console") {
                let _ = found.send(text);
            }
        }
    });
    let line = line
        .recv_timeout(Duration::from_secs(30))
        .expect("the welcome text names the console");
    assert!(
        line.contains(&format!("http://127.0.0.1:{console_port}/")),
        "{line}"
    );
    let password = line
        .split("password ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("the welcome text shows the password")
        .to_owned();
    (child, password)
}

/// Signs `dev` in to the console with `password`: the status of the answer to the form.
async fn console_sign_in(console_port: u16, password: &str) -> reqwest::StatusCode {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{console_port}");
    let page = browser
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = page[at..].split('"').next().unwrap();
    let response = browser
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([("csrf", csrf), ("name", "dev"), ("password", password)])
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let signed_in = response.status() == reqwest::StatusCode::SEE_OTHER
        && response.headers()["location"] == "/";
    if signed_in {
        reqwest::StatusCode::OK
    } else {
        response.status()
    }
}

#[tokio::test]
async fn dev_serves_the_console_with_a_new_password_for_its_operator_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let (port, console_port) = (free_port(), free_port());
    let (first, password) = dev_with_console(dir.path(), port, console_port);
    assert!(password.len() >= 20, "a long random password");
    assert_eq!(console_sign_in(console_port, &password).await, 200);
    assert!(stop_with_sigterm(first).await.success());

    let (second, again) = dev_with_console(dir.path(), port, console_port);
    assert_ne!(again, password, "a new password at every start");
    assert_ne!(console_sign_in(console_port, &password).await, 200);
    assert_eq!(console_sign_in(console_port, &again).await, 200);
    assert!(stop_with_sigterm(second).await.success());
}

#[tokio::test]
async fn serve_logs_one_plain_line_per_request_with_route_status_duration_client_and_user() {
    let wx = TestWechat::spawn().await;
    let port = free_port();
    let config = config(&wx.handle.base_url(), &format!("127.0.0.1:{port}"), true);
    let child = wxlogin()
        .args(["serve", "--allow-mock", "--config"])
        .arg(&config.path)
        .env("WXLOGIN_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/readyz")).await;
    let code = wx.mock().mint_login_code(DEMO_APPID, "lena").unwrap().code;
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/v1/auth/wechat/login"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = login["user"]["id"].as_str().unwrap().to_owned();
    let me = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let verify = client
        .get(format!("{base}/v1/auth/verify"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let mut child = child;
    let stdout = child.stdout.take().unwrap();
    let status = stop_with_sigterm(child).await;
    assert!(status.success(), "{status}");
    let text = std::io::read_to_string(stdout).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes when the output is not a terminal"
    );
    let me_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("route=/v1/me ") && l.contains(" request "))
        .collect();
    assert_eq!(me_lines.len(), 1, "one line for GET /v1/me:\n{text}");
    let line = me_lines[0];
    for part in [
        "method=GET",
        "client_ip=127.0.0.1",
        &format!("user={user}"),
        "status=200",
        "duration_ms=",
        "request_id=",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("route=/v1/auth/wechat/login ") && l.contains("status=200")),
        "the login's line:\n{text}"
    );
    // The layout: time, level, the request's fields, the target, the message and its own fields.
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "{line}");
    assert!(rest.starts_with(" INFO request{request_id="), "{line}");
    assert!(
        rest.contains(&format!(
            " method=GET route=/v1/me client_ip=127.0.0.1 user={user}}}: wxlogin::http::middleware: request status=200 duration_ms="
        )),
        "{line}"
    );
    assert!(
        text.lines().any(|l| l.contains("route=/v1/auth/verify ")
            && l.contains(&format!(" user={user}}}"))
            && l.contains("status=200")),
        "forward auth names the user it identified:\n{text}"
    );
}
