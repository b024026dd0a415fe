//! The one error type of the SecAgg+ module.
//!
//! Variants carry counts, stage names and limits, never member inputs, keys or shares, so an
//! error can be logged without leaking anything a member contributed.

use super::Stage;

/// What went wrong in a SecAgg+ session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The session parameters are inconsistent (e.g. threshold above degree).
    #[error("invalid session parameters: {0}")]
    InvalidParams(&'static str),
    /// No (degree, threshold) pair meets the security and correctness targets.
    #[error("no SecAgg+ parameters meet the targets for {members} members: {reason}")]
    Infeasible {
        /// Cohort size asked for.
        members: usize,
        /// Which requirement failed.
        reason: &'static str,
    },
    /// The member's input does not have the session's dimension.
    #[error("input has {got} coordinates, the session expects {expected}")]
    InputLength {
        /// The session's dimension.
        expected: usize,
        /// What the caller passed.
        got: usize,
    },
    /// An input coordinate is not below 2^bits.
    #[error("input coordinate {index} does not fit in {bits} bits")]
    InputOutOfRange {
        /// Position of the first offending coordinate.
        index: usize,
        /// The session's bit width.
        bits: u32,
    },
    /// A wire message could not be decoded.
    #[error("malformed message: {0}")]
    Decode(&'static str),
    /// A length field exceeds what the session or the format allows.
    #[error("{what} has length {len}, at most {max} allowed")]
    LengthOutOfBounds {
        /// Which field.
        what: &'static str,
        /// The length found.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The message carries a format version this build does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// The message belongs to another session (a replay from an old round, or misrouted).
    #[error("message belongs to another session")]
    WrongSession,
    /// The message is for a different stage than the one in progress (replay or reordering).
    #[error("message for stage {got:?} while the session is at stage {expected:?}")]
    UnexpectedStage {
        /// The stage in progress.
        expected: Stage,
        /// The stage the message is for.
        got: Stage,
    },
    /// A server message addressed to another member.
    #[error("message addressed to another member")]
    WrongRecipient,
    /// The sender is not in the session's roster.
    #[error("sender is not in the session roster")]
    UnknownMember,
    /// The sender dropped out at an earlier stage and may not rejoin.
    #[error("sender is no longer part of the session")]
    NotLive,
    /// The sender already sent its message for this stage.
    #[error("duplicate message at stage {0:?}")]
    Duplicate(Stage),
    /// The message is well-formed but breaks the protocol (wrong peer set, bad key, ...).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A signature is missing or does not verify.
    #[error("signature missing or invalid: {0}")]
    BadSignature(&'static str),
    /// An encrypted share failed authentication.
    #[error("encrypted share failed authentication")]
    ShareDecryption,
    /// The server asked for a share this member must never reveal.
    #[error("refused to unmask: {0}")]
    UnmaskRefused(&'static str),
    /// Too few members remain for the secrets to be reconstructed: the session is aborted.
    #[error("only {available} of the required {threshold} members remain at stage {stage:?}")]
    BelowThreshold {
        /// The stage at which the count fell short.
        stage: Stage,
        /// How many were available where `threshold` were needed.
        available: usize,
        /// The Shamir threshold t.
        threshold: usize,
    },
    /// Reconstructed secrets do not match the committed keys (a corrupted or forged share).
    #[error("reconstructed secret does not match its commitment")]
    ReconstructionMismatch,
    /// The session already finished or aborted.
    #[error("session is closed")]
    Closed,
}

/// Result alias of the SecAgg+ module.
pub type Result<T> = std::result::Result<T, Error>;
