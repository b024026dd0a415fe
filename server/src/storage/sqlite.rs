//! The embedded backend: one SQLite file in WAL mode.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use super::schema;
use super::sql::{Database, Row, SqlStorage, Tx, Value};
use crate::error::{Error, Result};

/// [`super::Storage`] on SQLite.
pub type SqliteStorage = SqlStorage<SqliteDb>;

/// How long a writer waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A SQLite connection (serialised within the process; other processes wait on the file
/// lock up to [`BUSY_TIMEOUT`]).
#[derive(Debug)]
pub struct SqliteDb {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Storage(e.to_string())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
        // WAL: readers never block the writer; synchronous=FULL: a committed transaction
        // survives power loss, not just a process crash.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        SqlStorage::new(
            SqliteDb {
                conn: Mutex::new(conn),
            },
            &schema::ddl(schema::SQLITE),
            &schema::migrations(schema::SQLITE),
        )
    }
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Int(Some(i)) => V::Integer(*i),
        Value::Real(Some(r)) => V::Real(*r),
        Value::Text(Some(t)) => V::Text(t.clone()),
        Value::Blob(Some(b)) => V::Blob(b.clone()),
        Value::Int(None) | Value::Real(None) | Value::Text(None) | Value::Blob(None) => V::Null,
    }
}

fn from_sql(v: ValueRef<'_>) -> Result<Value> {
    Ok(match v {
        // NULL's type is unknown to SQLite; typed accessors treat any NULL as absent.
        ValueRef::Null => Value::Int(None),
        ValueRef::Integer(i) => Value::Int(Some(i)),
        ValueRef::Real(r) => Value::Real(Some(r)),
        ValueRef::Text(t) => Value::Text(Some(String::from_utf8(t.to_vec()).map_err(|e| {
            Error::Corrupt {
                what: "text column",
                reason: e.to_string(),
            }
        })?)),
        ValueRef::Blob(b) => Value::Blob(Some(b.to_vec())),
    })
}

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let mut stmt = self.0.prepare_cached(sql).map_err(db_err)?;
        let changed = stmt
            .execute(rusqlite::params_from_iter(params))
            .map_err(db_err)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let mut stmt = self.0.prepare_cached(sql).map_err(db_err)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(db_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_err)? {
            let cells = (0..width)
                .map(|i| from_sql(row.get_ref(i).map_err(db_err)?))
                .collect::<Result<Vec<_>>>()?;
            out.push(Row(cells));
        }
        Ok(out)
    }
}

impl Database for SqliteDb {
    const NAME: &'static str = "sqlite";

    fn execute_batch(&self, ddl: &str) -> Result<()> {
        self.lock()?.execute_batch(ddl).map_err(db_err)
    }

    fn transaction<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        // IMMEDIATE takes the write lock up front, so two processes never deadlock
        // upgrading read locks.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let out = f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }
}

impl SqliteDb {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Storage("connection poisoned by an earlier panic".into()))
    }
}
