//! Covey's encrypted on-device store for a member's loyalty history.
//!
//! Nothing readable rests on disk: every member-derived value is sealed with AES-256-GCM
//! (ring) under a random 256-bit data key, with associated data binding the table, row id and
//! schema version; lookups use blind indexes (truncated HMAC-SHA256 under per-table keys
//! derived with HKDF). The data key is wrapped by the host's [`KeyStore`] (Keychain / Android
//! Keystore through the FFI; [`PassphraseKeyStore`] on desktops; [`InMemoryKeyStore`] in
//! tests) and checked against a canary, so a wrong key fails with [`Error::KeyMismatch`]
//! before any data is read.
//!
//! ```
//! use std::sync::Arc;
//! use covey_store::*;
//!
//! # fn main() -> Result<(), Error> {
//! let dir = tempfile::tempdir()?;
//! let keystore = Arc::new(InMemoryKeyStore::new(covey_store::os_rng()?));
//! let clock = Arc::new(FakeClock::new(1_780_000_000_000));
//! let store = Store::open(dir.path(), keystore, StoreConfig::default(), clock)?;
//! store.record_events(&[LoyaltyEvent {
//!     kind: EventKind::Purchase,
//!     item_id: "sku-42".into(),
//!     category: "coffee".into(),
//!     quantity: 1,
//!     amount_minor: 350,
//!     currency: "EUR".into(),
//!     store_id: "store-7".into(),
//!     channel: Channel::InStore,
//!     time_ms: 1_779_999_000_000,
//! }])?;
//! let history = store.member_history(&HistoryQuery::default())?;
//! assert_eq!(history[0].event.item_id, "sku-42");
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! | module | concern |
//! |---|---|
//! | `event`, `records` | record types, validation, sealed record layouts |
//! | `cipher`, `codec` | AES-GCM blob format, blind indexes, binary record encoding |
//! | `keystore`, `datakey` | host key stores; data key creation, canary, rotation, erase |
//! | `db`, `schema`, `sealed`, `store` | SQLite pragmas and connections, migrations, sealed tables, the [`Store`] handle |
//! | `write`, `read` | writing member data; **all** reads of member data (one place to gate) |
//! | `catalog`, `key_material`, `retention`, `export` | the other capabilities |
//!
//! # Guarantees
//!
//! - Batches are atomic; invalid input is rejected with a typed error before anything is
//!   written; a crash (even power loss: `synchronous=FULL`) never loses a committed batch.
//! - Moving a ciphertext to another row, flipping a byte, or truncating the file gives
//!   [`Error::Corrupted`], never wrong data and never a panic.
//! - Retention TTLs are enforced at read time and by [`Store::purge_expired`].
//! - [`Store::erase_all`] crypto-shreds and leaves no byte of a member value in the database,
//!   `-wal` or `-shm` files.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit_entry;
mod audit_mark;
mod catalog;
mod cipher;
mod clock;
mod codec;
pub mod consent;
mod datakey;
mod db;
mod error;
pub mod event;
mod export;
pub mod grant;
mod key_material;
mod keystore;
pub mod ledger;
pub mod merkle;
mod read;
mod records;
mod retention;
mod schema;
mod sealed;
mod store;
mod write;

pub use audit_mark::{AuditMarkStatus, AuditTail};
pub use cipher::{MAX_SEALS_PER_KEY, StoreRng, os_rng};
pub use clock::{Clock, FakeClock, SystemClock};
pub use datakey::{EraseReport, KeyInfo, RotationReport};
pub use error::{Error, Result};
pub use event::{Channel, EventId, EventKind, LoyaltyEvent, StoredEvent};
pub use export::{
    EXPORT_FORMAT, EXPORT_FORMAT_VERSION, ExportDocument, ExportedBlob, ImportReport,
};
pub use key_material::KeyMaterialInfo;
pub use keystore::{
    InMemoryKeyStore, KeyStore, KeyStoreError, PASSPHRASE_ITERATIONS, PassphraseKeyStore,
};
pub use read::{HistoryQuery, HistoryStamp};
pub use records::{
    Catalog, CatalogItem, KeyMaterial, MAX_BLOB_LEN, ParticipationOutcome, ParticipationRecord,
    StoredParticipation,
};
pub use retention::{PurgeReport, RetentionPolicy};
pub use schema::SCHEMA_VERSION;
pub use store::{DB_FILE_NAME, Store, StoreConfig};
