//! Client side: clip, rotate, scale, round, noise and wrap one member's update.

use rand_core::{CryptoRng, RngCore};

use super::clip::{clip_factor, l2_norm};
use super::error::{Error, Result};
use super::noise::{AliasTable, NoiseDistribution};
use super::plan::{DpPlan, NoiseShare};
use super::rotation::{Signs, fwht};
use super::rounding::round_with;
use crate::keystream::Keystream;

/// Coordinates per keystream refill when adding noise (their bytes stay in L1).
const NOISE_BATCH: usize = 1024;
/// Keystream bytes an alias-table noise draw reads up front.
const NOISE_BYTES: usize = (super::noise::HEAD_BITS / 8) as usize;

/// A member's encoded update: the input of secure aggregation.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedUpdate {
    /// One value per coordinate of [`DpPlan::vector_len`], each below 2^bits.
    pub values: Vec<u32>,
    /// The modulus exponent (the plan's).
    pub bits: u32,
    /// Whether the update was scaled down to the clip. Local information only: the server
    /// learns clipping solely through the noised indicator sum.
    pub clipped: bool,
    /// Conditional rounding attempts used (1 almost always).
    pub rounding_attempts: u32,
}

impl std::fmt::Debug for EncodedUpdate {
    // Never print a member's values (even noised), only the shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedUpdate")
            .field("len", &self.values.len())
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

/// How a member draws its noise share.
#[derive(Debug, Clone)]
enum Sampler {
    /// Central mode: the member adds nothing.
    None,
    /// The fast path: one alias-table lookup per coordinate.
    Table(AliasTable),
    /// Noise too wide for a table: the exact samplers, one draw at a time.
    Exact(NoiseDistribution),
}

/// Encodes members' updates for one round's [`DpPlan`]. Build once per round (it derives the
/// rotation signs and the noise table), then encode any number of updates.
#[derive(Debug, Clone)]
pub struct Encoder {
    plan: DpPlan,
    signs: Signs,
    sampler: Sampler,
    bound_sq: u128,
}

impl Encoder {
    /// Validates `plan` and prepares the rotation and the noise sampler.
    pub fn new(plan: &DpPlan) -> Result<Self> {
        plan.validate()?;
        let distribution = match plan.noise {
            NoiseShare::Skellam { local_mu } => Some(NoiseDistribution::Skellam { mu: local_mu }),
            NoiseShare::DiscreteGaussian { local_sigma } => {
                Some(NoiseDistribution::DiscreteGaussian { sigma: local_sigma })
            }
            NoiseShare::Central { .. } => None,
        };
        let sampler = match distribution {
            None => Sampler::None,
            Some(d) => AliasTable::new(d).map_or(Sampler::Exact(d), Sampler::Table),
        };
        let bound = plan.l2_bound();
        Ok(Encoder {
            signs: Signs::from_seed(&plan.rotation_seed, plan.padded_dimension()),
            sampler,
            bound_sq: (bound * bound).floor() as u128,
            plan: plan.clone(),
        })
    }

    /// The plan this encoder follows.
    pub fn plan(&self) -> &DpPlan {
        &self.plan
    }

    /// Encodes one update of [`DpPlan::dimension`] coordinates: L2-clip to `C`, rotate,
    /// scale, conditionally round, set the clip indicator, add this member's noise share,
    /// wrap into Z_{2^bits}.
    pub fn encode<R: RngCore + CryptoRng + ?Sized>(
        &self,
        update: &[f32],
        rng: &mut R,
    ) -> Result<EncodedUpdate> {
        let plan = &self.plan;
        if update.len() != plan.dimension as usize {
            return Err(Error::Length {
                what: "update",
                expected: plan.dimension as usize,
                got: update.len(),
            });
        }
        let norm = l2_norm(update)?;
        let factor = clip_factor(norm, plan.clip);
        let padded = self.signs.len();
        let mut rotated = vec![0.0f32; padded];
        self.signs.apply_f32(update, &mut rotated);
        fwht(&mut rotated);
        let mut values = vec![0u32; plan.vector_len()];
        // Clip, scale and the rotation's 1/√n in one gain; the clipped norm is at most C up to
        // float error, and conditional rounding enforces the integer bound exactly anyway.
        let gain = factor * plan.scale / (padded as f64).sqrt();
        // One ChaCha20 keystream, keyed from the caller's RNG, feeds the rounding coins and
        // the alias-table noise at SIMD speed.
        let mut stream = Keystream::from_rng(rng);
        let rounding_attempts = round_with(
            &rotated,
            gain,
            self.bound_sq,
            &mut values[..padded],
            &mut stream,
        )?;
        let clipped = norm > plan.clip;
        if let Some(indicator) = &plan.clip_indicator {
            let weight = i64::from(indicator.weight);
            values[padded] = (if clipped { -weight } else { weight }) as u32;
        }
        self.add_noise_and_wrap(&mut values, &mut stream, rng)?;
        Ok(EncodedUpdate {
            values,
            bits: plan.bits,
            clipped,
            rounding_attempts,
        })
    }

    /// Adds this member's noise share to every coordinate and wraps into Z_{2^bits}, in one
    /// pass (the sum is mod 2^32 before the mask). Table draws come from `stream`; the exact
    /// samplers (noise too wide for a table) from the caller's `rng`.
    fn add_noise_and_wrap<R: RngCore + CryptoRng + ?Sized>(
        &self,
        values: &mut [u32],
        stream: &mut Keystream,
        rng: &mut R,
    ) -> Result<()> {
        let mask = value_mask(self.plan.bits);
        match &self.sampler {
            Sampler::None => values.iter_mut().for_each(|v| *v &= mask),
            Sampler::Table(table) => {
                let mut bytes = [0u8; NOISE_BYTES * NOISE_BATCH];
                for chunk in values.chunks_mut(NOISE_BATCH) {
                    let heads = &mut bytes[..NOISE_BYTES * chunk.len()];
                    stream.fill(heads)?;
                    for (v, head) in chunk.iter_mut().zip(heads.chunks_exact(NOISE_BYTES)) {
                        let head = u32::from_be_bytes([0, head[0], head[1], head[2]]);
                        let noise = match table.sample_head(head) {
                            Some(noise) => noise,
                            None => table.sample_tie(head, stream.next_u64()?),
                        };
                        *v = v.wrapping_add(noise as u32) & mask;
                    }
                }
            }
            Sampler::Exact(distribution) => {
                for v in values.iter_mut() {
                    *v = v.wrapping_add(distribution.sample_exact(rng) as u32) & mask;
                }
            }
        }
        Ok(())
    }
}

/// 2^bits − 1 as a word mask (bits in 1..=32).
pub(crate) fn value_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}
