//! Time comes from the shared clock crate, so one test clock drives the simulator and the server.

pub use wxlogin_clock::*;
