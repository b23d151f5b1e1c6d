//! Conformance scenarios for the profile: nickname and avatar (run by `on_both_backends!`).

use std::sync::Arc;

use wxlogin::store::Store;

use super::{T0, given_user, new_user_id};

pub(super) async fn nickname_is_set_and_cleared(store: Arc<dyn Store>) {
    let id = given_user(&*store, "nick").await;
    assert!(store.set_nickname(&id, Some("小明"), T0 + 5).await.unwrap());
    let found = store.get_user(&id).await.unwrap().unwrap();
    assert_eq!(found.nickname.as_deref(), Some("小明"));
    assert_eq!(found.updated_at, T0 + 5);
    assert_eq!(found.created_at, T0);

    assert!(store.set_nickname(&id, None, T0 + 6).await.unwrap());
    let found = store.get_user(&id).await.unwrap().unwrap();
    assert_eq!(found.nickname, None);
    assert_eq!(found.updated_at, T0 + 6);

    assert!(
        !store
            .set_nickname(&new_user_id(), Some("ghost"), T0)
            .await
            .unwrap()
    );
}

pub(super) async fn avatar_is_replaced_and_the_previous_name_returned(store: Arc<dyn Store>) {
    let id = given_user(&*store, "avatar").await;
    assert_eq!(
        store
            .replace_avatar(&id, Some("a.png"), T0 + 1)
            .await
            .unwrap(),
        Some(None)
    );
    assert_eq!(
        store
            .replace_avatar(&id, Some("b.jpg"), T0 + 2)
            .await
            .unwrap(),
        Some(Some("a.png".to_owned()))
    );
    let found = store.get_user(&id).await.unwrap().unwrap();
    assert_eq!(found.avatar.as_deref(), Some("b.jpg"));
    assert_eq!(found.updated_at, T0 + 2);
    assert_eq!(
        store.replace_avatar(&id, None, T0 + 3).await.unwrap(),
        Some(Some("b.jpg".to_owned()))
    );
    assert_eq!(store.get_user(&id).await.unwrap().unwrap().avatar, None);

    let ghost = new_user_id();
    assert_eq!(
        store
            .replace_avatar(&ghost, Some("c.png"), T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.count_users_with_avatar("c.png").await.unwrap(), 0);
}

pub(super) async fn avatar_users_are_counted(store: Arc<dyn Store>) {
    let alice = given_user(&*store, "count-alice").await;
    let bob = given_user(&*store, "count-bob").await;
    assert_eq!(store.count_users_with_avatar("s.webp").await.unwrap(), 0);
    store
        .replace_avatar(&alice, Some("s.webp"), T0)
        .await
        .unwrap();
    store
        .replace_avatar(&bob, Some("s.webp"), T0)
        .await
        .unwrap();
    assert_eq!(store.count_users_with_avatar("s.webp").await.unwrap(), 2);
    store
        .replace_avatar(&bob, Some("t.webp"), T0)
        .await
        .unwrap();
    assert_eq!(store.count_users_with_avatar("s.webp").await.unwrap(), 1);
    assert_eq!(store.count_users_with_avatar("t.webp").await.unwrap(), 1);
}
