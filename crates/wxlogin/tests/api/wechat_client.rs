use std::time::Duration;

use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};
use wxlogin::domain::{AppId, AppSecret, LoginCode, OpenId, PhoneCode, SessionKey, UnionId};
use wxlogin::wechat::{AccessTokens, ErrCode, TokenMode, WechatError, with_access_token};

use crate::helpers::*;

fn code(text: &str) -> LoginCode {
    LoginCode::parse(text).unwrap()
}

fn api_err(e: &WechatError) -> Option<ErrCode> {
    match e {
        WechatError::Api { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn code2session_returns_openid_session_key_and_unionid() {
    let wx = TestWechat::spawn().await;
    let minted = wx.mock().mint_login_code(DEMO_APPID, "alice").unwrap();
    let (appid, secret) = demo_app();
    let session = wx
        .client()
        .code2session(&appid, &secret, &code(&minted.code))
        .await
        .unwrap();
    assert_eq!(
        session.openid,
        OpenId::parse(minted.openid.clone()).unwrap()
    );
    assert_eq!(
        session.openid.as_str(),
        wechat_mock::openid_for(DEMO_APPID, "alice")
    );
    let expected_key = wx.mock().session_key(DEMO_APPID, "alice").unwrap();
    assert_eq!(
        session.session_key,
        SessionKey::parse(expected_key).unwrap()
    );
    assert_eq!(
        session.unionid,
        Some(UnionId::parse(wechat_mock::unionid_for("demo", "alice")).unwrap())
    );
}

#[tokio::test]
async fn code2session_maps_every_rejection_to_a_typed_error_with_rid() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();

    let used = wx.mock().mint_login_code(DEMO_APPID, "bob").unwrap().code;
    client
        .code2session(&appid, &secret, &code(&used))
        .await
        .unwrap();
    let again = client
        .code2session(&appid, &secret, &code(&used))
        .await
        .unwrap_err();
    assert_eq!(api_err(&again), Some(ErrCode::CodeBeenUsed));
    let rid = again.rid().expect("rid kept");
    assert_eq!(rid.len(), 26, "rid {rid}");
    assert!(again.to_string().contains(rid));

    let unknown = client
        .code2session(&appid, &secret, &code("0000000000000000000000000000000A"))
        .await
        .unwrap_err();
    assert_eq!(api_err(&unknown), Some(ErrCode::InvalidCode));

    let expiring = wx.mock().mint_login_code(DEMO_APPID, "bob").unwrap().code;
    wx.clock.advance(Duration::from_secs(301));
    let expired = client
        .code2session(&appid, &secret, &code(&expiring))
        .await
        .unwrap_err();
    assert_eq!(api_err(&expired), Some(ErrCode::InvalidCode));

    let fresh = wx.mock().mint_login_code(DEMO_APPID, "bob").unwrap().code;
    let wrong_secret = AppSecret::parse("ffffffffffffffffffffffffffffffff").unwrap();
    let e = client
        .code2session(&appid, &wrong_secret, &code(&fresh))
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidAppsecret));

    let stranger = AppId::parse("wx00000000000000ff").unwrap();
    let e = client
        .code2session(&stranger, &secret, &code(&fresh))
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidAppid));

    wx.mock()
        .set_user_risky(DEMO_APPID, "mallory", true)
        .unwrap();
    let risky = wx
        .mock()
        .mint_login_code(DEMO_APPID, "mallory")
        .unwrap()
        .code;
    let e = client
        .code2session(&appid, &secret, &code(&risky))
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::CodeBlocked));
}

#[tokio::test]
async fn code2session_hits_the_per_user_minute_quota() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();
    for _ in 0..100 {
        let c = wx.mock().mint_login_code(DEMO_APPID, "carol").unwrap().code;
        client
            .code2session(&appid, &secret, &code(&c))
            .await
            .unwrap();
    }
    let c = wx.mock().mint_login_code(DEMO_APPID, "carol").unwrap().code;
    let e = client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::MinuteQuota));
    wx.clock.advance(Duration::from_secs(61));
    client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap();
}

