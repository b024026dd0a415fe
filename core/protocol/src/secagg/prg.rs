//! Mask expansion: ChaCha20 keystreams keyed by full 256-bit seeds, bound to the session.
//!
//! Every mask is the ChaCha20 keystream under the 32-byte seed as key and a nonce derived
//! from the session id, read as little-endian u32 words. Masks live in Z_{2^32}; because
//! 2^B divides 2^32, reducing the masked sum mod 2^B at the end is exact for every B ≤ 32 and
//! the low B bits of a uniform word are uniform, so no rejection sampling is needed.
//!
//! All masks a party applies are expanded together block by block ([`apply_masks`]): the
//! accumulator block stays in L1 cache while each keystream adds into it, which keeps the
//! masking stage close to the raw keystream cost (see BENCHMARKS.md).

use zeroize::Zeroizing;

use super::SessionId;
use super::crypto::digest;
use super::error::{Error, Result};
use crate::keystream::Keystream;

/// Words per block of the fused expansion (16 KiB of keystream per stream and block).
const BLOCK_WORDS: usize = 4096;

/// Whether a mask is added to or subtracted from the accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// acc += mask
    Add,
    /// acc -= mask
    Subtract,
}

impl Sign {
    /// The opposite sign (what undoes a mask).
    pub fn flip(self) -> Self {
        match self {
            Sign::Add => Sign::Subtract,
            Sign::Subtract => Sign::Add,
        }
    }
}

/// A 256-bit mask seed. Never truncated or folded: it is the ChaCha20 key itself.
pub type Seed = Zeroizing<[u8; 32]>;

/// The ChaCha20 nonce every mask of `session` uses (seeds are unique per session and pair).
pub fn session_nonce(session: &SessionId) -> [u8; 12] {
    let h = digest(&[b"covey-secagg/v1/mask-nonce", &session.0]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&h[..12]);
    nonce
}

/// Adds (or subtracts) the keystream of every `(seed, sign)` into `acc`, wrapping mod 2^32.
///
/// Fails only if `acc` outgrows one ChaCha20 keystream (256 GiB), which session validation
/// (at most 2^26 coordinates) rules out.
pub fn apply_masks(acc: &mut [u32], masks: &[(Seed, Sign)], session: &SessionId) -> Result<()> {
    apply_masks_from(acc, 0, masks, &session_nonce(session))
}

/// [`apply_masks`] split over `threads` coordinate ranges (the server has cores to spare; a
/// phone masks on one). Each range seeks its keystreams to its own offset, so the result is
/// identical to the single-threaded one.
pub fn apply_masks_parallel(
    acc: &mut [u32],
    masks: &[(Seed, Sign)],
    session: &SessionId,
    threads: usize,
) -> Result<()> {
    let nonce = session_nonce(session);
    let chunk = acc.len().div_ceil(threads.max(1)).max(BLOCK_WORDS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = acc
            .chunks_mut(chunk)
            .enumerate()
            .map(|(i, part)| scope.spawn(move || apply_masks_from(part, i * chunk, masks, &nonce)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or(Err(Error::Protocol("mask worker panicked")))
        })
    })
}

/// Applies the masks to `acc`, which holds coordinates `first_word..` of the vector.
fn apply_masks_from(
    acc: &mut [u32],
    first_word: usize,
    masks: &[(Seed, Sign)],
    nonce: &[u8; 12],
) -> Result<()> {
    let too_long = |_| Error::InvalidParams("vector longer than a ChaCha20 keystream");
    let mut streams = Vec::with_capacity(masks.len());
    for (seed, sign) in masks {
        let mut stream = Keystream::new(seed, nonce);
        stream
            .seek(first_word as u64 * 4)
            .map_err(|_| Error::InvalidParams("mask offset beyond the keystream"))?;
        streams.push((stream, *sign));
    }
    let mut buf = Zeroizing::new(vec![0u8; BLOCK_WORDS * 4]);
    for block in acc.chunks_mut(BLOCK_WORDS) {
        let bytes = &mut buf[..block.len() * 4];
        for (stream, sign) in &mut streams {
            stream.fill(bytes).map_err(too_long)?;
            combine(block, bytes, *sign);
        }
    }
    Ok(())
}

fn combine(block: &mut [u32], keystream: &[u8], sign: Sign) {
    let words = keystream
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    match sign {
        Sign::Add => block
            .iter_mut()
            .zip(words)
            .for_each(|(a, w)| *a = a.wrapping_add(w)),
        Sign::Subtract => block
            .iter_mut()
            .zip(words)
            .for_each(|(a, w)| *a = a.wrapping_sub(w)),
    }
}

/// A deterministic stream of uniform integers for protocol-wide public choices (the graph
/// permutation). Not for secrets: its key is public (derived from the session id).
#[derive(Debug)]
pub struct PublicStream {
    stream: Keystream,
}

impl PublicStream {
    /// A stream keyed by `key` with the all-zero nonce.
    pub fn new(key: [u8; 32]) -> Self {
        PublicStream {
            stream: Keystream::new(&key, &[0u8; 12]),
        }
    }

    fn next_u64(&mut self) -> u64 {
        // A permutation of at most MAX_MEMBERS draws is nowhere near 256 GiB of keystream.
        self.stream.next_u64().unwrap_or_default()
    }

    /// Uniform integer in `0..bound` (bound > 0) by rejection, so no modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % bound;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cancel_and_match_the_raw_keystream() {
        let session = SessionId([3; 32]);
        let seed: Seed = Zeroizing::new([7; 32]);
        let mut acc = vec![0u32; 10_000];
        apply_masks(&mut acc, &[(seed.clone(), Sign::Add)], &session).unwrap();
        let mut raw = vec![0u8; 40_000];
        Keystream::new(&[7u8; 32], &session_nonce(&session))
            .fill(&mut raw)
            .unwrap();
        let expect: Vec<u32> = raw
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        assert_eq!(acc, expect);
        apply_masks(&mut acc, &[(seed, Sign::Subtract)], &session).unwrap();
        assert!(acc.iter().all(|&v| v == 0));
    }

    #[test]
    fn parallel_masking_equals_sequential() {
        let session = SessionId([8; 32]);
        let masks: Vec<(Seed, Sign)> = (0..5u8)
            .map(|i| {
                (
                    Zeroizing::new([i; 32]),
                    if i % 2 == 0 {
                        Sign::Add
                    } else {
                        Sign::Subtract
                    },
                )
            })
            .collect();
        for len in [1, 4095, 4096, 10_001, 3 * BLOCK_WORDS + 17] {
            let mut one = vec![1u32; len];
            let mut many = one.clone();
            apply_masks(&mut one, &masks, &session).unwrap();
            apply_masks_parallel(&mut many, &masks, &session, 3).unwrap();
            assert_eq!(one, many, "len {len}");
        }
    }

    #[test]
    fn another_session_gives_another_mask() {
        let seed: Seed = Zeroizing::new([1; 32]);
        let mut a = vec![0u32; 64];
        let mut b = vec![0u32; 64];
        apply_masks(&mut a, &[(seed.clone(), Sign::Add)], &SessionId([0; 32])).unwrap();
        apply_masks(&mut b, &[(seed, Sign::Add)], &SessionId([1; 32])).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn public_stream_is_uniform_enough_and_in_range() {
        let mut s = PublicStream::new([9; 32]);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[s.below(6) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
