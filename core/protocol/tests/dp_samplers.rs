//! Statistical tests of the noise samplers against their exact pmfs: mean, variance, tail
//! frequency and a chi-square goodness-of-fit test, for the exact samplers and for the alias
//! tables the encoder uses. Seeded, so deterministic; the thresholds are p ≈ 1e-4 quantiles,
//! and one test checks that the chi-square test does reject a slightly wrong distribution.

use covey_protocol::dp::noise::{
    AliasTable, NoiseDistribution, SummedAliasTable, discrete_gaussian, discrete_gaussian_pmf,
    gaussian, poisson, skellam_pmf,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const DRAWS: usize = 200_000;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Upper 1e-4 quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty).
fn chi_square_critical(df: usize) -> f64 {
    let df = df as f64;
    let z = 3.719; // standard normal 1 − 1e-4 quantile
    let h = 2.0 / (9.0 * df);
    df * (1.0 - h + z * h.sqrt()).powi(3)
}

/// Chi-square statistic and degrees of freedom of integer `samples` against `pmf` (a function
/// of the value), with the outer bins merged until every expected count is at least 20.
fn chi_square(samples: &[i64], pmf: impl Fn(i64) -> f64, lo: i64, hi: i64) -> (f64, usize) {
    let n = samples.len() as f64;
    let mut counts = std::collections::BTreeMap::new();
    for &s in samples {
        *counts.entry(s.clamp(lo, hi)).or_insert(0usize) += 1;
    }
    // Probabilities per value in [lo, hi], tails folded into the end bins.
    let mut probs: Vec<f64> = (lo..=hi).map(&pmf).collect();
    let below: f64 = (lo - 2000..lo).map(&pmf).sum();
    let above: f64 = (hi + 1..hi + 2000).map(&pmf).sum();
    probs[0] += below;
    *probs.last_mut().unwrap() += above;
    let observed: Vec<f64> = (lo..=hi)
        .map(|v| *counts.get(&v).unwrap_or(&0) as f64)
        .collect();
    // Merge adjacent bins until each expects at least 20 draws.
    let (mut stat, mut bins) = (0.0, 0);
    let (mut exp_acc, mut obs_acc) = (0.0, 0.0);
    for (p, o) in probs.iter().zip(&observed) {
        exp_acc += p * n;
        obs_acc += o;
        if exp_acc >= 20.0 {
            stat += (obs_acc - exp_acc).powi(2) / exp_acc;
            bins += 1;
            exp_acc = 0.0;
            obs_acc = 0.0;
        }
    }
    if exp_acc > 0.0 {
        stat += (obs_acc - exp_acc).powi(2) / exp_acc.max(1e-9);
        bins += 1;
    }
    (stat, bins - 1)
}