#[tokio::test]
async fn code_exchange_is_never_retried_after_wechat_answered() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();
    let c = wx.mock().mint_login_code(DEMO_APPID, "dave").unwrap().code;

    wx.fault(json!({"api": "jscode2session", "errcode": -1, "times": 1}))
        .await;
    let e = client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::SystemBusy));
    assert!(e.is_unavailable());
    assert_eq!(wx.calls("jscode2session").await, 1);

    wx.fault(json!({"api": "jscode2session", "close": true, "times": 1}))
        .await;
    let e = client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap_err();
    assert!(matches!(e, WechatError::Transport(_)), "{e:?}");
    assert_eq!(wx.calls("jscode2session").await, 2);

    wx.fault(json!({"api": "jscode2session", "hang": true, "times": 1}))
        .await;
    let e = client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap_err();
    assert_eq!(e, WechatError::Timeout);
    assert_eq!(wx.calls("jscode2session").await, 3);

    // The faults answered before the simulator looked at the code: it is still good.
    client
        .code2session(&appid, &secret, &code(&c))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_wechat_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let (appid, secret) = demo_app();
    let e = client_for(&url)
        .code2session(&appid, &secret, &code("0000000000000000000000000000000A"))
        .await
        .unwrap_err();
    assert!(matches!(e, WechatError::Connect(_)), "{e:?}");
    assert!(e.is_unavailable());
    assert!(!e.to_string().contains("0000000000000000000000000000000A"));
}

#[tokio::test]
async fn idempotent_calls_retry_busy_and_transport_errors_a_bounded_number_of_times() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();

    wx.fault(json!({"api": "token", "errcode": -1, "times": 2}))
        .await;
    client.get_access_token(&appid, &secret).await.unwrap();
    assert_eq!(wx.calls("token").await, 3);

    wx.fault(json!({"api": "token", "errcode": -1, "times": 5}))
        .await;
    let e = client.get_access_token(&appid, &secret).await.unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::SystemBusy));
    assert_eq!(wx.calls("token").await, 6, "three attempts, no more");
    wx.mock().clear_faults();

    wx.fault(json!({"api": "stable_token", "close": true, "times": 1}))
        .await;
    client
        .get_stable_access_token(&appid, &secret, false)
        .await
        .unwrap();
    assert_eq!(wx.calls("stable_token").await, 2);

    // A real refusal is not retried.
    let wrong = AppSecret::parse("ffffffffffffffffffffffffffffffff").unwrap();
    let e = client
        .get_stable_access_token(&appid, &wrong, false)
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidAppsecret));
    assert_eq!(wx.calls("stable_token").await, 3);
}

#[tokio::test]
async fn stable_tokens_are_cached_and_fetched_once_by_concurrent_callers() {
    let wx = TestWechat::spawn().await;
    let tokens = AccessTokens::new(
        wx.client(),
        wx.clock.shared(),
        TokenMode::Stable,
        [demo_app()],
    );
    let (appid, _) = demo_app();
    let fetched = futures::future::join_all((0..20).map(|_| tokens.get(&appid))).await;
    let first = fetched[0].as_ref().unwrap().clone();
    assert!(fetched.iter().all(|t| t.as_ref().unwrap() == &first));
    assert_eq!(wx.calls("stable_token").await, 1);
    // The background refresher renews it only inside the last five minutes of its life (when
    // stable_token hands out the next one); requests keep the cached token until its last minute.
    wx.clock.advance(Duration::from_secs(7200 - 301));
    assert_eq!(tokens.refresh_due().await, 0);
    assert_eq!(tokens.get(&appid).await.unwrap(), first);
    wx.clock.advance(Duration::from_secs(2));
    assert_eq!(tokens.get(&appid).await.unwrap(), first);
    assert_eq!(wx.calls("stable_token").await, 1);
    assert_eq!(tokens.refresh_due().await, 1);
    let renewed = tokens.get(&appid).await.unwrap();
    assert_ne!(renewed, first);
    assert_eq!(wx.calls("stable_token").await, 2);
    assert_eq!(
        tokens.refresh_due().await,
        0,
        "nothing is due right after a renewal"
    );
    // Without the refresher, a request renews the token itself in its last minute.
    wx.clock.advance(Duration::from_secs(7200 - 59));
    let on_demand = tokens.get(&appid).await.unwrap();
    assert_ne!(on_demand, renewed);
    assert_eq!(wx.calls("stable_token").await, 3);
    let stranger = AppId::parse("wx00000000000000ff").unwrap();
    assert_eq!(
        api_err(&tokens.get(&stranger).await.unwrap_err()),
        Some(ErrCode::InvalidAppid)
    );
}

