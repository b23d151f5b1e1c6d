//! What every WeChat endpoint shares: HTTP 200 errors with a rid, content types, paths and methods.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn error_rid_starts_with_the_clock_time_in_hex() {
    let t = TestMock::start().await;
    t.advance(17);
    let body = t.code2session("not-a-code").await;
    assert_wx_error(&body, 40029, "invalid code");
    let rid = body["errmsg"]
        .as_str()
        .unwrap()
        .split(", rid: ")
        .nth(1)
        .unwrap();
    assert!(rid.starts_with(&format!("{:08x}-", T0 + 17)), "{rid}");
    assert_eq!(&rid[..8], "65541821", "{rid}");
}

#[tokio::test]
async fn jscode2session_success_omits_errcode_and_is_text_plain() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let response = t
        .http
        .get(t.url("/sns/jscode2session"))
        .query(&[
            ("appid", APPID),
            ("secret", SECRET),
            ("js_code", login.code.as_str()),
            ("grant_type", "authorization_code"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain");
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(body.get("errcode").is_none(), "{body}");
    assert!(body.get("errmsg").is_none(), "{body}");
}

#[tokio::test]
async fn jscode2session_success_carries_errcode_0_when_configured() {
    let mut config = wechat_mock::MockConfig::demo();
    config.errcode_on_success = true;
    let t = TestMock::with_config(config).await;
    let login = t.login("alice");
    let body = t.code2session(&login.code).await;
    assert_eq!(body["errcode"], 0);
    assert_eq!(body["errmsg"], "ok");
    assert_eq!(body["openid"], login.openid);
}

#[tokio::test]
async fn jscode2session_errors_are_text_plain_and_other_apis_json() {
    let t = TestMock::start().await;
    let error = t
        .http
        .get(t.url("/sns/jscode2session"))
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 200);
    assert_eq!(error.headers()["content-type"], "text/plain");
    let token = t.http.get(t.url("/cgi-bin/token")).send().await.unwrap();
    assert_eq!(
        token.headers()["content-type"],
        "application/json; encoding=utf-8"
    );
    let unknown = t.http.get(t.url("/nope")).send().await.unwrap();
    assert_eq!(
        unknown.headers()["content-type"],
        "application/json; encoding=utf-8"
    );
}

#[tokio::test]
async fn unknown_path_is_40066_with_http_200() {
    let t = TestMock::start().await;
    assert_wx_error(&t.get("/sns/nothing", &[]).await, 40066, "invalid url");
    assert_wx_error(&t.post("/", &[], "{}").await, 40066, "invalid url");
    assert_wx_error(
        &t.get("/sns/jscode2session/", &[]).await,
        40066,
        "invalid url",
    );
}

#[tokio::test]
async fn paths_are_case_sensitive() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let body = t
        .get(
            "/sns/jsCode2Session",
            &[
                ("appid", APPID),
                ("secret", SECRET),
                ("js_code", login.code.as_str()),
                ("grant_type", "authorization_code"),
            ],
        )
        .await;
    assert_wx_error(&body, 40066, "invalid url");
    assert_wx_error(&t.get("/CGI-BIN/token", &[]).await, 40066, "invalid url");
}

#[tokio::test]
async fn wrong_method_on_get_endpoints_is_43001() {
    let t = TestMock::start().await;
    for path in [
        "/sns/jscode2session",
        "/cgi-bin/token",
        "/wxa/checksession",
        "/wxa/resetusersessionkey",
    ] {
        assert_wx_error(&t.post(path, &[], "{}").await, 43001, "require GET method");
    }
}

#[tokio::test]
async fn wrong_method_on_post_endpoints_is_43002() {
    let t = TestMock::start().await;
    for path in ["/cgi-bin/stable_token", "/wxa/business/getuserphonenumber"] {
        assert_wx_error(&t.get(path, &[]).await, 43002, "require POST method");
    }
}

#[tokio::test]
async fn unknown_control_path_is_a_404_json_error() {
    let t = TestMock::start().await;
    let response = t.http.get(t.url("/__mock/nothing")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("/__mock/nothing"));
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let t = TestMock::start().await;
    let url = t.url("/cgi-bin/token");
    t.server.shutdown().await;
    assert!(t.http.get(&url).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let t = TestMock::start().await;
    let url = t.url("/cgi-bin/token");
    let http = t.http.clone();
    drop(t);
    tokio::task::yield_now().await;
    assert!(http.get(&url).send().await.is_err());
}

#[tokio::test]
async fn odd_inputs_get_wechat_errors_not_failures() {
    let t = TestMock::start().await;
    let raw = |path: &str| t.http.get(t.url(path)).send();
    let body: Value = raw("/sns/jscode2session?appid=%FF%FE&secret=%zz&js_code")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Undecodable escapes are kept or replaced, never refused: the code is what is missing here.
    assert_errcode(&body, 41008);
    let body: Value = raw("/cgi-bin/token?appid=a&appid=b&&&=&secret")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_errcode(&body, 41004);
    let garbage = vec![0xff_u8, 0xfe, 0x00, 0x7b];
    for path in [
        "/cgi-bin/stable_token",
        "/wxa/business/getuserphonenumber?access_token=x",
    ] {
        let response = t
            .http
            .post(t.url(path))
            .body(garbage.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = t
        .http
        .post(t.url("/__mock/login"))
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let long_user = "u".repeat(10_000);
    let login = t.mock().mint_login_code(APPID, &long_user).unwrap();
    assert!(t.code2session(&login.code).await.get("openid").is_some());
}

#[tokio::test]
async fn request_log_has_path_and_errcode_but_no_secrets() {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        // Only the simulator's own lines: the HTTP client's are not under test.
        .with_env_filter("wechat_mock=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global rather than scoped: a scoped subscriber can miss events whose callsites other test
    // threads registered first. This is the only test that installs one.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let t = TestMock::start().await;
    let login = t.login("alice");
    let session = t.code2session(&login.code).await;
    let token = t.classic_token().await;
    let key = session["session_key"].as_str().unwrap();
    let signature = wechat_mock::login_state_signature(key, b"");
    t.checksession(&token, &login.openid, &signature).await;
    t.code2session(&login.code).await;

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("/sns/jscode2session"), "{log}");
    assert!(log.contains("40163"), "{log}");
    for secret in [
        SECRET,
        key,
        token.as_str(),
        login.code.as_str(),
        signature.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} leaked into {log}");
    }
}
