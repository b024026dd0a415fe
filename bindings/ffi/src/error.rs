//! The one error type the host sees, and how every SDK and store error maps onto it.
//!
//! Mobile code branches on the variant, so variants say what the app should do (ask for
//! consent, unlock the key store, report corruption, fix its input, try later...). The
//! message comes from the SDK's own error text, which names fields and reasons and never
//! member data.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Everything a `CoveyClient` call can fail with.
///
/// Flat across the FFI: Kotlin and Swift see one exception/error type per variant carrying
/// the message only. The variant says what to do; the message (the SDK's own, which already
/// names the failure) says what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum CoveyError {
    /// The purpose needs valid consent (never given, refused, withdrawn, expired, or given
    /// under older terms): show the consent prompt.
    #[error("{0}")]
    ConsentRequired(String),
    /// The host key store could not unwrap the data key (locked device, key destroyed,
    /// wrong key, or the key store raised an error).
    #[error("{0}")]
    KeyUnavailable(String),
    /// Stored data failed authentication or decoding, or the audit log was tampered with.
    #[error("{0}")]
    StorageCorrupted(String),
    /// An argument was rejected (bad event, unknown purpose, stale notice version, forged
    /// receipt...); nothing was written.
    #[error("{0}")]
    InvalidInput(String),
    /// The device may not take part in a round now (conditions, consent, contribution
    /// bounds, no open round).
    #[error("{0}")]
    NotEligible(String),
    /// The server could not be reached or refused the request; retry later.
    #[error("{0}")]
    Network(String),
    /// No global model is installed yet: install one (`install_model`) before asking for
    /// recommendations.
    #[error("{0}")]
    ModelUnavailable(String),
    /// The aggregation server deviated from the secure-aggregation protocol (substituted
    /// keys, inconsistent survivor lists, a downgraded session): the device stopped the round
    /// and sent nothing more. Not a transient failure: report it to the operator, don't retry.
    #[error("{0}")]
    RoundTampered(String),
    /// The device was too slow for a stage of the round (its message arrived after the
    /// stage's deadline): the round went on without it. Not a fault: try a later round,
    /// ideally under better conditions (charging, unmetered, idle).
    #[error("{0}")]
    RoundMissed(String),
    /// The work was cancelled through its `CancelHandle`.
    #[error("cancelled")]
    Cancelled,
    /// An unexpected failure inside the library (I/O, SQLite, a caught panic).
    #[error("{0}")]
    Internal(String),
}

/// Result of every FFI call.
pub type Result<T, E = CoveyError> = std::result::Result<T, E>;

impl From<covey_sdk::Error> for CoveyError {
    fn from(e: covey_sdk::Error) -> Self {
        use covey_sdk::Error as E;
        let msg = e.to_string();
        match e {
            E::ConsentRequired { .. } | E::ConsentWithdrawn { .. } | E::ConsentExpired { .. } => {
                Self::ConsentRequired(msg)
            }
            E::InvalidPurpose { .. }
            | E::DuplicatePurpose
            | E::UnknownPurpose
            | E::InvalidNotice { .. }
            | E::StaleNotice { .. }
            | E::InvalidReceipt { .. }
            | E::UnknownRecord
            | E::InvalidUpload
            | E::StaleModel { .. }
            | E::Model(_) => Self::InvalidInput(msg),
            E::Corrupted { .. } | E::BadCheckpoint { .. } => Self::StorageCorrupted(msg),
            E::Store(store) => store.into(),
            E::NoModel => Self::ModelUnavailable(msg),
            E::NotEligible(_) | E::NotSelected | E::NotRegistered => Self::NotEligible(msg),
            E::Network(_) => Self::Network(msg),
            E::RoundTampered(_) => Self::RoundTampered(msg),
            E::RoundMissed { .. } => Self::RoundMissed(msg),
            E::Cancelled => Self::Cancelled,
            // Io (the audit anchor file), Protocol, and whatever later SDK versions add.
            _ => Self::Internal(msg),
        }
    }
}

impl From<covey_store::Error> for CoveyError {
    fn from(e: covey_store::Error) -> Self {
        use covey_store::Error as E;
        let msg = e.to_string();
        match e {
            E::InvalidEvent { .. } | E::InvalidInput { .. } => Self::InvalidInput(msg),
            E::KeyMismatch | E::KeyUnavailable | E::KeyStore(_) => Self::KeyUnavailable(msg),
            E::Corrupted { .. } | E::SchemaTooNew { .. } => Self::StorageCorrupted(msg),
            E::Consent(_) => Self::ConsentRequired(msg),
            _ => Self::Internal(msg),
        }
    }
}

/// Runs `f`, turning a panic into [`CoveyError::Internal`] so nothing unwinds into the host.
///
/// uniffi also catches panics at the boundary, but reports them as its own untyped internal
/// exception; catching here keeps the host's error handling to the one `CoveyError` type.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_error(&*payload)))
}

/// The panic message is not forwarded: it may quote data (an index, a value) that the typed
/// errors are careful to leave out.
fn panic_error(_payload: &(dyn Any + Send)) -> CoveyError {
    CoveyError::Internal("the library hit an unexpected condition (panic caught)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<()> = guard(|| panic!("secret member value 4242"));
        match r {
            Err(CoveyError::Internal(msg)) => assert!(!msg.contains("4242")),
            other => panic!("expected Internal, got {other:?}"),
        }
    }

    #[test]
    fn store_errors_map_to_actionable_variants() {
        let mapped = |e: covey_store::Error| CoveyError::from(covey_sdk::Error::from(e));
        assert!(matches!(
            mapped(covey_store::Error::KeyMismatch),
            CoveyError::KeyUnavailable(_)
        ));
        assert!(matches!(
            mapped(covey_store::Error::InvalidEvent {
                index: 0,
                field: "item_id",
                reason: "is too long",
            }),
            CoveyError::InvalidInput(_)
        ));
        assert!(matches!(
            mapped(covey_store::Error::SchemaTooNew {
                found: 99,
                supported: 3,
            }),
            CoveyError::StorageCorrupted(_)
        ));
    }

    #[test]
    fn a_tampering_server_is_reported_as_such_not_as_an_internal_failure() {
        let e = CoveyError::from(covey_sdk::Error::RoundTampered(
            covey_sdk::Tampering::SurvivorListMismatch,
        ));
        assert!(matches!(e, CoveyError::RoundTampered(_)), "{e:?}");
    }

    #[test]
    fn a_missed_stage_deadline_is_its_own_error_not_a_network_failure() {
        let e = CoveyError::from(covey_sdk::Error::RoundMissed {
            stage: "masked_input",
        });
        assert!(
            matches!(&e, CoveyError::RoundMissed(m) if m.contains("masked_input")),
            "{e:?}"
        );
    }
}
