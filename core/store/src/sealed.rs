//! Sealed tables and the transactions that read and write them.
//!
//! Every table holding member-derived values has the shape `(id INTEGER PRIMARY KEY,
//! [<blind index column> BLOB,] sealed BLOB)` and a [`SealedTable`] entry in
//! [`SEALED_TABLES`]. Key rotation re-seals, and erase deletes, every table in that list, so a
//! module adding a table (e.g. the consent ledger) appends its entry there and uses
//! [`WriteTx::insert`] / [`ReadTx::scan`]: the AAD (table, row id, schema version), row-id
//! allocation, nonce budget and blind indexes then come for free.

use rand_core::CryptoRng;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::cipher::{BLIND_INDEX_LEN, BlindIndexer, Cipher, Location};
use crate::codec::DecodeError;
use crate::error::{Error, Result};
use crate::event::LoyaltyEvent;
use crate::records::{CatalogItem, name_of};
use crate::retention::RetentionPolicy;

/// A blind-index column and how to get its input from a record's plaintext.
#[derive(Debug)]
pub(crate) struct BlindIndex {
    /// Column name (also the HMAC domain separator).
    pub column: &'static str,
    /// Extracts the indexed value from the plaintext record.
    pub input: fn(&[u8]) -> Result<Vec<u8>, DecodeError>,
}

/// A table of sealed rows.
#[derive(Debug)]
pub(crate) struct SealedTable {
    /// SQL table name (also bound into every value's AAD).
    pub name: &'static str,
    /// Schema version that introduced the table's record layout; bound into the AAD.
    pub schema_version: u32,
    /// Optional lookup column.
    pub blind_index: Option<BlindIndex>,
}

impl SealedTable {
    pub(crate) fn at(&self, row_id: i64) -> Location {
        Location {
            table: self.name,
            row_id,
            schema_version: self.schema_version,
        }
    }

    /// The error for a record that authenticated but does not decode.
    pub(crate) fn bad_record(&self, row_id: i64) -> Error {
        Error::Corrupted {
            table: self.name,
            row_id: Some(row_id),
            reason: "sealed record has an invalid layout",
        }
    }

    fn index_input(&self, row_id: i64, plaintext: &[u8]) -> Result<Option<Vec<u8>>> {
        self.blind_index
            .as_ref()
            .map(|bi| (bi.input)(plaintext).map_err(|_| self.bad_record(row_id)))
            .transpose()
    }

    fn index_column(&self) -> Result<&'static str> {
        self.blind_index
            .as_ref()
            .map(|bi| bi.column)
            .ok_or(Error::Crypto("table has no blind index"))
    }
}

/// Loyalty events (blind index: item id).
pub(crate) const EVENTS: SealedTable = SealedTable {
    name: "events",
    schema_version: 1,
    blind_index: Some(BlindIndex {
        column: "item_idx",
        input: LoyaltyEvent::item_id_of,
    }),
};

/// The catalog version (at most one row).
pub(crate) const CATALOG_HEADER: SealedTable = SealedTable {
    name: "catalog_header",
    schema_version: 2,
    blind_index: None,
};

/// Catalog items (blind index: item id).
pub(crate) const CATALOG_ITEMS: SealedTable = SealedTable {
    name: "catalog_items",
    schema_version: 2,
    blind_index: Some(BlindIndex {
        column: "item_idx",
        input: CatalogItem::item_id_of,
    }),
};

/// Model state blobs (blind index: name).
pub(crate) const MODEL_BLOBS: SealedTable = SealedTable {
    name: "model_blobs",
    schema_version: 2,
    blind_index: Some(BlindIndex {
        column: "name_idx",
        input: name_of,
    }),
};

/// Round participation records.
pub(crate) const PARTICIPATIONS: SealedTable = SealedTable {
    name: "participations",
    schema_version: 2,
    blind_index: None,
};

/// Named key material (blind index: name).
pub(crate) const KEY_MATERIAL: SealedTable = SealedTable {
    name: "key_material",
    schema_version: 2,
    blind_index: Some(BlindIndex {
        column: "name_idx",
        input: name_of,
    }),
};

