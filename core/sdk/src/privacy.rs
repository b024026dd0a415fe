//! Privacy-center data: what the member consented to, what is stored, what left the device,
//! who used the data for what, and a plain-language summary generated from the registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::audit_entry::{AuditEntry, AuditEvent};
use crate::consent::{
    ConsentEventKind, ConsentRecord, ConsentState, DataCategory, PurposeId, PurposeStatus,
};
use crate::purpose::PurposeRegistry;
pub use covey_store::ledger::StoredCategory;

/// Word limit of the plain-language first layer.
pub const PLAIN_SUMMARY_MAX_WORDS: usize = 150;

/// One purpose as the privacy center shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurposeSummary {
    /// Purpose id.
    pub purpose: PurposeId,
    /// Title.
    pub title: String,
    /// Decision state.
    pub state: ConsentState,
    /// When the deciding event happened.
    pub since_ms: Option<i64>,
    /// When a given consent ends.
    pub valid_until_ms: Option<i64>,
    /// Categories it reads.
    pub data_categories: Vec<DataCategory>,
    /// What leaves the device, in plain words.
    pub egress: String,
    /// Whether anything leaves the device.
    pub leaves_device: bool,
    /// Who receives it.
    pub recipients: Vec<String>,
    /// Retention declared for the purpose, in days.
    pub retention_days: u32,
    /// W3C DPV purpose terms.
    pub dpv_purposes: Vec<String>,
    /// fideslang data use.
    pub fideslang_use: String,
}

/// One use of the member's data, aggregated from the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataUse {
    /// Purpose of the grant.
    pub purpose: PurposeId,
    /// Component that read.
    pub component: String,
    /// Number of reads.
    pub reads: u64,
    /// Rows read in total.
    pub rows: u64,
    /// Time of the last read.
    pub last_ms: i64,
}

/// One thing that left the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Egress {
    /// When.
    pub time_ms: i64,
    /// Training round.
    pub round: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// In which form.
    pub form: String,
    /// ε charged.
    pub epsilon: f64,
}

/// Local consent metrics for this device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentMetrics {
    /// Prompts recorded as shown.
    pub prompts_shown: u64,
    /// Consents given (first time or again).
    pub given: u64,
    /// Refusals.
    pub refused: u64,
    /// Withdrawals.
    pub withdrawals: u64,
    /// Renewals (refreshes after expiry or a change of terms).
    pub renewals: u64,
    /// Expiries recorded.
    pub expiries: u64,
    /// Share of decisions that were "yes" (given or renewed), 0 when no decision yet.
    pub consent_rate: f64,
}

/// Everything the privacy center shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacySummary {
    /// The first layer: plain language, at most 150 words.
    pub plain_language: String,
    /// Purposes with their state.
    pub purposes: Vec<PurposeSummary>,
    /// What is stored, by category.
    pub stored: Vec<StoredCategory>,
    /// Last local training pass.
    pub last_training_ms: Option<i64>,
    /// Last upload.
    pub last_upload_ms: Option<i64>,
    /// Total ε charged to this device.
    pub cumulative_epsilon: f64,
    /// What left the device.
    pub egress: Vec<Egress>,
    /// Who used the data, for what.
    pub data_uses: Vec<DataUse>,
    /// Local consent metrics.
    pub metrics: ConsentMetrics,
}

/// Builds the summary from its sources (all already loaded).
pub fn summarize(
    registry: &PurposeRegistry,
    statuses: &[PurposeStatus],
    records: &[ConsentRecord],
    audit: &[AuditEntry],
    stored: Vec<StoredCategory>,
) -> PrivacySummary {
    let purposes: Vec<PurposeSummary> = registry
        .iter()
        .map(|spec| {
            let status = statuses.iter().find(|s| s.purpose == spec.id);
            PurposeSummary {
                purpose: spec.id.clone(),
                title: spec.title.clone(),
                state: status.map_or(ConsentState::NotAsked, |s| s.state),
                since_ms: status.and_then(|s| s.since_ms),
                valid_until_ms: status.and_then(|s| s.valid_until_ms),
                data_categories: spec.terms.data_categories.clone(),
                egress: spec.terms.egress.plain().to_owned(),
                leaves_device: spec.terms.egress.leaves_device(),
                recipients: spec.terms.recipients.clone(),
                retention_days: spec.terms.retention_days,
                dpv_purposes: spec.dpv_purposes.clone(),
                fideslang_use: spec.fideslang_use.clone(),
            }
        })
        .collect();
    let egress = uploads(audit);
    PrivacySummary {
        plain_language: plain_language(registry, &purposes),
        last_training_ms: last_time(audit, |e| matches!(e, AuditEvent::Training { .. })),
        last_upload_ms: last_time(audit, |e| matches!(e, AuditEvent::Upload(_))),
        // A fold from +0.0: an empty f64 `sum()` is -0.0, which prints as "-0".
        cumulative_epsilon: egress.iter().fold(0.0, |acc, e| acc + e.epsilon),
        egress,
        data_uses: data_uses(audit),
        metrics: metrics(records),
        stored,
        purposes,
    }
}

