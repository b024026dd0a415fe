//! Covey's device facade: consent, purpose grants, audit, round participation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod device;
pub mod error;
pub mod notice;
pub mod participate;
pub mod personalize;
pub mod privacy;
pub mod purpose;
pub mod receipt;
pub mod record;
pub mod signing;
pub mod transport;

pub use covey_store::{audit_entry, consent, grant, merkle};
pub use device::{Decision, Device, DeviceConfig, DeviceExport};
pub use error::{Error, Result};
pub use participate::{
    CancelToken, DeviceConditions, Ineligible, NetworkError, ParticipationOptions,
    ParticipationOutcome, Registration, StageTimings, Tampering,
};
pub use transport::{
    HttpMethod, HttpOptions, HttpTransport, Transport, TransportError, TransportRequest,
    TransportResponse,
};
