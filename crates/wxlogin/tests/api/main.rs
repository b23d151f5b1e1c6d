//! The one integration-test binary: everything through public surfaces, with the simulator over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed setup step should fail the test

mod helpers;

mod cli;
mod connections;
mod discovery;
mod faults;
mod forward;
mod internal;
mod login;
mod nginx;
mod open_data;
mod open_data_api;
mod phone;
mod profile;
mod registration;
mod secrets;
mod service;
mod sessions;
mod startup;
mod store;
mod wechat_client;
