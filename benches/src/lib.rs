//! Shared helpers for Covey's criterion benches (see `benches/benches/`).
#![forbid(unsafe_code)]
