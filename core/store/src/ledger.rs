//! The consent ledger and the audit log, as sealed tables, and the gate that mints grants.
//!
//! # Why the gate lives in the store
//!
//! Member-data read APIs take a purpose grant ([`crate::grant`]). Rust cannot hide a
//! constructor from another crate, so the only code able to mint a grant is the code holding
//! the evidence for it: the store, which keeps the sealed consent events and derives the
//! state from them at the moment of minting. The SDK above owns the purpose registry,
//! notices, prompts, receipts and the privacy center, and records decisions through
//! [`Store::append_consent`]; nothing outside this crate can make a grant appear.
//!
//! # State kept in memory
//!
//! At open, the consent events and the audit log's leaf hashes are loaded once; each
//! committed write appends to them. A consent row that fails to open *poisons* the ledger:
//! no grant is minted for any purpose until the store is erased (a damaged "withdrawn" event
//! must never resurrect an older "given"). Audit rows that fail to open become placeholder
//! leaves, so the tree's root exposes the damage instead of hiding it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::audit_entry::{AuditEntry, AuditEvent};
use crate::audit_mark::AuditTree;
use crate::clock::Clock;
use crate::consent::{
    ANALYTICS, ConsentEventKind, ConsentRecord, DataCategory, FEDERATED_TRAINING, NoticeRef,
    PERSONALIZATION, PurposeId, PurposeStatus, Terms,
};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::grant::{ConsentLedger, Grant, HostGrant, Purpose, PurposeGrant};
use crate::merkle::{self, Hash};
use crate::read::HistoryQuery;
use crate::records::name_of;
use crate::retention::RetentionPolicy;
use crate::sealed::{MODEL_BLOBS, ReadTx, SealedTable, WriteTx};
use crate::store::Store;

/// Consent events, in append order.
pub(crate) const CONSENT_EVENTS: SealedTable = SealedTable {
    name: "consent_events",
    schema_version: 3,
    blind_index: None,
};

/// The terms in force (at most one row).
pub(crate) const CONSENT_TERMS: SealedTable = SealedTable {
    name: "consent_terms",
    schema_version: 3,
    blind_index: None,
};

/// Audit-log entries, in append order.
pub(crate) const AUDIT_LOG: SealedTable = SealedTable {
    name: "audit_log",
    schema_version: 3,
    blind_index: None,
};

/// Signed checkpoints of the audit log, in append order.
pub(crate) const AUDIT_CHECKPOINTS: SealedTable = SealedTable {
    name: "audit_checkpoints",
    schema_version: 3,
    blind_index: None,
};

/// Version byte of the terms-in-force record.
const TERMS_VERSION: u8 = 1;
/// Largest checkpoint accepted (they are a few hundred bytes).
const MAX_CHECKPOINT_LEN: usize = 1024;

/// Leaf standing in for an audit row that does not open: any signed root over the original
/// row then mismatches.
pub(crate) const UNREADABLE_LEAF: &[u8] = b"covey.audit.unreadable";

/// The notice in force and the material terms of each purpose it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsInForce {
    /// The notice version.
    pub notice: NoticeRef,
    /// Terms per purpose.
    pub terms: BTreeMap<PurposeId, Terms>,
}

impl TermsInForce {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![TERMS_VERSION];
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&TERMS_VERSION, json)) => serde_json::from_slice(json).ok(),
            _ => None,
        }
    }
}

/// One stored audit row: its position (append order) and its opened bytes, or `None` when
/// the sealed value did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Position in append order.
    pub position: u64,
    /// Opened entry bytes (the leaf data).
    pub bytes: Option<Vec<u8>>,
}

/// The in-memory consent and audit state of an open store.
#[derive(Debug)]
pub(crate) struct LedgerState {
    consent: Mutex<ConsentLedger>,
    terms: Mutex<Option<TermsInForce>>,
    /// Leaf hashes of the audit log; its lock also orders audit appends.
    audit: Mutex<AuditTree>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation of this state happens after its SQL commit, in one step: a panic in
    // between cannot leave it half-updated, so a poisoned lock is safe to reuse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LedgerState {
    /// Loads the ledger and the audit tree from `conn` (empty below schema version 3).
    pub(crate) fn load(
        tx: &ReadTx<'_>,
        clock: Arc<dyn Clock>,
        schema_version: u32,
    ) -> Result<Self> {
        let mut records = Vec::new();
        let mut poisoned = false;
        let mut terms = None;
        let mut audit = AuditTree::default();
        if schema_version >= CONSENT_EVENTS.schema_version {
            tx.scan_opened(&CONSENT_EVENTS, |_, plain| {
                match plain.and_then(|p| ConsentRecord::decode(&p)) {
                    Some(r) => records.push(r),
                    None => poisoned = true,
                }
                Ok(())
            })?;
            tx.scan_opened(&CONSENT_TERMS, |_, plain| {
                // An unreadable terms row leaves no terms in force: nothing is valid until
                // the SDK puts its notice in force again.
                terms = plain.and_then(|p| TermsInForce::decode(&p));
                Ok(())
            })?;
            audit = AuditTree::load(tx, schema_version)?;
        }
        let in_force = terms
            .as_ref()
            .map(|t: &TermsInForce| t.terms.clone())
            .unwrap_or_default();
        let mut ledger = ConsentLedger::new(records, in_force, clock);
        if poisoned {
            ledger.poison();
        }
        Ok(Self {
            consent: Mutex::new(ledger),
            terms: Mutex::new(terms),
            audit: Mutex::new(audit),
        })
    }

