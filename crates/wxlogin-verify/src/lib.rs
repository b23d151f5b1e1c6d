//! Verifies [wxlogin](https://github.com/wxlogin/wxlogin) access tokens in Rust services, offline:
//! the server's public keys are fetched from its `/.well-known/jwks.json`, cached, and fetched again
//! (at most once every `min_refetch_interval`) when a token names a `kid` not in the cache, which is
//! how key rotation is picked up.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use wxlogin_verify::{Verifier, VerifierConfig, WxUser};
//!
//! async fn me(user: WxUser) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "user_id": user.sub, "appid": user.appid }))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(VerifierConfig::for_server("https://login.example.com"))?;
//! let app: Router = Router::new().route("/me", get(me)).with_state(verifier);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Each token must be signed with ES256 or EdDSA by a key of the JWKS, carry `typ: at+jwt`, the
//! configured `iss` and `aud`, and an `exp` not past (with `leeway`). Offline verification cannot
//! see a logout before `exp`; use wxlogin's `POST /v1/introspect` where that matters.

pub mod clock;
mod error;
mod extract;
mod verifier;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::REQUEST_ID_HEADER;
pub use error::{ErrorBody, Rejection, VerifyError};
pub use extract::{OptionalWxUser, WxUser, bearer_token};
pub use verifier::{BuildError, Claims, Verifier, VerifierConfig, install_crypto_provider};
