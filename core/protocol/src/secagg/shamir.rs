//! Shamir secret sharing of 32-byte secrets over GF(2^61 - 1).
//!
//! A 32-byte secret does not fit one element of a 61-bit field, so it is cut into
//! [`LIMBS`] limbs of at most 56 bits (7 bytes; the last limb holds the remaining 4) and each
//! limb is shared with its own random polynomial of degree t - 1. All limbs of one share are
//! evaluated at the same point x, so a share is one x plus [`LIMBS`] field elements. A limb
//! bound (`< 2^56`) doubles as a cheap sanity check at reconstruction time.
//!
//! The Mersenne prime makes reduction two shifts and an add, and keeps the code small enough
//! to test exhaustively (every subset of shares for small cohorts, see the unit tests).

use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::error::{Error, Result};

/// The field modulus p = 2^61 - 1.
pub const P: u64 = (1 << 61) - 1;
/// Number of field elements per share.
pub const LIMBS: usize = 5;
/// Bytes of secret carried per limb (the last limb carries `32 - 4 * 7 = 4`).
const LIMB_BYTES: usize = 7;
/// Encoded share length (the x coordinate is implicit: it is the holder's member id + 1).
pub const SHARE_BYTES: usize = LIMBS * 8;

/// One holder's share of one 32-byte secret: the evaluations of the limb polynomials at x.
#[derive(Clone, PartialEq, Eq, Zeroize)]
pub struct Share {
    /// Evaluation point, never 0 (0 is where the secret sits).
    pub x: u64,
    /// One field element per limb.
    pub y: [u64; LIMBS],
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print share values: t of them reveal the secret.
        f.debug_struct("Share")
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

impl Share {
    /// Little-endian encoding of the limbs (x is carried by the context).
    pub fn to_bytes(&self) -> [u8; SHARE_BYTES] {
        let mut out = [0u8; SHARE_BYTES];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.y) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Decodes limbs for evaluation point `x`, rejecting non-canonical field elements.
    pub fn from_bytes(x: u64, bytes: &[u8]) -> Result<Self> {
        if bytes.len() != SHARE_BYTES {
            return Err(Error::Decode("share has the wrong length"));
        }
        let mut y = [0u64; LIMBS];
        for (limb, chunk) in y.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(word);
            if *limb >= P {
                return Err(Error::Decode(
                    "share element is not a canonical field element",
                ));
            }
        }
        Ok(Share { x, y })
    }
}

fn reduce(x: u128) -> u64 {
    // x < 2^122 here; fold twice so the result is < 2^61 + small, then subtract once.
    let folded = (x & P as u128) + (x >> 61);
    let folded = (folded & P as u128) + (folded >> 61);
    let r = folded as u64;
    if r >= P { r - P } else { r }
}

fn add(a: u64, b: u64) -> u64 {
    let s = a + b; // both < 2^61: no overflow
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

fn pow(mut base: u64, mut exp: u64) -> u64 {
    let mut acc = 1;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

/// Multiplicative inverse by Fermat's little theorem; callers never pass 0.
fn inv(a: u64) -> u64 {
    pow(a, P - 2)
}

fn random_element<R: CryptoRng + ?Sized>(rng: &mut R) -> u64 {
    // Rejection sampling keeps coefficients exactly uniform.
    loop {
        let v = rng.next_u64() >> 3;
        if v < P {
            return v;
        }
    }
}

fn secret_to_limbs(secret: &[u8; 32]) -> [u64; LIMBS] {
    let mut limbs = [0u64; LIMBS];
    for (limb, chunk) in limbs.iter_mut().zip(secret.chunks(LIMB_BYTES)) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        *limb = u64::from_le_bytes(word);
    }
    limbs
}

fn limbs_to_secret(limbs: &[u64; LIMBS]) -> Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    for (limb, chunk) in limbs.iter().zip(secret.chunks_mut(LIMB_BYTES)) {
        if *limb >> (8 * chunk.len()) != 0 {
            // A limb wider than its slot can only come from inconsistent shares.
            return Err(Error::ReconstructionMismatch);
        }
        chunk.copy_from_slice(&limb.to_le_bytes()[..chunk.len()]);
    }
    Ok(secret)
}

