//! Shared fixtures for the SDK's integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use covey_sdk::consent::{Controller, Mechanism, SignalSource};
use covey_sdk::grant::Clock;
use covey_sdk::record::RecordContext;

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub fn context() -> RecordContext {
    RecordContext {
        subject_ref: "subj-5f1c0d".into(),
        controller: Controller {
            name: "Example Grocers Ltd".into(),
            contact: "privacy@example.test".into(),
        },
        jurisdiction: "EU-GDPR".into(),
        withdrawal_method: "app://privacy-center".into(),
    }
}

pub fn member_tap() -> Mechanism {
    Mechanism {
        ui_surface: "test".into(),
        source: SignalSource::Member,
    }
}
