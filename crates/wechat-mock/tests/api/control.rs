//! The `/__mock/` control API, stats, reset and the config file.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use wechat_mock::{MockConfig, openid_for, unionid_for};

use crate::helpers::*;

async fn control(t: &TestMock, path: &str, body: Value) -> (u16, Value) {
    let response = t.http.post(t.url(path)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, body)
}

fn decrypt(session_key: &str, iv: &str, data: &str) -> Value {
    let key = STANDARD.decode(session_key).unwrap();
    let iv = STANDARD.decode(iv).unwrap();
    let cipher = cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv).unwrap();
    let plain = cipher
        .decrypt_padded_vec_mut::<Pkcs7>(&STANDARD.decode(data).unwrap())
        .unwrap();
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test]
async fn control_login_gives_a_32_character_code_openid_and_unionid() {
    let t = TestMock::start().await;
    let (status, body) = control(
        &t,
        "/__mock/login",
        json!({"appid": APPID, "user": "alice"}),
    )
    .await;
    assert_eq!(status, 200);
    let code = body["code"].as_str().unwrap();
    assert_eq!(code.len(), 32);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(body["openid"], openid_for(APPID, "alice"));
    assert_eq!(body["unionid"], unionid_for("demo", "alice"));
    assert_eq!(t.code2session(code).await["openid"], body["openid"]);
}

