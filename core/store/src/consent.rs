//! Consent records (ISO/IEC TS 27560 fields) and the consent state derived from them.
//!
//! The ledger is append-only: the current state of a purpose is never stored, it is computed
//! by [`derive_status`] from the purpose's events in ledger order. That keeps one source of
//! truth (the sealed events, which are also audit-log leaves) and makes the state rules a
//! pure function that property tests can check against an oracle.

use std::fmt;

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// Version of the consent-record format; persisted and signed with every record.
pub const RECORD_VERSION: u8 = 1;

/// Largest encoded consent record accepted when decoding.
pub const MAX_RECORD_LEN: usize = 16 * 1024;

/// Longest purpose identifier accepted.
pub const MAX_PURPOSE_ID_LEN: usize = 48;

/// Id of the built-in purpose: recommendations computed on the device from the history.
pub const PERSONALIZATION: &str = "personalization";
/// Id of the built-in purpose: contributing noised, masked updates to the shared model.
pub const FEDERATED_TRAINING: &str = "federated_training";
/// Id of the built-in purpose: differentially private aggregate metrics.
pub const ANALYTICS: &str = "analytics";

/// A purpose identifier: 1 to 48 characters of `a-z`, `0-9` and `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PurposeId(pub(crate) String);

/// A purpose identifier that is not of the accepted shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purpose ids are 1-48 chars of a-z, 0-9, _ starting with a letter")]
pub struct InvalidPurposeId;

impl PurposeId {
    /// Validates and wraps a purpose identifier.
    pub fn new(id: &str) -> Result<Self, InvalidPurposeId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_PURPOSE_ID_LEN
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidPurposeId)
        }
    }

    /// The built-in on-device personalization purpose.
    pub fn personalization() -> Self {
        Self(PERSONALIZATION.to_owned())
    }

    /// The built-in federated-training purpose.
    pub fn federated_training() -> Self {
        Self(FEDERATED_TRAINING.to_owned())
    }

    /// The built-in analytics purpose.
    pub fn analytics() -> Self {
        Self(ANALYTICS.to_owned())
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PurposeId {
    type Error = InvalidPurposeId;
    fn try_from(s: String) -> Result<Self, InvalidPurposeId> {
        Self::new(&s)
    }
}

impl From<PurposeId> for String {
    fn from(p: PurposeId) -> String {
        p.0
    }
}

impl fmt::Display for PurposeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A category of member data that a purpose reads and the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// Purchase events (items, quantities, amounts).
    Purchases,
    /// Points and offer redemptions.
    Redemptions,
    /// Store visits.
    Visits,
    /// Offer views and clicks in the app.
    OfferInteractions,
    /// State derived on the device from the above: the private user vector and model state.
    PersonalModel,
}

impl DataCategory {
    /// Every category, in display order.
    pub const ALL: [DataCategory; 5] = [
        Self::Purchases,
        Self::Redemptions,
        Self::Visits,
        Self::OfferInteractions,
        Self::PersonalModel,
    ];

    /// The category an event of `kind` belongs to.
    pub fn of(kind: EventKind) -> Self {
        match kind {
            EventKind::Purchase => Self::Purchases,
            EventKind::Redemption => Self::Redemptions,
            EventKind::Visit => Self::Visits,
            EventKind::OfferView | EventKind::OfferClick => Self::OfferInteractions,
        }
    }

    /// Plain-language name for privacy summaries.
    pub fn plain_name(self) -> &'static str {
        match self {
            Self::Purchases => "purchases",
            Self::Redemptions => "reward redemptions",
            Self::Visits => "store visits",
            Self::OfferInteractions => "offers you viewed or opened",
            Self::PersonalModel => "your personal recommendation profile",
        }
    }

    /// The W3C DPV personal-data term (dpv-pd) for the category.
    pub fn dpv(self) -> &'static str {
        match self {
            Self::Purchases | Self::Redemptions => "dpv-pd:PurchasesAndSpendingHabit",
            Self::Visits => "dpv-pd:Location",
            Self::OfferInteractions => "dpv-pd:BrowsingBehaviour",
            Self::PersonalModel => "dpv-pd:Profile",
        }
    }

    /// The fideslang data category for the category.
    pub fn fideslang(self) -> &'static str {
        match self {
            Self::Purchases | Self::Redemptions => "user.behavior.purchase_history",
            Self::Visits => "user.location.imprecise",
            Self::OfferInteractions => "user.behavior.browsing_history",
            Self::PersonalModel => "user.derived.inferred",
        }
    }
}

