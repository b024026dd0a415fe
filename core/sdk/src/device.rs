//! The device facade: one member's store, consent ledger, audit log and privacy center.
//!
//! [`Device`] owns the [`Store`] and is what the FFI and the round participation build on:
//! the app records consent decisions through it (each one sealed, audited and answered with
//! a signed receipt), asks it which prompts to show, obtains purpose grants from it, reports
//! training passes and uploads to it, and reads the privacy center from it. Components that
//! read member data (the recommender, the trainer) take a grant from [`Device::grant`] and
//! call the store's read APIs with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use covey_store::audit_entry::{AuditEntry, AuditEvent, UploadRecord};
use covey_store::consent::{
    ConsentEventKind, ConsentRecord, ConsentState, Mechanism, PurposeId, PurposeStatus,
    SignalSource,
};
use covey_store::grant::{FederatedTraining, Grant, HostGrant, Purpose, PurposeGrant};
use covey_store::ledger::TermsInForce;
use covey_store::{
    AuditMarkStatus, Clock, EraseReport, ExportDocument, KeyMaterial, Store, StoreRng, merkle,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::audit::{AnchorStore, AuditReport, StoredEntry, VerifyScope, verify_log, verify_tail};
use crate::error::{Error, Result};
use crate::notice::{Notice, Prompt, prompts_needed};
use crate::privacy::{PrivacySummary, summarize};
use crate::purpose::PurposeRegistry;
use crate::receipt::{ConsentReceipt, InclusionProof};
use crate::record::{DAY_MS, RecordContext, new_record};
use crate::signing::{DeviceKey, SignedCheckpoint};

/// Name of the device signing key in the store's key material.
pub const DEVICE_KEY_NAME: &str = "covey.device_signing_key";

/// Format name of [`DeviceExport`].
pub const DEVICE_EXPORT_FORMAT: &str = "covey.device.export";
/// Layout version of [`DeviceExport`].
pub const DEVICE_EXPORT_VERSION: u32 = 1;

/// What the host app configures.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Controller, subject reference, jurisdiction, withdrawal method.
    pub context: RecordContext,
    /// Purposes (built-ins plus the host's).
    pub registry: PurposeRegistry,
    /// The notice in force; must cover every registered purpose.
    pub notice: Notice,
    /// Prompt for renewal this many days before a consent expires.
    pub renewal_window_days: u32,
}

/// The outcome of a consent decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The signed receipt for the event.
    pub receipt: ConsentReceipt,
    /// The purpose's status after the event.
    pub status: PurposeStatus,
    /// Derived-state items erased because the consent ended.
    pub erased_items: u64,
}

/// The audit log as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditExport {
    /// Hex Ed25519 public key that signs checkpoints and receipts.
    pub public_key: String,
    /// Entries in order.
    pub entries: Vec<AuditEntry>,
    /// Signed checkpoints in order.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// The verification result at export time.
    pub verification: AuditReport,
}

/// Everything the device holds about the member: store contents, consent history, receipts,
/// audit log, privacy summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceExport {
    /// [`DEVICE_EXPORT_FORMAT`].
    pub format: String,
    /// [`DEVICE_EXPORT_VERSION`].
    pub format_version: u32,
    /// The store's export (events, catalog, model blobs, participations, key metadata).
    pub store: ExportDocument,
    /// Every consent event, in order.
    pub consent_history: Vec<ConsentRecord>,
    /// A signed receipt per consent event.
    pub receipts: Vec<ConsentReceipt>,
    /// The audit log.
    pub audit_log: AuditExport,
    /// The privacy center's view.
    pub privacy_summary: PrivacySummary,
}

