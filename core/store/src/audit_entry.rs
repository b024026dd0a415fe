//! Audit-log entries: what happened to member data, never the data itself.
//!
//! Each entry is one leaf of the device's RFC 6962 hash tree. Its stored bytes (a version
//! byte then JSON) are exactly the bytes that are hashed, so verification never depends on
//! re-encoding.

use serde::{Deserialize, Serialize};

use crate::consent::{ConsentEventKind, DataCategory, PurposeId};
use crate::records::ParticipationOutcome;

/// Version of the entry encoding.
pub const AUDIT_ENTRY_VERSION: u8 = 1;

/// Largest encoded entry accepted when decoding.
pub const MAX_AUDIT_ENTRY_LEN: usize = 4096;

/// Noise added to an uploaded update (distributed DP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseParams {
    /// Mechanism name, e.g. "skellam" or "discrete_gaussian".
    pub mechanism: String,
    /// This device's share of the noise standard deviation (in quantized units).
    pub stddev: f64,
    /// Quantization bits of the modular encoding.
    pub bits: u32,
}

/// One upload of a model update, as the round participation reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Training round.
    pub round: u64,
    /// Bytes that left the device.
    pub bytes: u64,
    /// L2 clipping bound applied.
    pub clip_norm: f64,
    /// Noise parameters.
    pub noise: NoiseParams,
    /// Privacy loss ε charged to this device for the round.
    pub epsilon: f64,
    /// δ of the (ε, δ) statement.
    pub delta: f64,
}

/// What an audit entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A consent event was appended to the ledger.
    Consent {
        /// Ledger record id.
        record_id: String,
        /// Purpose.
        purpose: PurposeId,
        /// Event kind.
        event: ConsentEventKind,
        /// Hex SHA-256 of the record's canonical bytes (links receipts to the log).
        record_sha256: String,
    },
    /// A new notice version was put in force.
    NoticePublished {
        /// Notice id.
        notice_id: String,
        /// Version.
        version: u32,
        /// Hex SHA-256 of its text.
        text_sha256: String,
    },
    /// Member data was read under a purpose grant.
    Read {
        /// Purpose of the grant.
        purpose: PurposeId,
        /// Reading component, e.g. "recommender", "trainer".
        component: String,
        /// Categories read.
        categories: Vec<DataCategory>,
        /// Number of rows returned.
        rows: u64,
    },
    /// The member looked at their own data (right of access), without a purpose.
    MemberAccess {
        /// What was shown, e.g. "history".
        what: String,
        /// Rows shown.
        rows: u64,
    },
    /// A local training pass ran.
    Training {
        /// Round it was for, if any.
        round: Option<u64>,
        /// Examples used.
        examples: u64,
    },
    /// A model update left the device.
    Upload(UploadRecord),
    /// The device's part in a training round ended. An `aborted` round sent nothing after
    /// the abort; `dropped_out` means the network or a deadline ended it.
    RoundEnded {
        /// Server round id.
        round: u64,
        /// How it ended.
        outcome: ParticipationOutcome,
    },
    /// Data was erased.
    Erasure {
        /// What: "all", or "purpose:<id>" for per-purpose erasure of derived state.
        scope: String,
        /// Items deleted (rows or blobs).
        items: u64,
    },
    /// The member exported their data.
    Export {
        /// Size of the export document.
        bytes: u64,
    },
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log (0-based); bound into the hashed bytes so entries cannot be
    /// reordered without changing leaves.
    pub index: u64,
    /// When, ms since the Unix epoch.
    pub time_ms: i64,
    /// What happened.
    pub event: AuditEvent,
}

/// An audit entry that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit entry is not a valid version-{AUDIT_ENTRY_VERSION} encoding")]
pub struct BadAuditEntry;

impl AuditEntry {
    /// The bytes stored and hashed: a version byte then JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![AUDIT_ENTRY_VERSION];
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// Decodes [`Self::encode`] output, bounding the length.
    pub fn decode(bytes: &[u8]) -> Result<Self, BadAuditEntry> {
        match bytes.split_first() {
            Some((&AUDIT_ENTRY_VERSION, json)) if bytes.len() <= MAX_AUDIT_ENTRY_LEN => {
                serde_json::from_slice(json).map_err(|_| BadAuditEntry)
            }
            _ => Err(BadAuditEntry),
        }
    }
}