    /// The audit tree; its lock orders audit and checkpoint appends.
    pub(crate) fn audit(&self) -> MutexGuard<'_, AuditTree> {
        lock(&self.audit)
    }

    /// Forgets everything after an erase; outstanding grants stop working.
    pub(crate) fn reset(&self) {
        lock(&self.consent).reset();
        *lock(&self.terms) = None;
        *lock(&self.audit) = AuditTree::default();
    }
}

/// Appends `event` to the audit log inside `tx`, as entry number `index`; returns the entry,
/// its row id and its leaf hash.
fn insert_audit(
    tx: &mut WriteTx<'_>,
    index: u64,
    event: AuditEvent,
) -> Result<(AuditEntry, i64, Hash)> {
    let entry = AuditEntry {
        index,
        time_ms: tx.now_ms,
        event,
    };
    let bytes = entry.encode();
    let row = tx.insert(&AUDIT_LOG, &bytes)?;
    Ok((entry, row, merkle::leaf_hash(&bytes)))
}

impl Store {
    fn ledger(&self) -> &LedgerState {
        &self.ledger
    }

    /// Runs a write that also appends the audit entry `f` returns, keeping the in-memory tree
    /// in the order of the committed rows.
    fn write_audited<T>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<(T, AuditEvent)>,
    ) -> Result<(T, AuditEntry)> {
        let mut tree = self.ledger().audit();
        let index = tree.range.size();
        let (out, entry, row, leaf) = self.write(|tx| {
            let (out, event) = f(tx)?;
            let (entry, row, leaf) = insert_audit(tx, index, event)?;
            Ok((out, entry, row, leaf))
        })?;
        tree.push(row, leaf);
        Ok((out, entry))
    }

    /// Appends an audit entry (uploads, training passes, erasures, exports, ...). Entries hold
    /// no member values: callers pass counts, sizes and parameters only.
    pub fn append_audit(&self, event: AuditEvent) -> Result<AuditEntry> {
        Ok(self.write_audited(|_| Ok(((), event)))?.1)
    }

    /// Size and RFC 6962 root of the audit log as committed.
    pub fn audit_head(&self) -> (u64, Hash) {
        let tree = self.ledger().audit();
        (tree.range.size(), tree.range.root())
    }

    /// Every audit row in append order; rows that fail to open are reported, not fatal.
    pub fn audit_rows(&self) -> Result<Vec<AuditRow>> {
        let mut rows = Vec::new();
        self.read(|tx| {
            tx.scan_opened(&AUDIT_LOG, |_, plain| {
                rows.push(AuditRow {
                    position: rows.len() as u64,
                    bytes: plain.map(|p| p.to_vec()),
                });
                Ok(())
            })
        })?;
        Ok(rows)
    }

    /// Stores a signed checkpoint (opaque bytes, signed by the SDK's device key).
    pub fn append_checkpoint(&self, checkpoint: &[u8]) -> Result<()> {
        if checkpoint.is_empty() || checkpoint.len() > MAX_CHECKPOINT_LEN {
            return Err(Error::InvalidInput {
                field: "checkpoint",
                reason: "must be 1-1024 bytes",
            });
        }
        let mut tree = self.ledger().audit();
        let row = self.write(|tx| tx.insert(&AUDIT_CHECKPOINTS, checkpoint))?;
        tree.checkpoint_appended(row);
        Ok(())
    }

    /// The checkpoint stored last, if any (empty when it does not open); reads one row.
    pub fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>> {
        let row = self.ledger().audit().checkpoint_row();
        self.read(|tx| {
            Ok(tx
                .get_opened(&AUDIT_CHECKPOINTS, row)?
                .map(|plain| plain.map(|p| p.to_vec()).unwrap_or_default()))
        })
    }

    /// Every stored checkpoint in append order (an unreadable one comes back empty, which no
    /// checkpoint decoder accepts).
    pub fn checkpoints(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.read(|tx| {
            tx.scan_opened(&AUDIT_CHECKPOINTS, |_, plain| {
                out.push(plain.map(|p| p.to_vec()).unwrap_or_default());
                Ok(())
            })
        })?;
        Ok(out)
    }

    /// The notice in force, if one was put in force.
    pub fn terms_in_force(&self) -> Option<TermsInForce> {
        lock(&self.ledger().terms).clone()
    }

    /// Puts a notice in force (no-op when it already is). Purposes whose material terms
    /// changed lose their outstanding grants at once, before the write.
    pub fn put_terms_in_force(&self, terms: TermsInForce) -> Result<Option<AuditEntry>> {
        let mut current = lock(&self.ledger().terms);
        if current.as_ref() == Some(&terms) {
            return Ok(None);
        }
        lock(&self.ledger().consent).set_terms(terms.terms.clone());
        let event = AuditEvent::NoticePublished {
            notice_id: terms.notice.id.clone(),
            version: terms.notice.version,
            text_sha256: terms.notice.text_sha256.clone(),
        };
        let bytes = terms.encode();
        let ((), entry) = self.write_audited(|tx| {
            tx.conn().execute("DELETE FROM consent_terms", [])?;
            tx.insert(&CONSENT_TERMS, &bytes)?;
            Ok(((), event))
        })?;
        *current = Some(terms);
        Ok(Some(entry))
    }

    /// Appends a consent event (and its audit entry, in the same transaction).
    ///
    /// An event that ends a consent (refused, withdrawn, expired) invalidates outstanding
    /// grants *before* it is written: processing stops even if the write then fails.
    pub fn append_consent(&self, record: ConsentRecord) -> Result<AuditEntry> {
        let revokes = !matches!(
            record.event,
            ConsentEventKind::Given | ConsentEventKind::Renewed | ConsentEventKind::Requested
        );
        if revokes {
            lock(&self.ledger().consent).revoke(&record.purpose);
        }
        let event = AuditEvent::Consent {
            record_id: record.record_id.clone(),
            purpose: record.purpose.clone(),
            event: record.event,
            record_sha256: hex::encode(record.sha256()),
        };
        let bytes = record.canonical_bytes();
        let ((), entry) = self.write_audited(|tx| {
            tx.insert(&CONSENT_EVENTS, &bytes)?;
            Ok(((), event))
        })?;
        lock(&self.ledger().consent).append(record);
        Ok(entry)
    }

    /// The consent events, in ledger order.
    pub fn consent_records(&self) -> Vec<ConsentRecord> {
        lock(&self.ledger().consent).records().to_vec()
    }

    /// The derived consent status of `purpose` now.
    pub fn consent_status(&self, purpose: &PurposeId) -> PurposeStatus {
        lock(&self.ledger().consent).status(purpose)
    }

    /// The purpose whose derived state a blob named `name` holds, if any: names
    /// `"<purpose>/..."` for a built-in purpose or one in the notice in force.
    pub(crate) fn derived_state_purpose(&self, name: &str) -> Option<PurposeId> {
        let (head, _) = name.split_once('/')?;
        let purpose = PurposeId::new(head).ok()?;
        let builtin = [PERSONALIZATION, FEDERATED_TRAINING, ANALYTICS].contains(&head);
        let in_force = lock(&self.ledger().terms)
            .as_ref()
            .is_some_and(|t| t.terms.contains_key(&purpose));
        (builtin || in_force).then_some(purpose)
    }

    /// Refuses every grant until the store is erased (or reopened over an intact log): the
    /// SDK calls it when the audit log fails verification, since a rolled-back or edited
    /// database may have undone a withdrawal. Fails closed.
    pub fn suspend_grants(&self) {
        lock(&self.ledger().consent).poison();
    }

    /// Mints a grant for built-in purpose `P`, held by `component` (named in the audit log).
    /// Fails with [`Error::Consent`] unless the purpose's consent is valid now.
    pub fn grant<P: Purpose>(&self, component: &str) -> Result<Grant<P>> {
        Ok(lock(&self.ledger().consent).grant::<P>(component)?)
    }

    /// Mints a grant for a host-registered purpose.
    pub fn host_grant(&self, purpose: &PurposeId, component: &str) -> Result<HostGrant> {
        Ok(lock(&self.ledger().consent).host_grant(purpose, component)?)
    }

    /// Logs a purpose-scoped read of `rows` rows of `categories`. The grant is checked before
    /// logging and again after: if consent ended at any point before the rows are handed
    /// over, they are withheld and the caller gets the consent error.
    pub(crate) fn log_read(
        &self,
        grant: &dyn PurposeGrant,
        categories: &[DataCategory],
        rows: u64,
    ) -> Result<()> {
        grant.check()?;
        self.append_audit(AuditEvent::Read {
            purpose: grant.purpose().clone(),
            component: grant.component().to_owned(),
            categories: categories.to_vec(),
            rows,
        })?;
        Ok(grant.check()?)
    }

    /// Per-purpose erasure of derived state: deletes every model blob named under
    /// [`derived_state_prefix`]`(purpose)` and logs the erasure, in one transaction, then
    /// checkpoints the write-ahead log so the deleted ciphertext leaves the `-wal` file too.
    /// Returns how many blobs were deleted.
    pub fn erase_derived_state(&self, purpose: &PurposeId) -> Result<u64> {
        let prefix = derived_state_prefix(purpose);
        let (n, _) = self.write_audited(|tx| {
            let mut ids = Vec::new();
            tx.scan(&MODEL_BLOBS, |id, plain| {
                let name = name_of(plain).map_err(|_| MODEL_BLOBS.bad_record(id))?;
                if name.starts_with(prefix.as_bytes()) {
                    ids.push(id);
                }
                Ok(())
            })?;
            let n = tx.delete_ids(&MODEL_BLOBS, &ids)? as u64;
            let event = AuditEvent::Erasure {
                scope: format!("purpose:{purpose}"),
                items: n,
            };
            Ok((n, event))
        })?;
        self.truncate_wal()?;
        Ok(n)
    }

    /// Empties the write-ahead log into the database file, so rows just deleted (and zeroed
    /// by `secure_delete`) leave no copy in the `-wal` file. Best effort: a reader holding an
    /// old snapshot keeps its frames until it finishes.
    fn truncate_wal(&self) -> Result<()> {
        let writer = self.lock_writer();
        let _busy: i64 = writer
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(())
    }

    /// What the store holds per data category (counts and time span), for the privacy center.
    /// Reading it is the member's right of access, not a purpose-scoped use: no grant.
    pub fn stored_categories(&self) -> Result<Vec<StoredCategory>> {
        let mut by: BTreeMap<DataCategory, StoredCategory> = BTreeMap::new();
        let retention = &self.config().retention;
        self.read(|tx| {
            for e in crate::read::events(tx, &HistoryQuery::default())? {
                let category = DataCategory::of(e.event.kind);
                let entry = by.entry(category).or_insert_with(|| StoredCategory {
                    retention_days: category_retention(retention, category),
                    ..StoredCategory::empty(category)
                });
                let t = e.event.time_ms;
                entry.count += 1;
                entry.oldest_ms = Some(entry.oldest_ms.map_or(t, |o| o.min(t)));
                entry.newest_ms = Some(entry.newest_ms.map_or(t, |n| n.max(t)));
            }
            let blobs = crate::read::blobs(tx)?;
            if !blobs.is_empty() {
                let entry = by
                    .entry(DataCategory::PersonalModel)
                    .or_insert_with(|| StoredCategory::empty(DataCategory::PersonalModel));
                entry.count = blobs.len() as u64;
            }
            Ok(())
        })?;
        Ok(by.into_values().collect())
    }
}

