//! wxlogin: a self-hosted login server for WeChat Mini Programs.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod dev;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod http;
pub mod identity;
pub mod import;
pub mod login;
pub mod open_data;
pub mod phone;
pub mod profile;
pub mod sessions;
pub mod signing_keys;
pub mod store;
mod telemetry;
pub mod tokens;
pub mod wechat;
