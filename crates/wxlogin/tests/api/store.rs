//! The store conformance suite: every scenario is written once against `dyn Store` and run on both
//! backends, SQLite on a fresh file and PostgreSQL in a fresh schema (`helpers::postgres_store`).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use wxlogin::domain::{AppId, OpenId, SessionId, UnionId, UserId};
use wxlogin::store::{Identity, RefreshToken, Session, Store, StoreError, User};

use crate::helpers::{DEMO_APPID, on_both_backends};

mod sessions;
use sessions::*;

mod profile;
use profile::*;

mod phones;
use phones::*;

mod unionids;
use unionids::*;

mod admin;
use admin::*;

mod admins;
use admins::*;

on_both_backends!(
    migrations_are_idempotent,
    ping_answers,
    identity_and_user_round_trip,
    duplicate_identity_is_a_conflict_and_writes_nothing,
    concurrent_first_logins_create_exactly_one_user,
    identity_login_keeps_or_sets_unionid,
    sessions_are_created_read_and_revoked,
    revoking_all_user_sessions_counts_the_live_ones,
    session_access_reflects_revocation_and_bans,
    refresh_tokens_rotate_once,
    rotation_is_won_by_exactly_one_caller,
    rotating_an_unknown_token_changes_nothing,
    signing_keys_are_listed_oldest_first,
    rotation_retires_the_other_live_tokens_of_the_session,
    rotations_of_two_siblings_are_won_by_one,
    the_first_signing_key_is_installed_once,
    signing_keys_rotate_by_compare_and_swap,
    a_signing_key_is_retired_once_and_never_later,
    concurrent_rotations_of_one_key_have_one_winner,
    nickname_is_set_and_cleared,
    avatar_is_replaced_and_the_previous_name_returned,
    a_shared_image_stays_until_its_last_user_leaves_it,
    concurrent_swaps_of_two_images_leave_every_avatar_stored,
    legacy_avatars_are_listed_and_imported_once,
    identity_is_found_by_user_and_app,
    identities_of_a_user_are_listed,
    phones_are_bound_unique_and_found,
    users_are_created_with_a_phone_and_without_identity,
    identities_are_linked_and_found_by_unionid,
    login_tickets_are_taken_once_before_they_expire,
    concurrent_takers_get_a_ticket_once,
    login_tickets_keep_their_attempts,
    sealed_values_are_paged_and_replaced_only_while_unchanged,
    a_unionid_belongs_to_one_user,
    concurrent_first_identities_of_one_unionid_make_one_user,
    a_backfilled_unionid_is_owned_by_its_user,
    users_are_searched_by_id_identity_phone_and_nickname,
    sessions_of_a_user_are_listed_live_or_all,
    users_are_paged_newest_first,
    sessions_are_listed_by_user_app_state_time_and_page,
    audit_entries_are_counted_by_bucket_and_paged,
    admins_are_stored_listed_by_name_and_unique,
    the_last_owner_is_never_removed,
    a_new_password_clears_the_lockout,
    a_totp_step_is_spent_once_and_a_new_secret_starts_over,
    failed_sign_ins_lock_at_the_limit_and_a_success_resets_the_count,
);

const T0: i64 = 1_700_000_000_000;

fn new_user_id() -> UserId {
    UserId::generate(UNIX_EPOCH + Duration::from_millis(T0 as u64))
}

fn new_session_id() -> SessionId {
    SessionId::generate(UNIX_EPOCH + Duration::from_millis(T0 as u64))
}

fn appid() -> AppId {
    AppId::parse(DEMO_APPID).unwrap()
}

fn openid(name: &str) -> OpenId {
    OpenId::parse(format!("o_test_{name}")).unwrap()
}

fn new_hash() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

fn user(id: &UserId) -> User {
    User {
        id: id.clone(),
        nickname: None,
        avatar: None,
        created_at: T0,
        updated_at: T0,
        banned_at: None,
        phone: None,
    }
}

fn identity(user: &UserId, openid: &OpenId) -> Identity {
    Identity {
        appid: appid(),
        openid: openid.clone(),
        unionid: None,
        user_id: user.clone(),
        sealed_session_key: vec![1, 2, 3, 0, 255],
        created_at: T0,
        updated_at: T0,
    }
}

fn session(id: &SessionId, user: &UserId) -> Session {
    Session {
        id: id.clone(),
        user_id: user.clone(),
        appid: appid(),
        created_at: T0,
        expires_at: T0 + 30 * 86_400_000,
        revoked_at: None,
        user_agent: None,
        last_used_at: None,
    }
}

fn token(session: &SessionId, issued_at: i64) -> RefreshToken {
    RefreshToken {
        hash: new_hash(),
        session_id: session.clone(),
        issued_at,
        expires_at: issued_at + 86_400_000,
        rotated_at: None,
    }
}

async fn given_user(store: &dyn Store, name: &str) -> UserId {
    let id = new_user_id();
    store
        .create_user_with_identity(&user(&id), &identity(&id, &openid(name)))
        .await
        .unwrap();
    id
}

/// A user with one live session; returns the session and its first refresh token.
async fn given_session(store: &dyn Store, user: &UserId) -> (SessionId, RefreshToken) {
    let id = new_session_id();
    let first = token(&id, T0);
    store
        .create_session(&session(&id, user), &first)
        .await
        .unwrap();
    (id, first)
}

