//! The data key's life: creation, unlocking with the canary, rotation, and erasure by
//! crypto-shredding.
//!
//! Only the *wrapped* data key is persisted (table `data_key`), next to a canary: a known
//! constant sealed under the key. Unlocking unwraps the key with the host [`KeyStore`] and
//! opens the canary; a key store that returns some other key fails there, with
//! [`Error::KeyMismatch`], before any member data is read.

use std::sync::Arc;

use rand_core::CryptoRng;
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cipher::{Cipher, Location, SecretKey};
use crate::error::{Error, Result};
use crate::keystore::{KeyStore, KeyStoreError};
use crate::sealed::{optional, tables_at};
use crate::store::{Store, Writer};

const CANARY: &[u8] = b"covey-store canary v1";

fn canary_at(generation: i64) -> Location {
    Location {
        table: "data_key",
        row_id: generation,
        schema_version: 1,
    }
}

fn key_id(store_id: &str, generation: i64) -> String {
    format!("covey-store/{store_id}/data-key/{generation}")
}

/// Public facts about the current data key (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Increments with every rotation and erase.
    pub generation: i64,
    /// Name of the wrapping key in the host key store.
    pub key_id: String,
    /// Algorithm of the data key.
    pub algorithm: String,
    /// When this key was created, ms since the epoch.
    pub created_at_ms: i64,
    /// Values sealed under it so far.
    pub seal_count: u64,
    /// Values it may seal before it must be rotated.
    pub seal_limit: u64,
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The new key's generation.
    pub generation: i64,
    /// Rows re-sealed under the new key.
    pub resealed_rows: u64,
    /// Whether the key store confirmed destroying the old wrapping key.
    pub old_key_destroyed: bool,
}

/// What an erase did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseReport {
    /// Rows deleted across all sealed tables.
    pub rows_deleted: u64,
    /// Generation of the fresh key the (now empty) store continues with.
    pub new_generation: i64,
}

/// A freshly generated, wrapped key.
struct NewKey {
    cipher: Cipher,
    key_id: String,
    wrapped: Vec<u8>,
    canary: Vec<u8>,
}

fn new_key(
    keystore: &dyn KeyStore,
    store_id: &str,
    generation: i64,
    rng: &mut dyn CryptoRng,
) -> Result<NewKey> {
    let key = SecretKey::random(rng);
    let key_id = key_id(store_id, generation);
    let wrapped = keystore.wrap_key(key_id.clone(), key.as_bytes().to_vec())?;
    let cipher = Cipher::new(&key)?;
    let canary = cipher.seal(&canary_at(generation), CANARY, rng)?;
    Ok(NewKey {
        cipher,
        key_id,
        wrapped,
        canary,
    })
}

fn store_id(conn: &Connection) -> Result<String> {
    Ok(
        conn.query_row("SELECT store_id FROM store_meta WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

fn insert_key(conn: &Connection, generation: i64, key: &NewKey, now_ms: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO data_key (id, generation, key_id, created_at_ms, wrapped, canary, seal_count)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, 1)",
        params![generation, key.key_id, now_ms, key.wrapped, key.canary],
    )?;
    Ok(())
}

/// Unlocks the store's data key, creating the store identity and a first key if needed.
pub(crate) fn load_or_create(
    conn: &mut Connection,
    keystore: &dyn KeyStore,
    now_ms: i64,
    rng: &mut dyn CryptoRng,
) -> Result<Cipher> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = optional(tx.query_row(
        "SELECT generation, key_id, wrapped, canary FROM data_key WHERE id = 1",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        },
    ))?;
    if let Some((generation, key_id, wrapped, canary)) = stored {
        drop(tx);
        return unlock(keystore, generation, key_id, wrapped, &canary);
    }
    let mut raw_id = [0u8; 16];
    rng.fill_bytes(&mut raw_id);
    tx.execute(
        "INSERT OR IGNORE INTO store_meta (id, store_id, next_row_id) VALUES (1, ?1, 1)",
        [hex::encode(raw_id)],
    )?;
    let key = new_key(keystore, &store_id(&tx)?, 1, rng)?;
    insert_key(&tx, 1, &key, now_ms)?;
    tx.commit()?;
    Ok(key.cipher)
}

fn unlock(
    keystore: &dyn KeyStore,
    generation: i64,
    key_id: String,
    wrapped: Vec<u8>,
    canary: &[u8],
) -> Result<Cipher> {
    let raw = keystore.unwrap_key(key_id, wrapped)?;
    let key = SecretKey::from_vec(raw).ok_or(Error::KeyMismatch)?;
    let cipher = Cipher::new(&key)?;
    match cipher.open(&canary_at(generation), canary) {
        Ok(plain) if plain == CANARY => Ok(cipher),
        _ => Err(Error::KeyMismatch),
    }
}

fn checkpoint_truncate(conn: &Connection) -> Result<()> {
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(Error::Busy);
    }
    Ok(())
}