/// Splits `secret` into shares evaluated at `xs` (distinct, non-zero, below p), any
/// `threshold` of which reconstruct it and fewer reveal nothing.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &[u8; 32],
    threshold: usize,
    xs: &[u64],
    rng: &mut R,
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold > xs.len() {
        return Err(Error::InvalidParams(
            "threshold must be in 1..=number of shares",
        ));
    }
    if xs.iter().any(|&x| x == 0 || x >= P) {
        return Err(Error::InvalidParams(
            "share points must be non-zero field elements",
        ));
    }
    let mut coefficients = vec![[0u64; LIMBS]; threshold];
    coefficients[0] = secret_to_limbs(secret);
    for row in coefficients.iter_mut().skip(1) {
        for c in row.iter_mut() {
            *c = random_element(rng);
        }
    }
    let shares = xs
        .iter()
        .map(|&x| {
            let mut y = [0u64; LIMBS];
            for (limb, out) in y.iter_mut().enumerate() {
                // Horner from the highest coefficient down.
                *out = coefficients
                    .iter()
                    .rev()
                    .fold(0, |acc, row| add(mul(acc, x), row[limb]));
            }
            Share { x, y }
        })
        .collect();
    coefficients.zeroize();
    Ok(shares)
}

/// Reconstructs the secret from the first `threshold` shares (distinct x required).
pub fn reconstruct(shares: &[Share], threshold: usize) -> Result<[u8; 32]> {
    if threshold == 0 || shares.len() < threshold {
        return Err(Error::InvalidParams("not enough shares to reconstruct"));
    }
    let used = &shares[..threshold];
    let mut limbs = [0u64; LIMBS];
    for (i, share) in used.iter().enumerate() {
        // Lagrange basis at 0: prod_j x_j / (x_j - x_i).
        let mut num = 1;
        let mut den = 1;
        for (j, other) in used.iter().enumerate() {
            if i != j {
                if other.x == share.x {
                    return Err(Error::Protocol("two shares at the same point"));
                }
                num = mul(num, other.x);
                den = mul(den, sub(other.x, share.x));
            }
        }
        let coefficient = mul(num, inv(den));
        for (limb, y) in limbs.iter_mut().zip(share.y) {
            *limb = add(*limb, mul(coefficient, y));
        }
    }
    let secret = limbs_to_secret(&limbs);
    limbs.zeroize();
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn field_laws_hold_on_edge_values() {
        let edge = [
            0,
            1,
            2,
            P - 1,
            P - 2,
            1 << 60,
            (1 << 60) + 12345,
            0x1234_5678_9abc,
        ];
        for &a in &edge {
            for &b in &edge {
                assert_eq!(add(a, b), ((a as u128 + b as u128) % P as u128) as u64);
                assert_eq!(
                    sub(a, b),
                    ((a as u128 + P as u128 - b as u128) % P as u128) as u64
                );
                assert_eq!(mul(a, b), ((a as u128 * b as u128) % P as u128) as u64);
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1);
            }
        }
    }

    #[test]
    fn every_subset_of_threshold_size_reconstructs_and_smaller_ones_do_not_determine() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for n in 1..=8usize {
            for t in 1..=n {
                let mut secret = [0u8; 32];
                rng.fill_bytes(&mut secret);
                let xs: Vec<u64> = (1..=n as u64).collect();
                let shares = split(&secret, t, &xs, &mut rng).unwrap();
                for mask in 1u32..(1 << n) {
                    let subset: Vec<Share> = (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| shares[i].clone())
                        .collect();
                    if subset.len() >= t {
                        assert_eq!(reconstruct(&subset, t).unwrap(), secret, "n={n} t={t}");
                    } else if t > 1 && !subset.is_empty() {
                        // t - 1 shares interpolate a different polynomial: the result is
                        // unrelated to the secret (it fails the limb bound or differs).
                        let guess = reconstruct(&subset, subset.len());
                        assert_ne!(guess.ok(), Some(secret), "n={n} t={t} mask={mask:b}");
                    }
                }
            }
        }
    }

    #[test]
    fn all_byte_patterns_survive_the_limb_split() {
        for byte in 0..=255u8 {
            let secret = [byte; 32];
            assert_eq!(limbs_to_secret(&secret_to_limbs(&secret)).unwrap(), secret);
        }
    }

    #[test]
    fn share_bytes_round_trip_and_reject_non_canonical() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let shares = split(&[9; 32], 3, &[5, 6, 7], &mut rng).unwrap();
        let bytes = shares[1].to_bytes();
        assert_eq!(Share::from_bytes(6, &bytes).unwrap(), shares[1]);
        let mut bad = bytes;
        bad[..8].copy_from_slice(&P.to_le_bytes());
        assert!(Share::from_bytes(6, &bad).is_err());
        assert!(Share::from_bytes(6, &bytes[1..]).is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        assert!(split(&[0; 32], 0, &[1], &mut rng).is_err());
        assert!(split(&[0; 32], 2, &[1], &mut rng).is_err());
        assert!(split(&[0; 32], 1, &[0], &mut rng).is_err());
        let shares = split(&[0; 32], 2, &[1, 2], &mut rng).unwrap();
        let twice = vec![shares[0].clone(), shares[0].clone()];
        assert!(reconstruct(&twice, 2).is_err());
        assert!(reconstruct(&shares[..1], 2).is_err());
    }
}
