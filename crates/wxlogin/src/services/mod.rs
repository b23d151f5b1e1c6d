//! The flows behind the API, as async functions over [`AppState`](crate::state::AppState). They
//! speak in domain types and [`ApiError`](crate::error::ApiError), never in HTTP.
//!
//! - `login`: log in with a `wx.login` code, finish a refused registration with a phone code;
//! - `exchange`: a code reaches WeChat once (through the shared claims and their single flight);
//! - `accounts` and `unionid`: the user behind a proven WeChat identity, registration policies,
//!   linking;
//! - `sessions`: token pairs, refresh rotation and reuse detection, logout, `authenticate`;
//! - `session_key`: the stored WeChat session_key (open data, signatures, renewal, check);
//! - `phone`, `profile`, `users`, `import`: the rest of an account;
//! - `rate_limits`: `[rate_limits]` applied, 429 `rate_limited` with `Retry-After`;
//! - `wechat_tokens`: the background renewal of WeChat access tokens.

mod accounts;
mod exchange;
pub mod import;
pub(crate) mod login;
pub(crate) mod phone;
pub(crate) mod profile;
pub(crate) mod rate_limits;
pub(crate) mod session_key;
pub(crate) mod sessions;
mod unionid;
pub(crate) mod users;
pub(crate) mod wechat_tokens;
