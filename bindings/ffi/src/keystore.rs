//! The host's key store (iOS Keychain / Secure Enclave, Android Keystore) as a foreign trait,
//! and its adapter to the store's [`covey_store::KeyStore`].
//!
//! The store never keeps its data key in the clear: it hands the 32-byte key to the host to
//! wrap under a platform key and keeps only the wrapped bytes. Erasing the store asks the host
//! to destroy the platform key (crypto-shredding).

use std::fmt;
use std::sync::Arc;

use covey_store::KeyStoreError as StoreKeyStoreError;

/// Why the host key store failed. Hosts raise/throw these; anything else they raise is
/// reported as [`KeyStoreError::Unavailable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    /// The wrapped key does not open under the host's key (another device's key, damaged
    /// bytes).
    #[error("the wrapped key does not open under this key store's key")]
    WrongKey,
    /// No platform key exists under this id (destroyed, or never created here).
    #[error("no wrapping key exists for this key id")]
    KeyNotFound,
    /// The key store cannot serve now (device locked, hardware error). `reason` must not
    /// contain secrets.
    #[error("key store unavailable: {reason}")]
    Unavailable {
        /// Human-readable cause.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    /// The host raised something other than a `KeyStoreError`. Its text is not forwarded:
    /// an arbitrary host exception may carry anything.
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Unavailable {
            reason: "the host key store raised an unexpected error".into(),
        }
    }
}

/// Wraps, unwraps and destroys the store's data key; implemented by the host app.
///
/// Implementations must not call back into the `CoveyClient` (the store holds its locks while
/// asking) and should not keep a reference to it (that would be a reference cycle across the
/// FFI that neither garbage collector can see through).
#[uniffi::export(foreign)]
pub trait KeyStore: Send + Sync {
    /// Encrypts `key` (32 bytes) under the platform key named `key_id`, creating that key if
    /// needed, and returns the wrapped bytes.
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// Decrypts bytes returned by `wrap_key` for the same `key_id`.
    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// Destroys the platform key `key_id` so its wrapped keys can never be opened again.
    fn destroy_key(&self, key_id: String) -> Result<(), KeyStoreError>;
}

/// Presents a host [`KeyStore`] as the store's key store.
pub(crate) struct HostKeyStore(pub(crate) Arc<dyn KeyStore>);

impl fmt::Debug for HostKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostKeyStore(..)")
    }
}

impl From<KeyStoreError> for StoreKeyStoreError {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::WrongKey => StoreKeyStoreError::WrongKey,
            KeyStoreError::KeyNotFound => StoreKeyStoreError::KeyNotFound,
            KeyStoreError::Unavailable { reason } => StoreKeyStoreError::Unavailable { reason },
        }
    }
}

impl covey_store::KeyStore for HostKeyStore {
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, StoreKeyStoreError> {
        Ok(self.0.wrap_key(key_id, key)?)
    }

    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, StoreKeyStoreError> {
        Ok(self.0.unwrap_key(key_id, wrapped)?)
    }

    fn destroy_key(&self, key_id: String) -> Result<(), StoreKeyStoreError> {
        Ok(self.0.destroy_key(key_id)?)
    }
}
