//! Conformance scenarios for the operator's reads: user search and a user's sessions (run by
//! `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::{AppId, Phone, UnionId, UserId};
use wxlogin::store::{AuditCountQuery, AuditQuery, AuditRecord, SessionQuery, Store, UserSearch};

use super::{
    T0, given_session, identity, new_session_id, new_user_id, openid, session, token, user,
};

fn search(text: &str) -> UserSearch {
    UserSearch {
        text: text.to_owned(),
        phone: Phone::parse_text(text).ok(),
    }
}

async fn found(store: &dyn Store, text: &str) -> Vec<UserId> {
    store
        .search_users(Some(&search(text)), 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.user.id)
        .collect()
}

pub(super) async fn users_are_searched_by_id_identity_phone_and_nickname(store: Arc<dyn Store>) {
    // Three users created a millisecond apart; the second has two identities, a unionid, a phone.
    let mut ids = Vec::new();
    for (n, name) in ["Ann 小红", "Bob_100%", "carol"].iter().enumerate() {
        let id = new_user_id();
        let mut created = user(&id);
        created.created_at = T0 + n as i64;
        created.nickname = Some((*name).to_owned());
        let mut first = identity(&id, &openid(&format!("search-{n}")));
        if n == 1 {
            first.unionid = Some(UnionId::parse("u_test_search_bob").unwrap());
        }
        store
            .create_user_with_identity(&created, &first)
            .await
            .unwrap();
        ids.push(id);
    }
    let mut other_app = identity(&ids[1], &openid("search-1b"));
    other_app.appid = AppId::parse("wx0000000000000002").unwrap();
    store.link_identity(&other_app).await.unwrap();
    let number = Phone::new("86", "13800138000").unwrap();
    store
        .set_user_phone(&ids[1], Some(&number), T0 + 5)
        .await
        .unwrap();

    let all = store.search_users(None, 100, 0).await.unwrap();
    let order: Vec<&UserId> = all.iter().map(|s| &s.user.id).collect();
    assert_eq!(order, [&ids[2], &ids[1], &ids[0]], "newest first");
    assert_eq!(all[1].identities, 2);
    assert_eq!(all[0].identities, 1);
    assert_eq!(all[1].user.phone.as_ref(), Some(&number));
    let one = store.search_users(None, 1, 0).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].user.id, ids[2]);

    assert_eq!(found(&*store, ids[0].as_str()).await, [ids[0].clone()]);
    assert_eq!(found(&*store, "o_test_search-1b").await, [ids[1].clone()]);
    assert_eq!(found(&*store, "u_test_search_bob").await, [ids[1].clone()]);
    assert_eq!(found(&*store, "+86 138 0013 8000").await, [ids[1].clone()]);
    assert_eq!(found(&*store, "13800138000").await, [ids[1].clone()]);
    assert_eq!(found(&*store, "小红").await, [ids[0].clone()]);
    assert_eq!(
        found(&*store, "CAROL").await,
        [ids[2].clone()],
        "Latin case ignored"
    );
    assert_eq!(found(&*store, "_100%").await, [ids[1].clone()]);
    assert!(found(&*store, "b%1").await.is_empty(), "% is literal");
    assert!(found(&*store, "c_rol").await.is_empty(), "_ is literal");
    assert!(found(&*store, "nobody").await.is_empty());
}

