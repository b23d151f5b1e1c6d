//! Conformance scenarios for sessions, refresh tokens and signing keys (run by `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::SessionId;
use wxlogin::store::{RefreshToken, SessionAccess, SessionIdentity, SigningKey, Store, StoreError};

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
    let user = || async { store.get_user(&user_id).await.unwrap().unwrap() };
    // given_user's one identity, in the session's app, without a unionid.
    let identity = store
        .find_identity_by_user(&user_id, &super::appid())
        .await
        .unwrap()
        .unwrap();
    let session_identity = SessionIdentity {
        openid: identity.openid.clone(),
        unionid: None,
    };
    let access = |revoked, user| SessionAccess {
        revoked,
        expires_at: T0 + 30 * 86_400_000,
        user,
        identity: Some(session_identity.clone()),
    };

    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, user().await))
    );
    assert!(store.set_user_banned(&user_id, Some(T0 + 1)).await.unwrap());
    let banned = user().await;
    assert_eq!(banned.banned_at, Some(T0 + 1));
    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, banned))
    );
    assert!(store.set_user_banned(&user_id, None).await.unwrap());
    assert_eq!(
        store.session_access(&id).await.unwrap(),
        Some(access(false, user().await))
    );
    // The whole user, as get_user reads it: GET /v1/me answers from it.
    assert!(
        store
            .set_nickname(&user_id, Some("Heidi"), T0 + 2)
            .await
            .unwrap()
    );
    let phone = wxlogin::domain::Phone::new("86", "13800138000").unwrap();
    assert!(
        store
            .set_user_phone(&user_id, Some(&phone), T0 + 3)
            .await
            .unwrap()
    );
    let read = store.session_access(&id).await.unwrap().unwrap();
    assert_eq!(read.user.nickname.as_deref(), Some("Heidi"));
    assert_eq!(read.user.phone, Some(phone));
    assert_eq!(read.user, user().await);

    // The identity as find_identity_by_user picks it: a back-filled unionid, and of two
    // identities in the app the one used last.
    let unionid = wxlogin::domain::UnionId::parse("o6_bmasdasdsad6_2sgVt7hMZOPfL").unwrap();
    store
        .record_identity_login(
            &identity.appid,
            &identity.openid,
            Some(&unionid),
            &[9],
            T0 + 5,
        )
        .await
        .unwrap();
    let read = store.session_access(&id).await.unwrap().unwrap();
    assert_eq!(read.identity.unwrap().unionid, Some(unionid));
    let second = super::openid("heidi_second");
    let mut other = super::identity(&user_id, &second);
    other.created_at = T0 + 6;
    other.updated_at = T0 + 6;
    store.link_identity(&other).await.unwrap();
    let read = store.session_access(&id).await.unwrap().unwrap();
    assert_eq!(read.identity.as_ref().map(|i| &i.openid), Some(&second));
    let picked = store
        .find_identity_by_user(&user_id, &identity.appid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(picked.openid, second);

    store.revoke_session(&id, T0 + 4).await.unwrap();
    let revoked = store.session_access(&id).await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.user, user().await);
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
        activates_at: created_at + 600_000,
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

pub(super) async fn rotation_retires_the_other_live_tokens_of_the_session(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "nina").await;
    let (id, first) = given_session(&*store, &user_id).await;
    let (other_session, theirs) = given_session(&*store, &user_id).await;
    // Two replays of an earlier token within the grace window: siblings of `first`.
    let sibling = token(&id, T0 + 1);
    let sibling2 = token(&id, T0 + 2);
    store.insert_refresh_token(&sibling).await.unwrap();
    store.insert_refresh_token(&sibling2).await.unwrap();

    let next = token(&id, T0 + 10);
    assert!(
        store
            .rotate_refresh_token(&first.hash, &next, T0 + 10)
            .await
            .unwrap()
    );
    let rotated = store
        .find_refresh_token(&first.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.rotated_at, Some(T0 + 10));
    assert_eq!(
        rotated.expires_at, first.expires_at,
        "its own rotation keeps its end"
    );
    for retired in [&sibling, &sibling2] {
        let found = store
            .find_refresh_token(&retired.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.rotated_at, Some(T0 + 10), "retired with the rotation");
        assert_eq!(found.expires_at, T0 + 10, "and ended at once");
    }
    assert_eq!(
        store.find_refresh_token(&next.hash).await.unwrap(),
        Some(next)
    );
    let untouched = store.find_refresh_token(&theirs.hash).await.unwrap();
    assert_eq!(untouched, Some(theirs), "another session is left alone");
    // A retired sibling can no longer be rotated, nor a token of another session through this one.
    let late = token(&id, T0 + 11);
    assert!(
        !store
            .rotate_refresh_token(&sibling.hash, &late, T0 + 11)
            .await
            .unwrap()
    );
    let cross = token(&id, T0 + 12);
    let (_, foreign) = given_session(&*store, &user_id).await;
    assert!(
        !store
            .rotate_refresh_token(&foreign.hash, &cross, T0 + 12)
            .await
            .unwrap()
    );
    assert_eq!(store.find_refresh_token(&cross.hash).await.unwrap(), None);
    let _ = other_session;
}

