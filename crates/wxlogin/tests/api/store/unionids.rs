//! Conformance scenarios for unionid ownership (run by `on_both_backends!`), and the migration
//! that back-fills it from existing identities, on both backends.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::migrate::Migrator;
use sqlx::{Connection, Executor};
use wxlogin::domain::{AppId, UnionId, UserId};
use wxlogin::store::{Identity, PostgresStore, SqliteStore, Store, StoreError};

use super::{T0, appid, given_user, identity, new_user_id, openid, user};

fn unionid(name: &str) -> UnionId {
    UnionId::parse(format!("u_test_{name}")).unwrap()
}

fn app(n: u8) -> AppId {
    AppId::parse(format!("wx00000000000000{n:02}")).unwrap()
}

fn with_unionid(user: &UserId, app: AppId, name: &str, unionid: &UnionId) -> Identity {
    Identity {
        appid: app,
        unionid: Some(unionid.clone()),
        ..identity(user, &openid(name))
    }
}

fn is_conflict<T: std::fmt::Debug>(outcome: Result<T, StoreError>) -> bool {
    matches!(outcome, Err(StoreError::Conflict))
}

pub(super) async fn a_unionid_belongs_to_one_user(store: Arc<dyn Store>) {
    let owner = new_user_id();
    let shared = unionid("one-owner");
    store
        .create_user_with_identity(&user(&owner), &with_unionid(&owner, app(1), "a", &shared))
        .await
        .unwrap();

    // Another user's first identity with that unionid: refused, nothing written.
    let other = new_user_id();
    let outcome = store
        .create_user_with_identity(&user(&other), &with_unionid(&other, app(2), "b", &shared))
        .await;
    assert!(is_conflict(outcome));
    assert!(store.get_user(&other).await.unwrap().is_none());
    assert!(
        store
            .find_identity(&app(2), &openid("b"))
            .await
            .unwrap()
            .is_none()
    );

    // Linking it to an existing other user: refused, nothing written.
    let existing = given_user(&*store, "existing").await;
    let outcome = store
        .link_identity(&with_unionid(&existing, app(2), "b", &shared))
        .await;
    assert!(is_conflict(outcome));
    assert!(
        store
            .find_identity(&app(2), &openid("b"))
            .await
            .unwrap()
            .is_none()
    );

    // The owner's own identities in other apps link fine.
    store
        .link_identity(&with_unionid(&owner, app(2), "b", &shared))
        .await
        .unwrap();
    assert_eq!(
        store.find_users_by_unionid(&shared).await.unwrap(),
        vec![owner]
    );
}

pub(super) async fn concurrent_first_identities_of_one_unionid_make_one_user(
    store: Arc<dyn Store>,
) {
    let shared = unionid("racing");
    let attempts = (0..20u8).map(|n| {
        let store = store.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let id = new_user_id();
            let identity = with_unionid(&id, app(n), &format!("race-{n}"), &shared);
            let outcome = store.create_user_with_identity(&user(&id), &identity).await;
            (id, outcome)
        })
    });
    let mut winners = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        match attempt.unwrap() {
            (id, Ok(())) => winners.push(id),
            (id, Err(StoreError::Conflict)) => {
                assert!(
                    store.get_user(&id).await.unwrap().is_none(),
                    "no orphan user"
                );
            }
            (_, Err(other)) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "one user per unionid");
    assert_eq!(store.find_users_by_unionid(&shared).await.unwrap(), winners);
}

