//! The key cache: one fetch serves many tokens, unknown kids refetch (rate-limited), rotation is
//! picked up, stale keys serve through an outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{JwksProxy, LiveWxlogin};
use wxlogin_verify::{VerifierConfig, VerifyError};

#[tokio::test]
async fn keys_are_fetched_once_and_cached_for_the_ttl() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    let alice = wx.login("alice").await;
    let bob = wx.login("bob").await;

    for token in [&alice, &bob, &alice] {
        verifier.verify(token).await.unwrap();
    }
    assert_eq!(proxy.requests(), 1);
    // Clones share the cache.
    verifier.clone().verify(&bob).await.unwrap();
    assert_eq!(proxy.requests(), 1);

    wx.clock.advance(Duration::from_secs(299));
    verifier.verify(&alice).await.unwrap();
    assert_eq!(proxy.requests(), 1);
    wx.clock.advance(Duration::from_secs(2));
    verifier.verify(&alice).await.unwrap();
    assert_eq!(proxy.requests(), 2, "fetched again after cache_ttl");
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_and_at_most_once_per_interval() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    verifier.verify(&wx.login("alice").await).await.unwrap();
    assert_eq!(proxy.requests(), 1);

    // Past the interval since the first fetch: one refetch for the unknown kid, then it is unknown.
    wx.clock.advance(Duration::from_secs(10));
    let (forged, _) = wx.sign_with_unknown_key(&wx.claims());
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
    assert_eq!(proxy.requests(), 2, "exactly one refetch");

    // A flood of made-up kids within the interval costs the login server nothing.
    for _ in 0..20 {
        let (forged, _) = wx.sign_with_unknown_key(&wx.claims());
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
    }
    assert_eq!(proxy.requests(), 2);

    wx.clock.advance(Duration::from_secs(10));
    let (forged, _) = wx.sign_with_unknown_key(&wx.claims());
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
    assert_eq!(proxy.requests(), 3);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_the_old_one_still_verifies() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    let old_kid = wx.current_kid();
    let old_token = wx.login("alice").await;
    verifier.verify(&old_token).await.unwrap();
    assert_eq!(proxy.requests(), 1);

    let new_kid = wx.rotate_key();
    assert_ne!(new_kid, old_kid);
    wx.clock.advance(Duration::from_secs(10));
    let new_token = wx.login("bob").await;
    let claims = verifier.verify(&new_token).await.unwrap();
    assert!(claims.sub.starts_with("u_"));
    assert_eq!(proxy.requests(), 2, "one refetch for the new kid");

    verifier.verify(&old_token).await.unwrap();
    verifier.verify(&new_token).await.unwrap();
    assert_eq!(proxy.requests(), 2, "both keys are cached now");
}

#[tokio::test]
async fn a_rotated_key_waits_for_the_refetch_interval() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    verifier.verify(&wx.login("alice").await).await.unwrap();

    wx.rotate_key();
    let new_token = wx.login("bob").await;
    // Just fetched: the new kid is unknown until the interval has passed.
    assert_eq!(
        verifier.verify(&new_token).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(proxy.requests(), 1);
    wx.clock.advance(Duration::from_secs(10));
    verifier.verify(&new_token).await.unwrap();
    assert_eq!(proxy.requests(), 2);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    let token = wx.login("alice").await;

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(proxy.requests(), 1);
}

#[tokio::test]
async fn cached_keys_serve_through_an_outage_and_unknown_ones_are_unavailable() {
    let wx = LiveWxlogin::spawn().await;
    let proxy = JwksProxy::spawn(wx.jwks_url()).await;
    let verifier = wx.verifier(&proxy.url);
    let token = wx.login("alice").await;
    verifier.verify(&token).await.unwrap();

    proxy.set_down(true);
    wx.clock.advance(Duration::from_secs(301));
    // The cache is stale and the refetch fails: the cached key still fits this token.
    verifier.verify(&token).await.unwrap();
    assert_eq!(proxy.requests(), 2);

    wx.clock.advance(Duration::from_secs(10));
    let (forged, _) = wx.sign_with_unknown_key(&wx.claims());
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(VerifyError::Unavailable(_))
    ));
    assert_eq!(proxy.requests(), 3);
    // Within the interval, still unavailable, without asking again.
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(VerifyError::Unavailable(_))
    ));
    assert_eq!(proxy.requests(), 3);

    proxy.set_down(false);
    wx.clock.advance(Duration::from_secs(10));
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
    verifier.verify(&token).await.unwrap();
    assert_eq!(proxy.requests(), 4);
}

#[tokio::test]
async fn a_jwks_that_is_not_json_is_unavailable() {
    let wx = LiveWxlogin::spawn().await;
    let token = wx.login("alice").await;
    // The discovery document is JSON but has no keys; the root is not JSON at all.
    for url in [
        format!("{}/.well-known/openid-configuration", wx.address),
        format!("{}/", wx.address),
    ] {
        let verifier = wx.verifier_with(VerifierConfig::new(url.clone(), &wx.issuer, &wx.audience));
        assert!(
            matches!(
                verifier.verify(&token).await,
                Err(VerifyError::Unavailable(_))
            ),
            "{url}"
        );
    }
}
