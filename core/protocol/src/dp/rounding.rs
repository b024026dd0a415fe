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
//! The coin is compared with the probability of rounding up lazily: its first 16 bits decide
//! unless they equal the probability's first 16 bits (chance 2^-16), and only then are 53
//! more drawn. So each coordinate costs 2 bytes of keystream, not 4 or 8, and the bias is at
//! most 2^-69 integer units per coordinate.

use rand_core::{CryptoRng, RngCore};

use super::coins::Coins;
use super::error::{Error, Result};
use crate::keystream::Keystream;

/// The DDGauss default conditioning parameter β = e^{-1/2}.
pub const DEFAULT_BETA: f64 = 0.606_530_659_712_633_4;
/// Re-rounding attempts before giving up. With acceptance probability ≥ 1 − β ≥ 0.39 the
/// chance of 64 rejections in a row is below 2^-45.
pub const MAX_ATTEMPTS: u32 = 64;
/// Coordinates per keystream refill (their coins stay in L1).
pub(crate) const BATCH: usize = 1024;
/// Keystream bytes drawn up front per coordinate: the coin's first 16 bits.
pub(crate) const COIN_BYTES: usize = 2;
/// 2^16: the scale of the coin's first 16 bits.
const COIN_HEAD: f64 = 65_536.0;

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
/// (plan validation guarantees it for clipped, rotated updates). The coins come from a
/// ChaCha20 keystream keyed from `rng`.
pub fn round_conditionally<R: RngCore + CryptoRng + ?Sized>(
    input: &[f32],
    gain: f64,
    bound_sq: u128,
    out: &mut [u32],
    rng: &mut R,
) -> Result<u32> {
    let coins = &mut Coins::from_rng(rng);
    let mut heads = [0u8; COIN_BYTES * BATCH];
    for attempt in 1..=MAX_ATTEMPTS {
        let mut norm_sq = 0.0;
        for (chunk_in, chunk_out) in input.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            norm_sq += round_batch(chunk_in, gain, chunk_out, &mut heads, coins)?;
        }
        if within_bound(norm_sq, bound_sq).unwrap_or_else(|| exact_norm_sq(out) <= bound_sq) {
            return Ok(attempt);
        }
    }
    Err(Error::RoundingFailed {
        attempts: MAX_ATTEMPTS,
    })
}

/// Stochastically rounds at most [`BATCH`] coordinates `input[i] · gain` into `out`, with
/// coin heads from `coins` read through `heads` (at least [`COIN_BYTES`]` · input.len()`
/// bytes); returns the rounded values' squared norm as [`within_bound`] takes it.
pub(crate) fn round_batch(
    input: &[f32],
    gain: f64,
    out: &mut [u32],
    heads: &mut [u8],
    coins: &mut Coins,
) -> Result<f64> {
    let heads = &mut heads[..COIN_BYTES * input.len()];
    coins.bulk.fill(heads)?;
    let (norm_sq, tied) = round_chunk(input, gain, heads, out);
    Ok(if tied {
        norm_sq + settle_ties(input, gain, heads, out, &mut coins.tails)?
    } else {
        norm_sq
    })
}

/// Whether a rounding whose squared norm summed in f64 is `norm_sq` is within `bound_sq`,
/// or `None` when `norm_sq` is too close to the bound to tell and the caller must recount
/// exactly. The fast f64 sum is exact to a relative 1e-10 at any length we accept.
pub(crate) fn within_bound(norm_sq: f64, bound_sq: u128) -> Option<bool> {
    let bound = bound_sq as f64;
    if norm_sq <= bound * (1.0 - 1e-9) {
        Some(true)
    } else if norm_sq > bound * (1.0 + 1e-9) {
        Some(false)
    } else {
        None
    }
}

/// The squared norm of rounded values, exactly.
pub(crate) fn exact_norm_sq(values: &[u32]) -> u128 {
    values
        .iter()
        .map(|&v| {
            let m = u128::from((v as i32).unsigned_abs());
            m * m
        })
        .sum()
}

