//! Building consent records from the registry, the notice in force and the controller's
//! configuration.

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::consent::{ConsentEventKind, ConsentRecord, Controller, Mechanism, RECORD_VERSION};
use crate::notice::Notice;
use crate::purpose::PurposeSpec;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The fields of a consent record that come from the host app's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordContext {
    /// Pseudonymous subject reference (e.g. HMAC of the member id under a tenant key);
    /// never the member id itself.
    pub subject_ref: String,
    /// The controller.
    pub controller: Controller,
    /// Jurisdiction, e.g. "EU-GDPR".
    pub jurisdiction: String,
    /// How to withdraw, e.g. "app://privacy-center".
    pub withdrawal_method: String,
}

/// A new record for `spec` under `notice`: the event `kind` at `now_ms` through `mechanism`.
/// Given and renewed consents get the purpose's validity period.
pub fn new_record(
    ctx: &RecordContext,
    notice: &Notice,
    spec: &PurposeSpec,
    kind: ConsentEventKind,
    mechanism: Mechanism,
    now_ms: i64,
    rng: &mut (impl RngCore + ?Sized),
) -> ConsentRecord {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let terms = notice
        .terms(&spec.id)
        .cloned()
        .unwrap_or_else(|| spec.terms.clone());
    let grants = matches!(kind, ConsentEventKind::Given | ConsentEventKind::Renewed);
    let valid_until_ms = spec
        .validity_days
        .filter(|_| grants)
        .map(|days| now_ms.saturating_add(i64::from(days) * DAY_MS));
    ConsentRecord {
        schema_version: RECORD_VERSION,
        record_id: hex::encode(id),
        subject_ref: ctx.subject_ref.clone(),
        controller: ctx.controller.clone(),
        jurisdiction: ctx.jurisdiction.clone(),
        language: notice.language.clone(),
        notice: notice.reference(),
        purpose: spec.id.clone(),
        legal_basis: spec.legal_basis,
        terms_sha256: hex::encode(terms.fingerprint()),
        terms,
        processing_locus: spec.processing_locus.clone(),
        withdrawal_method: ctx.withdrawal_method.clone(),
        event: kind,
        event_time_ms: now_ms,
        valid_until_ms,
        mechanism,
        sdk_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}
