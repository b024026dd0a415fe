//! Export (right of access, portability) and import of everything the store holds about the
//! member, as one JSON document.
//!
//! # Document format (`format = "covey.store.export"`, `format_version = 1`)
//!
//! | field | content |
//! |---|---|
//! | `format`, `format_version` | identify this layout; readers refuse other values |
//! | `schema_version` | the store's SQLite schema version when exported |
//! | `exported_at_ms` | store clock, ms since the Unix epoch |
//! | `events` | every unexpired event, oldest first: `id`, `kind` (`purchase`, `redemption`, `visit`, `offer_view`, `offer_click`), `item_id`, `category`, `quantity`, `amount_minor` (minor currency units), `currency` (ISO 4217), `store_id`, `channel` (`in_store`, `app`, `web`), `time_ms` |
//! | `catalog` | `null` or `{version, items: [{item_id, category, name, features}]}` |
//! | `model_blobs` | `[{name, size_bytes, hex}]`: model state derived from the history |
//! | `participations` | `[{id, population, round_id, model_version, started_at_ms, finished_at_ms, outcome, bytes_uploaded, epsilon_charged}]` |
//! | `key_material` | `[{name, algorithm, public_key_hex, created_at_ms}]`: public parts only; secrets never leave the store |
//! | `data_key` | `{generation, key_id, algorithm, created_at_ms, seal_count, seal_limit}`: metadata only |

use serde::{Deserialize, Serialize};

use crate::audit_entry::AuditEvent;
use crate::catalog;
use crate::datakey::KeyInfo;
use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::key_material::{self, KeyMaterialInfo};
use crate::read::{self, HistoryQuery};
use crate::records::{Catalog, MAX_BLOB_LEN, StoredParticipation, check_name, encode_named_blob};
use crate::sealed::{EVENTS, MODEL_BLOBS, PARTICIPATIONS};
use crate::store::Store;

/// Value of [`ExportDocument::format`].
pub const EXPORT_FORMAT: &str = "covey.store.export";
/// Value of [`ExportDocument::format_version`] written by this build.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// Everything the store holds about the member (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportDocument {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// Layout version, [`EXPORT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Store schema version at export time.
    pub schema_version: u32,
    /// Export time, ms since the epoch.
    pub exported_at_ms: i64,
    /// Unexpired events, oldest first.
    pub events: Vec<StoredEvent>,
    /// The catalog, if one is stored.
    pub catalog: Option<Catalog>,
    /// Model state blobs.
    pub model_blobs: Vec<ExportedBlob>,
    /// Unexpired participation records.
    pub participations: Vec<StoredParticipation>,
    /// Public facts of stored key material.
    pub key_material: Vec<KeyMaterialInfo>,
    /// Data key metadata.
    pub data_key: KeyInfo,
}

/// A model state blob in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedBlob {
    /// Blob name.
    pub name: String,
    /// Length in bytes.
    pub size_bytes: usize,
    /// Content, lower-case hex.
    pub hex: String,
}

/// What an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Events added.
    pub events: usize,
    /// Participation records added.
    pub participations: usize,
    /// Model blobs stored (replacing same-named ones).
    pub model_blobs: usize,
    /// Catalog items stored (replacing the catalog), if the document had a catalog.
    pub catalog_items: usize,
}

impl Store {
    /// Everything stored about the member, from one consistent snapshot (right of access).
    ///
    /// Like [`Store::member_history`], every export is audit-logged as a member access
    /// (`what = "export"`, the number of events handed out), here where the data is read,
    /// so no caller can hand the member's data out of the store unrecorded.
    pub fn export(&self) -> Result<ExportDocument> {
        let data_key = self.key_info()?;
        let doc = self.read(|tx| {
            Ok(ExportDocument {
                format: EXPORT_FORMAT.into(),
                format_version: EXPORT_FORMAT_VERSION,
                schema_version: self.schema_version(),
                exported_at_ms: tx.now_ms,
                events: read::events(tx, &HistoryQuery::default())?,
                catalog: catalog::catalog(tx)?,
                model_blobs: read::blobs(tx)?
                    .into_iter()
                    .map(|(name, bytes)| ExportedBlob {
                        name,
                        size_bytes: bytes.len(),
                        hex: hex::encode(bytes),
                    })
                    .collect(),
                participations: read::participations(tx)?,
                key_material: key_material::list(tx)?,
                data_key,
            })
        })?;
        self.append_audit(AuditEvent::MemberAccess {
            what: "export".into(),
            rows: doc.events.len() as u64,
        })?;
        Ok(doc)
    }

    /// [`Store::export`] as pretty-printed JSON.
    pub fn export_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(&self.export()?)?)
    }

    /// Adds the contents of an export (e.g. from the member's previous phone) in one
    /// transaction: events and participation records are appended, model blobs and the
    /// catalog replace stored ones. Ids are assigned anew; key material is not imported
    /// (exports carry no secrets). Everything is validated first; on error nothing is written.
    pub fn import(&self, doc: &ExportDocument) -> Result<ImportReport> {
        if doc.format != EXPORT_FORMAT || doc.format_version != EXPORT_FORMAT_VERSION {
            return Err(Error::InvalidInput {
                field: "format",
                reason: "is not a Covey store export of a supported version",
            });
        }
        let now = self.clock().now_ms();
        for (index, e) in doc.events.iter().enumerate() {
            e.event.validate(now).map_err(|v| Error::InvalidEvent {
                index,
                field: v.field,
                reason: v.reason,
            })?;
        }
        let blobs = decode_blobs(&doc.model_blobs)?;
        doc.participations
            .iter()
            .try_for_each(|p| p.record.validate())?;
        if let Some(c) = &doc.catalog {
            c.validate()?;
        }
        self.write(|tx| {
            tx.insert_all(&EVENTS, doc.events.iter().map(|e| e.event.encode()))?;
            for p in &doc.participations {
                tx.insert(&PARTICIPATIONS, &p.record.encode())?;
            }
            for (name, record) in &blobs {
                tx.replace_named(&MODEL_BLOBS, name, record)?;
            }
            if let Some(c) = &doc.catalog {
                catalog::replace(tx, c)?;
            }
            Ok(ImportReport {
                events: doc.events.len(),
                participations: doc.participations.len(),
                model_blobs: blobs.len(),
                catalog_items: doc.catalog.as_ref().map_or(0, |c| c.items.len()),
            })
        })
    }
}

fn decode_blobs(blobs: &[ExportedBlob]) -> Result<Vec<(String, Vec<u8>)>> {
    blobs
        .iter()
        .map(|b| {
            check_name(&b.name)?;
            if b.hex.len() > 2 * MAX_BLOB_LEN {
                return Err(Error::InvalidInput {
                    field: "model_blobs",
                    reason: "blob is larger than the store accepts",
                });
            }
            let bytes = hex::decode(&b.hex).map_err(|_| Error::InvalidInput {
                field: "model_blobs",
                reason: "hex content is malformed",
            })?;
            Ok((b.name.clone(), encode_named_blob(&b.name, &bytes)))
        })
        .collect()
}