pub(super) async fn sessions_of_a_user_are_listed_live_or_all(store: Arc<dyn Store>) {
    let id = new_user_id();
    store
        .create_user_with_identity(&user(&id), &identity(&id, &openid("sessions-list")))
        .await
        .unwrap();
    let (live, _) = given_session(&*store, &id).await;
    let revoked = new_session_id();
    let mut later = session(&revoked, &id);
    later.created_at = T0 + 1;
    store
        .create_session(&later, &token(&revoked, T0 + 1))
        .await
        .unwrap();
    store.revoke_session(&revoked, T0 + 2).await.unwrap();
    let expired = new_session_id();
    let mut short = session(&expired, &id);
    short.created_at = T0 + 2;
    short.expires_at = T0 + 10;
    store
        .create_session(&short, &token(&expired, T0 + 2))
        .await
        .unwrap();

    let listed = |live_at| {
        let store = store.clone();
        let id = id.clone();
        async move {
            store
                .list_sessions_of_user(&id, live_at)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(None).await,
        [expired.clone(), revoked.clone(), live.clone()]
    );
    assert_eq!(listed(Some(T0 + 5)).await, [expired.clone(), live.clone()]);
    assert_eq!(listed(Some(T0 + 10)).await, [live]);
    let all = store.list_sessions_of_user(&id, None).await.unwrap();
    assert_eq!(all[1].revoked_at, Some(T0 + 2));
    let stranger = new_user_id();
    assert!(
        store
            .list_sessions_of_user(&stranger, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn users_are_paged_newest_first(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = new_user_id();
        let mut created = user(&id);
        created.created_at = T0 + n;
        store
            .create_user_with_identity(&created, &identity(&id, &openid(&format!("page-{n}"))))
            .await
            .unwrap();
        ids.push(id);
    }
    let page = |limit, offset| {
        let store = store.clone();
        async move {
            store
                .search_users(None, limit, offset)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.user.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(2, 0).await, [ids[2].clone(), ids[1].clone()]);
    assert_eq!(page(2, 2).await, [ids[0].clone()]);
    assert!(page(2, 3).await.is_empty());
}

pub(super) async fn sessions_are_listed_by_user_app_state_time_and_page(store: Arc<dyn Store>) {
    let (ann, bob) = (new_user_id(), new_user_id());
    for (id, name) in [(&ann, "filters-ann"), (&bob, "filters-bob")] {
        store
            .create_user_with_identity(&user(id), &identity(id, &openid(name)))
            .await
            .unwrap();
    }
    let other_app = AppId::parse("wx0000000000000002").unwrap();
    // Ann: three sessions a millisecond apart (the second on the other app, the third revoked);
    // Bob: one.
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = new_session_id();
        let mut opened = session(&id, &ann);
        opened.created_at = T0 + n;
        opened.user_agent = Some(format!("device {n}"));
        if n == 1 {
            opened.appid = other_app.clone();
        }
        store
            .create_session(&opened, &token(&id, T0 + n))
            .await
            .unwrap();
        ids.push(id);
    }
    store.revoke_session(&ids[2], T0 + 10).await.unwrap();
    let (bobs, _) = given_session(&*store, &bob).await;
    // Ann's first session refreshed later: its last use is the newest token's issue.
    store
        .insert_refresh_token(&token(&ids[0], T0 + 500))
        .await
        .unwrap();

    let list = |query: SessionQuery| {
        let store = store.clone();
        async move {
            store
                .list_sessions(&SessionQuery { limit: 10, ..query })
                .await
                .unwrap()
        }
    };
    let ids_of = |sessions: &[wxlogin::store::Session]| {
        sessions.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    };
    let all = list(SessionQuery::default()).await;
    assert_eq!(all.len(), 4);
    let anns = list(SessionQuery {
        user: Some(ann.clone()),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(
        ids_of(&anns),
        [ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(anns[2].user_agent.as_deref(), Some("device 0"));
    assert_eq!(anns[2].last_used_at, Some(T0 + 500));
    assert_eq!(anns[1].last_used_at, Some(T0 + 1));
    let live = list(SessionQuery {
        user: Some(ann.clone()),
        live_at: Some(T0 + 20),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(ids_of(&live), [ids[1].clone(), ids[0].clone()]);
    let on_other = list(SessionQuery {
        appid: Some(other_app),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(ids_of(&on_other), [ids[1].clone()]);
    let recent = list(SessionQuery {
        user: Some(ann.clone()),
        since: Some(T0 + 1),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(ids_of(&recent), [ids[2].clone(), ids[1].clone()]);
    let next = list(SessionQuery {
        user: Some(ann.clone()),
        before: Some((anns[1].created_at, anns[1].id.as_str().to_owned())),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(ids_of(&next), [ids[0].clone()]);
    let bob_only = list(SessionQuery {
        user: Some(bob),
        ..SessionQuery::default()
    })
    .await;
    assert_eq!(ids_of(&bob_only), [bobs]);
    let one = store
        .list_sessions(&SessionQuery {
            limit: 1,
            ..SessionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    let fetched = store.get_session(&ids[0]).await.unwrap().unwrap();
    assert_eq!(fetched.user_agent.as_deref(), Some("device 0"));
}

fn entry(at: i64, kind: &str, appid: Option<&str>, details: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        kind: kind.to_owned(),
        actor_kind: "user".to_owned(),
        actor_id: None,
        user_id: None,
        appid: appid.map(|a| AppId::parse(a).unwrap()),
        client_ip: None,
        user_agent: None,
        details: details.to_owned(),
    }
}

pub(super) async fn audit_entries_are_counted_by_bucket_and_paged(store: Arc<dyn Store>) {
    const HOUR: i64 = 3_600_000;
    let new = r#"{"outcome":"new"}"#;
    let returning = r#"{"outcome":"returning"}"#;
    let demo = "wx0000000000000001";
    for (at, kind, appid, details) in [
        (T0, "login", Some(demo), new),
        (T0 + 10, "login", Some(demo), new),
        (T0 + 20, "login", Some(demo), returning),
        (T0 + HOUR + 5, "login", Some("wx0000000000000002"), new),
        (T0 + HOUR + 6, "logout", Some(demo), "{}"),
        (T0 - 1, "login", Some(demo), new),
    ] {
        store
            .append_audit_event(&entry(at, kind, appid, details))
            .await
            .unwrap();
    }
    let counts = store
        .count_audit_events(&AuditCountQuery {
            kinds: vec!["login".into(), "registration".into()],
            since: T0,
            bucket_ms: HOUR,
            offset_ms: 0,
        })
        .await
        .unwrap();
    let first = T0 / HOUR;
    let seen: Vec<(i64, &str, &str, i64)> = counts
        .iter()
        .map(|c| {
            (
                c.bucket - first,
                c.kind.as_str(),
                c.details.as_str(),
                c.count,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "login", new, 2),
            (0, "login", returning, 1),
            (1, "login", new, 1)
        ]
    );
    // With an offset the buckets begin elsewhere; every entry since T0 is still counted once.
    let shifted = store
        .count_audit_events(&AuditCountQuery {
            kinds: vec!["login".into()],
            since: T0,
            bucket_ms: 2 * HOUR,
            offset_ms: HOUR / 2,
        })
        .await
        .unwrap();
    assert_eq!(shifted.iter().map(|c| c.count).sum::<i64>(), 4);

    let list = |query: AuditQuery| {
        let store = store.clone();
        async move { store.list_audit_events(&query).await.unwrap() }
    };
    let on_demo = list(AuditQuery {
        appid: Some(AppId::parse(demo).unwrap()),
        limit: 100,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(on_demo.len(), 5);
    let page = list(AuditQuery {
        limit: 2,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        page.iter().map(|e| e.at).collect::<Vec<_>>(),
        [T0 + HOUR + 6, T0 + HOUR + 5]
    );
    let next = list(AuditQuery {
        limit: 2,
        before: Some((page[1].at, page[1].id)),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        next.iter().map(|e| e.at).collect::<Vec<_>>(),
        [T0 + 20, T0 + 10]
    );
}
