//! Conformance scenarios for the profile: nickname and avatar (run by `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::UserId;
use wxlogin::store::{Avatar, Store, User};

use super::{T0, given_user, new_user_id, user};

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

fn image(name: &str) -> Avatar {
    Avatar {
        name: name.to_owned(),
        content_type: "image/png".to_owned(),
        bytes: format!("bytes of {name}").into_bytes(),
        created_at: T0,
    }
}

async fn stored(store: &dyn Store, name: &str) -> bool {
    store.get_avatar(name).await.unwrap().is_some()
}

pub(super) async fn avatar_is_replaced_and_the_previous_name_returned(store: Arc<dyn Store>) {
    let id = given_user(&*store, "avatar").await;
    let (a, b) = (image("a.png"), image("b.jpg"));
    assert_eq!(
        store.replace_avatar(&id, Some(&a), T0 + 1).await.unwrap(),
        Some(None)
    );
    assert_eq!(store.get_avatar("a.png").await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.replace_avatar(&id, Some(&b), T0 + 2).await.unwrap(),
        Some(Some("a.png".to_owned()))
    );
    let found = store.get_user(&id).await.unwrap().unwrap();
    assert_eq!(found.avatar.as_deref(), Some("b.jpg"));
    assert_eq!(found.updated_at, T0 + 2);
    assert!(
        !stored(&*store, "a.png").await,
        "the replaced image is gone"
    );
    assert!(stored(&*store, "b.jpg").await);

    // The same image again keeps it.
    assert_eq!(
        store.replace_avatar(&id, Some(&b), T0 + 3).await.unwrap(),
        Some(Some("b.jpg".to_owned()))
    );
    assert!(stored(&*store, "b.jpg").await);

    assert_eq!(
        store.replace_avatar(&id, None, T0 + 4).await.unwrap(),
        Some(Some("b.jpg".to_owned()))
    );
    assert_eq!(store.get_user(&id).await.unwrap().unwrap().avatar, None);
    assert!(!stored(&*store, "b.jpg").await, "a cleared image is gone");

    let ghost = new_user_id();
    assert_eq!(
        store
            .replace_avatar(&ghost, Some(&image("c.png")), T0)
            .await
            .unwrap(),
        None
    );
    assert!(!stored(&*store, "c.png").await, "nothing written");
}

pub(super) async fn a_shared_image_stays_until_its_last_user_leaves_it(store: Arc<dyn Store>) {
    let alice = given_user(&*store, "share-alice").await;
    let bob = given_user(&*store, "share-bob").await;
    let (s, t) = (image("s.webp"), image("t.webp"));
    store.replace_avatar(&alice, Some(&s), T0).await.unwrap();
    store.replace_avatar(&bob, Some(&s), T0).await.unwrap();
    store.replace_avatar(&bob, Some(&t), T0).await.unwrap();
    assert!(stored(&*store, "s.webp").await, "alice still shows it");
    store.replace_avatar(&alice, Some(&t), T0).await.unwrap();
    assert!(!stored(&*store, "s.webp").await);
    assert!(stored(&*store, "t.webp").await);
}

pub(super) async fn concurrent_swaps_of_two_images_leave_every_avatar_stored(
    store: Arc<dyn Store>,
) {
    let (x, y) = (image("x.png"), image("y.png"));
    let mut users = Vec::new();
    for i in 0..6 {
        let id = given_user(&*store, &format!("swap-{i}")).await;
        let first = if i % 2 == 0 { &x } else { &y };
        store.replace_avatar(&id, Some(first), T0).await.unwrap();
        users.push(id);
    }
    // Every user flips between the two images at once, many times over: no deadlock, no error,
    // and no user ends up pointing at an image that was deleted.
    let rounds = users.iter().enumerate().map(|(i, id)| {
        let (store, id, x, y) = (store.clone(), id.clone(), x.clone(), y.clone());
        async move {
            for round in 0..10 {
                let next = if (i + round) % 2 == 0 { &y } else { &x };
                store.replace_avatar(&id, Some(next), T0).await.unwrap();
            }
        }
    });
    futures::future::join_all(rounds).await;
    for id in &users {
        let name = store.get_user(id).await.unwrap().unwrap().avatar.unwrap();
        assert!(stored(&*store, &name).await, "{name} is stored");
    }
}

/// A user pointing at `name` with no image stored, as databases from before 0005 have them.
async fn legacy_user(store: &dyn Store, name: &str) -> UserId {
    let id = new_user_id();
    store
        .create_user(&User {
            avatar: Some(name.to_owned()),
            ..user(&id)
        })
        .await
        .unwrap();
    id
}

pub(super) async fn legacy_avatars_are_listed_and_imported_once(store: Arc<dyn Store>) {
    let alice = legacy_user(&*store, "l1.png").await;
    let bob = legacy_user(&*store, "l1.png").await;
    legacy_user(&*store, "l2.png").await;
    let dave = given_user(&*store, "legacy-dave").await;
    store
        .replace_avatar(&dave, Some(&image("l0.png")), T0)
        .await
        .unwrap();

    assert_eq!(
        store.avatars_without_image("", 10).await.unwrap(),
        vec!["l1.png".to_owned(), "l2.png".to_owned()]
    );
    assert_eq!(
        store.avatars_without_image("", 1).await.unwrap(),
        vec!["l1.png".to_owned()]
    );
    assert_eq!(
        store.avatars_without_image("l1.png", 10).await.unwrap(),
        vec!["l2.png".to_owned()]
    );

    assert!(store.import_avatar(&image("l1.png")).await.unwrap());
    assert!(
        !store.import_avatar(&image("l1.png")).await.unwrap(),
        "once"
    );
    assert!(
        !store.import_avatar(&image("nobody.png")).await.unwrap(),
        "only what a user points at"
    );
    assert!(!stored(&*store, "nobody.png").await);
    assert_eq!(
        store.avatars_without_image("", 10).await.unwrap(),
        vec!["l2.png".to_owned()]
    );
    // An imported image is an image like any other: it goes with its last user.
    store
        .replace_avatar(&alice, Some(&image("l0.png")), T0)
        .await
        .unwrap();
    assert!(stored(&*store, "l1.png").await, "bob still shows it");
    store.replace_avatar(&bob, None, T0).await.unwrap();
    assert!(!stored(&*store, "l1.png").await);
}
