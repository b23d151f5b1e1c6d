//! A real wxlogin (the library, in-process, on port 0) with the WeChat simulator and one manual
//! clock, plus what the tests need around it: logins, forged tokens, key rotation, a JWKS proxy that
//! counts requests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use wechat_mock::{MockConfig, MockHandle};
use wxlogin::clock::{Clock as _, ManualClock};
use wxlogin::domain::{AppId, AppSecret};
use wxlogin::tokens::{KeyPair, Keyring, SigningAlg};
use wxlogin_verify::{Verifier, VerifierConfig};

pub const APPID: &str = "wx0000000000000001";
const SECRET: &str = "0123456789abcdef0123456789abcdef";

pub struct LiveWxlogin {
    /// `http://127.0.0.1:port`
    pub address: String,
    pub issuer: String,
    pub audience: String,
    /// Drives the server and the simulator; starts at the real time.
    pub clock: ManualClock,
    pub state: wxlogin::state::AppState,
    wechat: MockHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LiveWxlogin {
    pub async fn spawn() -> Self {
        Self::spawn_with(SigningAlg::Es256).await
    }

    pub async fn spawn_with(alg: SigningAlg) -> Self {
        wxlogin_verify::install_crypto_provider();
        let clock = ManualClock::starting_now();
        let wechat = wechat_mock::spawn(MockConfig::demo().with_clock(clock.shared()))
            .await
            .expect("the simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let mut settings = wxlogin::config::Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.server.data_dir = dir.path().to_owned();
        settings.database.url = Some(format!(
            "sqlite://{}",
            dir.path().join("wxlogin.db").display()
        ));
        let sealing_key = wxlogin::crypto::SealingKey::generate_base64();
        settings.security.sealing_key =
            Some(wxlogin::crypto::SealingKey::parse(&sealing_key).unwrap());
        settings.wechat.base_url = wechat.base_url();
        settings.wechat.timeout_ms = 1_000;
        settings.wechat.retry.base_delay_ms = 1;
        settings.wechat.retry.max_delay_ms = 5;
        settings.tokens.algorithm = alg;
        // Tests run in parallel: each would otherwise bind the default metrics address.
        settings.metrics.listen = None;
        // The snippets log the same users in many times a minute, all from one address.
        settings.rate_limits = wxlogin::config::RateLimitSettings::off();
        settings.apps = vec![wxlogin::config::AppSettings {
            appid: AppId::parse(APPID).unwrap(),
            secret: AppSecret::parse(SECRET).unwrap(),
            registration: wxlogin::config::Registration::Auto,
        }];
        let app = wxlogin::app::Application::build(settings, clock.shared())
            .await
            .expect("wxlogin builds");
        let address = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let issuer = state.tokens.settings().issuer.clone();
        let audience = state.tokens.settings().audience.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Self {
            address,
            issuer,
            audience,
            clock,
            state,
            wechat,
            http: reqwest::Client::new(),
            _dir: dir,
            shutdown: Some(tx),
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.address)
    }

    /// A verifier of this server's tokens on the same manual clock, fetching from `jwks_url`.
    pub fn verifier(&self, jwks_url: &str) -> Verifier {
        self.verifier_with(VerifierConfig::new(jwks_url, &self.issuer, &self.audience))
    }

    pub fn verifier_with(&self, config: VerifierConfig) -> Verifier {
        Verifier::new(config)
            .unwrap()
            .with_clock(Arc::new(TestClock(self.clock.clone())))
    }

    /// Logs `user` in through the simulator; returns the login response.
    pub async fn login_response(&self, user: &str) -> serde_json::Value {
        let code = self
            .wechat
            .mock()
            .mint_login_code(APPID, user)
            .unwrap()
            .code;
        let response = self
            .http
            .post(format!("{}/v1/auth/wechat/login", self.address))
            .json(&serde_json::json!({ "code": code, "appid": APPID }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {user}");
        response.json().await.unwrap()
    }

    /// Logs `user` in; returns the access token.
    pub async fn login(&self, user: &str) -> String {
        self.login_response(user).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A token logged in `secs_ago` seconds ago (by the server's clock), then the clock is put back.
    pub async fn login_in_the_past(&self, user: &str, secs_ago: i64) -> String {
        let now = self.clock.unix_secs();
        self.clock.set_unix(now - secs_ago);
        let token = self.login(user).await;
        self.clock.set_unix(now);
        token
    }

    pub fn current_kid(&self) -> String {
        self.state.tokens.keyring().current().kid().to_owned()
    }

    /// A new signing key signs from now on; the old one stays published. Returns the new kid.
    pub fn rotate_key(&self) -> String {
        let keyring = self.state.tokens.keyring();
        let old = keyring.current();
        let old = KeyPair::from_pkcs8(old.alg(), old.pkcs8().to_vec()).unwrap();
        let new = KeyPair::generate(old.alg()).unwrap();
        let kid = new.kid().to_owned();
        self.state.tokens.replace_keyring(Keyring::new(new, [old]));
        kid
    }

    /// The claims of a token this server would issue now for a made-up session.
    pub fn claims(&self) -> serde_json::Value {
        let now = self.clock.unix_secs();
        serde_json::json!({
            "iss": self.issuer, "aud": self.audience, "sub": "u_forged", "sid": "s_forged",
            "appid": APPID, "iat": now, "exp": now + 900, "jti": "forged",
        })
    }

    /// `claims` signed with this server's current key, under `typ` (ES256 servers only).
    pub fn sign(&self, typ: &str, claims: &serde_json::Value) -> String {
        let keyring = self.state.tokens.keyring();
        let key = keyring.current();
        sign_es256(key.pkcs8(), key.kid(), typ, claims)
    }

    /// `claims` signed with a key the server never published (ES256).
    pub fn sign_with_unknown_key(&self, claims: &serde_json::Value) -> (String, String) {
        let key = KeyPair::generate(SigningAlg::Es256).unwrap();
        (
            sign_es256(key.pkcs8(), key.kid(), "at+jwt", claims),
            key.kid().to_owned(),
        )
    }
}

impl Drop for LiveWxlogin {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn sign_es256(pkcs8: &[u8], kid: &str, typ: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(pkcs8)).unwrap()
}

/// `{"alg":"none"}` over `claims`, with the given kid.
pub fn unsigned(kid: &str, claims: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({ "alg": "none", "typ": "at+jwt", "kid": kid });
    format!(
        "{}.{}.",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    )
}

/// `claims` under HS256, keyed with the JWKS text (the classic algorithm-confusion attack).
pub fn hs256(kid: &str, secret: &[u8], claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// wxlogin's manual clock as the verifier's clock.
#[derive(Debug)]
pub struct TestClock(pub ManualClock);

impl wxlogin_verify::Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}

/// A JWKS endpoint in front of a wxlogin that counts its requests and can be made to fail.
pub struct JwksProxy {
    pub url: String,
    requests: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl JwksProxy {
    pub async fn spawn(upstream: String) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (r, d) = (requests.clone(), down.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (r, d, upstream) = (r.clone(), d.clone(), upstream.clone());
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    // Lets concurrent callers pile up, to show that they share one fetch.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    if d.load(Ordering::SeqCst) {
                        return StatusCode::BAD_GATEWAY.into_response();
                    }
                    let body = reqwest::get(&upstream).await.unwrap().text().await.unwrap();
                    ([("content-type", "application/json")], body).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            requests,
            down,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// A URL on which nothing listens.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    drop(listener);
    url
}
