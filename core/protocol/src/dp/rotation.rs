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

/// ChaCha20 stream used for the rotation signs, so that a seed reused elsewhere in a round
/// plan never yields the same keystream.
const SIGN_STREAM: u64 = 0x636f_7665_792d_7268; // "covey-rh"

/// Coordinates processed per cache-resident block in the first transform passes: 4096 f32
/// (16 KiB) or f64 (32 KiB) stay in L1 while log2(4096) = 12 butterfly passes run over them.
const BLOCK: usize = 4096;

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
        let (body, padding) = out.split_at_mut(input.len());
        for ((chunk_out, chunk_in), &word) in body
            .chunks_mut(64)
            .zip(input.chunks(64))
            .zip(self.bits.iter())
        {
            for (j, (o, &x)) in chunk_out.iter_mut().zip(chunk_in).enumerate() {
                // Flip the IEEE sign bit: branch-free and exact.
                let flip = (((word >> j) & 1) as u32) << 31;
                *o = f32::from_bits(x.to_bits() ^ flip);
            }
        }
        padding.fill(0.0);
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
/// Memory traffic, not arithmetic, bounds this transform, so: the first three passes run as
/// one 8-point kernel, the rest two at a time (radix 4), and the passes within a block of
/// [`BLOCK`] coordinates run block by block so each block stays in L1; only the last
/// `log2(n / BLOCK)` passes stream the whole vector, in half as many sweeps.
pub fn fwht<T>(values: &mut [T])
where
    T: Copy + Add<Output = T> + Sub<Output = T>,
{
    debug_assert!(values.len().is_power_of_two() || values.is_empty());
    let block = values.len().min(BLOCK);
    if block < 2 {
        return;
    }
    for chunk in values.chunks_exact_mut(block) {
        let first = if block >= 8 {
            chunk.chunks_exact_mut(8).for_each(hadamard8);
            8
        } else {
            1
        };
        butterfly_passes(chunk, first);
    }
    butterfly_passes(values, block);
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
        let n = BLOCK * 4;
        let input: Vec<f64> = (0..n).map(|i| ((i * 7919) % 113) as f64 - 56.0).collect();
        let mut blocked = input.clone();
        fwht(&mut blocked);
        // The definition: out[i] = Σ_j (−1)^popcount(i & j) in[j], at a few rows.
        for i in [0usize, 1, 4095, 4096, 9_999, n - 1] {
            let direct: f64 = input
                .iter()
                .enumerate()
                .map(|(j, &x)| if (i & j).count_ones() % 2 == 0 { x } else { -x })
                .sum();
            assert_eq!(blocked[i], direct, "row {i}");
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
