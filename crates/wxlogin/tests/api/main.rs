//! The one integration-test binary: everything through public surfaces, with the simulator over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed setup step should fail the test

mod helpers;

mod admin_cli;
mod admins_cli;
mod audit;
mod authorization;
mod caddy;
mod cli;
mod connections;
mod deploy;
mod discovery;
mod faults;
mod flood;
mod forward;
mod gateway;
mod instances;
mod internal;
mod key_lifecycle;
mod keyring;
mod linking;
mod login;
mod metrics;
mod nginx;
mod open_data;
mod open_data_api;
mod openapi;
mod phone;
mod production;
mod profile;
mod rate_limits;
mod refresh_chain;
mod registration;
mod retention;
mod scopes;
mod sealing_key;
mod secrets;
mod service;
mod sessions;
mod shared;
mod shared_tokens;
mod startup;
mod store;
mod tls_front;
mod token_checks;
mod wechat_client;
