//! Consent enforcement and audit costs, each against its physical floor in the same run.
//!
//! - `consent/grant_check` vs `consent/floor_atomic_load_clock`: checking an outstanding grant
//!   (epoch load + validity against the clock) vs one atomic load plus one read of the same
//!   kind of clock, the least any revocable, expiring check can do.
//! - `consent/gated_history_1000` vs `consent/ungated_export_1000`: reading 1 000 events under
//!   a grant (check, read, audit-log append, re-check) vs the store's ungated export of the
//!   same events (same decryption and one audit append as a member access, no gate).
//! - `audit/verify_10000` vs `audit/floor_leaf_hashes_10000`: verifying a 10 000-entry log
//!   (decode, leaf and node hashes, signed checkpoint, anchor) vs only SHA-256 leaf hashing of
//!   the same bytes.
//! - `recommend/sdk_warm_10k` and `recommend/sdk_cold_10k` vs `recommend/direct_10k`: top-10
//!   over a 10 000-item catalog (d = 32) for a member with 200 purchases of 100 items,
//!   through `Device::recommend` vs covey-model's `Recommender` on the same model and
//!   history. Warm: the history read under the grant is reused (grant check, history stamp,
//!   user solve, scoring); cold: the cache is dropped first, so each call also mints a grant,
//!   reads and decrypts the history through the gate, logs the read and keeps the local state.
//! - `open/device_100` vs `open/device_10000`: `Device::open` (store and device) over a log
//!   of 100 vs 10 000 entries, each followed by a signed checkpoint; opening resumes from the
//!   store's verified mark, so the two should take the same time. Floors in the same run:
//!   `open/floor_store_only_100` and `_10000` (the store alone) and `open/full_verify_10000`
//!   (a full verification of the large log, which every open used to run).
//! - `receipt/verify` vs `receipt/floor_ed25519_verify`: verifying a consent receipt (parse
//!   checks, canonical bytes, Ed25519, terms hash) vs one raw Ed25519 verification of a
//!   message of the same length.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use covey_model::{
    Catalog, GlobalModel, ItemInfo, MemberHistory, ModelConfig, ModelShape, RecommendFilter,
    Recommender,
};
use covey_sdk::audit::{MemoryAnchorStore, StoredEntry, verify_log};
use covey_sdk::audit_entry::{AuditEntry, AuditEvent};
use covey_sdk::consent::{ConsentEventKind, Controller, PurposeId};
use covey_sdk::grant::{FederatedTraining, PurposeGrant};
use covey_sdk::merkle;
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::receipt::verify_receipt;
use covey_sdk::record::RecordContext;
use covey_sdk::signing::{DeviceKey, SignedCheckpoint};
use covey_sdk::{Device, DeviceConfig};
use covey_store::{
    Channel, Clock, EventKind, FakeClock, HistoryQuery, InMemoryKeyStore, LoyaltyEvent, Store,
    StoreConfig,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::signature::{ED25519, UnparsedPublicKey};

const NOW: i64 = 1_780_000_000_000;

fn device(dir: &std::path::Path) -> Device {
    Opener::new(dir).open()
}

/// A device's files and the keys and anchor kept outside them, to open it again and again.
struct Opener {
    dir: std::path::PathBuf,
    keystore: Arc<InMemoryKeyStore>,
    anchor: Arc<MemoryAnchorStore>,
    clock: Arc<FakeClock>,
    /// A fresh RNG seed per open (nonces are never replayed under one key).
    opens: AtomicU64,
}

impl Opener {
    fn new(dir: &std::path::Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            keystore: Arc::new(InMemoryKeyStore::new(Box::new(ChaCha20Rng::seed_from_u64(
                1,
            )))),
            anchor: Arc::new(MemoryAnchorStore::default()),
            clock: Arc::new(FakeClock::new(NOW)),
            opens: AtomicU64::new(2),
        }
    }

    fn rng(&self) -> Box<ChaCha20Rng> {
        let seed = self.opens.fetch_add(1, Ordering::Relaxed);
        Box::new(ChaCha20Rng::seed_from_u64(seed << 8))
    }

    fn store(&self) -> Store {
        Store::open_with_rng(
            &self.dir,
            self.keystore.clone(),
            StoreConfig::default(),
            self.clock.clone(),
            self.rng(),
        )
        .expect("store")
    }

    fn open(&self) -> Device {
        Device::open(
            Arc::new(self.store()),
            device_config(),
            self.anchor.clone(),
            self.clock.clone(),
            self.rng(),
        )
        .expect("device")
    }
}

