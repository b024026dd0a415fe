//! Covey's device facade: consent, purpose grants, audit, round participation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod audit_entry;
pub mod consent;
pub mod error;
pub mod grant;
pub mod merkle;
pub mod notice;
pub mod privacy;
pub mod purpose;
pub mod receipt;
pub mod record;
pub mod signing;

pub use error::{Error, Result};
