//! Consent as the host sees it: purposes, their states, prompts, decisions and receipts.

use covey_sdk::consent::{ConsentEventKind as SdkEventKind, ConsentState as SdkState, PurposeId};
use covey_sdk::notice::{Prompt, PromptReason as SdkPromptReason};
use covey_sdk::receipt::ConsentReceipt;

/// The purposes a member decides about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Purpose {
    /// On-device personalized offers from the member's history.
    Personalization,
    /// Taking part in training the shared model (noise-protected, securely aggregated
    /// updates leave the device).
    FederatedTraining,
    /// Usage analytics.
    Analytics,
}

impl Purpose {
    /// The SDK's purpose id.
    pub fn id(self) -> PurposeId {
        match self {
            Purpose::Personalization => PurposeId::personalization(),
            Purpose::FederatedTraining => PurposeId::federated_training(),
            Purpose::Analytics => PurposeId::analytics(),
        }
    }

    /// The purpose with SDK id `id`, if it is one of the built-ins.
    pub fn from_id(id: &PurposeId) -> Option<Self> {
        [
            Purpose::Personalization,
            Purpose::FederatedTraining,
            Purpose::Analytics,
        ]
        .into_iter()
        .find(|p| &p.id() == id)
    }
}

/// The member's decision state for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentState {
    /// No decision yet.
    NotAsked,
    /// Given and within its validity period.
    Given,
    /// Declined.
    Refused,
    /// Taken back.
    Withdrawn,
    /// The validity period ended.
    Expired,
}

impl From<SdkState> for ConsentState {
    fn from(s: SdkState) -> Self {
        match s {
            SdkState::NotAsked => Self::NotAsked,
            SdkState::Given => Self::Given,
            SdkState::Refused => Self::Refused,
            SdkState::Withdrawn => Self::Withdrawn,
            SdkState::Expired => Self::Expired,
        }
    }
}

/// The kind of a consent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentEventKind {
    /// A prompt was shown.
    Requested,
    /// The member agreed.
    Given,
    /// The member declined.
    Refused,
    /// The member took back an earlier consent.
    Withdrawn,
    /// A consent reached the end of its validity period.
    Expired,
    /// The member re-confirmed.
    Renewed,
}

impl From<SdkEventKind> for ConsentEventKind {
    fn from(k: SdkEventKind) -> Self {
        match k {
            SdkEventKind::Requested => Self::Requested,
            SdkEventKind::Given => Self::Given,
            SdkEventKind::Refused => Self::Refused,
            SdkEventKind::Withdrawn => Self::Withdrawn,
            SdkEventKind::Expired => Self::Expired,
            SdkEventKind::Renewed => Self::Renewed,
        }
    }
}

/// The consent status of one purpose.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PurposeStatus {
    /// The purpose.
    pub purpose: Purpose,
    /// Decision state.
    pub state: ConsentState,
    /// When the deciding event happened (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    /// When a given consent ends.
    pub valid_until_ms: Option<i64>,
    /// Notice version of the deciding event.
    pub notice_version: Option<u32>,
    /// A prompt was shown after the last decision and is unanswered.
    pub pending_request: bool,
    /// True iff the consent is given, unexpired, and was given for the current terms: the
    /// SDK uses the member's data for this purpose only then.
    pub valid_for_processing: bool,
}

impl PurposeStatus {
    /// Converts an SDK status; `None` for a purpose that is not a built-in.
    pub fn from_sdk(s: &covey_sdk::consent::PurposeStatus) -> Option<Self> {
        Some(Self {
            purpose: Purpose::from_id(&s.purpose)?,
            state: s.state.into(),
            since_ms: s.since_ms,
            valid_until_ms: s.valid_until_ms,
            notice_version: s.notice_version,
            pending_request: s.pending_request,
            valid_for_processing: s.valid_for_processing,
        })
    }
}

/// Why the app should prompt for a purpose.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PromptReason {
    /// The member has never decided.
    NeverAsked,
    /// Consent was given under terms that materially changed since.
    TermsChanged,
    /// The consent's validity period ended.
    Expired,
    /// The consent expires soon.
    ExpiresSoon {
        /// End of validity, ms since the Unix epoch.
        valid_until_ms: i64,
    },
}

/// A purpose the app should (re-)prompt for now.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsentPrompt {
    /// The purpose.
    pub purpose: Purpose,
    /// Why.
    pub reason: PromptReason,
}

impl ConsentPrompt {
    /// Converts an SDK prompt; `None` for a purpose that is not a built-in.
    pub fn from_sdk(p: &Prompt) -> Option<Self> {
        let reason = match &p.reason {
            SdkPromptReason::NeverAsked => PromptReason::NeverAsked,
            SdkPromptReason::TermsChanged { .. } => PromptReason::TermsChanged,
            SdkPromptReason::Expired => PromptReason::Expired,
            SdkPromptReason::ExpiresSoon { valid_until_ms } => PromptReason::ExpiresSoon {
                valid_until_ms: *valid_until_ms,
            },
        };
        Some(Self {
            purpose: Purpose::from_id(&p.purpose)?,
            reason,
        })
    }
}

/// A signed consent receipt: the fields an app lists, plus the full signed JSON document the
/// member can keep and anyone can verify.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    /// Receipt id (one per consent event).
    pub receipt_id: String,
    /// Purpose id as recorded (e.g. "personalization").
    pub purpose: String,
    /// The event.
    pub event: ConsentEventKind,
    /// When it happened, ms since the Unix epoch.
    pub event_time_ms: i64,
    /// Version of the notice the member was shown.
    pub notice_version: u32,
    /// The signed receipt (ISO/IEC TS 27560 record, Ed25519 signature) as JSON.
    pub json: String,
}

impl From<&ConsentReceipt> for Receipt {
    fn from(r: &ConsentReceipt) -> Self {
        let record = &r.body.record;
        Self {
            receipt_id: r.body.receipt_id.clone(),
            purpose: record.purpose.as_str().to_owned(),
            event: record.event.into(),
            event_time_ms: record.event_time_ms,
            notice_version: record.notice.version,
            json: r.to_json(),
        }
    }
}

/// The outcome of a consent decision.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Decision {
    /// The signed receipt of the event.
    pub receipt: Receipt,
    /// The purpose's status afterwards.
    pub status: PurposeStatus,
    /// Derived items (personal model, pending updates) erased because consent ended.
    pub erased_items: u64,
}
