//! `/cgi-bin/token` and `/cgi-bin/stable_token`: lifetimes, overlap, force refresh, quotas and the
//! isolation of the two namespaces.

use serde_json::json;
use wechat_mock::MockConfig;

use crate::helpers::*;

const TOKEN: &str = "/cgi-bin/token";
const STABLE: &str = "/cgi-bin/stable_token";

#[tokio::test]
async fn token_returns_an_access_token_valid_7200s_without_errcode() {
    let t = TestMock::start().await;
    let body = t
        .get(
            TOKEN,
            &[
                ("grant_type", "client_credential"),
                ("appid", APPID),
                ("secret", SECRET),
            ],
        )
        .await;
    assert_eq!(body["expires_in"], 7200);
    assert!(body.get("errcode").is_none());
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() > 100 && token.len() <= 512, "{token}");
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(t.token_errcode(token).await, 0);
}

#[tokio::test]
async fn token_parameter_errors_follow_wechat_order() {
    let t = TestMock::start().await;
    let grant = ("grant_type", "client_credential");
    type Query<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Query<'_>, i64, &str); 6] = [
        (&[grant, ("secret", SECRET)], 41002, "appid missing"),
        (&[grant, ("appid", APPID)], 41004, "appsecret missing"),
        (
            &[("appid", APPID), ("secret", SECRET)],
            40002,
            "invalid grant_type",
        ),
        (
            &[
                ("grant_type", "authorization_code"),
                ("appid", APPID),
                ("secret", SECRET),
            ],
            40002,
            "invalid grant_type",
        ),
        (
            &[grant, ("appid", "wx9999999999999999"), ("secret", SECRET)],
            40013,
            "invalid appid",
        ),
        (
            &[grant, ("appid", APPID), ("secret", "nope")],
            40125,
            "invalid appsecret",
        ),
    ];
    for (query, code, errmsg) in cases {
        assert_wx_error(&t.get(TOKEN, query).await, code, errmsg);
    }
}

#[tokio::test]
async fn classic_token_stays_valid_300s_after_a_new_fetch_then_is_40001() {
    let t = TestMock::start().await;
    let old = t.classic_token().await;
    t.advance(1000);
    let new = t.classic_token().await;
    assert_ne!(old, new);
    t.advance(299);
    assert_eq!(t.token_errcode(&old).await, 0);
    t.advance(1);
    assert_eq!(t.token_errcode(&old).await, 40001);
    assert_eq!(t.token_errcode(&new).await, 0);
}

#[tokio::test]
async fn classic_token_past_its_expiry_is_42001() {
    let t = TestMock::start().await;
    let token = t.classic_token().await;
    t.advance(7199);
    assert_eq!(t.token_errcode(&token).await, 0);
    t.advance(1);
    assert_eq!(t.token_errcode(&token).await, 42001);
}

#[tokio::test]
async fn access_token_missing_is_41001_and_unknown_is_40001() {
    let t = TestMock::start().await;
    let body = t
        .get(
            "/wxa/checksession",
            &[("openid", "x"), ("sig_method", "hmac_sha256")],
        )
        .await;
    assert_wx_error(&body, 41001, "access_token missing");
    let body = t.get("/wxa/checksession", &[("access_token", "")]).await;
    assert_wx_error(&body, 41001, "access_token missing");
    let body = t
        .get("/wxa/checksession", &[("access_token", "89_unknown")])
        .await;
    assert_wx_error(
        &body,
        40001,
        "invalid credential, access_token is invalid or not latest",
    );
}

#[tokio::test]
async fn token_daily_quota_is_45009_until_the_next_utc_day() {
    let mut config = MockConfig::demo();
    config.token_daily_quota = 3;
    let t = TestMock::with_config(config).await;
    for _ in 0..3 {
        t.classic_token().await;
    }
    let query = [
        ("grant_type", "client_credential"),
        ("appid", APPID),
        ("secret", SECRET),
    ];
    assert_wx_error(
        &t.get(TOKEN, &query).await,
        45009,
        "reach max api daily quota limit",
    );
    // 01:00 UTC + 23 h is midnight of the next day.
    t.advance(23 * 3600 - 1);
    assert_errcode(&t.get(TOKEN, &query).await, 45009);
    t.advance(1);
    assert!(t.get(TOKEN, &query).await.get("access_token").is_some());
}

