//! `deploy/nginx/wxlogin-tls.conf` with real nginx and a certificate made for the test, in front of
//! a real server: HTTPS works with TLS 1.2, HTTP redirects, the client's address reaches wxlogin
//! through `X-Forwarded-For` (and a client's own value does not), the body limits are wxlogin's,
//! and neither `/internal/` nor `/metrics` is reachable.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::nginx::nginx_binary;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Front {
    child: Child,
    dir: tempfile::TempDir,
    http: u16,
    https: u16,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, made by the openssl CLI.
fn certificate(dir: &std::path::Path) -> Option<Vec<u8>> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            // A server certificate, not a CA (rustls refuses a CA as the server's certificate).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(dir.join("privkey.pem"))
        .arg("-out")
        .arg(dir.join("fullchain.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status
        .success()
        .then(|| std::fs::read(dir.join("fullchain.pem")).unwrap())
}

/// The shipped file, with the test's ports, certificate and one upstream instance.
fn site(front: &std::path::Path, http: u16, https: u16, wxlogin: &str) -> String {
    let shipped = include_str!("../../../../deploy/nginx/wxlogin-tls.conf");
    let instances: String = shipped
        .lines()
        .filter(|l| l.trim_start().starts_with("server wxlogin-"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(instances.lines().count(), 3, "three instances upstream");
    let site = shipped
        .replacen(
            &instances,
            &format!("    server {wxlogin} max_fails=3 fail_timeout=10s;\n"),
            1,
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{https} ssl;"))
        .replace("/etc/nginx/tls/", &format!("{}/", front.display()));
    assert!(!site.contains("wxlogin-a"), "the upstream was replaced");
    site
}

async fn start(binary: &str, wxlogin: &str) -> Option<(Front, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let certificate = certificate(dir.path())?;
    let (http, https) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\n\
         pid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{site}\n}}\n",
        site = site(dir.path(), http, https, wxlogin)
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let front = Front {
        child,
        dir,
        http,
        https,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", https))
            .await
            .is_ok()
        {
            return Some((front, certificate));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(front.dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not start: {log}");
}

/// The request log line wxlogin wrote for the request with this id.
fn logged_request(request_id: &str) -> String {
    logs_text()
        .lines()
        .find(|l| l.contains(&format!("request_id={request_id} ")) && l.contains(" status="))
        .unwrap_or_else(|| panic!("no request line for {request_id}"))
        .to_owned()
}

#[tokio::test]
async fn the_nginx_tls_front_serves_https_redirects_http_and_passes_the_client_address() {
    let Some(binary) = nginx_binary() else {
        skip_outside_ci("the nginx TLS front", "nginx is not installed");
        return;
    };
    // nginx connects from 127.0.0.1; the test's client connects from 127.0.0.2.
    let app = TestApp::spawn_with(|s| {
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let upstream = app.address.trim_start_matches("http://").to_owned();
    let Some((front, certificate)) = start(&binary, &upstream).await else {
        skip_outside_ci(
            "the nginx TLS front",
            "the openssl CLI cannot make a certificate",
        );
        return;
    };
    let client = |max_tls: Option<reqwest::tls::Version>| {
        let mut builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&certificate).unwrap()])
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(version) = max_tls {
            builder = builder.tls_version_max(version);
        }
        builder.build().unwrap()
    };
    let https = format!("https://127.0.0.1:{}", front.https);

    // HTTPS, with TLS 1.2 at most as WeChat requires of request domains: the answer is
    // wxlogin's, with HSTS, and wxlogin saw the client's address, not the one it claimed.
    let request_id = format!("tls-{:08x}", rand::random::<u32>());
    let response = client(Some(reqwest::tls::Version::TLS_1_2))
        .get(format!("{https}/healthz"))
        .header("x-request-id", &request_id)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let line = logged_request(&request_id);
    assert!(line.contains("client_ip=127.0.0.2"), "{line}");
    assert!(!line.contains("203.0.113.9"), "{line}");

    // A login through the front (TLS 1.3 where both sides have it).
    let https_client = client(None);
    let response = https_client
        .post(format!("{https}/v1/auth/wechat/login"))
        .json(&json!({ "code": app.code_for("tls"), "appid": DEMO_APPID }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let login: serde_json::Value = response.json().await.unwrap();
    assert!(login["access_token"].is_string());

    // A body over wxlogin's limit is refused by wxlogin, in its envelope: nginx lets it through.
    let big = "x".repeat(100 * 1024);
    let response = https_client
        .post(format!("{https}/v1/auth/wechat/login"))
        .json(&json!({ "code": big }))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "payload_too_large").await;

    // Not on the public domain: the internal API and metrics (nginx's 404, not wxlogin's).
    for path in [
        "/internal/v1/users/u_01J00000000000000000000000",
        "/metrics",
    ] {
        let response = https_client
            .get(format!("{https}{path}"))
            .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }

    // Plain HTTP: a redirect to the same path over https, nothing served.
    let response = client(None)
        .get(format!("http://127.0.0.1:{}/v1/me?x=1", front.http))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(
        response.headers()["location"],
        "https://127.0.0.1/v1/me?x=1"
    );
}
