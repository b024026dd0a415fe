//! The [`Store`] handle: opening, configuration, and the one-writer / N-readers plumbing.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use rusqlite::Connection;

use crate::cipher::{self, Cipher, MAX_SEALS_PER_KEY, StoreRng};
use crate::clock::Clock;
use crate::datakey;
use crate::db::{self, ReaderPool};
use crate::error::Result;
use crate::keystore::KeyStore;
use crate::retention::RetentionPolicy;
use crate::schema::{self, SCHEMA_VERSION};
use crate::sealed::{ReadTx, WriteTx};

/// File name of the database inside the store directory (plus SQLite's `-wal` and `-shm`).
pub const DB_FILE_NAME: &str = "covey-store.sqlite3";

/// How a store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Number of reader connections (at least 1). Reads run concurrently with each other and
    /// with the single writer.
    pub readers: usize,
    /// Retention per record category.
    pub retention: RetentionPolicy,
    /// Most values one data key may seal before writes fail with
    /// [`crate::Error::KeyUsageExhausted`]; capped at [`MAX_SEALS_PER_KEY`].
    pub seal_limit: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            readers: 4,
            retention: RetentionPolicy::default(),
            seal_limit: MAX_SEALS_PER_KEY,
        }
    }
}

/// The writer connection and the random source it seals with.
pub(crate) struct Writer {
    pub conn: Connection,
    pub rng: StoreRng,
}

/// An open, unlocked store. `Send + Sync`: share it with an `Arc`.
///
/// All member values are sealed with AES-256-GCM under the store's data key, which is
/// unwrapped by the host [`KeyStore`] at open and kept only in memory (zeroized on drop).
pub struct Store {
    path: PathBuf,
    keystore: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    config: StoreConfig,
    schema_version: u32,
    writer: Mutex<Writer>,
    readers: ReaderPool,
    /// Readers hold the read side for a whole read, so rotation and erase (which take the
    /// write side to swap keys) never let a reader open new ciphertext with an old key.
    cipher: RwLock<Arc<Cipher>>,
    /// Consent ledger (grant minting) and audit-log state, see [`crate::ledger`].
    pub(crate) ledger: crate::ledger::LedgerState,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("schema_version", &self.schema_version)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`: migrates the schema, then
    /// unwraps the data key with `keystore` (or creates and wraps a new one) and checks it
    /// against the canary.
    ///
    /// Errors: [`crate::Error::KeyMismatch`] for a wrong key or passphrase,
    /// [`crate::Error::KeyUnavailable`] when the key store has no key for this store,
    /// [`crate::Error::Corrupted`] for a damaged file, [`crate::Error::SchemaTooNew`].
    pub fn open(
        dir: &Path,
        keystore: Arc<dyn KeyStore>,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        Self::open_with_rng(dir, keystore, config, clock, cipher::os_rng()?)
    }

    /// [`Store::open`] with an explicit random source (seeded in tests, for reproducibility).
    ///
    /// `rng` draws nonces: it must be a CSPRNG whose output is never replayed for the same
    /// store. Opening one store twice with the same seed repeats nonces under one key.
    pub fn open_with_rng(
        dir: &Path,
        keystore: Arc<dyn KeyStore>,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        rng: StoreRng,
    ) -> Result<Store> {
        Self::open_at(dir, keystore, config, clock, rng, SCHEMA_VERSION)
    }

    /// Opens a store migrated only up to `schema_version`, to build old-format files in
    /// migration tests. Only the APIs whose tables exist at that version work.
    #[doc(hidden)]
    pub fn open_at_schema_version_for_tests(
        dir: &Path,
        keystore: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        rng: StoreRng,
        schema_version: u32,
    ) -> Result<Store> {
        Self::open_at(
            dir,
            keystore,
            StoreConfig::default(),
            clock,
            rng,
            schema_version,
        )
    }

    fn open_at(
        dir: &Path,
        keystore: Arc<dyn KeyStore>,
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        mut rng: StoreRng,
        target_version: u32,
    ) -> Result<Store> {
        fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE_NAME);
        let mut conn = db::open(&path, false)?;
        schema::migrate(&mut conn, target_version)?;
        let schema_version = schema::version(&conn)?;
        let cipher =
            datakey::load_or_create(&mut conn, keystore.as_ref(), clock.now_ms(), rng.as_mut())?;
        let ledger = crate::ledger::LedgerState::load(
            &ReadTx::new(&conn, &cipher, clock.now_ms(), &config.retention),
            clock.clone(),
            schema_version,
        )?;
        let readers = ReaderPool::new(&path, config.readers)?;
        let config = StoreConfig {
            seal_limit: config.seal_limit.min(MAX_SEALS_PER_KEY),
            ..config
        };
        Ok(Store {
            path,
            keystore,
            clock,
            config,
            schema_version,
            writer: Mutex::new(Writer { conn, rng }),
            readers,
            cipher: RwLock::new(Arc::new(cipher)),
            ledger,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Schema version of the open file.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub(crate) fn keystore(&self) -> &dyn KeyStore {
        self.keystore.as_ref()
    }

    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the writer cannot leave SQLite half-written (the transaction
        // rolls back on drop), so a poisoned lock is safe to reuse.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cipher_guard(&self) -> RwLockReadGuard<'_, Arc<Cipher>> {
        self.cipher.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Swaps in a new cipher; the caller commits its key change while holding the returned
    /// write guard.
    pub(crate) fn cipher_slot(&self) -> std::sync::RwLockWriteGuard<'_, Arc<Cipher>> {
        self.cipher.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one write transaction; commits if it returns `Ok`, rolls back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        let mut writer = self.lock_writer();
        let cipher = self.cipher_guard();
        let Writer { conn, rng } = &mut *writer;
        let mut tx = WriteTx::begin(
            conn,
            &cipher,
            rng.as_mut(),
            self.config.seal_limit,
            self.clock.now_ms(),
        )?;
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` over one consistent snapshot on a reader connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        let cipher = self.cipher_guard();
        self.readers.with(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let out = f(&ReadTx::new(
                &snapshot,
                &cipher,
                self.clock.now_ms(),
                &self.config.retention,
            ));
            snapshot.finish()?;
            out
        })
    }
}
