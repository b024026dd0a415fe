//! Randomized Walsh–Hadamard rotation: `x ↦ H·D·x / √n` with `D` a diagonal of random signs.
//!
//! Why: after the rotation every coordinate of a member's update is a sign-randomized average
//! of all its coordinates, so no single coordinate carries a large share of the norm. That
//! keeps the per-coordinate range of the summed integers close to `‖x‖/√n` and lets modular
//! wrapping at a small bit width stay rare. The rotation is orthonormal, so it preserves the
//! L2 norm (and hence the clipping bound) and its inverse is `D·H·y / √n`.
//!
//! The signs come from ChaCha20 keyed with the 256-bit seed of the round plan, so every
//! member and the server derive the same `D` without exchanging it.

use std::ops::{Add, Sub};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::clip::accumulate_squares;

/// ChaCha20 stream used for the rotation signs, so that a seed reused elsewhere in a round
/// plan never yields the same keystream.
const SIGN_STREAM: u64 = 0x636f_7665_792d_7268; // "covey-rh"

/// Coordinates per cache-resident block in the first stage of the transform: 4096 f32
/// (16 KiB) or f64 (32 KiB) stay in L1 while log2(4096) = 12 butterfly passes run over them.
const BLOCK: usize = 4096;
/// Fewest columns per tile in the second stage: 64, four cache lines of f32 (f64: eight) per
/// strided row, so every line gathered is used whole and the rows' writes come in runs the
/// caches handle better than single lines 16 KiB apart (measured, encoder and f32 transform
/// of 2^20 interleaved: 16 columns 2.64 and 1.04 ms, 32: 2.56 and 0.78, 64: 2.41 and 0.73;
/// 128 and 256 no better).
const TILE_WIDTH: usize = 64;
/// Columns per group in the encoder's keystream order (the second-stage tile width before
/// tiles were widened to [`TILE_WIDTH`]): the encoder rounds, noises and wraps a tile's
/// columns in groups this wide, each group's rows in order, so that every coordinate still
/// draws the same coins and encodings stay bit for bit what they were.
const ORDER_WIDTH: usize = 16;
/// Coordinates a second-stage tile holds at least (when the vector has that many), so that
/// the per-tile work after the transform (the encoder's rounding batches) is not cut small.
const TILE_MIN: usize = 1024;

/// The random sign diagonal `D` of one round, one bit per padded coordinate (1 = negate).
#[derive(Clone, PartialEq, Eq)]
pub struct Signs {
    bits: Vec<u64>,
    len: usize,
}

impl std::fmt::Debug for Signs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signs").field("len", &self.len).finish()
    }
}

impl Signs {
    /// Derives `len` signs from the round plan's seed.
    pub fn from_seed(seed: &[u8; 32], len: usize) -> Self {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        rng.set_stream(SIGN_STREAM);
        let bits = (0..len.div_ceil(64)).map(|_| rng.next_u64()).collect();
        Signs { bits, len }
    }

    /// Number of signs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no signs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether coordinate `i` is negated.
    pub fn is_negative(&self, i: usize) -> bool {
        (self.bits[i / 64] >> (i % 64)) & 1 == 1
    }

    /// `out[i] = ±input[i]` for `i < input.len()`, zero for the padding beyond it.
    /// `out` must have `self.len()` coordinates and `input` at most that many.
    pub fn apply_f32(&self, input: &[f32], out: &mut [f32]) {
        self.apply_f32_from(0, input, out);
    }

    /// [`Self::apply_f32`] for the coordinates from `start` (a multiple of 64) on: `out[i] =
    /// ±input[i]` with the sign of coordinate `start + i`, zero beyond `input.len()`.
    pub(crate) fn apply_f32_from(&self, start: usize, input: &[f32], out: &mut [f32]) {
        debug_assert_eq!(start % 64, 0);
        let (body, padding) = out.split_at_mut(input.len());
        for ((chunk_out, chunk_in), &word) in body
            .chunks_mut(64)
            .zip(input.chunks(64))
            .zip(&self.bits[start / 64..])
        {
            for (j, (o, &x)) in chunk_out.iter_mut().zip(chunk_in).enumerate() {
                // Flip the IEEE sign bit: branch-free and exact.
                let flip = (((word >> j) & 1) as u32) << 31;
                *o = f32::from_bits(x.to_bits() ^ flip);
            }
        }
        padding.fill(0.0);
    }

