//! An offline simulator of the WeChat server APIs a mini program login server uses: it plays
//! `api.weixin.qq.com` (code2Session, access tokens, checkSessionKey, resetUserSessionKey,
//! getPhoneNumber) with WeChat's paths, parameters, JSON shapes, errcodes, lifetimes and limits, and
//! adds a `/__mock/` control API that plays the WeChat client side (login codes, phone codes,
//! encrypted open data, faults, stats).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = wechat_mock::spawn(wechat_mock::MockConfig::demo()).await?;
//! let login = server.mock().mint_login_code("wx0000000000000001", "alice").expect("demo app");
//! // GET {base_url}/sns/jscode2session?appid=...&secret=...&js_code={login.code}&grant_type=authorization_code
//! # let _ = (server.base_url(), login);
//! # Ok(()) }
//! ```
//!
//! Choices where WeChat's behaviour is undocumented:
//! - an expired code (older than 5 minutes) answers 40029, a reused one 40163, a reused phone code
//!   40029; a login code sent to getuserphonenumber answers 40029;
//! - the per-user limit of jscode2session counts successful exchanges in a sliding 60 s window, plus
//!   the attempt being made; refused attempts neither count nor use up the code;
//! - a stable token replaced by a force refresh stays valid until its own expiry, and the one before
//!   it dies at once (so two force refreshes 30 s apart kill a leaked token);
//! - a classic token replaced by a newer one answers 40001 once its 5 minutes of overlap are over,
//!   and 42001 after its own expiry;
//! - an expired code that was used answers 40029 (expiry is checked first);
//! - getuserphonenumber: a phone code of another app answers 40013, an `openid` that is not the
//!   code's user 40003, a missing or non-string `code` 47001; the watermark timestamp is the time of
//!   the exchange;
//! - checksession and resetusersessionkey check, after the access token: `sig_method` (87008), then
//!   `openid` (40003 when missing or never seen for the token's app), then the signature (87009),
//!   compared strictly as lowercase hex;
//! - the force-refresh allowance of stable_token (20 per UTC day) answers 45009 when used up;
//! - jscode2session answers `text/plain`, the other endpoints `application/json; encoding=utf-8`.

pub mod clock;
mod codes;
mod config;
mod control;
mod crypto;
mod error;
mod faults;
mod ids;
mod mock;
mod reply;
mod server;
mod state;
mod tokens;
mod wechat_api;

pub use config::{
    AppConfig, ConfigError, DEFAULT_SESSION_KEY_MIN_ROTATION, DEFAULT_TOKEN_DAILY_QUOTA,
    DEMO_APPID, DEMO_OPEN_PLATFORM, DEMO_SECRET, MockConfig,
};
pub use crypto::{login_state_signature, raw_data_signature};
pub use error::MockError;
pub use faults::{Api, Fault, FaultTarget};
pub use ids::{openid_for, unionid_for};
pub use mock::{Encrypted, Mock};
pub use server::{MockHandle, router, serve, spawn, spawn_on};
pub use state::LoginCode;
