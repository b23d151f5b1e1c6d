//! wxlogin: a self-hosted login server for WeChat Mini Programs.

pub mod clock;
pub mod crypto;
pub mod domain;
