//! The crate's error type. Messages name the field or line at fault, never member data.

/// Everything that can go wrong in `covey-model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {field} {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A model or local-state blob could not be decoded.
    #[error("malformed {what} blob: {reason}")]
    Blob {
        /// Which kind of blob ("global model", "local state").
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A blob was written by a format version this build does not read.
    #[error("unsupported {what} format version {version}")]
    BlobVersion {
        /// Which kind of blob.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A delta or parameter vector has the wrong length for this model.
    #[error("parameter vector has length {got}, the model has {expected} parameters")]
    DeltaLength {
        /// Length the model expects.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A delta contains NaN or infinite values.
    #[error("parameter vector contains a non-finite value at index {index}")]
    NonFinite {
        /// First offending index.
        index: usize,
    },
    /// The catalog is invalid (empty, duplicate id, bad field).
    #[error("invalid catalog: {0}")]
    Catalog(&'static str),
    /// An item id is not in the model's catalog.
    #[error("item is not in the catalog")]
    UnknownItem,
    /// A line of a CSV input is malformed.
    #[error("{file} line {line}: {reason}")]
    Csv {
        /// Which input ("interactions", "items").
        file: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// A dataset cannot be evaluated (for example: no member has two interactions).
    #[error("dataset cannot be evaluated: {0}")]
    Dataset(&'static str),
    /// Reading or writing a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The tensor library failed (shape or allocation error inside a training step).
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The bounded training thread pool could not be started.
    #[error("could not start the training thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// A linear system in the user solve is singular (only with zero regularization).
    #[error("user solve failed: the system is not positive definite")]
    Singular,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn config(field: &'static str, reason: &'static str) -> Error {
    Error::Config { field, reason }
}
