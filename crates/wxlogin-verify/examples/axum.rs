// crates/wxlogin-verify/examples/axum.rs
//! A service whose routes need a wxlogin user.
//! `WXLOGIN_ISSUER=https://login.example.com cargo run -p wxlogin-verify --example axum`

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use wxlogin_verify::{OptionalWxUser, Verifier, VerifierConfig, WxUser};

#[derive(Clone)]
struct AppState {
    verifier: Verifier,
    // ...and the service's own database pool, clients, settings.
}

// The extractors find the verifier in any state that can hand one out.
impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

// 401 `invalid_token` (or 503 `unavailable`) before the handler runs when the token is not good.
async fn me(user: WxUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user_id": user.sub, "session_id": user.sid, "appid": user.appid }))
}

// No Authorization header: `None`. A bad token is still refused.
async fn hello(OptionalWxUser(user): OptionalWxUser) -> String {
    match user {
        Some(user) => format!("hello {}", user.sub),
        None => "hello stranger".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("WXLOGIN_ISSUER")?;
    // The JWKS at {issuer}/.well-known/jwks.json, audience `wxlogin`, 30 s leeway, keys cached
    // for 5 minutes, an unknown kid refetched at most every 10 seconds.
    let mut config = VerifierConfig::for_server(&issuer);
    if let Ok(audience) = std::env::var("WXLOGIN_AUDIENCE") {
        config.audience = audience;
    }
    let state = AppState {
        verifier: Verifier::new(config)?,
    };
    let app = Router::new()
        .route("/me", get(me))
        .route("/hello", get(hello))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
