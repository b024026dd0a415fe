//! Client side: clip, rotate, scale, round, noise and wrap one member's update.

use rand_core::{CryptoRng, RngCore};

use super::clip::{clip_factor, finite_norm};
use super::coins::Coins;
use super::error::{Error, Result};
use super::noise::{AliasTable, HEAD_BYTES, NoiseDistribution, SummedAliasTable};
use super::plan::{DpPlan, NoiseShare};
use super::rotation::{Signs, Stages, copy_row, transform_block};
use super::rounding::{BATCH, COIN_BYTES, MAX_ATTEMPTS, exact_norm_sq, round_batch, within_bound};

/// Relative room left under the clip for the f32 rotation's rounding error: each of the
/// transform's L ≤ 32 butterfly levels adds at most 2^-24 of the output norm, so L · 2^-24 ≤
/// 2^-19 < 2^-16. Shrinks clipped updates by 0.0015 %, far below any noise.
const FLOAT_ROOM: f64 = 1.0 / 65_536.0;

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

impl Default for EncodedUpdate {
    /// An empty update for [`Encoder::encode_into`] to fill.
    fn default() -> Self {
        EncodedUpdate {
            values: Vec::new(),
            bits: 0,
            clipped: false,
            rounding_attempts: 0,
        }
    }
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

/// The working memory of [`Encoder::encode_into`], kept by a caller that encodes more than
/// once (the SDK across rounds, a benchmark across iterations) so that its megabytes are not
/// freshly allocated and page-faulted on every call. Holds the last update's rotation until
/// the next call or drop.
#[derive(Default)]
pub struct EncodeScratch {
    /// The rotation after its first stage (padded length, from `rotated_start`).
    rotated: Vec<f32>,
    /// Where the rotation starts in `rotated` ([`rotation_start`]).
    rotated_start: usize,
    /// One second-stage tile of the rotation.
    tile: Vec<f32>,
    /// One batch of the tile's coordinates in keystream order, contiguous.
    chunk: Vec<f32>,
    /// The encoded tile, written to the output row by row once it is complete.
    encoded_tile: Vec<u32>,
    /// Rounded values of one batch, before they are scattered to the output.
    batch: Vec<u32>,
    /// Keystream bytes of one batch: rounding coin heads and noise heads.
    coin_heads: Vec<u8>,
    noise_heads: Vec<u8>,
}

impl std::fmt::Debug for EncodeScratch {
    // Never print a member's (rotated) values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeScratch")
            .field("len", &self.rotated.len())
            .finish_non_exhaustive()
    }
}

impl EncodeScratch {
    /// Sizes every buffer for a transform split as `stages` and places the rotation apart
    /// from `output` (the encoded vector the tile stage writes).
    fn prepare(&mut self, padded: usize, stages: Stages, output: &[u32]) {
        let row_bytes = 4 * stages.block;
        self.rotated.resize(padded + (row_bytes + LINE) / 4, 0.0);
        self.rotated_start = rotation_start(&self.rotated, row_bytes, output);
        self.tile.resize(stages.tile_len() + WORDS_PER_LINE, 0.0);
        self.chunk.resize(BATCH + WORDS_PER_LINE, 0.0);
        self.encoded_tile
            .resize(stages.tile_len() + WORDS_PER_LINE, 0);
        self.batch.resize(BATCH + WORDS_PER_LINE, 0);
        self.coin_heads.resize(COIN_BYTES * BATCH, 0);
        self.noise_heads.resize(HEAD_BYTES * BATCH, 0);
    }
}

/// Bytes per cache line (and per AVX-512 vector).
const LINE: usize = 64;
/// 4-byte elements (f32, u32) per line: the slack a [`line_aligned`] buffer needs.
const WORDS_PER_LINE: usize = LINE / 4;

/// Where the rotation starts in `rotated`: on a cache line, and with its rows (`row_bytes`
/// apart, gathered by the tile stage) half a row stride away, modulo the stride, from the
/// rows of `output` that the same stage writes. Why: rows 16 KiB apart fall into a few cache
/// sets, and when the two arrays' rows landed in the same ones (by the chance of where the
/// allocator put them) the encode took twice as long in some runs of the bench.
fn rotation_start(rotated: &[f32], row_bytes: usize, output: &[u32]) -> usize {
    let aligned = rotated.as_ptr().align_offset(LINE).min(WORDS_PER_LINE);
    let at = rotated.as_ptr() as usize + 4 * aligned;
    let gap = at.wrapping_sub(output.as_ptr() as usize) % row_bytes.max(1);
    let shift = (row_bytes / 2 + row_bytes - gap) % row_bytes.max(1) / LINE * LINE;
    aligned + shift / 4
}

