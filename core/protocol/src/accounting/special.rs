//! Special functions in log space: the numerical ground the accountants stand on.
//!
//! Privacy losses live far out in Gaussian tails (probabilities of 1e-30 are routine), so
//! everything here works with logarithms and with tail-accurate `erfc` rather than `1 - erf`.
//! The formulas follow SciPy's `ndtr`/`log_ndtr` so that our figures match Google's
//! `dp-accounting`, which the cross-check compares against.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2, PI};

/// `log(exp(x) + exp(y))` without overflow; `-inf` is the log of zero.
pub(crate) fn log_add(x: f64, y: f64) -> f64 {
    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `log|exp(x) - exp(y)|` and whether the difference is non-negative.
pub(crate) fn log_sub_sign(x: f64, y: f64) -> (bool, f64) {
    if x > y {
        (true, x + (-(y - x).exp()).ln_1p())
    } else if x < y {
        (false, y + (-(x - y).exp()).ln_1p())
    } else {
        (true, f64::NEG_INFINITY)
    }
}

/// `log(a * exp(b) + c)`, for the subsampled privacy loss; `None` when the argument is not
/// positive.
pub(crate) fn log_a_exp_b_plus_c(a: f64, b: f64, c: f64) -> Option<f64> {
    if a == 0.0 {
        return (c > 0.0).then(|| c.ln());
    }
    if a < 0.0 {
        let (lc, la) = (c.ln(), (-a).ln() + b);
        return (c > 0.0 && lc > la).then(|| lc + (-(la - lc).exp()).ln_1p());
    }
    if b == 0.0 {
        return (a + c > 0.0).then(|| (a + c).ln());
    }
    let d = b + a.ln();
    if c == 0.0 {
        Some(d)
    } else if c < 0.0 {
        let lc = (-c).ln();
        (d > lc).then(|| d + (-(lc - d).exp()).ln_1p())
    } else {
        Some(log_add(d, c.ln()))
    }
}

/// Log of the generalised binomial coefficient `|C(n, k)|` through `ln Γ`.
pub(crate) fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// Standard normal CDF Φ(a), accurate in both tails (SciPy's `ndtr`).
pub(crate) fn ndtr(a: f64) -> f64 {
    let x = a * FRAC_1_SQRT_2;
    let z = x.abs();
    if z < FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(x)
    } else {
        let y = 0.5 * libm::erfc(z);
        if x > 0.0 { 1.0 - y } else { y }
    }
}

/// `log Φ(a)`, accurate far into the lower tail (SciPy's `log_ndtr`: an asymptotic series
/// below -20, where Φ underflows).
pub(crate) fn log_ndtr(a: f64) -> f64 {
    if a > 6.0 {
        return -ndtr(-a);
    }
    if a > -20.0 {
        return ndtr(a).ln();
    }
    let log_lhs = -0.5 * a * a - (-a).ln() - 0.5 * (2.0 * PI).ln();
    let denom_cons = 1.0 / (a * a);
    let (mut last_total, mut rhs, mut numerator, mut denom_factor, mut sign) =
        (0.0_f64, 1.0_f64, 1.0_f64, 1.0_f64, 1.0_f64);
    let mut i = 0.0;
    while (last_total - rhs).abs() > f64::EPSILON {
        i += 1.0;
        last_total = rhs;
        sign = -sign;
        denom_factor *= denom_cons;
        numerator *= 2.0 * i - 1.0;
        rhs += sign * numerator * denom_factor;
    }
    log_lhs + rhs.ln()
}

/// `log erfc(x)`, accurate for large `x`.
pub(crate) fn log_erfc(x: f64) -> f64 {
    LN_2 + log_ndtr(-x * std::f64::consts::SQRT_2)
}

/// The standard normal quantile for a (possibly tiny) lower-tail probability given by its
/// logarithm: Newton steps on `log Φ`, which converge from any start in the lower tail.
pub(crate) fn ndtri_from_log(log_p: f64) -> f64 {
    // Start from the leading term of the tail asymptotics, -sqrt(-2 log p), or 0 near the centre.
    let mut x = if log_p < -1.0 {
        -(-2.0 * log_p).sqrt()
    } else {
        0.0
    };
    for _ in 0..100 {
        let lcdf = log_ndtr(x);
        let log_pdf = -0.5 * x * x - 0.5 * (2.0 * PI).ln();
        let step = (lcdf - log_p) / (log_pdf - lcdf).exp();
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ndtr_matches_scipy_in_the_far_tail() {
        // scipy.special.log_ndtr(-40) = -804.6084420137538
        assert!((log_ndtr(-40.0) - -804.608_442_013_753_8).abs() < 1e-9);
        // scipy.special.log_ndtr(-5) = -15.064998393988725
        assert!((log_ndtr(-5.0) - -15.064_998_393_988_725).abs() < 1e-12);
        assert!((ndtr(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
    }

    #[test]
    fn quantile_inverts_log_cdf() {
        for log_p in [-115.0, -50.0, -5.0, -0.7] {
            let x = ndtri_from_log(log_p);
            assert!((log_ndtr(x) - log_p).abs() < 1e-10 * log_p.abs(), "{log_p}");
        }
    }

    #[test]
    fn log_helpers_agree_with_direct_evaluation() {
        assert!((log_add(1.0_f64.ln(), 2.0_f64.ln()) - 3.0_f64.ln()).abs() < 1e-15);
        let (pos, mag) = log_sub_sign(2.0_f64.ln(), 5.0_f64.ln());
        assert!(!pos && (mag - 3.0_f64.ln()).abs() < 1e-15);
        assert!((log_comb(10.0, 3.0) - 120.0_f64.ln()).abs() < 1e-12);
        let v = log_a_exp_b_plus_c(0.5, 1.0, -0.2).unwrap();
        assert!((v - (0.5 * 1.0_f64.exp() - 0.2).ln()).abs() < 1e-14);
        assert!(log_a_exp_b_plus_c(-1.0, 1.0, 0.5).is_none());
    }
}
