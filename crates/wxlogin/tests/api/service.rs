//! Service hygiene: error envelope everywhere, request ids, health, OpenAPI, graceful shutdown.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_envelope() {
    let app = TestApp::spawn().await;
    assert_error(
        app.http.get(app.url("/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_error(
        app.http
            .get(app.url("/v1/auth/wechat/login"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    // The simulator's control API is never part of wxlogin.
    assert_error(
        app.http
            .post(app.url("/__mock/login"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn().await;
    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-123");
    let made = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(made.headers()["x-request-id"].len(), 26);
    let body = assert_error(
        app.http
            .get(app.url("/v1/me"))
            .header("x-request-id", "abc-1")
            .send()
            .await
            .unwrap(),
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(body["request_id"], "abc-1");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let health: serde_json::Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({ "status": "ok" }));
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn openapi_is_served_and_the_committed_copy_has_not_drifted() {
    let app = TestApp::spawn().await;
    let served: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generated = serde_json::to_value(wxlogin::http::openapi()).unwrap();
    assert_eq!(served, generated);
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/auth/wechat/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/me",
        "/.well-known/jwks.json",
        "/v1/introspect",
        "/healthz",
        "/readyz",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} documented");
    }
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let pretty = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());
    if std::env::var_os("WXLOGIN_UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json drifted from the handlers: run `WXLOGIN_UPDATE_OPENAPI=1 cargo test -p wxlogin --test api openapi` and commit it"
    );

    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "the vendored UI is served"
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() {
    let mut app = TestApp::spawn().await;
    app.wx
        .fault(json!({"api": "jscode2session", "latency_ms": 300, "times": 1}))
        .await;
    let code = app.code_for("zed");
    let (http, url) = (app.http.clone(), app.url("/v1/auth/wechat/login"));
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
    });
    // Let the request reach the server before asking it to stop.
    while app.wx.calls("jscode2session").await == 0 {
        tokio::task::yield_now().await;
    }
    app.stop().await;
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), 200, "the request in flight finished");
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_a_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.server.request_timeout_ms = 100).await;
    app.wx
        .fault(json!({"api": "jscode2session", "latency_ms": 400, "times": 1}))
        .await;
    let response = app
        .post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for("slow") }),
        )
        .await;
    assert_error(response, 503, "unavailable").await;
}
