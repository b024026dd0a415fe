//! Local rounds: determinism, the fixed-shape invariant, loss going down, blobs.

mod common;

use covey_model::*;
use covey_store::{Channel, EventKind, LoyaltyEvent};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn purchase(item: &str, time_ms: i64) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: item.into(),
        category: String::new(),
        quantity: 1,
        amount_minor: 250,
        currency: "EUR".into(),
        store_id: "store-1".into(),
        channel: Channel::InStore,
        time_ms,
    }
}

fn model(items: usize) -> GlobalModel {
    let catalog = Catalog::new(
        (0..items)
            .map(|i| ItemInfo::new(format!("sku-{i}")))
            .collect(),
    )
    .unwrap();
    GlobalModel::init(
        catalog,
        ModelShape {
            dim: 8,
            feature_rows: 32,
        },
        &mut ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap()
}

fn history(model: &GlobalModel, items: &[usize], config: &ModelConfig) -> MemberHistory {
    let events: Vec<LoyaltyEvent> = items
        .iter()
        .map(|i| purchase(&format!("sku-{i}"), SYNTHETIC_START_MS + *i as i64))
        .collect();
    MemberHistory::from_events(
        model.catalog(),
        &events,
        &config.weights,
        SYNTHETIC_START_MS + 1_000_000,
    )
}

#[test]
fn rounds_are_deterministic_for_a_seed() {
    let m = model(200);
    let config = ModelConfig {
        shape: m.shape(),
        ..ModelConfig::default()
    };
    let h = history(&m, &[1, 5, 9, 40], &config);
    let trainer = Trainer::new(config).unwrap();
    let a = trainer
        .local_round(&m, &h, &mut ChaCha20Rng::seed_from_u64(11))
        .unwrap();
    let b = trainer
        .local_round(&m, &h, &mut ChaCha20Rng::seed_from_u64(11))
        .unwrap();
    let c = trainer
        .local_round(&m, &h, &mut ChaCha20Rng::seed_from_u64(12))
        .unwrap();
    assert_eq!(a.delta, b.delta);
    assert_ne!(a.delta, c.delta, "another seed samples other negatives");
}

#[test]
fn delta_covers_the_whole_table_whatever_the_history() {
    let m = model(300);
    let config = ModelConfig {
        shape: m.shape(),
        ..ModelConfig::default()
    };
    let trainer = Trainer::new(config.clone()).unwrap();
    let small = history(&m, &[3, 4, 5], &config);
    let large = history(&m, &(100..160).collect::<Vec<_>>(), &config);
    let a = trainer
        .local_round(&m, &small, &mut ChaCha20Rng::seed_from_u64(1))
        .unwrap();
    let b = trainer
        .local_round(&m, &large, &mut ChaCha20Rng::seed_from_u64(1))
        .unwrap();
    assert_eq!(a.delta.len(), m.layout().len());
    assert_eq!(b.delta.len(), m.layout().len());
    // Applying it to the global model is the server's path.
    let mut global = m.clone();
    global.apply_delta(a.delta.as_slice(), 0.5).unwrap();
    assert_ne!(global.params(), m.params());
}

#[test]
fn local_training_lowers_the_members_loss() {
    let m = model(200);
    let config = ModelConfig {
        shape: m.shape(),
        local_epochs: 10,
        ..ModelConfig::default()
    };
    let h = history(&m, &[2, 3, 50, 51, 52, 120], &config);
    let round = Trainer::new(config)
        .unwrap()
        .local_round(&m, &h, &mut ChaCha20Rng::seed_from_u64(2))
        .unwrap();
    assert!(
        round.loss_last < round.loss_first,
        "{} -> {}",
        round.loss_first,
        round.loss_last
    );
    assert_eq!(round.positives, 6);
}

#[test]
fn blobs_round_trip_through_bytes() {
    let pop = common::population(60, 80, 3);
    let config = common::eval_config();
    let m = common::trained(&pop, &config, 4);
    let back = GlobalModel::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back.params(), m.params());
    assert_eq!(back.catalog(), m.catalog());
    let state = LocalState {
        model_version: 2,
        user_vector: vec![0.25; 16],
        solved_at_ms: 5,
        rounds: 1,
    };
    assert_eq!(LocalState::from_bytes(&state.to_bytes()).unwrap(), state);
    assert!(matches!(
        GlobalModel::from_bytes(b"CVYL\x01"),
        Err(Error::Blob { .. })
    ));
}

#[test]
fn configuration_is_validated_and_serde() {
    let config = ModelConfig::default();
    let json = serde_json::to_string(&config).unwrap();
    let back: ModelConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, config);
    let bad = ModelConfig {
        learning_rate: f32::NAN,
        ..ModelConfig::default()
    };
    assert!(matches!(
        Trainer::new(bad),
        Err(Error::Config {
            field: "learning_rate",
            ..
        })
    ));
    let partial: WeightConfig = serde_json::from_str(r#"{"purchase": 2.0}"#).unwrap();
    assert_eq!(partial.purchase, 2.0);
    assert!(serde_json::from_str::<WeightConfig>(r#"{"purchse": 2.0}"#).is_err());
}
