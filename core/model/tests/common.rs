//! Shared fixtures: a small synthetic population and a centrally trained model on it.
#![allow(dead_code)]

use covey_model::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub fn population(members: usize, items: usize, seed: u64) -> SyntheticPopulation {
    let config = SyntheticConfig {
        members,
        items,
        categories: 10,
        ..SyntheticConfig::default()
    };
    generate_population(&config, &mut ChaCha20Rng::seed_from_u64(seed)).expect("valid config")
}

pub fn eval_config() -> EvalConfig {
    let mut config = EvalConfig {
        epochs: 8,
        ..EvalConfig::default()
    };
    config.model.shape = ModelShape {
        dim: 16,
        feature_rows: 64,
    };
    config
}

/// A model trained centrally on the population (training split).
pub fn trained(pop: &SyntheticPopulation, config: &EvalConfig, seed: u64) -> GlobalModel {
    let dataset = pop.to_dataset(&config.model.weights);
    let split = Split::leave_last_out(&dataset, config);
    train_centralized(
        &dataset,
        &split,
        config,
        &mut ChaCha20Rng::seed_from_u64(seed),
    )
    .expect("trains")
}
