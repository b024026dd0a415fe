//! The two accountants behind one ledger-friendly interface: compose events as they
//! happen, ask for ε at a δ (or δ at an ε) at any time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::distributed::{
    ddgauss_rdp_at, ddgauss_tau, poisson_amplified_rdp, skellam_rdp_at,
    without_replacement_amplified_rdp,
};
use super::error::{Error, Result, check_range};
use super::event::{Mechanism, PrivacyEvent, Sampling};
use super::pld::{Adjacency, Fft, Pmf};
use super::rdp::{
    default_orders, poisson_subsampled_gaussian_rdp, rdp_to_delta, rdp_to_epsilon,
    sampled_without_replacement_gaussian_rdp,
};

/// A privacy accountant: a running total of the privacy spent by the events composed so far.
pub trait Accountant: fmt::Debug {
    /// Adds one event (all of its `count` repetitions) to the total.
    fn compose(&mut self, event: &PrivacyEvent) -> Result<()>;
    /// The smallest ε such that everything composed so far is (ε, δ)-DP; `+inf` when no
    /// finite ε holds (e.g. a release without noise).
    fn epsilon(&self, delta: f64) -> Result<f64>;
    /// The smallest δ such that everything composed so far is (ε, δ)-DP.
    fn delta(&self, epsilon: f64) -> Result<f64>;
}

/// Which accountant to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountantKind {
    /// Rényi DP: fast, supports every mechanism and sampling scheme here, a looser bound.
    Rdp,
    /// Privacy loss distributions: tight, for the (Poisson-subsampled) Gaussian only.
    Pld,
}

impl AccountantKind {
    /// A fresh accountant of this kind with default settings.
    pub fn new_accountant(self) -> Box<dyn Accountant + Send> {
        match self {
            AccountantKind::Rdp => Box::new(RdpAccountant::new()),
            AccountantKind::Pld => Box::new(PldAccountant::new()),
        }
    }
}

impl fmt::Display for AccountantKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountantKind::Rdp => "rdp",
            AccountantKind::Pld => "pld",
        })
    }
}

impl FromStr for AccountantKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "rdp" => Ok(AccountantKind::Rdp),
            "pld" => Ok(AccountantKind::Pld),
            other => Err(format!(
                "unknown accountant `{other}` (expected `rdp` or `pld`)"
            )),
        }
    }
}

/// ε at `delta` of `events` composed by a fresh accountant of `kind`.
pub fn epsilon_for_events(
    kind: AccountantKind,
    events: &[PrivacyEvent],
    delta: f64,
) -> Result<f64> {
    let mut accountant = kind.new_accountant();
    for event in events {
        accountant.compose(event)?;
    }
    accountant.epsilon(delta)
}

fn check_delta(delta: f64) -> Result<f64> {
    Ok(check_range(
        "delta",
        delta,
        0.0,
        1.0,
        "a probability in [0, 1]",
    )?)
}

fn check_epsilon(epsilon: f64) -> Result<f64> {
    Ok(check_range(
        "epsilon",
        epsilon,
        0.0,
        f64::MAX,
        "a finite number >= 0",
    )?)
}

/// The Rényi DP accountant: sums per-order RDP over events and converts with the improved
/// RDP→(ε, δ) bound. Supports every [`Mechanism`] and every [`Sampling`].
///
/// Its state persists with serde as `{"version": 1, "orders": [...], "rdp": [...]}`; loading
/// checks the version, that both lists have the same length (at most
/// [`MAX_PERSISTED_ORDERS`]), that orders are ≥ 1 and that RDP values are ≥ 0 (or `+inf`,
/// written as `null`). JSON encoders that do not round-trip floats exactly (serde_json
/// without its `float_roundtrip` feature) may move the last bit of a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RdpState", into = "RdpState")]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

