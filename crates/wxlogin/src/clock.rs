//! Time comes from a [`Clock`] of the shared clock crate, which the simulator and the token verifier
//! use too, so one test clock drives them all.

pub use wxlogin_clock::{
    Clock, ManualClock, SharedClock, Stopwatch, SystemClock, system, unix_millis,
};
