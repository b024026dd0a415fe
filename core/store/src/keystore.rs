//! Key stores: where the store's data key is wrapped.
//!
//! The store never persists its data key in the clear. It asks a [`KeyStore`] (implemented by
//! the host: iOS Keychain / Secure Enclave, Android Keystore) to *wrap* it, and keeps only the
//! wrapped bytes. Erasing the store asks the key store to destroy its wrapping key
//! (crypto-shredding) besides deleting the wrapped copy.
//!
//! Two implementations ship here: [`InMemoryKeyStore`] for tests and
//! [`PassphraseKeyStore`] for desktop tools (the `covey` CLI).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::pbkdf2;
use zeroize::Zeroizing;

use crate::cipher::{self, DATA_KEY_LEN, SecretKey, StoreRng};
use crate::error::{Error, Result};

/// Why a key store could not wrap, unwrap or destroy a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The wrapped key does not open under this key store's key (wrong passphrase, another
    /// device's key, or damaged wrapped bytes).
    #[error("the wrapped key does not open under this key store's key")]
    WrongKey,
    /// No wrapping key exists for the id (destroyed, or never created in this key store).
    #[error("no wrapping key exists for this key id")]
    KeyNotFound,
    /// The key store is unavailable (device locked, hardware error, I/O). The reason must not
    /// contain secrets.
    #[error("key store unavailable: {reason}")]
    Unavailable {
        /// Human-readable cause.
        reason: String,
    },
}

/// Wraps, unwraps and destroys the store's data key. Implemented by the host platform.
///
/// The shape is deliberately FFI-friendly (object-safe, `Send + Sync`, owned byte vectors in
/// and out, every method fallible) so that Kotlin and Swift can implement it as a foreign
/// trait. Implementations must not call back into the store (it holds locks while asking).
pub trait KeyStore: Send + Sync {
    /// Encrypts `key` (32 bytes) under a wrapping key named `key_id`, creating that wrapping
    /// key if needed. Implementations should zeroize `key` after use.
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;

    /// Decrypts bytes produced by [`KeyStore::wrap_key`] for the same `key_id`.
    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;

    /// Destroys the wrapping key `key_id` so its wrapped keys can never be opened again. A
    /// key store that cannot destroy keys (a passphrase) returns `Ok(())` and documents it.
    fn destroy_key(&self, key_id: String) -> Result<(), KeyStoreError>;
}

/// Wraps `key` with AES-256-GCM under `kek`, binding `key_id` as associated data.
fn wrap_under(
    kek: &[u8; DATA_KEY_LEN],
    key_id: &str,
    key: Vec<u8>,
    rng: &Mutex<StoreRng>,
) -> Result<Vec<u8>, KeyStoreError> {
    let key = Zeroizing::new(key);
    let aead = cipher::aead_key(kek).map_err(internal)?;
    let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
    cipher::seal_with(&aead, &cipher::wrap_aad(key_id), &key, rng.as_mut()).map_err(internal)
}

fn unwrap_under(
    kek: &[u8; DATA_KEY_LEN],
    key_id: &str,
    wrapped: &[u8],
) -> Result<Vec<u8>, KeyStoreError> {
    let aead = cipher::aead_key(kek).map_err(internal)?;
    cipher::open_with(&aead, &cipher::wrap_aad(key_id), wrapped)
        .map_err(|_| KeyStoreError::WrongKey)
}

fn internal(err: Error) -> KeyStoreError {
    KeyStoreError::Unavailable {
        reason: err.to_string(),
    }
}

/// A key store that keeps its wrapping keys in memory: for tests and simulations. Each key
/// id gets its own random wrapping key; [`KeyStore::destroy_key`] forgets it.
pub struct InMemoryKeyStore {
    keks: Mutex<HashMap<String, SecretKey>>,
    rng: Mutex<StoreRng>,
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryKeyStore(..)")
    }
}

impl InMemoryKeyStore {
    /// An empty key store drawing wrapping keys and nonces from `rng`.
    pub fn new(rng: StoreRng) -> Self {
        InMemoryKeyStore {
            keks: Mutex::new(HashMap::new()),
            rng: Mutex::new(rng),
        }
    }