fn mean_var(samples: &[i64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n;
    let var = samples
        .iter()
        .map(|&s| (s as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    (mean, var)
}

/// Mean within 4.5 standard errors, variance within 4.5 of its standard errors (approximated
/// for near-Gaussian draws as var·√(2/n)).
fn assert_moments(samples: &[i64], mean: f64, var: f64, what: &str) {
    let n = samples.len() as f64;
    let (m, v) = mean_var(samples);
    assert!(
        (m - mean).abs() < 4.5 * (var / n).sqrt(),
        "{what}: mean {m} vs {mean}"
    );
    assert!(
        (v - var).abs() < 4.5 * var * (2.0 / n).sqrt() * 1.5,
        "{what}: var {v} vs {var}"
    );
}

fn poisson_pmf(lambda: f64) -> impl Fn(i64) -> f64 {
    move |k| {
        if k < 0 {
            0.0
        } else {
            (-lambda + k as f64 * lambda.ln() - libm::lgamma(k as f64 + 1.0)).exp()
        }
    }
}

fn symmetric(pmf: Vec<f64>) -> impl Fn(i64) -> f64 {
    move |k| pmf.get(k.unsigned_abs() as usize).copied().unwrap_or(0.0)
}

/// Asserts that the chi-square test over `[-hi, hi]` accepts `samples` as drawn from the
/// symmetric distribution whose one-sided pmf is `pmf`.
fn assert_fits_symmetric_pmf(samples: &[i64], pmf: &[f64], hi: i64, what: &str) {
    let (stat, df) = chi_square(samples, symmetric(pmf.to_vec()), -hi, hi);
    assert!(stat < chi_square_critical(df), "{what}: χ²={stat} df={df}");
}

#[test]
fn poisson_matches_its_pmf_below_and_above_the_ptrs_threshold() {
    for (seed, lambda) in [(1, 3.5), (2, 57.0), (3, 12_345.0)] {
        let mut r = rng(seed);
        let samples: Vec<i64> = (0..DRAWS).map(|_| poisson(lambda, &mut r) as i64).collect();
        assert_moments(&samples, lambda, lambda, "poisson");
        let sd = lambda.sqrt();
        let (lo, hi) = (
            (lambda - 5.0 * sd).floor() as i64,
            (lambda + 5.0 * sd).ceil() as i64,
        );
        let (stat, df) = chi_square(&samples, poisson_pmf(lambda), lo.max(0), hi);
        assert!(
            stat < chi_square_critical(df),
            "λ={lambda}: χ²={stat} df={df}"
        );
    }
}

#[test]
fn exact_skellam_matches_the_bessel_pmf_with_the_right_tail() {
    let mu = 40.0;
    let mut r = rng(4);
    let dist = NoiseDistribution::Skellam { mu };
    let samples: Vec<i64> = (0..DRAWS).map(|_| dist.sample_exact(&mut r)).collect();
    assert_moments(&samples, 0.0, 2.0 * mu, "skellam");
    let pmf = skellam_pmf(mu, 200);
    assert_fits_symmetric_pmf(&samples, &pmf, 30, "skellam");
    assert_tail(&samples, &pmf, (3.0 * (2.0 * mu).sqrt()) as usize);
}

/// The frequency of `|X| > cut` against the (one-sided, symmetric) pmf, within 5 binomial
/// standard errors.
fn assert_tail(samples: &[i64], pmf: &[f64], cut: usize) {
    let tail: f64 = 2.0 * pmf[cut + 1..].iter().sum::<f64>();
    let seen = samples
        .iter()
        .filter(|s| s.unsigned_abs() as usize > cut)
        .count() as f64;
    let expected = tail * samples.len() as f64;
    assert!(
        (seen - expected).abs() < 5.0 * expected.sqrt(),
        "tail beyond {cut}: {seen} vs {expected}"
    );
}

#[test]
fn chi_square_rejects_a_five_percent_wrong_variance() {
    let mu = 40.0;
    let mut r = rng(5);
    let dist = NoiseDistribution::Skellam { mu: mu * 1.05 };
    let samples: Vec<i64> = (0..DRAWS).map(|_| dist.sample_exact(&mut r)).collect();
    let (stat, df) = chi_square(&samples, symmetric(skellam_pmf(mu, 200)), -30, 30);
    assert!(
        stat > chi_square_critical(df),
        "χ²={stat} df={df} should reject"
    );
}

#[test]
fn discrete_gaussian_matches_its_pmf_for_narrow_and_wide_scales() {
    for (seed, sigma) in [(6, 0.8), (7, 6.5)] {
        let mut r = rng(seed);
        let samples: Vec<i64> = (0..DRAWS)
            .map(|_| discrete_gaussian(sigma, &mut r))
            .collect();
        let pmf = discrete_gaussian_pmf(sigma, 200);
        let var: f64 = 2.0 * (1..200).map(|k| (k * k) as f64 * pmf[k]).sum::<f64>();
        assert_moments(&samples, 0.0, var, "discrete gaussian");
        let hi = (5.0 * sigma).ceil() as i64;
        assert_fits_symmetric_pmf(&samples, &pmf, hi, &format!("σ={sigma}"));
        assert_tail(&samples, &pmf, (2.5 * sigma) as usize);
    }
}

#[test]
fn alias_tables_sample_the_exact_pmfs() {
    let cases = [
        (NoiseDistribution::Skellam { mu: 0.7 }, 8),
        (NoiseDistribution::Skellam { mu: 2_500.0 }, 9),
        (NoiseDistribution::DiscreteGaussian { sigma: 12.0 }, 10),
    ];
    for (dist, seed) in cases {
        let table = AliasTable::new(dist).unwrap();
        let mut r = rng(seed);
        let samples: Vec<i64> = (0..DRAWS).map(|_| table.sample(r.next_u64())).collect();
        let sd = dist.stddev();
        let pmf = dist.pmf((20.0 * sd) as usize + 50);
        let var: f64 = 2.0
            * pmf
                .iter()
                .enumerate()
                .map(|(k, p)| (k * k) as f64 * p)
                .sum::<f64>();
        assert_moments(&samples, 0.0, var, "alias");
        let hi = (4.0 * sd).ceil() as i64 + 2;
        assert_fits_symmetric_pmf(&samples, &pmf, hi, &format!("{dist:?}"));
    }
}

#[test]
fn summed_alias_tables_sample_the_exact_wide_skellam_pmf() {
    // Shares too wide for one 2^16-entry table: 2 and 3 draws (the second is the 20-bit
    // participation plan's share, cohort 200, 30 % dropout allowance, z = 1).
    for (mu, draws, seed) in [(1.0e7, 2, 12), (15_728_787.6, 3, 13)] {
        let dist = NoiseDistribution::Skellam { mu };
        assert!(AliasTable::new(dist).is_err(), "μ = {mu} fits one table");
        let summed = SummedAliasTable::new(dist).unwrap();
        assert_eq!(summed.draws(), draws, "μ = {mu}");
        let mut r = rng(seed);
        let samples: Vec<i64> = (0..DRAWS).map(|_| summed.sample(&mut r)).collect();
        assert_moments(&samples, 0.0, 2.0 * mu, "summed alias");
        let sd = dist.stddev();
        let pmf = skellam_pmf(mu, (20.0 * sd) as usize + 50);
        let hi = (4.0 * sd).ceil() as i64;
        assert_fits_symmetric_pmf(&samples, &pmf, hi, &format!("μ = {mu}"));
        assert_tail(&samples, &pmf, (2.5 * sd) as usize);
    }
}

#[test]
fn chi_square_rejects_a_sum_of_one_draw_too_few() {
    // The same table summed once less: variance 2μ·(j − 1)/j, which the test must catch.
    let mu = 15_728_787.6;
    let summed = SummedAliasTable::new(NoiseDistribution::Skellam { mu }).unwrap();
    let mut r = rng(14);
    let samples: Vec<i64> = (0..DRAWS)
        .map(|_| {
            (1..summed.draws())
                .map(|_| summed.table().sample(r.next_u64()))
                .sum()
        })
        .collect();
    let sd = (2.0 * mu).sqrt();
    let hi = (4.0 * sd).ceil() as i64;
    let pmf = skellam_pmf(mu, (20.0 * sd) as usize + 50);
    let (stat, df) = chi_square(&samples, symmetric(pmf), -hi, hi);
    assert!(
        stat > chi_square_critical(df),
        "χ²={stat} df={df} should reject"
    );
}

#[test]
fn summed_tables_take_the_fewest_draws_and_refuse_what_they_cannot_draw() {
    // One table when it fits; otherwise the smallest j whose Skellam(μ/j) table fits.
    let narrow = SummedAliasTable::new(NoiseDistribution::Skellam { mu: 148_014.0 }).unwrap();
    assert_eq!(narrow.draws(), 1);
    for mu in [7.0e6, 3.0e7, 6.0e7] {
        let draws = SummedAliasTable::new(NoiseDistribution::Skellam { mu })
            .unwrap()
            .draws();
        assert!(draws >= 2, "μ = {mu}");
        let fewer = NoiseDistribution::Skellam {
            mu: mu / f64::from(draws - 1),
        };
        assert!(AliasTable::new(fewer).is_err(), "μ = {mu}: {draws} draws");
    }
    // Beyond MAX_SUMMED_DRAWS (16) draws the exact sampler is faster: refused.
    let widest = NoiseDistribution::Skellam { mu: 1.0e8 };
    assert!(SummedAliasTable::new(widest).is_err());
    // The discrete Gaussian is not closed under convolution.
    let gaussian = NoiseDistribution::DiscreteGaussian { sigma: 5.0 };
    assert!(SummedAliasTable::new(gaussian).is_err());
}

#[test]
fn central_gaussian_has_unit_variance_and_gaussian_tails() {
    let mut r = rng(11);
    let samples: Vec<f64> = (0..DRAWS).map(|_| gaussian(&mut r)).collect();
    let n = DRAWS as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 4.5 / n.sqrt() && (var - 1.0).abs() < 4.5 * (2.0 / n).sqrt());
    // P(|Z| > 2) = 0.0455.
    let tail = samples.iter().filter(|x| x.abs() > 2.0).count() as f64;
    let expected = 0.045_500_263_9 * n;
    assert!(
        (tail - expected).abs() < 5.0 * expected.sqrt(),
        "{tail} vs {expected}"
    );
}
