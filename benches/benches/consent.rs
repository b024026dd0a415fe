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
    let clock = Arc::new(FakeClock::new(NOW));
    let keystore = Arc::new(InMemoryKeyStore::new(Box::new(ChaCha20Rng::seed_from_u64(
        1,
    ))));
    let store = Store::open_with_rng(
        dir,
        keystore,
        StoreConfig::default(),
        clock.clone(),
        Box::new(ChaCha20Rng::seed_from_u64(2)),
    )
    .expect("store");
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new("bench", 1, "en", "Bench notice.", &registry).expect("notice");
    let config = DeviceConfig {
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
    };
    Device::open(
        Arc::new(store),
        config,
        Arc::new(MemoryAnchorStore::default()),
        clock,
        Box::new(ChaCha20Rng::seed_from_u64(3)),
    )
    .expect("device")
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
    targets = bench_grants, bench_audit, bench_recommend
}
criterion_main!(benches);