/// Version of the persisted [`RdpAccountant`] state.
const RDP_STATE_VERSION: u8 = 1;
/// Longest order list a persisted [`RdpAccountant`] may carry.
pub const MAX_PERSISTED_ORDERS: usize = 4096;

/// The persisted form of an [`RdpAccountant`]: JSON has no infinity, so `+inf` RDP (a
/// release without noise) travels as `null`.
#[derive(Serialize, Deserialize)]
struct RdpState {
    version: u8,
    orders: Vec<f64>,
    rdp: Vec<Option<f64>>,
}

impl From<RdpAccountant> for RdpState {
    fn from(a: RdpAccountant) -> Self {
        let rdp = a.rdp.iter().map(|&r| r.is_finite().then_some(r)).collect();
        RdpState {
            version: RDP_STATE_VERSION,
            orders: a.orders,
            rdp,
        }
    }
}

impl TryFrom<RdpState> for RdpAccountant {
    type Error = Error;
    fn try_from(state: RdpState) -> Result<Self> {
        if state.version != RDP_STATE_VERSION {
            let expected = "the persisted RDP accountant version this build reads (1)";
            return Err(Error::InvalidParameter {
                name: "version",
                value: f64::from(state.version),
                expected,
            });
        }
        if state.orders.len() != state.rdp.len() || state.orders.len() > MAX_PERSISTED_ORDERS {
            let expected = "as many RDP values as orders, at most MAX_PERSISTED_ORDERS";
            return Err(Error::InvalidParameter {
                name: "rdp",
                value: state.rdp.len() as f64,
                expected,
            });
        }
        let mut accountant = RdpAccountant::with_orders(state.orders)?;
        for (total, r) in accountant.rdp.iter_mut().zip(state.rdp) {
            *total = match r {
                None => f64::INFINITY,
                Some(r) => check_range("rdp", r, 0.0, f64::MAX, "a finite RDP value >= 0")?,
            };
        }
        Ok(accountant)
    }
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// An accountant over `dp-accounting`'s default orders ([`default_orders`]).
    pub fn new() -> Self {
        let orders = default_orders();
        RdpAccountant {
            rdp: vec![0.0; orders.len()],
            orders,
        }
    }

    /// An accountant over the given orders (each ≥ 1, finite).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self> {
        if orders.is_empty() {
            return Err(Error::InvalidParameter {
                name: "orders",
                value: 0.0,
                expected: "at least one order",
            });
        }
        for &a in &orders {
            check_range("order", a, 1.0, f64::MAX, "a finite order >= 1")?;
        }
        let rdp = vec![0.0; orders.len()];
        Ok(RdpAccountant { orders, rdp })
    }

    /// The orders tracked.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The accumulated RDP at each order.
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// ε at `delta` and the order that attains it.
    pub fn epsilon_and_order(&self, delta: f64) -> Result<(f64, f64)> {
        Ok(rdp_to_epsilon(&self.orders, &self.rdp, check_delta(delta)?))
    }

    /// The RDP of one repetition of `event` at each tracked order.
    fn step_rdp(&self, event: &PrivacyEvent) -> Vec<f64> {
        let sampling = event.sampling;
        let factor = sampling.sensitivity_factor();
        let q = sampling.rate();
        match event.mechanism {
            Mechanism::Gaussian { noise_multiplier } => {
                let z = noise_multiplier / factor;
                match sampling {
                    Sampling::FixedSizeWithoutReplacement { .. } => {
                        sampled_without_replacement_gaussian_rdp(q, z, &self.orders)
                    }
                    Sampling::Full | Sampling::Poisson { .. } => {
                        poisson_subsampled_gaussian_rdp(q, z, &self.orders)
                    }
                }
            }
            Mechanism::Skellam {
                l1_sensitivity,
                l2_sensitivity,
                local_mu,
                survivors,
            } => {
                let mu = local_mu * survivors as f64;
                let (l1, l2) = (l1_sensitivity * factor, l2_sensitivity * factor);
                self.amplified(sampling, |a| skellam_rdp_at(a, l1, l2, mu))
            }
            Mechanism::DistributedDiscreteGaussian {
                l1_sensitivity,
                l2_sensitivity,
                local_stddev,
                survivors,
                dimension,
            } => {
                let tau = ddgauss_tau(local_stddev, survivors);
                let central = local_stddev * (survivors as f64).sqrt();
                let (l1, l2) = (l1_sensitivity * factor, l2_sensitivity * factor);
                self.amplified(sampling, |a| {
                    ddgauss_rdp_at(a, l1, l2, central, tau, dimension)
                })
            }
        }
    }

    fn amplified(&self, sampling: Sampling, eps: impl Fn(f64) -> f64) -> Vec<f64> {
        let q = sampling.rate();
        self.orders
            .iter()
            .map(|&a| match sampling {
                Sampling::Full => eps(a),
                Sampling::Poisson { .. } => poisson_amplified_rdp(a, q, &eps),
                Sampling::FixedSizeWithoutReplacement { .. } => {
                    without_replacement_amplified_rdp(a, q, &eps)
                }
            })
            .collect()
    }
}