fn device_config() -> DeviceConfig {
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new("bench", 1, "en", "Bench notice.", &registry).expect("notice");
    DeviceConfig {
        context: RecordContext {
            subject_ref: "bench".into(),
            controller: Controller {
                name: "Bench".into(),
                contact: "bench@example.invalid".into(),
            },
            jurisdiction: "EU-GDPR".into(),
            withdrawal_method: "app://privacy".into(),
        },
        registry,
        notice,
        renewal_window_days: 30,
    }
}

/// A device whose audit log holds `entries` entries, each followed by a signed checkpoint
/// (as every audited SDK call does), closed.
fn device_with_log(dir: &std::path::Path, entries: u64) -> Opener {
    let opener = Opener::new(dir);
    let d = opener.open();
    let mut rows = d.verify_audit_log().expect("verify").log_size;
    while rows < entries {
        d.store()
            .append_audit(AuditEvent::Read {
                purpose: PurposeId::personalization(),
                component: "recommender".into(),
                categories: vec![],
                rows,
            })
            .expect("append");
        d.checkpoint().expect("checkpoint");
        rows += 1;
    }
    drop(d);
    // One open after the log grew, as an app's next launch: it verifies the new entries and
    // leaves the mark at the head.
    drop(opener.open());
    opener
}

/// `Device::open` (store and device) over logs of 100 and 10 000 entries: flat when the open
/// resumes from the verified mark. Floors in the same run: opening the store alone, and what
/// a full verification of the 10 000-entry log costs on top (what every open used to do).
fn bench_open(c: &mut Criterion) {
    // On a RAM file system when there is one: building the large log is 20 000 durable
    // commits, and the open itself should not be timed against a shared disk.
    let scratch = || {
        tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("tempdir")
    };
    let (small_dir, large_dir) = (scratch(), scratch());
    let small = device_with_log(small_dir.path(), 100);
    let large = device_with_log(large_dir.path(), 10_000);
    let mut g = c.benchmark_group("open");
    for (name, opener) in [("device_100", &small), ("device_10000", &large)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let d = opener.open();
                assert!(d.open_verification().is_intact());
            })
        });
    }
    g.bench_function("floor_store_only_100", |b| b.iter(|| small.store()));
    g.bench_function("floor_store_only_10000", |b| b.iter(|| large.store()));
    let d = large.open();
    g.bench_function("full_verify_10000", |b| {
        b.iter(|| assert!(d.verify_audit_log().expect("verify").is_intact()))
    });
    g.finish();
}

fn bench_grants(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(dir.path());
    d.decide(
        &PurposeId::federated_training(),
        ConsentEventKind::Given,
        1,
        "bench",
    )
    .expect("give");
    let events: Vec<LoyaltyEvent> = (0..1000)
        .map(|i| purchase(format!("sku-{i}"), NOW - 1000 - i))
        .collect();
    d.store().record_events(&events).expect("events");
    let grant = d.grant::<FederatedTraining>("trainer").expect("grant");
    let mut g = c.benchmark_group("consent");
    g.bench_function("grant_check", |b| {
        b.iter(|| black_box(grant.check()).is_ok())
    });
    let epoch = AtomicU64::new(7);
    // The same kind of clock the device was opened with, so only the check logic differs.
    let clock = FakeClock::new(NOW);
    g.bench_function("floor_atomic_load_clock", |b| {
        b.iter(|| black_box(epoch.load(Ordering::Acquire) == 7 && clock.now_ms() > 0))
    });
    g.bench_function("gated_history_1000", |b| {
        b.iter(|| {
            d.store()
                .history(&grant, &HistoryQuery::default())
                .expect("read")
                .len()
        })
    });
    g.bench_function("ungated_export_1000", |b| {
        b.iter(|| d.store().export().expect("export").events.len())
    });
    g.finish();
}

fn purchase(item_id: String, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id,
        category: "grocery".into(),
        quantity: 1,
        amount_minor: 250,
        currency: "EUR".into(),
        store_id: "s1".into(),
        channel: Channel::InStore,
        time_ms,
    }
}