/// Rounds one chunk on the coins' first 16 bits, rounding down where the coin ties with the
/// probability; returns the chunk's squared norm and whether any coin tied.
///
/// Whole groups of 8 run on the AVX-512 kernel of `covey_simd` where the CPU has it, else
/// on [`round_groups`]: the same arithmetic, bit for bit.
fn round_chunk(input: &[f32], gain: f64, coins: &[u8], out: &mut [u32]) -> (f64, bool) {
    // Scaling by 2^16 is exact, so `x · gain16` is `2^16 · (x · gain)` bit for bit.
    let gain16 = gain * COIN_HEAD;
    let mut lanes = [0.0f64; LANES];
    let tail = input.len() / LANES * LANES;
    let mut tied = match covey_simd::Avx512::detect() {
        // The same fixed-point arithmetic on 8 f64 lanes.
        Some(simd) => simd.round_fixed_point(input, gain16, coins, out, &mut lanes),
        None => round_groups(&input[..tail], gain16, coins, out, &mut lanes),
    };
    for (i, (x, o)) in input[tail..].iter().zip(&mut out[tail..]).enumerate() {
        let (word, k, tie) = round_one(*x, gain16, coin_head(coins, tail + i));
        *o = word;
        lanes[0] += k * k;
        tied |= tie != 0;
    }
    (lanes.iter().sum(), tied)
}

/// [`round_chunk`]'s whole groups of [`LANES`] in portable code, lane `l` of `lanes`
/// accumulating the squares of coordinates `l, l + 8, …`; returns whether any coin tied.
///
/// Written lane-wise with separate accumulators and only adds, compares, shifts and masks
/// that SSE2 vectorizes (no `f64::floor`, a libm call on baseline x86-64, and no saturating
/// float-to-int conversion).
fn round_groups(
    input: &[f32],
    gain16: f64,
    coins: &[u8],
    out: &mut [u32],
    lanes: &mut [f64; LANES],
) -> bool {
    let mut ties = [0u64; LANES];
    for ((xs, cs), os) in input
        .chunks_exact(LANES)
        .zip(coins.chunks_exact(COIN_BYTES * LANES))
        .zip(out.chunks_exact_mut(LANES))
    {
        for l in 0..LANES {
            let (word, k, tie) = round_one(xs[l], gain16, coin_head(cs, l));
            os[l] = word;
            lanes[l] += k * k;
            ties[l] |= tie;
        }
    }
    ties.iter().any(|&t| t != 0)
}

/// Decides the tied coins of a chunk [`round_chunk`] rounded down with 53 more coin bits
/// each; returns the growth of the squared norm.
fn settle_ties(
    input: &[f32],
    gain: f64,
    coins: &[u8],
    out: &mut [u32],
    tails: &mut Keystream,
) -> Result<f64> {
    let gain16 = gain * COIN_HEAD;
    let mut growth = 0.0;
    for (i, (x, o)) in input.iter().zip(out.iter_mut()).enumerate() {
        let fixed = fixed_point(*x, gain16);
        if u64::from(coin_head(coins, i)) != fixed & HEAD_MASK {
            continue;
        }
        // The probability's bits below the head: `t − ⌊t⌋`, exact for |t| ≥ 1.
        let rest = f64::from(*x) * gain16 - (exact_f64(fixed) - OFFSET_BIAS);
        let tail = (tails.next_u64()? >> 11) as f64 * (1.0 / 2f64.powi(53));
        if tail < rest {
            // Up from `2^35 + ⌊z⌋`: the square grows by 2⌊z⌋ + 1.
            let down = fixed >> 16;
            *o = (down + 1) as u32;
            growth += 2.0 * (exact_f64(down) - K_BIAS) + 1.0;
        }
    }
    Ok(growth)
}

/// Coordinate `i`'s first 16 coin bits.
#[inline(always)]
fn coin_head(coins: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([coins[COIN_BYTES * i], coins[COIN_BYTES * i + 1]])
}

