//! Identity for the business API: forward auth (`/v1/auth/verify`), the built-in gateway in front of
//! a real upstream over HTTP, and real nginx with `auth_request` in front of one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use futures::StreamExt as _;
use serde_json::json;
use wxlogin::config::{GatewayRoute, IdentityHeader, RouteAuth};

use crate::helpers::*;

fn access(login: &serde_json::Value) -> String {
    login["access_token"].as_str().unwrap().to_owned()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn verify_answers_identity_headers_for_a_valid_token_and_401_otherwise() {
    let app = TestApp::spawn().await;
    let login = app.login("alice").await;
    let token = access(&login);
    let user = app
        .internal_user(login["user"]["id"].as_str().unwrap())
        .await;

    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let response = app
            .http
            .request(method.parse().unwrap(), app.url("/v1/auth/verify"))
            .bearer_auth(&token)
            .header("x-forwarded-method", "DELETE")
            .header("x-original-uri", "/api/orders/7")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(
            header(&response, "x-wx-user-id").as_deref(),
            user["id"].as_str()
        );
        assert_eq!(header(&response, "x-wx-appid").as_deref(), Some(DEMO_APPID));
        assert_eq!(
            header(&response, "x-wx-openid").as_deref(),
            user["identities"][0]["openid"].as_str()
        );
        assert_eq!(
            header(&response, "x-wx-unionid").as_deref(),
            user["identities"][0]["unionid"].as_str()
        );
        assert!(
            header(&response, "x-wx-session-id")
                .unwrap()
                .starts_with("s_")
        );
    }

    let get = |auth: Option<String>| {
        let mut request = app.http.get(app.url("/v1/auth/verify"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    for auth in [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some(format!("Basic {token}")),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Bearer {token}x")),
        Some(format!("Bearer {}", "a".repeat(5000))),
    ] {
        let response = get(auth.clone()).await.unwrap();
        assert!(header(&response, "x-wx-user-id").is_none());
        assert_error(response, 401, "invalid_token").await;
    }

    // Revoked: refused at once.
    let response = app.post_authed("/v1/auth/logout", &token, json!({})).await;
    assert_eq!(response.status(), 204);
    let response = get(Some(format!("Bearer {token}"))).await.unwrap();
    assert_error(response, 401, "invalid_token").await;

    // Expired: refused.
    let token = access(&app.login("alice").await);
    app.wx.clock.advance(Duration::from_secs(900 + 31));
    let response = get(Some(format!("Bearer {token}"))).await.unwrap();
    assert_error(response, 401, "invalid_token").await;
}

#[tokio::test]
async fn configuration_decides_which_identity_headers_are_sent() {
    let app = TestApp::spawn_with(|s| {
        s.identity_headers.include = vec![IdentityHeader::UserId, IdentityHeader::SessionId];
    })
    .await;
    let token = access(&app.login("alice").await);
    let response = app.get_authed("/v1/auth/verify", &token).await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "x-wx-user-id").is_some());
    assert!(header(&response, "x-wx-session-id").is_some());
    assert!(header(&response, "x-wx-appid").is_none());
    assert!(header(&response, "x-wx-openid").is_none());
    assert!(header(&response, "x-wx-unionid").is_none());
}

/// A business server: answers what it received as JSON (`/echo/...`), streams a large body
/// (`/big`), or stalls (`/slow`).
pub async fn spawn_upstream() -> (String, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let echo = move |request: Request| {
        counter.fetch_add(1, Ordering::SeqCst);
        echo(request)
    };
    async fn echo(request: Request) -> axum::response::Response {
        let (parts, body) = request.into_parts();
        let mut received = 0usize;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            received += chunk.unwrap().len();
        }
        let headers: HashMap<String, String> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body_len": received,
        }))
        .into_response()
    }
    use axum::response::IntoResponse;
    let router = axum::Router::new()
        .route(
            "/big",
            axum::routing::get(|| async {
                let chunks = futures::stream::iter(
                    (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])),
                );
                (
                    [("x-upstream", "yes"), ("connection", "x-hop")],
                    Body::from_stream(chunks),
                )
            }),
        )
        .route(
            "/api/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (address, server, calls)
}

/// `GET path` through the server with one extra header (a spoofed identity, a bad Authorization).
async fn get_with_header(app: &TestApp, path: &str, name: &str, value: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .header(name, value)
        .send()
        .await
        .unwrap()
}

fn route(prefix: &str, upstream: &str, auth: RouteAuth) -> GatewayRoute {
    GatewayRoute {
        prefix: prefix.to_owned(),
        upstream: upstream.to_owned(),
        auth,
        pass_authorization: false,
        strip_prefix: false,
    }
}

