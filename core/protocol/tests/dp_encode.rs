//! Encoding and decoding as a round would run them: members encode, the vectors are summed
//! with wrapping arithmetic mod 2^bits (what secure aggregation computes), the server
//! decodes. Checks what a user would notice: the decoded mean is within the predicted error
//! of the true mean, clipping bounds influence, the rotation is invertible, rounding is
//! unbiased, adaptive clipping tracks the quantile, bad input gets typed errors.

use covey_protocol::accounting::{Accountant, RdpAccountant, Sampling};
use covey_protocol::dp::noise::uniform;
use covey_protocol::dp::rotation::{Signs, fwht, padded_len};
use covey_protocol::dp::rounding::round_conditionally;
use covey_protocol::dp::{
    AdaptiveClipping, Decoder, DpPlan, Encoder, Error, NoiseKind, NoiseSampling, PLAN_VERSION,
    PlanRequest, TrustModel, choose_plan, l2_norm, rounded_norm_bound,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A random update with L2 norm exactly `norm`.
fn update(dimension: usize, norm: f64, r: &mut ChaCha20Rng) -> Vec<f32> {
    let raw: Vec<f64> = (0..dimension).map(|_| uniform(r) - 0.5).collect();
    let n = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    raw.iter().map(|x| (x * norm / n) as f32).collect()
}

/// Encodes every update and returns the wrapping sum mod 2^bits.
fn secure_sum(encoder: &Encoder, updates: &[Vec<f32>], r: &mut ChaCha20Rng) -> Vec<u32> {
    let plan = encoder.plan();
    let mask = if plan.bits == 32 {
        u32::MAX
    } else {
        (1 << plan.bits) - 1
    };
    let mut sum = vec![0u32; plan.vector_len()];
    for u in updates {
        let encoded = encoder.encode(u, r).unwrap();
        assert_eq!(encoded.values.len(), plan.vector_len());
        assert!(encoded.values.iter().all(|&v| v <= mask));
        for (s, v) in sum.iter_mut().zip(&encoded.values) {
            *s = s.wrapping_add(*v) & mask;
        }
    }
    sum
}

fn true_mean(updates: &[Vec<f32>]) -> Vec<f64> {
    let mut mean = vec![0.0; updates[0].len()];
    for u in updates {
        for (m, &x) in mean.iter_mut().zip(u) {
            *m += f64::from(x) / updates.len() as f64;
        }
    }
    mean
}

/// Runs a round and returns (mean squared error per coordinate, decoded update).
fn round_error(
    plan: &DpPlan,
    updates: &[Vec<f32>],
    seed: u64,
) -> (f64, covey_protocol::dp::DecodedUpdate) {
    let mut r = rng(seed);
    let sum = secure_sum(&Encoder::new(plan).unwrap(), updates, &mut r);
    let decoder = Decoder::new(plan).unwrap();
    let survivors = updates.len() as u32;
    let decoded = match plan.trust_model() {
        TrustModel::Distributed => decoder.decode(&sum, plan.bits, survivors).unwrap(),
        TrustModel::CentralTrustedServer => decoder
            .decode_central(&sum, plan.bits, survivors, &mut r)
            .unwrap(),
    };
    let truth = true_mean(updates);
    let mse = decoded
        .mean
        .iter()
        .zip(&truth)
        .map(|(&d, t)| (f64::from(d) - t).powi(2))
        .sum::<f64>()
        / truth.len() as f64;
    (mse, decoded)
}

#[test]
fn decoded_mean_is_within_the_predicted_error_for_every_mechanism() {
    let (members, dimension) = (40u32, 3_000usize);
    let mut r = rng(1);
    let updates: Vec<Vec<f32>> = (0..members)
        .map(|_| update(dimension, 0.9, &mut r))
        .collect();
    for (i, kind) in [
        NoiseKind::Skellam,
        NoiseKind::DiscreteGaussian,
        NoiseKind::Central,
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = PlanRequest::new(members, dimension as u32, 1.0, 0.8, [3; 32]);
        request.noise = kind;
        let plan = choose_plan(&request).unwrap();
        let (mse, decoded) = round_error(&plan, &updates, 10 + i as u64);
        let noise = decoded.noise_stddev.powi(2);
        let predicted = decoded.error_stddev().powi(2);
        // 3000 coordinates: the empirical MSE is within a few percent of its expectation.
        assert!(
            mse >= 0.9 * noise && mse <= 1.1 * predicted,
            "{kind:?}: mse {mse:e}, noise {noise:e}, predicted {predicted:e}"
        );
        // The noise is what the plan promised: z · (rounded sensitivity) / (scale · n).
        let expected = 0.8 * plan.l2_sensitivity() / (plan.scale * f64::from(members));
        assert!((decoded.noise_stddev - expected).abs() < 1e-9 * expected);
        // And the mean is useful: noise std per coordinate far below the signal scale would
        // not hold at n = 40, but the error is what DP-FedAvg with z = 0.8 gives centrally.
        let central = 0.8 * 1.0 / f64::from(members);
        assert!(decoded.error_stddev() < central * 1.03, "{kind:?}");
    }
}

#[test]
fn noise_is_over_provisioned_for_dropouts() {
    let mut request = PlanRequest::new(100, 500, 1.0, 1.0, [4; 32]);
    request.max_dropout = 0.3;
    let plan = choose_plan(&request).unwrap();
    assert_eq!(plan.min_survivors, 70);
    assert!((plan.noise_multiplier(70) - 1.0).abs() < 1e-9);
    assert!(plan.noise_multiplier(100) > 1.19);
    // A sum of fewer survivors would carry too little noise: refused.
    let mut r = rng(2);
    let updates: Vec<Vec<f32>> = (0..69).map(|_| update(500, 0.5, &mut r)).collect();
    let sum = secure_sum(&Encoder::new(&plan).unwrap(), &updates, &mut r);
    let err = Decoder::new(&plan)
        .unwrap()
        .decode(&sum, plan.bits, 69)
        .unwrap_err();
    assert_eq!(
        err,
        Error::TooFewSurvivors {
            survivors: 69,
            min_survivors: 70
        }
    );
}

#[test]
fn clipping_bounds_one_members_influence() {
    // Central plan: the exact sum is visible before the server's noise, so a single member's
    // contribution can be measured in integer units.
    let mut request = PlanRequest::new(1, 1_000, 0.5, 1.0, [5; 32]);
    request.noise = NoiseKind::Central;
    let plan = choose_plan(&request).unwrap();
    let encoder = Encoder::new(&plan).unwrap();
    let mut r = rng(3);
    let huge = update(1_000, 1e6, &mut r);
    let encoded = encoder.encode(&huge, &mut r).unwrap();
    assert!(encoded.clipped);
    let half = 1i64 << (plan.bits - 1);
    let norm_sq: f64 = encoded
        .values
        .iter()
        .map(|&v| {
            let v = i64::from(v);
            let lifted = if v >= half { v - 2 * half } else { v };
            (lifted * lifted) as f64
        })
        .sum();
    assert!(
        norm_sq.sqrt() <= plan.l2_bound(),
        "{} > {}",
        norm_sq.sqrt(),
        plan.l2_bound()
    );
    // Decoded, the member's update has norm C (up to rounding), not 1e6.
    let decoded = Decoder::new(&plan)
        .unwrap()
        .decode_central(&encoded.values, plan.bits, 1, &mut rng(9))
        .unwrap();
    let norm = l2_norm(&decoded.mean).unwrap();
    let slack = 4.0 * decoded.error_stddev() * 1_000f64.sqrt();
    assert!((norm - 0.5).abs() < slack + 0.01, "decoded norm {norm}");
}

#[test]
fn a_binding_clip_at_a_fine_32_bit_scale_still_rounds_within_the_bound() {
    // Almost no noise lets a 32-bit plan pick a fine scale, so the clipped norm c is up to
    // 10^9 integer units while conditional rounding's slack over c is about half a unit: the
    // f32 rotation's error must not be allowed to lift the scaled norm above c, or every
    // rounding attempt fails (it did, at c = 6.5e8: RoundingFailed after 64 attempts).
    let cases = [
        (1_000, 0.5, 100),
        (100_000, 0.5, 100),
        (102_561, 0.5, 200),
        (102_561, 2000.0, 1000),
    ];
    let (mut encodes, mut attempts) = (0, 0);
    for (case, (dimension, clip, cohort)) in cases.into_iter().enumerate() {
        let mut request = PlanRequest::new(cohort, dimension, clip, 5e-5, [7; 32]);
        request.bits = Some(32);
        request.max_dropout = 0.3;
        let plan = choose_plan(&request).unwrap();
        assert!(
            plan.scale * plan.clip > 1e8,
            "case {case}: not a fine scale"
        );
        let encoder = Encoder::new(&plan).unwrap();
        let mut r = rng(case as u64);
        // Clipped by factors from 1.01 to 64, with a few dominant coordinates.
        for i in 0..12 {
            let norm = clip * (1.01 + 0.3 * f64::from(i)).powi(3);
            let mut big = update(dimension as usize, norm, &mut r);
            big[7] = (norm * 3.0) as f32;
            let encoded = encoder.encode(&big, &mut r).expect("encodes");
            assert!(encoded.clipped);
            encodes += 1;
            attempts += encoded.rounding_attempts;
        }
    }
    // Each attempt is accepted with probability well above 1 − β, in practice at once.
    assert!(
        attempts <= encodes + encodes / 4,
        "{attempts} attempts for {encodes} encodes"
    );
}

#[test]
fn rotation_is_exactly_invertible() {
    let n = padded_len(3_000);
    assert_eq!(n, 4_096);
    let signs = Signs::from_seed(&[6; 32], n);
    let mut r = rng(4);
    let x: Vec<f32> = (0..3_000).map(|_| (uniform(&mut r) - 0.5) as f32).collect();
    let mut y = vec![0.0f32; n];
    signs.apply_f32(&x, &mut y);
    fwht(&mut y);
    // Orthonormal after 1/√n: the norm is preserved.
    let norm_y = y.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt() / (n as f64).sqrt();
    assert!((norm_y - l2_norm(&x).unwrap()).abs() < 1e-5);
    let mut back: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
    fwht(&mut back);
    signs.apply_in_place_f64(&mut back);
    for (i, b) in back.iter().enumerate() {
        let original = x.get(i).map_or(0.0, |&v| f64::from(v));
        assert!((b / n as f64 - original).abs() < 1e-6, "coordinate {i}");
    }
}

#[test]
fn stochastic_rounding_is_unbiased_and_respects_the_bound() {
    let n = 1_024;
    let input: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.37 - 1.1).collect();
    let gain = 3.3;
    let c = input
        .iter()
        .map(|&x| (f64::from(x) * gain).powi(2))
        .sum::<f64>()
        .sqrt();
    let bound = rounded_norm_bound(c, n, covey_protocol::dp::DEFAULT_BETA);
    let bound_sq = (bound * bound).floor() as u128;
    let mut r = rng(5);
    let trials = 2_000;
    let mut sums = vec![0.0f64; n];
    let mut out = vec![0u32; n];
    for _ in 0..trials {
        round_conditionally(&input, gain, bound_sq, &mut out, &mut r).unwrap();
        let norm_sq: f64 = out.iter().map(|&v| f64::from(v as i32).powi(2)).sum();
        assert!(norm_sq <= bound * bound);
        for (s, &v) in sums.iter_mut().zip(&out) {
            *s += f64::from(v as i32);
        }
    }
    // Each coordinate's average is within 5 standard errors (std ≤ 1/2 per draw).
    let se = 0.5 / (trials as f64).sqrt();
    for (i, (s, &x)) in sums.iter().zip(&input).enumerate() {
        let mean = s / trials as f64;
        assert!(
            (mean - f64::from(x) * gain).abs() < 5.0 * se,
            "coordinate {i}"
        );
    }
    // Pooled over all coordinates the bias is below 0.002 integer units.
    let bias: f64 = sums
        .iter()
        .zip(&input)
        .map(|(s, &x)| s / trials as f64 - f64::from(x) * gain)
        .sum::<f64>()
        / n as f64;
    assert!(bias.abs() < 0.002, "bias {bias}");
}

