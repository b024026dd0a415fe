//! The privacy center's data, audit verification and erasure reports.

use covey_sdk::audit::AuditReport as SdkAuditReport;
use covey_sdk::consent::DataCategory as SdkCategory;
use covey_sdk::privacy::PrivacySummary as SdkSummary;

use crate::consent::{ConsentState, Purpose};

/// A category of member data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DataCategory {
    /// Purchase events.
    Purchases,
    /// Points and offer redemptions.
    Redemptions,
    /// Store visits.
    Visits,
    /// Offer views and clicks.
    OfferInteractions,
    /// The private user vector and model state derived on the device.
    PersonalModel,
}

impl From<SdkCategory> for DataCategory {
    fn from(c: SdkCategory) -> Self {
        match c {
            SdkCategory::Purchases => Self::Purchases,
            SdkCategory::Redemptions => Self::Redemptions,
            SdkCategory::Visits => Self::Visits,
            SdkCategory::OfferInteractions => Self::OfferInteractions,
            SdkCategory::PersonalModel => Self::PersonalModel,
        }
    }
}

/// One purpose as the privacy center shows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PurposeSummary {
    /// The purpose.
    pub purpose: Purpose,
    /// Title, e.g. "Personal offers".
    pub title: String,
    /// Decision state.
    pub state: ConsentState,
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
    /// Declared retention, in days.
    pub retention_days: u32,
}

/// What the device stores in one category.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StoredCategory {
    /// The category.
    pub category: DataCategory,
    /// Number of items.
    pub count: u64,
    /// Oldest item time (ms since the Unix epoch).
    pub oldest_ms: Option<i64>,
    /// Newest item time.
    pub newest_ms: Option<i64>,
    /// Longest retention in this category, in days (none: until erased).
    pub retention_days: Option<u32>,
}

/// Everything the privacy center shows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PrivacySummary {
    /// The first layer: plain language, at most 150 words.
    pub plain_language: String,
    /// Every purpose with its state.
    pub purposes: Vec<PurposeSummary>,
    /// What is stored, by category.
    pub stored: Vec<StoredCategory>,
    /// Last local training pass.
    pub last_training_ms: Option<i64>,
    /// Last upload.
    pub last_upload_ms: Option<i64>,
    /// Total privacy loss (ε) charged to this device.
    pub cumulative_epsilon: f64,
    /// Number of uploads that left the device.
    pub uploads: u64,
    /// The full summary (egress list, data uses, consent metrics) as JSON.
    pub json: String,
}

impl From<&SdkSummary> for PrivacySummary {
    fn from(s: &SdkSummary) -> Self {
        let purposes = s
            .purposes
            .iter()
            .filter_map(|p| {
                Some(PurposeSummary {
                    purpose: Purpose::from_id(&p.purpose)?,
                    title: p.title.clone(),
                    state: p.state.into(),
                    valid_until_ms: p.valid_until_ms,
                    data_categories: p.data_categories.iter().map(|&c| c.into()).collect(),
                    egress: p.egress.clone(),
                    leaves_device: p.leaves_device,
                    recipients: p.recipients.clone(),
                    retention_days: p.retention_days,
                })
            })
            .collect();
        let stored = s
            .stored
            .iter()
            .map(|c| StoredCategory {
                category: c.category.into(),
                count: c.count,
                oldest_ms: c.oldest_ms,
                newest_ms: c.newest_ms,
                retention_days: c.retention_days,
            })
            .collect();
        Self {
            plain_language: s.plain_language.clone(),
            purposes,
            stored,
            last_training_ms: s.last_training_ms,
            last_upload_ms: s.last_upload_ms,
            cumulative_epsilon: s.cumulative_epsilon,
            uploads: s.egress.len() as u64,
            json: serde_json::to_string(s).unwrap_or_default(),
        }
    }
}

/// The result of verifying the audit log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditReport {
    /// No violation was found: entries, checkpoints and the rollback anchor agree.
    pub intact: bool,
    /// Entries in the log.
    pub log_size: u64,
    /// Hex Merkle root over all entries.
    pub root: String,
    /// Entries covered by the latest signed checkpoint.
    pub checkpoint_size: u64,
    /// Entries covered by the anchor kept outside the database.
    pub anchored_size: Option<u64>,
    /// Each violation as a JSON object (`{"violation": "rolled_back", ...}`); positions and
    /// sizes only, no member data.
    pub violations: Vec<String>,
}

impl From<&SdkAuditReport> for AuditReport {
    fn from(r: &SdkAuditReport) -> Self {
        Self {
            intact: r.is_intact(),
            log_size: r.log_size,
            root: r.root.clone(),
            checkpoint_size: r.checkpoint_size,
            anchored_size: r.anchored_size,
            violations: r
                .violations
                .iter()
                .map(|v| serde_json::to_string(v).unwrap_or_default())
                .collect(),
        }
    }
}

/// What `erase_all` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct EraseReport {
    /// Rows deleted across all sealed tables.
    pub rows_deleted: u64,
    /// Generation of the fresh data key the empty store continues with.
    pub new_generation: i64,
}

impl From<covey_store::EraseReport> for EraseReport {
    fn from(r: covey_store::EraseReport) -> Self {
        Self {
            rows_deleted: r.rows_deleted,
            new_generation: r.new_generation,
        }
    }
}
