//! Shared fixtures of the store's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::sync::Arc;

use covey_store::*;
use rand_core::SeedableRng;

/// 2026-05-28T...Z, the fixtures' "now".
pub const NOW: i64 = 1_780_000_000_000;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

pub fn rng(seed: u64) -> StoreRng {
    Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

/// A store directory with its key store and clock; stores are opened and dropped by tests.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub keystore: Arc<InMemoryKeyStore>,
    pub clock: Arc<FakeClock>,
    /// A fresh RNG seed per open: replaying one seed for the same key would repeat nonces.
    pub opens: std::sync::atomic::AtomicU64,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
            keystore: Arc::new(InMemoryKeyStore::new(rng(1))),
            clock: Arc::new(FakeClock::new(NOW)),
            opens: std::sync::atomic::AtomicU64::new(100),
        }
    }

    pub fn open_with(&self, config: StoreConfig) -> Result<Store> {
        Store::open_with_rng(
            self.dir.path(),
            self.keystore.clone(),
            config,
            self.clock.clone(),
            rng(self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst)),
        )
    }

    pub fn open(&self) -> Store {
        self.open_with(StoreConfig::default()).expect("open")
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join(DB_FILE_NAME)
    }
}

pub fn purchase(item: &str, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: item.into(),
        category: "grocery".into(),
        quantity: 1,
        amount_minor: 299,
        currency: "EUR".into(),
        store_id: "store-1".into(),
        channel: Channel::InStore,
        time_ms,
    }
}

pub fn view(item: &str, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::OfferView,
        quantity: 0,
        amount_minor: 0,
        currency: String::new(),
        channel: Channel::App,
        ..purchase(item, time_ms)
    }
}

/// Distinctive values that must never appear on disk in the clear.
pub const CANARY: &str = "CANARY-q7Zr4-member";
pub const CANARY_AMOUNT: i64 = 987_654_321_987;
pub const CANARY_TIME: i64 = NOW - 123_456_789;

/// An event with the canary in every field that can hold it.
pub fn canary_event(n: usize) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: format!("{CANARY}-item-{n}"),
        category: format!("{CANARY}-cat"),
        quantity: 3,
        amount_minor: CANARY_AMOUNT,
        currency: "EUR".into(),
        store_id: format!("{CANARY}-store"),
        channel: Channel::Web,
        time_ms: CANARY_TIME,
    }
}

/// Byte patterns of the canary values (strings, and integers in both byte orders).
pub fn canary_needles() -> Vec<Vec<u8>> {
    vec![
        CANARY.as_bytes().to_vec(),
        CANARY_AMOUNT.to_le_bytes().to_vec(),
        CANARY_AMOUNT.to_be_bytes().to_vec(),
        CANARY_TIME.to_le_bytes().to_vec(),
        CANARY_TIME.to_be_bytes().to_vec(),
    ]
}

/// Fills every kind of record with canary data.
pub fn fill_with_canaries(store: &Store) {
    let events: Vec<_> = (0..50).map(canary_event).collect();
    store.record_events(&events).expect("record");
    store
        .put_catalog(&Catalog {
            version: 3,
            items: vec![CatalogItem {
                item_id: format!("{CANARY}-item-0"),
                category: format!("{CANARY}-cat"),
                name: format!("{CANARY}-name"),
                features: vec![format!("{CANARY}-feature")],
            }],
        })
        .expect("catalog");
    store
        .put_blob("local_state", format!("{CANARY}-model-state").as_bytes())
        .expect("blob");
    store
        .record_participation(&ParticipationRecord {
            population: format!("{CANARY}-population"),
            round_id: 7,
            model_version: 2,
            started_at_ms: CANARY_TIME,
            finished_at_ms: CANARY_TIME + 1000,
            outcome: ParticipationOutcome::Uploaded,
            bytes_uploaded: 4096,
            epsilon_charged: 0.25,
        })
        .expect("participation");
    store
        .put_key_material(
            "receipt-signing",
            &KeyMaterial {
                algorithm: "Ed25519".into(),
                public_key: vec![1; 32],
                secret: zeroize::Zeroizing::new(format!("{CANARY}-secret").into_bytes()),
                created_at_ms: NOW,
            },
        )
        .expect("key material");
}

/// Counts occurrences of `needle` in every file under `dir` (db, -wal, -shm, journals).
pub fn occurrences(dir: &Path, needle: &[u8]) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            n += bytes.windows(needle.len()).filter(|w| *w == needle).count();
        }
    }
    n
}

/// Names of the files in `dir`.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A raw SQLite connection to the store's file, bypassing the store.
pub fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw open")
}
