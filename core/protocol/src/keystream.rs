//! ChaCha20 keystreams: the one source of bulk randomness behind SecAgg+ masks and DP noise.
//!
//! Both consumers want megabytes at once, so this wraps RustCrypto's `chacha20` (20 rounds),
//! whose runtime-detected SIMD backend (AVX-512 or AVX2 on x86-64, NEON on phones; the
//! AVX-512 one is compiled in by the workspace's `.cargo/config.toml`) computes several
//! blocks per call straight into the caller's buffer. Callers read it in chunks of a few KiB
//! and consume each chunk while it is in L1 cache, so no full-length keystream is ever
//! materialized.

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// The keystream ran past ChaCha20's 2^32 blocks (256 GiB) for one key and nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ChaCha20 keystream exhausted (256 GiB per key and nonce)")]
pub struct Exhausted;

/// A ChaCha20 keystream under a 256-bit key and a 96-bit nonce.
pub struct Keystream {
    cipher: ChaCha20,
}

impl std::fmt::Debug for Keystream {
    // The cipher state holds the key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystream").finish_non_exhaustive()
    }
}

impl Keystream {
    /// The keystream of `key` under `nonce`, from byte 0.
    pub fn new(key: &[u8; 32], nonce: &[u8; 12]) -> Self {
        Keystream {
            cipher: ChaCha20::new(key.into(), nonce.into()),
        }
    }

    /// A keystream under a fresh 256-bit key drawn from `rng` (all-zero nonce: the key is
    /// never reused). Turns any injected CSPRNG into a bulk source at SIMD speed while
    /// keeping the caller's seeding (and so reproducibility in tests).
    pub fn from_rng<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        Self::new(&key, &[0u8; 12])
    }

    /// Moves to byte `offset` of the keystream.
    pub fn seek(&mut self, offset: u64) -> Result<(), Exhausted> {
        self.cipher.try_seek(offset).map_err(|_| Exhausted)
    }

    /// The current byte offset in the keystream (where [`Self::seek`] can return to).
    pub fn position(&self) -> u64 {
        self.cipher.current_pos()
    }

    /// Overwrites `out` with the next `out.len()` keystream bytes.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Exhausted> {
        self.cipher.try_write_keystream(out).map_err(|_| Exhausted)
    }

    /// The next 8 keystream bytes as a little-endian word (for rare, data-dependent draws).
    pub fn next_u64(&mut self) -> Result<u64, Exhausted> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_8439_test_vector() {
        // RFC 8439 §2.4.2: key 00..1f, nonce 00 00 00 00 00 00 00 4a 00 00 00 00, block 1.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let mut stream = Keystream::new(&key, &nonce);
        stream.seek(64).unwrap();
        let mut first = [0u8; 4];
        stream.fill(&mut first).unwrap();
        assert_eq!(first, [0x22, 0x4f, 0x51, 0xf3]);
    }

    #[test]
    fn chunked_reads_equal_one_read_and_seeks_land_mid_block() {
        let mut whole = vec![0u8; 5000];
        Keystream::new(&[3; 32], &[1; 12]).fill(&mut whole).unwrap();
        let mut stream = Keystream::new(&[3; 32], &[1; 12]);
        let mut parts = vec![0u8; 5000];
        for chunk in parts.chunks_mut(77) {
            stream.fill(chunk).unwrap();
        }
        assert_eq!(whole, parts);
        let mut seeked = Keystream::new(&[3; 32], &[1; 12]);
        seeked.seek(1001).unwrap();
        assert_eq!(seeked.next_u64().unwrap().to_le_bytes(), whole[1001..1009]);
        assert_eq!(seeked.position(), 1009);
    }

    #[test]
    fn long_runs_match_an_independent_implementation() {
        // The SIMD backends (AVX-512: 16 blocks per call) only engage on long fills, which the
        // one-block RFC vector never reaches. `rand_chacha` (ppv-lite86) is a separate ChaCha20
        // code base; with the nonce's first word zero its 64-bit counter and stream id lay out
        // the same state words as RFC 8439's 32-bit counter and 96-bit nonce.
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let key: [u8; 32] = std::array::from_fn(|i| (7 * i + 1) as u8);
        let nonce = [0, 0, 0, 0, 9, 8, 7, 6, 5, 4, 3, 2];
        let mut ours = vec![0u8; 1 << 16];
        let mut stream = Keystream::new(&key, &nonce);
        for chunk in ours.chunks_mut(5 * 1024 + 3) {
            stream.fill(chunk).unwrap();
        }
        let mut reference = ChaCha20Rng::from_seed(key);
        reference.set_stream(u64::from_le_bytes(nonce[4..].try_into().unwrap()));
        let mut theirs = vec![0u8; 1 << 16];
        reference.fill_bytes(&mut theirs);
        assert!(ours == theirs, "keystreams differ");
    }

    #[test]
    fn running_past_the_end_is_an_error() {
        let mut stream = Keystream::new(&[0; 32], &[0; 12]);
        assert_eq!(stream.seek(1u64 << 38), Err(Exhausted));
        // The last block the cipher serves (counter 2^32 − 2) reads; the next byte fails.
        stream.seek((1u64 << 38) - 128).unwrap();
        let mut last = [0u8; 64];
        stream.fill(&mut last).unwrap();
        assert_eq!(stream.next_u64(), Err(Exhausted));
    }
}
