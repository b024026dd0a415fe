//! The device's Ed25519 signing key and the signed audit-log checkpoints it produces.
//!
//! One key per device signs consent receipts and audit checkpoints; its 32-byte seed is kept
//! sealed in the store, so it is protected by the same platform-keystore-wrapped data key as
//! the member's history, and erasing the store shreds it. Signed SecAgg+ sessions use the
//! same type for a separate key per server registration (`participate::round_key` says why
//! not this one).

use covey_protocol::secagg::SigningIdentity;
use covey_protocol::secagg::crypto::{SIGNATURE_BYTES, random_secret, verify};
use rand_core::CryptoRng;
use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::merkle::Hash;

/// Version of the checkpoint format.
pub const CHECKPOINT_VERSION: u8 = 1;

/// Length of an Ed25519 seed.
pub const SEED_LEN: usize = 32;

/// The device's signing key: the protocol's Ed25519 [`SigningIdentity`] (one wrapper over
/// ring for the whole code base) plus the seed it was made from, which the store seals.
pub struct DeviceKey {
    identity: SigningIdentity,
    public: [u8; 32],
    seed: Zeroizing<[u8; SEED_LEN]>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A fresh key from `rng` (OS randomness in production, seeded in tests).
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self> {
        Self::from_seed(random_secret(rng).as_ref())
    }

    /// Restores a key from its seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        let corrupted = Error::Corrupted {
            what: "device signing key",
        };
        let mut copy = Zeroizing::new([0u8; SEED_LEN]);
        if seed.len() != SEED_LEN {
            return Err(corrupted);
        }
        copy.copy_from_slice(seed);
        let identity = SigningIdentity::from_seed(&copy).map_err(|_| corrupted)?;
        Ok(Self {
            public: identity.public_key(),
            identity,
            seed: copy,
        })
    }

    /// The seed, for sealing into the store.
    pub fn seed(&self) -> &[u8] {
        self.seed.as_ref()
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The protocol identity (signs SecAgg+ messages with the same key).
    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// The protocol identity, owned (a SecAgg+ client takes its identity by value).
    pub fn into_identity(self) -> SigningIdentity {
        self.identity
    }

    /// Short identifier: hex of the first 8 bytes of SHA-256(public key).
    pub fn key_id(&self) -> String {
        key_id(self.public_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.identity.sign(message).to_vec()
    }
}

/// Key identifier of a public key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&digest(&SHA256, public_key).as_ref()[..8])
}

/// Verifies an Ed25519 signature (false for keys or signatures of the wrong length).
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(key), Ok(sig)) = (
        <&[u8; 32]>::try_from(public_key),
        <&[u8; SIGNATURE_BYTES]>::try_from(signature),
    ) else {
        return false;
    };
    verify(key, message, sig).is_ok()
}

/// A device-signed statement "the audit log had `tree_size` entries with root `root`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u8,
    /// Key id of the signing device key (names the log).
    pub log_id: String,
    /// Number of entries covered.
    pub tree_size: u64,
    /// Hex RFC 6962 root of those entries.
    pub root: String,
    /// Signing time, ms since the Unix epoch.
    pub time_ms: i64,
    /// Hex Ed25519 signature over [`SignedCheckpoint::message`].
    pub signature: String,
}

impl SignedCheckpoint {
    /// Signs a checkpoint for a tree of `tree_size` entries with root `root`.
    pub fn sign(key: &DeviceKey, tree_size: u64, root: &Hash, time_ms: i64) -> Self {
        let mut cp = Self {
            version: CHECKPOINT_VERSION,
            log_id: key.key_id(),
            tree_size,
            root: hex::encode(root),
            time_ms,
            signature: String::new(),
        };
        cp.signature = hex::encode(key.sign(cp.message().as_bytes()));
        cp
    }

    /// The signed text, in the spirit of C2SP signed-note checkpoints.
    pub fn message(&self) -> String {
        format!(
            "covey.audit.checkpoint/v{}\n{}\n{}\n{}\n{}\n",
            self.version, self.log_id, self.tree_size, self.root, self.time_ms
        )
    }

    /// Checks the version, that `public_key` names this log, and the signature.
    pub fn verify(&self, public_key: &[u8]) -> Result<Hash> {
        let bad = |what: &'static str| Error::BadCheckpoint { what };
        if self.version != CHECKPOINT_VERSION {
            return Err(bad("unsupported version"));
        }
        if self.log_id != key_id(public_key) {
            return Err(bad("signed by a different device key"));
        }
        let sig = hex::decode(&self.signature).map_err(|_| bad("signature is not hex"))?;
        if !verify_signature(public_key, self.message().as_bytes(), &sig) {
            return Err(bad("signature does not verify"));
        }
        let mut root = [0u8; 32];
        hex::decode_to_slice(&self.root, &mut root).map_err(|_| bad("root is not 32 hex bytes"))?;
        Ok(root)
    }

    /// Encodes for storage (version byte + JSON).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CHECKPOINT_VERSION];
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// Decodes what [`Self::encode`] wrote; bounded (a checkpoint is well under 1 KiB).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = Error::Corrupted {
            what: "audit checkpoint",
        };
        match bytes.split_first() {
            Some((&CHECKPOINT_VERSION, json)) if json.len() <= 1024 => {
                serde_json::from_slice(json).map_err(|_| bad)
            }
            _ => Err(bad),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn key(seed: u64) -> DeviceKey {
        DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)).expect("key")
    }

    #[test]
    fn checkpoint_round_trips_and_verifies() {
        let k = key(1);
        let cp = SignedCheckpoint::sign(&k, 7, &[9u8; 32], 1_700_000_000_000);
        assert_eq!(cp.verify(k.public_key()).expect("valid"), [9u8; 32]);
        let back = SignedCheckpoint::decode(&cp.encode()).expect("decodes");
        assert_eq!(back, cp);
        let restored = DeviceKey::from_seed(k.seed()).expect("seed");
        assert_eq!(restored.public_key(), k.public_key());
    }

    #[test]
    fn forged_checkpoints_are_rejected() {
        let k = key(1);
        let cp = SignedCheckpoint::sign(&k, 7, &[9u8; 32], 1);
        let mut bigger = cp.clone();
        bigger.tree_size = 8;
        assert!(bigger.verify(k.public_key()).is_err());
        let mut other_root = cp.clone();
        other_root.root = hex::encode([8u8; 32]);
        assert!(other_root.verify(k.public_key()).is_err());
        let other_key = key(2);
        assert!(cp.verify(other_key.public_key()).is_err());
        let resigned = SignedCheckpoint::sign(&other_key, 7, &[9u8; 32], 1);
        assert!(resigned.verify(k.public_key()).is_err());
        assert!(SignedCheckpoint::decode(&[2, b'{', b'}']).is_err());
    }
}
