//! The axum extractors in a real router, with tokens from a real wxlogin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use common::{LiveWxlogin, dead_url, hs256, unsigned};
use wxlogin::tokens::SigningAlg;
use wxlogin_verify::{OptionalWxUser, Verifier, VerifierConfig, WxUser};

/// A service's own state, from which the extractors take the verifier.
#[derive(Clone)]
struct ServiceState {
    verifier: Verifier,
}

impl FromRef<ServiceState> for Verifier {
    fn from_ref(state: &ServiceState) -> Self {
        state.verifier.clone()
    }
}

async fn me(user: WxUser) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({ "sub": user.sub, "sid": user.sid, "appid": user.appid, "exp": user.claims.exp }),
    )
}

async fn maybe(OptionalWxUser(user): OptionalWxUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": user.map(|u| u.sub) }))
}

async fn maybe_option(user: Option<WxUser>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": user.map(|u| u.sub) }))
}

/// The service on port 0; returns its base URL.
async fn serve(verifier: Verifier) -> String {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe))
        .route("/maybe-option", get(maybe_option))
        .with_state(ServiceState { verifier });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn get_with(url: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// Asserts a 401 in the API envelope with the Bearer challenge; returns the message.
async fn assert_invalid_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert_eq!(body["request_id"], request_id.as_str());
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_user() {
    let wx = LiveWxlogin::spawn().await;
    let service = serve(wx.verifier(&wx.jwks_url())).await;
    let login = wx.login_response("alice").await;
    let token = login["access_token"].as_str().unwrap();

    let response = get_with(&format!("{service}/me"), Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["sub"], login["user"]["id"]);
    assert!(body["sid"].as_str().unwrap().starts_with("s_"), "{body}");
    assert_eq!(body["appid"], common::APPID);

    // The scheme is case-insensitive.
    let response = get_with(&format!("{service}/me"), Some(&format!("bearer {token}"))).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn eddsa_tokens_verify_too() {
    let wx = LiveWxlogin::spawn_with(SigningAlg::EdDsa).await;
    let verifier = wx.verifier(&wx.jwks_url());
    let token = wx.login("eddie").await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    let claims = verifier.verify(&token).await.unwrap();
    assert!(claims.sub.starts_with("u_"));
}

#[tokio::test]
async fn bad_authorization_headers_get_the_401_envelope() {
    let wx = LiveWxlogin::spawn().await;
    let service = serve(wx.verifier(&wx.jwks_url())).await;
    let me = format!("{service}/me");
    let token = wx.login("bob").await;

    let message = assert_invalid_token(get_with(&me, None).await).await;
    assert!(message.contains("Bearer"), "{message}");
    for header in [
        "Basic Ym9iOnNlY3JldA==".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        token.clone(),
        format!("Token {token}"),
        format!("Bearer {token} extra"),
    ] {
        let message = assert_invalid_token(get_with(&me, Some(&header)).await).await;
        assert!(message.contains("Bearer"), "{header}: {message}");
    }
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"] {
        let message =
            assert_invalid_token(get_with(&me, Some(&format!("Bearer {garbage}"))).await).await;
        assert!(
            message.contains("malformed") || message.contains("not an access token"),
            "{garbage}: {message}"
        );
    }

    // A request id from the client (or a proxy) names the error.
    let response = reqwest::Client::new()
        .get(&me)
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "req-42");
}

#[tokio::test]
async fn tokens_for_another_audience_or_issuer_are_refused() {
    let wx = LiveWxlogin::spawn().await;
    let token = wx.login("carol").await;
    let bearer = format!("Bearer {token}");

    let other_audience = VerifierConfig::new(wx.jwks_url(), &wx.issuer, "billing");
    let service = serve(wx.verifier_with(other_audience)).await;
    let message =
        assert_invalid_token(get_with(&format!("{service}/me"), Some(&bearer)).await).await;
    assert!(message.contains("another audience"), "{message}");

    let other_issuer =
        VerifierConfig::new(wx.jwks_url(), "https://login.example.com", &wx.audience);
    let service = serve(wx.verifier_with(other_issuer)).await;
    let message =
        assert_invalid_token(get_with(&format!("{service}/me"), Some(&bearer)).await).await;
    assert!(message.contains("another issuer"), "{message}");

    // And the other way round: tokens the server's key signed for someone else.
    let verifier = wx.verifier(&wx.jwks_url());
    let mut claims = wx.claims();
    claims["aud"] = "billing".into();
    assert_eq!(
        verifier.verify(&wx.sign("at+jwt", &claims)).await,
        Err(wxlogin_verify::VerifyError::WrongAudience)
    );
    let mut claims = wx.claims();
    claims["iss"] = "https://evil.example".into();
    assert_eq!(
        verifier.verify(&wx.sign("at+jwt", &claims)).await,
        Err(wxlogin_verify::VerifyError::WrongIssuer)
    );
}

