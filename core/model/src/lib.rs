//! Covey's on-device recommender.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