#[test]
fn adaptive_clipping_estimates_the_unclipped_fraction_and_moves_the_clip() {
    let (members, dimension) = (400u32, 64usize);
    let mut request = PlanRequest::new(members, dimension as u32, 1.0, 1.0, [7; 32]);
    request.adaptive = Some(AdaptiveClipping::defaults_for(members));
    let plan = choose_plan(&request).unwrap();
    assert_eq!(plan.vector_len(), 65);
    // The indicator's weight takes its share of the budget: z is still 1 overall.
    assert!((plan.noise_multiplier(members) - 1.0).abs() < 1e-9);
    let mut r = rng(6);
    // 70% of members within the clip, 30% far outside.
    let updates: Vec<Vec<f32>> = (0..members)
        .map(|i| update(dimension, if i % 10 < 7 { 0.5 } else { 3.0 }, &mut r))
        .collect();
    let (_, decoded) = round_error(&plan, &updates, 7);
    let clip = decoded.clip.unwrap();
    // σ_b = members / 20 members, i.e. 0.05 of the fraction.
    assert!(
        (clip.fraction_stddev - 0.05).abs() < 0.01,
        "{}",
        clip.fraction_stddev
    );
    assert!(
        (clip.unclipped_fraction - 0.7).abs() < 4.0 * clip.fraction_stddev,
        "{}",
        clip.unclipped_fraction
    );
    // More than the target half were within the clip: the clip shrinks.
    let expected = (-0.2f64 * (clip.unclipped_fraction.clamp(0.0, 1.0) - 0.5)).exp();
    assert!((clip.next_clip - expected).abs() < 1e-12);
}