/// Whether, and in what form, data used for a purpose leaves the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum Egress {
    /// Nothing derived from member data leaves the device.
    StaysOnDevice,
    /// A clipped, noised (differential privacy), masked model update that the server can only
    /// read as part of a secure sum over many members.
    NoisedMaskedModelUpdate,
    /// Differentially private aggregate statistics only.
    DpAggregateStatistics,
    /// A host-declared form, described in plain language.
    Other {
        /// What leaves the device, in the words shown to the member.
        description: String,
    },
}

impl Egress {
    /// True when anything at all leaves the device.
    pub fn leaves_device(&self) -> bool {
        !matches!(self, Self::StaysOnDevice)
    }

    /// Plain-language description for privacy summaries.
    pub fn plain(&self) -> &str {
        match self {
            Self::StaysOnDevice => "nothing leaves your phone",
            Self::NoisedMaskedModelUpdate => {
                "only a scrambled, noise-protected model update leaves your phone, \
                 readable only when summed with many other members"
            }
            Self::DpAggregateStatistics => "only noise-protected totals leave your phone",
            Self::Other { description } => description,
        }
    }
}

/// The legal basis a purpose relies on. Covey still requires a recorded consent before it
/// issues a grant for any purpose: the basis is declared for the record and the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// GDPR Art. 6(1)(a) consent.
    Consent,
    /// GDPR Art. 9(2)(a) / Art. 22(2)(c) explicit consent.
    ExplicitConsent,
}

impl LegalBasis {
    /// The W3C DPV term for the basis.
    pub fn dpv(self) -> &'static str {
        match self {
            Self::Consent => "dpv:Consent",
            Self::ExplicitConsent => "dpv:ExplicitlyExpressedConsent",
        }
    }
}

/// Whether the purpose is needed for the service the member asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Necessity {
    /// The app works without it; refusing costs the member nothing (no penalty).
    Optional,
    /// Needed for a feature the member asked for (still consent-gated in Covey).
    RequiredForFeature,
}

/// The material terms of a purpose: what a member agrees to. A change to any of these
/// re-prompts; a change only to the wording of the notice does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Terms {
    /// Categories read for the purpose, sorted.
    pub data_categories: Vec<DataCategory>,
    /// Who receives anything that leaves the device, sorted.
    pub recipients: Vec<String>,
    /// Whether and how data leaves the device.
    pub egress: Egress,
    /// Days data used for the purpose is kept.
    pub retention_days: u32,
}

impl Terms {
    /// Builds terms in canonical order (sorted, deduplicated lists).
    pub fn new(
        mut data_categories: Vec<DataCategory>,
        mut recipients: Vec<String>,
        egress: Egress,
        retention_days: u32,
    ) -> Self {
        data_categories.sort();
        data_categories.dedup();
        recipients.sort();
        recipients.dedup();
        Self {
            data_categories,
            recipients,
            egress,
            retention_days,
        }
    }

    /// SHA-256 fingerprint of the canonical encoding; equal terms have equal fingerprints.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut bytes = vec![RECORD_VERSION];
        // Serializing a struct of sorted vectors and enums is deterministic.
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, &bytes).as_ref());
        out
    }

    /// Names of the material terms that differ between `self` (old) and `new`.
    pub fn changes(&self, new: &Terms) -> Vec<TermChange> {
        let mut out = Vec::new();
        if self.data_categories != new.data_categories {
            out.push(TermChange::DataCategories);
        }
        if self.recipients != new.recipients {
            out.push(TermChange::Recipients);
        }
        if self.egress != new.egress {
            out.push(TermChange::Egress);
        }
        if self.retention_days != new.retention_days {
            out.push(TermChange::Retention);
        }
        out
    }
}

