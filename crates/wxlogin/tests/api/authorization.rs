//! One credential per request: a request with two `Authorization` headers is refused everywhere,
//! so that wxlogin and whatever sits behind or in front of it cannot read different ones.

use crate::helpers::*;

async fn with_two(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    first: &str,
    second: &str,
) -> reqwest::Response {
    app.http
        .request(method, app.url(path))
        .header("authorization", first)
        .header("authorization", second)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn two_bearer_tokens_are_refused_by_the_api_and_forward_auth() {
    let app = TestApp::spawn().await;
    let alice = app.login("alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = app.login("bob").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/v1/me", "/v1/auth/verify"] {
        assert_eq!(app.get_authed(path, &alice).await.status(), 200, "{path}");
        for second in [
            format!("Bearer {bob}"),
            "Bearer garbage".to_owned(),
            format!("Bearer {alice}"),
        ] {
            let response = with_two(
                &app,
                reqwest::Method::GET,
                path,
                &format!("Bearer {alice}"),
                &second,
            )
            .await;
            assert!(response.headers().get("x-wx-user-id").is_none(), "{path}");
            assert_error(response, 401, "invalid_token").await;
        }
    }
}

#[tokio::test]
async fn two_service_credentials_are_refused() {
    use base64::Engine as _;
    let app = TestApp::spawn().await;
    let user = app.login("alice").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/internal/v1/users/{user}");
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SERVICE_ID}:{SERVICE_SECRET}"))
    );
    let response = app
        .http
        .get(app.url(&path))
        .header("authorization", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for second in [good.as_str(), "Basic Z2FyYmFnZTpnYXJiYWdl"] {
        let response = with_two(&app, reqwest::Method::GET, &path, &good, second).await;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.starts_with("Basic"), "{challenge}");
        assert_error(response, 401, "invalid_client").await;
    }
}