    fn kek(&self, key_id: &str, create: bool) -> Result<SecretKey, KeyStoreError> {
        let mut keks = self.keks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keks.get(key_id) {
            return Ok(k.clone());
        }
        if !create {
            return Err(KeyStoreError::KeyNotFound);
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let k = SecretKey::random(rng.as_mut());
        keks.insert(key_id.to_owned(), k.clone());
        Ok(k)
    }
}

impl KeyStore for InMemoryKeyStore {
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        let kek = self.kek(&key_id, true)?;
        wrap_under(kek.as_bytes(), &key_id, key, &self.rng)
    }

    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        let kek = self.kek(&key_id, false)?;
        unwrap_under(kek.as_bytes(), &key_id, &wrapped)
    }

    fn destroy_key(&self, key_id: String) -> Result<(), KeyStoreError> {
        self.keks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key_id);
        Ok(())
    }
}

/// PBKDF2-HMAC-SHA256 iterations for new passphrase key files: OWASP's 2023 recommendation
/// for PBKDF2-HMAC-SHA256. Opening a file that asks for fewer is refused.
pub const PASSPHRASE_ITERATIONS: u32 = 600_000;

const KEYFILE_MAGIC: &[u8; 4] = b"CVYK";
const KEYFILE_VERSION: u8 = 1;
const SALT_LEN: usize = 32;
const KEYFILE_LEN: usize = 4 + 1 + 4 + SALT_LEN;

/// A key store whose wrapping key is derived from a passphrase with PBKDF2-HMAC-SHA256.
///
/// Key file format (41 bytes): `"CVYK" | version 0x01 | iterations (u32 BE) | salt (32 B)`.
/// The salt is random per file; the derived key never touches disk. One wrapping key serves
/// every key id (the id is still authenticated). A passphrase cannot be destroyed, so
/// [`KeyStore::destroy_key`] does nothing here: erasure relies on the store deleting its
/// wrapped key, which it always does.
pub struct PassphraseKeyStore {
    path: PathBuf,
    kek: SecretKey,
    iterations: u32,
    rng: Mutex<StoreRng>,
}

impl fmt::Debug for PassphraseKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseKeyStore")
            .field("path", &self.path)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PassphraseKeyStore {
    /// Opens the key file at `path`, or creates one with a fresh salt and
    /// [`PASSPHRASE_ITERATIONS`], and derives the wrapping key from `passphrase`.
    ///
    /// A wrong passphrase is only detected when the store unwraps its data key
    /// ([`Error::KeyMismatch`]).
    pub fn open_or_create(path: &Path, passphrase: &str, rng: StoreRng) -> Result<Self> {
        Self::open_with_policy(path, passphrase, rng, PASSPHRASE_ITERATIONS)
    }

    /// Like [`PassphraseKeyStore::open_or_create`] with a caller-chosen iteration count, for
    /// tests only: a low count makes the passphrase cheap to brute-force.
    #[doc(hidden)]
    pub fn insecure_open_or_create_for_tests(
        path: &Path,
        passphrase: &str,
        rng: StoreRng,
        iterations: u32,
    ) -> Result<Self> {
        Self::open_with_policy(path, passphrase, rng, iterations)
    }

    /// The file's PBKDF2 iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    fn open_with_policy(
        path: &Path,
        passphrase: &str,
        mut rng: StoreRng,
        iterations: u32,
    ) -> Result<Self> {
        if passphrase.is_empty() {
            return Err(Error::InvalidInput {
                field: "passphrase",
                reason: "must not be empty",
            });
        }
        let (iterations, salt) = match fs::read(path) {
            Ok(bytes) => decode_keyfile(&bytes, iterations)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut salt = [0u8; SALT_LEN];
                rng.fill_bytes(&mut salt);
                write_keyfile(path, iterations, &salt)?;
                (iterations, salt)
            }
            Err(e) => return Err(e.into()),
        };
        let rounds = NonZeroU32::new(iterations).ok_or(Error::InvalidInput {
            field: "iterations",
            reason: "must be positive",
        })?;
        let mut kek = Zeroizing::new([0u8; DATA_KEY_LEN]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            passphrase.as_bytes(),
            kek.as_mut(),
        );
        let kek = SecretKey::from_vec(kek.to_vec()).ok_or(Error::Crypto("PBKDF2 output"))?;
        Ok(PassphraseKeyStore {
            path: path.to_owned(),
            kek,
            iterations,
            rng: Mutex::new(rng),
        })
    }
}

