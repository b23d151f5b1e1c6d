//! Retention: the store's audit listing and purges on both backends, then the purge of a running
//! server (SQLite and PostgreSQL): what is past its horizon goes, the rest stays and keeps
//! working, reuse detection included; one instance at a time; the background round; metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use wxlogin::domain::{AppId, OpenId, SessionId, UserId};
use wxlogin::services::retention::{self, RetentionError};
use wxlogin::store::{AuditQuery, AuditRecord, LoginTicket, RefreshToken, Session, Store, User};

use crate::helpers::*;

on_both_backends!(
    audit_entries_are_filtered_newest_first_and_purged_in_batches,
    ended_sessions_lose_their_tokens_and_go_after_the_margin,
    expired_login_tickets_are_purged_in_batches,
);

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn entry(at: i64, kind: &str, user: Option<&UserId>) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        kind: kind.to_owned(),
        actor_kind: "system".to_owned(),
        actor_id: None,
        user_id: user.cloned(),
        appid: None,
        client_ip: None,
        user_agent: None,
        details: "{}".to_owned(),
    }
}

async fn audit_entries_are_filtered_newest_first_and_purged_in_batches(store: Arc<dyn Store>) {
    let (ann, ben) = (UserId::generate(time(NOW)), UserId::generate(time(NOW)));
    for r in [
        entry(NOW - 3 * DAY, "login", Some(&ann)),
        entry(NOW - 2 * DAY, "logout", Some(&ann)),
        entry(NOW - DAY, "login", Some(&ben)),
        entry(NOW, "login", Some(&ann)),
        entry(NOW, "key_rotated", None),
    ] {
        store.append_audit_event(&r).await.unwrap();
    }
    let list = async |query: AuditQuery| {
        let limit = if query.limit == 0 { 100 } else { query.limit };
        store
            .list_audit_events(&AuditQuery { limit, ..query })
            .await
            .unwrap()
    };
    let all = list(AuditQuery::default()).await;
    let order: Vec<(i64, &str)> = all.iter().map(|r| (r.at, r.kind.as_str())).collect();
    assert_eq!(
        order,
        [
            (NOW, "key_rotated"),
            (NOW, "login"),
            (NOW - DAY, "login"),
            (NOW - 2 * DAY, "logout"),
            (NOW - 3 * DAY, "login"),
        ],
        "newest first, then the later insert"
    );
    assert!(all[0].id > all[1].id);
    let anns = list(AuditQuery {
        user: Some(ann.clone()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(anns.len(), 3);
    let logins = list(AuditQuery {
        user: Some(ann.clone()),
        kind: Some("login".into()),
        since: Some(NOW - 2 * DAY),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].at, NOW);
    let two = list(AuditQuery {
        limit: 2,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(two.len(), 2);

    // Older than a day and a half: two entries, one batch at a time.
    assert_eq!(store.purge_audit_events(NOW - DAY - 1, 1).await.unwrap(), 1);
    assert_eq!(
        store.purge_audit_events(NOW - DAY - 1, 10).await.unwrap(),
        1
    );
    assert_eq!(
        store.purge_audit_events(NOW - DAY - 1, 10).await.unwrap(),
        0
    );
    let left: Vec<i64> = list(AuditQuery::default())
        .await
        .iter()
        .map(|r| r.at)
        .collect();
    assert_eq!(left, [NOW, NOW, NOW - DAY]);
}

async fn given_user(store: &dyn Store) -> UserId {
    let id = UserId::generate(time(NOW));
    store
        .create_user(&User {
            id: id.clone(),
            nickname: None,
            avatar: None,
            created_at: NOW,
            updated_at: NOW,
            banned_at: None,
            phone: None,
        })
        .await
        .unwrap();
    id
}

fn hash() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// A session ending at `expires_at`, refreshed once: its first token rotated, the second live.
async fn given_session(
    store: &dyn Store,
    user: &UserId,
    expires_at: i64,
) -> (SessionId, Vec<u8>, Vec<u8>) {
    let id = SessionId::generate(time(NOW));
    let token = |hash: Vec<u8>| RefreshToken {
        hash,
        session_id: id.clone(),
        issued_at: expires_at - 30 * DAY,
        expires_at,
        rotated_at: None,
    };
    let (first, second) = (hash(), hash());
    let session = Session {
        id: id.clone(),
        user_id: user.clone(),
        appid: AppId::parse(DEMO_APPID).unwrap(),
        created_at: expires_at - 30 * DAY,
        expires_at,
        revoked_at: None,
        user_agent: None,
        last_used_at: None,
    };
    store
        .create_session(&session, &token(first.clone()))
        .await
        .unwrap();
    let rotated_at = (expires_at - 29 * DAY).min(NOW - 1);
    assert!(
        store
            .rotate_refresh_token(&first, &token(second.clone()), rotated_at)
            .await
            .unwrap()
    );
    (id, first, second)
}

async fn ended_sessions_lose_their_tokens_and_go_after_the_margin(store: Arc<dyn Store>) {
    let user = given_user(&*store).await;
    let (live, live_rotated, live_current) = given_session(&*store, &user, NOW + DAY).await;
    let (revoked, revoked_rotated, _) = given_session(&*store, &user, NOW + DAY).await;
    assert!(store.revoke_session(&revoked, NOW - 1).await.unwrap());
    let (expired, expired_rotated, _) = given_session(&*store, &user, NOW - DAY).await;
    let (old, _, _) = given_session(&*store, &user, NOW - 10 * DAY).await;
    let (older, _, older_current) = given_session(&*store, &user, NOW - 11 * DAY).await;

    // The tokens of the four ended sessions (two each), in batches; the live session keeps both.
    assert_eq!(store.purge_ended_session_tokens(NOW, 3).await.unwrap(), 3);
    assert_eq!(store.purge_ended_session_tokens(NOW, 100).await.unwrap(), 5);
    assert_eq!(store.purge_ended_session_tokens(NOW, 100).await.unwrap(), 0);
    for gone in [&revoked_rotated, &expired_rotated] {
        assert_eq!(store.find_refresh_token(gone).await.unwrap(), None);
    }
    let kept = store
        .find_refresh_token(&live_rotated)
        .await
        .unwrap()
        .unwrap();
    assert!(
        kept.rotated_at.is_some(),
        "a rotated token of a live session stays"
    );
    assert!(
        store
            .find_refresh_token(&live_current)
            .await
            .unwrap()
            .is_some()
    );

    // Sessions ended more than seven days ago go; the others stay to be looked at.
    let horizon = NOW - 7 * DAY;
    assert_eq!(
        store
            .purge_sessions_expired_before(horizon, 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .purge_sessions_expired_before(horizon, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .purge_sessions_expired_before(horizon, 10)
            .await
            .unwrap(),
        0
    );
    for gone in [&old, &older] {
        assert_eq!(store.get_session(gone).await.unwrap(), None);
    }
    for stays in [&live, &revoked, &expired] {
        assert!(store.get_session(stays).await.unwrap().is_some());
    }
    assert_eq!(
        store.find_refresh_token(&older_current).await.unwrap(),
        None
    );

    // A session deleted with its tokens still there takes them along (ON DELETE CASCADE, which
    // SQLite enforces only with foreign_keys on).
    let (doomed, doomed_rotated, doomed_current) =
        given_session(&*store, &user, NOW - 20 * DAY).await;
    assert_eq!(
        store
            .purge_sessions_expired_before(horizon, 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_session(&doomed).await.unwrap(), None);
    for gone in [&doomed_rotated, &doomed_current] {
        assert_eq!(store.find_refresh_token(gone).await.unwrap(), None);
    }
}

async fn expired_login_tickets_are_purged_in_batches(store: Arc<dyn Store>) {
    let ticket = |expires_at: i64| LoginTicket {
        hash: hash(),
        appid: AppId::parse(DEMO_APPID).unwrap(),
        openid: OpenId::parse("o_retention_test_openid_000").unwrap(),
        unionid: None,
        sealed_session_key: vec![1, 2, 3],
        created_at: expires_at - 300_000,
        expires_at,
        attempts: 0,
    };
    let live = ticket(NOW + 60_000);
    for t in [ticket(NOW - 1), ticket(NOW), live.clone()] {
        store.insert_login_ticket(&t).await.unwrap();
    }
    assert_eq!(store.purge_expired_login_tickets(NOW, 1).await.unwrap(), 1);
    assert_eq!(store.purge_expired_login_tickets(NOW, 10).await.unwrap(), 1);
    assert_eq!(store.purge_expired_login_tickets(NOW, 10).await.unwrap(), 0);
    let taken = store.take_login_ticket(&live.hash, NOW).await.unwrap();
    assert_eq!(taken, Some(live));
}

// --- A running server -----------------------------------------------------------------------

/// Sessions of a day (and seven days of margin), an audit log of thirty days.
fn short_lived(s: &mut wxlogin::config::Settings) {
    s.tokens.refresh_ttl_secs = 86_400;
    s.retention.session_margin_days = 7;
    s.audit.retention_days = 30;
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }))
        .await
}

fn purged(app: &TestApp, table: &str) -> u64 {
    let text = app.state.metrics.render();
    let series = format!("wxlogin_retention_purged_total{{table=\"{table}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .parse()
        .unwrap()
}

async fn a_purge_removes_what_is_past_its_horizon_and_nothing_else(app: TestApp) {
    let day = Duration::from_secs(86_400);
    // Dave logs in and is never seen again; his session and audit entry outlive their horizons.
    let dave = app.login("dave").await;
    app.wx.clock.advance(40 * day);
    // Alice logs in and refreshes; Carol logs in and out.
    let alice = app.login("alice").await;
    let rotated = alice["refresh_token"].as_str().unwrap().to_owned();
    let pair: serde_json::Value = refresh(&app, &rotated).await.json().await.unwrap();
    let current = pair["refresh_token"].as_str().unwrap().to_owned();
    let carol = app.login("carol").await;
    let response = app
        .post_authed(
            "/v1/auth/logout",
            carol["access_token"].as_str().unwrap(),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 204);
    app.wx.clock.advance(Duration::from_secs(60));

    let report = retention::run_now(&app.state).await.unwrap();
    assert_eq!(report.sessions, 1, "{report:?}");
    assert_eq!(report.refresh_tokens, 2, "Dave's and Carol's: {report:?}");
    assert_eq!(report.audit_events, 1, "Dave's login: {report:?}");
    assert!(!report.incomplete);
    assert_eq!(purged(&app, "sessions"), 1);
    assert_eq!(purged(&app, "refresh_tokens"), 2);
    assert_eq!(purged(&app, "audit_events"), 1);
    assert_error(
        refresh(&app, dave["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;
    let audit = app
        .state
        .store
        .list_audit_events(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = audit.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["logout", "login", "login"],
        "only Dave's entry went"
    );

    // Alice's session works on: her access token, her current refresh token.
    let me = app
        .get_authed("/v1/me", pair["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), 200);
    let next: serde_json::Value = refresh(&app, &current).await.json().await.unwrap();
    assert!(next["refresh_token"].is_string());
    // Her rotated token was kept: presenting it is still caught as a reuse, and ends the session.
    assert_error(refresh(&app, &rotated).await, 401, "invalid_grant").await;
    assert_eq!(
        app.state
            .store
            .list_audit_events(&AuditQuery {
                kind: Some("refresh_reuse_detected".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert_error(
        refresh(&app, next["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_grant",
    )
    .await;

    // Another purge right away finds Alice's now-ended session's tokens, nothing else.
    let again = retention::run_now(&app.state).await.unwrap();
    assert_eq!((again.sessions, again.audit_events), (0, 0), "{again:?}");
    assert_eq!(again.refresh_tokens, 3, "{again:?}");
}

#[tokio::test]
async fn a_purge_on_sqlite_removes_what_is_past_its_horizon_and_nothing_else() {
    let app = TestApp::spawn_with(short_lived).await;
    a_purge_removes_what_is_past_its_horizon_and_nothing_else(app).await;
}

#[tokio::test]
async fn a_purge_on_postgres_removes_what_is_past_its_horizon_and_nothing_else() {
    let Some(schema) = postgres_schema().await else {
        return;
    };
    let url = schema.url.clone();
    schema
        .run(async move {
            let app = TestApp::spawn_with(move |s| {
                short_lived(s);
                s.database.url = Some(url);
            })
            .await;
            a_purge_removes_what_is_past_its_horizon_and_nothing_else(app).await;
        })
        .await;
}

#[tokio::test]
async fn one_instance_at_a_time_purges_and_a_round_is_done_once() {
    let Some(redis) = crate::shared::redis_settings() else {
        return;
    };
    let one = TestApp::spawn_with(|s| s.redis = redis).await;
    let two = one.spawn_beside(|_| {}).await;
    // While one instance holds the lease, the other cannot purge.
    let lease = one
        .state
        .shared
        .leases
        .try_acquire("retention", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        retention::run_now(&two.state).await,
        Err(RetentionError::Busy)
    ));
    assert_eq!(retention::run_due(&two.state).await.unwrap(), None);
    one.state.shared.leases.release(&lease).await.unwrap();
    // The round's first taker purges; the other instance finds the round done.
    assert!(retention::run_due(&one.state).await.unwrap().is_some());
    assert_eq!(retention::run_due(&two.state).await.unwrap(), None);
    assert_eq!(retention::run_due(&one.state).await.unwrap(), None);
}

#[tokio::test]
async fn the_background_round_purges_without_being_asked() {
    let app = TestApp::spawn_with(|s| {
        short_lived(s);
        s.retention.interval_secs = 1;
    })
    .await;
    let login = app.login("gus").await;
    let old = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&app, &old).await.status(), 200);
    app.wx.clock.advance(Duration::from_secs(10 * 86_400));
    let mut waited = 0;
    while purged(&app, "sessions") < 1 {
        assert!(waited < 10_000, "the background round purged the session");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 50;
    }
    assert_eq!(purged(&app, "refresh_tokens"), 2);
    let hash = wxlogin::tokens::hash_refresh_token(&old).unwrap();
    assert_eq!(
        app.state.store.find_refresh_token(&hash).await.unwrap(),
        None
    );
}