/// A material term that changed between two notice versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermChange {
    /// The purpose reads different data categories.
    DataCategories,
    /// Different recipients.
    Recipients,
    /// Different egress.
    Egress,
    /// Different retention.
    Retention,
}

/// The notice a consent event refers to: which text the member was shown.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NoticeRef {
    /// Notice (policy) identifier.
    pub id: String,
    /// Notice version.
    pub version: u32,
    /// Hex SHA-256 of the exact text shown.
    pub text_sha256: String,
}

/// The kind of a consent event (ISO/IEC TS 27560 event state; DPV consent status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentEventKind {
    /// The member was asked (prompt shown); does not change the decision.
    Requested,
    /// The member agreed.
    Given,
    /// The member declined.
    Refused,
    /// The member took back an earlier consent.
    Withdrawn,
    /// A consent reached the end of its validity period.
    Expired,
    /// The member re-confirmed consent (new validity period or new terms).
    Renewed,
}

impl ConsentEventKind {
    /// The W3C DPV consent-status term.
    pub fn dpv(self) -> &'static str {
        match self {
            Self::Requested => "dpv:ConsentRequested",
            Self::Given => "dpv:ConsentGiven",
            Self::Refused => "dpv:ConsentRefused",
            Self::Withdrawn => "dpv:ConsentWithdrawn",
            Self::Expired => "dpv:ConsentExpired",
            Self::Renewed => "dpv:RenewedConsentGiven",
        }
    }

    /// Lower-case name as used in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Given => "given",
            Self::Refused => "refused",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::Renewed => "renewed",
        }
    }
}

/// Who or what caused an event, and through which surface.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mechanism {
    /// The UI surface or API route (e.g. "onboarding_sheet", "privacy_center", "cli").
    pub ui_surface: String,
    /// The source of the signal.
    pub source: SignalSource,
}

/// Where a consent signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalSource {
    /// The member acted.
    Member,
    /// The SDK recorded the end of a validity period.
    Expiry,
    /// The host app relayed a signal (e.g. an OS-level or account-level opt-out).
    Host,
}

/// The controller on whose behalf consent is collected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Controller {
    /// Legal name.
    pub name: String,
    /// Contact (URL or e-mail) for privacy requests.
    pub contact: String,
}

/// One consent event with the fields of ISO/IEC TS 27560 (as read by the DPVCG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecord {
    /// Format version ([`RECORD_VERSION`]).
    pub schema_version: u8,
    /// Random 128-bit record identifier, hex.
    pub record_id: String,
    /// Pseudonymous reference to the member (never the member id itself).
    pub subject_ref: String,
    /// The controller.
    pub controller: Controller,
    /// Jurisdiction(s) whose rules applied, e.g. "EU-GDPR".
    pub jurisdiction: String,
    /// BCP-47 language of the notice shown.
    pub language: String,
    /// The notice shown.
    pub notice: NoticeRef,
    /// The purpose consented to.
    pub purpose: PurposeId,
    /// Legal basis.
    pub legal_basis: LegalBasis,
    /// The material terms agreed to (categories, recipients, egress, retention).
    pub terms: Terms,
    /// Hex SHA-256 of `terms` ([`Terms::fingerprint`]).
    pub terms_sha256: String,
    /// Where processing happens: "on_device" or "on_device_then_secure_aggregation" etc.
    pub processing_locus: String,
    /// How the member withdraws (e.g. the privacy-center route).
    pub withdrawal_method: String,
    /// What happened.
    pub event: ConsentEventKind,
    /// When, milliseconds since the Unix epoch (UTC), from the injectable clock.
    pub event_time_ms: i64,
    /// End of validity of a given/renewed consent (exclusive), if it expires.
    pub valid_until_ms: Option<i64>,
    /// Surface and source of the signal.
    pub mechanism: Mechanism,
    /// SDK version that wrote the record.
    pub sdk_version: String,
}