#[test]
fn plans_round_trip_through_json_and_feed_the_accountant() {
    let plan = choose_plan(&PlanRequest::new(200, 10_000, 0.1, 1.1, [8; 32])).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"version\":1") && json.contains("\"kind\":\"skellam\""));
    let back: DpPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let mut accountant = RdpAccountant::new();
    accountant
        .compose(&plan.privacy_event(200, Sampling::Poisson { rate: 0.001 }))
        .unwrap();
    let eps = accountant.epsilon(1e-6).unwrap();
    assert!(eps.is_finite() && eps > 0.0 && eps < 1.0, "{eps}");
}

#[test]
fn bad_input_gets_typed_errors() {
    let plan = choose_plan(&PlanRequest::new(10, 100, 1.0, 1.0, [9; 32])).unwrap();
    let encoder = Encoder::new(&plan).unwrap();
    let decoder = Decoder::new(&plan).unwrap();
    let mut r = rng(8);
    assert!(matches!(
        encoder.encode(&[0.0; 99], &mut r),
        Err(Error::Length {
            expected: 100,
            got: 99,
            ..
        })
    ));
    let mut nan = vec![0.0f32; 100];
    nan[42] = f32::INFINITY;
    assert_eq!(
        encoder.encode(&nan, &mut r).unwrap_err(),
        Error::NonFinite { index: 42 }
    );
    let len = plan.vector_len();
    assert!(matches!(
        decoder.decode(&vec![0; len], plan.bits + 1, 10),
        Err(Error::BitsMismatch { .. })
    ));
    if plan.bits < 32 {
        let mut sum = vec![0u32; len];
        sum[3] = 1 << plan.bits;
        assert_eq!(
            decoder.decode(&sum, plan.bits, 10).unwrap_err(),
            Error::ValueOutOfRange {
                index: 3,
                bits: plan.bits
            }
        );
    }
    assert!(matches!(
        decoder.decode(&vec![0; len], plan.bits, 11),
        Err(Error::TooManySurvivors { .. })
    ));
    assert!(matches!(
        decoder.decode_central(&vec![0; len], plan.bits, 10, &mut r),
        Err(Error::WrongMode(_))
    ));
    let mut future = plan.clone();
    future.version = PLAN_VERSION + 1;
    assert!(matches!(
        Encoder::new(&future),
        Err(Error::UnsupportedVersion { .. })
    ));
    let mut corrupt = plan.clone();
    corrupt.noise = covey_protocol::dp::NoiseShare::Skellam { local_mu: f64::NAN };
    assert!(matches!(
        Decoder::new(&corrupt),
        Err(Error::InvalidParameter {
            name: "local_mu",
            ..
        })
    ));
    // Adaptive clipping whose indicator noise cannot fit in the budget.
    let mut request = PlanRequest::new(10, 100, 1.0, 1.0, [9; 32]);
    request.adaptive = Some(AdaptiveClipping {
        target_quantile: 0.5,
        learning_rate: 0.2,
        count_stddev: 0.4,
    });
    assert!(matches!(
        choose_plan(&request),
        Err(Error::InvalidParameter {
            name: "adaptive.count_stddev",
            ..
        })
    ));
}