/// Makes the cached classic token stale the way WeChat does: two newer fetches and five minutes.
async fn stale_classic_token(wx: &TestWechat, tokens: &AccessTokens) {
    let (appid, secret) = demo_app();
    tokens.get(&appid).await.unwrap();
    wx.client().get_access_token(&appid, &secret).await.unwrap();
    wx.clock.advance(Duration::from_secs(301));
}

#[tokio::test]
async fn a_rejected_access_token_is_refreshed_once_and_the_call_retried_once() {
    let wx = TestWechat::spawn().await;
    let tokens = AccessTokens::new(
        wx.client(),
        wx.clock.shared(),
        TokenMode::Classic,
        [demo_app()],
    );
    let (appid, _) = demo_app();
    wx.mock().mint_login_code(DEMO_APPID, "erin").unwrap();
    let openid = OpenId::parse(wechat_mock::openid_for(DEMO_APPID, "erin")).unwrap();
    let key = SessionKey::parse(wx.mock().session_key(DEMO_APPID, "erin").unwrap()).unwrap();
    stale_classic_token(&wx, &tokens).await;
    let before = wx.calls("token").await;

    // Ten callers see 40001 for the same stale token: one refresh between them.
    let results = futures::future::join_all((0..10).map(|_| {
        with_access_token(&tokens, &appid, |token| {
            let (client, openid, key) = (tokens.client().clone(), openid.clone(), key.clone());
            async move { client.check_session_key(&token, &openid, &key).await }
        })
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(true))), "{results:?}");
    assert_eq!(wx.calls("token").await, before + 1);
}

#[tokio::test]
async fn a_token_rejected_again_after_the_refresh_is_returned_not_looped() {
    let wx = TestWechat::spawn().await;
    let tokens = AccessTokens::new(
        wx.client(),
        wx.clock.shared(),
        TokenMode::Stable,
        [demo_app()],
    );
    let (appid, _) = demo_app();
    wx.mock().mint_login_code(DEMO_APPID, "frank").unwrap();
    let openid = OpenId::parse(wechat_mock::openid_for(DEMO_APPID, "frank")).unwrap();
    let key = SessionKey::parse(wx.mock().session_key(DEMO_APPID, "frank").unwrap()).unwrap();
    wx.fault(json!({"api": "checksession", "errcode": 40001}))
        .await;
    let e = with_access_token(&tokens, &appid, |token| {
        let (client, openid, key) = (tokens.client().clone(), openid.clone(), key.clone());
        async move { client.check_session_key(&token, &openid, &key).await }
    })
    .await
    .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidCredential));
    assert_eq!(wx.calls("checksession").await, 2, "one call, one retry");
    assert_eq!(wx.calls("stable_token").await, 2, "one fetch, one refresh");
}

