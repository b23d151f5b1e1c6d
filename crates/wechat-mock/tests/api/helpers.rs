use std::time::Duration;

use serde_json::{Value, json};
use wechat_mock::clock::ManualClock;
use wechat_mock::{DEMO_APPID, DEMO_SECRET, Mock, MockConfig, MockHandle};

pub const APPID: &str = DEMO_APPID;
pub const SECRET: &str = DEMO_SECRET;
/// 2023-11-15T01:00:00Z: far from a UTC midnight, so daily quotas do not roll over by accident.
pub const T0: i64 = 1_700_010_000;

pub struct TestMock {
    pub server: MockHandle,
    pub clock: ManualClock,
    pub http: reqwest::Client,
}

impl TestMock {
    pub async fn start() -> Self {
        Self::with_config(MockConfig::demo()).await
    }

    pub async fn with_config(config: MockConfig) -> Self {
        let clock = ManualClock::at_unix(T0);
        let server = wechat_mock::spawn(config.with_clock(clock.shared()))
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            server,
            clock,
            http,
        }
    }

    pub fn mock(&self) -> &Mock {
        self.server.mock()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.base_url(), path)
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, query: &[(&str, &str)], body: &str) -> Value {
        let response = self
            .http
            .post(self.url(path))
            .query(query)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn code2session(&self, code: &str) -> Value {
        self.code2session_for(APPID, SECRET, code).await
    }

    pub async fn code2session_for(&self, appid: &str, secret: &str, code: &str) -> Value {
        self.get(
            "/sns/jscode2session",
            &[
                ("appid", appid),
                ("secret", secret),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ],
        )
        .await
    }

    pub fn login(&self, user: &str) -> wechat_mock::LoginCode {
        self.mock().mint_login_code(APPID, user).unwrap()
    }

    pub async fn classic_token(&self) -> String {
        let body = self
            .get(
                "/cgi-bin/token",
                &[
                    ("grant_type", "client_credential"),
                    ("appid", APPID),
                    ("secret", SECRET),
                ],
            )
            .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn stable_token(&self, force_refresh: bool) -> Value {
        let body = json!({
            "grant_type": "client_credential",
            "appid": APPID,
            "secret": SECRET,
            "force_refresh": force_refresh,
        });
        self.post("/cgi-bin/stable_token", &[], &body.to_string())
            .await
    }

    pub async fn checksession(&self, token: &str, openid: &str, signature: &str) -> Value {
        self.get(
            "/wxa/checksession",
            &[
                ("access_token", token),
                ("openid", openid),
                ("signature", signature),
                ("sig_method", "hmac_sha256"),
            ],
        )
        .await
    }

    /// checksession with the user's current key, for asking whether a token still works.
    pub async fn token_errcode(&self, token: &str) -> i64 {
        let openid = wechat_mock::openid_for(APPID, "probe");
        let key = self.mock().session_key(APPID, "probe").unwrap();
        let signature = wechat_mock::login_state_signature(&key, b"");
        errcode(&self.checksession(token, &openid, &signature).await)
    }
}

/// The errcode of a body, 0 when absent (WeChat omits it on some successes).
pub fn errcode(body: &Value) -> i64 {
    body.get("errcode").map_or(0, |code| code.as_i64().unwrap())
}

/// Asserts a WeChat error body: the errcode, the documented errmsg and a well-formed rid.
pub fn assert_wx_error(body: &Value, code: i64, errmsg: &str) {
    assert_eq!(errcode(body), code, "{body}");
    let message = body["errmsg"].as_str().unwrap();
    let (text, rid) = message.split_once(", rid: ").unwrap();
    assert_eq!(text, errmsg, "{body}");
    let groups: Vec<&str> = rid.split('-').collect();
    assert_eq!(groups.len(), 3, "{rid}");
    for group in groups {
        assert_eq!(group.len(), 8, "{rid}");
        assert!(
            group.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{rid}"
        );
    }
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
}

/// Asserts only the errcode of an error body.
pub fn assert_errcode(body: &Value, code: i64) {
    assert_eq!(errcode(body), code, "{body}");
    if code != 0 {
        assert!(
            body["errmsg"].as_str().unwrap().contains(", rid: "),
            "{body}"
        );
    }
}