/// Lanes of the vectorized rounding loop.
const LANES: usize = 8;
/// 1.5 · 2^52: adding it to any |t| < 2^51 leaves `2^51 + nearest(t)` in the mantissa bits.
const ROUNDING_MAGIC: f64 = 6_755_399_441_055_744.0;
/// The mantissa bits of an f64.
const MANTISSA: u64 = (1 << 52) - 1;
/// The bits of the 16-bit coin head within a fixed-point value.
const HEAD_MASK: u64 = 0xffff;
/// `2^51`, the offset of [`fixed_point`] values, as [`exact_f64`] reads it (`2^52 + 2^51`).
const OFFSET_BIAS: f64 = 6_755_399_441_055_744.0;
/// `2^52 + 2^35`: [`exact_f64`] of an offset integer `2^35 + k` minus this is `k`.
const K_BIAS: f64 = 4_503_633_987_108_864.0;

/// `2^51 + ⌊t⌋` for `t = x · gain16` with |t| < 2^51, as an integer: the low 16 bits are the
/// head of the probability of rounding up (`2^16 · (z − ⌊z⌋)` for `z = t / 2^16`, exactly)
/// and the bits above are `2^35 + ⌊z⌋`. Branch-free: the nearest integer from the magic
/// constant, minus one where it lies above `t`.
#[inline(always)]
fn fixed_point(x: f32, gain16: f64) -> u64 {
    let t = f64::from(x) * gain16;
    let shifted = t + ROUNDING_MAGIC;
    let above = u64::from(shifted - ROUNDING_MAGIC > t);
    (shifted.to_bits() & MANTISSA) - above
}

/// `2^52 + n` for an integer `0 ≤ n < 2^52`, exactly (the integer in an f64's mantissa).
#[inline(always)]
fn exact_f64(n: u64) -> f64 {
    f64::from_bits(0x4330_0000_0000_0000 | n)
}

/// The rounding of `z = t / 2^16`: its 32-bit two's complement word (`⌊z⌋ + 1` when the
/// coin's head is below the rounding-up probability's head, else `⌊z⌋`), the same integer as
/// an f64, and 1 when the two heads tie (then the coin's further bits decide), else 0.
#[inline(always)]
fn round_one(x: f32, gain16: f64, coin: u16) -> (u32, f64, u64) {
    let fixed = fixed_point(x, gain16);
    let head = fixed & HEAD_MASK;
    let coin = u64::from(coin);
    // `2^35 + k`; its low word is k's two's complement (2^35 ≡ 0 mod 2^32).
    let offset = (fixed >> 16) + u64::from(coin < head);
    (
        offset as u32,
        exact_f64(offset) - K_BIAS,
        u64::from(coin == head),
    )
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

    #[test]
    fn coin_heads_decide_and_ties_draw_the_exact_rest() {
        // z = 3 + (32768 + 1/4) / 2^16: rounds up with probability 1/2 + 2^-18.
        let z = 3.0 + (32_768.25 / COIN_HEAD);
        let n = 40_000;
        let input = vec![z as f32; n];
        assert_eq!(f64::from(input[0]), z, "z is exact in f32");
        let mut out = vec![0u32; n];
        let mut coins = vec![0u8; COIN_BYTES * n];
        for (i, c) in coins.chunks_exact_mut(COIN_BYTES).enumerate() {
            // Below, tied with and above the probability's head.
            let head: u16 = [32_767, 32_768, 32_769][i % 3];
            c.copy_from_slice(&head.to_le_bytes());
        }
        let (norm, tied) = round_chunk(&input, 1.0, &coins, &mut out);
        assert!(tied);
        let down_or_up = |v: u32| v == 3 || v == 4;
        assert!(out.iter().all(|&v| down_or_up(v)));
        let mut stream = Keystream::new(&[4; 32], &[0; 12]);
        let growth = settle_ties(&input, 1.0, &coins, &mut out, &mut stream).unwrap();
        let ups = |r: usize| (r..n).step_by(3).filter(|&i| out[i] == 4).count();
        assert_eq!(ups(0), n.div_ceil(3), "coin head below: always up");
        assert_eq!(ups(2), 0, "coin head above: always down");
        // Ties: up with probability 1/4 (the rest of the probability below the head).
        let tied_ups = ups(1) as f64 / (n / 3) as f64;
        assert!((tied_ups - 0.25).abs() < 0.02, "{tied_ups}");
        let total: f64 = out.iter().map(|&v| f64::from(v).powi(2)).sum();
        assert_eq!(norm + growth, total);
    }
}
