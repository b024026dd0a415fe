//! Local rounds and cohort steps: determinism, the fixed-shape invariant, the objective
//! going down, blobs.

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
fn rounds_are_deterministic() {
    let m = model(200);
    let config = ModelConfig {
        shape: m.shape(),
        ..ModelConfig::default()
    };
    let h = history(&m, &[1, 5, 9, 40], &config);
    let trainer = Trainer::new(config.clone()).unwrap();
    let a = trainer.local_round(&m, &h).unwrap();
    let b = Trainer::new(config).unwrap().local_round(&m, &h).unwrap();
    assert_eq!(a.delta, b.delta);
    assert_eq!(a.user.vector(), b.user.vector());
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
    let a = trainer.local_round(&m, &small).unwrap();
    let b = trainer.local_round(&m, &large).unwrap();
    let layout = UpdateLayout::of(m.layout());
    assert_eq!(a.delta.len(), layout.len());
    assert_eq!(b.delta.len(), layout.len());
    // Turning it into a parameter change is the server's path.
    let step = cohort_step(&m, a.delta.as_slice(), 1.0, &config).unwrap();
    let mut global = m.clone();
    global.apply_delta(&step, 1.0).unwrap();
    assert_ne!(global.params(), m.params());
}

#[test]
fn cohort_steps_lower_the_cohorts_objective() {
    let m = model(200);
    let config = ModelConfig {
        shape: m.shape(),
        ..ModelConfig::default()
    };
    let trainer = Trainer::new(config.clone()).unwrap();
    let histories: Vec<MemberHistory> = (0..12)
        .map(|k| {
            let items: Vec<usize> = (0..8).map(|j| (k * 7 + j * 13) % 60).collect();
            history(&m, &items, &config)
        })
        .collect();
    let layout = UpdateLayout::of(m.layout());
    let objective = |model: &GlobalModel| -> (f64, Vec<f32>) {
        let mut mean = vec![0.0f32; layout.len()];
        let mut total = 0.0;
        for h in &histories {
            let round = trainer.local_round(model, h).unwrap();
            total += round.loss;
            for (t, x) in mean.iter_mut().zip(round.delta.as_slice()) {
                *t += x / histories.len() as f32;
            }
        }
        // The item ridge is part of the objective the step minimises.
        let ridge: f64 = (0..model.catalog().len() as u32)
            .map(|r| {
                let v = model.item_vector(r).unwrap();
                let b = model.item_bias()[r as usize];
                v.iter()
                    .chain([&b])
                    .map(|x| f64::from(*x).powi(2))
                    .sum::<f64>()
            })
            .sum();
        (total + f64::from(config.l2_item) * ridge, mean)
    };
    let mut global = m.clone();
    let (mut before, mut mean) = objective(&global);
    for round in 0..4 {
        let step = cohort_step(&global, &mean, histories.len() as f64, &config).unwrap();
        global.apply_delta(&step, 1.0).unwrap();
        let (after, next) = objective(&global);
        assert!(after < before, "round {round}: {before} -> {after}");
        (before, mean) = (after, next);
    }
    assert_eq!(histories[0].len(), 8);
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
        unobserved_weight: f32::NAN,
        ..ModelConfig::default()
    };
    assert!(matches!(
        Trainer::new(bad),
        Err(Error::Config {
            field: "unobserved_weight",
            ..
        })
    ));
    let partial: WeightConfig = serde_json::from_str(r#"{"purchase": 2.0}"#).unwrap();
    assert_eq!(partial.purchase, 2.0);
    assert!(serde_json::from_str::<WeightConfig>(r#"{"purchse": 2.0}"#).is_err());
}
