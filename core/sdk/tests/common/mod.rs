//! Shared fixtures for the SDK's integration tests: a real store in a temporary directory,
//! a fake clock, an in-memory key store and anchor, seeded randomness.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use covey_sdk::audit::MemoryAnchorStore;
use covey_sdk::consent::{ConsentEventKind, Controller, Mechanism, PurposeId, SignalSource};
use covey_sdk::grant::{Grant, Purpose};
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::RecordContext;
use covey_sdk::{Decision, Device, DeviceConfig};
use covey_store::{
    Channel, EventKind, FakeClock, InMemoryKeyStore, LoyaltyEvent, Store, StoreConfig, StoreRng,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub use covey_test_support::tempdir;

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

pub fn rng(seed: u64) -> StoreRng {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

pub fn config(registry: PurposeRegistry, version: u32) -> DeviceConfig {
    let text = format!("Example Grocers privacy notice, version {version}.");
    let notice = Notice::new("loyalty-privacy", version, "en", &text, &registry).expect("notice");
    DeviceConfig {
        context: context(),
        registry,
        notice,
        renewal_window_days: 30,
    }
}

/// A device over a real store in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<FakeClock>,
    pub keystore: Arc<InMemoryKeyStore>,
    pub anchor: Arc<MemoryAnchorStore>,
    pub store: Arc<Store>,
    device: Option<Device>,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempdir();
        let clock = Arc::new(FakeClock::new(T0));
        let keystore = Arc::new(InMemoryKeyStore::new(rng(1)));
        let anchor = Arc::new(MemoryAnchorStore::default());
        let store = open_store(dir.path(), &keystore, &clock);
        let device = Device::open(
            store.clone(),
            config(PurposeRegistry::with_builtins(), 1),
            anchor.clone(),
            clock.clone(),
            rng(3),
        )
        .expect("device");
        Self {
            dir,
            clock,
            keystore,
            anchor,
            store,
            device: Some(device),
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.device.as_ref().expect("device is open")
    }

    /// The member's decision about `purpose` under the notice in force, on the "test" surface.
    pub fn decide(&self, purpose: &PurposeId, kind: ConsentEventKind) -> Decision {
        let v = self.device().notice().version;
        self.device()
            .decide(purpose, kind, v, "test")
            .expect("decision")
    }

    /// Gives consent for built-in purpose `P` and mints a grant for `component`.
    pub fn consented_grant<P: Purpose>(&self, component: &str) -> Grant<P> {
        self.decide(&PurposeId::new(P::ID).expect("id"), ConsentEventKind::Given);
        self.device().grant::<P>(component).expect("grant")
    }

    /// Reopens the device over the same store with another configuration (an app update).
    pub fn reopen_device(&mut self, config: DeviceConfig) {
        self.device = Some(
            Device::open(
                self.store.clone(),
                config,
                self.anchor.clone(),
                self.clock.clone(),
                rng(4),
            )
            .expect("device"),
        );
    }

    /// Closes the device and the store (after which the files may be edited).
    pub fn close(&mut self) {
        self.device = None;
        let placeholder = tempdir();
        let other = open_store(placeholder.path(), &self.keystore, &self.clock);
        drop(std::mem::replace(&mut self.store, other));
    }

    /// Opens the store again from disk, and the device over it.
    pub fn reopen(&mut self, config: DeviceConfig) -> covey_sdk::Result<()> {
        self.device = None;
        self.store = open_store(self.dir.path(), &self.keystore, &self.clock);
        self.device = Some(Device::open(
            self.store.clone(),
            config,
            self.anchor.clone(),
            self.clock.clone(),
            rng(5),
        )?);
        Ok(())
    }
}

pub fn open_store(
    dir: &Path,
    keystore: &Arc<InMemoryKeyStore>,
    clock: &Arc<FakeClock>,
) -> Arc<Store> {
    Arc::new(
        Store::open_with_rng(
            dir,
            keystore.clone(),
            StoreConfig::default(),
            clock.clone(),
            rng(2),
        )
        .expect("store"),
    )
}

pub fn purchase(item: &str, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: item.into(),
        category: "grocery".into(),
        quantity: 1,
        amount_minor: 499,
        currency: "EUR".into(),
        store_id: "store-7".into(),
        channel: Channel::InStore,
        time_ms,
    }
}

/// Every byte of every file in `dir` (database, WAL, shared memory).
pub fn dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            out.extend(std::fs::read(&path).expect("read"));
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