fn bench_recommend(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let items = (0..10_000)
        .map(|i| ItemInfo::new(format!("sku-{i}")))
        .collect();
    let shape = ModelShape {
        dim: 32,
        feature_rows: 64,
    };
    let model =
        GlobalModel::init(Catalog::new(items).expect("catalog"), shape, &mut rng).expect("model");
    let events: Vec<LoyaltyEvent> = (0..200)
        .map(|i| {
            purchase(
                format!("sku-{}", (i * 37) % 100 * 97),
                NOW - 3_600_000 * (i + 1),
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(dir.path());
    d.decide(
        &PurposeId::personalization(),
        ConsentEventKind::Given,
        1,
        "bench",
    )
    .expect("give");
    d.store().record_events(&events).expect("events");
    d.install_model(&model).expect("install");
    let config = ModelConfig::default();
    let history = MemberHistory::from_events(model.catalog(), &events, &config.weights, NOW);
    let filter = RecommendFilter::default();
    let direct = Recommender::new(&model, Some(&history), &config)
        .expect("recommender")
        .recommend(10, &filter);
    let through_sdk = d.recommend(10, &filter).expect("recommend");
    assert_eq!(through_sdk, direct, "same data, same ranking");

    let mut g = c.benchmark_group("recommend");
    g.bench_function("direct_10k", |b| {
        b.iter(|| {
            Recommender::new(&model, Some(&history), &config)
                .expect("recommender")
                .recommend(10, black_box(&filter))
        })
    });
    g.bench_function("sdk_warm_10k", |b| {
        b.iter(|| d.recommend(10, black_box(&filter)).expect("recommend"))
    });
    g.bench_function("sdk_cold_10k", |b| {
        b.iter(|| {
            // Dropping the cached history forces a gated read, as after a new event.
            d.set_model_config(config.clone()).expect("config");
            d.recommend(10, black_box(&filter)).expect("recommend")
        })
    });
    g.finish();
}

fn bench_audit(c: &mut Criterion) {
    let key = DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(4)).expect("key");
    let entries: Vec<StoredEntry> = (0..10_000u64)
        .map(|i| StoredEntry {
            position: i,
            bytes: Some(
                AuditEntry {
                    index: i,
                    time_ms: NOW + i as i64,
                    event: AuditEvent::Read {
                        purpose: PurposeId::personalization(),
                        component: "recommender".into(),
                        categories: vec![],
                        rows: i,
                    },
                }
                .encode(),
            ),
        })
        .collect();
    let leaves: Vec<merkle::Hash> = entries
        .iter()
        .map(|e| merkle::leaf_hash(e.bytes.as_deref().unwrap_or_default()))
        .collect();
    let cp = SignedCheckpoint::sign(&key, 10_000, &merkle::root(&leaves), NOW).encode();
    let checkpoints = vec![cp.clone()];
    let mut g = c.benchmark_group("audit");
    g.bench_function("verify_10000", |b| {
        b.iter(|| {
            let r = verify_log(&entries, &checkpoints, Some(&cp), key.public_key());
            assert!(r.is_intact());
        })
    });
    g.bench_function("floor_leaf_hashes_10000", |b| {
        b.iter(|| {
            entries
                .iter()
                .map(|e| merkle::leaf_hash(e.bytes.as_deref().unwrap_or_default())[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    g.finish();

    let dir = tempfile::tempdir().expect("tempdir");
    let d = device(dir.path());
    let receipt = d
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Given,
            1,
            "bench",
        )
        .expect("give")
        .receipt;
    let public = d.public_key().to_vec();
    let message = vec![
        0x5au8;
        serde_json::to_vec(&receipt.body)
            .map(|v| v.len())
            .unwrap_or(0)
    ];
    let raw_sig = key.sign(&message);
    let raw_pub = key.public_key().to_vec();
    let mut g = c.benchmark_group("receipt");
    g.bench_function("verify", |b| {
        b.iter(|| verify_receipt(black_box(&receipt), Some(&public)).expect("valid"))
    });
    g.bench_function("floor_ed25519_verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ED25519, &raw_pub)
                .verify(black_box(&message), &raw_sig)
                .expect("valid")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20);
    targets = bench_grants, bench_audit, bench_recommend, bench_open
}
criterion_main!(benches);