#[tokio::test]
async fn control_phone_code_defaults_to_country_86() {
    let t = TestMock::start().await;
    let request = json!({"appid": APPID, "user": "alice", "phone": "13800138000"});
    let (status, body) = control(&t, "/__mock/phone-code", request).await;
    assert_eq!(status, 200);
    let code = body["code"].as_str().unwrap();
    assert_eq!(code.len(), 64);
    assert!(code.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    let token = t.classic_token().await;
    let info = t
        .post(
            "/wxa/business/getuserphonenumber",
            &[("access_token", token.as_str())],
            &json!({ "code": code }).to_string(),
        )
        .await;
    assert_eq!(info["phone_info"]["countryCode"], "86");
}

#[tokio::test]
async fn control_encrypt_roundtrips_with_the_session_key_and_adds_a_watermark() {
    let t = TestMock::start().await;
    let data = json!({"phoneNumber": "13580006666", "purePhoneNumber": "13580006666", "countryCode": "86"});
    let request = json!({"appid": APPID, "user": "alice", "data": data});
    let (status, body) = control(&t, "/__mock/encrypt", request).await;
    assert_eq!(status, 200);
    let iv = body["iv"].as_str().unwrap();
    assert_eq!(iv.len(), 24);
    let key = t.mock().session_key(APPID, "alice").unwrap();
    let plain = decrypt(&key, iv, body["encrypted_data"].as_str().unwrap());
    let mut expected = data.clone();
    expected["watermark"] = json!({"timestamp": T0, "appid": APPID});
    assert_eq!(plain, expected);

    // The library call does the same, with a fresh IV each time.
    let again = t.mock().encrypt(APPID, "alice", data.clone()).unwrap();
    assert_ne!(again.iv, iv);
    assert_eq!(decrypt(&key, &again.iv, &again.encrypted_data), expected);
}

#[tokio::test]
async fn control_sign_is_sha1_of_raw_data_and_session_key() {
    let t = TestMock::start().await;
    let raw = r#"{"nickName":"Band","gender":1}"#;
    let (status, body) = control(
        &t,
        "/__mock/sign",
        json!({"appid": APPID, "user": "alice", "raw_data": raw}),
    )
    .await;
    assert_eq!(status, 200);
    let key = t.mock().session_key(APPID, "alice").unwrap();
    let expected = hex::encode(Sha1::digest(format!("{raw}{key}").as_bytes()));
    assert_eq!(body["signature"], expected);
    assert_eq!(t.mock().sign(APPID, "alice", raw).unwrap(), expected);
}

#[tokio::test]
async fn control_apps_adds_an_app_at_run_time() {
    let t = TestMock::start().await;
    let app = json!({"appid": "wx00000000000000e1", "secret": "s-e1", "risky_users": ["eve"]});
    let (status, _) = control(&t, "/__mock/apps", app).await;
    assert_eq!(status, 204);
    let login = t
        .mock()
        .mint_login_code("wx00000000000000e1", "alice")
        .unwrap();
    assert!(login.unionid.is_none());
    let body = t
        .code2session_for("wx00000000000000e1", "s-e1", &login.code)
        .await;
    assert_eq!(body["openid"], openid_for("wx00000000000000e1", "alice"));
    let eve = t
        .mock()
        .mint_login_code("wx00000000000000e1", "eve")
        .unwrap();
    assert_errcode(
        &t.code2session_for("wx00000000000000e1", "s-e1", &eve.code)
            .await,
        40226,
    );

    // Replacing the app keeps its users' keys but takes the new secret.
    let key = t.mock().session_key("wx00000000000000e1", "alice").unwrap();
    let (status, _) = control(
        &t,
        "/__mock/apps",
        json!({"appid": "wx00000000000000e1", "secret": "s-new"}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        t.mock().session_key("wx00000000000000e1", "alice").unwrap(),
        key
    );
    let next = t
        .mock()
        .mint_login_code("wx00000000000000e1", "bob")
        .unwrap();
    assert_errcode(
        &t.code2session_for("wx00000000000000e1", "s-e1", &next.code)
            .await,
        40125,
    );
}

#[tokio::test]
async fn control_errors_are_4xx_json() {
    let t = TestMock::start().await;
    let cases = [
        (
            "/__mock/login",
            json!({"appid": "wx9999999999999999", "user": "alice"}),
            404,
        ),
        ("/__mock/login", json!({"appid": APPID}), 400),
        ("/__mock/login", json!({"appid": APPID, "user": ""}), 400),
        (
            "/__mock/login",
            json!({"appid": APPID, "user": "alice", "extra": 1}),
            400,
        ),
        (
            "/__mock/phone-code",
            json!({"appid": APPID, "user": "a", "phone": "1380"}),
            400,
        ),
        (
            "/__mock/phone-code",
            json!({"appid": APPID, "user": "a", "phone": "1380013800a"}),
            400,
        ),
        (
            "/__mock/phone-code",
            json!({"appid": APPID, "user": "a", "phone": "13800138000", "country_code": "+86"}),
            400,
        ),
        (
            "/__mock/phone-code",
            json!({"appid": "wx9", "user": "a", "phone": "13800138000"}),
            404,
        ),
        (
            "/__mock/encrypt",
            json!({"appid": APPID, "user": "a", "data": [1, 2]}),
            400,
        ),
        (
            "/__mock/encrypt",
            json!({"appid": "wx9", "user": "a", "data": {}}),
            404,
        ),
        ("/__mock/sign", json!({"appid": APPID, "user": "a"}), 400),
        ("/__mock/apps", json!({"appid": "", "secret": "s"}), 400),
        ("/__mock/apps", json!({"appid": "wx1"}), 400),
        (
            "/__mock/faults",
            json!({"api": "nonsense", "errcode": -1}),
            400,
        ),
        ("/__mock/faults", json!({"api": "token", "times": 0}), 400),
        (
            "/__mock/faults",
            json!({"api": "token", "latency_ms": -5}),
            400,
        ),
        (
            "/__mock/faults",
            json!({"api": "token", "errcode": "x"}),
            400,
        ),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = control(&t, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body} → {answer}");
        assert!(answer["error"].is_string(), "{path} {body} → {answer}");
    }
    let response = t
        .http
        .post(t.url("/__mock/login"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = t.http.get(t.url("/__mock/login")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn stats_list_every_api_and_count_calls() {
    let t = TestMock::start().await;
    let stats: Value = t
        .http
        .get(t.url("/__mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"calls": {"jscode2session": 0, "token": 0, "stable_token": 0, "checksession": 0,
            "resetusersessionkey": 0, "getuserphonenumber": 0}})
    );
    t.code2session("x").await;
    t.code2session("y").await;
    t.classic_token().await;
    t.stable_token(false).await;
    t.post("/wxa/business/getuserphonenumber", &[], "").await;
    t.get("/wxa/resetusersessionkey", &[]).await;
    t.get("/wxa/checksession", &[]).await;
    t.get("/nowhere", &[]).await;
    let stats: Value = t
        .http
        .get(t.url("/__mock/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"calls": {"jscode2session": 2, "token": 1, "stable_token": 1, "checksession": 1,
            "resetusersessionkey": 1, "getuserphonenumber": 1}})
    );
    assert_eq!(t.mock().stats()["jscode2session"], 2);
}

#[tokio::test]
async fn reset_forgets_codes_tokens_counters_and_faults_but_keeps_apps_and_users() {
    let t = TestMock::start().await;
    let login = t.login("alice");
    let phone = t
        .mock()
        .mint_phone_code(APPID, "alice", "13800138000", "86")
        .unwrap();
    let key = t.mock().session_key(APPID, "alice").unwrap();
    let token = t.classic_token().await;
    t.mock()
        .add_fault(wechat_mock::Fault::on(wechat_mock::Api::Checksession).errcode(-1));

    let response = t.http.post(t.url("/__mock/reset")).send().await.unwrap();
    assert_eq!(response.status(), 204);

    assert_eq!(t.mock().stats().values().sum::<u64>(), 0);
    assert_errcode(&t.code2session(&login.code).await, 40029);
    assert_eq!(t.token_errcode(&token).await, 40001);
    assert_eq!(t.mock().session_key(APPID, "alice").unwrap(), key);
    let fresh = t.classic_token().await;
    assert_eq!(t.token_errcode(&fresh).await, 0, "fault cleared");
    let info = t
        .post(
            "/wxa/business/getuserphonenumber",
            &[("access_token", fresh.as_str())],
            &json!({ "code": phone }).to_string(),
        )
        .await;
    assert_errcode(&info, 40029);
}

#[tokio::test]
async fn toml_config_file_apps_are_served() {
    let path = std::env::temp_dir().join(format!("wechat-mock-apps-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "token_daily_quota = 1\n[[apps]]\nappid = \"wx00000000000000f1\"\nsecret = \"s-f1\"\nopen_platform = \"demo\"\n",
    )
    .unwrap();
    let config = MockConfig::from_toml_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let t = TestMock::with_config(config).await;
    let login = t
        .mock()
        .mint_login_code("wx00000000000000f1", "alice")
        .unwrap();
    let body = t
        .code2session_for("wx00000000000000f1", "s-f1", &login.code)
        .await;
    assert_eq!(body["unionid"], unionid_for("demo", "alice"));
    assert!(
        t.mock().mint_login_code(APPID, "alice").is_err(),
        "no demo app from a file"
    );
    let query = [
        ("grant_type", "client_credential"),
        ("appid", "wx00000000000000f1"),
        ("secret", "s-f1"),
    ];
    assert!(
        t.get("/cgi-bin/token", &query)
            .await
            .get("access_token")
            .is_some()
    );
    assert_errcode(&t.get("/cgi-bin/token", &query).await, 45009);
}

#[test]
fn toml_config_with_an_unknown_key_is_an_error() {
    let error =
        MockConfig::from_toml_str("[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\nrisky = []\n")
            .unwrap_err();
    assert!(error.to_string().contains("risky"), "{error}");
    assert!(MockConfig::from_toml_str("quota = 1").is_err());
}
