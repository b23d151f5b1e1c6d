//! `/wxa/business/getuserphonenumber`: phone codes, their app, lifetime and single use.

use serde_json::json;
use wechat_mock::{AppConfig, openid_for};

use crate::helpers::*;

const PHONE: &str = "/wxa/business/getuserphonenumber";

async fn exchange(t: &TestMock, token: &str, body: serde_json::Value) -> serde_json::Value {
    t.post(PHONE, &[("access_token", token)], &body.to_string())
        .await
}

#[tokio::test]
async fn getuserphonenumber_returns_phone_info_with_string_country_code() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let code = t
        .mock()
        .mint_phone_code(APPID, "alice", "13800138000", "86")
        .unwrap();
    assert_eq!(code.len(), 64);
    t.advance(5);
    let body = exchange(&t, &token, json!({ "code": code })).await;
    assert_eq!(
        body,
        json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": "13800138000",
                "purePhoneNumber": "13800138000",
                "countryCode": "86",
                "watermark": { "timestamp": T0 + 5, "appid": APPID },
            }
        })
    );
}

#[tokio::test]
async fn getuserphonenumber_foreign_number_carries_the_country_code() {
    let t = TestMock::start().await;
    let token = t.stable_token(false).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = t
        .mock()
        .mint_phone_code(APPID, "alice", "2025550123", "1")
        .unwrap();
    let info = &exchange(&t, &token, json!({ "code": code })).await["phone_info"];
    assert_eq!(info["phoneNumber"], "+12025550123");
    assert_eq!(info["purePhoneNumber"], "2025550123");
    assert_eq!(info["countryCode"], "1");
}

#[tokio::test]
async fn getuserphonenumber_reused_or_expired_code_is_40029() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let used = t
        .mock()
        .mint_phone_code(APPID, "alice", "13800138000", "86")
        .unwrap();
    let late = t
        .mock()
        .mint_phone_code(APPID, "alice", "13800138000", "86")
        .unwrap();
    assert_errcode(&exchange(&t, &token, json!({ "code": used })).await, 0);
    assert_wx_error(
        &exchange(&t, &token, json!({ "code": used })).await,
        40029,
        "invalid code",
    );
    t.advance(301);
    assert_wx_error(
        &exchange(&t, &token, json!({ "code": late })).await,
        40029,
        "invalid code",
    );
    assert_errcode(
        &exchange(
            &t,
            &token,
            json!({ "code": "e31968a7f94cc5ee25fafc2aef2773f0bb8c3937b22520eb8ee345274d00c144" }),
        )
        .await,
        40029,
    );
}

#[tokio::test]
async fn getuserphonenumber_with_a_login_code_is_40029() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let login = t.login("alice");
    assert_wx_error(
        &exchange(&t, &token, json!({ "code": login.code })).await,
        40029,
        "invalid code",
    );
    // ...and the login code still works where it belongs.
    assert!(t.code2session(&login.code).await.get("openid").is_some());
}

#[tokio::test]
async fn getuserphonenumber_phone_code_of_another_app_is_40013() {
    let t = TestMock::start().await;
    t.mock()
        .add_app(AppConfig::new("wx00000000000000d1", "s-d1"));
    let token = t.classic_token().await;
    let code = t
        .mock()
        .mint_phone_code("wx00000000000000d1", "alice", "13800138000", "86")
        .unwrap();
    assert_wx_error(
        &exchange(&t, &token, json!({ "code": code })).await,
        40013,
        "invalid appid",
    );
}

#[tokio::test]
async fn getuserphonenumber_with_another_users_openid_is_40003() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let code = t
        .mock()
        .mint_phone_code(APPID, "alice", "13800138000", "86")
        .unwrap();
    let bob = openid_for(APPID, "bob");
    assert_wx_error(
        &exchange(&t, &token, json!({ "code": code, "openid": bob })).await,
        40003,
        "invalid openid",
    );
    let alice = openid_for(APPID, "alice");
    assert_errcode(
        &exchange(&t, &token, json!({ "code": code, "openid": alice })).await,
        0,
    );
}

#[tokio::test]
async fn getuserphonenumber_checks_the_access_token_first() {
    let t = TestMock::start().await;
    assert_wx_error(&t.post(PHONE, &[], "").await, 41001, "access_token missing");
    assert_errcode(
        &t.post(PHONE, &[("access_token", "89_nope")], "").await,
        40001,
    );
}

#[tokio::test]
async fn getuserphonenumber_body_errors_are_44002_and_47001() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    let query = [("access_token", token.as_str())];
    assert_wx_error(&t.post(PHONE, &query, "").await, 44002, "empty post data");
    for body in [
        "code=abc",
        "[]",
        "{}",
        r#"{"code": 5}"#,
        r#"{"code": "abc", "openid": 7}"#,
    ] {
        assert_wx_error(
            &t.post(PHONE, &query, body).await,
            47001,
            "data format error",
        );
    }
}
