//! Sealing: AES-256-GCM per record, blind indexes, and key wrapping.
//!
//! # Sealed blob format (version 1)
//!
//! ```text
//! +---------+--------------+-----------------------------+
//! | 0x01    | nonce (12 B) | ciphertext || GCM tag (16 B) |
//! +---------+--------------+-----------------------------+
//! ```
//!
//! The associated data binds the blob to where it lives:
//! `"covey-store/aad/v1" || len(table) || table || row_id (i64 BE) || schema_version (u32 BE)
//! || blob version`. A ciphertext copied into another row, another table, or read under another
//! record layout fails authentication.
//!
//! # Keys
//!
//! One random 256-bit *data key* per store (generation). Sub-keys come from HKDF-SHA256
//! (salt `"covey-store/hkdf/v1"`): the AES-256-GCM key (`info = "aead"`) and one HMAC-SHA256
//! blind-index key per table (`info = "blind-index" || table`), so a compromise of one index
//! key says nothing about another table, and index values cannot be compared across tables.
//!
//! # Nonces and the per-key message bound
//!
//! Nonces are 96 random bits drawn from the store's CSPRNG. With `q` messages under one key
//! the probability of any nonce repeating is at most `q² / 2⁹⁷`; NIST SP 800-38D caps random
//! 96-bit IVs at 2³² messages per key, where that probability is below 2⁻³³. The store counts
//! seals per key (persisted with the key metadata) and refuses to seal beyond
//! [`MAX_SEALS_PER_KEY`] until the key is rotated.
//!
//! ring's expanded AES and HMAC key schedules are not zeroized on drop (ring does not offer
//! it); the raw key bytes held here are.

use rand_core::CryptoRng;
use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Sealed-blob format version written by this build.
pub(crate) const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = aead::NONCE_LEN;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Length of a data key (AES-256).
pub(crate) const DATA_KEY_LEN: usize = 32;
/// Bytes of HMAC-SHA256 kept in a blind-index column. A collision only costs an extra
/// decryption (lookups compare the opened value), so 64 bits suffice (collision odds among
/// a million distinct values: about 3·10⁻⁸) and keep every indexed row 16 bytes smaller
/// (column and index entry), which SQLite's per-row cost is proportional to.
pub(crate) const BLIND_INDEX_LEN: usize = 8;

/// Most values one data key may seal (NIST SP 800-38D bound for random 96-bit nonces).
pub const MAX_SEALS_PER_KEY: u64 = 1 << 32;

const HKDF_SALT: &[u8] = b"covey-store/hkdf/v1";
const AAD_PREFIX: &[u8] = b"covey-store/aad/v1";

/// The store's random source: a CSPRNG, injectable so tests are reproducible.
pub type StoreRng = Box<dyn CryptoRng + Send>;

/// A ChaCha20 CSPRNG seeded from the operating system.
pub fn os_rng() -> Result<StoreRng> {
    use rand_core::SeedableRng;
    let rng = rand_chacha::ChaCha20Rng::try_from_os_rng().map_err(|_| Error::Random)?;
    Ok(Box::new(rng))
}

/// A 256-bit secret, zeroized when dropped.
#[derive(Clone)]
pub(crate) struct SecretKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl SecretKey {
    pub(crate) fn random(rng: &mut dyn CryptoRng) -> Self {
        let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rng.fill_bytes(bytes.as_mut());
        SecretKey(bytes)
    }

    /// Takes ownership of key bytes from a key store; the input is zeroized either way.
    pub(crate) fn from_vec(bytes: Vec<u8>) -> Option<Self> {
        let bytes = Zeroizing::new(bytes);
        let array: [u8; DATA_KEY_LEN] = bytes.as_slice().try_into().ok()?;
        Some(SecretKey(Zeroizing::new(array)))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Where a sealed value lives; authenticated as associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Location {
    /// Table name.
    pub table: &'static str,
    /// Row id (never reused within a key generation).
    pub row_id: i64,
    /// Schema version of the table's record layout.
    pub schema_version: u32,
}

impl Location {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 2 + self.table.len() + 13);
        aad.extend_from_slice(AAD_PREFIX);
        // Table names are short static identifiers; the length prefix keeps the encoding
        // injective.
        aad.push(u8::try_from(self.table.len()).unwrap_or(u8::MAX));
        aad.extend_from_slice(self.table.as_bytes());
        aad.extend_from_slice(&self.row_id.to_be_bytes());
        aad.extend_from_slice(&self.schema_version.to_be_bytes());
        aad.push(BLOB_VERSION);
        aad
    }
}

/// Why a sealed blob did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Too short or an unknown format version.
    Malformed,
    /// Authentication failed: wrong key, wrong location, or a changed byte.
    Forged,
}

impl OpenError {
    pub(crate) fn at(self, loc: &Location) -> Error {
        Error::Corrupted {
            table: loc.table,
            row_id: Some(loc.row_id),
            reason: match self {
                OpenError::Malformed => "sealed value is malformed or of an unknown version",
                OpenError::Forged => "sealed value failed authentication (changed or moved)",
            },
        }
    }
}

