//! wxlogin: a self-hosted login server for WeChat Mini Programs.
//!
//! The modules, from the top down (`docs/architecture.md`): `cli` parses commands; `app` is the
//! composition root; `http` is the API; `services` are the flows behind it; below them `shared`
//! (state shared between instances), `tokens`, `store`, `wechat`, `crypto`, `config`, `domain` and
//! `metrics`.

pub(crate) mod admin;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub(crate) mod error;
pub mod http;
pub mod metrics;
pub mod services;
pub mod shared;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod wechat;