    /// [`Self::apply_f32_from`] that also adds the squares of `input` to `lanes` as
    /// [`accumulate_squares`] does (one read of the input for both; AVX-512 where the CPU
    /// has it, for the whole sign words, with the same sums bit for bit).
    pub(crate) fn apply_f32_and_square(
        &self,
        start: usize,
        input: &[f32],
        out: &mut [f32],
        lanes: &mut [f64; 8],
    ) {
        debug_assert_eq!(start % 64, 0);
        let done = match covey_simd::Avx512::detect() {
            Some(simd) => {
                simd.flip_signs_and_square(input, &self.bits[start / 64..], out, lanes);
                input.len() / 64 * 64
            }
            None => 0,
        };
        accumulate_squares(lanes, &input[done..]);
        self.apply_f32_from(start + done, &input[done..], &mut out[done..]);
    }

    /// `out[i] = ±values[i] · unit` with the sign of coordinate `start + i`, for `i <
    /// out.len()` (the inverse rotation's `D` and scale on one stretch of a tile row).
    pub(crate) fn apply_f64_scaled(
        &self,
        start: usize,
        values: &[f64],
        unit: f64,
        out: &mut [f32],
    ) {
        let mut done = 0;
        while done < out.len() {
            let at = start + done;
            // The stretch within the sign word of coordinate `at`.
            let len = (64 - at % 64).min(out.len() - done);
            let word = self.bits[at / 64] >> (at % 64);
            let stretch = out[done..done + len]
                .iter_mut()
                .zip(&values[done..done + len]);
            for (j, (o, &v)) in stretch.enumerate() {
                let flip = ((word >> j) & 1) << 63;
                *o = (f64::from_bits(v.to_bits() ^ flip) * unit) as f32;
            }
            done += len;
        }
    }

    /// Negates the coordinates of `values` whose sign is negative (the `D` of the inverse).
    pub fn apply_in_place_f64(&self, values: &mut [f64]) {
        for (chunk, &word) in values.chunks_mut(64).zip(self.bits.iter()) {
            for (j, v) in chunk.iter_mut().enumerate() {
                let flip = ((word >> j) & 1) << 63;
                *v = f64::from_bits(v.to_bits() ^ flip);
            }
        }
    }
}

/// The padded length of a `dimension`-coordinate vector: the next power of two (at least 1).
pub fn padded_len(dimension: usize) -> usize {
    dimension.max(1).next_power_of_two()
}

/// Unnormalized in-place fast Walsh–Hadamard transform (`H·H = n·I`) of a power-of-two
/// length vector, in O(n log n). Callers fold the `1/√n` into their own scaling pass.
///
/// Memory traffic, not arithmetic, bounds this transform, so it makes two sweeps over the
/// vector instead of one per pass: seen as a `rows × block` matrix, the first stage
/// transforms each contiguous block of 4096 coordinates in L1 (all passes with half-width
/// below `block`), the second gathers columns (at least 64, four cache lines, wide) into a
/// contiguous tile, runs the remaining passes across its rows and writes it back.
pub fn fwht<T: Coordinate>(values: &mut [T]) {
    debug_assert!(values.len().is_power_of_two() || values.is_empty());
    let stages = Stages::of(values.len());
    values
        .chunks_exact_mut(stages.block)
        .for_each(transform_block);
    if stages.rows > 1 {
        let mut tile = vec![T::default(); stages.tile_len()];
        for col in stages.columns() {
            stages.gather(values, col, &mut tile);
            stages.transform_tile(&mut tile);
            stages.scatter(&tile, col, values);
        }
    }
}

