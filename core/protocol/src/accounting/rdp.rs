//! Rényi DP of the subsampled Gaussian mechanism and the conversion of an RDP curve to
//! (ε, δ).
//!
//! Formulas follow Google's `dp-accounting` (`rdp_privacy_accountant.py`), which the
//! cross-check in `tests/python/crosscheck_accounting.py` compares against:
//! - Poisson subsampling: Mironov, Talwar, Zhang 2019 ("Rényi DP of the Sampled Gaussian
//!   Mechanism"): `log A_α` as a log-space binomial sum for integer α, and the two-sided
//!   erfc-weighted series for fractional α.
//! - Sampling without replacement: Wang, Balle, Kasiviswanathan 2019, Theorem 27 (forward
//!   differences of the Gaussian CGF), under the replace-one neighbouring relation.
//! - Conversion: the improved bound of Balle et al. 2020 / Canonne, Kamath, Steinke 2020,
//!   `ε = RDP(α) + log(1 - 1/α) - log(δ α)/(α - 1)`.

use super::special::{log_add, log_comb, log_erfc, log_sub_sign};

/// The RDP orders `dp-accounting` uses by default: 1.1 to 10.9 by 0.1, 11 to 63, and 128,
/// 256, 512, 1024. Dense near 1 because small-ε regimes are optimised there.
pub fn default_orders() -> Vec<f64> {
    let fine = (1..100).map(|x| 1.0 + f64::from(x) / 10.0);
    let integer = (11..64).map(f64::from);
    let large = [128.0, 256.0, 512.0, 1024.0];
    fine.chain(integer).chain(large).collect()
}

/// RDP of one step of the Poisson-subsampled Gaussian mechanism at each order.
///
/// `q` is the sampling probability, `noise_multiplier` the noise standard deviation divided
/// by the L2 sensitivity (add/remove-one neighbours). An order whose series does not
/// converge yields `+inf`, which the conversion then ignores.
pub fn poisson_subsampled_gaussian_rdp(q: f64, noise_multiplier: f64, orders: &[f64]) -> Vec<f64> {
    orders
        .iter()
        .map(|&alpha| subsampled_gaussian_order(q, noise_multiplier, alpha))
        .collect()
}

