//! `GET /metrics` on the metrics listener: each family after a session that exercises it, label
//! sets that stay bounded under junk traffic, the alert rules and the dashboard checked against a
//! real scrape (and by `promtool`). A real process's metrics listener and its JSON logs are in
//! `secrets.rs`.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};
use wxlogin::config::{Rate, RateLimitSettings};

use crate::helpers::*;

const ALERTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/prometheus/wxlogin-alerts.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/grafana/wxlogin-dashboard.json"
);

fn rate(text: &str) -> Option<Rate> {
    Some(text.parse().unwrap())
}

/// A server with its metrics listener on a free port.
async fn spawn(configure: impl FnOnce(&mut wxlogin::config::Settings)) -> TestApp {
    TestApp::spawn_with(|s| {
        s.metrics.listen = Some("127.0.0.1:0".parse().unwrap());
        configure(s);
    })
    .await
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics_address.as_deref().expect("metrics are on");
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// Every sample line as `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {:#?}", sorted(samples)))
}

fn sorted(samples: &HashMap<String, f64>) -> BTreeSet<&String> {
    samples.keys().collect()
}

#[tokio::test]
async fn the_listener_serves_only_get_metrics() {
    let app = spawn(|_| {}).await;
    let base = app.metrics_address.clone().unwrap();
    assert_ne!(base, app.address, "a listener of its own");
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics/x"),
        ("GET", "/v1/me"),
        ("POST", "/metrics"),
        ("DELETE", "/metrics"),
    ] {
        let response = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let text = scrape(&app).await;
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains(&format!("wxlogin_build_info{{version=\"{version}\"}} 1")));
    // The API does not serve them.
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_session_shows_in_every_family() {
    let app = spawn(|s| {
        s.rate_limits = RateLimitSettings::off();
        s.rate_limits.login.per_ip = rate("4/min");
        s.wechat.token_refresh_check_ms = 20;
    })
    .await;
    let login = |user: &str, appid: &str| {
        app.post_json(
            "/v1/auth/wechat/login",
            json!({ "code": app.code_for(user), "appid": appid }),
        )
    };
    // New, returning, a WeChat failure, then the per-IP limit (4 a minute).
    let first: Value = login("alice", DEMO_APPID).await.json().await.unwrap();
    assert_eq!(login("alice", DEMO_APPID).await.status(), 200);
    app.wx
        .fault(json!({"api": "jscode2session", "errcode": -1, "times": 1}))
        .await;
    assert_error(login("alice", DEMO_APPID).await, 503, "wechat_unavailable").await;
    assert_error(
        login("alice", "wxffffffffffffffff").await,
        404,
        "unknown_app",
    )
    .await;
    assert_error(login("alice", DEMO_APPID).await, 429, "rate_limited").await;

    // A rotation, then the rotated token again after the grace period: reuse.
    let refresh =
        |token: String| app.post_json("/v1/auth/refresh", json!({ "refresh_token": token }));
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(old.clone()).await.status(), 200);
    app.wx.clock.advance(Duration::from_secs(31));
    assert_error(refresh(old).await, 401, "invalid_grant").await;

    // Access tokens: fetched on request, then again after a service reports it rejected.
    let (_, response) = app.report_wechat_token_rejected().await;
    assert_eq!(response.status(), 200);
    // And once by the background refresher, in the token's last minutes.
    app.wx.clock.advance(Duration::from_secs(7200 - 200));
    let not_found = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(not_found.status(), 404);

    let mut text = String::new();
    for _ in 0..250 {
        text = scrape(&app).await;
        if text.contains("trigger=\"proactive\",result=\"ok\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = samples(&text);
    let login_route = "route=\"/v1/auth/wechat/login\",method=\"POST\"";
    assert_eq!(
        value(
            &s,
            &format!("wxlogin_http_requests_total{{{login_route},status=\"200\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            &format!("wxlogin_http_request_duration_seconds_count{{{login_route},status=\"429\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_http_requests_total{route=\"/internal/v1/wechat/{appid}/access-token\",method=\"GET\",status=\"200\"}"
        ),
        1.0
    );
    for (outcome, count) in [
        ("new", 1.0),
        ("returning", 1.0),
        ("wechat_unavailable", 1.0),
        ("rate_limited", 1.0),
    ] {
        let series =
            format!("wxlogin_logins_total{{appid=\"{DEMO_APPID}\",outcome=\"{outcome}\"}}");
        assert_eq!(value(&s, &series), count, "{series}");
    }
    assert_eq!(
        value(
            &s,
            "wxlogin_logins_total{appid=\"unknown\",outcome=\"unknown_app\"}"
        ),
        1.0
    );
    assert!(
        !text.contains("wxffffffffffffffff"),
        "no series for an unknown appid"
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_wechat_calls_total{api=\"jscode2session\",errcode=\"0\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_wechat_calls_total{api=\"jscode2session\",errcode=\"-1\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_wechat_call_duration_seconds_count{api=\"jscode2session\"}"
        ),
        3.0
    );
    assert!(
        value(
            &s,
            "wxlogin_wechat_calls_total{api=\"stable_token\",errcode=\"0\"}"
        ) >= 3.0
    );
    for (trigger, count) in [("request", 1.0), ("invalidated", 1.0), ("proactive", 1.0)] {
        let series = format!(
            "wxlogin_wechat_access_token_refreshes_total{{appid=\"{DEMO_APPID}\",trigger=\"{trigger}\",result=\"ok\"}}"
        );
        assert_eq!(value(&s, &series), count, "{series}");
    }
    assert_eq!(value(&s, "wxlogin_refresh_rotations_total"), 1.0);
    assert_eq!(value(&s, "wxlogin_refresh_reuse_detected_total"), 1.0);
    assert_eq!(
        value(
            &s,
            "wxlogin_rate_limited_total{endpoint=\"login\",scope=\"per_ip\"}"
        ),
        1.0
    );
    // alice's second session; the first was revoked by the reuse.
    assert_eq!(value(&s, "wxlogin_sessions_active"), 1.0);

    // The gauge is counted at most once a minute, whatever the scrapes.
    app.wx.clock.advance(Duration::from_secs(61));
    app.wx.mock().clear_faults();
    app.login_from_elsewhere("bob").await;
    assert_eq!(
        value(&samples(&scrape(&app).await), "wxlogin_sessions_active"),
        2.0
    );
    app.login_from_elsewhere("carol").await;
    assert_eq!(
        value(&samples(&scrape(&app).await), "wxlogin_sessions_active"),
        2.0,
        "not counted again within the minute"
    );
    app.wx.clock.advance(Duration::from_secs(61));
    assert_eq!(
        value(&samples(&scrape(&app).await), "wxlogin_sessions_active"),
        3.0
    );
}

impl TestApp {
    /// A login from another client address, past the per-IP limit of the test.
    async fn login_from_elsewhere(&self, user: &str) {
        let status = self
            .http
            .post(self.url("/v1/auth/wechat/login"))
            .json(&json!({ "code": self.code_for(user), "appid": DEMO_APPID }))
            .header("x-forwarded-for", "192.0.2.7")
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 429, "{status}");
    }
}

#[tokio::test]
async fn database_failures_are_counted_by_operation_and_kind() {
    let app = spawn(|_| {}).await;
    let login = app.login("dave").await;
    // The table goes away under the server (another client of the same SQLite file).
    let url = app.state.settings.database_url();
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    db.execute("DROP TABLE refresh_tokens").await.unwrap();
    db.close().await.unwrap();
    let response = app
        .post_json(
            "/v1/auth/refresh",
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_error(response, 500, "internal").await;
    let s = samples(&scrape(&app).await);
    assert_eq!(
        value(
            &s,
            "wxlogin_database_errors_total{operation=\"find_refresh_token\",kind=\"other\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "wxlogin_http_requests_total{route=\"/v1/auth/refresh\",method=\"POST\",status=\"500\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn label_sets_stay_bounded_whatever_the_requests() {
    let app = spawn(|s| {
        s.wechat.retry.max_attempts = 1;
    })
    .await;
    let mut sent = Vec::new();
    let mut requests = Vec::new();
    for i in 0..1_000 {
        let junk = format!("j{:016x}", rand::random::<u64>());
        sent.push(junk.clone());
        let request = match i % 5 {
            0 => app.http.get(app.url(&format!("/{junk}"))),
            1 => app.http.get(app.url(&format!("/avatars/{junk}.png"))),
            2 => app.http.get(app.url(&format!("/internal/v1/users/{junk}"))),
            3 => app.http.post(app.url("/v1/auth/wechat/login")).json(
                &json!({ "code": junk, "appid": format!("wx{:016x}", rand::random::<u64>()) }),
            ),
            _ => app
                .http
                .post(app.url("/v1/auth/wechat/login"))
                .header("x-forwarded-for", format!("198.51.100.{}", i % 250))
                .json(&json!({ "code": junk, "appid": DEMO_APPID })),
        };
        requests.push(request.header("x-request-id", junk.as_str()));
    }
    let statuses: Vec<u16> = futures::future::join_all(
        requests
            .into_iter()
            .map(|r| async { r.send().await.map_or(0, |r| r.status().as_u16()) }),
    )
    .await;
    assert!(statuses.iter().all(|s| *s >= 200), "every request answered");

    let text = scrape(&app).await;
    let s = samples(&text);
    assert!(s.len() < 400, "{} series: {:#?}", s.len(), sorted(&s));
    let labelled: BTreeSet<&str> = s
        .keys()
        .filter_map(|k| k.split_once('{').map(|(name, _)| name))
        .collect();
    assert!(labelled.contains("wxlogin_http_requests_total"));
    for junk in &sent {
        assert!(
            !text.contains(junk.as_str()),
            "a request's value became a label"
        );
    }
    assert!(!text.contains("198.51.100."), "no client address");
    assert_eq!(
        value(
            &s,
            "wxlogin_logins_total{appid=\"unknown\",outcome=\"unknown_app\"}"
        ),
        200.0
    );
    let routes: BTreeSet<&str> = s
        .keys()
        .filter(|k| k.starts_with("wxlogin_http_requests_total{"))
        .filter_map(|k| k.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        routes
            .iter()
            .all(|r| *r == "unmatched" || r.starts_with('/')),
        "{routes:?}"
    );
    assert!(routes.len() <= 4, "{routes:?}");
    // The retention purge's tables are a fixed set, there from the start.
    let tables: BTreeSet<&str> = s
        .keys()
        .filter(|k| k.starts_with("wxlogin_retention_purged_total{"))
        .filter_map(|k| k.split("table=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        tables,
        BTreeSet::from([
            "audit_events",
            "login_tickets",
            "refresh_tokens",
            "sessions"
        ])
    );
    assert_eq!(value(&s, "wxlogin_audit_write_failures_total"), 0.0);
}

/// Metric names a PromQL expression or a dashboard uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("wxlogin_") {
        let start = i + found;
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
            .map_or(text.len(), |n| start + n);
        let before = start.checked_sub(1).map(|b| bytes[b]);
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test]
async fn every_metric_of_the_alerts_and_the_dashboard_is_in_a_real_scrape() {
    let app = spawn(|_| {}).await;
    app.login("erin").await;
    let text = scrape(&app).await;
    let mut exposed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            exposed.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    exposed.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let alerts = std::fs::read_to_string(ALERTS).unwrap();
    let dashboard = std::fs::read_to_string(DASHBOARD).unwrap();
    for (file, content) in [("alert rules", &alerts), ("dashboard", &dashboard)] {
        let used = metric_names(content);
        assert!(used.len() >= 6, "{file} uses {used:?}");
        let unknown: Vec<_> = used.difference(&exposed).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the server does not have: {unknown:?}"
        );
    }
    // Every family is on the dashboard.
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let on_dashboard: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|base| families.contains(*base)))
                .map_or(n.clone(), str::to_owned)
        })
        .collect();
    let missing: Vec<_> = families.difference(&on_dashboard).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");

    // The dashboard asks for its data source, and every panel uses it.
    let board: Value = serde_json::from_str(&dashboard).unwrap();
    let variables = board["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let panels = board["panels"].as_array().unwrap();
    let with_targets: Vec<&Value> = panels
        .iter()
        .filter(|p| p.get("targets").is_some())
        .collect();
    assert!(with_targets.len() >= 10);
    for panel in with_targets {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Ok(output) = Command::new("promtool")
        .args(["check", "rules", ALERTS])
        .output()
    else {
        skip_outside_ci(
            "promtool check rules",
            "promtool is not installed (Debian: prometheus)",
        );
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}
