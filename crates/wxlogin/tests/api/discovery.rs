use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier as _;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn jwks_is_cacheable_and_verifies_tokens_with_an_independent_implementation() {
    let app = TestApp::spawn().await;
    let login = app.login("alice").await;
    let token = login["access_token"].as_str().unwrap();

    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks: serde_json::Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none());

    // RustCrypto's p256, not the aws-lc code that signed: header, kid, then the raw r||s signature.
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], jwk["kid"]);
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    key.verify(signed.as_bytes(), &signature)
        .expect("the JWKS key verifies the token");
    assert!(
        key.verify(format!("{signed}x").as_bytes(), &signature)
            .is_err()
    );

    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], app.state.settings.issuer());
    assert_eq!(claims["aud"], "wxlogin");
    assert_eq!(claims["sub"], login["user"]["id"]);
    assert_eq!(claims["appid"], DEMO_APPID);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    for absent in ["openid", "unionid", "phone"] {
        assert!(claims.get(absent).is_none());
    }
}

#[tokio::test]
async fn eddsa_can_be_selected() {
    let app =
        TestApp::spawn_with(|s| s.tokens.algorithm = wxlogin::tokens::SigningAlg::EdDsa).await;
    let login = app.login("bob").await;
    let jwks: serde_json::Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    let header = jsonwebtoken::decode_header(login["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(
        app.get_authed("/v1/me", login["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn openid_configuration_points_at_the_jwks() {
    let app =
        TestApp::spawn_with(|s| s.server.public_url = Some("https://login.example.com".into()))
            .await;
    let config: serde_json::Value = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["issuer"], "https://login.example.com");
    assert_eq!(
        config["jwks_uri"],
        "https://login.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        config["introspection_endpoint"],
        "https://login.example.com/v1/introspect"
    );
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn introspect(app: &TestApp, auth: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.url("/v1/introspect"))
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn introspection_reflects_logout_and_requires_a_service_credential() {
    let app = TestApp::spawn().await;
    let login = app.login("carol").await;
    let token = login["access_token"].as_str().unwrap();
    let auth = basic(SERVICE_ID, SERVICE_SECRET);

    let active: serde_json::Value = introspect(&app, &auth, &[("token", token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], login["user"]["id"]);
    assert_eq!(active["appid"], DEMO_APPID);
    assert!(active["sid"].as_str().unwrap().starts_with("s_"));
    assert!(active["exp"].as_i64().is_some() && active["iat"].as_i64().is_some());

    let as_json: serde_json::Value = app
        .http
        .post(app.url("/v1/introspect"))
        .header("authorization", &auth)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_json["active"], true);

    let inactive: serde_json::Value = introspect(&app, &auth, &[("token", "garbage")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inactive, json!({ "active": false }));

    let response = app
        .http
        .post(app.url("/v1/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let after: serde_json::Value = introspect(&app, &auth, &[("token", token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after, json!({ "active": false }));

    for bad in [
        basic(SERVICE_ID, "wrong-secret-wrong-secret"),
        basic("nobody", SERVICE_SECRET),
        "Bearer x".into(),
        "Basic !!!".into(),
    ] {
        let response = introspect(&app, &bad, &[("token", token)]).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"wxlogin\""
        );
        assert_error(response, 401, "invalid_client").await;
    }
    let missing = introspect(&app, &auth, &[("nothing", "here")]).await;
    assert_error(missing, 400, "invalid_request").await;
    let text = app
        .http
        .post(app.url("/v1/introspect"))
        .header("authorization", &auth)
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "unsupported_media_type").await;
}
