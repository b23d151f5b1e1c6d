//! Conformance scenarios for the operator's reads: user search and a user's sessions (run by
//! `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::{AppId, Phone, UnionId, UserId};
use wxlogin::store::{Store, UserSearch};

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
