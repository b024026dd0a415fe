//! Property tests of the plan chooser: every plan it returns is valid, carries exactly the
//! requested noise at its minimum survivors, and its secure sums stay inside the modulus
//! except as often as its stated overflow bound allows (checked on simulated sums with
//! worst-case aligned updates); plans whose bit width cannot hold the sum are refused.

use covey_protocol::dp::noise::uniform;
use covey_protocol::dp::{
    Decoder, DpPlan, Encoder, Error, NoiseKind, PlanRequest, TrustModel, choose_plan,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn kind() -> impl Strategy<Value = NoiseKind> {
    prop_oneof![
        Just(NoiseKind::Skellam),
        Just(NoiseKind::DiscreteGaussian),
        Just(NoiseKind::Central),
    ]
}

/// The exact integer sums (no wrap) of the members' encodings under `plan`, and the sums
/// mod 2^bits that secure aggregation would return.
fn simulate(plan: &DpPlan, updates: &[Vec<f32>], seed: u64) -> (Vec<i64>, Vec<u32>) {
    let mut wide = plan.clone();
    wide.bits = 32;
    // Same scale, noise and randomness: the wide plan's values are the exact integers.
    let encoder = Encoder::new(&wide).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut exact = vec![0i64; plan.vector_len()];
    for u in updates {
        let e = encoder.encode(u, &mut rng).unwrap();
        for (s, &v) in exact.iter_mut().zip(&e.values) {
            *s += i64::from(v as i32);
        }
    }
    let mask = (1u64 << plan.bits) - 1;
    let wrapped = exact.iter().map(|&s| (s as u64 & mask) as u32).collect();
    (exact, wrapped)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chosen_plans_are_valid_and_carry_the_requested_noise(
        cohort in 1u32..5_000,
        dimension in 1u32..200_000,
        clip in 1e-3f64..10.0,
        z in 0.3f64..5.0,
        dropout in 0.0f64..0.5,
        noise in kind(),
        bits in prop::option::of(8u32..=32),
        sigmas in 2.0f64..8.0,
        seed in any::<[u8; 32]>(),
    ) {
        let mut request = PlanRequest::new(cohort, dimension, clip, z, seed);
        request.max_dropout = dropout;
        request.noise = noise;
        request.bits = bits;
        request.overflow_sigmas = sigmas;
        match choose_plan(&request) {
            Ok(plan) => {
                plan.validate().unwrap();
                prop_assert!(plan.bits <= 32 && bits.is_none_or(|b| b == plan.bits));
                prop_assert_eq!(plan.min_survivors, request.min_survivors());
                let achieved = plan.noise_multiplier(plan.min_survivors);
                prop_assert!((achieved - z).abs() < 1e-9 * z, "{} vs {}", achieved, z);
                prop_assert_eq!(plan.trust_model() == TrustModel::Distributed, noise != NoiseKind::Central);
                let bound = plan.overflow_bound();
                prop_assert!((0.0..=1.0).contains(&bound.per_coordinate));
                // Without a fixed width the chooser meets the sensitivity inflation target.
                if bits.is_none() {
                    let c = plan.scale * plan.clip;
                    prop_assert!(plan.l2_bound() <= c * (1.0 + request.max_inflation) * (1.0 + 1e-9));
                }
                // Deterministic: the same request gives the same plan.
                prop_assert_eq!(choose_plan(&request).unwrap(), plan);
            }
            Err(Error::SumDoesNotFit { needed_bits, max_bits, .. }) => {
                prop_assert!(needed_bits > f64::from(max_bits));
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn simulated_sums_overflow_no_more_than_the_stated_bound(
        cohort in 2u32..24,
        dimension in 1u32..400,
        noise in kind(),
        sigmas in prop_oneof![Just(2.5f64), Just(3.0), Just(4.0), Just(6.0)],
        aligned in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut request = PlanRequest::new(cohort, dimension, 1.0, 1.0, [seed as u8; 32]);
        request.noise = noise;
        request.overflow_sigmas = sigmas;
        // The automatic width is the narrowest with k sigmas of headroom, so at k = 2.5 or 3
        // wrapping is frequent enough to observe.
        let plan = choose_plan(&request).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let direction: Vec<f64> = (0..dimension).map(|_| uniform(&mut rng) - 0.5).collect();
        let updates: Vec<Vec<f32>> = (0..cohort)
            .map(|_| {
                // Aligned: every member sends the same full-norm update (the worst case the
                // bound covers); otherwise independent directions.
                let d: Vec<f64> = if aligned {
                    direction.clone()
                } else {
                    (0..dimension).map(|_| uniform(&mut rng) - 0.5).collect()
                };
                let n = d.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                d.iter().map(|x| (x / n * 0.999) as f32).collect()
            })
            .collect();
        let (exact, wrapped) = simulate(&plan, &updates, seed);
        let half = 1i64 << (plan.bits - 1);
        let padded = plan.padded_dimension();
        let overflows = exact[..padded].iter().filter(|&&s| s < -half || s >= half).count() as f64;
        let bound = plan.overflow_bound();
        // The count of overflowing coordinates against Binomial(padded, p): mean + 5 sd + 1.
        let mean = bound.per_coordinate * padded as f64;
        prop_assert!(
            overflows <= mean + 5.0 * mean.sqrt() + 1.0,
            "{} overflows, bound {} per coordinate over {}", overflows, bound.per_coordinate, padded
        );
        if bound.per_vector < 1e-6 {
            prop_assert_eq!(overflows, 0.0);
        }
        // When nothing wrapped, the narrow modulus loses nothing: both decodings agree.
        if overflows == 0.0 && exact[padded..].iter().all(|&s| s >= -half && s < half) {
            let mut wide = plan.clone();
            wide.bits = 32;
            let exact_u32: Vec<u32> = exact.iter().map(|&s| s as u32).collect();
            let mut r1 = ChaCha20Rng::seed_from_u64(1);
            let mut r2 = ChaCha20Rng::seed_from_u64(1);
            let narrow = decode(&plan, &wrapped, cohort, &mut r1);
            let full = decode(&wide, &exact_u32, cohort, &mut r2);
            prop_assert_eq!(narrow, full);
        }
    }
}

fn decode(plan: &DpPlan, sum: &[u32], survivors: u32, rng: &mut ChaCha20Rng) -> Vec<f32> {
    let decoder = Decoder::new(plan).unwrap();
    match plan.trust_model() {
        TrustModel::Distributed => decoder.decode(sum, plan.bits, survivors).unwrap().mean,
        TrustModel::CentralTrustedServer => {
            decoder
                .decode_central(sum, plan.bits, survivors, rng)
                .unwrap()
                .mean
        }
    }
}

#[test]
fn a_bit_width_that_cannot_hold_the_sum_is_refused() {
    // 10 000 members with unit noise need far more than 8 bits.
    let mut request = PlanRequest::new(10_000, 1_000, 1.0, 1.0, [1; 32]);
    request.bits = Some(8);
    match choose_plan(&request) {
        Err(Error::SumDoesNotFit {
            members,
            needed_bits,
            max_bits,
            ..
        }) => {
            assert_eq!((members, max_bits), (10_000, 8));
            assert!(needed_bits > 8.0);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A million members, a million coordinates, 1e-6 inflation: beyond 32 bits.
    let mut request = PlanRequest::new(1_000_000, 1_000_000, 1.0, 1.0, [1; 32]);
    request.max_inflation = 1e-6;
    assert!(matches!(
        choose_plan(&request),
        Err(Error::SumDoesNotFit { max_bits: 32, .. })
    ));
}

#[test]
fn default_plan_for_a_loyalty_round_is_compact() {
    // 1000 members, 30% dropout, a 100k-coordinate item table, z = 1: what a deployment runs.
    let mut request = PlanRequest::new(1_000, 100_000, 1.0, 1.0, [2; 32]);
    request.max_dropout = 0.3;
    let plan = choose_plan(&request).unwrap();
    assert!(plan.bits <= 20, "{} bits", plan.bits);
    assert!(
        plan.overflow_bound().per_vector < 0.01,
        "{:?}",
        plan.overflow_bound()
    );
    assert_eq!(plan.min_survivors, 700);
}
