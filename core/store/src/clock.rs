//! Time as the store sees it: every read of "now" goes through a [`Clock`], so retention,
//! validation and key metadata are testable with a fake clock.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch (UTC).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // A clock before 1970 reads as the epoch; validation then rejects every event as
        // "in the future" rather than the store panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct FakeClock {
    now_ms: AtomicI64,
}

impl FakeClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        FakeClock {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `delta_ms` (saturating).
    pub fn advance_ms(&self, delta_ms: i64) {
        let now = self.now_ms.load(Ordering::SeqCst);
        self.now_ms
            .store(now.saturating_add(delta_ms), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
