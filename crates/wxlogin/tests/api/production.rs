//! What `wxlogin serve` and `wxlogin config check` refuse beyond a valid configuration: a public URL
//! that is not https or is a loopback address, a sealing key that is not random, short service
//! secrets. Through the binary, as an operator meets them.

use std::process::Command;

use crate::helpers::*;

fn wxlogin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        // Off: processes of parallel tests would all want 127.0.0.1:9090.
        .env("WXLOGIN_METRICS__LISTEN", "");
    command
}

const GOOD_SERVICE_SECRET: &str = "orders-service-secret-0123456789abcdef";

/// A production-ready file, with `server`, `security` and `service_secret` replaceable.
fn config_file(
    dir: &std::path::Path,
    server: &str,
    sealing_key: &str,
    service_secret: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
{server}

[security]
sealing_key = "{sealing_key}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"

[[services]]
client_id = "orders"
client_secret = "{service_secret}"
"#,
        data = dir.display(),
    );
    let path = dir.join("wxlogin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `config check` (and, for the first refusal, `serve`): success, and the error text.
fn check(path: &std::path::Path) -> (bool, String) {
    let output = wxlogin()
        .args(["config", "check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const PUBLIC: &str = r#"public_url = "https://login.example.com""#;

#[test]
fn a_production_configuration_passes() {
    let dir = tempfile::tempdir().unwrap();
    let key = wxlogin::crypto::SealingKey::generate_base64();
    let (ok, stderr) = check(&config_file(dir.path(), PUBLIC, &key, GOOD_SERVICE_SECRET));
    assert!(ok, "{stderr}");
}

#[test]
fn a_loopback_or_plain_http_public_url_is_refused_without_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let key = wxlogin::crypto::SealingKey::generate_base64();
    for server in [
        "",
        r#"public_url = "http://127.0.0.1:8080""#,
        r#"public_url = "https://localhost:8443""#,
        r#"public_url = "https://[::1]""#,
        r#"public_url = "https://127.0.0.1""#,
        r#"public_url = "http://login.example.com""#,
    ] {
        let path = config_file(dir.path(), server, &key, GOOD_SERVICE_SECRET);
        let (ok, stderr) = check(&path);
        assert!(!ok, "accepted {server:?}");
        assert!(stderr.contains("server.public_url"), "{server:?}: {stderr}");
        assert!(
            stderr.contains("allow_insecure_public_url"),
            "names the override: {stderr}"
        );

        let allowed = format!("{server}\nallow_insecure_public_url = true");
        let path = config_file(dir.path(), &allowed, &key, GOOD_SERVICE_SECRET);
        let (ok, stderr) = check(&path);
        assert!(ok, "{allowed:?}: {stderr}");
    }

    let path = config_file(dir.path(), "", &key, GOOD_SERVICE_SECRET);
    let serve = wxlogin()
        .args(["serve", "--allow-mock", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !serve.status.success(),
        "serve refuses it too, --allow-mock or not"
    );
    assert!(String::from_utf8_lossy(&serve.stderr).contains("server.public_url"));
}

#[test]
fn a_sealing_key_that_is_not_random_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let weak = [
        STANDARD_ZEROES.to_owned(),
        "ff".repeat(32),
        "0123456789abcdef".repeat(4),
        hex_of(b"wxlogin-wxlogin-wxlogin-wxlogin-"),
        hex_of(b"aaaaaaaaaabbbbbbbbbbccccccccccdd"),
    ];
    for key in &weak {
        let path = config_file(dir.path(), PUBLIC, key, GOOD_SERVICE_SECRET);
        let (ok, stderr) = check(&path);
        assert!(!ok, "accepted a weak key");
        assert!(stderr.contains("security.sealing_key"), "{stderr}");
        assert!(!stderr.contains(key.as_str()), "the key is not echoed");
        let serve = wxlogin()
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!serve.status.success());
    }
}

const STANDARD_ZEROES: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn service_secrets_shorter_than_32_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = wxlogin::crypto::SealingKey::generate_base64();
    let short = "orders-secret-0123456789abcde";
    assert_eq!(short.len(), 29);
    let (ok, stderr) = check(&config_file(dir.path(), PUBLIC, &key, short));
    assert!(!ok);
    assert!(stderr.contains("services.client_secret"), "{stderr}");
    assert!(stderr.contains("orders"), "names the service: {stderr}");
    assert!(!stderr.contains(short), "the secret is not echoed");
    let exactly = "orders-secret-0123456789abcdefgh";
    assert_eq!(exactly.len(), 32);
    let (ok, stderr) = check(&config_file(dir.path(), PUBLIC, &key, exactly));
    assert!(ok, "{stderr}");
}
