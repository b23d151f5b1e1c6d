//! Every WeChat error path, provoked at TRACE level: no secret in any log line or error text.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};
use wxlogin::domain::{AccessToken, LoginCode, OpenId, PhoneCode, SessionKey};
use wxlogin::wechat::{WechatClient, WechatError};

use crate::helpers::*;

/// One call of each of the six APIs; returns the outcome of each as text (errors in both forms).
async fn call_everything(
    client: &WechatClient,
    code: &str,
    phone_code: &str,
    token: &AccessToken,
    openid: &OpenId,
    key: &SessionKey,
) -> Vec<Result<String, WechatError>> {
    let (appid, secret) = demo_app();
    let code = LoginCode::parse(code).unwrap();
    let phone_code = PhoneCode::parse(phone_code).unwrap();
    vec![
        client
            .code2session(&appid, &secret, &code)
            .await
            .map(|s| format!("{s:?}")),
        client
            .get_access_token(&appid, &secret)
            .await
            .map(|t| format!("{t:?}")),
        client
            .get_stable_access_token(&appid, &secret, false)
            .await
            .map(|t| format!("{t:?}")),
        client
            .check_session_key(token, openid, key)
            .await
            .map(|v| v.to_string()),
        client
            .reset_session_key(token, openid, key)
            .await
            .map(|k| format!("{k:?} {k}")),
        client
            .get_phone_number(token, &phone_code)
            .await
            .map(|p| format!("{p:?}")),
    ]
}

fn variants(secret: &str) -> Vec<String> {
    let encoded = secret
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    vec![secret.to_owned(), encoded]
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_an_error_text_on_any_path() {
    let wx = TestWechat::spawn().await;
    let client = client_with_timeout(&wx.handle.base_url(), 150);
    let (appid, secret) = demo_app();
    let mut secrets = vec![DEMO_SECRET.to_owned()];
    let mut texts = Vec::new();

    // Success paths, to learn the secrets this run handles.
    let minted = wx.mock().mint_login_code(DEMO_APPID, "trudy").unwrap();
    let session = client
        .code2session(&appid, &secret, &LoginCode::parse(minted.code).unwrap())
        .await
        .unwrap();
    let classic = client.get_access_token(&appid, &secret).await.unwrap();
    let stable = client
        .get_stable_access_token(&appid, &secret, false)
        .await
        .unwrap();
    secrets.push(session.session_key.expose_secret().to_owned());
    secrets.push(classic.token.expose_secret().to_owned());
    secrets.push(stable.token.expose_secret().to_owned());
    texts.push(format!("{session:?} {classic:?} {stable:?}"));
    let token = stable.token.clone();
    let key = session.session_key.clone();

    let mut outcomes = Vec::new();
    let fresh_codes = |wx: &TestWechat| {
        let code = wx.mock().mint_login_code(DEMO_APPID, "trudy").unwrap().code;
        let phone = wx
            .mock()
            .mint_phone_code(DEMO_APPID, "trudy", "13800138000", "86")
            .unwrap();
        (code, phone)
    };

    // WeChat's own refusals and the simulator's faults, on every API.
    for fault in [
        json!({"api": "*", "errcode": -1}),
        json!({"api": "*", "errcode": 40001}),
        json!({"api": "*", "errcode": 48001}),
        json!({"api": "*", "errcode": 99999}),
        json!({"api": "*", "close": true}),
        json!({"api": "*", "hang": true}),
        json!({"api": "*", "latency_ms": 300}),
    ] {
        wx.fault(fault).await;
        let (code, phone) = fresh_codes(&wx);
        outcomes
            .extend(call_everything(&client, &code, &phone, &token, &session.openid, &key).await);
        wx.mock().clear_faults();
    }
    let bogus = AccessToken::parse(format!("{}x", token.expose_secret())).unwrap();
    secrets.push(bogus.expose_secret().to_owned());
    let wrong_key = SessionKey::parse("o0q0otL8aEzpcZL/FT9WsQ==").unwrap();
    secrets.push(wrong_key.expose_secret().to_owned());
    let (code, phone) = fresh_codes(&wx);
    outcomes
        .extend(call_everything(&client, &code, &phone, &bogus, &session.openid, &wrong_key).await);
    outcomes
        .extend(call_everything(&client, &code, &phone, &token, &session.openid, &wrong_key).await);

    // An unreachable WeChat and a WeChat that answers garbage.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    outcomes.extend(
        call_everything(
            &client_for(&closed),
            &code,
            &phone,
            &token,
            &session.openid,
            &key,
        )
        .await,
    );
    for body in [
        "not json",
        "{\"errcode\": \"x\"}",
        "{}",
        "{\"errcode\":40029,\"errmsg\":\"invalid code, rid: 1-2-3\"}",
    ] {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/plain"),
            )
            .mount(&server)
            .await;
        outcomes.extend(
            call_everything(
                &client_for(&server.uri()),
                &code,
                &phone,
                &token,
                &session.openid,
                &key,
            )
            .await,
        );
    }
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    outcomes.extend(
        call_everything(
            &client_for(&server.uri()),
            &code,
            &phone,
            &token,
            &session.openid,
            &key,
        )
        .await,
    );

    let errors: Vec<&WechatError> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    for e in &errors {
        texts.push(format!("{e} {e:?}"));
    }
    let kinds = |f: fn(&WechatError) -> bool| errors.iter().any(|e| f(e));
    assert!(kinds(|e| matches!(e, WechatError::Api { .. })));
    assert!(kinds(|e| matches!(e, WechatError::Unknown { .. })));
    assert!(kinds(|e| matches!(e, WechatError::Timeout)));
    assert!(kinds(|e| matches!(e, WechatError::Connect(_))));
    assert!(kinds(|e| matches!(e, WechatError::Transport(_))));
    assert!(kinds(|e| matches!(e, WechatError::HttpStatus { .. })));
    assert!(kinds(|e| matches!(e, WechatError::Malformed { .. })));

    let logs = logs_text();
    assert!(logs.contains("wechat call failed"), "the capture works");
    assert!(
        logs.contains("TRACE reqwest::") && logs.contains("TRACE hyper_util::"),
        "the HTTP stack's own TRACE lines are captured"
    );
    for secret in secrets.iter().flat_map(|s| variants(s)) {
        assert!(!logs.contains(&secret), "a secret reached the logs");
        for text in &texts {
            assert!(
                !text.contains(&secret),
                "a secret reached an error text: {text}"
            );
        }
    }
}