/// One member's device: store, consent ledger, audit log, privacy center.
pub struct Device {
    pub(crate) store: Arc<Store>,
    registry: PurposeRegistry,
    notice: Notice,
    context: RecordContext,
    key: DeviceKey,
    anchor: Arc<dyn AnchorStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Mutex<StoreRng>,
    renewal_window_ms: i64,
    /// Cleared when verification finds tampering: a tampered log is never re-signed, so a
    /// later checkpoint cannot bless the damage.
    log_trusted: AtomicBool,
    /// Serializes checkpointing (sign, store, anchor) so anchors only move forward.
    checkpointing: Mutex<()>,
    /// What the verification at open found.
    opened: AuditReport,
    /// The recommender's model and in-memory state (see [`crate::personalize`]).
    pub(crate) personalizer: crate::personalize::Personalizer,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("store", &self.store)
            .field("notice_version", &self.notice.version)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Opens the device over an open store: loads (or creates) the device signing key, puts
    /// `config.notice` in force, records expiries that happened while closed, verifies the
    /// audit log against its checkpoints and the `anchor`, and checkpoints.
    ///
    /// Verification at open reads only the entries appended since the log was last verified
    /// (the store's sealed mark, which a signed checkpoint vouches for), so opening takes the
    /// same time however long the log grows; a missing, damaged or mismatched mark means the
    /// whole log is read (see [`Device::open_verification`]). [`Device::verify_audit_log`]
    /// always reads everything.
    ///
    /// If the audit log does not verify (edited, truncated, or the database rolled back to an
    /// older snapshot, which could undo a withdrawal), the device still opens, but it issues
    /// no grant and signs no checkpoint until [`Device::erase_all`].
    pub fn open(
        store: Arc<Store>,
        config: DeviceConfig,
        anchor: Arc<dyn AnchorStore>,
        clock: Arc<dyn Clock>,
        mut rng: StoreRng,
    ) -> Result<Self> {
        check_config(&config, &store)?;
        let key = load_or_create_key(&store, clock.now_ms(), &mut rng)?;
        let mut device = Self {
            store,
            registry: config.registry,
            notice: config.notice,
            context: config.context,
            key,
            anchor,
            clock,
            rng: Mutex::new(rng),
            renewal_window_ms: i64::from(config.renewal_window_days) * DAY_MS,
            log_trusted: AtomicBool::new(true),
            checkpointing: Mutex::new(()),
            opened: AuditReport::default(),
            personalizer: Default::default(),
        };
        device.opened = device.verify_at_open()?;
        if !device.opened.is_intact() {
            device.distrust_log();
        }
        device.put_notice_in_force()?;
        device.expire_lapsed()?;
        if device.checkpoint()?.is_some() {
            // Verified up to where it was opened, and written by this device since, up to
            // the checkpoint just signed: the next open starts here.
            device.store.mark_audit_verified()?;
        }
        Ok(device)
    }

    /// Verification at open: from the store's verified mark when it resumed from one, else
    /// (no mark, or one that does not hold) the whole log.
    fn verify_at_open(&self) -> Result<AuditReport> {
        let bad_mark = match self.store.audit_tail()? {
            Some(tail) => {
                let anchor = self.anchor.load()?;
                match verify_tail(&tail, anchor.as_deref(), self.key.public_key()) {
                    Some(report) => return Ok(report),
                    None => true,
                }
            }
            None => self.store.audit_mark_status() == AuditMarkStatus::Rejected,
        };
        let mut report = self.verify_audit_log()?;
        if bad_mark {
            report.scope = VerifyScope::FullAfterBadMark;
        }
        Ok(report)
    }

    /// What the verification of the audit log at open found, and how much of the log it
    /// read ([`AuditReport::scope`]).
    pub fn open_verification(&self) -> &AuditReport {
        &self.opened
    }

    fn put_notice_in_force(&self) -> Result<()> {
        self.store.put_terms_in_force(TermsInForce {
            notice: self.notice.reference(),
            terms: self.notice.purposes.clone(),
        })?;
        Ok(())
    }

    fn key_material(&self) -> KeyMaterial {
        signing_key_material(&self.key, self.clock.now_ms())
    }

    /// The store (for components that read member data with a grant).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The purpose registry.
    pub fn registry(&self) -> &PurposeRegistry {
        &self.registry
    }

    /// The notice in force.
    pub fn notice(&self) -> &Notice {
        &self.notice
    }

