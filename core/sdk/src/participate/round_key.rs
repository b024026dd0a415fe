//! The device's signing key for signed SecAgg+ sessions, and the integrity failures that make
//! a device stop a round.
//!
//! # One key per registration, not the device key
//!
//! [`Device::join`] draws a fresh Ed25519 key for each population it registers with and
//! sends the server its public half (with a proof of possession). It does not reuse the
//! device key ([`crate::signing::DeviceKey`]) that signs consent receipts and audit
//! checkpoints, because that key is an identifier the member hands out: receipts carry the
//! member's subject reference and go to the controller, regulators, the member's own
//! exports. Registered with the aggregation server, the same public key would let whoever
//! sees both link a pseudonymous training device to a named member, and one key across
//! populations (or servers) would link the device's participations in all of them. A
//! per-registration key links nothing the bearer token does not already link, and it is
//! sealed in the store like every other secret, so erasing the store shreds it.
//!
//! # What a signed session protects
//!
//! Peers verify each other's advertised keys and the survivor list against the roster of
//! signing keys, and every signature commits to the signer's view of the whole roster
//! ([`covey_protocol::secagg::SessionParams::digest`]). A server that substitutes a peer's
//! keys, shows members different rosters, or tells members different survivor lists (to
//! collect both shares of one member) is caught, and the device stops with
//! [`crate::Error::RoundTampered`] before sending anything more. The roster itself comes from
//! the server's registrations: a server that registers devices of its own (Sybils) is
//! bounded only by the population's adversarial fraction, as in the unsigned protocol.

use covey_protocol::secagg::crypto::registration_message;
use covey_protocol::secagg::{self, SessionParams, SigningIdentity, Stage};
use covey_store::KeyMaterial;
use serde::Serialize;
use zeroize::Zeroizing;

use super::Registration;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::signing::DeviceKey;

/// Name of the round signing key in the store's key material.
pub const ROUND_KEY_NAME: &str = "covey.round_signing_key";
const ROUND_KEY_ALGORITHM: &str = "ed25519-secagg-v1";
/// Format version of the registration request body.
const REGISTRATION_REQUEST_VERSION: u8 = 1;

/// How the aggregation server's messages failed a signed session's integrity checks. The
/// device stopped at that point: nothing after the offending message left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tampering {
    /// The device registered with a population that runs signed sessions, and the server
    /// opened an unsigned one (a downgrade).
    #[error("the server opened an unsigned session in a signed population")]
    UnsignedSession,
    /// The session's roster lists another signing key for this device.
    #[error("the session roster lists another signing key for this device")]
    OwnKeyReplaced,
    /// A peer's advertised keys do not carry that peer's signature over this device's view
    /// of the roster (a substituted key, or a roster shown differently to different members).
    #[error("a peer's advertised keys are not signed by that peer under this roster")]
    PeerKeysForged,
    /// The unmask request names a survivor list other than the one this device signed, or
    /// lacks enough valid survivor signatures (different lists shown to different members).
    #[error("the survivor list differs from the one signed, or too few survivors signed it")]
    SurvivorListMismatch,
}

/// The JSON body of a registration that carries a signing key.
#[derive(Serialize)]
struct RegistrationRequest {
    version: u8,
    signing_key: String,
    key_proof: String,
}

/// The registration request body for `key` in `population` (key and proof of possession).
pub(crate) fn registration_body(population: &str, key: &DeviceKey) -> Result<Vec<u8>> {
    let public = key.identity().public_key();
    let request = RegistrationRequest {
        version: REGISTRATION_REQUEST_VERSION,
        signing_key: hex::encode(public),
        key_proof: hex::encode(key.sign(&registration_message(population, &public))),
    };
    serde_json::to_vec(&request).map_err(|_| Error::Corrupted {
        what: "registration request",
    })
}

impl Device {
    /// A fresh round signing key from the device's RNG.
    pub(crate) fn new_round_key(&self) -> Result<DeviceKey> {
        DeviceKey::generate(&mut self.round_rng()?)
    }

    /// Seals the round signing key of a new registration.
    pub(crate) fn store_round_key(&self, key: &DeviceKey) -> Result<()> {
        let material = KeyMaterial {
            algorithm: ROUND_KEY_ALGORITHM.into(),
            public_key: key.public_key().to_vec(),
            secret: Zeroizing::new(key.seed().to_vec()),
            created_at_ms: self.clock.now_ms(),
        };
        Ok(self.store.put_key_material(ROUND_KEY_NAME, &material)?)
    }

    /// The identity to sign `params` with: `None` for an unsigned session the registration
    /// allows; [`Error::RoundTampered`] for an unsigned session in a signed population or a
    /// roster that lists another key for this device.
    pub(crate) fn session_identity(
        &self,
        registration: &Registration,
        params: &SessionParams,
        member: secagg::MemberId,
    ) -> Result<Option<SigningIdentity>> {
        let Some(roster_keys) = &params.signing_keys else {
            return if registration.signed_sessions {
                Err(Error::RoundTampered(Tampering::UnsignedSession))
            } else {
                Ok(None)
            };
        };
        let key = self.round_key(registration)?.ok_or(Error::Protocol {
            what: "secure aggregation",
            reason: "the session is signed but this registration has no signing key".into(),
        })?;
        let listed = params.position(member).map(|p| roster_keys[p]);
        if listed != Some(key.identity().public_key()) {
            return Err(Error::RoundTampered(Tampering::OwnKeyReplaced));
        }
        Ok(Some(key.into_identity()))
    }

    /// The registration's round signing key, checked against the public key it registered.
    fn round_key(&self, registration: &Registration) -> Result<Option<DeviceKey>> {
        let Some(registered) = &registration.signing_key else {
            return Ok(None);
        };
        let corrupted = || Error::Corrupted {
            what: "round signing key",
        };
        let km = self
            .store
            .key_material(ROUND_KEY_NAME)?
            .ok_or_else(corrupted)?;
        if km.algorithm != ROUND_KEY_ALGORITHM {
            return Err(corrupted());
        }
        let key = DeviceKey::from_seed(&km.secret)?;
        if hex::encode(key.public_key()) != *registered {
            return Err(corrupted());
        }
        Ok(Some(key))
    }
}

/// The SDK error for a SecAgg+ client error at the stage whose opening it was handling:
/// integrity failures become [`Error::RoundTampered`], the rest [`Error::Protocol`].
pub(crate) fn client_error(stage: Stage, e: secagg::Error) -> Error {
    use secagg::Error as E;
    match (stage, &e) {
        (Stage::ShareKeys, E::BadSignature(_)) => Error::RoundTampered(Tampering::PeerKeysForged),
        (Stage::Unmask, E::BadSignature(_) | E::UnmaskRefused(_)) => {
            Error::RoundTampered(Tampering::SurvivorListMismatch)
        }
        _ => super::secagg_error(e),
    }
}
