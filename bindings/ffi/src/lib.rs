//! `covey-ffi`: Covey for the loyalty apps it exists for, through uniffi.
//!
//! This is the only crate that knows about uniffi. It exposes one object,
//! [`CoveyClient`], whose every method delegates to `covey-sdk`'s `Device`, plus the records,
//! enums and the one flat error ([`CoveyError`]) the host sees. The host implements two
//! foreign traits: [`KeyStore`] (wraps the store's data key with the iOS Keychain or the
//! Android Keystore) and `Transport` (its HTTP stack, for round participation).
//!
//! Bindings are generated in library mode from the built `libcovey_ffi` by
//! `scripts/generate-bindings` into `bindings/kotlin`, `bindings/swift` and
//! `bindings/python`.
//!
//! Guarantees at the boundary: nothing panics into the host (every call runs under
//! `catch_unwind` and a panic becomes `CoveyError::Internal`); a host key store or transport
//! that throws produces an error, never a crash; error messages carry no member data; Rust
//! objects hold no reference to host objects beyond the key store (given at open) and the
//! transport (only for the duration of one `participate` call), so no reference cycle forms
//! unless the host's own key store keeps the client alive.
#![warn(missing_docs)]

uniffi::setup_scaffolding!("covey");

mod client;
mod config;
mod consent;
mod error;
mod events;
mod keystore;
mod participate;
mod privacy;
mod recommend;

pub use client::CoveyClient;
pub use config::{ANCHOR_FILE, ClientConfig};
pub use consent::{
    ConsentEventKind, ConsentPrompt, ConsentState, Decision, PromptReason, Purpose, PurposeStatus,
    Receipt,
};
pub use error::{CoveyError, Result};
pub use events::{Channel, EventKind, LoyaltyEvent};
pub use keystore::{KeyStore, KeyStoreError};
pub use participate::{
    CancelHandle, DeviceConditions, HttpMethod, ParticipationOutcome, Registration, Transport,
    TransportError, TransportRequest, TransportResponse,
};
pub use privacy::{
    AuditReport, DataCategory, EraseReport, PrivacySummary, PurposeSummary, StoredCategory,
};
pub use recommend::{
    Contributor, Explanation, FallbackReason, RecommendFilter, Recommendation, Recommendations,
};