/// The keys derived from one data key.
pub(crate) struct Cipher {
    aead: aead::LessSafeKey,
    prk: hkdf::Prk,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    pub(crate) fn new(key: &SecretKey) -> Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(key.as_bytes());
        let okm = prk
            .expand(&[b"aead"], &aead::AES_256_GCM)
            .map_err(|_| Error::Crypto("HKDF expand"))?;
        Ok(Cipher {
            aead: aead::LessSafeKey::new(aead::UnboundKey::from(okm)),
            prk,
        })
    }

    /// Seals `plaintext` for `loc` with a fresh random nonce.
    pub(crate) fn seal(
        &self,
        loc: &Location,
        plaintext: &[u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<Vec<u8>> {
        seal_with(&self.aead, &loc.aad(), plaintext, rng)
    }

    /// Opens a blob sealed for `loc`.
    pub(crate) fn open(&self, loc: &Location, blob: &[u8]) -> Result<Vec<u8>> {
        open_with(&self.aead, &loc.aad(), blob).map_err(|e| e.at(loc))
    }

    /// The blind-index keyer of `table`.
    pub(crate) fn blind_indexer(&self, table: &'static str) -> Result<BlindIndexer> {
        let info: [&[u8]; 2] = [b"blind-index", table.as_bytes()];
        let okm = self
            .prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| Error::Crypto("HKDF expand"))?;
        Ok(BlindIndexer(hmac::Key::from(okm)))
    }
}

/// Computes blind-index values for one table.
pub(crate) struct BlindIndexer(hmac::Key);

impl BlindIndexer {
    /// HMAC-SHA256(table key, column || 0x00 || value), truncated to [`BLIND_INDEX_LEN`].
    pub(crate) fn index(&self, column: &str, value: &[u8]) -> [u8; BLIND_INDEX_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(column.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        let tag = ctx.sign();
        let mut out = [0u8; BLIND_INDEX_LEN];
        out.copy_from_slice(&tag.as_ref()[..BLIND_INDEX_LEN]);
        out
    }
}

/// AES-256-GCM seal in the versioned blob format.
pub(crate) fn seal_with(
    key: &aead::LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(BLOB_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut out[HEADER_LEN..],
        )
        .map_err(|_| Error::Crypto("AES-GCM seal"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a blob written by [`seal_with`].
pub(crate) fn open_with(
    key: &aead::LessSafeKey,
    aad: &[u8],
    blob: &[u8],
) -> std::result::Result<Vec<u8>, OpenError> {
    if blob.len() < HEADER_LEN + TAG_LEN || blob[0] != BLOB_VERSION {
        return Err(OpenError::Malformed);
    }
    let nonce: [u8; NONCE_LEN] = blob[1..HEADER_LEN]
        .try_into()
        .map_err(|_| OpenError::Malformed)?;
    let mut buf = blob[HEADER_LEN..].to_vec();
    let len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| OpenError::Forged)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// An AES-256-GCM key built from raw bytes (key-encryption keys of the key stores).
pub(crate) fn aead_key(bytes: &[u8; DATA_KEY_LEN]) -> Result<aead::LessSafeKey> {
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes)
        .map_err(|_| Error::Crypto("AES-256-GCM key"))?;
    Ok(aead::LessSafeKey::new(unbound))
}

/// Associated data for wrapping a data key under a key-encryption key: binds the key id.
pub(crate) fn wrap_aad(key_id: &str) -> Vec<u8> {
    let mut aad = b"covey-store/wrap/v1\0".to_vec();
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn cipher() -> (Cipher, rand_chacha::ChaCha20Rng) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = SecretKey::random(&mut rng);
        (Cipher::new(&key).expect("cipher"), rng)
    }

    fn loc(row_id: i64) -> Location {
        Location {
            table: "events",
            row_id,
            schema_version: 1,
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let (c, mut rng) = cipher();
        let blob = c.seal(&loc(5), b"hello", &mut rng).expect("seal");
        assert_eq!(blob.len(), 1 + 12 + 5 + 16);
        assert_eq!(blob[0], BLOB_VERSION);
        assert_eq!(c.open(&loc(5), &blob).expect("open"), b"hello");
    }

    #[test]
    fn moved_or_changed_blobs_fail() {
        let (c, mut rng) = cipher();
        let blob = c.seal(&loc(5), b"hello", &mut rng).expect("seal");
        assert!(matches!(
            c.open(&loc(6), &blob),
            Err(Error::Corrupted { .. })
        ));
        let other_table = Location {
            table: "model_blobs",
            ..loc(5)
        };
        assert!(c.open(&other_table, &blob).is_err());
        let other_version = Location {
            schema_version: 2,
            ..loc(5)
        };
        assert!(c.open(&other_version, &blob).is_err());
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(c.open(&loc(5), &bad).is_err(), "flip at {i} undetected");
        }
        assert!(c.open(&loc(5), &blob[..blob.len() - 1]).is_err());
        assert!(c.open(&loc(5), &[]).is_err());
    }

    #[test]
    fn nonces_differ_between_seals() {
        let (c, mut rng) = cipher();
        let a = c.seal(&loc(1), b"same", &mut rng).expect("seal");
        let b = c.seal(&loc(1), b"same", &mut rng).expect("seal");
        assert_ne!(a, b);
    }

    #[test]
    fn blind_indexes_are_per_table_and_column() {
        let (c, _) = cipher();
        let events = c.blind_indexer("events").expect("indexer");
        let blobs = c.blind_indexer("model_blobs").expect("indexer");
        assert_eq!(events.index("item", b"sku"), events.index("item", b"sku"));
        assert_ne!(events.index("item", b"sku"), events.index("store", b"sku"));
        assert_ne!(events.index("item", b"sku"), blobs.index("item", b"sku"));
    }
}
