//! The device's compute in one round: what `Device::participate` runs between its requests,
//! with the physical floor measured in the same run.
//!
//! - `device_round/{train,encode,secagg_client,total}/p{params}`: local training on one
//!   thread (user solve + the candle gradient of the member's items, curvature and outer
//!   products, dense upload over the whole catalog), DP encoding with the round's plan (clip, rotate, round,
//!   Skellam share), the SecAgg+ client's stages 1–3 with 16 neighbours (keys, encrypted
//!   shares, masking), and all three in a row — for a model of ~100k parameters (3000
//!   items, d = 32, 256 feature rows).
//! - `device_round/chacha20_floor/p{params}`: the ChaCha20 keystream for the (k + 1) · m
//!   mask words a SecAgg+ client must expand: no masked upload of this size can be made
//!   faster, whatever the training and encoding cost.
//! - After criterion, a ratio table (medians of 5 interleaved runs): total / floor and each
//!   step's share.
//!
//! `cargo test` runs each function once on a toy model (300 items, d = 8).

use std::hint::black_box;
use std::time::Duration;

use covey_benches::{ClientCase, keystream_floor, median_seconds};
use covey_model::{
    Catalog, GlobalModel, ItemInfo, MemberHistory, ModelConfig, ModelShape, Trainer, UpdateLayout,
    WeightedEvent,
};
use covey_protocol::dp::{self, DpPlan, Encoder, NoiseKind, PlanRequest};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// SecAgg+ neighbours of the member (the graph degree of a cohort of a few hundred).
const NEIGHBOURS: usize = 16;

/// Everything one member's round computes on.
struct Case {
    model: GlobalModel,
    history: MemberHistory,
    trainer: Trainer,
    encoder: Encoder,
    plan: DpPlan,
    secagg: ClientCase,
}

fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

impl Case {
    fn new() -> Self {
        let (items, dim, feature_rows) = if bench_mode() {
            (3000, 32, 256)
        } else {
            (300, 8, 16)
        };
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let catalog = Catalog::new(
            (0..items)
                .map(|i| ItemInfo {
                    category: format!("cat-{}", i % 40),
                    price_band: Some((i % 8) as u8),
                    ..ItemInfo::new(format!("sku-{i}"))
                })
                .collect(),
        )
        .expect("catalog");
        let shape = ModelShape { dim, feature_rows };
        let model = GlobalModel::init(catalog, shape, &mut rng).expect("model");
        let config = ModelConfig {
            shape,
            threads: 1,
            ..ModelConfig::default()
        };
        // A member with 30 distinct items over 60 purchases.
        let events: Vec<WeightedEvent> = (0..60)
            .map(|i| WeightedEvent {
                row: rng.next_u32() % 30 * (items as u32 / 30),
                weight: 1.0,
                time_ms: i * 60_000,
                kind: None,
            })
            .collect();
        let history = MemberHistory::from_weighted(&events, &config.weights, 3_600_000);
        let parameters = UpdateLayout::of(model.layout()).len() as u32;
        let mut request = PlanRequest::new(200, parameters, 1.0, 1.0, [9; 32]);
        request.noise = NoiseKind::Skellam;
        request.max_dropout = 0.3;
        request.bits = Some(20);
        let plan = dp::choose_plan(&request).expect("plan");
        let secagg = ClientCase::new(NEIGHBOURS, plan.vector_len());
        Case {
            model,
            history,
            trainer: Trainer::new(config).expect("trainer"),
            encoder: Encoder::new(&plan).expect("encoder"),
            plan,
            secagg,
        }
    }

    /// Length of the upload (what DP and SecAgg+ process).
    fn parameters(&self) -> usize {
        UpdateLayout::of(self.model.layout()).len()
    }

    fn train(&self) -> Vec<f32> {
        let round = self
            .trainer
            .local_round(&self.model, &self.history)
            .expect("local round");
        round.delta.into_vec()
    }

    fn encode(&self, delta: &[f32], rng: &mut ChaCha20Rng) -> Vec<u32> {
        self.encoder.encode(delta, rng).expect("encode").values
    }

    /// Train, encode, and run the client's stages 1–3 on the encoded input's length.
    fn total(&self, rng: &mut ChaCha20Rng) -> usize {
        let delta = self.train();
        let encoded = self.encode(&delta, rng);
        debug_assert_eq!(encoded.len(), self.plan.vector_len());
        black_box(encoded);
        self.secagg.all_stages().encode().len()
    }

    fn floor(&self) -> u8 {
        keystream_floor((NEIGHBOURS + 1) * self.plan.vector_len())
    }
}

fn bench_round(c: &mut Criterion) {
    let case = Case::new();
    let id = format!("p{}", case.parameters());
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let delta = case.train();
    let mut group = c.benchmark_group("device_round");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function(format!("train/{id}"), |b| b.iter(|| case.train()));
    group.bench_function(format!("encode/{id}"), |b| {
        b.iter(|| case.encode(black_box(&delta), &mut rng))
    });
    group.bench_function(format!("secagg_client/{id}"), |b| {
        b.iter(|| case.secagg.all_stages())
    });
    group.bench_function(format!("total/{id}"), |b| b.iter(|| case.total(&mut rng)));
    group.bench_function(format!("chacha20_floor/{id}"), |b| b.iter(|| case.floor()));
    group.finish();
}

/// Ours and the floor interleaved, so both see the same machine load.
fn ratio_table(_: &mut Criterion) {
    let case = Case::new();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let delta = case.train();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let train = median_seconds(1, || {
            black_box(case.train());
        });
        let encode = median_seconds(1, || {
            black_box(case.encode(&delta, &mut rng));
        });
        let secagg = median_seconds(1, || {
            black_box(case.secagg.all_stages());
        });
        let total = median_seconds(1, || {
            black_box(case.total(&mut rng));
        });
        let floor = median_seconds(1, || {
            black_box(case.floor());
        });
        runs.push([train, encode, secagg, total, floor]);
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [train, encode, secagg, total, floor] = [0, 1, 2, 3, 4].map(median);
    println!(
        "\nDevice round, {} parameters, {} neighbours (medians of 5 interleaved runs):",
        case.parameters(),
        NEIGHBOURS
    );
    println!(
        "| train s | encode s | SecAgg+ client s | total s | ChaCha20 floor s | total/floor |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {train:.4} | {encode:.4} | {secagg:.4} | {total:.4} | {floor:.5} | {:.1} |",
        total / floor
    );
}

criterion_group!(benches, bench_round, ratio_table);
criterion_main!(benches);