impl Accountant for RdpAccountant {
    fn compose(&mut self, event: &PrivacyEvent) -> Result<()> {
        event.validate()?;
        let step = self.step_rdp(event);
        let count = event.count as f64;
        for (total, s) in self.rdp.iter_mut().zip(step) {
            *total += count * s;
        }
        Ok(())
    }

    fn epsilon(&self, delta: f64) -> Result<f64> {
        Ok(self.epsilon_and_order(delta)?.0)
    }

    fn delta(&self, epsilon: f64) -> Result<f64> {
        Ok(rdp_to_delta(&self.orders, &self.rdp, check_epsilon(epsilon)?).0)
    }
}

/// Default PLD grid step (as dp-accounting): 1e-4 nats.
pub const DEFAULT_DISCRETIZATION: f64 = 1e-4;
/// Default cap on the grid points (and FFT length) of one distribution: 2^23 ≈ 8.4M points,
/// about 400 MB of buffers at the cap with both neighbour directions in flight. Only
/// ε in the hundreds needs more; beyond it composing fails with
/// [`Error::DistributionTooLarge`] (raise it with [`PldAccountant::with_discretization`]).
pub const DEFAULT_MAX_POINTS: u64 = 1 << 23;

/// The privacy loss distribution accountant for the Gaussian mechanism under Full or
/// Poisson sampling (add/remove-one neighbours): pessimistic, tight to the discretization.
///
/// It tracks the PLDs for the "remove" and the "add" neighbour separately (they differ
/// under subsampling) and reports the worse. Skellam, discrete Gaussian and fixed-size
/// cohorts are refused with [`Error::Unsupported`]; account for those with
/// [`RdpAccountant`].
#[derive(Debug)]
pub struct PldAccountant {
    discretization: f64,
    max_points: u64,
    /// `(remove, add)` PLDs of everything composed so far; `None` before the first event.
    plds: Option<(Pmf, Pmf)>,
    non_private: bool,
    fft: Fft,
}

impl Default for PldAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl PldAccountant {
    /// An accountant with the default discretization (1e-4) and size cap.
    pub fn new() -> Self {
        PldAccountant {
            discretization: DEFAULT_DISCRETIZATION,
            max_points: DEFAULT_MAX_POINTS,
            plds: None,
            non_private: false,
            fft: Fft::new(),
        }
    }

    /// An accountant with grid step `discretization` (nats) and at most `max_points` grid
    /// points per distribution. A coarser grid is faster and (still pessimistically) looser.
    pub fn with_discretization(discretization: f64, max_points: u64) -> Result<Self> {
        check_range(
            "discretization",
            discretization,
            1e-9,
            1.0,
            "a grid step in [1e-9, 1] nats",
        )?;
        Ok(PldAccountant {
            discretization,
            max_points,
            ..Self::new()
        })
    }