pub(super) async fn a_backfilled_unionid_is_owned_by_its_user(store: Arc<dyn Store>) {
    // Two identities without a unionid, on two users.
    let first = given_user(&*store, "backfill-a").await;
    let second = given_user(&*store, "backfill-b").await;
    let shared = unionid("backfill");

    store
        .record_identity_login(&appid(), &openid("backfill-a"), Some(&shared), &[5], T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.find_users_by_unionid(&shared).await.unwrap(),
        vec![first.clone()]
    );
    // The same unionid back-filled on the other user: refused, nothing written.
    let outcome = store
        .record_identity_login(&appid(), &openid("backfill-b"), Some(&shared), &[6], T0 + 2)
        .await;
    assert!(is_conflict(outcome));
    let untouched = store
        .find_identity(&appid(), &openid("backfill-b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.unionid, None);
    assert_eq!(
        untouched.sealed_session_key,
        identity(&second, &openid("x")).sealed_session_key
    );
    // Nor can a new user take it.
    let third = new_user_id();
    let outcome = store
        .create_user_with_identity(&user(&third), &with_unionid(&third, app(9), "c", &shared))
        .await;
    assert!(is_conflict(outcome));
    // The owner's logins carry on, with or without the unionid.
    for unionid in [Some(&shared), None] {
        store
            .record_identity_login(&appid(), &openid("backfill-a"), unionid, &[7], T0 + 3)
            .await
            .unwrap();
    }
}

// The migration back-fill: a database at migration 0002 with identities (one unionid already on two
// users, as the race this migration closes could leave it), migrated to the current schema.

/// The identities an older wxlogin left behind. `{blob}` is a backend's literal for a sealed key.
const LEGACY_ROWS: &str = "\
INSERT INTO users (id, created_at, updated_at) VALUES
    ('u_01H00000000000000000000001', 1, 1),
    ('u_01H00000000000000000000002', 2, 2);
INSERT INTO wechat_identities
    (appid, openid, unionid, user_id, sealed_session_key, created_at, updated_at) VALUES
    ('wx0000000000000001', 'o_legacy_a', 'u_test_twice', 'u_01H00000000000000000000001', {blob}, 1, 1),
    ('wx0000000000000002', 'o_legacy_b', 'u_test_twice', 'u_01H00000000000000000000002', {blob}, 2, 2),
    ('wx0000000000000003', 'o_legacy_c', 'u_test_twice', 'u_01H00000000000000000000002', {blob}, 3, 3),
    ('wx0000000000000001', 'o_legacy_d', 'u_test_once',  'u_01H00000000000000000000002', {blob}, 4, 4),
    ('wx0000000000000002', 'o_legacy_e', NULL,           'u_01H00000000000000000000001', {blob}, 5, 5);
";

/// The migrations up to 0002 of a backend's folder.
async fn migrations_to_0002(backend: &str) -> Migrator {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut migrator = Migrator::new(folder).await.unwrap();
    let early: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 2)
        .cloned()
        .collect();
    assert_eq!(early.len(), 2);
    migrator.migrations = Cow::Owned(early);
    migrator
}

async fn legacy_unionids_are_owned_after_migrating(store: &dyn Store) {
    let older = UserId::parse("u_01H00000000000000000000001").unwrap();
    let newer = UserId::parse("u_01H00000000000000000000002").unwrap();
    // The unionid already on two users stays visible as a conflict for an operator...
    assert_eq!(
        store
            .find_users_by_unionid(&unionid("twice"))
            .await
            .unwrap(),
        vec![older.clone(), newer.clone()]
    );
    // ...and is owned by the older user: only that user may gain identities with it.
    let outcome = store
        .link_identity(&with_unionid(
            &newer,
            app(4),
            "late-newer",
            &unionid("twice"),
        ))
        .await;
    assert!(is_conflict(outcome));
    store
        .link_identity(&with_unionid(
            &older,
            app(4),
            "late-older",
            &unionid("twice"),
        ))
        .await
        .unwrap();
    // A unionid on one user is owned by that user.
    let stranger = new_user_id();
    let outcome = store
        .create_user_with_identity(
            &user(&stranger),
            &with_unionid(&stranger, app(5), "stranger", &unionid("once")),
        )
        .await;
    assert!(is_conflict(outcome));
    store
        .link_identity(&with_unionid(&newer, app(5), "once-b", &unionid("once")))
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_migration_backfills_unionid_owners() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut legacy = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    migrations_to_0002("sqlite")
        .await
        .run(&mut legacy)
        .await
        .unwrap();
    legacy
        .execute(LEGACY_ROWS.replace("{blob}", "x'0102'").as_str())
        .await
        .unwrap();
    legacy.close().await.unwrap();

    let store = SqliteStore::connect(&path).await.unwrap();
    store.migrate().await.unwrap();
    legacy_unionids_are_owned_after_migrating(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_migration_backfills_unionid_owners() {
    let Ok(url) = std::env::var("WXLOGIN_TEST_POSTGRES_URL") else {
        // `helpers::postgres_store` says it is skipped, or fails in CI.
        assert!(crate::helpers::postgres_store().await.is_none());
        return;
    };
    let schema = format!("t_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let mut legacy = sqlx::PgConnection::connect_with(&options).await.unwrap();
        migrations_to_0002("postgres")
            .await
            .run(&mut legacy)
            .await
            .unwrap();
        legacy
            .execute(LEGACY_ROWS.replace("{blob}", "'\\x0102'::bytea").as_str())
            .await
            .unwrap();
        legacy.close().await.unwrap();

        let store = PostgresStore::connect_with(options.clone(), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        legacy_unionids_are_owned_after_migrating(&store).await;
        store.close().await;
    }))
    .await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
