//! The encoder's randomness: one ChaCha20 keystream for the bulk coins (rounding coin heads,
//! noise heads) and a second one for the rare tie-breaking tails.
//!
//! Why two: the SIMD ChaCha20 backends serve a read fastest when it covers whole batches of
//! blocks (16 blocks, 1 KiB, with AVX-512) from a batch boundary. The bulk reads are whole
//! KiBs; an 8-byte tail read in the same stream would leave every later bulk read straddling
//! batches, which the backends serve block by block (measured: the keystream cost in the
//! encoder tripled).

use rand_core::{CryptoRng, RngCore};

use crate::keystream::{Exhausted, Keystream};

/// Bulk and tail keystreams, both keyed from the caller's RNG.
#[derive(Debug)]
pub(crate) struct Coins {
    /// Read in whole batches: coin and noise heads.
    pub bulk: Keystream,
    /// Read 8 bytes at a time, only when a head ties.
    pub tails: Keystream,
}

/// Where both streams stand, to replay a pass from ([`Coins::seek`]).
pub(crate) type Position = (u64, u64);

impl Coins {
    /// Two keystreams under fresh keys drawn from `rng`.
    pub fn from_rng<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Coins {
            bulk: Keystream::from_rng(rng),
            tails: Keystream::from_rng(rng),
        }
    }

    /// The current offsets of both streams.
    pub fn position(&self) -> Position {
        (self.bulk.position(), self.tails.position())
    }

    /// Moves both streams back (or on) to `position`.
    pub fn seek(&mut self, (bulk, tails): Position) -> Result<(), Exhausted> {
        self.bulk.seek(bulk)?;
        self.tails.seek(tails)
    }
}
