//! wxlogin: a self-hosted login server for WeChat Mini Programs.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod store;
mod telemetry;
pub mod tokens;
pub mod wechat;
