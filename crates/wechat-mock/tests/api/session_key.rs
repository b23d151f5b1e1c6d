//! `/wxa/checksession` and `/wxa/resetusersessionkey`: the login-state signature over the current
//! session_key.

use serde_json::Value;
use wechat_mock::{AppConfig, login_state_signature, openid_for};

use crate::helpers::*;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/wechat-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn login_state_signature_matches_the_published_vectors() {
    let v = vectors();
    let tv3 = &v["tv3_login_state_hmac_sha256"];
    let key = tv3["session_key"].as_str().unwrap();
    assert_eq!(
        login_state_signature(key, tv3["message"].as_str().unwrap().as_bytes()),
        tv3["expected_signature"].as_str().unwrap()
    );
    assert_eq!(
        login_state_signature(key, b""),
        v["derived_not_from_wechat"]["checksession_sig_for_tv3_key"]
            .as_str()
            .unwrap()
    );
}

async fn alice_signature(t: &TestMock) -> (String, String) {
    t.login("alice");
    let key = t.mock().session_key(APPID, "alice").unwrap();
    (openid_for(APPID, "alice"), login_state_signature(&key, b""))
}

#[tokio::test]
async fn checksession_with_the_right_hmac_is_ok() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (openid, signature) = alice_signature(&t).await;
    let body = t.checksession(&token, &openid, &signature).await;
    assert_eq!(body, serde_json::json!({"errcode": 0, "errmsg": "ok"}));
}

#[tokio::test]
async fn checksession_with_a_wrong_signature_is_87009() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (openid, signature) = alice_signature(&t).await;
    let other_key = login_state_signature("o0q0otL8aEzpcZL/FT9WsQ==", b"");
    for wrong in [other_key, signature.to_uppercase(), String::new()] {
        let body = t.checksession(&token, &openid, &wrong).await;
        assert_wx_error(&body, 87009, "invalid signature");
    }
}

#[tokio::test]
async fn checksession_with_another_or_no_sig_method_is_87008() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (openid, signature) = alice_signature(&t).await;
    for method in [Some("md5"), Some("HMAC_SHA256"), None] {
        let mut query = vec![
            ("access_token", token.as_str()),
            ("openid", openid.as_str()),
            ("signature", signature.as_str()),
        ];
        if let Some(method) = method {
            query.push(("sig_method", method));
        }
        let body = t.get("/wxa/checksession", &query).await;
        assert_wx_error(&body, 87008, "invalid sig_method");
    }
}

#[tokio::test]
async fn checksession_with_a_missing_or_unknown_openid_is_40003() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (_, signature) = alice_signature(&t).await;
    let query = [
        ("access_token", token.as_str()),
        ("signature", signature.as_str()),
        ("sig_method", "hmac_sha256"),
    ];
    assert_wx_error(
        &t.get("/wxa/checksession", &query).await,
        40003,
        "invalid openid",
    );
    let stranger = openid_for(APPID, "never-seen");
    assert_wx_error(
        &t.checksession(&token, &stranger, &signature).await,
        40003,
        "invalid openid",
    );
}

#[tokio::test]
async fn checksession_names_users_of_the_token_app_only() {
    let t = TestMock::start().await;
    t.mock()
        .add_app(AppConfig::new("wx00000000000000c1", "s-c1"));
    let key = t.mock().session_key("wx00000000000000c1", "dave").unwrap();
    let signature = login_state_signature(&key, b"");
    let token = t.classic_token().await;
    let body = t
        .checksession(
            &token,
            &openid_for("wx00000000000000c1", "dave"),
            &signature,
        )
        .await;
    assert_errcode(&body, 40003);
}

#[tokio::test]
async fn checksession_after_rotation_on_login_is_87009_for_the_old_key() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (openid, old_signature) = alice_signature(&t).await;
    t.advance(300);
    t.login("alice");
    assert_errcode(
        &t.checksession(&token, &openid, &old_signature).await,
        87009,
    );
}

#[tokio::test]
async fn resetusersessionkey_rotates_the_key_and_the_old_signature_becomes_87009() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let (openid, signature) = alice_signature(&t).await;
    let query = [
        ("access_token", token.as_str()),
        ("openid", openid.as_str()),
        ("signature", signature.as_str()),
        ("sig_method", "hmac_sha256"),
    ];
    let body = t.get("/wxa/resetusersessionkey", &query).await;
    assert_eq!(body["errcode"], 0);
    assert_eq!(body["errmsg"], "ok");
    assert_eq!(body["openid"], openid.as_str());
    let new_key = body["session_key"].as_str().unwrap();
    assert_eq!(new_key.len(), 24);
    assert_eq!(new_key, t.mock().session_key(APPID, "alice").unwrap());

    assert_wx_error(
        &t.get("/wxa/resetusersessionkey", &query).await,
        87009,
        "invalid signature",
    );
    assert_errcode(&t.checksession(&token, &openid, &signature).await, 87009);
    let new_signature = login_state_signature(new_key, b"");
    assert_errcode(&t.checksession(&token, &openid, &new_signature).await, 0);
}

#[tokio::test]
async fn resetusersessionkey_checks_token_and_sig_method_like_checksession() {
    let t = TestMock::start().await;
    let (openid, signature) = alice_signature(&t).await;
    let query = [
        ("openid", openid.as_str()),
        ("signature", signature.as_str()),
    ];
    assert_errcode(&t.get("/wxa/resetusersessionkey", &query).await, 41001);
    let token = t.classic_token().await;
    let mut with_token = query.to_vec();
    with_token.push(("access_token", token.as_str()));
    assert_errcode(&t.get("/wxa/resetusersessionkey", &with_token).await, 87008);
}
