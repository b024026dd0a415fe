//! Server side: unwrap the modular sum, descale, inverse-rotate, average, and say how much
//! noise the result carries.

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use super::encode::value_mask;
use super::error::{Error, Result};
use super::noise::gaussian;
use super::plan::{DpPlan, NoiseShare};
use super::rotation::{Signs, Stages, transform_block};

/// The decoded mean update of one round and its error budget.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedUpdate {
    /// The noised mean of the survivors' clipped updates, [`DpPlan::dimension`] coordinates.
    pub mean: Vec<f32>,
    /// Members whose updates are in the sum.
    pub survivors: u32,
    /// Standard deviation of the DP noise in each coordinate of `mean` (model units), for
    /// the survivors actually summed.
    pub noise_stddev: f64,
    /// Upper bound on the standard deviation of the rounding error in each coordinate.
    pub rounding_stddev: f64,
    /// The adaptive-clipping estimate, when the plan carries the indicator.
    pub clip: Option<ClipEstimate>,
}

impl DecodedUpdate {
    /// Predicted standard deviation of `mean − (true mean of the clipped updates)` per
    /// coordinate: noise and rounding combined.
    pub fn error_stddev(&self) -> f64 {
        self.noise_stddev.hypot(self.rounding_stddev)
    }
}

/// What the server learns about clipping from the noised indicator coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipEstimate {
    /// Noised fraction of survivors whose update norm was within the clip (may leave
    /// [0, 1] through noise; the clip update clamps it).
    pub unclipped_fraction: f64,
    /// Standard deviation of that fraction's noise.
    pub fraction_stddev: f64,
    /// The clip the adaptive rule proposes for the next round.
    pub next_clip: f64,
}

/// Decodes the unmasked sums of one round's [`DpPlan`].
#[derive(Debug, Clone)]
pub struct Decoder {
    plan: DpPlan,
    signs: Signs,
}

impl Decoder {
    /// Validates `plan` and derives the rotation.
    pub fn new(plan: &DpPlan) -> Result<Self> {
        plan.validate()?;
        Ok(Decoder {
            signs: Signs::from_seed(&plan.rotation_seed, plan.padded_dimension()),
            plan: plan.clone(),
        })
    }

    /// The plan this decoder follows.
    pub fn plan(&self) -> &DpPlan {
        &self.plan
    }

    /// Decodes a distributed-DP sum (`sum` = the wrapping sum mod 2^`bits` of `survivors`
    /// members' encoded updates). Central-mode plans need [`Decoder::decode_central`].
    pub fn decode(&self, sum: &[u32], bits: u32, survivors: u32) -> Result<DecodedUpdate> {
        if matches!(self.plan.noise, NoiseShare::Central { .. }) {
            return Err(Error::WrongMode(
                "a central-mode sum carries no noise yet: decode it with decode_central",
            ));
        }
        let lifted = self.lift(sum, bits, survivors)?;
        Ok(self.finish(lifted, survivors))
    }

    /// **Central mode (weaker):** decodes the exact sum and adds the server's Gaussian noise
    /// before anything else touches it. The server saw the un-noised sum; privacy rests on
    /// it running this and keeping nothing else.
    pub fn decode_central<R: RngCore + CryptoRng + ?Sized>(
        &self,
        sum: &[u32],
        bits: u32,
        survivors: u32,
        rng: &mut R,
    ) -> Result<DecodedUpdate> {
        let NoiseShare::Central { server_stddev } = self.plan.noise else {
            return Err(Error::WrongMode(
                "a distributed-DP sum is already noised: decode it with decode",
            ));
        };
        let mut lifted = self.lift(sum, bits, survivors)?;
        for v in &mut lifted {
            *v += server_stddev * gaussian(rng);
        }
        Ok(self.finish(lifted, survivors))
    }

    /// Checks the sum against the plan and lifts each value to its centered representative
    /// in `[-2^{bits-1}, 2^{bits-1})`.
    fn lift(&self, sum: &[u32], bits: u32, survivors: u32) -> Result<Vec<f64>> {
        let plan = &self.plan;
        if bits != plan.bits {
            return Err(Error::BitsMismatch {
                expected: plan.bits,
                got: bits,
            });
        }
        if sum.len() != plan.vector_len() {
            return Err(Error::Length {
                what: "sum",
                expected: plan.vector_len(),
                got: sum.len(),
            });
        }
        if survivors < plan.min_survivors {
            return Err(Error::TooFewSurvivors {
                survivors,
                min_survivors: plan.min_survivors,
            });
        }
        if survivors > plan.cohort {
            return Err(Error::TooManySurvivors {
                survivors,
                cohort: plan.cohort,
            });
        }
        let mask = value_mask(bits);
        if let Some(index) = sum.iter().position(|&v| v & !mask != 0) {
            return Err(Error::ValueOutOfRange { index, bits });
        }
        let modulus = 1i64 << bits;
        let half = modulus / 2;
        Ok(sum
            .iter()
            .map(|&v| {
                let v = i64::from(v);
                (if v >= half { v - modulus } else { v }) as f64
            })
            .collect())
    }

    /// `unit · D·H·lifted` truncated to the plan's dimension, in two sweeps (as
    /// [`super::rotation::fwht`]):
    /// the second stage applies the signs and the scale to each tile and writes the result
    /// straight into the mean. Overwrites `lifted`.
    fn inverse_rotation(&self, lifted: &mut [f64], unit: f64) -> Vec<f32> {
        let stages = Stages::of(lifted.len());
        lifted
            .chunks_exact_mut(stages.block)
            .for_each(transform_block);
        let dimension = self.plan.dimension as usize;
        let mut mean = vec![0.0f32; dimension];
        let mut tile = vec![0.0f64; stages.tile_len()];
        for col in stages.columns() {
            stages.gather(lifted, col, &mut tile);
            stages.transform_tile(&mut tile);
            for (r, row) in tile.chunks_exact(stages.width).enumerate() {
                let start = r * stages.block + col;
                if let Some(out) = mean.get_mut(start..dimension.min(start + stages.width)) {
                    self.signs.apply_f64_scaled(start, row, unit, out);
                }
            }
        }
        mean
    }

    fn finish(&self, mut lifted: Vec<f64>, survivors: u32) -> DecodedUpdate {
        let plan = &self.plan;
        let padded = self.signs.len();
        let members = f64::from(survivors);
        let clip = plan.clip_indicator.map(|indicator| {
            let weight = f64::from(indicator.weight);
            let fraction = (lifted[padded] / weight + members) / (2.0 * members);
            let noise = plan.summed_noise_variance(survivors).sqrt();
            ClipEstimate {
                unclipped_fraction: fraction,
                fraction_stddev: noise / (2.0 * weight * members),
                next_clip: indicator.adaptive.next_clip(plan.clip, fraction),
            }
        });
        lifted.truncate(padded);
        let unit = 1.0 / ((padded as f64).sqrt() * plan.scale * members);
        let mean = self.inverse_rotation(&mut lifted, unit);
        DecodedUpdate {
            mean,
            survivors,
            noise_stddev: plan.summed_noise_variance(survivors).sqrt() / (plan.scale * members),
            rounding_stddev: (members / 4.0).sqrt() / (plan.scale * members),
            clip,
        }
    }
}
