//! The server's error type. Messages name the field or resource at fault, never member data.

use std::path::PathBuf;

/// Everything that can go wrong in `covey-server`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operator's population file could not be parsed.
    #[error("population config is not valid TOML: {0}")]
    ConfigSyntax(String),
    /// A population setting is out of range or inconsistent.
    #[error("population config: `{field}` {reason}")]
    ConfigInvalid {
        /// Dotted path of the offending setting, e.g. `secagg.cohort_min`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the operator named could not be read or written.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database rejected or failed an operation.
    #[error("storage: {0}")]
    Storage(String),
    /// A row the caller expected does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A row the caller tried to create already exists.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A conditional update lost a race: the row is no longer in the expected state.
    #[error("{what} changed concurrently (expected {expected})")]
    Conflict {
        /// The resource.
        what: &'static str,
        /// The state the caller expected.
        expected: String,
    },
    /// A member's stage message arrived after the round moved past that stage (its deadline
    /// passed or every other member had answered): the member is a dropout of this round.
    #[error(
        "stage {stage} is closed (the round is in {open}): the message came too late and this \
         member counts as a dropout of the round"
    )]
    StageClosed {
        /// The stage the message answers.
        stage: &'static str,
        /// The stage the round is in now.
        open: &'static str,
    },
    /// A persisted value does not decode (corruption or a newer format).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it does not decode.
        reason: String,
    },
    /// Vectors of different lengths were combined.
    #[error("dimension mismatch: expected {expected}, got {got}")]
    Dimension {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A round would spend more privacy budget than the population has left.
    #[error("privacy budget exhausted: round would bring ε to {would_be:.4}, budget is {budget}")]
    BudgetExhausted {
        /// ε after the round.
        would_be: f64,
        /// The population's budget.
        budget: f64,
    },
    /// The SecAgg+ protocol rejected a message or aborted.
    #[error("secure aggregation: {0}")]
    SecAgg(#[from] covey_protocol::secagg::Error),
    /// The model (catalog, blob, parameters) was rejected by covey-model.
    #[error("model: {0}")]
    Model(#[from] covey_model::Error),
    /// The privacy accountant failed.
    #[error("privacy accounting: {0}")]
    Accounting(#[from] covey_protocol::accounting::Error),
    /// A request lacks a valid device bearer token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The device may not do this (e.g. it is not a member of the round).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The population runs signed SecAgg+ sessions and the device registered no signing
    /// key (registration without one is refused, and so is check-in).
    #[error(
        "signing key required: this population runs signed SecAgg+ sessions; register the \
         device with an Ed25519 signing key (covey-sdk's Device::join does)"
    )]
    SigningKeyRequired,
    /// A request body or parameter is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The round is over; the request can never succeed.
    #[error("gone: {0}")]
    Gone(&'static str),
    /// The HTTP listener or TLS setup failed.
    #[error("server: {0}")]
    Serve(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
