//! The arithmetic of the generic cell rate algorithm ([`Limiter`](super::Limiter)), in whole
//! microseconds since the Unix epoch. `redis.rs` runs the same steps in Lua; the conformance suite
//! (`tests/api/shared.rs`) holds the two to the same answers.
//!
//! Hand-written rather than taken from `governor`: that crate keeps its state in the process and
//! reads its own clock, while these steps must run inside Redis as well, on the deployment's
//! [`Clock`](crate::clock::Clock).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Verdict;
use crate::config::Rate;

/// `now` in microseconds since the epoch (0 before it: no clock of a running server is there).
/// Far below 2^53, so Lua's doubles hold these values exactly.
pub(super) fn micros(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The period of `rate` and the emission interval (period / count, rounded down so that `count`
/// requests fit at once), in microseconds.
pub(super) fn interval_and_period(rate: Rate) -> (i64, i64) {
    let period = i64::try_from(rate.period().as_micros()).unwrap_or(i64::MAX);
    (period / i64::from(rate.count().max(1)), period)
}

/// One request against a key whose TAT is `tat` (none: a fresh key): `Ok` with the new TAT when
/// it fits, else `Err` with the microseconds until it would.
pub(super) fn step(tat: Option<i64>, now: i64, rate: Rate) -> Result<i64, i64> {
    let (interval, period) = interval_and_period(rate);
    let next = tat.unwrap_or(now).max(now).saturating_add(interval);
    let early = next - period - now;
    if early > 0 { Err(early) } else { Ok(next) }
}

/// The verdict for a wait of `wait_micros` on the limit at `limit`.
pub(super) fn refused(limit: usize, wait_micros: i64) -> Verdict {
    Verdict::Refused {
        limit,
        retry_after: Duration::from_micros(wait_micros.max(1).unsigned_abs()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_n_then_one_each_interval() {
        let rate: Rate = "3/s".parse().unwrap();
        let now = 1_700_000_000_000_000;
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(step(tat, now, rate).unwrap());
        }
        // 333,333 µs per request: the fourth waits for one interval to drain.
        assert_eq!(step(tat, now, rate), Err(333_333 * 3 + 333_333 - 1_000_000));
        let later = now + 333_333;
        let tat = step(tat, later, rate).unwrap();
        assert!(step(Some(tat), later, rate).is_err());
        // A key untouched for a whole period is as good as new.
        assert_eq!(
            step(Some(tat), later + 1_000_000, rate),
            Ok(later + 1_000_000 + 333_333)
        );
    }
}
