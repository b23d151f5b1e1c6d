//! The built-in gateway at its edges, against a real upstream: the path it routes is the path it
//! forwards, identity headers cannot be smuggled under another spelling, the upstream learns the
//! client's address from wxlogin rather than from the client, and one `Authorization` header only.

use std::io::{Read as _, Write as _};
use std::sync::atomic::Ordering;

use wxlogin::config::{GatewayRoute, RouteAuth};

use crate::forward::spawn_upstream;
use crate::helpers::*;

fn route(prefix: &str, upstream: &str, auth: RouteAuth) -> GatewayRoute {
    GatewayRoute {
        prefix: prefix.to_owned(),
        upstream: upstream.to_owned(),
        auth,
        pass_authorization: false,
        strip_prefix: false,
    }
}

/// A request written byte for byte, so the request target reaches the server exactly as given
/// (an HTTP client library would resolve `..` and `%2e` itself). HTTP/1.0, so the answer is not
/// chunked and ends when the server closes the connection.
fn raw_get(address: &str, target: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let host = address.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let mut request = format!("GET {target} HTTP/1.0\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// `raw_get` off the async runtime's worker (it blocks on the socket).
async fn get(address: &str, target: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let address = address.to_owned();
    let target = target.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        raw_get(&address, &target, &headers)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_gateway_routes_and_forwards_one_normalised_path_and_refuses_traversal() {
    let (upstream, _server, calls) = spawn_upstream().await;
    let app = TestApp::spawn_with(|s| {
        s.gateway.routes = vec![
            route("/api/", &upstream, RouteAuth::None),
            route("/api/admin/", &upstream, RouteAuth::Required),
            GatewayRoute {
                strip_prefix: true,
                ..route("/pub/", &format!("{upstream}/v2"), RouteAuth::None)
            },
        ];
    })
    .await;
    let token = app.login("alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");

    // Dot segments, raw or percent-encoded in any case, encoded slashes and backslashes: 400
    // before any route is chosen, and nothing reaches the upstream.
    for target in [
        "/api/x/../admin/secret",
        "/api/x/%2e%2e/admin/secret",
        "/api/x/%2E%2e/admin/secret",
        "/api/x/.%2E/admin/secret",
        "/api/x/%2e./admin/secret",
        "/api/./admin/secret",
        "/api/x/%2E/admin/secret",
        "/api/x/..",
        "/api/x/..;/admin/secret",
        "/api/x/..?q=1",
        "/api/x%2f..%2fadmin/secret",
        "/api/x%2F..%2Fadmin/secret",
        "/api/x%5c..%5cadmin/secret",
        "/api/x%5C..%5Cadmin/secret",
        "/api/x\\..\\admin/secret",
        "/pub/../../internal/x",
        "/pub/%2e%2e/%2e%2e/internal/x",
        "/api/x/%zz",
    ] {
        let (status, body) = get(&app.address, target, &[]).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(body["error"], "invalid_request", "{target}: {body}");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no refused path reached the upstream"
    );

    // Spellings of the protected route that are not traversal are normalised, then routed as the
    // protected route: without a token they never reach the upstream.
    for target in [
        "/api//admin/secret",
        "/api/%61dmin/secret",
        "/api/%61%64%6D%69%6E/secret",
        "//api/admin/secret",
    ] {
        let (status, body) = get(&app.address, target, &[]).await;
        assert_eq!(status, 401, "{target}: {body}");
        assert_eq!(body["error"], "invalid_token", "{target}: {body}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // With a token, the upstream receives the same normalised path that was routed.
    for (target, expected) in [
        ("/api//admin/secret", "/api/admin/secret"),
        ("/api/%61dmin/secret?a=%2e%2e", "/api/admin/secret?a=%2e%2e"),
        (
            "/api/admin/a.b..c/%7euser/x%3fy",
            "/api/admin/a.b..c/~user/x%3Fy",
        ),
    ] {
        let (status, seen) = get(&app.address, target, &[("Authorization", &bearer)]).await;
        assert_eq!(status, 200, "{target}: {seen}");
        assert_eq!(seen["uri"], expected, "{target}");
        assert!(
            seen["headers"]["x-wx-user-id"]
                .as_str()
                .is_some_and(|id| id.starts_with("u_")),
            "{seen}"
        );
    }

    // strip_prefix stays under the upstream's base path.
    for (target, expected) in [
        ("/pub/a/b?q=1", "/v2/a/b?q=1"),
        ("/pub", "/v2/"),
        ("/pub//x", "/v2/x"),
    ] {
        let (status, seen) = get(&app.address, target, &[]).await;
        assert_eq!(status, 200, "{target}: {seen}");
        assert_eq!(seen["uri"], expected, "{target}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn identity_headers_spelt_with_underscores_never_reach_the_upstream() {
    let (upstream, _server, _) = spawn_upstream().await;
    let app = TestApp::spawn_with(|s| {
        s.gateway.routes = vec![
            route("/api/", &upstream, RouteAuth::Required),
            route("/open/", &upstream, RouteAuth::None),
        ];
    })
    .await;
    let login = app.login("alice").await;
    let token = login["access_token"].as_str().unwrap();
    let spoofs = [
        ("X_WX_User_Id", "u_attacker"),
        ("x_wx_openid", "attacker"),
        ("X-WX_UnionId", "attacker"),
        ("x_wx-session_id", "s_attacker"),
        ("X_Wx_Anything", "attacker"),
    ];
    for path in ["/api/orders", "/open/news"] {
        let mut request = app.http.get(app.url(path)).bearer_auth(token);
        for (name, value) in spoofs {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let seen: serde_json::Value = response.json().await.unwrap();
        let headers = seen["headers"].as_object().unwrap();
        for (name, value) in headers {
            let dashed = name.replace('_', "-");
            if dashed.starts_with("x-wx-") {
                assert!(!name.contains('_'), "{path}: {name} arrived");
                assert!(
                    !value.as_str().unwrap().contains("attacker"),
                    "{path}: {name}"
                );
            }
        }
        if path == "/api/orders" {
            assert_eq!(headers["x-wx-user-id"], login["user"]["id"]);
        } else {
            assert!(!headers.contains_key("x-wx-user-id"));
        }
    }
}

#[tokio::test]
async fn the_upstream_learns_the_client_address_from_the_connection_not_from_the_client() {
    let (upstream, _server, _) = spawn_upstream().await;
    let direct = TestApp::spawn_with(|s| {
        s.gateway.routes = vec![route("/open/", &upstream, RouteAuth::None)];
    })
    .await;
    let seen = |app: &TestApp, forwarded_for: Option<&'static str>| {
        let mut request = app
            .http
            .get(app.url("/open/x"))
            .header("x-real-ip", "6.6.6.6")
            .header("forwarded", "for=6.6.6.6");
        if let Some(value) = forwarded_for {
            request = request.header("x-forwarded-for", value);
        }
        let sent = request.send();
        async move {
            let response = sent.await.unwrap();
            assert_eq!(response.status(), 200);
            let seen: serde_json::Value = response.json().await.unwrap();
            seen["headers"].clone()
        }
    };

    // No trusted proxies (the default): the TCP peer is the client, whatever it claims.
    for claim in [None, Some("6.6.6.6"), Some("6.6.6.6, 7.7.7.7")] {
        let headers = seen(&direct, claim).await;
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{claim:?}");
        assert_eq!(headers["x-real-ip"], "127.0.0.1", "{claim:?}");
        assert!(headers.get("forwarded").is_none(), "{headers}");
    }

    // Behind trusted proxies: the right-most hop that is not a trusted proxy is the client; what
    // the client wrote to the left of it is dropped.
    let proxied = TestApp::spawn_with(|s| {
        s.server.trusted_proxies = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        s.gateway.routes = vec![route("/open/", &upstream, RouteAuth::None)];
    })
    .await;
    for (claim, forwarded, real) in [
        (None, "127.0.0.1", "127.0.0.1"),
        (Some("203.0.113.7"), "203.0.113.7, 127.0.0.1", "203.0.113.7"),
        (
            Some("6.6.6.6, 203.0.113.7, 10.1.2.3"),
            "203.0.113.7, 10.1.2.3, 127.0.0.1",
            "203.0.113.7",
        ),
        (
            Some("6.6.6.6,2001:db8::1 ,10.1.2.3"),
            "2001:db8::1, 10.1.2.3, 127.0.0.1",
            "2001:db8::1",
        ),
        (
            Some("10.9.9.9, 10.1.2.3"),
            "10.9.9.9, 10.1.2.3, 127.0.0.1",
            "10.9.9.9",
        ),
        (
            Some("6.6.6.6, nonsense, 10.1.2.3"),
            "10.1.2.3, 127.0.0.1",
            "10.1.2.3",
        ),
    ] {
        let headers = seen(&proxied, claim).await;
        assert_eq!(headers["x-forwarded-for"], forwarded, "{claim:?}");
        assert_eq!(headers["x-real-ip"], real, "{claim:?}");
    }
}

#[test]
fn trusted_proxies_are_validated_at_load() {
    let ok = wxlogin::config::Settings::from_toml_str(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\"]",
    )
    .unwrap();
    assert_eq!(ok.server.trusted_proxies.len(), 3);
    for bad in ["10.0.0.0/33", "nginx", "10.0.0.0/", "", "fd00::/129"] {
        let text = format!("[server]\ntrusted_proxies = [\"{bad}\"]");
        let err = wxlogin::config::Settings::from_toml_str(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.trusted_proxies"), "{bad}: {err}");
        assert!(err.contains("CIDR"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_second_authorization_header_is_refused_by_the_gateway() {
    let (upstream, _server, calls) = spawn_upstream().await;
    let app = TestApp::spawn_with(|s| {
        s.gateway.routes = vec![
            route("/api/", &upstream, RouteAuth::Required),
            route("/public/", &upstream, RouteAuth::Optional),
            GatewayRoute {
                pass_authorization: true,
                ..route("/open/", &upstream, RouteAuth::None)
            },
        ];
    })
    .await;
    let token = app.login("alice").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.login("bob").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/api/x", "/public/x", "/open/x"] {
        for second in [format!("Bearer {other}"), "Bearer garbage".to_owned()] {
            let response = app
                .http
                .get(app.url(path))
                .header("authorization", format!("Bearer {token}"))
                .header("authorization", second)
                .send()
                .await
                .unwrap();
            assert_error(response, 401, "invalid_token").await;
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_route_prefix_must_be_a_normalised_path() {
    for prefix in [
        "/api/../admin/",
        "/api/./x",
        "/api\\\\x",
        "/%61pi/",
        "/api/..",
    ] {
        let text = format!("[[gateway.routes]]\nprefix = \"{prefix}\"\nupstream = \"http://h\"");
        let err = wxlogin::config::Settings::from_toml_str(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway.routes[0].prefix"), "{prefix}: {err}");
    }
}
