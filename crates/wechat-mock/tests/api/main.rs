//! The simulator over real HTTP, as the login server's client sees it. Time moves with a
//! `ManualClock`; no test sleeps for an expiry.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod control;
mod conventions;
mod faults;
mod helpers;
mod jscode2session;
mod phone;
mod session_key;
mod tokens;