#[tokio::test]
async fn stable_token_returns_the_same_token_until_its_last_300s_then_renews() {
    let t = TestMock::start().await;
    let first = t.stable_token(false).await;
    assert_eq!(first["expires_in"], 7200);
    assert!(first.get("errcode").is_none());
    let token = first["access_token"].as_str().unwrap().to_owned();
    t.advance(100);
    let again = t.stable_token(false).await;
    assert_eq!(again["access_token"], token.as_str());
    assert_eq!(again["expires_in"], 7100);
    t.advance(6799);
    let late = t.stable_token(false).await;
    assert_eq!(late["access_token"], token.as_str());
    assert_eq!(late["expires_in"], 301);
    t.advance(1);
    let renewed = t.stable_token(false).await;
    assert_ne!(renewed["access_token"], token.as_str());
    assert_eq!(renewed["expires_in"], 7200);
    // The old token lives out its own expiry.
    assert_eq!(t.token_errcode(&token).await, 0);
    t.advance(300);
    assert_eq!(t.token_errcode(&token).await, 42001);
}

#[tokio::test]
async fn stable_token_force_refresh_within_30s_returns_the_current_token() {
    let t = TestMock::start().await;
    let first = t.stable_token(true).await;
    t.advance(29);
    let soon = t.stable_token(true).await;
    assert_eq!(soon["access_token"], first["access_token"]);
    assert_eq!(soon["expires_in"], 7171);
    t.advance(1);
    let refreshed = t.stable_token(true).await;
    assert_ne!(refreshed["access_token"], first["access_token"]);
    assert_eq!(refreshed["expires_in"], 7200);
}

#[tokio::test]
async fn stable_token_force_refresh_is_limited_to_20_per_day() {
    let t = TestMock::start().await;
    for _ in 0..20 {
        assert!(t.stable_token(true).await.get("access_token").is_some());
        t.advance(30);
    }
    assert_wx_error(
        &t.stable_token(true).await,
        45009,
        "reach max api daily quota limit",
    );
    // Normal mode still works.
    assert!(t.stable_token(false).await.get("access_token").is_some());
    t.advance(24 * 3600);
    assert!(t.stable_token(true).await.get("access_token").is_some());
}

#[tokio::test]
async fn stable_token_two_force_refreshes_30s_apart_kill_a_leaked_token() {
    let t = TestMock::start().await;
    let leaked = t.stable_token(false).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = t.stable_token(true).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        t.token_errcode(&leaked).await,
        0,
        "one force refresh leaves a grace"
    );
    t.advance(30);
    let second = t.stable_token(true).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(t.token_errcode(&leaked).await, 40001);
    assert_eq!(t.token_errcode(&first).await, 0);
    assert_eq!(t.token_errcode(&second).await, 0);
}

#[tokio::test]
async fn stable_token_body_errors_are_44002_and_47001() {
    let t = TestMock::start().await;
    assert_wx_error(&t.post(STABLE, &[], "").await, 44002, "empty post data");
    let bad = [
        "grant_type=client_credential".to_owned(),
        "[1, 2]".to_owned(),
        "\"text\"".to_owned(),
        json!({"grant_type": "client_credential", "appid": 1, "secret": SECRET}).to_string(),
        json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": "true"})
            .to_string(),
    ];
    for body in bad {
        assert_wx_error(
            &t.post(STABLE, &[], &body).await,
            47001,
            "data format error",
        );
    }
}

#[tokio::test]
async fn stable_token_parameter_errors_follow_wechat_order() {
    let t = TestMock::start().await;
    let cases = [
        (
            json!({"grant_type": "client_credential", "secret": SECRET}),
            41002,
        ),
        (
            json!({"grant_type": "client_credential", "appid": APPID}),
            41004,
        ),
        (json!({"appid": APPID, "secret": SECRET}), 40002),
        (
            json!({"grant_type": "client_credential", "appid": "wx9999999999999999", "secret": SECRET}),
            40013,
        ),
        (
            json!({"grant_type": "client_credential", "appid": APPID, "secret": "nope"}),
            40125,
        ),
    ];
    for (body, code) in cases {
        assert_errcode(&t.post(STABLE, &[], &body.to_string()).await, code);
    }
    let ok = json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": null});
    assert!(
        t.post(STABLE, &[], &ok.to_string())
            .await
            .get("access_token")
            .is_some()
    );
}

#[tokio::test]
async fn stable_and_classic_tokens_are_isolated_namespaces() {
    let t = TestMock::start().await;
    let classic = t.classic_token().await;
    let stable = t.stable_token(false).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(classic, stable);

    // New classic tokens do not touch the stable one.
    t.classic_token().await;
    t.advance(300);
    assert_eq!(t.token_errcode(&classic).await, 40001);
    assert_eq!(t.token_errcode(&stable).await, 0);
    assert_eq!(t.stable_token(false).await["access_token"], stable.as_str());

    // Force refreshes do not touch the classic one.
    let classic = t.classic_token().await;
    t.stable_token(true).await;
    t.advance(30);
    t.stable_token(true).await;
    assert_eq!(t.token_errcode(&stable).await, 40001);
    assert_eq!(t.token_errcode(&classic).await, 0);
}