async fn migrations_are_idempotent(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let id = given_user(&*store, "after-migrations").await;
    assert!(store.get_user(&id).await.unwrap().is_some());
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

async fn identity_and_user_round_trip(store: Arc<dyn Store>) {
    let id = new_user_id();
    let mut new_user = user(&id);
    new_user.nickname = Some("小明".to_owned());
    new_user.avatar = Some("a.webp".to_owned());
    let mut new_identity = identity(&id, &openid("alice"));
    new_identity.unionid = Some(UnionId::parse("u_test_alice").unwrap());
    store
        .create_user_with_identity(&new_user, &new_identity)
        .await
        .unwrap();

    let found = store.find_identity(&appid(), &openid("alice")).await;
    assert_eq!(found.unwrap(), Some(new_identity));
    assert_eq!(store.get_user(&id).await.unwrap(), Some(new_user));
    let other_app = AppId::parse("wx0000000000000002").unwrap();
    let found = store.find_identity(&other_app, &openid("alice")).await;
    assert_eq!(found.unwrap(), None);
    assert_eq!(store.get_user(&new_user_id()).await.unwrap(), None);
}

async fn duplicate_identity_is_a_conflict_and_writes_nothing(store: Arc<dyn Store>) {
    let first = given_user(&*store, "alice").await;

    let second = new_user_id();
    let err = store
        .create_user_with_identity(&user(&second), &identity(&second, &openid("alice")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(
        store.get_user(&second).await.unwrap(),
        None,
        "no orphan user"
    );
    let found = store.find_identity(&appid(), &openid("alice")).await;
    assert_eq!(found.unwrap().unwrap().user_id, first);

    // The other way round: a taken user id leaves the new identity unwritten.
    let err = store
        .create_user_with_identity(&user(&first), &identity(&first, &openid("bob")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let found = store.find_identity(&appid(), &openid("bob")).await;
    assert_eq!(found.unwrap(), None);
}

async fn concurrent_first_logins_create_exactly_one_user(store: Arc<dyn Store>) {
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let id = new_user_id();
            tokio::spawn(async move {
                let outcome = store
                    .create_user_with_identity(&user(&id), &identity(&id, &openid("carol")))
                    .await;
                (id, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        match attempt.unwrap() {
            (id, Ok(())) => winners.push(id),
            (id, Err(StoreError::Conflict)) => losers.push(id),
            (_, Err(other)) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one first login wins");
    let found = store.find_identity(&appid(), &openid("carol")).await;
    assert_eq!(found.unwrap().unwrap().user_id, winners[0]);
    for id in &losers {
        assert_eq!(store.get_user(id).await.unwrap(), None, "no orphan user");
    }
}

async fn identity_login_keeps_or_sets_unionid(store: Arc<dyn Store>) {
    given_user(&*store, "dave").await;
    let find = async || {
        let found = store.find_identity(&appid(), &openid("dave")).await;
        found.unwrap().unwrap()
    };

    store
        .record_identity_login(&appid(), &openid("dave"), None, &[9, 9], T0 + 1)
        .await
        .unwrap();
    let found = find().await;
    assert_eq!(found.sealed_session_key, vec![9, 9]);
    assert_eq!((found.unionid, found.updated_at), (None, T0 + 1));
    assert_eq!(found.created_at, T0);

    let unionid = UnionId::parse("u_test_dave").unwrap();
    store
        .record_identity_login(&appid(), &openid("dave"), Some(&unionid), &[8], T0 + 2)
        .await
        .unwrap();
    let found = find().await;
    assert_eq!(found.unionid.as_ref(), Some(&unionid));

    store
        .record_identity_login(&appid(), &openid("dave"), None, &[7], T0 + 3)
        .await
        .unwrap();
    let found = find().await;
    assert_eq!(
        found.unionid,
        Some(unionid),
        "a login without unionid keeps it"
    );
    assert_eq!(
        (found.sealed_session_key, found.updated_at),
        (vec![7], T0 + 3)
    );
}

async fn identity_is_found_by_user_and_app(store: Arc<dyn Store>) {
    let erin = given_user(&*store, "erin").await;
    let frank = given_user(&*store, "frank").await;

    let found = store.find_identity_by_user(&erin, &appid()).await.unwrap();
    assert_eq!(found, Some(identity(&erin, &openid("erin"))));
    let found = store.find_identity_by_user(&frank, &appid()).await.unwrap();
    assert_eq!(found.unwrap().openid, openid("frank"));

    let other_app = AppId::parse("wx0000000000000002").unwrap();
    let found = store.find_identity_by_user(&erin, &other_app).await;
    assert_eq!(found.unwrap(), None, "no identity in another app");
    let found = store.find_identity_by_user(&new_user_id(), &appid()).await;
    assert_eq!(found.unwrap(), None, "unknown user");

    store
        .record_identity_login(&appid(), &openid("erin"), None, &[4, 2], T0 + 5)
        .await
        .unwrap();
    let found = store.find_identity_by_user(&erin, &appid()).await;
    let found = found.unwrap().unwrap();
    assert_eq!(
        (found.sealed_session_key, found.updated_at),
        (vec![4, 2], T0 + 5),
        "the latest key is read"
    );
}

async fn identities_of_a_user_are_listed(store: Arc<dyn Store>) {
    let gina = given_user(&*store, "gina").await;
    given_user(&*store, "hank").await;
    let listed = store.list_identities_of_user(&gina).await.unwrap();
    assert_eq!(listed, vec![identity(&gina, &openid("gina"))]);
    assert!(
        store
            .list_identities_of_user(&new_user_id())
            .await
            .unwrap()
            .is_empty()
    );
}