    /// Grid points of the composed distributions (both neighbour directions): the memory
    /// held and the length every further composition transforms.
    pub fn grid_points(&self) -> usize {
        self.plds.as_ref().map_or(0, |(r, a)| r.len() + a.len())
    }

    fn event_plds(&mut self, noise_multiplier: f64, q: f64, count: u64) -> Result<(Pmf, Pmf)> {
        let (d, max) = (self.discretization, self.max_points);
        if q == 1.0 {
            // T Gaussian releases with multiplier z are exactly one with z/√T.
            let z = noise_multiplier / (count as f64).sqrt();
            let pmf = Pmf::subsampled_gaussian(z, 1.0, Adjacency::Remove, d, max)?;
            return Ok((pmf.clone(), pmf));
        }
        let one = |adjacency, fft: &mut Fft| -> Result<Pmf> {
            Pmf::subsampled_gaussian(noise_multiplier, q, adjacency, d, max)?
                .self_compose(count, fft, max)
        };
        in_parallel(
            &mut self.fft,
            |fft| one(Adjacency::Remove, fft),
            |fft| one(Adjacency::Add, fft),
        )
    }
}

/// Runs the "remove" and "add" halves of a PLD computation on two threads (they are
/// independent and equally costly), each with its own FFT planner.
fn in_parallel(
    fft: &mut Fft,
    remove: impl FnOnce(&mut Fft) -> Result<Pmf> + Send,
    add: impl FnOnce(&mut Fft) -> Result<Pmf> + Send,
) -> Result<(Pmf, Pmf)> {
    std::thread::scope(|scope| {
        let add = scope.spawn(|| add(&mut Fft::new()));
        let remove = remove(fft);
        // A panic in the worker is a bug, not bad input: let it propagate as one.
        let add = add
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((remove?, add?))
    })
}

impl Accountant for PldAccountant {
    fn compose(&mut self, event: &PrivacyEvent) -> Result<()> {
        event.validate()?;
        let Mechanism::Gaussian { noise_multiplier } = event.mechanism else {
            return Err(Error::Unsupported {
                accountant: "PLD",
                what: "Skellam or distributed discrete Gaussian events",
                instead: "the RDP accountant",
            });
        };
        if let Sampling::FixedSizeWithoutReplacement { .. } = event.sampling {
            return Err(Error::Unsupported {
                accountant: "PLD",
                what: "fixed-size cohorts (sampling without replacement)",
                instead: "the RDP accountant or Poisson sampling",
            });
        }
        if noise_multiplier == 0.0 {
            self.non_private = true;
            return Ok(());
        }
        let (remove, add) =
            self.event_plds(noise_multiplier, event.sampling.rate(), event.count)?;
        self.plds = Some(match self.plds.take() {
            None => (remove, add),
            Some((r, a)) => {
                let max = self.max_points;
                in_parallel(
                    &mut self.fft,
                    |fft| r.compose(&remove, fft, max),
                    |fft| a.compose(&add, fft, max),
                )?
            }
        });
        Ok(())
    }

    fn epsilon(&self, delta: f64) -> Result<f64> {
        let delta = check_delta(delta)?;
        if self.non_private {
            return Ok(f64::INFINITY);
        }
        let d = self.discretization;
        Ok(match &self.plds {
            None => 0.0,
            Some((r, a)) => r
                .epsilon_for_delta(delta, d)
                .max(a.epsilon_for_delta(delta, d)),
        })
    }

    fn delta(&self, epsilon: f64) -> Result<f64> {
        let epsilon = check_epsilon(epsilon)?;
        if self.non_private {
            return Ok(1.0);
        }
        let d = self.discretization;
        Ok(match &self.plds {
            None => 0.0,
            Some((r, a)) => r
                .delta_for_epsilon(epsilon, d)
                .max(a.delta_for_epsilon(epsilon, d)),
        })
    }
}
