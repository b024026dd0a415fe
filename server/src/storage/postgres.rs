//! The scale-out backend: PostgreSQL, shared by several server processes.
//!
//! Each process keeps a small pool of connections; cross-process coordination needs nothing
//! beyond what the shared SQL already does (conditional updates, unique constraints and
//! leases), so READ COMMITTED isolation suffices.

use std::sync::{Mutex, MutexGuard};

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};

use super::schema;
use super::sql::{Database, Row, SqlStorage, Tx, Value};
use crate::error::{Error, Result};

/// [`super::Storage`] on PostgreSQL.
pub type PostgresStorage = SqlStorage<PostgresDb>;

/// Connections per process: enough for the HTTP handlers' blocking pool to overlap I/O.
const POOL_SIZE: usize = 4;

/// A fixed pool of PostgreSQL connections.
pub struct PostgresDb {
    pool: Vec<Mutex<Client>>,
}

impl std::fmt::Debug for PostgresDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDb")
            .field("connections", &self.pool.len())
            .finish()
    }
}

fn db_err(e: postgres::Error) -> Error {
    // The database's own message (constraint, syntax) is in the source chain.
    match e.as_db_error() {
        Some(db) => Error::Storage(format!("postgres: {} ({})", db.message(), db.code().code())),
        None => Error::Storage(format!("postgres: {e}")),
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:pass@host/db`), creating the schema if needed.
    ///
    /// The connection is unencrypted: run the database on a private network or a local
    /// socket, as the server's storage is not a public endpoint.
    pub fn connect(url: &str) -> Result<Self> {
        let pool = (0..POOL_SIZE)
            .map(|_| Client::connect(url, NoTls).map(Mutex::new).map_err(db_err))
            .collect::<Result<Vec<_>>>()?;
        let db = PostgresDb { pool };
        // Concurrent first starts would race on CREATE TABLE IF NOT EXISTS; a transaction-
        // scoped advisory lock serialises them.
        db.with_client(|c| {
            let mut tx = c.transaction().map_err(db_err)?;
            tx.execute("SELECT pg_advisory_xact_lock(7310)", &[])
                .map_err(db_err)?;
            tx.batch_execute(&schema::ddl(schema::POSTGRES))
                .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })?;
        SqlStorage::new(db, "", &schema::migrations(schema::POSTGRES))
    }
}

impl PostgresDb {
    /// Runs `f` on a free connection (or waits for the first one).
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let guard = self
            .pool
            .iter()
            .find_map(|m| m.try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| self.pool[0].lock())
            .map_err(|_| Error::Storage("connection poisoned by an earlier panic".into()));
        let mut guard: MutexGuard<'_, Client> = guard?;
        f(&mut guard)
    }
}

struct PgTx<'a, 'b>(&'a mut postgres::Transaction<'b>);

fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| match v {
            Value::Int(x) => x as &(dyn ToSql + Sync),
            Value::Real(x) => x as &(dyn ToSql + Sync),
            Value::Text(x) => x as &(dyn ToSql + Sync),
            Value::Blob(x) => x as &(dyn ToSql + Sync),
        })
        .collect()
}

fn cell(row: &postgres::Row, i: usize) -> Result<Value> {
    let get_err = |e: postgres::Error| Error::Corrupt {
        what: "postgres column",
        reason: e.to_string(),
    };
    let ty = row.columns()[i].type_().clone();
    Ok(if ty == Type::INT8 {
        Value::Int(row.try_get(i).map_err(get_err)?)
    } else if ty == Type::INT4 {
        Value::Int(
            row.try_get::<_, Option<i32>>(i)
                .map_err(get_err)?
                .map(i64::from),
        )
    } else if ty == Type::FLOAT8 {
        Value::Real(row.try_get(i).map_err(get_err)?)
    } else if ty == Type::TEXT || ty == Type::VARCHAR {
        Value::Text(row.try_get(i).map_err(get_err)?)
    } else if ty == Type::BYTEA {
        Value::Blob(row.try_get(i).map_err(get_err)?)
    } else {
        return Err(Error::Corrupt {
            what: "postgres column",
            reason: format!("unexpected type {ty}"),
        });
    })
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64> {
        self.0.execute(sql, &params(values)).map_err(db_err)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        let rows = self.0.query(sql, &params(values)).map_err(db_err)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| cell(row, i))
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }
}

impl Database for PostgresDb {
    const NAME: &'static str = "postgres";

    fn execute_batch(&self, ddl: &str) -> Result<()> {
        if ddl.is_empty() {
            return Ok(());
        }
        self.with_client(|c| c.batch_execute(ddl).map_err(db_err))
    }

    fn transaction<T>(&self, f: &mut dyn FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(db_err)?;
            let out = f(&mut PgTx(&mut tx))?;
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
    }
}