    /// The device's Ed25519 public key (verifies receipts and checkpoints).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key()
    }

    /// Status of every registered purpose.
    pub fn statuses(&self) -> Vec<PurposeStatus> {
        self.registry
            .iter()
            .map(|s| self.store.consent_status(&s.id))
            .collect()
    }

    /// Status of one purpose.
    pub fn status(&self, purpose: &PurposeId) -> Result<PurposeStatus> {
        self.registry.get(purpose)?;
        Ok(self.store.consent_status(purpose))
    }

    /// Which purposes the app should prompt for now, and why.
    pub fn prompts_needed(&self) -> Vec<Prompt> {
        prompts_needed(
            &self.notice,
            &self.statuses(),
            self.clock.now_ms(),
            self.renewal_window_ms,
        )
    }

    /// Records that a prompt for `purpose` was shown on `surface`.
    pub fn record_prompt_shown(&self, purpose: &PurposeId, surface: &str) -> Result<Decision> {
        self.decide(
            purpose,
            ConsentEventKind::Requested,
            self.notice.version,
            surface,
        )
    }

    /// Records the member's decision about `purpose`, made on `surface` after reading notice
    /// version `notice_version` (which must be the version in force).
    ///
    /// `Requested`, `Given`, `Refused`, `Withdrawn` and `Renewed` are member decisions;
    /// `Expired` is recorded by the SDK itself ([`Device::expire_lapsed`]). Refusing or
    /// withdrawing stops outstanding grants at once and erases the purpose's derived state
    /// (the personal model for personalization, any pending update for federated training).
    pub fn decide(
        &self,
        purpose: &PurposeId,
        kind: ConsentEventKind,
        notice_version: u32,
        surface: &str,
    ) -> Result<Decision> {
        if kind == ConsentEventKind::Expired {
            return Err(Error::InvalidNotice {
                what: "expiry is recorded by the SDK, not decided by the member",
            });
        }
        if notice_version != self.notice.version {
            return Err(Error::StaleNotice {
                given: notice_version,
                current: self.notice.version,
            });
        }
        let mechanism = Mechanism {
            ui_surface: surface.to_owned(),
            source: SignalSource::Member,
        };
        self.append(purpose, kind, mechanism)
    }

    fn append(
        &self,
        purpose: &PurposeId,
        kind: ConsentEventKind,
        mechanism: Mechanism,
    ) -> Result<Decision> {
        let spec = self.registry.get(purpose)?;
        let record = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            new_record(
                &self.context,
                &self.notice,
                spec,
                kind,
                mechanism,
                self.clock.now_ms(),
                rng.as_mut(),
            )
        };
        self.store.append_consent(record.clone())?;
        let ends_consent = matches!(
            kind,
            ConsentEventKind::Refused | ConsentEventKind::Withdrawn | ConsentEventKind::Expired
        );
        let erased_items = if ends_consent {
            self.personalizer.consent_ended(purpose);
            self.store.erase_derived_state(purpose)?
        } else {
            0
        };
        self.checkpoint()?;
        Ok(Decision {
            receipt: ConsentReceipt::issue(&self.key, &record, record.event_time_ms),
            status: self.store.consent_status(purpose),
            erased_items,
        })
    }

    /// Records an `Expired` event for every given consent whose validity has ended; returns
    /// the purposes concerned.
    pub fn expire_lapsed(&self) -> Result<Vec<PurposeId>> {
        let lapsed: Vec<PurposeId> = self
            .registry
            .iter()
            .filter(|s| self.store.consent_status(&s.id).state == ConsentState::Expired)
            .filter(|s| !last_event_is_expiry(&self.store.consent_records(), &s.id))
            .map(|s| s.id.clone())
            .collect();
        for purpose in &lapsed {
            let mechanism = Mechanism {
                ui_surface: "sdk".into(),
                source: SignalSource::Expiry,
            };
            self.append(purpose, ConsentEventKind::Expired, mechanism)?;
        }
        Ok(lapsed)
    }

    /// A grant for built-in purpose `P`, held by `component`; `ConsentRequired` unless the
    /// member's consent is valid for the notice in force.
    pub fn grant<P: Purpose>(&self, component: &str) -> Result<Grant<P>> {
        Ok(self.store.grant::<P>(component)?)
    }

    /// A grant for a host-registered purpose.
    pub fn host_grant(&self, purpose: &PurposeId, component: &str) -> Result<HostGrant> {
        self.registry.get(purpose)?;
        Ok(self.store.host_grant(purpose, component)?)
    }

    /// Logs a local training pass run under `grant` (checked first: a withdrawn grant fails
    /// with `ConsentWithdrawn` and nothing is logged as done).
    pub fn record_training(
        &self,
        grant: &dyn PurposeGrant,
        round: Option<u64>,
        examples: u64,
    ) -> Result<()> {
        grant.check()?;
        self.store
            .append_audit(AuditEvent::Training { round, examples })?;
        self.checkpoint().map(|_| ())
    }

    /// Permission to send an update now: call immediately before the bytes leave, then
    /// [`Device::record_upload`]. Fails with `ConsentWithdrawn` if federated-training consent
    /// ended since the grant was minted, in which case the update must be discarded.
    pub fn upload_permit(&self, grant: &Grant<FederatedTraining>) -> Result<()> {
        grant.check()?;
        Ok(())
    }

    /// Logs an upload (round, bytes, clip norm, noise, ε) and checkpoints.
    pub fn record_upload(
        &self,
        grant: &Grant<FederatedTraining>,
        upload: UploadRecord,
    ) -> Result<()> {
        if !(upload.epsilon.is_finite() && upload.epsilon >= 0.0 && upload.clip_norm.is_finite()) {
            return Err(Error::InvalidUpload);
        }
        self.upload_permit(grant)?;
        self.store.append_audit(AuditEvent::Upload(upload))?;
        self.checkpoint().map(|_| ())
    }

    /// Erases the derived state of `purpose` (model blobs under its prefix) and logs it.
    pub fn erase_derived_state(&self, purpose: &PurposeId) -> Result<u64> {
        self.registry.get(purpose)?;
        let n = self.store.erase_derived_state(purpose)?;
        self.checkpoint()?;
        Ok(n)
    }

    /// Erases everything: crypto-shreds the store (events, model state, consent ledger, audit
    /// log) and clears the rollback anchor. Outstanding grants stop working. The device then
    /// starts over, trusted and empty: the notice is put in force again (so the member can
    /// decide afresh) and the signing key is kept, so receipts the member exported before
    /// still verify.
    pub fn erase_all(&self) -> Result<EraseReport> {
        let report = {
            let _guard = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
            let report = self.store.erase_all()?;
            self.personalizer.forget_all();
            self.anchor.clear()?;
            self.log_trusted.store(true, Ordering::SeqCst);
            report
        };
        self.store
            .put_key_material(DEVICE_KEY_NAME, &self.key_material())?;
        self.put_notice_in_force()?;
        self.checkpoint()?;
        Ok(report)
    }

    /// A signed receipt for every consent event, in order. Receipts are re-issued on demand:
    /// Ed25519 is deterministic and the issue time is the event time, so the same event
    /// always yields the same receipt.
    pub fn receipts(&self) -> Vec<ConsentReceipt> {
        self.store
            .consent_records()
            .iter()
            .map(|r| ConsentReceipt::issue(&self.key, r, r.event_time_ms))
            .collect()
    }

    /// Proof that the consent event `record_id` is in the audit log under the latest
    /// checkpoint.
    pub fn inclusion_proof(&self, record_id: &str) -> Result<InclusionProof> {
        let checkpoint = self.checkpoint()?.ok_or(Error::BadCheckpoint {
            what: "the audit log is not trusted; no checkpoint is issued",
        })?;
        let rows = self.store.audit_rows()?;
        let covered = &rows[..(checkpoint.tree_size as usize).min(rows.len())];
        let leaves: Vec<merkle::Hash> = covered
            .iter()
            .map(|r| merkle::leaf_hash(r.bytes.as_deref().unwrap_or_default()))
            .collect();
        let (index, bytes) = covered
            .iter()
            .find_map(|r| {
                let bytes = r.bytes.as_ref()?;
                match AuditEntry::decode(bytes).ok()?.event {
                    AuditEvent::Consent { record_id: id, .. } if id == record_id => {
                        Some((r.position, bytes.clone()))
                    }
                    _ => None,
                }
            })
            .ok_or(Error::UnknownRecord)?;
        let path = merkle::inclusion_proof(&leaves, index).map_err(|_| Error::UnknownRecord)?;
        Ok(InclusionProof {
            leaf_index: index,
            entry: hex::encode(bytes),
            audit_path: path.iter().map(hex::encode).collect(),
            checkpoint,
        })
    }

    /// Signs the current audit head, stores the checkpoint and moves the anchor forward.
    /// Returns `None` (and signs nothing) when the log failed verification at open.
    pub fn checkpoint(&self) -> Result<Option<SignedCheckpoint>> {
        if !self.log_trusted.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let _guard = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let (size, root) = self.store.audit_head();
        let cp = SignedCheckpoint::sign(&self.key, size, &root, self.clock.now_ms());
        let latest = self
            .store
            .latest_checkpoint()?
            .and_then(|b| SignedCheckpoint::decode(&b).ok());
        if latest
            .as_ref()
            .is_none_or(|l| l.tree_size != size || l.root != cp.root)
        {
            let bytes = cp.encode();
            self.store.append_checkpoint(&bytes)?;
            self.anchor.save(&bytes)?;
        }
        Ok(Some(cp))
    }

    /// Fails closed after tampering was found: the database may have been rolled back past a
    /// withdrawal, so no grant is issued and nothing is signed until [`Device::erase_all`].
    fn distrust_log(&self) {
        self.log_trusted.store(false, Ordering::SeqCst);
        self.store.suspend_grants();
    }

    /// Verifies the whole audit log: every entry opens and sits where it was written, every
    /// stored checkpoint is signed by this device and matches the entries, and the anchor
    /// kept outside the database is not ahead of it (no rollback) nor forked from it. This
    /// also finds tampering before the point the verification at open started from; a log
    /// that does not verify makes the device fail closed, as at open.
    pub fn verify_audit_log(&self) -> Result<AuditReport> {
        // No checkpoint or anchor moves while the log is read: rows, checkpoints and anchor
        // are then one consistent state, and a report of tampering is never a race.
        let _guard = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let rows: Vec<StoredEntry> = self
            .store
            .audit_rows()?
            .into_iter()
            .map(|r| StoredEntry {
                position: r.position,
                bytes: r.bytes,
            })
            .collect();
        let checkpoints = self.store.checkpoints()?;
        let anchor = self.anchor.load()?;
        let report = verify_log(
            &rows,
            &checkpoints,
            anchor.as_deref(),
            self.key.public_key(),
        );
        if !report.is_intact() {
            self.distrust_log();
        }
        Ok(report)
    }

    /// The audit entries, decoded (rows that do not open are skipped; see
    /// [`Device::verify_audit_log`] for integrity).
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>> {
        Ok(self
            .store
            .audit_rows()?
            .into_iter()
            .filter_map(|r| AuditEntry::decode(r.bytes.as_deref()?).ok())
            .collect())
    }

    /// The privacy center's data.
    pub fn privacy_summary(&self) -> Result<PrivacySummary> {
        Ok(summarize(
            &self.registry,
            &self.statuses(),
            &self.store.consent_records(),
            &self.audit_entries()?,
            self.store.stored_categories()?,
        ))
    }

    /// Everything, as one JSON-serializable document (access and portability). The export
    /// itself is logged afterwards.
    pub fn export(&self) -> Result<DeviceExport> {
        let checkpoints = self
            .store
            .checkpoints()?
            .iter()
            .filter_map(|b| SignedCheckpoint::decode(b).ok())
            .collect();
        let doc = DeviceExport {
            format: DEVICE_EXPORT_FORMAT.to_owned(),
            format_version: DEVICE_EXPORT_VERSION,
            store: self.store.export()?,
            consent_history: self.store.consent_records(),
            receipts: self.receipts(),
            audit_log: AuditExport {
                public_key: hex::encode(self.key.public_key()),
                entries: self.audit_entries()?,
                checkpoints,
                verification: self.verify_audit_log()?,
            },
            privacy_summary: self.privacy_summary()?,
        };
        let bytes = serde_json::to_vec(&doc)
            .map(|v| v.len() as u64)
            .unwrap_or(0);
        self.store.append_audit(AuditEvent::Export { bytes })?;
        self.checkpoint()?;
        Ok(doc)
    }
}

