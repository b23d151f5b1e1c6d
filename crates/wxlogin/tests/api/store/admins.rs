//! Conformance scenarios for the administrators of the console (run by `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::{AdminName, AdminRole};
use wxlogin::store::{AdminAccount, AdminRemoval, Store, StoreError};

use super::T0;

fn name(text: &str) -> AdminName {
    AdminName::parse(text).unwrap()
}

fn account(text: &str, role: AdminRole) -> AdminAccount {
    AdminAccount {
        name: name(text),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{text}"),
        sealed_totp_secret: None,
        totp_confirmed_at: None,
        totp_last_step: None,
        totp_required: role == AdminRole::Owner,
        failed_attempts: 0,
        locked_until: None,
        created_at: T0,
        updated_at: T0,
    }
}

async fn admin(store: &dyn Store, text: &str) -> AdminAccount {
    store.get_admin(&name(text)).await.unwrap().unwrap()
}

pub(super) async fn admins_are_stored_listed_by_name_and_unique(store: Arc<dyn Store>) {
    let mut owner = account("zed", AdminRole::Owner);
    owner.failed_attempts = 2;
    owner.locked_until = Some(T0 + 60_000);
    store.insert_admin(&owner).await.unwrap();
    store
        .insert_admin(&account("amy", AdminRole::Viewer))
        .await
        .unwrap();
    assert_eq!(admin(store.as_ref(), "zed").await, owner);
    assert_eq!(store.get_admin(&name("nobody")).await.unwrap(), None);

    let mut twin = account("zed", AdminRole::Viewer);
    twin.password_hash = "another".into();
    assert!(matches!(
        store.insert_admin(&twin).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(admin(store.as_ref(), "zed").await, owner, "nothing written");

    let names: Vec<String> = store
        .list_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{}:{}:{}", a.name, a.role.as_str(), a.totp_required))
        .collect();
    assert_eq!(names, ["amy:viewer:false", "zed:owner:true"]);
}

pub(super) async fn the_last_owner_is_never_removed(store: Arc<dyn Store>) {
    for (text, role) in [
        ("o1", AdminRole::Owner),
        ("o2", AdminRole::Owner),
        ("op", AdminRole::Operator),
    ] {
        store.insert_admin(&account(text, role)).await.unwrap();
    }
    assert_eq!(
        store.delete_admin(&name("op")).await.unwrap(),
        AdminRemoval::Removed(AdminRole::Operator)
    );
    assert_eq!(
        store.delete_admin(&name("op")).await.unwrap(),
        AdminRemoval::NotFound
    );
    assert_eq!(
        store.delete_admin(&name("o1")).await.unwrap(),
        AdminRemoval::Removed(AdminRole::Owner)
    );
    assert_eq!(
        store.delete_admin(&name("o2")).await.unwrap(),
        AdminRemoval::LastOwner
    );
    assert_eq!(admin(store.as_ref(), "o2").await.role, AdminRole::Owner);

    // Two owners removed at once: one goes, the other stays as the last.
    store
        .insert_admin(&account("o3", AdminRole::Owner))
        .await
        .unwrap();
    let (o2, o3) = (name("o2"), name("o3"));
    let (a, b) = tokio::join!(store.delete_admin(&o2), store.delete_admin(&o3));
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [
            AdminRemoval::LastOwner,
            AdminRemoval::Removed(AdminRole::Owner)
        ]
    );
    let left = store.list_admins().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].role, AdminRole::Owner);
}

pub(super) async fn a_new_password_clears_the_lockout(store: Arc<dyn Store>) {
    let mut locked = account("lee", AdminRole::Operator);
    locked.failed_attempts = 5;
    locked.locked_until = Some(T0 + 900_000);
    store.insert_admin(&locked).await.unwrap();
    assert!(
        store
            .set_admin_password(&name("lee"), "new-hash", T0 + 1)
            .await
            .unwrap()
    );
    let after = admin(store.as_ref(), "lee").await;
    assert_eq!(after.password_hash, "new-hash");
    assert_eq!((after.failed_attempts, after.locked_until), (0, None));
    assert_eq!((after.created_at, after.updated_at), (T0, T0 + 1));
    assert!(
        !store
            .set_admin_password(&name("nobody"), "x", T0)
            .await
            .unwrap()
    );
}

