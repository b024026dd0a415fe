//! Rényi DP of the distributed mechanisms that survive secure aggregation: the Skellam
//! mechanism (Agarwal, Kairouz, Liu 2021) and the distributed discrete Gaussian (Kairouz,
//! Liu, Steinke 2021), with their amplification by subsampling.
//!
//! All quantities are in the *scaled integer domain* in which devices add noise: a member's
//! clipped update is scaled by `s` and rounded, so the sensitivities passed here are the
//! (rounding-inflated) L1 and L2 norms of one member's scaled, rounded contribution, and the
//! noise parameters are those of the integer noise in the *sum* over the surviving members.
//!
//! Both bounds are stated for integer orders; a fractional order α is bounded by the value
//! at ⌈α⌉, which is sound because RDP is non-decreasing in α.

use super::special::{log_add, log_comb};

/// Skellam RDP at one order: `Sk(μ) = Pois(μ) - Pois(μ)` (variance `2μ`) added to an integer
/// query with L1 sensitivity `l1` and L2 sensitivity `l2` (Agarwal et al. 2021, Theorem 3.5):
/// `α Δ₂² / (4μ) + min(((2α - 1) Δ₂² + 6 Δ₁) / (16 μ²), 3 Δ₁ / (4μ))`.
pub fn skellam_rdp_at(order: f64, l1: f64, l2: f64, mu_total: f64) -> f64 {
    let a = order.ceil().max(2.0);
    let correction = (((2.0 * a - 1.0) * l2 * l2 + 6.0 * l1) / (16.0 * mu_total * mu_total))
        .min(3.0 * l1 / (4.0 * mu_total));
    a * l2 * l2 / (4.0 * mu_total) + correction
}

/// Skellam RDP at each order, for the noise in the aggregated sum: `mu_total` is the sum of
/// the members' Poisson parameters (`survivors × per-member μ`), so the sum carries
/// `Sk(mu_total)` noise of variance `2 · mu_total`.
pub fn skellam_rdp(orders: &[f64], l1: f64, l2: f64, mu_total: f64) -> Vec<f64> {
    orders
        .iter()
        .map(|&a| skellam_rdp_at(a, l1, l2, mu_total))
        .collect()
}

/// The inflation term τ of the distributed discrete Gaussian (Kairouz et al. 2021,
/// Theorem 1): `τ = 10 Σ_{k=1}^{n-1} exp(-2π² σ² k / (k + 1))`, which pays for a sum of `n`
/// discrete Gaussians of scale `σ` (local, in integer units) not being a discrete Gaussian.
pub fn ddgauss_tau(local_stddev: f64, members: u64) -> f64 {
    let c = -2.0 * std::f64::consts::PI.powi(2) * local_stddev * local_stddev;
    let mut tau = 0.0;
    for k in 1..members {
        let kf = k as f64;
        let term = (c * kf / (kf + 1.0)).exp();
        tau += term;
        // The terms decrease in k; once even all the remaining ones together are negligible
        // against the sum, stop (large cohorts with wide local noise stop early).
        if term == 0.0 || term * (members - 1 - k) as f64 <= f64::EPSILON * tau {
            break;
        }
    }
    10.0 * tau
}

/// Distributed discrete Gaussian RDP at one order (Kairouz et al. 2021, Proposition 14):
/// the minimum of `α Δ₂²/(2σ²) + τd`, `α/2 (Δ₂²/σ² + 2Δ₁τ/σ + τ²d)` and
/// `α/2 (Δ₂/σ + √d τ)²`, with `σ` the standard deviation of the summed noise.
pub fn ddgauss_rdp_at(
    order: f64,
    l1: f64,
    l2: f64,
    central_stddev: f64,
    tau: f64,
    dimension: u64,
) -> f64 {
    let a = order.ceil().max(2.0);
    let d = dimension as f64;
    let (l1s, l2s) = (l1 / central_stddev, l2 / central_stddev);
    let term1 = a / 2.0 * l2s * l2s + tau * d;
    let term2 = a / 2.0 * (l2s * l2s + 2.0 * l1s * tau + tau * tau * d);
    let term3 = a / 2.0 * (l2s + d.sqrt() * tau).powi(2);
    term1.min(term2).min(term3)
}

/// Distributed discrete Gaussian RDP at each order; see [`ddgauss_rdp_at`].
pub fn ddgauss_rdp(
    orders: &[f64],
    l1: f64,
    l2: f64,
    central_stddev: f64,
    tau: f64,
    dimension: u64,
) -> Vec<f64> {
    orders
        .iter()
        .map(|&a| ddgauss_rdp_at(a, l1, l2, central_stddev, tau, dimension))
        .collect()
}

