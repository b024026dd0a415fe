//! Simulated time shared by the server and every device: the day after the members' last
//! event, running at real speed from there (so stage deadlines mean what they say and no
//! event lies in the devices' future).

use std::time::Instant;

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// `start + real time since creation`.
#[derive(Debug)]
pub struct SimClock {
    start_ms: i64,
    origin: Instant,
}

impl SimClock {
    /// A clock reading `start_ms` now.
    pub fn new(start_ms: i64) -> Self {
        SimClock {
            start_ms,
            origin: Instant::now(),
        }
    }

    fn now(&self) -> i64 {
        let real = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(real)
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
