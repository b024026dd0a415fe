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
/// `bound_sq`. Returns the attempts used.
pub fn round_conditionally<R: RngCore + CryptoRng + ?Sized>(
    input: &[f32],
    gain: f64,
    bound_sq: u128,
    out: &mut [u32],
    rng: &mut R,
) -> Result<u32> {
    let mut words = [0u8; 4 * BATCH];
    for attempt in 1..=MAX_ATTEMPTS {
        let mut norm_sq: u128 = 0;
        for (chunk_in, chunk_out) in input.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let bytes = &mut words[..4 * chunk_in.len()];
            rng.fill_bytes(bytes);
            norm_sq += round_chunk(chunk_in, gain, bytes, chunk_out);
        }
        if norm_sq <= bound_sq {
            return Ok(attempt);
        }
    }
    Err(Error::RoundingFailed {
        attempts: MAX_ATTEMPTS,
    })
}

/// Rounds one chunk with one 32-bit word per coordinate; returns the chunk's squared norm.
#[inline]
fn round_chunk(input: &[f32], gain: f64, random: &[u8], out: &mut [u32]) -> u128 {
    const TWO_32: f64 = 4_294_967_296.0;
    let mut norm_sq: u128 = 0;
    for ((&x, word), o) in input.iter().zip(random.chunks_exact(4)).zip(out.iter_mut()) {
        let z = f64::from(x) * gain;
        let floor = z.floor();
        let threshold = ((z - floor) * TWO_32) as u64;
        let r = u64::from(u32::from_le_bytes([word[0], word[1], word[2], word[3]]));
        let k = floor as i64 + i64::from(r < threshold);
        *o = k as u32;
        let magnitude = u128::from(k.unsigned_abs());
        norm_sq += magnitude * magnitude;
    }
    norm_sq
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