#[tokio::test]
async fn the_gateway_forwards_with_identity_headers_and_strips_spoofed_ones() {
    let (upstream, _server, _) = spawn_upstream().await;
    let app = TestApp::spawn_with(|s| {
        s.gateway.timeout_ms = 300;
        s.gateway.routes = vec![
            route("/api/", &upstream, RouteAuth::Required),
            route("/public/", &upstream, RouteAuth::Optional),
            route("/open", &upstream, RouteAuth::None),
            GatewayRoute {
                strip_prefix: true,
                pass_authorization: true,
                ..route("/files/", &upstream, RouteAuth::Required)
            },
            route("/down/", "http://127.0.0.1:9", RouteAuth::None),
        ];
    })
    .await;
    let login = app.login("alice").await;
    let token = access(&login);

    // A valid token: the upstream sees the identity, not the client's claims nor its token.
    let response = app
        .http
        .post(app.url("/api/orders?page=2"))
        .bearer_auth(&token)
        .header("x-wx-user-id", "u_spoofed")
        .header("X-WX-UnionId", "spoofed")
        .header("x-wx-anything", "spoofed")
        .body(vec![7u8; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/api/orders?page=2");
    assert_eq!(
        seen["body_len"], 200_000,
        "a body larger than the JSON limit streams through"
    );
    let headers = &seen["headers"];
    assert_eq!(headers["x-wx-user-id"], login["user"]["id"]);
    assert_eq!(headers["x-wx-appid"], DEMO_APPID);
    assert!(headers["x-wx-openid"].is_string());
    assert_ne!(headers["x-wx-unionid"], "spoofed");
    assert!(headers["x-wx-unionid"].is_string());
    assert!(headers.get("x-wx-anything").is_none());
    assert!(headers.get("authorization").is_none());
    assert!(headers["x-request-id"].is_string());

    // Required: no token, no upstream call.
    let response = get_with_header(&app, "/api/orders", "x-wx-user-id", "u_spoofed").await;
    assert_error(response, 401, "invalid_token").await;
    let response = get_with_header(&app, "/api/orders", "authorization", "Bearer").await;
    assert_error(response, 401, "invalid_token").await;

    // Optional: anonymous without a token (and no spoofing), identity with one.
    let response = get_with_header(&app, "/public/news", "x-wx-user-id", "u_spoofed").await;
    let seen: serde_json::Value = response.json().await.unwrap();
    assert!(seen["headers"].get("x-wx-user-id").is_none());
    let seen: serde_json::Value = app
        .get_authed("/public/news", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-wx-user-id"], login["user"]["id"]);
    let response = app.get_authed("/public/news", "garbage").await;
    assert_error(response, 401, "invalid_token").await;

    // None: passes without a token; still no spoofing.
    let response = get_with_header(&app, "/open", "x-wx-session-id", "s_spoofed").await;
    let seen: serde_json::Value = response.json().await.unwrap();
    assert_eq!(seen["uri"], "/open");
    assert!(seen["headers"].get("x-wx-session-id").is_none());
    assert_error(
        app.http.get(app.url("/openx")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;

    // strip_prefix and pass_authorization.
    let seen: serde_json::Value = app
        .get_authed("/files/a/b.txt", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen["uri"], "/a/b.txt");
    assert_eq!(seen["headers"]["authorization"], format!("Bearer {token}"));

    // Logout reaches the gateway at once.
    let response = app.post_authed("/v1/auth/logout", &token, json!({})).await;
    assert_eq!(response.status(), 204);
    assert_error(
        app.get_authed("/api/orders", &token).await,
        401,
        "invalid_token",
    )
    .await;

    // Unreachable and slow upstreams: 502 and 504, in the envelope, quickly.
    assert_error(
        app.http.get(app.url("/down/x")).send().await.unwrap(),
        502,
        "upstream_unavailable",
    )
    .await;
    let token = access(&app.login("alice").await);
    assert_error(
        app.get_authed("/api/slow", &token).await,
        504,
        "upstream_timeout",
    )
    .await;
}

#[tokio::test]
async fn the_gateway_streams_large_responses_and_drops_hop_by_hop_headers() {
    let (upstream, _server, _) = spawn_upstream().await;
    let app = TestApp::spawn_with(|s| {
        s.gateway.routes = vec![GatewayRoute {
            prefix: "/big".to_owned(),
            ..route("/big", &upstream, RouteAuth::None)
        }];
    })
    .await;
    let response = app.http.get(app.url("/big")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-upstream").as_deref(), Some("yes"));
    assert!(header(&response, "x-hop").is_none());
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), 64 * 64 * 1024);
}

#[test]
fn gateway_routes_are_validated() {
    for (text, key) in [
        (
            "[[gateway.routes]]\nprefix = \"api\"\nupstream = \"http://h\"",
            "gateway.routes[0].prefix",
        ),
        (
            "[[gateway.routes]]\nprefix = \"/v1/orders\"\nupstream = \"http://h\"",
            "gateway.routes[0].prefix",
        ),
        (
            "[[gateway.routes]]\nprefix = \"/api\"\nupstream = \"ftp://h\"",
            "gateway.routes[0].upstream",
        ),
        (
            "[[gateway.routes]]\nprefix = \"/api\"\nupstream = \"http://h\"\n[[gateway.routes]]\nprefix = \"/api/\"\nupstream = \"http://h\"",
            "gateway.routes[1].prefix",
        ),
        (
            "[[gateway.routes]]\nprefix = \"/api\"\nupstream = \"http://h\"\nauth = \"maybe\"",
            "auth",
        ),
    ] {
        let err = wxlogin::config::Settings::from_toml_str(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}
