//! The deployment files of `deploy/`, checked with the tools this machine has: no Docker daemon
//! (images are not built here), so the Dockerfile's build step is held to the one CI runs and its
//! health check is run against a real server; the systemd unit goes through `systemd-analyze
//! verify`; the compose file is parsed and the configuration it mounts goes through the real
//! binary's `config check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in repo_file("deploy/Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(start) = trimmed.strip_suffix('\\') {
            current.push_str(start);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            instructions.push(std::mem::take(&mut current));
        }
    }
    instructions
}

/// The words of the first line of `text` that runs `cargo build`.
fn cargo_build_words(text: &str, what: &str) -> Vec<String> {
    let line = text
        .lines()
        .map(str::trim)
        .map(|l| l.strip_prefix("RUN ").unwrap_or(l))
        .find(|l| l.starts_with("cargo build"))
        .unwrap_or_else(|| panic!("no cargo build in {what}"));
    line.split_whitespace().map(str::to_owned).collect()
}

fn env_value<'a>(instructions: &'a [String], name: &str) -> &'a str {
    instructions
        .iter()
        .filter_map(|i| i.strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace())
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("ENV {name} in the Dockerfile"))
}

#[test]
fn the_dockerfile_builds_what_ci_builds_and_runs_where_the_docs_and_the_unit_say() {
    let instructions = dockerfile_instructions();
    let docker = cargo_build_words(&repo_file("deploy/Dockerfile"), "deploy/Dockerfile");
    // CI's release build (bench/run.sh, run by .ci/run) builds wxlogin with these same flags, and
    // bench-hello beside it.
    let mut ci = cargo_build_words(&repo_file("bench/run.sh"), "bench/run.sh");
    let hello = ci
        .windows(2)
        .position(|w| w == ["-p", "bench-hello"])
        .expect("bench/run.sh builds bench-hello");
    ci.drain(hello..hello + 2);
    assert_eq!(docker, ci, "the image's build is CI's release build");
    assert!(docker.contains(&"--locked".to_owned()) && docker.contains(&"--release".to_owned()));

    // The toolchain pinned in rust-toolchain.toml, as image tag and as rustup's choice.
    let toolchain = repo_file("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let from: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    assert_eq!(
        from[0],
        &format!("FROM rust:{channel}-bookworm AS build"),
        "the builder's Rust is rust-toolchain.toml's"
    );
    assert_eq!(env_value(&instructions, "RUSTUP_TOOLCHAIN"), channel);
    assert_eq!(from.last().unwrap().as_str(), "FROM debian:bookworm-slim");

    // The runtime stage: non-root, everything written under the volume that is server.data_dir.
    let runtime: Vec<&String> = instructions
        .iter()
        .skip_while(|i| !i.starts_with("FROM debian"))
        .collect();
    let has = |wanted: &str| runtime.iter().any(|i| i.as_str() == wanted);
    assert!(has("USER wxlogin"), "runs as wxlogin");
    assert!(has(r#"VOLUME ["/var/lib/wxlogin"]"#));
    assert!(has(
        "COPY --from=build /src/target/release/wxlogin /usr/local/bin/wxlogin"
    ));
    assert!(has(r#"ENTRYPOINT ["/usr/local/bin/wxlogin"]"#));
    assert!(
        runtime
            .iter()
            .any(|i| i.contains("ca-certificates") && i.contains("--uid 10001")),
        "CA certificates and the user wxlogin (uid 10001)"
    );
    assert_eq!(
        env_value(&instructions, "WXLOGIN_SERVER__DATA_DIR"),
        "/var/lib/wxlogin"
    );
    let listen = env_value(&instructions, "WXLOGIN_SERVER__LISTEN");
    let metrics = env_value(&instructions, "WXLOGIN_METRICS__LISTEN");
    let port = |addr: &str| addr.rsplit(':').next().unwrap().to_owned();
    assert!(has(&format!("EXPOSE {} {}", port(listen), port(metrics))));

    // The systemd unit runs the same binary path with the same data directory.
    let unit = repo_file("deploy/wxlogin.service");
    for line in [
        "ExecStart=/usr/local/bin/wxlogin serve",
        "StateDirectory=wxlogin",
        "Environment=WXLOGIN_SERVER__DATA_DIR=/var/lib/wxlogin",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit");
    }
    // And the operator's page says the same.
    let operations = repo_file("docs/operations.md");
    for fact in [
        "/var/lib/wxlogin",
        "uid 10001",
        "/usr/local/bin/wxlogin",
        "cargo build --release --locked -p wxlogin",
    ] {
        assert!(operations.contains(fact), "{fact} in docs/operations.md");
    }

    let ignored = repo_file(".dockerignore");
    for path in ["target", ".git"] {
        assert!(
            ignored.lines().any(|l| l == path),
            "{path} in .dockerignore"
        );
    }
}

/// The image's HEALTHCHECK command, as its exec-form words.
fn healthcheck_command() -> Vec<String> {
    let instruction = dockerfile_instructions()
        .into_iter()
        .find(|i| i.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    let json = instruction
        .split_once(" CMD ")
        .expect("HEALTHCHECK ... CMD [...]")
        .1;
    serde_json::from_str(json).expect("exec form")
}

fn run_healthcheck(addr: &str) -> std::process::ExitStatus {
    let words: Vec<String> = healthcheck_command()
        .into_iter()
        .map(|w| w.replace("127.0.0.1/8080", &addr.replace(':', "/")))
        .collect();
    assert!(words[0] == "bash", "{words:?}");
    Command::new(&words[0]).args(&words[1..]).status().unwrap()
}

#[tokio::test]
async fn the_images_health_check_passes_only_while_readyz_answers_200() {
    let app = TestApp::spawn().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let status = tokio::task::spawn_blocking(move || run_healthcheck(&addr))
        .await
        .unwrap();
    assert!(status.success(), "ready: {status}");

    // A server that answers 503, as /readyz does while a dependency is down.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let busy = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let status = tokio::task::spawn_blocking(move || run_healthcheck(&busy))
        .await
        .unwrap();
    assert!(!status.success(), "503 is unhealthy");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let status = tokio::task::spawn_blocking(move || run_healthcheck(&closed))
        .await
        .unwrap();
    assert!(!status.success(), "no server is unhealthy");
}

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

/// The shipped unit with its binary path pointing at the one this test run built
/// (`systemd-analyze verify` wants the executable to exist).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = repo_file("deploy/wxlogin.service")
        .replace("/usr/local/bin/wxlogin", env!("CARGO_BIN_EXE_wxlogin"));
    let path = dir.join("wxlogin.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if !Path::new(SYSTEMD_ANALYZE).exists() {
        skip_outside_ci("the systemd unit check", "systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = unit_for_this_build(dir.path());
    let output = Command::new(SYSTEMD_ANALYZE)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let about_the_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("wxlogin.service") || l.contains(&*path.to_string_lossy()))
        .collect();
    assert!(about_the_unit.is_empty(), "{about_the_unit:?}");
}

/// `deploy/compose.yml` as JSON, through python3's YAML parser (there is no YAML crate in the
/// workspace and no `docker compose` here).
fn compose() -> Option<Value> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(
            std::fs::File::open(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose.yml"),
            )
            .unwrap(),
        )
        .output();
    match output {
        Ok(output) if output.status.success() => {
            Some(serde_json::from_slice(&output.stdout).unwrap())
        }
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                !stderr.contains("ScannerError") && !stderr.contains("ParserError"),
                "deploy/compose.yml is not valid YAML: {stderr}"
            );
            skip_outside_ci(
                "the compose file check",
                &format!(
                    "python3 cannot load yaml: {}",
                    stderr.lines().last().unwrap_or_default()
                ),
            );
            None
        }
        Err(e) => {
            skip_outside_ci("the compose file check", &format!("python3: {e}"));
            None
        }
    }
}

#[test]
fn the_compose_file_is_the_documented_topology_and_its_configuration_passes_config_check() {
    let Some(compose) = compose() else { return };
    let services = compose["services"].as_object().unwrap();
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "migrate",
            "nginx",
            "postgres",
            "redis",
            "wxlogin-a",
            "wxlogin-b",
            "wxlogin-c"
        ]
    );
    // Only nginx is reachable from outside, on 80 (redirect) and 443.
    for (name, service) in services {
        if name != "nginx" {
            assert!(service.get("ports").is_none(), "{name} publishes no port");
        }
    }
    assert_eq!(
        services["nginx"]["ports"],
        serde_json::json!(["80:80", "443:443"])
    );
    assert!(
        services["nginx"]["volumes"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "./nginx/wxlogin-tls.conf:/etc/nginx/conf.d/default.conf:ro"
            ))
    );
    // The nginx front proxies to the three instances on the image's API port.
    let nginx = repo_file("deploy/nginx/wxlogin-tls.conf");
    for instance in ["wxlogin-a", "wxlogin-b", "wxlogin-c"] {
        assert!(
            nginx.contains(&format!("server {instance}:8080 ")),
            "{instance} upstream"
        );
    }

    let wxlogin: Vec<&Value> = ["migrate", "wxlogin-a", "wxlogin-b", "wxlogin-c"]
        .iter()
        .map(|name| &services[*name])
        .collect();
    for service in &wxlogin {
        assert_eq!(service["build"]["dockerfile"], "deploy/Dockerfile");
        assert_eq!(service["build"]["context"], "..");
        assert_eq!(service["read_only"], true);
        assert!(
            service["volumes"]
                .as_array()
                .unwrap()
                .contains(&Value::from(
                    "./compose/wxlogin.toml:/etc/wxlogin/wxlogin.toml:ro"
                ))
        );
        assert_eq!(
            service["environment"], wxlogin[0]["environment"],
            "identical configuration"
        );
    }
    assert_eq!(
        services["migrate"]["command"],
        serde_json::json!(["migrate"])
    );
    for name in ["wxlogin-a", "wxlogin-b", "wxlogin-c"] {
        assert_eq!(services[name]["command"], serde_json::json!(["serve"]));
        assert_eq!(
            services[name]["depends_on"]["migrate"]["condition"], "service_completed_successfully",
            "{name} starts after the migrations"
        );
    }

    // Every secret a wxlogin container reads is a declared Compose secret given to it.
    let config_text = repo_file("deploy/compose/wxlogin.toml");
    let environment = wxlogin[0]["environment"].as_object().unwrap();
    let given: Vec<&str> = wxlogin[0]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut read = Vec::new();
    for text in std::iter::once(config_text.clone())
        .chain(environment.values().map(|v| v.as_str().unwrap().to_owned()))
    {
        for part in text.split("/run/secrets/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            read.push(name);
        }
    }
    assert!(!read.is_empty());
    for name in &read {
        assert!(
            given.contains(&name.as_str()),
            "{name} given to the instances"
        );
        assert!(
            compose["secrets"][name]["file"].is_string(),
            "{name} declared under secrets"
        );
    }
    // nginx's fixed address is the one proxy wxlogin trusts.
    let address = services["nginx"]["networks"]["backend"]["ipv4_address"]
        .as_str()
        .unwrap();
    assert!(config_text.contains(&format!("trusted_proxies = [\"{address}\"]")));

    // The mounted configuration with the compose environment is one `serve` accepts: the real
    // binary, with the secrets at stand-in paths.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for name in &read {
        let value = if name == "sealing_key" {
            wxlogin::crypto::SealingKey::generate_base64()
        } else {
            format!("{name}-0123456789abcdef0123456789abcdef")
        };
        std::fs::write(secrets.join(name), value).unwrap();
    }
    let local = |text: &str| text.replace("/run/secrets/", &format!("{}/", secrets.display()));
    let config_path = dir.path().join("wxlogin.toml");
    std::fs::write(&config_path, local(&config_text)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wxlogin"));
    command
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn");
    for (name, value) in environment {
        if name.starts_with("WXLOGIN_") && name != "WXLOGIN_CONFIG" {
            command.env(name, local(value.as_str().unwrap()));
        }
    }
    let output = command
        .args(["config", "check", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("# ok"), "{stdout}");
    assert!(
        !stdout.contains("# warning"),
        "every service lists its scopes: {stdout}"
    );
    assert!(
        stdout.contains("url = \"redis://redis:6379/0\""),
        "{stdout}"
    );
}
