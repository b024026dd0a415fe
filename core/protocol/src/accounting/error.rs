//! Typed errors of the privacy accountants.

/// What can go wrong when accounting for privacy. Messages name the offending parameter and
/// its value; accountants never see member data, so nothing personal can leak through here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A numeric parameter is outside its valid range (or not finite).
    #[error("invalid parameter `{name}` = {value}: {expected}")]
    InvalidParameter {
        /// The parameter's name as in the API.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// This accountant cannot bound this mechanism or sampling scheme; another one can.
    #[error("the {accountant} accountant does not support {what}; use {instead}")]
    Unsupported {
        /// The accountant asked.
        accountant: &'static str,
        /// The event it cannot handle.
        what: &'static str,
        /// The alternative to use.
        instead: &'static str,
    },
    /// Calibration found no noise multiplier reaching the target within the search range.
    #[error("no noise multiplier up to {max_searched} reaches epsilon {target_epsilon}")]
    CalibrationFailed {
        /// The target epsilon.
        target_epsilon: f64,
        /// The largest noise multiplier tried.
        max_searched: f64,
    },
    /// The privacy loss distribution would need more grid points than the accountant allows
    /// (a coarser discretization or fewer compositions fixes it).
    #[error("privacy loss distribution needs {needed} grid points, more than the limit {limit}")]
    DistributionTooLarge {
        /// Grid points needed.
        needed: u64,
        /// The configured limit.
        limit: u64,
    },
}

/// Result of the accounting module.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) use crate::param::{check_positive, check_range};

crate::param::impl_from_invalid_parameter!(Error);
