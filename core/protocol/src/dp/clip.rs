//! L2 clipping of a whole update, and adaptive clipping (Andrew et al., NeurIPS 2021).
//!
//! Clipping bounds one member's influence on the sum: whatever the member's data, its
//! update enters with L2 norm at most `C`. With adaptive clipping the server moves `C`
//! geometrically towards the `γ`-quantile of the members' update norms, learning that
//! quantile only from a securely summed and noised count of the members whose update was
//! within the clip (one extra coordinate of the encoded vector, see [`super::DpPlan`]).

use serde::{Deserialize, Serialize};

use super::error::{Error, Result, check_positive, check_range};

/// The L2 norm of `update` (accumulated in f64); fails on a NaN or infinite coordinate.
pub fn l2_norm(update: &[f32]) -> Result<f64> {
    finite_norm(sum_of_squares(update), update)
}

/// `Σ x²` over `update` in f64 (non-finite when any coordinate is).
fn sum_of_squares(update: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    accumulate_squares(&mut lanes, update);
    lanes.iter().sum()
}

/// Adds `x²` (in f64) of each of `update` to `lanes`: coordinate `i` of each whole chunk
/// of 8 to lane `i`, then the remainder's coordinate `j` to lane `j`. Eight independent
/// accumulators let the compiler vectorize (and `covey_simd` reproduce the sum exactly).
pub(crate) fn accumulate_squares(lanes: &mut [f64; 8], update: &[f32]) {
    let mut chunks = update.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(x) * f64::from(x);
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += f64::from(x) * f64::from(x);
    }
}

/// `√sum` for the [`sum_of_squares`] of `update`; a NaN or infinity anywhere makes the sum
/// non-finite, and only then is the culprit looked for.
pub(crate) fn finite_norm(sum: f64, update: &[f32]) -> Result<f64> {
    if !sum.is_finite() {
        let index = update.iter().position(|x| !x.is_finite()).unwrap_or(0);
        return Err(Error::NonFinite { index });
    }
    Ok(sum.sqrt())
}

/// The factor that scales a vector of norm `norm` to norm at most `clip`: 1 when it is
/// already within the clip.
pub fn clip_factor(norm: f64, clip: f64) -> f64 {
    if norm > clip { clip / norm } else { 1.0 }
}

/// `update` scaled to L2 norm at most `clip` (a copy), and whether it had to be scaled.
pub fn clip_l2(update: &[f32], clip: f64) -> Result<(Vec<f32>, bool)> {
    check_positive("clip", clip)?;
    let norm = l2_norm(update)?;
    let factor = clip_factor(norm, clip);
    // Scale in f64 and round towards zero so f32 rounding can never push the norm above C.
    let clipped = update
        .iter()
        .map(|&x| {
            let y = (f64::from(x) * factor) as f32;
            if f64::from(y).abs() > (f64::from(x) * factor).abs() {
                next_toward_zero(y)
            } else {
                y
            }
        })
        .collect();
    Ok((clipped, norm > clip))
}

fn next_toward_zero(y: f32) -> f32 {
    if y == 0.0 {
        y
    } else {
        f32::from_bits(y.to_bits() - 1)
    }
}

/// Andrew et al.'s geometric clip update: `C ← C · exp(−η (b̃ − γ))`, where `b̃` is the
/// (noised) fraction of members whose update norm was at most `C`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveClipping {
    /// Target quantile γ of the update norms, in (0, 1) (paper default 0.5).
    pub target_quantile: f64,
    /// Learning rate η of the geometric update, > 0 (paper default 0.2).
    pub learning_rate: f64,
    /// Standard deviation σ_b of the noise on the count of unclipped members, in members
    /// (paper default: expected members per round / 20).
    pub count_stddev: f64,
}

impl AdaptiveClipping {
    /// The paper's defaults for a cohort of `members`: γ = 0.5, η = 0.2, σ_b = members / 20.
    pub fn defaults_for(members: u32) -> Self {
        AdaptiveClipping {
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_stddev: f64::from(members) / 20.0,
        }
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<()> {
        check_range(
            "target_quantile",
            self.target_quantile,
            f64::MIN_POSITIVE,
            1.0 - f64::EPSILON,
            "a quantile in (0, 1)",
        )?;
        check_positive("learning_rate", self.learning_rate)?;
        check_positive("count_stddev", self.count_stddev)?;
        Ok(())
    }

    /// The next round's clip from this round's `clip` and the noised fraction of members
    /// within it (clamped to [0, 1] first: noise can push the estimate outside).
    pub fn next_clip(&self, clip: f64, unclipped_fraction: f64) -> f64 {
        let b = unclipped_fraction.clamp(0.0, 1.0);
        clip * (-self.learning_rate * (b - self.target_quantile)).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm_and_keeps_small_updates() {
        let (small, clipped) = clip_l2(&[0.3, 0.4], 1.0).unwrap();
        assert_eq!((small, clipped), (vec![0.3, 0.4], false));
        let (big, clipped) = clip_l2(&[3.0, 4.0], 1.0).unwrap();
        assert!(clipped);
        assert!(l2_norm(&big).unwrap() <= 1.0);
        assert!((big[0] - 0.6).abs() < 1e-6 && (big[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn non_finite_coordinates_are_rejected_by_position() {
        assert_eq!(
            l2_norm(&[1.0, f32::NAN]),
            Err(Error::NonFinite { index: 1 })
        );
    }

    #[test]
    fn clip_moves_towards_the_target_quantile() {
        let a = AdaptiveClipping::defaults_for(100);
        assert!(a.next_clip(1.0, 0.9) < 1.0, "too many unclipped: shrink");
        assert!(a.next_clip(1.0, 0.1) > 1.0, "too many clipped: grow");
        assert_eq!(a.next_clip(1.0, 0.5), 1.0);
        assert_eq!(a.next_clip(1.0, 7.0), a.next_clip(1.0, 1.0));
    }
}
