//! SQLite connections: pragmas, one writer, a pool of readers.
//!
//! - `journal_mode=WAL`: readers never block the writer, and a crash rolls back to the last
//!   committed transaction.
//! - `synchronous=FULL`: a transaction reported committed survives power loss, not only a
//!   process crash ("nothing committed is ever lost").
//! - `secure_delete=ON`: deleted rows are overwritten with zeros, not left in free pages.
//! - `temp_store=MEMORY`: no temporary files (and no `SQLITE_IOERR_GETTEMPPATH` on Android).
//! - `foreign_keys=ON` for the tables that later migrations link.
//! - readers are `query_only`.

use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// How long a connection waits for a lock held by another process before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection with the store's pragmas.
pub(crate) fn open(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Sqlite(rusqlite::Error::InvalidQuery));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if read_only {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    Ok(conn)
}

/// A fixed pool of reader connections. A caller borrows one for the length of a read.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl ReaderPool {
    pub(crate) fn new(path: &Path, n: usize) -> Result<Self> {
        let idle = (0..n.max(1))
            .map(|_| open(path, true))
            .collect::<Result<Vec<_>>>()?;
        Ok(ReaderPool {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
        })
    }

    /// Runs `f` with an idle reader, waiting for one if all are busy.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(c) = idle.pop() {
                    break c;
                }
                idle = self.returned.wait(idle).unwrap_or_else(|p| p.into_inner());
            }
        };
        let out = f(&conn);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        self.returned.notify_one();
        out
    }
}