fn last_event_is_expiry(records: &[ConsentRecord], purpose: &PurposeId) -> bool {
    records
        .iter()
        .rev()
        .find(|r| &r.purpose == purpose && r.event != ConsentEventKind::Requested)
        .is_some_and(|r| r.event == ConsentEventKind::Expired)
}

/// The notice must cover the registry, and the store must not keep data longer than the
/// purposes reading it declare.
fn check_config(config: &DeviceConfig, store: &Store) -> Result<()> {
    let retention = &store.config().retention;
    for spec in config.registry.iter() {
        if config.notice.terms(&spec.id) != Some(&spec.terms) {
            return Err(Error::InvalidNotice {
                what: "the notice must carry the current terms of every registered purpose",
            });
        }
        for kind in covey_store::EventKind::ALL {
            let category = covey_store::consent::DataCategory::of(*kind);
            if !spec.terms.data_categories.contains(&category) {
                continue;
            }
            let kept_days = retention.events.get(kind).map(|d| d.as_secs() / 86_400);
            if kept_days.is_none_or(|d| d > u64::from(spec.terms.retention_days)) {
                return Err(Error::InvalidPurpose {
                    what: "the store keeps data longer than a purpose reading it declares",
                });
            }
        }
    }
    Ok(())
}

fn load_or_create_key(store: &Store, now_ms: i64, rng: &mut StoreRng) -> Result<DeviceKey> {
    if let Some(km) = store.key_material(DEVICE_KEY_NAME)? {
        let key = DeviceKey::from_seed(&km.secret)?;
        if key.public_key() != km.public_key.as_slice() {
            return Err(Error::Corrupted {
                what: "device signing key",
            });
        }
        return Ok(key);
    }
    let key = DeviceKey::generate(rng.as_mut())?;
    store.put_key_material(DEVICE_KEY_NAME, &signing_key_material(&key, now_ms))?;
    Ok(key)
}

fn signing_key_material(key: &DeviceKey, now_ms: i64) -> KeyMaterial {
    KeyMaterial {
        algorithm: "Ed25519".into(),
        public_key: key.public_key().to_vec(),
        secret: Zeroizing::new(key.seed().to_vec()),
        created_at_ms: now_ms,
    }
}