pub(super) async fn a_totp_step_is_spent_once_and_a_new_secret_starts_over(store: Arc<dyn Store>) {
    let lee = name("lee");
    store
        .insert_admin(&account("lee", AdminRole::Owner))
        .await
        .unwrap();
    let (first, second) = (vec![1u8, 2, 3], vec![4u8, 5, 6]);
    assert!(store.set_admin_totp(&lee, &first, T0 + 1).await.unwrap());
    assert!(
        !store
            .set_admin_totp(&name("nobody"), &first, T0)
            .await
            .unwrap()
    );
    let enrolled = admin(store.as_ref(), "lee").await;
    assert_eq!(enrolled.sealed_totp_secret.as_deref(), Some(&first[..]));
    assert_eq!(
        (enrolled.totp_confirmed_at, enrolled.totp_last_step),
        (None, None)
    );

    assert!(
        !store
            .accept_admin_totp_step(&lee, &second, 10, T0 + 2)
            .await
            .unwrap(),
        "another secret"
    );
    // Concurrent uses of one code: one wins.
    let (a, b) = tokio::join!(
        store.accept_admin_totp_step(&lee, &first, 10, T0 + 2),
        store.accept_admin_totp_step(&lee, &first, 10, T0 + 2)
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
        1
    );
    let confirmed = admin(store.as_ref(), "lee").await;
    assert_eq!(
        (confirmed.totp_confirmed_at, confirmed.totp_last_step),
        (Some(T0 + 2), Some(10))
    );
    assert!(
        !store
            .accept_admin_totp_step(&lee, &first, 9, T0 + 3)
            .await
            .unwrap()
    );
    assert!(
        store
            .accept_admin_totp_step(&lee, &first, 11, T0 + 3)
            .await
            .unwrap()
    );
    let later = admin(store.as_ref(), "lee").await;
    assert_eq!(
        (later.totp_confirmed_at, later.totp_last_step),
        (Some(T0 + 2), Some(11))
    );

    assert!(store.set_admin_totp(&lee, &second, T0 + 4).await.unwrap());
    let renewed = admin(store.as_ref(), "lee").await;
    assert_eq!(
        (renewed.totp_confirmed_at, renewed.totp_last_step),
        (None, None)
    );
    assert!(
        !store
            .accept_admin_totp_step(&lee, &first, 12, T0 + 5)
            .await
            .unwrap(),
        "the old secret"
    );
    assert!(
        store
            .accept_admin_totp_step(&lee, &second, 5, T0 + 5)
            .await
            .unwrap()
    );

    // A reseal replaces the sealed value only while it is unchanged, keeping the spent steps.
    assert!(
        !store
            .reseal_admin_totp_secret(&lee, &first, &[7, 7])
            .await
            .unwrap()
    );
    assert!(
        store
            .reseal_admin_totp_secret(&lee, &second, &[7, 7])
            .await
            .unwrap()
    );
    let resealed = admin(store.as_ref(), "lee").await;
    assert_eq!(resealed.sealed_totp_secret.as_deref(), Some(&[7u8, 7][..]));
    assert_eq!(resealed.totp_last_step, Some(5));
}

pub(super) async fn failed_sign_ins_lock_at_the_limit_and_a_success_resets_the_count(
    store: Arc<dyn Store>,
) {
    let lee = name("lee");
    store
        .insert_admin(&account("lee", AdminRole::Viewer))
        .await
        .unwrap();
    let fail = |now: i64| {
        let (store, lee) = (store.clone(), lee.clone());
        async move {
            store
                .record_admin_sign_in_failure(&lee, 3, now + 600_000, now)
                .await
                .unwrap()
        }
    };
    assert_eq!(fail(T0).await, None);
    store.record_admin_sign_in(&lee, T0 + 1).await.unwrap();
    assert_eq!(admin(store.as_ref(), "lee").await.failed_attempts, 0);
    assert_eq!(fail(T0 + 2).await, None);
    assert_eq!(fail(T0 + 3).await, None);
    assert_eq!(admin(store.as_ref(), "lee").await.failed_attempts, 2);
    assert_eq!(
        fail(T0 + 4).await,
        Some(T0 + 4 + 600_000),
        "the third locks"
    );
    let locked = admin(store.as_ref(), "lee").await;
    assert_eq!(
        (locked.failed_attempts, locked.locked_until),
        (0, Some(T0 + 4 + 600_000))
    );
    // Concurrent failures each count.
    let (a, b, c) = tokio::join!(fail(T0 + 5), fail(T0 + 5), fail(T0 + 5));
    assert_eq!([a, b, c].iter().filter(|l| l.is_some()).count(), 1);
    assert_eq!(
        store
            .record_admin_sign_in_failure(&name("nobody"), 3, T0, T0)
            .await
            .unwrap(),
        None
    );
}
