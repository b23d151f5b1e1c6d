//! Conformance scenarios for sessions, refresh tokens and signing keys (run by `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::SessionId;
use wxlogin::store::{RefreshToken, SessionAccess, SigningKey, Store, StoreError};

use super::{T0, given_session, given_user, new_hash, new_session_id, new_user_id, session, token};

pub(super) async fn sessions_are_created_read_and_revoked(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "erin").await;
    let (id, first) = given_session(&*store, &user_id).await;

    assert_eq!(
        store.get_session(&id).await.unwrap(),
        Some(session(&id, &user_id))
    );
    let found = store.find_refresh_token(&first.hash).await.unwrap();
    assert_eq!(found, Some(first));

    assert!(store.revoke_session(&id, T0 + 5).await.unwrap());
    assert!(!store.revoke_session(&id, T0 + 9).await.unwrap());
    let revoked = store.get_session(&id).await.unwrap().unwrap();
    assert_eq!(
        revoked.revoked_at,
        Some(T0 + 5),
        "the first revocation stands"
    );
    assert!(!store.revoke_session(&new_session_id(), T0).await.unwrap());
    assert_eq!(store.get_session(&new_session_id()).await.unwrap(), None);

    // Foreign keys are enforced: no session for a user that does not exist.
    let ghost = new_session_id();
    let err = store
        .create_session(&session(&ghost, &new_user_id()), &token(&ghost, T0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(store.get_session(&ghost).await.unwrap(), None);
}

pub(super) async fn revoking_all_user_sessions_counts_the_live_ones(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "frank").await;
    let other = given_user(&*store, "grace").await;
    let (a, _) = given_session(&*store, &user_id).await;
    let (b, _) = given_session(&*store, &user_id).await;
    let (c, _) = given_session(&*store, &user_id).await;
    let (theirs, _) = given_session(&*store, &other).await;
    assert!(store.revoke_session(&a, T0 + 1).await.unwrap());

    assert_eq!(
        store.revoke_user_sessions(&user_id, T0 + 2).await.unwrap(),
        2
    );
    assert_eq!(
        store.revoke_user_sessions(&user_id, T0 + 3).await.unwrap(),
        0
    );
    let revoked_at = async |id: SessionId| {
        let session = store.get_session(&id).await.unwrap();
        session.unwrap().revoked_at
    };
    assert_eq!(revoked_at(a).await, Some(T0 + 1));
    assert_eq!(revoked_at(b).await, Some(T0 + 2));
    assert_eq!(revoked_at(c).await, Some(T0 + 2));
    assert_eq!(revoked_at(theirs).await, None);
    let nobody = new_user_id();
    assert_eq!(store.revoke_user_sessions(&nobody, T0).await.unwrap(), 0);
}

pub(super) async fn session_access_reflects_revocation_and_bans(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "heidi").await;
    let (id, _) = given_session(&*store, &user_id).await;
    let access = |revoked, user_banned| SessionAccess {
        user_id: user_id.clone(),
        revoked,
        user_banned,
    };

    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, false))
    );
    assert!(store.set_user_banned(&user_id, Some(T0 + 1)).await.unwrap());
    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, true))
    );
    let banned = store.get_user(&user_id).await.unwrap().unwrap();
    assert_eq!(banned.banned_at, Some(T0 + 1));
    assert!(store.set_user_banned(&user_id, None).await.unwrap());
    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, false))
    );

    store.revoke_session(&id, T0 + 2).await.unwrap();
    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(true, false))
    );
    assert_eq!(store.session_access(&new_session_id()).await.unwrap(), None);
    assert!(
        !store
            .set_user_banned(&new_user_id(), Some(T0))
            .await
            .unwrap()
    );
}

pub(super) async fn refresh_tokens_rotate_once(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "ivan").await;
    let (id, first) = given_session(&*store, &user_id).await;

    let second = token(&id, T0 + 10);
    assert!(
        store
            .rotate_refresh_token(&first.hash, &second, T0 + 10)
            .await
            .unwrap()
    );
    let old = store
        .find_refresh_token(&first.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.rotated_at, Some(T0 + 10));
    let found = store.find_refresh_token(&second.hash).await.unwrap();
    assert_eq!(found, Some(second.clone()));

    let third = token(&id, T0 + 20);
    assert!(
        !store
            .rotate_refresh_token(&first.hash, &third, T0 + 20)
            .await
            .unwrap()
    );
    assert_eq!(store.find_refresh_token(&third.hash).await.unwrap(), None);
    let old = store
        .find_refresh_token(&first.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        old.rotated_at,
        Some(T0 + 10),
        "a lost rotation writes nothing"
    );

    // A replay within the grace window gets a fresh token in the same family.
    let replayed = token(&id, T0 + 21);
    store.insert_refresh_token(&replayed).await.unwrap();
    let found = store.find_refresh_token(&replayed.hash).await.unwrap();
    assert_eq!(found, Some(replayed.clone()));
    let err = store.insert_refresh_token(&replayed).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
}

pub(super) async fn rotation_is_won_by_exactly_one_caller(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "judy").await;
    let (id, first) = given_session(&*store, &user_id).await;
    let candidates: Vec<RefreshToken> = (0..20).map(|_| token(&id, T0 + 1)).collect();

    let rotations: Vec<_> = candidates
        .iter()
        .cloned()
        .map(|new| {
            let store = store.clone();
            let old = first.hash.clone();
            tokio::spawn(async move { store.rotate_refresh_token(&old, &new, T0 + 1).await })
        })
        .collect();
    let mut won = 0;
    for rotation in futures::future::join_all(rotations).await {
        if rotation.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one rotation wins");
    let mut stored = 0;
    for candidate in &candidates {
        if store
            .find_refresh_token(&candidate.hash)
            .await
            .unwrap()
            .is_some()
        {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "exactly one new token is stored");
}

pub(super) async fn rotating_an_unknown_token_changes_nothing(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "mallory").await;
    let (id, _) = given_session(&*store, &user_id).await;
    let new = token(&id, T0 + 1);
    assert!(
        !store
            .rotate_refresh_token(&new_hash(), &new, T0 + 1)
            .await
            .unwrap()
    );
    assert_eq!(store.find_refresh_token(&new.hash).await.unwrap(), None);
}

pub(super) async fn signing_keys_are_listed_oldest_first(store: Arc<dyn Store>) {
    assert_eq!(store.list_signing_keys().await.unwrap(), vec![]);
    let key = |kid: &str, created_at, retired_at| SigningKey {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        sealed_private_key: vec![0, 1, 2, 3],
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at,
        retired_at,
    };
    let newest = key("k3", T0 + 3000, None);
    let oldest = key("k1", T0 + 1000, Some(T0 + 2000));
    let middle = key("k2", T0 + 2000, None);
    for k in [&newest, &oldest, &middle] {
        store.insert_signing_key(k).await.unwrap();
    }
    let listed = store.list_signing_keys().await.unwrap();
    assert_eq!(listed, vec![oldest, middle, newest.clone()]);

    let err = store.insert_signing_key(&newest).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
}
