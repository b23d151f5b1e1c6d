//! Service scopes: every route that takes a service credential refuses a service without its scope
//! (403 `insufficient_scope`) and serves one with it; an entry without `scopes` keeps every scope,
//! with a warning; an unknown scope stops the configuration from loading.

use std::process::Command;

use serde_json::json;
use wxlogin::config::{ServiceScope, ServiceSettings};

use crate::helpers::*;

const SECRET: &str = "scoped-service-secret-0123456789abcdef";

fn service(id: &str, scopes: &[ServiceScope]) -> ServiceSettings {
    ServiceSettings::new(id, SECRET)
        .unwrap()
        .with_scopes(scopes)
}

/// Every route of a service credential, the scopes it needs, and a request a service with them
/// gets 200 for.
#[derive(Clone, Copy, Debug)]
enum Route {
    Introspect,
    User,
    Token,
    Invalidate,
}

impl Route {
    const ALL: [Self; 4] = [Self::Introspect, Self::User, Self::Token, Self::Invalidate];

    fn needs(self) -> &'static [ServiceScope] {
        match self {
            Self::Introspect => &[ServiceScope::Introspect],
            Self::User => &[ServiceScope::UsersRead],
            Self::Token => &[ServiceScope::WechatToken],
            Self::Invalidate => &[
                ServiceScope::WechatTokenInvalidate,
                ServiceScope::WechatToken,
            ],
        }
    }

    async fn call(self, app: &TestApp, client_id: &str, user: &str) -> reqwest::Response {
        let token_url = app.url(&format!("/internal/v1/wechat/{DEMO_APPID}/access-token"));
        let request = match self {
            Self::Introspect => app
                .http
                .post(app.url("/v1/introspect"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=not-a-token"),
            Self::User => app.http.get(app.url(&format!("/internal/v1/users/{user}"))),
            Self::Token => app.http.get(token_url),
            Self::Invalidate => app
                .http
                .post(format!("{token_url}/invalidate"))
                .json(&json!({ "access_token": "89_an_older_token" })),
        };
        request
            .basic_auth(client_id, Some(SECRET))
            .send()
            .await
            .unwrap()
    }
}

async fn assert_refused(response: reqwest::Response, scope: ServiceScope) {
    let body = assert_error(response, 403, "insufficient_scope").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{scope}`")), "{message}");
}

#[tokio::test]
async fn each_service_route_is_refused_without_its_scope_and_served_with_it() {
    let mut services = vec![service("nothing", &[])];
    for (i, route) in Route::ALL.iter().enumerate() {
        services.push(service(&format!("exact-{i}"), route.needs()));
        // Every scope but one of those the route needs.
        for (j, missing) in route.needs().iter().enumerate() {
            let others: Vec<ServiceScope> = ServiceScope::ALL
                .into_iter()
                .filter(|s| s != missing)
                .collect();
            services.push(service(&format!("without-{i}-{j}"), &others));
        }
    }
    let app = TestApp::spawn_with(move |s| s.services = services).await;
    app.remember_secret(SECRET);
    let user = app.login("scoped").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for (i, route) in Route::ALL.iter().enumerate() {
        let response = route.call(&app, &format!("exact-{i}"), &user).await;
        assert_eq!(response.status(), 200, "{route:?} with {:?}", route.needs());
        for (j, missing) in route.needs().iter().enumerate() {
            let response = route.call(&app, &format!("without-{i}-{j}"), &user).await;
            assert_refused(response, *missing).await;
        }
        let response = route.call(&app, "nothing", &user).await;
        assert_refused(response, route.needs()[0]).await;
    }

    // The scope is checked before the app or the user is looked up: a service without it learns
    // nothing about which exist.
    let response = app
        .http
        .get(app.url("/internal/v1/wechat/wx00000000000000ff/access-token"))
        .basic_auth("nothing", Some(SECRET))
        .send()
        .await
        .unwrap();
    assert_refused(response, ServiceScope::WechatToken).await;
    let response = Route::User
        .call(&app, "nothing", "u_01J00000000000000000000000")
        .await;
    assert_refused(response, ServiceScope::UsersRead).await;
    // A wrong secret is still 401, whatever the scopes.
    let response = app
        .http
        .post(app.url("/v1/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=x")
        .basic_auth("exact-0", Some("not-the-secret-0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn the_full_phone_number_needs_phone_read_besides_users_read() {
    let app = TestApp::spawn_with(|s| {
        s.services = vec![
            service("reader", &[ServiceScope::UsersRead]),
            service(
                "phone-reader",
                &[ServiceScope::UsersRead, ServiceScope::PhoneRead],
            ),
            service("phone-only", &[ServiceScope::PhoneRead]),
        ];
    })
    .await;
    app.remember_secret(SECRET);
    let login = app.login("phoned").await;
    let token = login["access_token"].as_str().unwrap();
    let code = app.phone_code_for("phoned", "13800138000");
    let bound = app
        .post_authed("/v1/me/phone", token, json!({ "code": code }))
        .await;
    assert_eq!(bound.status(), 200);
    let id = login["user"]["id"].as_str().unwrap();
    let app = &app;
    let get = |client: &'static str| async move {
        let response = Route::User.call(app, client, id).await;
        assert_eq!(response.status(), 200, "{client}");
        response.json::<serde_json::Value>().await.unwrap()
    };

    let withheld = get("reader").await;
    assert_eq!(withheld["phone"], serde_json::Value::Null);
    assert_eq!(withheld["phone_withheld"], true);
    assert_eq!(withheld["id"], id);
    assert!(!withheld.to_string().contains("8000"), "{withheld}");

    let full = get("phone-reader").await;
    assert_eq!(full["phone"]["e164"], "+8613800138000");
    assert_eq!(full["phone_withheld"], false);

    let response = Route::User.call(app, "phone-only", id).await;
    assert_refused(response, ServiceScope::UsersRead).await;
}

#[tokio::test]
async fn a_service_listing_no_scopes_keeps_every_scope_and_is_warned_about_at_start() {
    let client_id = format!("legacy-{:08x}", rand::random::<u32>());
    // Loaded as an existing configuration file would be, written before scopes existed.
    let loaded = wxlogin::config::Settings::from_toml_str(&format!(
        "[[services]]\nclient_id = \"{client_id}\"\nclient_secret = \"{SECRET}\"\n"
    ))
    .unwrap();
    let services = loaded.services.clone();
    let app = TestApp::spawn_with(move |s| s.services = services).await;
    app.remember_secret(SECRET);
    let user = app.login("legacy").await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for route in Route::ALL {
        let response = route.call(&app, &client_id, &user).await;
        assert_eq!(response.status(), 200, "{route:?}");
    }
    let warnings: Vec<String> = logs_text()
        .lines()
        .filter(|line| line.contains(&format!("service `{client_id}` lists no `scopes`")))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
}

fn wxlogin_config_check(services: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
    let path = dir.path().join("wxlogin.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ndata_dir = \"{data}\"\npublic_url = \"https://login.example.com\"\n\
             [security]\nsealing_key = \"{sealing_key}\"\n\
             [[apps]]\nappid = \"{DEMO_APPID}\"\nsecret = \"{DEMO_SECRET}\"\n{services}",
            data = dir.path().display(),
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wxlogin"))
        .env_remove("WXLOGIN_CONFIG")
        .env("WXLOGIN_LOG", "warn")
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [SECRET, DEMO_SECRET, sealing_key.as_str()] {
        assert!(!all.contains(secret), "a secret in the output");
    }
    output
}

#[test]
fn config_check_shows_each_services_scopes_and_warns_about_unlisted_ones() {
    let output = wxlogin_config_check(&format!(
        "[[services]]\nclient_id = \"orders\"\nclient_secret = \"{SECRET}\"\n\
         scopes = [\"users:read\", \"introspect\"]\n\
         [[services]]\nclient_id = \"legacy\"\nclient_secret = \"{SECRET}\"\n\
         [[services]]\nclient_id = \"silent\"\nclient_secret = \"{SECRET}\"\nscopes = []\n"
    ));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scopes_of = |id: &str| {
        let table = stdout
            .split("[[services]]")
            .find(|table| table.contains(&format!("client_id = \"{id}\"")))
            .unwrap_or_else(|| panic!("{id} in {stdout}"));
        table
            .lines()
            .find(|line| line.starts_with("scopes = "))
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        scopes_of("orders"),
        r#"scopes = ["introspect", "users:read"]"#
    );
    assert_eq!(
        scopes_of("legacy"),
        r#"scopes = ["introspect", "users:read", "phone:read", "wechat:token", "wechat:token:invalidate"]"#
    );
    assert_eq!(scopes_of("silent"), "scopes = []");
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].contains("service `legacy` lists no `scopes`"),
        "{}",
        warnings[0]
    );
}

#[test]
fn an_unknown_scope_stops_the_configuration_with_the_valid_ones() {
    let output = wxlogin_config_check(&format!(
        "[[services]]\nclient_id = \"orders\"\nclient_secret = \"{SECRET}\"\n\
         scopes = [\"introspect\", \"phone:write\"]\n"
    ));
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing printed as if it were valid"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wxlogin:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    for expected in ["services", "phone:write"]
        .into_iter()
        .chain(ServiceScope::ALL.iter().map(|s| s.as_str()))
    {
        assert!(lines[0].contains(expected), "{expected} in {}", lines[0]);
    }
}