/// RDP at order α of a mechanism with RDP curve `eps` run on a Poisson subsample of rate
/// `q` (Zhu & Wang 2019, Theorem 5, the general upper bound for integer orders), never worse
/// than the unamplified value.
pub fn poisson_amplified_rdp(order: f64, q: f64, eps: impl Fn(f64) -> f64) -> f64 {
    amplified(order, q, &eps, |alpha| {
        let (lq, l1mq) = (q.ln(), (-q).ln_1p());
        let mut log_sum = (alpha - 1.0) * l1mq + (alpha * q - q + 1.0).ln();
        log_sum = log_add(
            log_sum,
            eps(2.0) + log_comb(alpha, 2.0) + 2.0 * lq + (alpha - 2.0) * l1mq,
        );
        let mut l = 3.0;
        while l <= alpha {
            let term = (l - 1.0) * eps(l) + log_comb(alpha, l) + (alpha - l) * l1mq + l * lq;
            log_sum = log_add(log_sum, 3.0_f64.ln() + term);
            l += 1.0;
        }
        log_sum
    })
}

/// RDP at order α of a mechanism with RDP curve `eps` (under replace-one neighbours) run on
/// a uniformly random subset of `q = m / n` of the population drawn without replacement
/// (Wang, Balle, Kasiviswanathan 2019, Theorem 9, with an unbounded ε(∞) as for any
/// mechanism with unbounded noise), never worse than the unamplified value.
pub fn without_replacement_amplified_rdp(order: f64, q: f64, eps: impl Fn(f64) -> f64) -> f64 {
    amplified(order, q, &eps, |alpha| {
        let lq = q.ln();
        let e2 = eps(2.0);
        let second = (4.0_f64.ln() + e2.exp_m1().ln()).min(e2 + std::f64::consts::LN_2);
        let mut log_sum = log_add(0.0, 2.0 * lq + log_comb(alpha, 2.0) + second);
        let mut j = 3.0;
        while j <= alpha {
            let term = std::f64::consts::LN_2 + (j - 1.0) * eps(j) + j * lq + log_comb(alpha, j);
            log_sum = log_add(log_sum, term);
            j += 1.0;
        }
        log_sum
    })
}

/// The common frame of both amplification bounds: no sampling means no amplification, an
/// empty sample means no loss; otherwise `log_moment(α)` (the log of the bound's sum at the
/// integer order ⌈α⌉) over `α - 1`, capped by the unamplified RDP.
fn amplified(
    order: f64,
    q: f64,
    eps: &impl Fn(f64) -> f64,
    log_moment: impl FnOnce(f64) -> f64,
) -> f64 {
    let unamplified = eps(order);
    if q >= 1.0 {
        return unamplified;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let alpha = order.ceil().max(2.0);
    (log_moment(alpha) / (alpha - 1.0)).min(unamplified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skellam_approaches_gaussian_for_large_mu() {
        // Sk(μ) has variance 2μ; the Gaussian with the same variance has RDP αΔ²/(2·2μ).
        let (l2, mu) = (100.0, 1e8);
        let r = skellam_rdp_at(8.0, l2 * 10.0, l2, mu);
        let gauss = 8.0 * l2 * l2 / (4.0 * mu);
        assert!(r >= gauss && (r - gauss) / gauss < 1e-4, "{r} vs {gauss}");
    }

    #[test]
    fn tau_vanishes_for_wide_local_noise_and_grows_with_members() {
        assert!(ddgauss_tau(5.0, 1000) < 1e-100);
        let small = ddgauss_tau(0.3, 10);
        let large = ddgauss_tau(0.3, 100);
        assert!(small > 0.0 && large > small);
        // Direct sum for the small case.
        let direct: f64 = (1..10)
            .map(|k| {
                (-2.0 * std::f64::consts::PI.powi(2) * 0.09 * k as f64 / (k as f64 + 1.0)).exp()
            })
            .sum::<f64>()
            * 10.0;
        assert!((small - direct).abs() < 1e-12 * direct);
    }

    #[test]
    fn ddgauss_without_inflation_is_gaussian() {
        let r = ddgauss_rdp_at(4.0, 50.0, 10.0, 20.0, 0.0, 1000);
        assert!((r - 4.0 / 2.0 * 0.25).abs() < 1e-15);
    }

    #[test]
    fn amplification_helps_and_full_sampling_is_neutral() {
        let eps = |a: f64| a / (2.0 * 1.5 * 1.5);
        let full = poisson_amplified_rdp(10.0, 1.0, eps);
        let sub = poisson_amplified_rdp(10.0, 0.01, eps);
        assert_eq!(full, eps(10.0));
        assert!(sub < full / 10.0, "{sub} vs {full}");
        let wor = without_replacement_amplified_rdp(10.0, 0.01, eps);
        assert!(wor < full / 10.0);
    }
}