#[test]
fn noise_too_wide_for_a_table_uses_the_exact_samplers() {
    // z = 400 for one survivor: per-member shares far beyond the 2^16-entry alias table (and,
    // for Skellam, beyond a short sum of table draws), so every draw comes from the exact
    // samplers (PTRS, CKS).
    for kind in [NoiseKind::Skellam, NoiseKind::DiscreteGaussian] {
        let mut request = PlanRequest::new(2, 16, 1.0, 400.0, [10; 32]);
        request.noise = kind;
        request.max_dropout = 0.5;
        let plan = choose_plan(&request).unwrap();
        let sampling = Encoder::new(&plan).unwrap().noise_sampling();
        assert!(
            matches!(sampling, NoiseSampling::Exact),
            "{kind:?}: {sampling:?}"
        );
        let mut r = rng(10);
        let updates: Vec<Vec<f32>> = (0..2).map(|_| update(16, 0.7, &mut r)).collect();
        let (mse, decoded) = round_error(&plan, &updates, 11);
        // 16 coordinates: the empirical MSE is a χ²₁₆/16 multiple of the predicted variance.
        let predicted = decoded.error_stddev().powi(2);
        assert!(
            mse > 0.2 * predicted && mse < 2.5 * predicted,
            "{kind:?}: mse {mse:e} predicted {predicted:e}"
        );
    }
}

