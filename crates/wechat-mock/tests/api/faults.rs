//! Injected faults: errcodes, latency, hanging calls, dropped connections.

use std::time::Duration;

use serde_json::json;
use wechat_mock::{Api, Fault, FaultTarget};

use crate::helpers::*;

async fn add_fault(t: &TestMock, fault: serde_json::Value) {
    let response = t
        .http
        .post(t.url("/__mock/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn fault_errcode_answers_that_errcode_for_times_calls() {
    let t = TestMock::start().await;
    add_fault(&t, json!({ "api": "token", "errcode": -1, "times": 2 })).await;
    let query = [
        ("grant_type", "client_credential"),
        ("appid", APPID),
        ("secret", SECRET),
    ];
    assert_wx_error(&t.get("/cgi-bin/token", &query).await, -1, "system error");
    assert_wx_error(&t.get("/cgi-bin/token", &query).await, -1, "system error");
    assert!(
        t.get("/cgi-bin/token", &query)
            .await
            .get("access_token")
            .is_some()
    );
}

#[tokio::test]
async fn fault_with_an_unknown_errcode_names_it_in_errmsg() {
    let t = TestMock::start().await;
    t.mock()
        .add_fault(Fault::on(Api::Jscode2session).errcode(99999).times(1));
    let login = t.login("alice");
    assert_wx_error(
        &t.code2session(&login.code).await,
        99999,
        "mock fault errcode 99999",
    );
    // The faulted call did not use up the code.
    assert!(t.code2session(&login.code).await.get("openid").is_some());
}

#[tokio::test]
async fn fault_on_one_api_leaves_the_others_alone() {
    let t = TestMock::start().await;
    t.mock().add_fault(Fault::on(Api::StableToken).errcode(-1));
    assert!(!t.classic_token().await.is_empty());
    assert_errcode(&t.stable_token(false).await, -1);
    assert_errcode(&t.stable_token(false).await, -1);
}

#[tokio::test]
async fn fault_wildcard_applies_to_every_api() {
    let t = TestMock::start().await;
    add_fault(&t, json!({ "api": "*", "errcode": 45011 })).await;
    assert_errcode(&t.code2session("x").await, 45011);
    assert_errcode(&t.get("/cgi-bin/token", &[]).await, 45011);
    assert_errcode(&t.stable_token(false).await, 45011);
    assert_errcode(&t.get("/wxa/checksession", &[]).await, 45011);
    assert_errcode(&t.get("/wxa/resetusersessionkey", &[]).await, 45011);
    assert_errcode(
        &t.post("/wxa/business/getuserphonenumber", &[], "").await,
        45011,
    );
}

#[tokio::test]
async fn fault_latency_delays_the_answer_then_processes_normally() {
    let t = TestMock::start().await;
    t.mock().add_fault(
        Fault::on(Api::Token)
            .latency(Duration::from_millis(600))
            .times(1),
    );
    let slow = tokio::time::timeout(Duration::from_millis(200), t.classic_token()).await;
    assert!(slow.is_err(), "answered before the latency");
    add_fault(&t, json!({ "api": "token", "latency_ms": 300, "times": 1 })).await;
    let token = tokio::time::timeout(Duration::from_secs(5), t.classic_token())
        .await
        .unwrap();
    assert_eq!(t.token_errcode(&token).await, 0);
}

#[tokio::test]
async fn fault_latency_then_errcode() {
    let t = TestMock::start().await;
    t.mock().add_fault(
        Fault::on(Api::Token)
            .latency(Duration::from_millis(50))
            .errcode(-1)
            .times(1),
    );
    assert_errcode(&t.get("/cgi-bin/token", &[]).await, -1);
}

#[tokio::test]
async fn fault_hang_outlasts_the_client_timeout() {
    let t = TestMock::start().await;
    add_fault(
        &t,
        json!({ "api": "jscode2session", "hang": true, "times": 1 }),
    )
    .await;
    let error = t
        .http
        .get(t.url("/sns/jscode2session"))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_errcode(&t.code2session("x").await, 40029);
}

#[tokio::test]
async fn fault_close_drops_the_connection_without_a_response() {
    let t = TestMock::start().await;
    t.mock()
        .add_fault(Fault::on(FaultTarget::Token).close().times(1));
    let error = t
        .http
        .get(t.url("/cgi-bin/token"))
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_timeout(), "{error:?}");
    assert!(error.status().is_none(), "{error:?}");
    assert!(
        !t.classic_token().await.is_empty(),
        "the next call is answered"
    );
}

#[tokio::test]
async fn faults_are_cleared_by_delete() {
    let t = TestMock::start().await;
    add_fault(&t, json!({ "api": "token", "errcode": -1 })).await;
    assert_errcode(&t.get("/cgi-bin/token", &[]).await, -1);
    let response = t.http.delete(t.url("/__mock/faults")).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(!t.classic_token().await.is_empty());
}

#[tokio::test]
async fn faulted_calls_are_counted() {
    let t = TestMock::start().await;
    t.mock()
        .add_fault(Fault::on(FaultTarget::All).errcode(-1).times(2));
    t.get("/cgi-bin/token", &[]).await;
    t.code2session("x").await;
    t.code2session("x").await;
    assert_eq!(t.mock().calls(Api::Token), 1);
    assert_eq!(t.mock().calls(Api::Jscode2session), 2);
    t.mock().clear_faults();
}
