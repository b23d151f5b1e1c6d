//! Refresh-token rotation keeps one live chain per session, whatever the interleaving of
//! rotations, replays within the grace window and reuses, on both database backends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn refresh(app: &TestApp, token: &Value) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

async fn refreshed(app: &TestApp, token: &Value) -> Value {
    let response = refresh(app, token).await;
    assert_eq!(response.status(), 200, "refresh");
    response.json().await.unwrap()
}

async fn refused(app: &TestApp, token: &Value) {
    assert_error(refresh(app, token).await, 401, "invalid_grant").await;
}

/// The session is revoked: its newest pair, whoever holds it, works no more.
async fn assert_session_revoked(app: &TestApp, newest: &Value) {
    refused(app, &newest["refresh_token"]).await;
    let me = app
        .get_authed("/v1/me", newest["access_token"].as_str().unwrap())
        .await;
    assert_error(me, 401, "invalid_token").await;
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::helpers::TestApp::spawn().await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(schema) = crate::helpers::postgres_schema().await else {
                        return;
                    };
                    let url = schema.url.clone();
                    schema
                        .run(async move {
                            let app = crate::helpers::TestApp::spawn_with(|s| {
                                s.database.url = Some(url)
                            })
                            .await;
                            super::$scenario(app).await;
                        })
                        .await;
                }
            )*
        }
    };
}

on_both_backends!(
    two_replays_in_the_grace_leave_one_chain_after_the_window,
    a_replay_then_the_owner_using_the_rotated_token_ends_the_thief,
    the_owner_refreshing_then_a_replay_keeps_one_chain,
    a_replay_after_the_window_revokes_everything,
    concurrent_refreshes_of_one_token_share_one_chain,
    concurrent_use_of_two_siblings_lets_at_most_one_continue,
);

/// A→B, then A replayed twice within the grace (C, C2). After the window only one of B, C, C2 can
/// go on; using another afterwards is a reuse that ends the session.
async fn two_replays_in_the_grace_leave_one_chain_after_the_window(app: TestApp) {
    let a = app.login("ada").await;
    let b = refreshed(&app, &a["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(5));
    let c = refreshed(&app, &a["refresh_token"]).await;
    let c2 = refreshed(&app, &a["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(31));

    let d = refreshed(&app, &b["refresh_token"]).await;
    refused(&app, &c["refresh_token"]).await;
    assert_session_revoked(&app, &d).await;
    refused(&app, &c2["refresh_token"]).await;
}

/// A thief replays A within the grace after the owner rotated it to B: the owner's next refresh
/// with B retires the thief's token, and the thief's later use ends the session.
async fn a_replay_then_the_owner_using_the_rotated_token_ends_the_thief(app: TestApp) {
    let a = app.login("bea").await;
    let b = refreshed(&app, &a["refresh_token"]).await;
    let stolen = refreshed(&app, &a["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(600));
    let owner = refreshed(&app, &b["refresh_token"]).await;
    // Within a second of the owner's refresh: no grace for a token retired with a sibling.
    refused(&app, &stolen["refresh_token"]).await;
    assert_session_revoked(&app, &owner).await;
}

/// The owner rotates A→B→D; a replay of A still within A's grace joins D's generation instead of
/// forking: the first of D and the replay's token to be used retires the other.
async fn the_owner_refreshing_then_a_replay_keeps_one_chain(app: TestApp) {
    let a = app.login("cai").await;
    let b = refreshed(&app, &a["refresh_token"]).await;
    let d = refreshed(&app, &b["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(10));
    let replay = refreshed(&app, &a["refresh_token"]).await;
    let next = refreshed(&app, &replay["refresh_token"]).await;
    refused(&app, &d["refresh_token"]).await;
    assert_session_revoked(&app, &next).await;
}

async fn a_replay_after_the_window_revokes_everything(app: TestApp) {
    let a = app.login("dee").await;
    let b = refreshed(&app, &a["refresh_token"]).await;
    let c = refreshed(&app, &a["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(31));
    refused(&app, &a["refresh_token"]).await;
    assert_session_revoked(&app, &b).await;
    assert_session_revoked(&app, &c).await;
}

/// A client firing several refreshes with one token at once gets a pair for each; they are one
/// generation, so once one is used the others are retired.
async fn concurrent_refreshes_of_one_token_share_one_chain(app: TestApp) {
    let a = app.login("eve").await;
    let responses =
        futures::future::join_all((0..5).map(|_| refresh(&app, &a["refresh_token"]))).await;
    let mut pairs = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 200);
        pairs.push(response.json::<Value>().await.unwrap());
    }
    let next = refreshed(&app, &pairs[2]["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(1));
    refused(&app, &pairs[0]["refresh_token"]).await;
    assert_session_revoked(&app, &next).await;
}

/// Two siblings (A's rotation and a replay of A) used at the same moment: never two chains. At
/// most one refresh succeeds, unless the session was revoked for the reuse.
async fn concurrent_use_of_two_siblings_lets_at_most_one_continue(app: TestApp) {
    let a = app.login("fay").await;
    let b = refreshed(&app, &a["refresh_token"]).await;
    let c = refreshed(&app, &a["refresh_token"]).await;
    app.wx.clock.advance(Duration::from_secs(60));
    let (first, second) = futures::join!(
        refresh(&app, &b["refresh_token"]),
        refresh(&app, &c["refresh_token"])
    );
    let mut winners = Vec::new();
    for response in [first, second] {
        match response.status().as_u16() {
            200 => winners.push(response.json::<Value>().await.unwrap()),
            401 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(winners.len() <= 1, "two chains: {}", winners.len());
    if let Some(winner) = winners.first() {
        // The loser's use was a reuse: the session ended for the winner too.
        assert_session_revoked(&app, winner).await;
    }
}
