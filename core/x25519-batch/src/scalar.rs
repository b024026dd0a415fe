//! Byte encodings around the vector ladder (RFC 7748 section 5), lane by lane in plain
//! 64-bit arithmetic: scalar clamping, u-coordinate decoding and canonical encoding.

use zeroize::Zeroizing;

/// A field element mod 2^255 - 19 as five limbs in radix 2^51.
pub(crate) type Limbs = [u64; 5];

const MASK51: u64 = (1 << 51) - 1;

/// The secret with RFC 7748's clamping applied, wiped on drop.
pub(crate) fn clamp(secret: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut scalar = Zeroizing::new(*secret);
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    scalar
}

fn words(bytes: &[u8; 32]) -> [u64; 4] {
    core::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        u64::from_le_bytes(word)
    })
}

/// A u-coordinate as limbs; the top bit is ignored and values >= p are accepted as they
/// are (both as RFC 7748 requires: arithmetic mod p reduces them).
pub(crate) fn decode_u(bytes: &[u8; 32]) -> Limbs {
    let w = words(bytes);
    [
        w[0] & MASK51,
        ((w[0] >> 51) | (w[1] << 13)) & MASK51,
        ((w[1] >> 38) | (w[2] << 26)) & MASK51,
        ((w[2] >> 25) | (w[3] << 39)) & MASK51,
        (w[3] >> 12) & MASK51,
    ]
}

/// The canonical 32-byte encoding of carried limbs (each < 2^52), in constant time.
pub(crate) fn encode(limbs: &Limbs) -> [u8; 32] {
    let mut l = Zeroizing::new(*limbs);
    // One carry round: limbs < 2^51 + 2^5, value < 2p.
    let carries: [u64; 5] = core::array::from_fn(|i| l[i] >> 51);
    for limb in l.iter_mut() {
        *limb &= MASK51;
    }
    l[0] += 19 * carries[4];
    for i in 1..5 {
        l[i] += carries[i - 1];
    }
    // q = 1 exactly when the value is >= p: then add 19 and drop 2^255.
    let mut q = (l[0] + 19) >> 51;
    for limb in &l[1..] {
        q = (limb + q) >> 51;
    }
    l[0] += 19 * q;
    for i in 0..4 {
        l[i + 1] += l[i] >> 51;
        l[i] &= MASK51;
    }
    l[4] &= MASK51;
    let words = Zeroizing::new([
        l[0] | (l[1] << 51),
        (l[1] >> 13) | (l[2] << 38),
        (l[2] >> 26) | (l[3] << 25),
        (l[3] >> 39) | (l[4] << 12),
    ]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(8).zip(words.iter()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}