/// Prefix of the model-blob names that hold state derived for `purpose`
/// (e.g. `personalization/user_state`, `federated_training/pending_update`); erased when the
/// purpose's consent ends.
pub fn derived_state_prefix(purpose: &PurposeId) -> String {
    format!("{purpose}/")
}

/// Longest TTL, in days, of the event kinds in `category` (None if any is kept forever).
fn category_retention(policy: &RetentionPolicy, category: DataCategory) -> Option<u32> {
    EventKind::ALL
        .iter()
        .filter(|k| DataCategory::of(**k) == category)
        .map(|k| {
            policy
                .events
                .get(k)
                .map(|d| u32::try_from(d.as_secs() / 86_400).unwrap_or(u32::MAX))
        })
        .collect::<Option<Vec<u32>>>()?
        .into_iter()
        .max()
}

/// What the store holds for one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCategory {
    /// The category.
    pub category: DataCategory,
    /// Number of items (events or blobs).
    pub count: u64,
    /// Oldest item time, ms since the Unix epoch (None for model state).
    pub oldest_ms: Option<i64>,
    /// Newest item time.
    pub newest_ms: Option<i64>,
    /// Longest retention of items in this category, in days (None: until erased).
    pub retention_days: Option<u32>,
}

impl StoredCategory {
    fn empty(category: DataCategory) -> Self {
        Self {
            category,
            count: 0,
            oldest_ms: None,
            newest_ms: None,
            retention_days: None,
        }
    }
}
