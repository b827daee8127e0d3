//! The one source of the current time: every part of the crate that needs "now" (expiry and
//! future dates, minting dates, DKIM `x=`/`t=`, the spent store's sweep) reads it through
//! [`Clock`], or [`unix_now`] where the real clock is meant whatever a caller injected.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in Unix seconds. Injectable so that tests are deterministic.
pub trait Clock: Send + Sync {
    /// Now, in seconds since the Unix epoch (UTC).
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        unix_now()
    }
}

/// A clock stopped at a fixed time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// The system clock's time in Unix seconds (0 for a clock set before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