/// The device-side participation plan of `benches/benches/participate.rs`: a cohort of 200
/// with a 30 % dropout allowance at 20 bits, z = 1, over the recommender's 102 561-value
/// upload.
fn participation_plan() -> DpPlan {
    let mut request = PlanRequest::new(200, 102_561, 1.0, 1.0, [9; 32]);
    request.noise = NoiseKind::Skellam;
    request.max_dropout = 0.3;
    request.bits = Some(20);
    choose_plan(&request).unwrap()
}

#[test]
fn a_wide_skellam_share_is_a_sum_of_table_draws_with_the_planned_variance() {
    let plan = participation_plan();
    let covey_protocol::dp::NoiseShare::Skellam { local_mu } = plan.noise else {
        panic!("{:?}", plan.noise)
    };
    assert!((local_mu - 15_728_787.6).abs() < 1.0, "μ = {local_mu}");
    let encoder = Encoder::new(&plan).unwrap();
    // sd 5 609: too wide for one 2^16-entry table, three draws of Skellam(μ/3) fit.
    assert_eq!(
        encoder.noise_sampling(),
        NoiseSampling::TableSum { draws: 3 }
    );
    // A zero update rounds to zero, so every value is the member's noise share mod 2^20.
    let encoded = encoder.encode(&vec![0.0; 102_561], &mut rng(20)).unwrap();
    let half = 1i64 << 19;
    let noise: Vec<f64> = encoded
        .values
        .iter()
        .map(|&v| {
            let v = i64::from(v);
            (if v >= half { v - 2 * half } else { v }) as f64
        })
        .collect();
    let n = noise.len() as f64;
    let mean = noise.iter().sum::<f64>() / n;
    let var = noise.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let planned = 2.0 * local_mu;
    assert!(mean.abs() < 4.5 * (planned / n).sqrt(), "mean {mean}");
    assert!(
        (var - planned).abs() < 4.5 * planned * (2.0 / n).sqrt(),
        "variance {var} vs {planned}"
    );
    // Same seed, same share: the draws come from the seeded keystream.
    let again = encoder.encode(&vec![0.0; 102_561], &mut rng(20)).unwrap();
    assert_eq!(again, encoded);
}

#[test]
fn summed_table_noise_decodes_within_the_predicted_error() {
    // Four members with a per-member share too wide for one table (z = 40): the decoded
    // mean carries exactly the noise the plan promised, as with the single-table path.
    let (members, dimension) = (4u32, 4_000usize);
    let mut r = rng(21);
    let updates: Vec<Vec<f32>> = (0..members)
        .map(|_| update(dimension, 0.9, &mut r))
        .collect();
    let mut request = PlanRequest::new(members, dimension as u32, 1.0, 40.0, [11; 32]);
    request.noise = NoiseKind::Skellam;
    let plan = choose_plan(&request).unwrap();
    let sampling = Encoder::new(&plan).unwrap().noise_sampling();
    assert!(
        matches!(sampling, NoiseSampling::TableSum { draws } if draws >= 2),
        "{sampling:?}"
    );
    let (mse, decoded) = round_error(&plan, &updates, 22);
    let noise = decoded.noise_stddev.powi(2);
    let predicted = decoded.error_stddev().powi(2);
    assert!(
        mse >= 0.9 * noise && mse <= 1.1 * predicted,
        "mse {mse:e}, noise {noise:e}, predicted {predicted:e}"
    );
}

#[test]
fn noise_beyond_a_short_table_sum_takes_the_exact_samplers() {
    // Skellam wider than 16 table draws, and any discrete Gaussian too wide for one table.
    for (kind, z) in [
        (NoiseKind::Skellam, 4_000.0),
        (NoiseKind::DiscreteGaussian, 400.0),
    ] {
        let mut request = PlanRequest::new(2, 16, 1.0, z, [10; 32]);
        request.noise = kind;
        request.max_dropout = 0.5;
        let plan = choose_plan(&request).unwrap();
        let encoder = Encoder::new(&plan).unwrap();
        assert_eq!(encoder.noise_sampling(), NoiseSampling::Exact, "{kind:?}");
    }
}
