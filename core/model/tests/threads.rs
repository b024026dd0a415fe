//! The training step stays on the trainer's bounded pool (alone in its own test binary so
//! no other test's threads are counted).

use covey_model::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("thread count")
}

#[test]
fn training_uses_one_pool_thread_and_never_the_global_pool() {
    let before = threads();
    // A history whose tensors would exceed candle's own-thread-pool threshold if the round
    // did not differentiate it in chunks.
    let catalog = Catalog::new(
        (0..3000)
            .map(|i| ItemInfo::new(format!("sku-{i}")))
            .collect(),
    )
    .unwrap();
    let shape = ModelShape {
        dim: 64,
        feature_rows: 64,
    };
    let model = GlobalModel::init(catalog, shape, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let config = ModelConfig {
        shape,
        ..ModelConfig::default()
    };
    let events: Vec<WeightedEvent> = (0..2500)
        .map(|r| WeightedEvent {
            row: r,
            weight: 1.0,
            time_ms: 0,
            kind: None,
        })
        .collect();
    let history = MemberHistory::from_weighted(&events, &config.weights, 0);
    let trainer = Trainer::new(config).unwrap();
    trainer.local_round(&model, &history).unwrap();
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    assert_eq!(
        threads(),
        before + 1,
        "{names:?}: only the trainer pool thread may be added"
    );
}
