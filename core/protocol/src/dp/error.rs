//! The one error type of the DP encoding module.
//!
//! Variants carry parameter names, counts and limits, never coordinates of a member's update,
//! so an error can be logged without leaking what a member contributed.

/// What went wrong while planning, encoding or decoding a differentially private update.
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
    /// No bit width up to 32 holds the cohort's sum with the requested headroom: the plan is
    /// refused rather than allowed to wrap.
    #[error(
        "the sum of {members} members needs {needed_bits:.1} bits for {sigmas} standard deviations of headroom, more than the {max_bits} available"
    )]
    SumDoesNotFit {
        /// Contributing members the plan must hold.
        members: u32,
        /// Bits the sum needs (fractional: log2 of the range).
        needed_bits: f64,
        /// The largest bit width allowed.
        max_bits: u32,
        /// The requested headroom in standard deviations.
        sigmas: f64,
    },
    /// The plan was written by an unknown format version.
    #[error("unsupported DP plan version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the plan.
        found: u8,
        /// The version this build understands.
        supported: u8,
    },
    /// A plan's fields contradict each other (e.g. a padded dimension that is not the next
    /// power of two of the dimension).
    #[error("inconsistent DP plan: {0}")]
    InconsistentPlan(&'static str),
    /// A vector does not have the length the plan fixes.
    #[error("{what} has {got} coordinates, the plan expects {expected}")]
    Length {
        /// Which vector.
        what: &'static str,
        /// The plan's length.
        expected: usize,
        /// What the caller passed.
        got: usize,
    },
    /// A member's update contains a NaN or an infinity.
    #[error("update coordinate {index} is not a finite number")]
    NonFinite {
        /// Position of the first offending coordinate.
        index: usize,
    },
    /// The summed vector's bit width is not the plan's.
    #[error("sum uses {got} bits, the plan uses {expected}")]
    BitsMismatch {
        /// The plan's bit width.
        expected: u32,
        /// What the caller passed.
        got: u32,
    },
    /// A summed coordinate is not below 2^bits.
    #[error("sum coordinate {index} does not fit in {bits} bits")]
    ValueOutOfRange {
        /// Position of the first offending coordinate.
        index: usize,
        /// The bit width.
        bits: u32,
    },
    /// Fewer members survived than the plan's noise was provisioned for: their sum carries
    /// less noise than promised, so it must not be released.
    #[error("{survivors} survivors, but the noise was sized for at least {min_survivors}")]
    TooFewSurvivors {
        /// Members whose updates are in the sum.
        survivors: u32,
        /// The plan's minimum.
        min_survivors: u32,
    },
    /// More survivors than members invited: the count is wrong.
    #[error("{survivors} survivors out of a cohort of {cohort}")]
    TooManySurvivors {
        /// Members whose updates are in the sum.
        survivors: u32,
        /// Members the plan invited.
        cohort: u32,
    },
    /// Conditional rounding kept exceeding the norm bound (probability below 2^-40 for a
    /// valid plan; indicates an update crafted against the public rotation or a corrupt plan).
    #[error("stochastic rounding exceeded the norm bound {attempts} times in a row")]
    RoundingFailed {
        /// Attempts made.
        attempts: u32,
    },
    /// The operation belongs to the other trust mode (e.g. decoding a central-mode sum
    /// without the server's noise, or asking a distributed plan for server noise).
    #[error("wrong mode: {0}")]
    WrongMode(&'static str),
    /// The accountant rejected a calibration or ε query.
    #[error(transparent)]
    Accounting(#[from] crate::accounting::Error),
    /// The encoder's randomness ran out (unreachable below 2^35 coordinates × attempts).
    #[error(transparent)]
    Keystream(#[from] crate::keystream::Exhausted),
}

/// Result of the DP module.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) use crate::param::{check_positive, check_range};

crate::param::impl_from_invalid_parameter!(Error);
