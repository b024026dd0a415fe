//! Privacy accountants: how much (ε, δ) a sequence of noisy releases costs.
//!
//! Two accountants behind one [`Accountant`] trait, fed [`PrivacyEvent`]s:
//! - [`RdpAccountant`]: Rényi DP for the Poisson-subsampled Gaussian (integer and
//!   fractional orders), for fixed-size cohorts sampled without replacement, and for the
//!   distributed mechanisms that secure aggregation carries (Skellam, distributed discrete
//!   Gaussian); converted to (ε, δ) with the improved conversion.
//! - [`PldAccountant`]: privacy loss distributions for the (Poisson-subsampled) Gaussian,
//!   pessimistically discretized and composed by FFT: the tight one, several times smaller
//!   ε than RDP at the small sampling rates of cross-device learning.
//!
//! Both agree with Google's `dp-accounting` (the cross-check script
//! `core/protocol/tests/python/crosscheck_accounting.py` compares a grid against it).
//!
//! A ledger composes one event per round, with the round's actual survivors, and asks
//! [`Accountant::epsilon`]; a planner uses [`calibrate_noise_multiplier`] or the generic
//! [`calibrate`], and the building blocks ([`skellam_rdp`], [`ddgauss_rdp`],
//! [`rdp_to_epsilon`]) to size distributed noise.
//!
//! Neighbouring relation: add/remove one member for [`Sampling::Full`] and
//! [`Sampling::Poisson`]; replace one member for [`Sampling::FixedSizeWithoutReplacement`]
//! (sensitivities doubled). Fixed-size cohorts are never silently treated as Poisson.

mod accountant;
mod calibrate;
mod distributed;
mod error;
mod event;
mod pld;
mod rdp;
mod special;

pub use accountant::{
    Accountant, AccountantKind, DEFAULT_DISCRETIZATION, DEFAULT_MAX_POINTS, MAX_PERSISTED_ORDERS,
    PldAccountant, RdpAccountant, epsilon_for_events,
};
pub use calibrate::{calibrate, calibrate_noise_multiplier};
pub use distributed::{
    ddgauss_rdp, ddgauss_rdp_at, ddgauss_tau, poisson_amplified_rdp, skellam_rdp, skellam_rdp_at,
    without_replacement_amplified_rdp,
};
pub use error::{Error, Result};
pub use event::{Mechanism, PrivacyEvent, Sampling};
pub use rdp::{
    default_orders, poisson_subsampled_gaussian_rdp, rdp_to_delta, rdp_to_epsilon,
    sampled_without_replacement_gaussian_rdp,
};
