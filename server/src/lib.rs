//! Covey's aggregation server.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