fn decode_keyfile(bytes: &[u8], min_iterations: u32) -> Result<(u32, [u8; SALT_LEN])> {
    let corrupted = |reason| Error::Corrupted {
        table: "key file",
        row_id: None,
        reason,
    };
    if bytes.len() != KEYFILE_LEN || &bytes[..4] != KEYFILE_MAGIC {
        return Err(corrupted("not a Covey passphrase key file"));
    }
    if bytes[4] != KEYFILE_VERSION {
        return Err(corrupted("unknown key file version"));
    }
    let iterations = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    // A lowered count would weaken every future wrap; refuse rather than follow the file.
    if iterations < min_iterations {
        return Err(corrupted("iteration count below this build's minimum"));
    }
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&bytes[9..]);
    Ok((iterations, salt))
}

fn write_keyfile(path: &Path, iterations: u32, salt: &[u8; SALT_LEN]) -> Result<()> {
    let mut bytes = Vec::with_capacity(KEYFILE_LEN);
    bytes.extend_from_slice(KEYFILE_MAGIC);
    bytes.push(KEYFILE_VERSION);
    bytes.extend_from_slice(&iterations.to_be_bytes());
    bytes.extend_from_slice(salt);
    // Write-then-rename so a crash never leaves a half-written key file.
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

impl KeyStore for PassphraseKeyStore {
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        wrap_under(self.kek.as_bytes(), &key_id, key, &self.rng)
    }

    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        unwrap_under(self.kek.as_bytes(), &key_id, &wrapped)
    }

    fn destroy_key(&self, _key_id: String) -> Result<(), KeyStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn rng(seed: u64) -> StoreRng {
        Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn in_memory_wraps_per_id_and_forgets_destroyed_keys() {
        let ks = InMemoryKeyStore::new(rng(1));
        let wrapped = ks.wrap_key("a".into(), vec![7; 32]).expect("wrap");
        assert_eq!(ks.unwrap_key("a".into(), wrapped.clone()), Ok(vec![7; 32]));
        assert_eq!(
            ks.unwrap_key("b".into(), wrapped.clone()),
            Err(KeyStoreError::KeyNotFound)
        );
        ks.destroy_key("a".into()).expect("destroy");
        assert_eq!(
            ks.unwrap_key("a".into(), wrapped),
            Err(KeyStoreError::KeyNotFound)
        );
    }

    #[test]
    fn passphrase_file_round_trip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        let ks =
            PassphraseKeyStore::insecure_open_or_create_for_tests(&path, "right", rng(2), 1000)
                .expect("create");
        let wrapped = ks.wrap_key("id".into(), vec![9; 32]).expect("wrap");
        let again =
            PassphraseKeyStore::insecure_open_or_create_for_tests(&path, "right", rng(3), 1000)
                .expect("open");
        assert_eq!(
            again.unwrap_key("id".into(), wrapped.clone()),
            Ok(vec![9; 32])
        );
        assert_eq!(
            again.unwrap_key("other".into(), wrapped.clone()),
            Err(KeyStoreError::WrongKey)
        );
        let wrong =
            PassphraseKeyStore::insecure_open_or_create_for_tests(&path, "wrong", rng(4), 1000)
                .expect("open");
        assert_eq!(
            wrong.unwrap_key("id".into(), wrapped),
            Err(KeyStoreError::WrongKey)
        );
    }

    #[test]
    fn production_open_refuses_weakened_key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key");
        PassphraseKeyStore::insecure_open_or_create_for_tests(&path, "pw", rng(5), 10)
            .expect("create");
        assert!(matches!(
            PassphraseKeyStore::open_or_create(&path, "pw", rng(6)),
            Err(Error::Corrupted { .. })
        ));
        fs::write(&path, b"short").expect("write");
        assert!(matches!(
            PassphraseKeyStore::insecure_open_or_create_for_tests(&path, "pw", rng(7), 10),
            Err(Error::Corrupted { .. })
        ));
    }
}