fn last_time(audit: &[AuditEntry], pred: impl Fn(&AuditEvent) -> bool) -> Option<i64> {
    audit
        .iter()
        .filter(|e| pred(&e.event))
        .map(|e| e.time_ms)
        .max()
}

fn uploads(audit: &[AuditEntry]) -> Vec<Egress> {
    audit
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::Upload(u) => Some(Egress {
                time_ms: e.time_ms,
                round: u.round,
                bytes: u.bytes,
                form: format!(
                    "model update clipped to L2 norm {}, {} noise (stddev {}), {}-bit masked \
                     secure-aggregation share",
                    u.clip_norm, u.noise.mechanism, u.noise.stddev, u.noise.bits
                ),
                epsilon: u.epsilon,
            }),
            _ => None,
        })
        .collect()
}

fn data_uses(audit: &[AuditEntry]) -> Vec<DataUse> {
    let mut uses: BTreeMap<(PurposeId, String), DataUse> = BTreeMap::new();
    for e in audit {
        if let AuditEvent::Read {
            purpose,
            component,
            rows,
            ..
        } = &e.event
        {
            let u = uses
                .entry((purpose.clone(), component.clone()))
                .or_insert_with(|| DataUse {
                    purpose: purpose.clone(),
                    component: component.clone(),
                    reads: 0,
                    rows: 0,
                    last_ms: e.time_ms,
                });
            u.reads += 1;
            u.rows += rows;
            u.last_ms = u.last_ms.max(e.time_ms);
        }
    }
    uses.into_values().collect()
}

/// Local consent metrics from the ledger.
pub fn metrics(records: &[ConsentRecord]) -> ConsentMetrics {
    let count = |k: ConsentEventKind| records.iter().filter(|r| r.event == k).count() as u64;
    let (given, renewals, refused) = (
        count(ConsentEventKind::Given),
        count(ConsentEventKind::Renewed),
        count(ConsentEventKind::Refused),
    );
    let decisions = given + renewals + refused;
    ConsentMetrics {
        prompts_shown: count(ConsentEventKind::Requested),
        given,
        refused,
        withdrawals: count(ConsentEventKind::Withdrawn),
        renewals,
        expiries: count(ConsentEventKind::Expired),
        consent_rate: if decisions == 0 {
            0.0
        } else {
            (given + renewals) as f64 / decisions as f64
        },
    }
}

/// The first layer: generated from the registry and the member's choices, never hand-written
/// per app. Falls back to titles only when descriptions would exceed the word limit.
pub fn plain_language(registry: &PurposeRegistry, purposes: &[PurposeSummary]) -> String {
    let detailed = compose(registry, purposes, true);
    if word_count(&detailed) <= PLAIN_SUMMARY_MAX_WORDS {
        return detailed;
    }
    let brief = compose(registry, purposes, false);
    if word_count(&brief) <= PLAIN_SUMMARY_MAX_WORDS {
        return brief;
    }
    truncate_words(&brief, PLAIN_SUMMARY_MAX_WORDS)
}

fn compose(registry: &PurposeRegistry, purposes: &[PurposeSummary], detailed: bool) -> String {
    let mut out = String::from("Your loyalty history is stored encrypted on this phone.");
    let groups = [
        (ConsentState::Given, "You allowed"),
        (ConsentState::Refused, "You declined"),
        (ConsentState::Withdrawn, "You withdrew"),
        (ConsentState::Expired, "Your consent ended for"),
        (ConsentState::NotAsked, "Not decided yet"),
    ];
    for (state, lead) in groups {
        let items: Vec<String> = purposes
            .iter()
            .filter(|p| p.state == state)
            .map(|p| {
                let spec = registry.get(&p.purpose).ok();
                match spec.filter(|_| detailed) {
                    Some(s) => format!("{} (to {}; {})", p.title, s.description, p.egress),
                    None => p.title.clone(),
                }
            })
            .collect();
        if !items.is_empty() {
            out.push_str(&format!(" {lead}: {}.", items.join("; ")));
        }
    }
    let longest = purposes.iter().map(|p| p.retention_days).max().unwrap_or(0);
    out.push_str(&format!(
        " We keep data for at most {longest} days. You can change any choice, download or \
         delete your data at any time in the privacy center."
    ));
    out
}

fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

fn truncate_words(s: &str, n: usize) -> String {
    let mut out: Vec<&str> = s.split_whitespace().take(n.saturating_sub(1)).collect();
    out.push("…");
    out.join(" ")
}