pub(super) async fn rotations_of_two_siblings_are_won_by_one(store: Arc<dyn Store>) {
    let user_id = given_user(&*store, "oscar").await;
    for round in 0..5 {
        let (id, first) = given_session(&*store, &user_id).await;
        let sibling = token(&id, T0 + 1);
        store.insert_refresh_token(&sibling).await.unwrap();
        let candidates: Vec<(Vec<u8>, RefreshToken)> = (0..6)
            .map(|i| {
                let old = if i % 2 == 0 { &first } else { &sibling };
                (old.hash.clone(), token(&id, T0 + 2))
            })
            .collect();
        let rotations: Vec<_> = candidates
            .iter()
            .cloned()
            .map(|(old, new)| {
                let store = store.clone();
                tokio::spawn(async move { store.rotate_refresh_token(&old, &new, T0 + 2).await })
            })
            .collect();
        let mut won = 0;
        for rotation in futures::future::join_all(rotations).await {
            if rotation.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one rotation of the generation wins"
        );
        let mut live = 0;
        for (_, new) in &candidates {
            if let Some(found) = store.find_refresh_token(&new.hash).await.unwrap() {
                assert_eq!(found.rotated_at, None);
                live += 1;
            }
        }
        assert_eq!(live, 1, "round {round}: one new token");
    }
}

fn signing_key(kid: &str, created_at: i64) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        sealed_private_key: vec![9, 9, 9],
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        created_at,
        activates_at: created_at,
        retired_at: None,
    }
}

pub(super) async fn the_first_signing_key_is_installed_once(store: Arc<dyn Store>) {
    assert_eq!(store.current_signing_kid("ES256").await.unwrap(), None);
    let installs: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = signing_key(&format!("first-{i}"), T0);
                let won = store.install_signing_key(&key, None).await.unwrap();
                (key.kid, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for install in futures::future::join_all(installs).await {
        let (kid, won) = install.unwrap();
        if won {
            winners.push(kid);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one first key: {winners:?}");
    assert_eq!(
        store.current_signing_kid("ES256").await.unwrap().as_deref(),
        Some(winners[0].as_str())
    );
    let kids: Vec<String> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, winners, "the losers' keys were not kept");
    assert_eq!(store.current_signing_kid("EdDSA").await.unwrap(), None);
}

pub(super) async fn signing_keys_rotate_by_compare_and_swap(store: Arc<dyn Store>) {
    assert!(
        store
            .install_signing_key(&signing_key("k1", T0), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .install_signing_key(&signing_key("k-late", T0), None)
            .await
            .unwrap(),
        "a first key when there is one"
    );
    assert!(
        !store
            .install_signing_key(&signing_key("k-stale", T0 + 1), Some("k0"))
            .await
            .unwrap(),
        "replacing a key that is not the current one"
    );
    assert!(
        store
            .install_signing_key(&signing_key("k2", T0 + 2), Some("k1"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.current_signing_kid("ES256").await.unwrap().as_deref(),
        Some("k2")
    );
    let kids: Vec<String> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k1", "k2"], "the previous key stays to verify");
}

pub(super) async fn a_signing_key_is_retired_once_and_never_later(store: Arc<dyn Store>) {
    assert!(
        store
            .install_signing_key(&signing_key("k1", T0), None)
            .await
            .unwrap()
    );
    let pending = SigningKey {
        activates_at: T0 + 600_000,
        ..signing_key("k2", T0 + 1)
    };
    assert!(
        store
            .install_signing_key(&pending, Some("k1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .retire_signing_key("no-such-key", T0 + 5)
            .await
            .unwrap()
    );
    assert!(store.retire_signing_key("k1", T0 + 10).await.unwrap());
    assert!(
        store.retire_signing_key("k1", T0 + 8).await.unwrap(),
        "an earlier retirement replaces a later one"
    );
    assert!(
        !store.retire_signing_key("k1", T0 + 20).await.unwrap(),
        "a later one does not"
    );
    let listed = store.list_signing_keys().await.unwrap();
    assert_eq!(listed[0].retired_at, Some(T0 + 8));
    assert_eq!(
        listed[1], pending,
        "the activation is stored; the other key untouched"
    );
}

pub(super) async fn concurrent_rotations_of_one_key_have_one_winner(store: Arc<dyn Store>) {
    assert!(
        store
            .install_signing_key(&signing_key("k1", T0), None)
            .await
            .unwrap()
    );
    let rotations: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = SigningKey {
                    activates_at: T0 + 600_000,
                    ..signing_key(&format!("next-{i}"), T0 + 1)
                };
                let won = store.install_signing_key(&key, Some("k1")).await.unwrap();
                (key.kid, won)
            })
        })
        .collect();
    let winners: Vec<String> = futures::future::join_all(rotations)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|(_, won)| *won)
        .map(|(kid, _)| kid)
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store.current_signing_kid("ES256").await.unwrap().as_deref(),
        Some(winners[0].as_str())
    );
    let kids: Vec<String> = store
        .list_signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(
        kids,
        ["k1".to_owned(), winners[0].clone()],
        "the losers left nothing"
    );
}
