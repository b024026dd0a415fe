//! The store's error type.
//!
//! No variant carries member data: errors name a table, a row id, a field and a reason, never
//! a value, so they can be logged and shown without leaking a member's history.

use crate::keystore::KeyStoreError;

/// Result of every fallible store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event in a batch failed validation; nothing of the batch was written.
    #[error("invalid event at index {index}: {field} {reason}")]
    InvalidEvent {
        /// Position of the offending event in the batch.
        index: usize,
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Some other input (catalog, blob, participation record, name) failed validation;
    /// nothing was written.
    #[error("invalid input: {field} {reason}")]
    InvalidInput {
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key store returned a key that does not open this store: wrong passphrase, wrong
    /// platform key, or a damaged wrapped key. No data is returned.
    #[error(
        "wrong key or passphrase: the store's data key could not be unlocked (or its wrapped form is damaged)"
    )]
    KeyMismatch,
    /// The key store has no wrapping key for this store (destroyed, or never created there).
    #[error("the key store holds no key for this store (it was destroyed or belongs elsewhere)")]
    KeyUnavailable,
    /// The host key store failed for another reason.
    #[error("key store failure: {0}")]
    KeyStore(KeyStoreError),
    /// Stored data failed authentication or decoding: a flipped byte, a ciphertext moved to
    /// another row, a truncated or malformed file. No data from the damaged part is returned.
    #[error("store data is corrupted: {reason} (table {table}{})", row_suffix(*.row_id))]
    Corrupted {
        /// Table (or `"database"` for file-level damage) where it was found.
        table: &'static str,
        /// Row id, when one row is concerned.
        row_id: Option<i64>,
        /// What check failed.
        reason: &'static str,
    },
    /// The database was written by a newer build (its schema version is unknown here).
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The data key reached its sealing bound (random 96-bit nonces); rotate the key.
    #[error("the data key sealed {sealed} values, its bound; rotate the key before writing")]
    KeyUsageExhausted {
        /// Values sealed under the current key.
        sealed: u64,
    },
    /// Another connection (another process) kept SQLite from finishing a checkpoint, so an
    /// erase could not empty the write-ahead log; retry when the other user is gone.
    #[error("the database is in use by another connection; erase could not complete")]
    Busy,
    /// The operating system's random source failed.
    #[error("the operating system's random number source failed")]
    Random,
    /// A SQLite error that is not corruption (I/O, busy, full disk...).
    #[error("SQLite error: {0}")]
    Sqlite(rusqlite::Error),
    /// A file-system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An export document could not be written or read.
    #[error("export document: {0}")]
    Export(#[from] serde_json::Error),
    /// A cryptographic primitive refused its input (never expected; reported, not panicked).
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// No valid consent for the purpose, or it ended while a grant was in use.
    #[error(transparent)]
    Consent(#[from] crate::grant::GrantError),
}

fn row_suffix(row_id: Option<i64>) -> String {
    row_id.map(|id| format!(", row {id}")).unwrap_or_default()
}

impl Error {
    /// File-level corruption reported by SQLite.
    pub(crate) fn malformed_database() -> Self {
        Error::Corrupted {
            table: "database",
            row_id: None,
            reason: "SQLite reports a malformed or truncated database file",
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(e.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
            {
                Error::malformed_database()
            }
            // A column of the wrong SQL type can only come from an edited file.
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..) => Error::Corrupted {
                table: "database",
                row_id: None,
                reason: "a column holds a value of the wrong type",
            },
            _ => Error::Sqlite(err),
        }
    }
}

impl From<KeyStoreError> for Error {
    fn from(err: KeyStoreError) -> Self {
        match err {
            KeyStoreError::WrongKey => Error::KeyMismatch,
            KeyStoreError::KeyNotFound => Error::KeyUnavailable,
            other => Error::KeyStore(other),
        }
    }
}
