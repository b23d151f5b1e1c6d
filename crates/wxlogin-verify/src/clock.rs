//! Time comes from the shared clock crate: token expiry and the JWKS cache ask a [`Clock`], so tests
//! (and services with a clock of their own) can supply another.

pub use wxlogin_clock::{Clock, ManualClock, SharedClock, SystemClock};
