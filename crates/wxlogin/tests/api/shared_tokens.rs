//! One WeChat access token per app for all instances: two servers sharing one Redis (a prefix of
//! their own per test), one database and one simulator, which counts the token calls.
//!
//! Each server has its own `ManualClock` (the first one's also drives the simulator); where time
//! must pass, both are moved alike.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use wxlogin::config::RedisSettings;
use wxlogin::wechat::TokenMode;

use crate::helpers::*;
use crate::shared::{Relay, redis_settings};

/// A first server on `redis`, and a second beside it: same database, sealing key and simulator.
async fn pair(
    redis: RedisSettings,
    configure: impl Fn(&mut wxlogin::config::Settings) + Clone,
) -> (TestApp, TestApp) {
    let configure_first = configure.clone();
    let a = TestApp::spawn_with(move |s| {
        s.redis = redis;
        configure_first(s);
    })
    .await;
    let b = a.spawn_beside(configure).await;
    (a, b)
}

fn token_url(app: &TestApp) -> String {
    app.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token"))
}

async fn token_at(app: &TestApp) -> String {
    let response = app
        .http
        .get(token_url(app))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    app.remember_secret(token.clone());
    token
}

/// Reports `rejected` as a service does after WeChat answered 40001; returns the current token.
async fn report_rejected(app: &TestApp, rejected: &str) -> String {
    let response = app
        .http
        .post(format!("{}/invalidate", token_url(app)))
        .basic_auth(SERVICE_ID, Some(SERVICE_SECRET))
        .json(&json!({ "access_token": rejected }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    app.remember_secret(token.clone());
    token
}

fn advance_both(a: &TestApp, b: &TestApp, by: Duration) {
    a.wx.clock.advance(by);
    b.wx.clock.advance(by);
}

fn classic(s: &mut wxlogin::config::Settings) {
    s.wechat.token_mode = TokenMode::Classic;
}

#[tokio::test]
async fn concurrent_token_requests_on_two_cold_instances_make_one_stable_token_call() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let (a, b) = pair(redis, |_| {}).await;
    let requests = (0..300).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        token_at(app)
    });
    let tokens: HashSet<String> = futures::future::join_all(requests)
        .await
        .into_iter()
        .collect();
    assert_eq!(tokens.len(), 1, "the same token on both instances");
    assert_eq!(a.wx.calls("stable_token").await, 1, "one fetch for both");
}

#[tokio::test]
async fn in_classic_mode_the_instances_use_one_token_and_one_renewal() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let (a, b) = pair(redis, |s| {
        classic(s);
        s.wechat.token_refresh_check_ms = 20;
    })
    .await;
    let first = token_at(&a).await;
    assert_eq!(token_at(&b).await, first, "the second instance adopts it");
    assert_eq!(a.wx.calls("token").await, 1, "so it replaces nothing");

    // In its last five minutes both refreshers look: one renews, the other adopts the new token
    // before its own copy runs out.
    advance_both(&a, &b, Duration::from_secs(7200 - 200));
    let deadline = std::time::Duration::from_secs(5);
    let renewed = tokio::time::timeout(deadline, async {
        loop {
            let (on_a, on_b) = (token_at(&a).await, token_at(&b).await);
            if on_a != first && on_b == on_a {
                return on_a;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("both instances switch to the renewed token");
    // A few more refresher rounds (real time, 200 ms): nobody fetches again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.wx.calls("token").await,
        2,
        "one renewal for both instances"
    );
    assert_eq!(token_at(&a).await, renewed);
    assert_eq!(token_at(&b).await, renewed);
}

#[tokio::test]
async fn a_token_rejected_on_both_instances_is_refetched_once_and_adopted_by_both() {
    let Some(redis) = redis_settings() else {
        return;
    };
    let (a, b) = pair(redis, classic).await;
    let rejected = token_at(&a).await;
    assert_eq!(token_at(&b).await, rejected);

    // Services on both instances report the token WeChat rejected, at the same time.
    let reports = (0..20).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        report_rejected(app, &rejected)
    });
    let answers: HashSet<String> = futures::future::join_all(reports)
        .await
        .into_iter()
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "one replacement on both: {}",
        answers.len()
    );
    let replacement = answers.into_iter().next().unwrap();
    assert_ne!(replacement, rejected);
    assert_eq!(a.wx.calls("token").await, 2, "refetched once");

    // A late report of the old token on either instance changes nothing.
    assert_eq!(report_rejected(&b, &rejected).await, replacement);
    assert_eq!(report_rejected(&a, &rejected).await, replacement);
    assert_eq!(a.wx.calls("token").await, 2);
}

