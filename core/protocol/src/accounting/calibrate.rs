//! Calibration: the least noise that meets a privacy target.

use super::accountant::{AccountantKind, epsilon_for_events};
use super::error::{Error, Result, check_positive, check_range};
use super::event::Mechanism;
use super::event::{PrivacyEvent, Sampling};

/// Relative width at which the bisection stops.
const RELATIVE_TOLERANCE: f64 = 1e-6;
/// Upper end of the bracket search (doubling from 1).
const MAX_PARAMETER: f64 = 1e12;

/// The smallest parameter `p` (within 1e-6 relative) such that the events
/// `events_for(p)` are (`target_epsilon`, `delta`)-DP under the `kind` accountant, for a
/// parameter whose growth only adds noise (a noise multiplier, a Skellam μ, a local
/// standard deviation). The returned value always meets the target (the upper end of the
/// final bracket).
///
/// A candidate whose privacy loss distribution is too large to discretize counts as missing
/// the target: that only happens at negligible noise, far below any useful answer.
pub fn calibrate(
    kind: AccountantKind,
    target_epsilon: f64,
    delta: f64,
    events_for: impl Fn(f64) -> Vec<PrivacyEvent>,
) -> Result<f64> {
    check_positive("target_epsilon", target_epsilon)?;
    check_range(
        "delta",
        delta,
        f64::MIN_POSITIVE,
        1.0,
        "a probability in (0, 1]",
    )?;
    let meets = |p: f64| -> Result<bool> {
        match epsilon_for_events(kind, &events_for(p), delta) {
            Ok(eps) => Ok(eps <= target_epsilon),
            Err(Error::DistributionTooLarge { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let (mut lower, mut upper) = (0.0, 1.0);
    while !meets(upper)? {
        lower = upper;
        upper *= 2.0;
        if upper > MAX_PARAMETER {
            return Err(Error::CalibrationFailed {
                target_epsilon,
                max_searched: MAX_PARAMETER,
            });
        }
    }
    while upper - lower > RELATIVE_TOLERANCE * upper {
        let mid = 0.5 * (lower + upper);
        if meets(mid)? {
            upper = mid;
        } else {
            lower = mid;
        }
    }
    Ok(upper)
}

/// The smallest Gaussian noise multiplier for which `steps` releases under `sampling` are
/// (`target_epsilon`, `delta`)-DP.
pub fn calibrate_noise_multiplier(
    kind: AccountantKind,
    target_epsilon: f64,
    delta: f64,
    sampling: Sampling,
    steps: u64,
) -> Result<f64> {
    calibrate(kind, target_epsilon, delta, |z| {
        vec![PrivacyEvent {
            mechanism: Mechanism::Gaussian {
                noise_multiplier: z,
            },
            sampling,
            count: steps,
        }]
    })
}