/// The two-stage split of a length-`n` transform: `n = rows · block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stages {
    /// Contiguous coordinates transformed together in the first stage.
    pub block: usize,
    /// Blocks, combined column by column in the second stage.
    pub rows: usize,
    /// Columns per second-stage tile.
    pub width: usize,
    /// Columns per group of the encoder's keystream order, a divisor of `width` (see
    /// [`ORDER_WIDTH`]).
    pub order_width: usize,
}

impl Stages {
    /// The split for a power-of-two length `n`.
    pub fn of(n: usize) -> Self {
        let block = n.clamp(1, BLOCK);
        let rows = n.max(1) / block;
        let width_at_least = |columns: usize| (TILE_MIN / rows).max(columns).min(block);
        Stages {
            block,
            rows,
            width: width_at_least(TILE_WIDTH),
            order_width: width_at_least(ORDER_WIDTH),
        }
    }

    /// Coordinates in one second-stage tile.
    pub fn tile_len(&self) -> usize {
        self.rows * self.width
    }

    /// The first column of every second-stage tile.
    pub fn columns(&self) -> std::iter::StepBy<std::ops::Range<usize>> {
        (0..self.block).step_by(self.width)
    }

    /// Copies columns `col..col + width` of every row into `tile`, row after row.
    pub fn gather<T: Copy>(&self, values: &[T], col: usize, tile: &mut [T]) {
        for (row, dst) in values
            .chunks_exact(self.block)
            .zip(tile.chunks_exact_mut(self.width))
        {
            copy_row(&row[col..col + self.width], dst);
        }
    }

    /// The inverse of [`Self::gather`]: writes `tile`'s rows back to columns `col..`.
    pub fn scatter<T: Copy>(&self, tile: &[T], col: usize, values: &mut [T]) {
        for (row, src) in values
            .chunks_exact_mut(self.block)
            .zip(tile.chunks_exact(self.width))
        {
            copy_row(src, &mut row[col..col + self.width]);
        }
    }

    /// The second stage on a gathered tile: the passes across its rows, all `width`
    /// columns at once.
    pub fn transform_tile<T: Coordinate>(&self, tile: &mut [T]) {
        T::butterfly_passes(tile, self.width);
    }
}

