//! `covey-server`: the aggregation server of Covey.
//!
//! - [`config`]: a population's operator config (TOML), validated into typed settings;
//! - [`storage`]: persistence behind one [`storage::Storage`] trait (SQLite or PostgreSQL);
//! - [`optimizer`]: FedAvg / FedAdam over the decoded mean update;
//! - [`http`]: the device and operator API (axum), with auth, limits and `/metrics`;
//! - [`service`]: the operations behind the API (registration, rounds, model downloads);
//! - [`progress`]: round transitions announced by the [`driver`], awaited by long polls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod driver;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model_blob;
pub mod ops;
pub mod optimizer;
pub mod progress;
pub mod service;
pub mod storage;
pub mod token;

pub use error::{Error, Result};