#[tokio::test]
async fn check_and_reset_session_key() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();
    let minted = wx.mock().mint_login_code(DEMO_APPID, "grace").unwrap();
    let session = client
        .code2session(&appid, &secret, &code(&minted.code))
        .await
        .unwrap();
    let token = client
        .get_stable_access_token(&appid, &secret, false)
        .await
        .unwrap()
        .token;

    assert!(
        client
            .check_session_key(&token, &session.openid, &session.session_key)
            .await
            .unwrap()
    );
    let new_key = client
        .reset_session_key(&token, &session.openid, &session.session_key)
        .await
        .unwrap();
    assert_ne!(new_key, session.session_key);
    assert_eq!(
        new_key,
        SessionKey::parse(wx.mock().session_key(DEMO_APPID, "grace").unwrap()).unwrap()
    );
    assert!(
        !client
            .check_session_key(&token, &session.openid, &session.session_key)
            .await
            .unwrap()
    );
    assert!(
        client
            .check_session_key(&token, &session.openid, &new_key)
            .await
            .unwrap()
    );
    let e = client
        .reset_session_key(&token, &session.openid, &session.session_key)
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidSignature));

    let stranger = OpenId::parse("oNobodyNobodyNobodyNobody123").unwrap();
    let e = client
        .check_session_key(&token, &stranger, &new_key)
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidOpenid));
    let bogus = wxlogin::domain::AccessToken::parse("89_not_a_token").unwrap();
    let e = client
        .check_session_key(&bogus, &session.openid, &new_key)
        .await
        .unwrap_err();
    assert!(e.is_access_token_rejected());
}

#[tokio::test]
async fn phone_codes_resolve_and_login_codes_do_not() {
    let wx = TestWechat::spawn().await;
    let client = wx.client();
    let (appid, secret) = demo_app();
    let token = client
        .get_stable_access_token(&appid, &secret, false)
        .await
        .unwrap()
        .token;
    let phone_code = wx
        .mock()
        .mint_phone_code(DEMO_APPID, "heidi", "13800138000", "86")
        .unwrap();
    let info = client
        .get_phone_number(&token, &PhoneCode::parse(phone_code.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(info.pure_phone_number, "13800138000");
    assert_eq!(info.phone_number, "13800138000");
    assert_eq!(info.country_code, "86");
    assert_eq!(info.watermark.appid, DEMO_APPID);
    assert_eq!(info.watermark.timestamp, wx.clock.shared().unix_secs());

    let reused = client
        .get_phone_number(&token, &PhoneCode::parse(phone_code).unwrap())
        .await
        .unwrap_err();
    assert_eq!(api_err(&reused), Some(ErrCode::InvalidCode));
    let login_code = wx.mock().mint_login_code(DEMO_APPID, "heidi").unwrap().code;
    let e = client
        .get_phone_number(&token, &PhoneCode::parse(login_code).unwrap())
        .await
        .unwrap_err();
    assert_eq!(api_err(&e), Some(ErrCode::InvalidCode));
    assert_eq!(
        wx.calls("getuserphonenumber").await,
        3,
        "single-use codes are never retried"
    );
}

/// A stand-in WeChat that answers every request with the same odd response.
async fn odd_wechat(response: ResponseTemplate) -> (MockServer, wxlogin::wechat::WechatClient) {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(response)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    (server, client)
}

fn json_body(body: &str, content_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), content_type)
}