#[tokio::test]
async fn the_shared_token_is_sealed_and_one_that_does_not_open_is_ignored() {
    let Some(redis) = redis_settings() else {
        return;
    };
    // A server with another sealing key on the same Redis prefix (a misconfiguration) publishes
    // a token the pair cannot open.
    let stranger_redis = redis.clone();
    let stranger = TestApp::spawn_with(move |s| s.redis = stranger_redis).await;
    let (a, b) = pair(redis.clone(), |_| {}).await;
    let strangers = token_at(&stranger).await;

    let token = token_at(&a).await;
    assert_ne!(token, strangers, "not the stranger's token");
    assert_eq!(a.wx.calls("stable_token").await, 1, "fetched by itself");
    assert!(logs_text().contains("does not open with this server's sealing key"));
    // It republished its own token, which the second instance adopts.
    assert_eq!(token_at(&b).await, token);
    assert_eq!(a.wx.calls("stable_token").await, 1);

    // Redis holds no token in clear.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", redis.key_prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        if kind != "string" {
            continue;
        }
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&value);
        assert!(
            !text.contains(&token) && !text.contains(&strangers),
            "{key}"
        );
    }

    // Garbage in its place is ignored too: the next instance that needs a token fetches it and
    // replaces the garbage.
    a.state
        .shared
        .values
        .set(
            &format!("wechat-access-token:{DEMO_APPID}"),
            b"not a sealed token",
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    advance_both(&a, &b, Duration::from_secs(7200));
    let renewed = token_at(&b).await;
    assert_eq!(a.wx.calls("stable_token").await, 2);
    assert_eq!(token_at(&a).await, renewed, "adopted, not fetched");
    assert_eq!(a.wx.calls("stable_token").await, 2);
}

/// `/readyz` of `app` answers 200 again (real time: the Redis connection reconnects by itself).
async fn wait_until_ready(app: &TestApp) {
    for _ in 0..100 {
        let status = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} not ready again after Redis came back", app.address);
}

#[tokio::test]
async fn while_redis_is_cut_each_instance_fetches_its_own_token_and_sharing_resumes_after() {
    let Some(mut redis) = redis_settings() else {
        return;
    };
    let relay = Relay::to(&redis.url).await;
    redis.url = relay.url.clone();
    redis.response_timeout_ms = 300;
    let (a, b) = pair(redis, |_| {}).await;

    relay.cut();
    // Fail open: each serves a token it fetched itself.
    let (on_a, on_b) = tokio::join!(token_at(&a), token_at(&b));
    assert!(!on_a.is_empty() && !on_b.is_empty());
    assert_eq!(
        a.wx.calls("stable_token").await,
        2,
        "one fetch per instance"
    );
    assert!(logs_text().contains("fetching the WeChat access token on this instance alone"));

    relay.restore();
    wait_until_ready(&a).await;
    wait_until_ready(&b).await;
    // Once both copies have run out, they share one fetch again.
    advance_both(&a, &b, Duration::from_secs(7200));
    let requests = (0..40).map(|n| token_at(if n % 2 == 0 { &a } else { &b }));
    let tokens: HashSet<String> = futures::future::join_all(requests)
        .await
        .into_iter()
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        a.wx.calls("stable_token").await,
        3,
        "one more fetch for both"
    );
}
