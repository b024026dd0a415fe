//! Covey's encrypted on-device store for a member's loyalty history.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod event;

pub use event::{Channel, EventKind, LoyaltyEvent};
