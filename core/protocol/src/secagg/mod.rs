//! SecAgg+ secure aggregation (Bell et al. 2020, on Bonawitz et al. 2017), sans-I/O.
//!
//! The server learns the wrapping sum mod 2^bits of the members' input vectors and the list
//! of members whose inputs it contains — nothing about any one input — even when members
//! drop out at any stage. [`Client`] and [`Server`] are state machines: they take messages
//! and return messages; carrying the bytes ([`ClientMessage::encode`],
//! [`ServerMessage::decode`], ...) is the caller's job.
//!
//! Stages (each member talks only to its k neighbours in a Harary graph, see [`graph`]):
//!
//! 1. **Advertise keys**: two X25519 public keys (c for share encryption, s for masks) and a
//!    commitment to the self-mask seed b.
//! 2. **Share keys**: Shamir shares (threshold t) of b and of the s secret key, encrypted to
//!    each neighbour and relayed by the server.
//! 3. **Masked input**: input + PRG(b) ± PRG(s_uv) for every neighbour that shared, mod 2^B.
//! 4. **Consistency check** (signed sessions only): survivors sign the survivor list.
//! 5. **Unmask**: for each neighbour, the b-share if it survived or the s-share if it
//!    dropped — never both — and the server removes the remaining masks. The relayed share
//!    ciphertexts stay sealed until here (Bonawitz et al., round 4): the member opens each
//!    pair only now and releases only the share the request calls for.
//!
//! Interface with the DP encoder: inputs are `&[u32]`, every value < 2^bits, bits in
//! 1..=32, the same length m for the whole cohort; extra coordinates (such as the adaptive
//! clipping bit) are just more elements.

mod client;
pub mod crypto;
mod error;
pub mod graph;
pub mod params;
pub mod prg;
mod server;
pub mod shamir;
pub mod simulation;
mod wire;

pub use client::Client;
pub use crypto::SigningIdentity;
pub use error::{Error, Result};
pub use params::{AdversaryClass, GraphParams, ThreatModel};
pub use server::{Aggregate, Server, ServerStep};
pub use wire::{
    AdvertisedKeys, CIPHERTEXT_BYTES, ClientBody, ClientMessage, DirectoryEntry, MAX_DIMENSION,
    MAX_MEMBERS, ServerBody, ServerMessage, SessionParams, WIRE_VERSION, pack, packed_len,
    signature_payload, survivor_list_bytes, unpack,
};

/// A member's id within a session's roster (pseudonymous; the server maps devices to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u32);

impl MemberId {
    /// The Shamir evaluation point of this member's shares (never 0).
    pub fn share_point(self) -> u64 {
        u64::from(self.0) + 1
    }
}

/// A session's 32-byte random id; fresh for every round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 32]);

/// The protocol stages, in order. The discriminant is the wire byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Members send their public keys.
    AdvertiseKeys = 1,
    /// Members send encrypted shares for their neighbours.
    ShareKeys = 2,
    /// Members send masked inputs.
    MaskedInput = 3,
    /// Survivors sign the survivor list (signed sessions only).
    ConsistencyCheck = 4,
    /// Survivors reveal the shares the server needs to remove the masks.
    Unmask = 5,
}

impl Stage {
    /// Every stage, in protocol order.
    pub const ALL: [Stage; 5] = [
        Stage::AdvertiseKeys,
        Stage::ShareKeys,
        Stage::MaskedInput,
        Stage::ConsistencyCheck,
        Stage::Unmask,
    ];
}

/// The commitment a member publishes to its self-mask seed b.
fn b_commitment(session: &SessionId, member: MemberId, seed: &[u8; 32]) -> [u8; 32] {
    crypto::digest(&[
        b"covey-secagg/v1/b-commitment",
        &session.0,
        &member.0.to_le_bytes(),
        seed,
    ])
}

/// Additional authenticated data of the share ciphertext from `sender` to `recipient`.
fn share_aad(session: &SessionId, sender: MemberId, recipient: MemberId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + 9);
    aad.extend_from_slice(&session.0);
    aad.push(Stage::ShareKeys as u8);
    aad.extend_from_slice(&sender.0.to_le_bytes());
    aad.extend_from_slice(&recipient.0.to_le_bytes());
    aad
}

/// The seed of the pairwise mask between two members, as either side derives it.
fn pairwise_seed(shared: &[u8; 32], session: &SessionId, a: MemberId, b: MemberId) -> prg::Seed {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    crypto::derive_key(
        shared,
        session,
        crypto::Purpose::PairwiseMask,
        Stage::MaskedInput,
        lo,
        hi,
    )
}

/// The sign with which `member` applies its pairwise mask with `peer`: the lower id adds,
/// the higher id subtracts, so the pair cancels in the sum.
fn pairwise_sign(member: MemberId, peer: MemberId) -> prg::Sign {
    if member < peer {
        prg::Sign::Add
    } else {
        prg::Sign::Subtract
    }
}

/// 2^bits − 1 as a word mask.
fn value_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}