#[tokio::test]
async fn expired_tokens_are_refused_after_the_leeway() {
    let wx = LiveWxlogin::spawn().await;
    let service = serve(wx.verifier(&wx.jwks_url())).await;
    let token = wx.login("dave").await;
    let bearer = format!("Bearer {token}");
    let me = format!("{service}/me");

    // 15 minutes is the token's life; 30 s of leeway.
    wx.clock.advance(Duration::from_secs(900 + 20));
    assert_eq!(get_with(&me, Some(&bearer)).await.status(), 200);
    wx.clock.advance(Duration::from_secs(11));
    let message = assert_invalid_token(get_with(&me, Some(&bearer)).await).await;
    assert!(message.contains("expired"), "{message}");

    // A token from the future is no better.
    let mut claims = wx.claims();
    let now = claims["iat"].as_i64().unwrap();
    claims["iat"] = (now + 120).into();
    claims["exp"] = (now + 1020).into();
    let message = assert_invalid_token(
        get_with(&me, Some(&format!("Bearer {}", wx.sign("at+jwt", &claims)))).await,
    )
    .await;
    assert!(message.contains("future"), "{message}");
}

#[tokio::test]
async fn only_es256_or_eddsa_access_tokens_signed_by_a_published_key_pass() {
    let wx = LiveWxlogin::spawn().await;
    let service = serve(wx.verifier(&wx.jwks_url())).await;
    let me = format!("{service}/me");
    let kid = wx.current_kid();
    let claims = wx.claims();
    let bearer = |token: String| format!("Bearer {token}");

    // The server's own key, its own claims: accepted...
    assert_eq!(
        get_with(&me, Some(&bearer(wx.sign("at+jwt", &claims))))
            .await
            .status(),
        200
    );
    assert_eq!(
        get_with(&me, Some(&bearer(wx.sign("application/at+jwt", &claims))))
            .await
            .status(),
        200
    );
    // ...but not as an ID token or a plain JWT.
    for typ in ["JWT", "id_token+jwt"] {
        let message =
            assert_invalid_token(get_with(&me, Some(&bearer(wx.sign(typ, &claims)))).await).await;
        assert!(message.contains("typ"), "{typ}: {message}");
    }
    // alg none, and HS256 keyed with the public JWKS: refused before any key is used.
    let message =
        assert_invalid_token(get_with(&me, Some(&bearer(unsigned(&kid, &claims)))).await).await;
    assert!(
        message.contains("malformed") || message.contains("algorithm"),
        "{message}"
    );
    let jwks = reqwest::get(wx.jwks_url())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let message =
        assert_invalid_token(get_with(&me, Some(&bearer(hs256(&kid, &jwks, &claims)))).await).await;
    assert!(message.contains("algorithm"), "{message}");
    // A key the server never published.
    let (forged, _) = wx.sign_with_unknown_key(&claims);
    let message = assert_invalid_token(get_with(&me, Some(&bearer(forged))).await).await;
    assert!(message.contains("unknown key"), "{message}");
    // The right kid over a tampered payload.
    let token = wx.sign("at+jwt", &claims);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut tampered = claims.clone();
    tampered["sub"] = "u_admin".into();
    use base64::Engine as _;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tampered.to_string());
    let message = assert_invalid_token(get_with(&me, Some(&bearer(parts.join(".")))).await).await;
    assert!(message.contains("signature"), "{message}");
    // Required claims.
    let mut missing = claims.clone();
    missing.as_object_mut().unwrap().remove("sid");
    let message =
        assert_invalid_token(get_with(&me, Some(&bearer(wx.sign("at+jwt", &missing)))).await).await;
    assert!(message.contains("claims"), "{message}");
}

#[tokio::test]
async fn optional_users_are_none_without_a_header_but_bad_tokens_are_still_refused() {
    let wx = LiveWxlogin::spawn().await;
    let service = serve(wx.verifier(&wx.jwks_url())).await;
    let token = wx.login("erin").await;
    for path in ["/maybe", "/maybe-option"] {
        let url = format!("{service}{path}");
        let body: serde_json::Value = get_with(&url, None).await.json().await.unwrap();
        assert_eq!(body["sub"], serde_json::Value::Null, "{path}");
        let response = get_with(&url, Some(&format!("Bearer {token}"))).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["sub"].as_str().unwrap().starts_with("u_"), "{path}");
        assert_invalid_token(get_with(&url, Some("Bearer garbage")).await).await;
        assert_invalid_token(get_with(&url, Some("Basic Zm9vOmJhcg==")).await).await;
    }
}

#[tokio::test]
async fn unreachable_keys_answer_503_unavailable() {
    let wx = LiveWxlogin::spawn().await;
    let token = wx.login("frank").await;
    let service = serve(wx.verifier(&dead_url())).await;

    let response = get_with(&format!("{service}/me"), Some(&format!("Bearer {token}"))).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.headers().get("www-authenticate").is_none());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // A request without a token is still the client's fault.
    assert_invalid_token(get_with(&format!("{service}/me"), None).await).await;
}
