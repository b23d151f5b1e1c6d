//! The flows behind the API, as async functions over [`AppState`](crate::state::AppState). They
//! speak in domain types and [`ApiError`](crate::error::ApiError), never in HTTP.
//!
//! - `login`: log in with a `wx.login` code, finish a refused registration with a phone code;
//! - `exchange`: a code reaches WeChat once (through the shared claims and their single flight);
//! - `accounts` and `unionid`: the user behind a proven WeChat identity, registration policies,
//!   linking;
//! - `sessions`: token pairs, refresh rotation and reuse detection, logout, `authenticate`;
//! - `session_key`: the stored WeChat session_key (open data, signatures, renewal, check);
//! - `phone`, `profile`, `users`, `import`: the rest of an account; `avatar_files`: the import
//!   of avatar files from before avatars were kept in the database;
//! - `rate_limits`: `[rate_limits]` applied, 429 `rate_limited` with `Retry-After`;
//! - `wechat_tokens`: WeChat access tokens shared by the instances, and their background renewal;
//! - `signing_keys`: signing-key rotation and retirement announced to every instance, and the
//!   reload on hearing it;
//! - `resealing`: every stored sealed value sealed again under the current sealing key, and
//!   counted by the key that sealed it;
//! - `monitoring`: what `GET /metrics` shows, with the live-session gauge counted at most once a
//!   minute;
//! - `admin`: the operator's actions (`wxlogin users`, `sessions`, `wechat access-token`), one
//!   function each;
//! - `audit`: the audit log's typed events, recorded where they happen, never failing a request;
//! - `retention`: the background purge of what no request needs any more, one instance at a time.

mod accounts;
pub mod admin;
pub mod admins;
pub mod audit;
pub(crate) mod avatar_files;
mod exchange;
pub mod import;
pub(crate) mod login;
pub(crate) mod monitoring;
pub(crate) mod phone;
pub(crate) mod profile;
pub(crate) mod rate_limits;
pub(crate) mod resealing;
pub mod retention;
pub(crate) mod session_key;
pub(crate) mod sessions;
pub mod signing_keys;
mod unionid;
pub(crate) mod users;
pub(crate) mod wechat_tokens;
