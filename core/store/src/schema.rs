//! Schema migrations on `PRAGMA user_version`.
//!
//! [`MIGRATIONS`] is an ordered list; step `n` upgrades a database from version `n - 1` to
//! `n`, runs in its own transaction together with the `user_version` bump, so a crash leaves
//! the file at a whole version. A new table arrives by appending a step (SQL file in
//! `migrations/`, optionally a Rust data step) and, if it holds sealed values, a
//! [`crate::sealed::SealedTable`] entry. Released steps are never edited: the migration test
//! keeps a frozen copy of the version-1 schema and checks that an old file upgrades to exactly
//! the schema of a fresh one.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// One schema step.
pub(crate) struct Migration {
    /// Version the step produces.
    pub version: u32,
    /// DDL to run.
    pub sql: &'static str,
    /// Data migration run after the DDL, inside the same transaction.
    pub data: Option<fn(&Transaction<'_>) -> Result<()>>,
}

/// Every step, in order. Append only.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/001_events.sql"),
        data: None,
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/002_catalog_model_rounds.sql"),
        data: None,
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/003_consent_audit.sql"),
        data: None,
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/004_audit_mark.sql"),
        data: None,
    },
];

/// Schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// The file's schema version.
pub(crate) fn version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    u32::try_from(v).map_err(|_| Error::Corrupted {
        table: "database",
        row_id: None,
        reason: "negative schema version",
    })
}

/// Upgrades the database to `target` (normally [`SCHEMA_VERSION`]); returns the version it
/// had before.
pub(crate) fn migrate(conn: &mut Connection, target: u32) -> Result<u32> {
    let found = version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for step in MIGRATIONS
        .iter()
        .filter(|m| m.version > found && m.version <= target)
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step.sql)?;
        if let Some(data) = step.data {
            data(&tx)?;
        }
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_consecutively() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
    }

    #[test]
    fn refuses_a_newer_file() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pragma");
        assert!(matches!(
            migrate(&mut conn, SCHEMA_VERSION),
            Err(Error::SchemaTooNew { .. })
        ));
    }
}
