//! Time, behind a trait so tests can move it (renewal windows, CRL and OCSP freshness) without
//! sleeping. Production code asks a [`Clock`]; only `SystemClock` reads the wall clock.

use std::sync::Mutex;

use time::OffsetDateTime;

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current time, truncated to whole seconds (X.509 times carry no fractions).
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate(OffsetDateTime::now_utc())
    }
}

/// A clock tests set and advance by hand.
#[derive(Debug)]
pub struct FakeClock(Mutex<OffsetDateTime>);

impl FakeClock {
    /// A fake clock starting at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        FakeClock(Mutex::new(truncate(at)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Unix seconds now, for database timestamps.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