/// `dst.copy_from_slice(src)` for the short rows of a tile: in fixed chunks of
/// [`ORDER_WIDTH`] (inline moves) rather than one `memmove` call per row.
#[inline]
pub(crate) fn copy_row<T: Copy>(src: &[T], dst: &mut [T]) {
    if src.len().is_multiple_of(ORDER_WIDTH) {
        let (dst, _) = dst.as_chunks_mut::<ORDER_WIDTH>();
        for (d, s) in dst.iter_mut().zip(src.as_chunks::<ORDER_WIDTH>().0) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// The first stage on one block: every pass with half-width below the block's length.
pub(crate) fn transform_block<T: Coordinate>(block: &mut [T]) {
    T::butterfly_passes(block, 1);
}

/// The values the transform runs on. Every implementation computes the same butterflies
/// (`(a, b) ↦ (a + b, a − b)`, lower index first) level by level in increasing half-width,
/// so their results are equal bit for bit whichever kernel runs them; f32 (the encoder's
/// rotation) runs on AVX-512 where the CPU has it.
pub trait Coordinate: Copy + Default + Add<Output = Self> + Sub<Output = Self> {
    /// In place, the butterfly passes with half-widths `first_half, 2·first_half, …,
    /// len / 2` (a power-of-two length). Portable code unless overridden.
    fn butterfly_passes(values: &mut [Self], first_half: usize) {
        portable_passes(values, first_half);
    }
}

impl Coordinate for f64 {}

impl Coordinate for f32 {
    fn butterfly_passes(values: &mut [f32], first_half: usize) {
        match covey_simd::Avx512::detect() {
            Some(simd) if values.len() >= 16 => simd.hadamard_f32(values, first_half),
            _ => portable_passes(values, first_half),
        }
    }
}

/// [`Coordinate::butterfly_passes`] in portable code: an 8-point transform per chunk for
/// the first three levels when starting from 1, then two levels per sweep.
fn portable_passes<T>(values: &mut [T], first_half: usize)
where
    T: Copy + Add<Output = T> + Sub<Output = T>,
{
    let first = if first_half == 1 && values.len() >= 8 {
        values.chunks_exact_mut(8).for_each(hadamard8);
        8
    } else {
        first_half
    };
    butterfly_passes(values, first);
}

/// The 8-point transform (passes with half-widths 1, 2 and 4) on one chunk.
#[inline]
fn hadamard8<T>(v: &mut [T])
where
    T: Copy + Add<Output = T> + Sub<Output = T>,
{
    let [a, b, c, d, e, f, g, h] = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
    let (a, b, c, d, e, f, g, h) = (a + b, a - b, c + d, c - d, e + f, e - f, g + h, g - h);
    let (a, b, c, d, e, f, g, h) = (a + c, b + d, a - c, b - d, e + g, f + h, e - g, f - h);
    v.copy_from_slice(&[a + e, b + f, c + g, d + h, a - e, b - f, c - g, d - h]);
}

/// Butterfly passes with half-widths `first_half, 2·first_half, ...` up to `len / 2`, two
/// passes per sweep where possible.
fn butterfly_passes<T>(values: &mut [T], first_half: usize)
where
    T: Copy + Add<Output = T> + Sub<Output = T>,
{
    let mut half = first_half;
    while 4 * half <= values.len() {
        for quad in values.chunks_exact_mut(4 * half) {
            let (ab, cd) = quad.split_at_mut(2 * half);
            let (a, b) = ab.split_at_mut(half);
            let (c, d) = cd.split_at_mut(half);
            for (((w, x), y), z) in a.iter_mut().zip(b).zip(c).zip(d) {
                let (p, q, r, s) = (*w + *x, *w - *x, *y + *z, *y - *z);
                *w = p + r;
                *x = q + s;
                *y = p - r;
                *z = q - s;
            }
        }
        half *= 4;
    }
    if 2 * half == values.len() {
        let (lo, hi) = values.split_at_mut(half);
        for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
            let (x, y) = (*a, *b);
            *a = x + y;
            *b = x - y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_matches_the_hadamard_matrix() {
        // H_4 rows: ++++, +-+-, ++--, +--+.
        let mut v = [1.0f64, 2.0, 3.0, 4.0];
        fwht(&mut v);
        assert_eq!(v, [10.0, -2.0, -4.0, 0.0]);
        // Every small length, against the definition.
        for n in [1usize, 2, 8, 16, 32, 64] {
            let input: Vec<f64> = (0..n).map(|i| (i * i % 11) as f64).collect();
            let mut out = input.clone();
            fwht(&mut out);
            for (i, o) in out.iter().enumerate() {
                let direct: f64 = input
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| if (i & j).count_ones() % 2 == 0 { x } else { -x })
                    .sum();
                assert_eq!(*o, direct, "n={n} row {i}");
            }
        }
    }

    #[test]
    fn large_transform_matches_the_definition() {
        // Wide tiles over a few rows, and the narrowest tiles over many.
        for n in [BLOCK * 4, BLOCK * 64] {
            let stages = Stages::of(n);
            assert_eq!(stages.rows * stages.block, n);
            let input: Vec<f64> = (0..n).map(|i| ((i * 7919) % 113) as f64 - 56.0).collect();
            let mut blocked = input.clone();
            fwht(&mut blocked);
            // The definition: out[i] = Σ_j (−1)^popcount(i & j) in[j], at a few rows.
            for i in [0usize, 1, 17, 4095, 4096, 9_999, n / 2 + 33, n - 1] {
                let direct: f64 = input
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| if (i & j).count_ones() % 2 == 0 { x } else { -x })
                    .sum();
                assert_eq!(blocked[i], direct, "n={n} row {i}");
            }
        }
    }

    #[test]
    fn signs_are_reproducible_and_balanced() {
        let a = Signs::from_seed(&[7; 32], 10_000);
        let b = Signs::from_seed(&[7; 32], 10_000);
        let c = Signs::from_seed(&[8; 32], 10_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let negatives = (0..10_000).filter(|&i| a.is_negative(i)).count();
        assert!((4_700..5_300).contains(&negatives), "{negatives}");
    }
}