/// Every sealed table: re-sealed on rotation, emptied on erase. Append new tables here.
pub(crate) const SEALED_TABLES: &[&SealedTable] = &[
    &EVENTS,
    &CATALOG_HEADER,
    &CATALOG_ITEMS,
    &MODEL_BLOBS,
    &PARTICIPATIONS,
    &KEY_MATERIAL,
    &crate::ledger::CONSENT_EVENTS,
    &crate::ledger::CONSENT_TERMS,
    &crate::ledger::AUDIT_LOG,
    &crate::ledger::AUDIT_CHECKPOINTS,
    &crate::audit_mark::AUDIT_MARK,
];

/// The sealed tables that exist at `schema_version`.
pub(crate) fn tables_at(schema_version: u32) -> impl Iterator<Item = &'static SealedTable> {
    SEALED_TABLES
        .iter()
        .copied()
        .filter(move |t| t.schema_version <= schema_version)
}

/// Calls `f(row_id, sealed)` for each row of `table` with an id above `after`, optionally
/// only rows whose blind index equals `index`, in row-id order.
fn scan_raw(
    conn: &Connection,
    table: &SealedTable,
    index: Option<&[u8; BLIND_INDEX_LEN]>,
    after: i64,
    mut f: impl FnMut(i64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut visit = |row: &rusqlite::Row<'_>| -> Result<()> {
        let id: i64 = row.get(0)?;
        let blob = row.get_ref(1)?.as_blob().map_err(|_| Error::Corrupted {
            table: table.name,
            row_id: Some(id),
            reason: "sealed column is not a blob",
        })?;
        f(id, blob)
    };
    match index {
        Some(idx) => {
            let sql = format!(
                "SELECT id, sealed FROM {} WHERE {} = ?1 AND id > ?2 ORDER BY id",
                table.name,
                table.index_column()?
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params![&idx[..], after])?;
            while let Some(row) = rows.next()? {
                visit(row)?;
            }
        }
        None => {
            let sql = format!(
                "SELECT id, sealed FROM {} WHERE id > ?1 ORDER BY id",
                table.name
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query([after])?;
            while let Some(row) = rows.next()? {
                visit(row)?;
            }
        }
    }
    Ok(())
}

/// Blind indexers derived once per transaction (HKDF per lookup would dominate inserts).
#[derive(Default)]
struct Indexers(Vec<(&'static str, BlindIndexer)>);

impl Indexers {
    fn index(
        &mut self,
        cipher: &Cipher,
        table: &SealedTable,
        value: &[u8],
    ) -> Result<[u8; BLIND_INDEX_LEN]> {
        let column = table.index_column()?;
        let pos = match self.0.iter().position(|(name, _)| *name == table.name) {
            Some(pos) => pos,
            None => {
                self.0.push((table.name, cipher.blind_indexer(table.name)?));
                self.0.len() - 1
            }
        };
        Ok(self.0[pos].1.index(column, value))
    }
}

/// Counts one seal against the key's nonce budget, refusing once it is spent.
fn count_seal(count: &mut u64, limit: u64) -> Result<()> {
    if *count >= limit {
        return Err(Error::KeyUsageExhausted { sealed: *count });
    }
    *count += 1;
    Ok(())
}

/// A write transaction: seals values, allocates row ids, counts seals against the key's bound.
pub(crate) struct WriteTx<'a> {
    tx: Transaction<'a>,
    cipher: &'a Cipher,
    rng: &'a mut dyn CryptoRng,
    indexers: Indexers,
    next_row_id: i64,
    seal_count: u64,
    seal_limit: u64,
    /// The store clock's reading at the start of the transaction.
    pub now_ms: i64,
}

impl<'a> WriteTx<'a> {
    pub(crate) fn begin(
        conn: &'a mut Connection,
        cipher: &'a Cipher,
        rng: &'a mut dyn CryptoRng,
        seal_limit: u64,
        now_ms: i64,
    ) -> Result<Self> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let next_row_id: i64 =
            tx.query_row("SELECT next_row_id FROM store_meta WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let seal_count: i64 =
            tx.query_row("SELECT seal_count FROM data_key WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        Ok(WriteTx {
            tx,
            cipher,
            rng,
            indexers: Indexers::default(),
            next_row_id,
            seal_count: u64::try_from(seal_count).unwrap_or(u64::MAX),
            seal_limit,
            now_ms,
        })
    }

    /// The underlying transaction, for plain SQL (deletes, counts).
    pub(crate) fn conn(&self) -> &Connection {
        &self.tx
    }

    /// The blind index of `value` in `table`.
    pub(crate) fn index(
        &mut self,
        table: &SealedTable,
        value: &[u8],
    ) -> Result<[u8; BLIND_INDEX_LEN]> {
        self.indexers.index(self.cipher, table, value)
    }

    /// Seals and inserts a record under a fresh row id; returns the id.
    pub(crate) fn insert(&mut self, table: &SealedTable, plaintext: &[u8]) -> Result<i64> {
        let ids = self.insert_all(table, std::iter::once(plaintext))?;
        ids.first()
            .copied()
            .ok_or(Error::Crypto("insert returned no id"))
    }

    /// Seals and inserts records under fresh row ids, in order; returns the ids. One
    /// prepared statement serves the whole batch (a 100 000-event import looks it up once,
    /// not per row).
    pub(crate) fn insert_all<P: AsRef<[u8]>>(
        &mut self,
        table: &SealedTable,
        plaintexts: impl IntoIterator<Item = P>,
    ) -> Result<Vec<i64>> {
        let sql = match table.blind_index {
            Some(_) => format!(
                "INSERT INTO {} (id, {}, sealed) VALUES (?1, ?2, ?3)",
                table.name,
                table.index_column()?
            ),
            None => format!("INSERT INTO {} (id, sealed) VALUES (?1, ?2)", table.name),
        };
        // Field-level borrows: the statement holds the transaction while rows are sealed.
        let mut stmt = self.tx.prepare_cached(&sql)?;
        let mut ids = Vec::new();
        for plaintext in plaintexts {
            let plaintext = plaintext.as_ref();
            let id = self.next_row_id;
            self.next_row_id = id.checked_add(1).ok_or(Error::Corrupted {
                table: "store_meta",
                row_id: None,
                reason: "row id counter exhausted",
            })?;
            count_seal(&mut self.seal_count, self.seal_limit)?;
            let sealed = self.cipher.seal(&table.at(id), plaintext, self.rng)?;
            match table.index_input(id, plaintext)? {
                Some(input) => {
                    let idx = self.indexers.index(self.cipher, table, &input)?;
                    stmt.execute(params![id, &idx[..], sealed])?;
                }
                None => {
                    stmt.execute(params![id, sealed])?;
                }
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Deletes the rows of `table` whose blind index matches `value`; returns how many.
    pub(crate) fn delete_by_index(&mut self, table: &SealedTable, value: &[u8]) -> Result<usize> {
        let idx = self.index(table, value)?;
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?1",
            table.name,
            table.index_column()?
        );
        Ok(self.tx.prepare_cached(&sql)?.execute([&idx[..]])?)
    }

    /// Deletes rows by id; returns how many.
    pub(crate) fn delete_ids(&mut self, table: &SealedTable, ids: &[i64]) -> Result<usize> {
        let sql = format!("DELETE FROM {} WHERE id = ?1", table.name);
        let mut stmt = self.tx.prepare_cached(&sql)?;
        ids.iter().try_fold(0, |n, id| Ok(n + stmt.execute([id])?))
    }

    /// Replaces the record named `name` (blind-indexed) with `plaintext`.
    pub(crate) fn replace_named(
        &mut self,
        table: &SealedTable,
        name: &str,
        plaintext: &[u8],
    ) -> Result<i64> {
        self.delete_by_index(table, name.as_bytes())?;
        self.insert(table, plaintext)
    }

    /// Opens every row of `table` (see [`ReadTx::scan`]).
    pub(crate) fn scan(
        &self,
        table: &SealedTable,
        mut f: impl FnMut(i64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        scan_raw(&self.tx, table, None, i64::MIN, |id, blob| {
            let plain = Zeroizing::new(self.cipher.open(&table.at(id), blob)?);
            f(id, &plain)
        })
    }

    /// Persists the row-id counter and the seal count, then commits.
    pub(crate) fn commit(self) -> Result<()> {
        self.tx.execute(
            "UPDATE store_meta SET next_row_id = ?1 WHERE id = 1",
            [self.next_row_id],
        )?;
        self.tx.execute(
            "UPDATE data_key SET seal_count = ?1 WHERE id = 1",
            [i64::try_from(self.seal_count).unwrap_or(i64::MAX)],
        )?;
        self.tx.commit()?;
        Ok(())
    }
}

/// A read transaction over one consistent snapshot.
pub(crate) struct ReadTx<'a> {
    conn: &'a Connection,
    cipher: &'a Cipher,
    /// The store clock's reading at the start of the read.
    pub now_ms: i64,
    /// Retention to enforce: expired rows are never returned.
    pub retention: &'a RetentionPolicy,
}

impl<'a> ReadTx<'a> {
    pub(crate) fn new(
        conn: &'a Connection,
        cipher: &'a Cipher,
        now_ms: i64,
        retention: &'a RetentionPolicy,
    ) -> Self {
        ReadTx {
            conn,
            cipher,
            now_ms,
            retention,
        }
    }

    /// The snapshot, for plain SQL over unsealed columns (counts, ids).
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Opens each row of `table` (only those whose blind index matches `index_value`, if
    /// given) and calls `f(row_id, plaintext)`. The plaintext is zeroized afterwards.
    pub(crate) fn scan(
        &self,
        table: &SealedTable,
        index_value: Option<&[u8]>,
        mut f: impl FnMut(i64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let index = match index_value {
            Some(v) => Some(Indexers::default().index(self.cipher, table, v)?),
            None => None,
        };
        scan_raw(self.conn, table, index.as_ref(), i64::MIN, |id, blob| {
            let plain = Zeroizing::new(self.cipher.open(&table.at(id), blob)?);
            f(id, &plain)
        })
    }

    /// Like [`ReadTx::scan`] over a whole table, but a row that fails to open is passed as
    /// `None` instead of ending the scan: the audit log reports damage row by row.
    pub(crate) fn scan_opened(
        &self,
        table: &SealedTable,
        f: impl FnMut(i64, Option<Zeroizing<Vec<u8>>>) -> Result<()>,
    ) -> Result<()> {
        self.scan_opened_after(table, i64::MIN, f)
    }

    /// [`ReadTx::scan_opened`] over the rows with an id above `after` only (the part of an
    /// append-only table written since a known row).
    pub(crate) fn scan_opened_after(
        &self,
        table: &SealedTable,
        after: i64,
        mut f: impl FnMut(i64, Option<Zeroizing<Vec<u8>>>) -> Result<()>,
    ) -> Result<()> {
        scan_raw(self.conn, table, None, after, |id, blob| {
            f(
                id,
                self.cipher
                    .open(&table.at(id), blob)
                    .ok()
                    .map(Zeroizing::new),
            )
        })
    }

    /// The plaintext of the record named `name` in a name-indexed table, if any.
    pub(crate) fn get_named(
        &self,
        table: &SealedTable,
        name: &str,
    ) -> Result<Option<(i64, Zeroizing<Vec<u8>>)>> {
        let mut found = None;
        self.scan(table, Some(name.as_bytes()), |id, plain| {
            // The index is a truncated HMAC: confirm the name before trusting the match.
            if name_of(plain).map_err(|_| table.bad_record(id))? == name.as_bytes() {
                found = Some((id, Zeroizing::new(plain.to_vec())));
            }
            Ok(())
        })?;
        Ok(found)
    }
}

impl ReadTx<'_> {
    /// Opens row `id` of `table`: `None` when there is no such row, `Some(None)` when it does
    /// not authenticate.
    pub(crate) fn get_opened(
        &self,
        table: &SealedTable,
        id: i64,
    ) -> Result<Option<Option<Zeroizing<Vec<u8>>>>> {
        let sql = format!("SELECT sealed FROM {} WHERE id = ?1", table.name);
        let blob: Option<Vec<u8>> = optional(self.conn.query_row(&sql, [id], |row| row.get(0)))?;
        Ok(blob.map(|b| self.cipher.open(&table.at(id), &b).ok().map(Zeroizing::new)))
    }
}

/// Reads one optional row (helper for single-row tables).
pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    Ok(r.optional()?)
}
