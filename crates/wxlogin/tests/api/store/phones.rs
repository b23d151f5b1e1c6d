//! Conformance scenarios for phone numbers, identity links and login tickets (run by
//! `on_both_backends!`).

use std::sync::Arc;

use wxlogin::domain::{AppId, Phone, UnionId};
use wxlogin::store::{LoginTicket, Store, StoreError};

use super::{T0, appid, given_user, identity, new_hash, new_user_id, openid, user};

fn phone(number: &str) -> Phone {
    Phone::new("86", number).unwrap()
}

pub(super) async fn phones_are_bound_unique_and_found(store: Arc<dyn Store>) {
    let alice = given_user(&*store, "phone-alice").await;
    let bob = given_user(&*store, "phone-bob").await;
    let number = phone("13800138000");
    assert!(
        store
            .set_user_phone(&alice, Some(&number), T0 + 1)
            .await
            .unwrap()
    );
    let found = store.get_user(&alice).await.unwrap().unwrap();
    assert_eq!(found.phone.as_ref(), Some(&number));
    assert_eq!(found.updated_at, T0 + 1);
    assert_eq!(
        store.find_user_by_phone(&number).await.unwrap().unwrap().id,
        alice
    );
    // One account per number: the second binding is refused and writes nothing.
    let err = store
        .set_user_phone(&bob, Some(&number), T0 + 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert_eq!(store.get_user(&bob).await.unwrap().unwrap().phone, None);
    // The same digits with another country code are another number.
    let other = Phone::new("852", "13800138000").unwrap();
    assert!(
        store
            .set_user_phone(&bob, Some(&other), T0 + 3)
            .await
            .unwrap()
    );
    // Unbinding frees the number.
    assert!(store.set_user_phone(&alice, None, T0 + 4).await.unwrap());
    assert!(store.find_user_by_phone(&number).await.unwrap().is_none());
    assert!(
        !store
            .set_user_phone(&new_user_id(), Some(&number), T0)
            .await
            .unwrap()
    );
}

pub(super) async fn users_are_created_with_a_phone_and_without_identity(store: Arc<dyn Store>) {
    let id = new_user_id();
    let mut imported = user(&id);
    imported.phone = Some(phone("13900139000"));
    store.create_user(&imported).await.unwrap();
    assert_eq!(store.get_user(&id).await.unwrap(), Some(imported.clone()));
    assert!(store.list_identities_of_user(&id).await.unwrap().is_empty());
    // Another user with the same number, in one transaction with its identity: refused, and the
    // user is not left behind.
    let second = new_user_id();
    let mut clash = user(&second);
    clash.phone = imported.phone.clone();
    let err = store
        .create_user_with_identity(&clash, &identity(&second, &openid("clash")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store.get_user(&second).await.unwrap().is_none());
    assert!(
        store
            .find_identity(&appid(), &openid("clash"))
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn identities_are_linked_and_found_by_unionid(store: Arc<dyn Store>) {
    let unionid = UnionId::parse("u_test_linked").unwrap();
    let id = new_user_id();
    let mut first = identity(&id, &openid("link-a"));
    first.unionid = Some(unionid.clone());
    store
        .create_user_with_identity(&user(&id), &first)
        .await
        .unwrap();
    let other_app = AppId::parse("wx0000000000000002").unwrap();
    let mut second = identity(&id, &openid("link-b"));
    second.appid = other_app.clone();
    second.unionid = Some(unionid.clone());
    store.link_identity(&second).await.unwrap();
    assert_eq!(
        store.find_users_by_unionid(&unionid).await.unwrap(),
        vec![id.clone()]
    );
    assert_eq!(store.list_identities_of_user(&id).await.unwrap().len(), 2);
    let err = store.link_identity(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let nobody = UnionId::parse("u_test_nobody").unwrap();
    assert!(
        store
            .find_users_by_unionid(&nobody)
            .await
            .unwrap()
            .is_empty()
    );
}

fn ticket(expires_at: i64) -> LoginTicket {
    LoginTicket {
        hash: new_hash(),
        appid: appid(),
        openid: openid("ticket"),
        unionid: Some(UnionId::parse("u_test_ticket").unwrap()),
        sealed_session_key: vec![9, 8, 7],
        created_at: T0,
        expires_at,
        attempts: 0,
    }
}

pub(super) async fn login_tickets_are_taken_once_before_they_expire(store: Arc<dyn Store>) {
    let live = ticket(T0 + 300_000);
    store.insert_login_ticket(&live).await.unwrap();
    let taken = store.take_login_ticket(&live.hash, T0 + 1).await.unwrap();
    assert_eq!(taken, Some(live.clone()));
    assert_eq!(
        store.take_login_ticket(&live.hash, T0 + 2).await.unwrap(),
        None
    );
    // Put back (a failed registration the user may retry), it can be taken again.
    store.insert_login_ticket(&live).await.unwrap();
    assert!(
        store
            .take_login_ticket(&live.hash, T0 + 3)
            .await
            .unwrap()
            .is_some()
    );

    let expiring = ticket(T0 + 10);
    store.insert_login_ticket(&expiring).await.unwrap();
    assert_eq!(
        store
            .take_login_ticket(&expiring.hash, T0 + 10)
            .await
            .unwrap(),
        None
    );
}

pub(super) async fn concurrent_takers_get_a_ticket_once(store: Arc<dyn Store>) {
    let live = ticket(T0 + 300_000);
    store.insert_login_ticket(&live).await.unwrap();
    let takers = (0..8).map(|_| {
        let store = store.clone();
        let hash = live.hash.clone();
        async move { store.take_login_ticket(&hash, T0 + 1).await.unwrap() }
    });
    let results = futures::future::join_all(takers).await;
    assert_eq!(results.iter().filter(|r| r.is_some()).count(), 1);
}

pub(super) async fn login_tickets_keep_their_attempts(store: Arc<dyn Store>) {
    let mut tried = ticket(T0 + 300_000);
    tried.attempts = 4;
    store.insert_login_ticket(&tried).await.unwrap();
    let taken = store.take_login_ticket(&tried.hash, T0 + 1).await.unwrap();
    assert_eq!(taken.unwrap().attempts, 4);
}

pub(super) async fn sealed_values_are_paged_and_replaced_only_while_unchanged(
    store: Arc<dyn Store>,
) {
    for name in ["a", "b", "c"] {
        given_user(&*store, name).await;
    }
    let first = store.sealed_identity_keys(None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let (appid, openid, _) = first.last().unwrap().clone();
    let rest = store
        .sealed_identity_keys(Some((&appid, &openid)), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1, "the page after the last one read");
    let (appid, openid, old) = rest[0].clone();
    assert!(
        !store
            .reseal_identity_key(&appid, &openid, b"not what is stored", b"new")
            .await
            .unwrap(),
        "a value written meanwhile is not overwritten"
    );
    assert!(
        store
            .reseal_identity_key(&appid, &openid, &old, b"new")
            .await
            .unwrap()
    );
    let stored = store
        .find_identity(
            &AppId::parse(&appid).unwrap(),
            &wxlogin::domain::OpenId::parse(openid).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.sealed_session_key, b"new");

    let live = ticket(T0 + 300_000);
    store.insert_login_ticket(&live).await.unwrap();
    let tickets = store.sealed_ticket_keys(None, 10).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].3, live.sealed_session_key);
    assert!(
        store
            .sealed_ticket_keys(Some(&live.hash), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .reseal_ticket_key(&live.hash, b"other", b"t")
            .await
            .unwrap()
    );
    assert!(
        store
            .reseal_ticket_key(&live.hash, &live.sealed_session_key, b"t")
            .await
            .unwrap()
    );
    let taken = store
        .take_login_ticket(&live.hash, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.sealed_session_key, b"t");

    assert!(
        !store
            .reseal_signing_key("no-such-kid", b"x", b"y")
            .await
            .unwrap()
    );
}
