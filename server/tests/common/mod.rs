//! Helpers shared by the server's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use covey_server::storage::{PostgresStorage, SqliteStorage, Storage};

/// Where `scripts/setup.d/40-postgres` writes the URL of the test database.
pub fn postgres_url_file() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("covey").join("postgres-url")
}

/// The PostgreSQL test database: `COVEY_TEST_POSTGRES_URL`, else the URL the setup script
/// wrote; `None` when neither exists (the PostgreSQL half of the suite is then skipped, and
/// says so).
pub fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("COVEY_TEST_POSTGRES_URL") {
        return Some(url);
    }
    let url = std::fs::read_to_string(postgres_url_file()).ok()?;
    Some(url.trim().to_owned())
}

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub fn sqlite() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStorage::open(&dir.path().join("covey.db")).expect("open sqlite");
    (dir, store)
}

/// The PostgreSQL store, if configured. A configured but unreachable database fails the
/// test: the setup script promised it.
pub fn postgres() -> Option<PostgresStorage> {
    let url = postgres_url()?;
    Some(PostgresStorage::connect(&url).unwrap_or_else(|e| {
        panic!("PostgreSQL test database configured but unusable ({e}); run scripts/setup")
    }))
}

/// A name no earlier run used (PostgreSQL keeps data between runs).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs `check` against SQLite and, when available, PostgreSQL.
pub fn on_every_backend(check: impl Fn(&dyn Storage)) {
    let (_dir, sqlite) = sqlite();
    check(&sqlite);
    match postgres() {
        Some(pg) => check(&pg),
        None => eprintln!("PostgreSQL not configured: checked SQLite only"),
    }
}