/// A full session at TRACE: login, refresh, a reuse, logout, introspection and WeChat failures. The
/// server's logs name none of the secrets involved (each `TestApp` also checks its own on drop).
#[tokio::test]
async fn a_whole_session_at_trace_logs_no_secret() {
    let app = TestApp::spawn().await;
    let login = app.login("sybil").await;
    let refresh =
        |token: &str| app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }));
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let pair: serde_json::Value = refresh(&first).await.json().await.unwrap();
    let second = pair["refresh_token"].as_str().unwrap().to_owned();
    app.wx.clock.advance(std::time::Duration::from_secs(60));
    assert_eq!(
        refresh(&first).await.status(),
        401,
        "reuse revokes the family"
    );
    let again = app.login("sybil").await;
    let access = again["access_token"].as_str().unwrap();
    app.http
        .post(app.url("/v1/introspect"))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({ "token": access }))
        .send()
        .await
        .unwrap();
    app.http
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    for fault in [
        json!({"api": "*", "errcode": -1}),
        json!({"api": "*", "close": true}),
    ] {
        app.wx.fault(fault).await;
        let code = app.code_for("sybil");
        app.post_json("/v1/auth/wechat/login", json!({ "code": code }))
            .await;
        app.wx.mock().clear_faults();
    }
    let (appid, secret) = demo_app();
    let wechat_token = app
        .state
        .wechat
        .get_stable_access_token(&appid, &secret, false)
        .await
        .unwrap();
    let cached = app.state.wechat_tokens.get(&appid).await.unwrap();
    assert_eq!(cached, wechat_token.token);

    let logs = logs_text();
    assert!(
        logs.contains("/v1/auth/refresh"),
        "the server's request lines are captured"
    );
    assert!(
        logs.contains("wxlogin starting") && logs.contains("\"sealing_key\":\"<redacted>\""),
        "the start-up summary is captured, redacted"
    );
    for secret in [
        first.as_str(),
        second.as_str(),
        again["refresh_token"].as_str().unwrap(),
        &app.wx.mock().session_key(DEMO_APPID, "sybil").unwrap(),
        DEMO_SECRET,
        SERVICE_SECRET,
        wechat_token.token.expose_secret(),
    ] {
        for form in variants(secret) {
            assert!(!logs.contains(&form), "a secret reached the logs");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `wxlogin serve` with `log.format = "json"` from the environment, at TRACE: every line on
/// standard output is a JSON object, the start-up line carries the version and the redacted
/// configuration, a request line the request's fields, a WeChat failure its errcode and rid; no
/// secret in any line, nor in the metrics the process serves.
#[tokio::test]
async fn json_logs_of_a_process_at_trace_have_the_request_fields_and_no_secret() {
    let wx = TestWechat::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let (port, metrics_port) = (free_port(), free_port());
    let config = dir.path().join("wxlogin.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
data_dir = "{data}"
allow_insecure_public_url = true

[security]
sealing_key = "{sealing_key}"

[wechat]
base_url = "{base_url}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[apps]]
appid = "{DEMO_APPID}"
secret = "{DEMO_SECRET}"

[[services]]
client_id = "{SERVICE_ID}"
client_secret = "{SERVICE_SECRET}"
"#,
            data = dir.path().display(),
            base_url = wx.handle.base_url(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .args(["serve", "--allow-mock", "--config"])
        .arg(&config)
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "trace")
        .env("WXLOGIN_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the server came up");
    let code = wx.mock().mint_login_code(DEMO_APPID, "frank").unwrap().code;
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/v1/auth/wechat/login"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let me = reqwest::Client::new()
        .get(format!("{base}/v1/me"))
        .bearer_auth(&access)
        .header("x-request-id", "json-log-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    wx.fault(json!({"api": "jscode2session", "errcode": -1, "times": 1}))
        .await;
    let code = wx.mock().mint_login_code(DEMO_APPID, "frank").unwrap().code;
    let refused = reqwest::Client::new()
        .post(format!("{base}/v1/auth/wechat/login"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let scraped = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scraped.contains("wxlogin_logins_total{appid=\"wx0000000000000001\",outcome=\"new\"} 1")
    );

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let lines = reader.join().unwrap();

    let objects: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let starting = objects
        .iter()
        .find(|o| o["fields"]["message"] == "wxlogin starting")
        .expect("a start-up line");
    assert_eq!(starting["fields"]["version"], env!("CARGO_PKG_VERSION"));
    let summary: Value =
        serde_json::from_str(starting["fields"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(summary["security"]["sealing_key"], "<redacted>");
    assert_eq!(summary["apps"][0]["appid"], DEMO_APPID);
    assert_eq!(summary["apps"][0]["secret"], "<redacted>");
    assert_eq!(summary["log"]["format"], "json");
    assert_eq!(
        summary["metrics"]["listen"],
        format!("127.0.0.1:{metrics_port}")
    );

    let request = objects
        .iter()
        .find(|o| {
            o["fields"]["message"] == "request" && o["span"]["request_id"] == "json-log-test-1"
        })
        .unwrap_or_else(|| panic!("the request line of GET /v1/me in {lines:#?}"));
    assert_eq!(request["fields"]["status"], 200);
    assert!(request["fields"]["duration_ms"].is_number(), "{request}");
    assert_eq!(request["span"]["route"], "/v1/me");
    assert_eq!(request["span"]["method"], "GET");
    assert_eq!(request["span"]["client_ip"], "127.0.0.1");
    assert_eq!(request["span"]["user"], login["user"]["id"]);

    let upstream = objects
        .iter()
        .find(|o| o["fields"]["message"] == "WeChat unavailable")
        .expect("the WeChat failure is logged");
    assert_eq!(upstream["level"], "WARN");
    assert_eq!(upstream["fields"]["errcode"], -1);
    assert!(
        upstream["fields"]["rid"]
            .as_str()
            .is_some_and(|rid| rid.len() > 8),
        "{upstream}"
    );
    // A line logged while a request runs carries the request's fields, as its request line does.
    assert_eq!(
        upstream["span"]["route"], "/v1/auth/wechat/login",
        "{upstream}"
    );
    assert_eq!(upstream["span"]["name"], "request", "{upstream}");
    assert_eq!(upstream["spans"][0], upstream["span"], "{upstream}");
    let refused_id = upstream["span"]["request_id"].as_str().unwrap();
    assert!(
        objects.iter().any(|o| o["fields"]["message"] == "request"
            && o["span"]["request_id"] == refused_id
            && o["fields"]["status"] == 503),
        "the refused login's request line has the same id"
    );
    let starting_keys: Vec<&String> = starting.as_object().unwrap().keys().collect();
    assert_eq!(
        starting_keys,
        ["fields", "level", "target", "timestamp"],
        "no span outside a request"
    );

    let all = lines.join("\n");
    for secret in [
        DEMO_SECRET,
        SERVICE_SECRET,
        sealing_key.as_str(),
        access.as_str(),
        login["refresh_token"].as_str().unwrap(),
        &wx.mock().session_key(DEMO_APPID, "frank").unwrap(),
    ] {
        assert!(!all.contains(secret), "a secret reached the logs");
        assert!(!scraped.contains(secret), "a secret reached the metrics");
    }
}