impl Store {
    /// Facts about the current data key.
    pub fn key_info(&self) -> Result<KeyInfo> {
        let writer = self.lock_writer();
        let (generation, key_id, created_at_ms, seal_count) = writer.conn.query_row(
            "SELECT generation, key_id, created_at_ms, seal_count FROM data_key WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)?)),
        )?;
        Ok(KeyInfo {
            generation,
            key_id,
            algorithm: "AES-256-GCM".into(),
            created_at_ms,
            seal_count: u64::try_from(seal_count).unwrap_or(0),
            seal_limit: self.config().seal_limit,
        })
    }

    /// Re-seals every stored value (and recomputes every blind index) under a new random data
    /// key, in one transaction, then asks the key store to destroy the old wrapping key.
    /// A crash mid-rotation leaves the old key and old ciphertexts in place.
    pub fn rotate_key(&self) -> Result<RotationReport> {
        let mut writer = self.lock_writer();
        let old = Arc::clone(&self.cipher_guard());
        let Writer { conn, rng } = &mut *writer;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (generation, old_key_id): (i64, String) = tx.query_row(
            "SELECT generation, key_id FROM data_key WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let generation = generation + 1;
        let new = new_key(self.keystore(), &store_id(&tx)?, generation, rng.as_mut())?;
        let mut resealed = 0u64;
        for table in tables_at(self.schema_version()) {
            let rows: Vec<(i64, Vec<u8>)> = tx
                .prepare(&format!("SELECT id, sealed FROM {}", table.name))?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let indexer = match &table.blind_index {
                Some(bi) => Some((bi, new.cipher.blind_indexer(table.name)?)),
                None => None,
            };
            for (id, blob) in rows {
                let loc = table.at(id);
                let plain = Zeroizing::new(old.open(&loc, &blob)?);
                let sealed = new.cipher.seal(&loc, &plain, rng.as_mut())?;
                match &indexer {
                    Some((bi, indexer)) => {
                        let input = (bi.input)(&plain).map_err(|_| table.bad_record(id))?;
                        let idx = indexer.index(bi.column, &input);
                        tx.execute(
                            &format!(
                                "UPDATE {} SET {} = ?1, sealed = ?2 WHERE id = ?3",
                                table.name, bi.column
                            ),
                            params![&idx[..], sealed, id],
                        )?;
                    }
                    None => {
                        tx.execute(
                            &format!("UPDATE {} SET sealed = ?1 WHERE id = ?2", table.name),
                            params![sealed, id],
                        )?;
                    }
                }
                resealed += 1;
            }
        }
        tx.execute("DELETE FROM data_key", [])?;
        insert_key(&tx, generation, &new, self.clock().now_ms())?;
        tx.execute(
            "UPDATE data_key SET seal_count = ?1",
            [i64::try_from(resealed + 1).unwrap_or(i64::MAX)],
        )?;
        let mut slot = self.cipher_slot();
        tx.commit()?;
        *slot = Arc::new(new.cipher);
        drop(slot);
        let old_key_destroyed = self.keystore().destroy_key(old_key_id).is_ok();
        Ok(RotationReport {
            generation,
            resealed_rows: resealed,
            old_key_destroyed,
        })
    }

    /// Erases everything the store holds about the member.
    ///
    /// 1. Crypto-shredding: the key store destroys the wrapping key, and the wrapped data key
    ///    is deleted, so every ciphertext, including copies in backups or in flash blocks the
    ///    file system freed but did not overwrite, becomes unreadable.
    /// 2. Every row of every sealed table is deleted (`secure_delete` zeroes the pages).
    /// 3. `VACUUM` rebuilds the file without free pages, and a `TRUNCATE` checkpoint empties
    ///    the write-ahead log: no byte of a member value remains in the database, `-wal` or
    ///    `-shm` files.
    ///
    /// The store then continues, empty, under a fresh key (next generation).
    pub fn erase_all(&self) -> Result<EraseReport> {
        let mut writer = self.lock_writer();
        // Taking the key slot first waits for running reads and blocks new ones, so the
        // final checkpoint is not held back by a reader's snapshot.
        let mut slot = self.cipher_slot();
        let Writer { conn, rng } = &mut *writer;
        let (generation, key_id): (i64, String) = conn.query_row(
            "SELECT generation, key_id FROM data_key WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        match self.keystore().destroy_key(key_id) {
            Ok(()) | Err(KeyStoreError::KeyNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rows_deleted = 0u64;
        for table in tables_at(self.schema_version()) {
            let n = tx.execute(&format!("DELETE FROM {}", table.name), [])?;
            rows_deleted += u64::try_from(n).unwrap_or(0);
        }
        tx.execute("DELETE FROM data_key", [])?;
        tx.commit()?;
        self.ledger.reset();
        conn.execute_batch("VACUUM")?;
        checkpoint_truncate(conn)?;
        let new_generation = generation + 1;
        let key = new_key(
            self.keystore(),
            &store_id(conn)?,
            new_generation,
            rng.as_mut(),
        )?;
        insert_key(conn, new_generation, &key, self.clock().now_ms())?;
        checkpoint_truncate(conn)?;
        *slot = Arc::new(key.cipher);
        Ok(EraseReport {
            rows_deleted,
            new_generation,
        })
    }
}
