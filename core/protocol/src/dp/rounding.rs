//! Conditional stochastic rounding to integers, and the norm bound it guarantees.
//!
//! Each scaled coordinate `z` becomes `⌊z⌋ + 1` with probability `z − ⌊z⌋` and `⌊z⌋`
//! otherwise, so the rounded value is unbiased. Rounding can grow the L2 norm of a vector of
//! norm `c` over `n` coordinates; Kairouz, Liu & Steinke (2021, DDGauss, Lemma 25) bound it:
//! with probability at least `1 − β`,
//!
//! `‖round(z)‖² ≤ c² + n/4 + √(2 ln(1/β)) · (c + √n / 2)`,
//!
//! and deterministically `‖round(z)‖ ≤ c + √n` (each coordinate moves by less than 1).
//! *Conditional* rounding re-rounds until the first bound holds, so the bound is a hard
//! guarantee: it is the L2 sensitivity (in integer units) the accountant must use
//! ([`rounded_norm_bound`]). The price is a small bias of order β·(tail) per coordinate;
//! with β = e^{-1/2} (the DDGauss default) a draw is accepted with probability ≥ 1 − β and
//! in practice at the first try, because the bound is far above the typical `c² + n/6`.
//!
//! The probability of rounding up is quantized to 2^-32 (one 32-bit random word per
//! coordinate), a bias of at most 2^-32 integer units per coordinate.

use rand_core::{CryptoRng, RngCore};

use super::error::{Error, Result};

/// The DDGauss default conditioning parameter β = e^{-1/2}.
pub const DEFAULT_BETA: f64 = 0.606_530_659_712_633_4;
/// Re-rounding attempts before giving up. With acceptance probability ≥ 1 − β ≥ 0.39 the
/// chance of 64 rejections in a row is below 2^-45.
pub const MAX_ATTEMPTS: u32 = 64;
/// Random words drawn per refill of the batch buffer.
const BATCH: usize = 1024;

/// The L2 norm bound (integer units) of a stochastically rounded vector whose real norm is
/// at most `c` over `n` coordinates, conditioned with `beta` ∈ [0, 1): `beta = 0` means no
/// conditioning and the deterministic `c + √n`.
pub fn rounded_norm_bound(c: f64, n: usize, beta: f64) -> f64 {
    let n = n as f64;
    let deterministic = c + n.sqrt();
    if beta <= 0.0 {
        return deterministic;
    }
    let conditioned =
        (c * c + n / 4.0 + (2.0 * (1.0 / beta).ln()).sqrt() * (c + n.sqrt() / 2.0)).sqrt();
    deterministic.min(conditioned)
}

/// Fills `out[i]` with the two's-complement bits of the stochastic rounding of
/// `input[i] · gain`, re-rounding the whole vector until its squared norm is at most
/// `bound_sq`. Returns the attempts used. Every `|input[i] · gain|` must be below 2^31
/// (plan validation guarantees it for clipped, rotated updates).
pub fn round_conditionally<R: RngCore + CryptoRng + ?Sized>(
    input: &[f32],
    gain: f64,
    bound_sq: u128,
    out: &mut [u32],
    rng: &mut R,
) -> Result<u32> {
    let mut words = [0u8; 4 * BATCH];
    // The fast f64 norm is exact to a relative 1e-10 at any length we accept; only a norm
    // within 1e-9 of the bound is recounted exactly.
    let (accept, reject) = (
        bound_sq as f64 * (1.0 - 1e-9),
        bound_sq as f64 * (1.0 + 1e-9),
    );
    for attempt in 1..=MAX_ATTEMPTS {
        let mut norm_sq = 0.0;
        for (chunk_in, chunk_out) in input.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let bytes = &mut words[..4 * chunk_in.len()];
            rng.fill_bytes(bytes);
            norm_sq += round_chunk(chunk_in, gain, bytes, chunk_out);
        }
        let within = if norm_sq <= accept {
            true
        } else if norm_sq > reject {
            false
        } else {
            exact_norm_sq(out) <= bound_sq
        };
        if within {
            return Ok(attempt);
        }
    }
    Err(Error::RoundingFailed {
        attempts: MAX_ATTEMPTS,
    })
}

/// The squared norm of rounded values, exactly.
fn exact_norm_sq(values: &[u32]) -> u128 {
    values
        .iter()
        .map(|&v| {
            let m = u128::from((v as i32).unsigned_abs());
            m * m
        })
        .sum()
}

/// Rounds one chunk with one 32-bit word per coordinate; returns the chunk's squared norm.
///
/// Written lane-wise over groups of 8 with separate accumulators and only adds, compares and
/// conversions that SSE2 vectorizes (no `f64::floor`, a libm call on baseline x86-64).
fn round_chunk(input: &[f32], gain: f64, random: &[u8], out: &mut [u32]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let groups = input.len() / LANES;
    for ((xs, rs), os) in input
        .chunks_exact(LANES)
        .zip(random.chunks_exact(4 * LANES))
        .zip(out.chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            let word = u32::from_le_bytes([rs[4 * l], rs[4 * l + 1], rs[4 * l + 2], rs[4 * l + 3]]);
            let k = round_one(xs[l], gain, word);
            os[l] = k as i32 as u32;
            lanes[l] += k * k;
        }
    }
    let tail = groups * LANES;
    for (i, (x, o)) in input[tail..].iter().zip(&mut out[tail..]).enumerate() {
        let at = 4 * (tail + i);
        let word = u32::from_le_bytes([random[at], random[at + 1], random[at + 2], random[at + 3]]);
        let k = round_one(*x, gain, word);
        *o = k as i32 as u32;
        lanes[0] += k * k;
    }
    lanes.iter().sum()
}

/// Lanes of the vectorized rounding loop.
const LANES: usize = 8;
/// 1.5 · 2^52: adding and subtracting it rounds any |z| < 2^51 to the nearest integer.
const ROUNDING_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `⌊z⌋ + 1` with probability `z − ⌊z⌋` (the coin is `word / 2^32`), else `⌊z⌋`, for
/// `z = x · gain`.
#[inline(always)]
fn round_one(x: f32, gain: f64, word: u32) -> f64 {
    let z = f64::from(x) * gain;
    let nearest = (z + ROUNDING_MAGIC) - ROUNDING_MAGIC;
    let floor = nearest - if nearest > z { 1.0 } else { 0.0 };
    let coin = f64::from(word) * (1.0 / 4_294_967_296.0);
    floor + if coin < z - floor { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_the_smaller_of_the_two_lemmas() {
        // Large c: the conditioned bound wins.
        let b = rounded_norm_bound(1000.0, 1024, DEFAULT_BETA);
        assert!(b < 1000.0 + 32.0 && b > 1000.0);
        // No conditioning: deterministic c + √n.
        assert_eq!(rounded_norm_bound(10.0, 16, 0.0), 14.0);
    }
}
