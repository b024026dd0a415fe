//! Covey's sans-I/O protocol core: what a device uploads and how the server combines it.
//!
//! No storage, no model, no network and no FFI live here: state machines take messages and
//! return messages, so the hard logic is tested without sockets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
pub mod accounting;
pub mod dp;
pub mod keystream;
pub mod param;
pub mod secagg;
