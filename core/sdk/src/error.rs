//! Errors of the device facade.

use covey_store::grant::GrantError;

use crate::consent::PurposeId;

/// Everything that can go wrong in `covey-sdk`. Messages name what failed, never member data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A purpose declaration is incomplete or malformed.
    #[error("invalid purpose declaration: {what}")]
    InvalidPurpose {
        /// What is wrong.
        what: &'static str,
    },
    /// A purpose with this id is already registered.
    #[error("a purpose with this id is already registered")]
    DuplicatePurpose,
    /// The purpose is not in the registry (or not in the notice in force).
    #[error("unknown purpose")]
    UnknownPurpose,
    /// A notice is malformed.
    #[error("invalid notice: {what}")]
    InvalidNotice {
        /// What is wrong.
        what: &'static str,
    },
    /// A consent decision referred to a notice version that is not the one in force.
    #[error("notice version {given} is not the version in force ({current})")]
    StaleNotice {
        /// Version the caller showed.
        given: u32,
        /// Version in force.
        current: u32,
    },
    /// Stored data failed to decode.
    #[error("stored {what} is corrupted")]
    Corrupted {
        /// What failed to decode.
        what: &'static str,
    },
    /// A checkpoint is malformed or its signature does not verify.
    #[error("bad audit checkpoint: {what}")]
    BadCheckpoint {
        /// What is wrong.
        what: &'static str,
    },
    /// A receipt is malformed, forged or does not match its proof.
    #[error("invalid consent receipt: {what}")]
    InvalidReceipt {
        /// What is wrong.
        what: &'static str,
    },
    /// A file outside the database (the audit anchor) could not be read or written.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No consent event with this record id is in the audit log.
    #[error("no consent event with this record id is in the audit log")]
    UnknownRecord,
    /// An upload report has a non-finite or negative ε or clip norm.
    #[error("upload report has a non-finite or negative epsilon or clip norm")]
    InvalidUpload,
    /// The store failed (I/O, corruption, wrong key); see the store's error.
    #[error(transparent)]
    Store(covey_store::Error),
    /// The purpose has no valid consent for the notice in force.
    #[error("no valid consent for purpose {purpose}")]
    ConsentRequired {
        /// The purpose.
        purpose: PurposeId,
    },
    /// Consent was withdrawn (or otherwise ended) while an operation was running.
    #[error("consent for purpose {purpose} was withdrawn")]
    ConsentWithdrawn {
        /// The purpose.
        purpose: PurposeId,
    },
    /// The device may not take part in a round now; the reason is named.
    #[error("not eligible: {0}")]
    NotEligible(crate::participate::Ineligible),
    /// Talking to the aggregation server failed.
    #[error("network: {0}")]
    Network(crate::participate::NetworkError),
    /// The host cancelled the operation (nothing more was sent).
    #[error("cancelled")]
    Cancelled,
    /// The device checked in but the server did not select it for the round's cohort
    /// (nothing was sent).
    #[error("not selected for the round's cohort")]
    NotSelected,
    /// Round participation needs a server registration first (`Device::join`).
    #[error("not registered with an aggregation server")]
    NotRegistered,
    /// The aggregation server's messages failed a signed session's integrity checks (a
    /// substituted key, a survivor list other than the one signed, a downgrade to an
    /// unsigned session): the device stopped the round and sent nothing more.
    #[error("round stopped, the server's messages were tampered with: {0}")]
    RoundTampered(crate::participate::Tampering),
    /// The device's message for a stage reached the server after that stage's deadline: the
    /// round went on without this device (the server counts it as dropped out, and its
    /// update is not in the sum). Nothing more was sent; later rounds are unaffected.
    #[error(
        "the round went on without this device: its {stage} message arrived after the stage closed"
    )]
    RoundMissed {
        /// The stage whose deadline passed (`advertise_keys`, `share_keys`, `masked_input`,
        /// `consistency_check` or `unmask`).
        stage: &'static str,
    },
    /// A protocol step (DP encoding, secure aggregation, accounting) failed.
    #[error("{what}: {reason}")]
    Protocol {
        /// Which step.
        what: &'static str,
        /// Why (shapes and parameters, never values).
        reason: String,
    },
    /// Consent reached the end of its validity while an operation was running.
    #[error("consent for purpose {purpose} expired")]
    ConsentExpired {
        /// The purpose.
        purpose: PurposeId,
    },
    /// No global model is installed yet ([`crate::Device::install_model`]).
    #[error("no global model is installed")]
    NoModel,
    /// A model older than the installed one was offered.
    #[error("model version {offered} is older than the installed version {installed}")]
    StaleModel {
        /// Version installed.
        installed: u64,
        /// Version offered.
        offered: u64,
    },
    /// The recommender failed (malformed model blob, unknown item, bad configuration).
    #[error(transparent)]
    Model(#[from] covey_model::Error),
}

impl From<covey_store::Error> for Error {
    fn from(e: covey_store::Error) -> Self {
        match e {
            covey_store::Error::Consent(g) => g.into(),
            other => Error::Store(other),
        }
    }
}

impl From<GrantError> for Error {
    fn from(g: GrantError) -> Self {
        match g {
            // Consent for a category the purpose never declared was never given.
            GrantError::ConsentRequired(purpose)
            | GrantError::CategoryNotDeclared { purpose, .. } => Error::ConsentRequired { purpose },
            GrantError::Withdrawn(purpose) => Error::ConsentWithdrawn { purpose },
            GrantError::Expired(purpose) => Error::ConsentExpired { purpose },
        }
    }
}

/// Result with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
