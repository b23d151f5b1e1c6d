//! Time comes from a [`Clock`]. The implementation lives in the simulator crate so that one test
//! clock drives both the server and the simulator; this is the server's only door to it.

pub use wechat_mock::clock::{
    Clock, ManualClock, SharedClock, SystemClock, system, unix_millis, unix_secs,
};
