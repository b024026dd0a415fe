//! X25519 (RFC 7748) of one secret with many peer public keys, batched.
//!
//! A SecAgg+ member agrees a pairwise mask key with each of its k neighbours using one
//! secret, and the server recomputes those k agreements for every member that dropped
//! out. On x86-64 CPUs with AVX-512 IFMA this crate runs eight Montgomery ladders at once,
//! one per 64-bit lane ([`Backend::Ifma`]); everywhere else (aarch64 phones, older x86) it
//! falls back to x25519-dalek one agreement at a time ([`Backend::Portable`]). Both give
//! bit-identical results to x25519-dalek's `StaticSecret::diffie_hellman`, including for
//! non-canonical and low-order peer keys: callers that must refuse low-order peers check
//! the output for all zeros ([`is_contributory`]), as x25519-dalek's `was_contributory`.
//!
//! Secrets are handled in constant time (no branch or index on scalar bits) and wiped:
//! the clamped scalar, the ladder state, the result limbs and the outputs are zeroised
//! on drop. (Register spills of the ladder's temporaries are out of reach of any wiping,
//! as in x25519-dalek.)

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod ifma;
#[cfg(target_arch = "x86_64")]
mod scalar;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Errors of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The requested backend needs CPU features this machine lacks.
    #[error("the {0:?} X25519 backend is not available on this CPU")]
    Unavailable(Backend),
    /// The output buffer has fewer slots than there are peers.
    #[error("output buffer holds {slots} agreements, {peers} peers given")]
    OutputTooShort {
        /// Agreements requested.
        peers: usize,
        /// Slots in the buffer.
        slots: usize,
    },
}

/// How the agreements are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Eight ladders per batch on AVX-512 IFMA (x86-64 with avx512f and avx512ifma).
    Ifma,
    /// x25519-dalek, one agreement at a time (every CPU).
    Portable,
}

impl Backend {
    /// The fastest backend this CPU supports.
    pub fn detect() -> Backend {
        if Backend::Ifma.is_available() {
            Backend::Ifma
        } else {
            Backend::Portable
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            Backend::Ifma => ifma_available(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn ifma_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

#[cfg(not(target_arch = "x86_64"))]
fn ifma_available() -> bool {
    false
}

/// X25519 of `secret` with each of `peers`, in order, on the fastest backend available.
///
/// Equals `StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(peer))` for every
/// peer; a low-order peer yields all zeros (see [`is_contributory`]).
pub fn agree_many(secret: &[u8; 32], peers: &[[u8; 32]]) -> Vec<Zeroizing<[u8; 32]>> {
    let mut out = vec![Zeroizing::new([0u8; 32]); peers.len()];
    // Infallible: the detected backend is available.
    let _ = agree_many_into(Backend::detect(), secret, peers, &mut out);
    out
}

/// X25519 of `secret` with each of `peers` on `backend`, written to `out[..peers.len()]`.
///
/// # Errors
/// [`Error::Unavailable`] when this CPU cannot run `backend`, [`Error::OutputTooShort`] when
/// `out` has fewer slots than `peers`; either way nothing is written.
pub fn agree_many_into(
    backend: Backend,
    secret: &[u8; 32],
    peers: &[[u8; 32]],
    out: &mut [Zeroizing<[u8; 32]>],
) -> Result<(), Error> {
    if !backend.is_available() {
        return Err(Error::Unavailable(backend));
    }
    let slots = out.len();
    let out = out.get_mut(..peers.len()).ok_or(Error::OutputTooShort {
        peers: peers.len(),
        slots,
    })?;
    match backend {
        Backend::Portable => agree_portable(secret, peers, out),
        Backend::Ifma => agree_ifma(secret, peers, out),
    }
    Ok(())
}

fn agree_portable(secret: &[u8; 32], peers: &[[u8; 32]], out: &mut [Zeroizing<[u8; 32]>]) {
    let secret = StaticSecret::from(*secret);
    for (peer, out) in peers.iter().zip(out) {
        **out = secret.diffie_hellman(&PublicKey::from(*peer)).to_bytes();
    }
}

#[cfg(target_arch = "x86_64")]
fn agree_ifma(secret: &[u8; 32], peers: &[[u8; 32]], out: &mut [Zeroizing<[u8; 32]>]) {
    debug_assert!(ifma_available());
    // SAFETY: only reached through `agree_many_into`, which checked at run time that the
    // CPU has avx512f and avx512ifma, the target features `ifma::agree_many` is compiled for.
    unsafe { ifma::agree_many(secret, peers, out) }
}

#[cfg(not(target_arch = "x86_64"))]
fn agree_ifma(secret: &[u8; 32], peers: &[[u8; 32]], out: &mut [Zeroizing<[u8; 32]>]) {
    // Unreachable: `Backend::Ifma` is never available off x86-64.
    agree_portable(secret, peers, out)
}

/// Whether an agreement output is contributory, i.e. not all zeros (the peer's key was
/// not of low order). Constant time in the output bytes.
pub fn is_contributory(shared: &[u8; 32]) -> bool {
    let folded = shared.iter().fold(0u8, |acc, byte| acc | byte);
    core::hint::black_box(folded) != 0
}