impl ConsentRecord {
    /// Canonical bytes of the record (a version byte, then its JSON).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![RECORD_VERSION];
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        bytes
    }

    /// Decodes [`Self::canonical_bytes`] (bounded); `None` if it is not a valid record.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&RECORD_VERSION, json)) if bytes.len() <= MAX_RECORD_LEN => {
                serde_json::from_slice(json).ok()
            }
            _ => None,
        }
    }

    /// SHA-256 of [`Self::canonical_bytes`].
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, &self.canonical_bytes()).as_ref());
        out
    }
}

/// The decision state of one purpose, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// No decision has been recorded.
    NotAsked,
    /// Consent is given (possibly renewed) and within its validity period.
    Given,
    /// The member declined.
    Refused,
    /// The member withdrew.
    Withdrawn,
    /// The consent's validity period ended.
    Expired,
}

impl ConsentState {
    /// Lower-case name as used in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAsked => "not_asked",
            Self::Given => "given",
            Self::Refused => "refused",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
        }
    }
}

/// The derived consent status of one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeStatus {
    /// The purpose.
    pub purpose: PurposeId,
    /// Decision state.
    pub state: ConsentState,
    /// Time of the deciding event (or of the derived expiry).
    pub since_ms: Option<i64>,
    /// End of validity of the current consent.
    pub valid_until_ms: Option<i64>,
    /// The terms in force when the deciding event was recorded.
    pub terms: Option<Terms>,
    /// Notice version of the deciding event.
    pub notice_version: Option<u32>,
    /// A prompt was shown after the last decision and is unanswered.
    pub pending_request: bool,
    /// True iff the consent is given, unexpired, and was given for the current terms.
    pub valid_for_processing: bool,
}

/// Derives the status of `purpose` from its events (in ledger order) at time `now_ms`,
/// against the terms currently in force (`None`: the purpose is not in the current notice).
///
/// Rules: the last decisive event (given, renewed, refused, withdrawn, expired) decides;
/// `requested` never changes a decision; a given consent past `valid_until_ms` is expired;
/// a given consent is valid for processing only if its terms equal the current ones.
pub fn derive_status<'a>(
    purpose: &PurposeId,
    events: impl IntoIterator<Item = &'a ConsentRecord>,
    current_terms: Option<&Terms>,
    now_ms: i64,
) -> PurposeStatus {
    let mut status = PurposeStatus {
        purpose: purpose.clone(),
        state: ConsentState::NotAsked,
        since_ms: None,
        valid_until_ms: None,
        terms: None,
        notice_version: None,
        pending_request: false,
        valid_for_processing: false,
    };
    for e in events.into_iter().filter(|e| &e.purpose == purpose) {
        let state = match e.event {
            ConsentEventKind::Requested => {
                status.pending_request = true;
                continue;
            }
            ConsentEventKind::Given | ConsentEventKind::Renewed => ConsentState::Given,
            ConsentEventKind::Refused => ConsentState::Refused,
            ConsentEventKind::Withdrawn => ConsentState::Withdrawn,
            ConsentEventKind::Expired => ConsentState::Expired,
        };
        status.state = state;
        status.since_ms = Some(e.event_time_ms);
        status.valid_until_ms = e.valid_until_ms.filter(|_| state == ConsentState::Given);
        status.terms = Some(e.terms.clone());
        status.notice_version = Some(e.notice.version);
        status.pending_request = false;
    }
    if let (ConsentState::Given, Some(until)) = (status.state, status.valid_until_ms)
        && now_ms >= until
    {
        status.state = ConsentState::Expired;
        status.since_ms = Some(until);
    }
    status.valid_for_processing = status.state == ConsentState::Given
        && current_terms.is_some()
        && status.terms.as_ref() == current_terms;
    status
}
