//! Simulated time shared by the server and every device: real elapsed time (so stage
//! deadlines mean what they say) plus one simulated day per round (so per-day caps and
//! minimum separation between participations hold as they would in the field).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// `start + real time since creation + skipped days`.
#[derive(Debug)]
pub struct SimClock {
    start_ms: i64,
    origin: Instant,
    skipped_ms: AtomicI64,
}

impl SimClock {
    /// A clock reading `start_ms` now.
    pub fn new(start_ms: i64) -> Self {
        SimClock {
            start_ms,
            origin: Instant::now(),
            skipped_ms: AtomicI64::new(0),
        }
    }

    /// Jumps one day ahead (between rounds).
    pub fn next_day(&self) {
        self.skipped_ms.fetch_add(DAY_MS, Ordering::SeqCst);
    }

    fn now(&self) -> i64 {
        let real = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms
            .saturating_add(real)
            .saturating_add(self.skipped_ms.load(Ordering::SeqCst))
    }
}

impl covey_store::Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.now()
    }
}

impl covey_server::clock::Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.now()
    }
}