#[tokio::test]
async fn odd_answers_from_wechat_are_typed_errors_never_panics() {
    let (appid, secret) = demo_app();
    let c = code("0000000000000000000000000000000A");
    let malformed = [
        json_body("<html>502 Bad Gateway</html>", "text/html"),
        json_body("[1,2,3]", "application/json"),
        json_body("", "application/json"),
        json_body("{\"errcode\": {}}", "application/json"),
        json_body(
            "{\"session_key\": \"tiihtNczf5v6AKRyjwEUhQ==\"}",
            "text/plain",
        ),
        json_body(
            "{\"openid\": \"oAAAAAAAAAAAAAAAAAAAAAAAAAAA\", \"session_key\": \"short\"}",
            "text/plain",
        ),
        json_body(
            "{\"openid\": \"oAAAAAAAAAAAAAAAAAAAAAAAAAAA\", \"session_key\": 7}",
            "text/plain",
        ),
        json_body(
            "{\"openid\": \"o A\", \"session_key\": \"tiihtNczf5v6AKRyjwEUhQ==\"}",
            "text/plain",
        ),
        json_body(
            &format!("{{\"padding\": \"{}\"}}", "x".repeat(300 * 1024)),
            "application/json",
        ),
    ];
    for response in malformed {
        let (_server, client) = odd_wechat(response).await;
        let e = client.code2session(&appid, &secret, &c).await.unwrap_err();
        assert!(matches!(e, WechatError::Malformed { .. }), "{e:?}");
        assert!(!e.to_string().contains("tiihtNczf5v6AKRyjwEUhQ=="), "{e}");
    }

    let (server, client) = odd_wechat(ResponseTemplate::new(500)).await;
    let e = client.get_access_token(&appid, &secret).await.unwrap_err();
    assert_eq!(e, WechatError::HttpStatus { status: 500 });
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "5xx retried for idempotent calls"
    );

    let (_server, client) = odd_wechat(json_body(
        "{\"errcode\":\"40029\",\"errmsg\":\"invalid code, rid: 6129ee10-272863a4-64d75414\"}",
        "text/plain",
    ))
    .await;
    let e = client.code2session(&appid, &secret, &c).await.unwrap_err();
    assert_eq!(
        e,
        WechatError::Api {
            code: ErrCode::InvalidCode,
            rid: Some("6129ee10-272863a4-64d75414".into())
        }
    );

    let (_server, client) = odd_wechat(json_body(
        "{\"errcode\":61450,\"errmsg\":\"system error, rid: 6129ee10-272863a4-64d75414\"}",
        "application/json",
    ))
    .await;
    let e = client.code2session(&appid, &secret, &c).await.unwrap_err();
    assert_eq!(
        e,
        WechatError::Unknown {
            errcode: 61450,
            errmsg: "system error".into(),
            rid: Some("6129ee10-272863a4-64d75414".into())
        }
    );

    // Legacy accounts still add `expires_in`; some answers carry `errcode: 0`.
    let (_server, client) = odd_wechat(json_body("{\"session_key\":\"tiihtNczf5v6AKRyjwEUhQ==\",\"expires_in\":7200,\"openid\":\"oGZUI0egBJY1zhBYw2KhdUfwVJJE\",\"errcode\":0,\"errmsg\":\"ok\"}", "text/plain")).await;
    let s = client.code2session(&appid, &secret, &c).await.unwrap();
    assert_eq!(s.unionid, None);
    assert_eq!(s.openid.as_str(), "oGZUI0egBJY1zhBYw2KhdUfwVJJE");

    let (_server, client) = odd_wechat(json_body("{\"errcode\":0,\"errmsg\":\"ok\",\"phone_info\":{\"phoneNumber\":\"+12025550123\",\"purePhoneNumber\":\"2025550123\",\"countryCode\":1,\"watermark\":{\"timestamp\":1637744274,\"appid\":\"wx0000000000000001\"}}}", "application/json")).await;
    let token = wxlogin::domain::AccessToken::parse("89_token").unwrap();
    let info = client
        .get_phone_number(
            &token,
            &PhoneCode::parse("e31968a7f94cc5ee25fafc2aef2773f0").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(info.country_code, "1");
}

#[tokio::test]
async fn random_bodies_from_wechat_never_panic() {
    let server = MockServer::start().await;
    let counter = std::sync::atomic::AtomicU64::new(1);
    Mock::given(any())
        .respond_with(move |_: &wiremock::Request| {
            // A cheap deterministic byte soup, mixed with near-JSON.
            let mut x = counter
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut body: Vec<u8> = b"{\"errcode\":".to_vec();
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push((x & 0xff) as u8);
            }
            ResponseTemplate::new(200).set_body_raw(body, "application/json")
        })
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let (appid, secret) = demo_app();
    for _ in 0..100 {
        let e = client
            .code2session(&appid, &secret, &code("0000000000000000000000000000000A"))
            .await;
        assert!(e.is_err());
    }
}
