//! The one place that reads the wall clock.
//!
//! Everything that expires (login codes, access tokens, refresh tokens, watermarks) asks a [`Clock`]
//! for the time, so tests move a [`ManualClock`] instead of sleeping. The server (`wxlogin`), the
//! simulator (`wechat-mock`) and the token verifier (`wxlogin-verify`) all take their time from this
//! crate, so one test clock can drive all three.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Whole seconds since the Unix epoch (negative before 1970).
    fn unix_secs(&self) -> i64 {
        unix_secs(self.now())
    }

    /// Milliseconds since the Unix epoch (negative before 1970).
    fn unix_millis(&self) -> i64 {
        unix_millis(self.now())
    }
}

/// A clock shared between components.
pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A shared [`SystemClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that starts at the given Unix time in seconds.
    pub fn at_unix(secs: i64) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(secs.saturating_mul(1000))),
        }
    }

    /// A clock that starts at the current wall-clock time (so tokens it stamps look plausible to
    /// outside verifiers) and then only moves when told to.
    pub fn starting_now() -> Self {
        let now = SystemClock.unix_millis();
        Self {
            millis: Arc::new(AtomicI64::new(now)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to a Unix time in seconds.
    pub fn set_unix(&self, secs: i64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// This clock as a [`SharedClock`]; the returned clock moves with `self`.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_millis", &self.millis.load(Ordering::SeqCst))
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let ms = self.millis.load(Ordering::SeqCst);
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
    }
}

/// Measures how long something took, on the monotonic clock (for logs and metrics, never for
/// expiry, which follows a [`Clock`]).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)] // the one sanctioned monotonic-clock read
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Whole seconds since the Unix epoch.
pub fn unix_secs(t: SystemTime) -> i64 {
    unix_millis(t).div_euclid(1000)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let shared = clock.shared();
        assert_eq!(shared.unix_secs(), 1_700_000_000);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(shared.unix_secs(), 1_700_000_001);
        assert_eq!(shared.unix_millis(), 1_700_000_001_500);
        clock.set_unix(10);
        assert_eq!(shared.unix_secs(), 10);
    }

    #[test]
    fn negative_times_round_down() {
        let clock = ManualClock::at_unix(0);
        clock.set_unix(-2);
        assert_eq!(clock.unix_secs(), -2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
    }
}