fn subsampled_gaussian_order(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if alpha.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_integer(q, sigma, alpha)
    } else {
        log_a_fractional(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// `log A_α = log Σ_i C(α, i) q^i (1-q)^(α-i) exp((i² - i) / 2σ²)` for integer α.
fn log_a_integer(q: f64, sigma: f64, alpha: f64) -> f64 {
    let log1mq = (-q).ln_1p();
    let mut log_a = f64::NEG_INFINITY;
    let mut i = 0.0;
    while i <= alpha {
        let log_coef = log_comb(alpha, i) + i * q.ln() + (alpha - i) * log1mq;
        log_a = log_add(log_a, log_coef + (i * i - i) / (2.0 * sigma * sigma));
        i += 1.0;
    }
    log_a
}

/// Terms tried before a fractional-order series is declared divergent. dp-accounting stops
/// at 1,000 and then drops the order; but for a small noise multiplier and a large sampling
/// rate the series converges only polynomially (the Gaussian-tail weight cancels the
/// `((1-q)/q)^i` growth), so orders near 1 need ~10^4 terms. Dropping them made ε non-monotone
/// in q (q = 0.39 reported more than q = 0.43) and looser than necessary (1,013 instead of
/// 471 there). Orders that converge early cost no more than before.
const MAX_STEPS_LOG_A_FRAC: u32 = 100_000;

/// `log A_α` for fractional α: two series split at `z0`, each term weighted by a Gaussian
/// tail, summed until both are decreasing and 30 nats below the total.
fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let two_sigma2 = 2.0 * sigma * sigma;
    for step in 0..MAX_STEPS_LOG_A_FRAC {
        let i = f64::from(step);
        let log_coef = log_comb(alpha, i);
        let j = alpha - i;
        let log_t0 = log_coef + i * q.ln() + j * log1mq;
        let log_t1 = log_coef + j * q.ln() + i * log1mq;
        let log_e0 = 0.5_f64.ln() + log_erfc((i - z0) / (std::f64::consts::SQRT_2 * sigma));
        let log_e1 = 0.5_f64.ln() + log_erfc((z0 - j) / (std::f64::consts::SQRT_2 * sigma));
        let log_s0 = log_t0 + (i * i - i) / two_sigma2 + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_sigma2 + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// RDP of one step of the Gaussian mechanism applied to a uniformly random subset of fixed
/// size `m = q·n` drawn without replacement (replace-one neighbours).
///
/// `noise_multiplier` is relative to the *replace-one* L2 sensitivity. For a sum of updates
/// each clipped to `C`, replacing one member moves the sum by up to `2C`, so a multiplier
/// `z` relative to `C` must be passed here as `z / 2`; [`super::PrivacyEvent`] does that.
/// Fractional orders interpolate the neighbouring integer orders, as dp-accounting does.
pub fn sampled_without_replacement_gaussian_rdp(
    q: f64,
    noise_multiplier: f64,
    orders: &[f64],
) -> Vec<f64> {
    orders
        .iter()
        .map(|&alpha| wor_gaussian_order(q, noise_multiplier, alpha))
        .collect()
}

fn wor_gaussian_order(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    if alpha.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if alpha.fract() == 0.0 {
        return wor_log_a(q, sigma, alpha as u32) / (alpha - 1.0);
    }
    let (lo, hi) = (alpha.floor(), alpha.ceil());
    let x = wor_log_a(q, sigma, lo as u32);
    let y = wor_log_a(q, sigma, hi as u32);
    let t = alpha - lo;
    ((1.0 - t) * x + t * y) / (alpha - 1.0)
}

/// Above this order the forward differences are skipped for the simpler bound (as
/// dp-accounting: the differences cost O(α²)).
const WOR_MAX_EXACT_ORDER: u32 = 256;

/// `log` of the Theorem 27 sum for integer α (the RDP times `α - 1`).
fn wor_log_a(q: f64, sigma: f64, alpha: u32) -> f64 {
    if alpha <= 1 {
        return 0.0;
    }
    let s2 = sigma * sigma;
    let cgf = |x: f64| x * (x + 1.0) / (2.0 * s2);
    let eps2 = 2.0 / (2.0 * s2);
    let log_f2m1 = eps2 + (-(-eps2).exp()).ln_1p();
    let a = f64::from(alpha);
    let second = 2.0 * q.ln() + log_comb(a, 2.0) + (4.0_f64.ln() + log_f2m1).min(eps2 + LN2);
    let mut log_a = log_add(0.0, second);
    let diffs = (alpha <= WOR_MAX_EXACT_ORDER).then(|| forward_differences(cgf, alpha as usize));
    for i in 3..=alpha {
        let fi = f64::from(i);
        let mut s = LN2 + cgf(fi - 1.0);
        if let Some(deltas) = &diffs {
            let lo = deltas[(2 * (i / 2) - 1) as usize];
            let hi = deltas[(2 * i.div_ceil(2) - 1) as usize];
            s = s.min(4.0_f64.ln() + 0.5 * (lo + hi));
        }
        log_a = log_add(log_a, s + fi * q.ln() + log_comb(a, fi));
    }
    log_a
}

const LN2: f64 = std::f64::consts::LN_2;

/// Log-magnitudes of the forward differences of `exp(f)` at 0 up to order `n + 1`
/// (WBK 2019, Theorem 27), computed in log space with signs, as dp-accounting does.
fn forward_differences(f: impl Fn(f64) -> f64, n: usize) -> Vec<f64> {
    let mut values = vec![0.0; n + 3];
    let mut signs = vec![true; n + 3];
    for (i, v) in values.iter_mut().enumerate().skip(1) {
        *v = f((i - 1) as f64);
    }
    let mut deltas = vec![0.0; n + 2];
    for (i, d) in deltas.iter_mut().enumerate() {
        diff_in_place(&mut values, &mut signs, n + 2 - i);
        *d = values[0];
    }
    deltas
}

/// Replaces the first `n` entries of the signed log-vector by its first differences.
fn diff_in_place(values: &mut [f64], signs: &mut [bool], n: usize) {
    for j in 0..n {
        if signs[j] == signs[j + 1] {
            let (sign, mag) = log_sub_sign(values[j + 1], values[j]);
            values[j] = mag;
            signs[j] = if signs[j + 1] { sign } else { !sign };
        } else {
            values[j] = log_add(values[j], values[j + 1]);
            signs[j] = signs[j + 1];
        }
    }
}

/// The smallest ε (and the order attaining it) such that the RDP curve implies (ε, δ)-DP,
/// by the improved conversion. Orders at or below 1.01 are not used (the bound degenerates).
/// Returns `(+inf, order)` when no order gives a finite bound and `(0, 0)` for an all-zero
/// curve at `δ = 0`.
pub fn rdp_to_epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    if delta == 0.0 {
        return if rdp.iter().all(|&r| r == 0.0) {
            (0.0, 0.0)
        } else {
            (f64::INFINITY, 0.0)
        };
    }
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(0.0));
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            // Negative RDP is numerical noise of an extreme event; tiny RDP implies ε = 0.
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        if eps < best.0 {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// The smallest δ (and its order) such that the RDP curve implies (ε, δ)-DP (Canonne,
/// Kamath, Steinke 2020 conversion, with the KL-based bound for tiny divergences).
pub fn rdp_to_delta(orders: &[f64], rdp: &[f64], epsilon: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, orders.first().copied().unwrap_or(0.0));
    for (&a, &r) in orders.iter().zip(rdp) {
        let mut log_delta = if r <= 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        if a > 1.01 {
            let bound = (a - 1.0) * (r - epsilon + (-1.0 / a).ln_1p()) - a.ln();
            log_delta = log_delta.min(bound);
        }
        if log_delta < best.0 {
            best = (log_delta, a);
        }
    }
    (best.0.exp().min(1.0), best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rel(actual: f64, expected: f64, rel: f64) {
        assert!(
            ((actual - expected) / expected).abs() <= rel,
            "actual {actual} expected {expected}"
        );
    }

    #[test]
    fn default_orders_match_dp_accounting_grid() {
        let orders = default_orders();
        assert_eq!(orders.len(), 99 + 53 + 4);
        assert_eq!(orders[0], 1.1);
        assert_eq!(orders[98], 10.9);
        assert_eq!(orders[99], 11.0);
        assert_eq!(*orders.last().unwrap(), 1024.0);
    }

    #[test]
    fn full_batch_is_plain_gaussian() {
        let rdp = poisson_subsampled_gaussian_rdp(1.0, 2.0, &[2.0, 7.5]);
        assert_eq!(rdp, vec![2.0 / 8.0, 7.5 / 8.0]);
        let wor = sampled_without_replacement_gaussian_rdp(1.0, 2.0, &[3.0]);
        assert_eq!(wor, vec![3.0 / 8.0]);
    }

    #[test]
    fn one_step_vectors_from_research_note() {
        // dp-accounting: q = 0.01, z = 1.1, one step.
        let rdp = poisson_subsampled_gaussian_rdp(0.01, 1.1, &[2.0, 8.0, 32.0]);
        assert_rel(rdp[0], 1.285101e-4, 1e-5);
        assert_rel(rdp[1], 5.840703e-4, 1e-5);
        assert_rel(rdp[2], 8.469416, 1e-6);
    }

    #[test]
    fn forward_differences_of_exp_identity() {
        // For f = 0 the sequence is [1, 1, 1, ...] after the leading 1 (value e^0),
        // whose differences vanish: the log-magnitudes go to -inf.
        let d = forward_differences(|_| 0.0, 3);
        assert!(d[1..].iter().all(|v| *v == f64::NEG_INFINITY), "{d:?}");
    }
}
