//! Covey's device facade: consent, purpose grants, audit, round participation.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