/// The `len` elements of `buffer` from its first [`LINE`]-aligned element. Why: a vector or
/// tile row that straddles two cache lines costs two accesses (and, in the tile stage's
/// strided gathers, two line fills); `buffer` holds `LINE` bytes of slack for the shift
/// ([`EncodeScratch::prepare`]).
fn line_aligned<T>(buffer: &mut [T], len: usize) -> &mut [T] {
    let start = buffer.as_ptr().align_offset(LINE).min(buffer.len() - len);
    &mut buffer[start..start + len]
}

/// How a member draws its noise share.
#[derive(Debug, Clone)]
enum Sampler {
    /// Central mode: the member adds nothing.
    None,
    /// The fast path: one alias-table lookup per coordinate.
    Table(AliasTable),
    /// Skellam too wide for one table: a few lookups per coordinate in a narrower one.
    TableSum(SummedAliasTable),
    /// Noise too wide for a table or a short sum of table draws: the exact samplers, one
    /// draw at a time.
    Exact(NoiseDistribution),
}

/// How an [`Encoder`] draws each coordinate's noise share ([`Encoder::noise_sampling`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseSampling {
    /// Central mode: members add no noise.
    None,
    /// One alias-table draw per coordinate.
    Table,
    /// The sum of `draws` alias-table draws per coordinate ([`SummedAliasTable`]).
    TableSum {
        /// Table draws per coordinate.
        draws: u32,
    },
    /// The exact samplers (Poisson PTRS, CKS discrete Gaussian) per coordinate.
    Exact,
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
            // Skellam: the fewest table draws that fit (one table when it does).
            Some(d @ NoiseDistribution::Skellam { .. }) => match SummedAliasTable::new(d) {
                Ok(sum) if sum.draws() == 1 => Sampler::Table(sum.into_table()),
                Ok(sum) => Sampler::TableSum(sum),
                Err(_) => Sampler::Exact(d),
            },
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

    /// How this encoder draws the plan's noise share (decided by its width).
    pub fn noise_sampling(&self) -> NoiseSampling {
        match &self.sampler {
            Sampler::None => NoiseSampling::None,
            Sampler::Table(_) => NoiseSampling::Table,
            Sampler::TableSum(sum) => NoiseSampling::TableSum { draws: sum.draws() },
            Sampler::Exact(_) => NoiseSampling::Exact,
        }
    }

    /// Encodes one update of [`DpPlan::dimension`] coordinates: L2-clip to `C`, rotate,
    /// scale, conditionally round, set the clip indicator, add this member's noise share,
    /// wrap into Z_{2^bits}. Allocates its working memory; [`Self::encode_into`] reuses it.
    pub fn encode<R: RngCore + CryptoRng + ?Sized>(
        &self,
        update: &[f32],
        rng: &mut R,
    ) -> Result<EncodedUpdate> {
        let mut encoded = EncodedUpdate::default();
        self.encode_into(update, rng, &mut EncodeScratch::default(), &mut encoded)?;
        Ok(encoded)
    }

    /// [`Self::encode`] into `out` (its buffer reused), with working memory from `scratch`.
    /// The result is the same as [`Self::encode`]'s for the same `rng` state; on error `out`
    /// holds no valid update.
    ///
    /// Two sweeps over the padded vector: the first rotates contiguous blocks in L1 (sign
    /// flips, norm and the first 12 Hadamard passes); the second finishes the rotation on
    /// column tiles and, batch by batch while the tile is in cache, scales, rounds, adds the
    /// noise and wraps, drawing each batch's keystream just before it is used.
    pub fn encode_into<R: RngCore + CryptoRng + ?Sized>(
        &self,
        update: &[f32],
        rng: &mut R,
        scratch: &mut EncodeScratch,
        out: &mut EncodedUpdate,
    ) -> Result<()> {
        let plan = &self.plan;
        if update.len() != plan.dimension as usize {
            return Err(Error::Length {
                what: "update",
                expected: plan.dimension as usize,
                got: update.len(),
            });
        }
        let padded = self.signs.len();
        let stages = Stages::of(padded);
        out.values.resize(plan.vector_len(), 0);
        scratch.prepare(padded, stages, &out.values);
        let rotated = &mut scratch.rotated[scratch.rotated_start..][..padded];
        let norm = finite_norm(self.rotate_blocks(update, rotated, stages), update)?;
        // Clip, scale and the rotation's 1/√n in one gain. The clip target sits FLOAT_ROOM
        // below C so that the f32 rotation's error cannot lift the scaled norm above the
        // plan's c: conditional rounding's slack over c is only about half an integer unit,
        // which fine 32-bit scales (c ~ 10^9) would otherwise eat, failing every attempt.
        let gain =
            clip_factor(norm, plan.clip * (1.0 - FLOAT_ROOM)) * plan.scale / (padded as f64).sqrt();
        let values = &mut out.values;
        // ChaCha20 keystreams keyed from the caller's RNG feed the rounding coins and the
        // alias-table noise at SIMD speed.
        let mut coins = Coins::from_rng(rng);
        out.rounding_attempts = self.round_conditionally(
            stages,
            gain,
            scratch,
            &mut values[..padded],
            &mut coins,
            rng,
        )?;
        out.clipped = norm > plan.clip;
        out.bits = plan.bits;
        if let Some(indicator) = &plan.clip_indicator {
            let weight = i64::from(indicator.weight);
            values[padded] = (if out.clipped { -weight } else { weight }) as u32;
        }
        // Noise for what the fused pass left un-noised: the indicator, or everything when
        // the noise comes from the exact samplers.
        let rest = if self.noise_in_rounding_pass() {
            &mut values[padded..]
        } else {
            &mut values[..]
        };
        self.add_noise_and_wrap(rest, &mut scratch.noise_heads, &mut coins, rng)
    }

    /// The first stage of the rotation, block by block: `rotated = D·update` (zero padded)
    /// with each block's first Hadamard passes run while it is in L1. Returns `Σ update²`.
    fn rotate_blocks(&self, update: &[f32], rotated: &mut [f32], stages: Stages) -> f64 {
        let mut sum = 0.0;
        for (b, block) in rotated.chunks_exact_mut(stages.block).enumerate() {
            let start = b * stages.block;
            let input = update
                .get(start..)
                .map_or(&[][..], |rest| &rest[..rest.len().min(stages.block)]);
            let mut lanes = [0.0f64; 8];
            self.signs
                .apply_f32_and_square(start, input, block, &mut lanes);
            sum += lanes.iter().sum::<f64>();
            transform_block(block);
        }
        sum
    }

    /// Conditional rounding: rounding passes until the rounded norm is within the plan's
    /// bound; returns the attempts used. A pass whose fast norm is too close to the bound to
    /// tell is replayed from the same keystream offset, which reproduces it bit for bit, with
    /// the norm counted exactly.
    fn round_conditionally<R: RngCore + CryptoRng + ?Sized>(
        &self,
        stages: Stages,
        gain: f64,
        scratch: &mut EncodeScratch,
        values: &mut [u32],
        coins: &mut Coins,
        rng: &mut R,
    ) -> Result<u32> {
        for attempt in 1..=MAX_ATTEMPTS {
            let start = coins.position();
            let mut pass = |exact, coins: &mut Coins| {
                self.round_pass(stages, gain, exact, scratch, values, coins, rng)
            };
            let (norm_sq, _) = pass(false, coins)?;
            let within = match within_bound(norm_sq, self.bound_sq) {
                Some(within) => within,
                None => {
                    coins.seek(start)?;
                    pass(true, coins)?.1 <= self.bound_sq
                }
            };
            if within {
                return Ok(attempt);
            }
        }
        Err(Error::RoundingFailed {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// One rounding attempt over the whole vector: the rotation's second stage tile by
    /// tile, each tile rounded (and noised and wrapped, when the noise comes from the alias
    /// table or there is none) batch by batch and scattered to `values`. Returns the rounded
    /// squared norm as [`within_bound`] takes it and, when `exact`, counted exactly.
    #[allow(clippy::too_many_arguments)]
    fn round_pass<R: RngCore + CryptoRng + ?Sized>(
        &self,
        stages: Stages,
        gain: f64,
        exact: bool,
        scratch: &mut EncodeScratch,
        values: &mut [u32],
        coins: &mut Coins,
        rng: &mut R,
    ) -> Result<(f64, u128)> {
        let EncodeScratch {
            rotated,
            rotated_start,
            tile,
            chunk,
            encoded_tile,
            batch,
            coin_heads,
            noise_heads,
        } = scratch;
        let rotated = &rotated[*rotated_start..][..values.len()];
        let tile = line_aligned(tile, stages.tile_len());
        let chunk_buffer = line_aligned(chunk, BATCH);
        let encoded_tile = line_aligned(encoded_tile, stages.tile_len());
        let batch = line_aligned(batch, BATCH);
        // Each batch: `rows_per_batch` rows of one group of `order` columns.
        let order = stages.order_width;
        let rows_per_batch = (BATCH / order).min(stages.rows);
        let (mut norm_sq, mut exact_sq) = (0.0, 0u128);
        for col in stages.columns() {
            stages.gather(rotated, col, tile);
            stages.transform_tile(tile);
            for group in (0..stages.width).step_by(order) {
                for first_row in (0..stages.rows).step_by(rows_per_batch) {
                    let chunk = &mut chunk_buffer[..rows_per_batch * order];
                    for (r, dst) in chunk.chunks_exact_mut(order).enumerate() {
                        let at = (first_row + r) * stages.width + group;
                        copy_row(&tile[at..at + order], dst);
                    }
                    let rounded = &mut batch[..chunk.len()];
                    norm_sq += round_batch(chunk, gain, rounded, coin_heads, coins)?;
                    if exact {
                        exact_sq += exact_norm_sq(rounded);
                    }
                    if self.noise_in_rounding_pass() {
                        self.add_noise_and_wrap(rounded, noise_heads, coins, rng)?;
                    }
                    for (r, row) in rounded.chunks_exact(order).enumerate() {
                        let at = (first_row + r) * stages.width + group;
                        copy_row(row, &mut encoded_tile[at..at + order]);
                    }
                }
            }
            // Whole tile rows to the output: runs of `width` words, not of `order`.
            stages.scatter(encoded_tile, col, values);
        }
        Ok((norm_sq, exact_sq))
    }

    /// Whether the noise is drawn in the rounding pass: alias-table draws (and the central
    /// mode's mere wrap) come from the replayable keystream; the exact samplers draw from
    /// the caller's RNG and run once, after the rounding is accepted.
    fn noise_in_rounding_pass(&self) -> bool {
        !matches!(self.sampler, Sampler::Exact(_))
    }

    /// Adds this member's noise share to every coordinate of `values` and wraps into
    /// Z_{2^bits} (the sum is mod 2^32 before the mask). Table draws come from `coins`
    /// through `heads` (at least [`HEAD_BYTES`]` · `[`BATCH`] bytes), one pass per summed
    /// draw over each batch while it is in L1; the exact samplers (noise too wide for a
    /// table) from the caller's `rng`.
    fn add_noise_and_wrap<R: RngCore + CryptoRng + ?Sized>(
        &self,
        values: &mut [u32],
        heads: &mut [u8],
        coins: &mut Coins,
        rng: &mut R,
    ) -> Result<()> {
        let mask = value_mask(self.plan.bits);
        match &self.sampler {
            Sampler::None => values.iter_mut().for_each(|v| *v &= mask),
            Sampler::Table(table) => add_table_draws(table, 1, values, heads, mask, coins)?,
            Sampler::TableSum(sum) => {
                add_table_draws(sum.table(), sum.draws(), values, heads, mask, coins)?
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

/// Adds `draws` draws of `table` to each of `values` and wraps with `mask`, batch by batch:
/// each draw's heads are one whole-KiB bulk read (see [`Coins`]).
fn add_table_draws(
    table: &AliasTable,
    draws: u32,
    values: &mut [u32],
    heads: &mut [u8],
    mask: u32,
    coins: &mut Coins,
) -> Result<()> {
    for chunk in values.chunks_mut(BATCH) {
        let heads = &mut heads[..HEAD_BYTES * chunk.len()];
        for _ in 0..draws {
            coins.bulk.fill(heads)?;
            table.add_draws(chunk, heads, mask, &mut coins.tails)?;
        }
    }
    Ok(())
}

/// 2^bits − 1 as a word mask (bits in 1..=32).
pub(crate) fn value_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::dp::noise::uniform;
    use crate::dp::plan::{NoiseKind, PlanRequest, choose_plan};
    use crate::dp::rotation::fwht;

    fn plan(dimension: u32, noise: NoiseKind) -> DpPlan {
        let mut request = PlanRequest::new(50, dimension, 1.0, 1.0, [9; 32]);
        request.noise = noise;
        choose_plan(&request).unwrap()
    }

    fn update(dimension: u32, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..dimension)
            .map(|_| (uniform(&mut rng) - 0.5) as f32 * 0.01)
            .collect()
    }

    #[test]
    fn rounded_values_sit_at_the_reference_rotation() {
        // Central mode adds no noise, so each value is the stochastic rounding of the scaled
        // rotation at its own index: one step from it at most. Sizes cover one block, a few
        // rows of wide tiles and many rows of one-line tiles.
        for dimension in [3_000, 20_000, 300_000] {
            let plan = plan(dimension, NoiseKind::Central);
            let encoder = Encoder::new(&plan).unwrap();
            let update = update(dimension, 1);
            let encoded = encoder
                .encode(&update, &mut ChaCha20Rng::seed_from_u64(2))
                .unwrap();
            let padded = plan.padded_dimension();
            let mut reference = vec![0.0f32; padded];
            encoder.signs.apply_f32(&update, &mut reference);
            let mut reference: Vec<f64> = reference.iter().map(|&x| f64::from(x)).collect();
            fwht(&mut reference);
            let norm = crate::dp::l2_norm(&update).unwrap();
            let gain = clip_factor(norm, plan.clip * (1.0 - FLOAT_ROOM)) * plan.scale
                / (padded as f64).sqrt();
            let mask = value_mask(plan.bits);
            for (i, (&v, &r)) in encoded.values.iter().zip(&reference).enumerate() {
                // The f32 rotation may sit a hair from the f64 one: measure from just below.
                let z = r * gain;
                let base = (z - 0.01).floor();
                let steps = (v.wrapping_sub(base as i64 as u32) & mask) as f64;
                assert!(
                    (base + steps - z).abs() < 1.01,
                    "n={dimension} coordinate {i}: {v} vs {z}"
                );
            }
        }
    }

    #[test]
    fn reused_scratch_gives_the_fresh_result() {
        let small = Encoder::new(&plan(3_000, NoiseKind::Skellam)).unwrap();
        let large = Encoder::new(&plan(300_000, NoiseKind::Skellam)).unwrap();
        let mut scratch = EncodeScratch::default();
        let mut out = EncodedUpdate::default();
        for (encoder, seed) in [(&large, 3), (&small, 4), (&large, 5)] {
            let update = update(encoder.plan().dimension, seed);
            let fresh = encoder
                .encode(&update, &mut ChaCha20Rng::seed_from_u64(seed))
                .unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            encoder
                .encode_into(&update, &mut rng, &mut scratch, &mut out)
                .unwrap();
            assert!(out == fresh, "seed {seed}");
        }
    }

    #[test]
    fn the_rotation_sits_on_a_line_half_a_row_stride_from_the_output() {
        let row_bytes = 16_384;
        let output = vec![0u32; 5_000];
        for extra in 0..32 {
            // Buffers at assorted addresses.
            let rotated = vec![0.0f32; 4_096 + (row_bytes + LINE) / 4 + extra];
            let start = rotation_start(&rotated, row_bytes, &output);
            assert!(start + 4_096 <= rotated.len());
            let at = rotated.as_ptr() as usize + 4 * start;
            assert_eq!(at % LINE, 0);
            let gap = at.wrapping_sub(output.as_ptr() as usize) % row_bytes;
            assert!(gap.abs_diff(row_bytes / 2) < LINE, "{gap}");
        }
    }

    #[test]
    fn the_exact_recount_replays_the_pass_bit_for_bit() {
        let encoder = Encoder::new(&plan(20_000, NoiseKind::Skellam)).unwrap();
        let padded = encoder.signs.len();
        let stages = Stages::of(padded);
        let mut scratch = EncodeScratch::default();
        let mut passes = [vec![0u32; padded], vec![0u32; padded]];
        scratch.prepare(padded, stages, &passes[0]);
        let rotated = &mut scratch.rotated[scratch.rotated_start..][..padded];
        let norm = encoder.rotate_blocks(&update(20_000, 6), rotated, stages);
        let gain = encoder.plan.scale / norm.sqrt().max(1.0) / (padded as f64).sqrt();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut coins = Coins::from_rng(&mut ChaCha20Rng::seed_from_u64(8));
        let mut norms = [(0.0, 0), (0.0, 0)];
        let mut ends = [(0, 0), (0, 0)];
        for (exact, (values, norm)) in passes.iter_mut().zip(&mut norms).enumerate() {
            coins.seek((0, 0)).unwrap();
            *norm = encoder
                .round_pass(
                    stages,
                    gain,
                    exact == 1,
                    &mut scratch,
                    values,
                    &mut coins,
                    &mut rng,
                )
                .unwrap();
            ends[exact] = coins.position();
        }
        assert!(passes[0] == passes[1], "the replay drew different values");
        // Both streams end where the first pass left them, tie tails included.
        assert!(ends[0] == ends[1] && ends[0].1 > 0, "{ends:?}");
        let exact = norms[1].1;
        assert!(exact > 0 && norms[0].0 == exact as f64, "{norms:?}");
        // The exact norm is of the rounding alone, before the noise and the wrap.
        assert!(exact < exact_norm_sq(&passes[1]));
    }
}
