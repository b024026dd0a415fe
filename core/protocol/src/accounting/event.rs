//! What happened in a round, as the accountants and the server's privacy ledger record it.

use serde::{Deserialize, Serialize};

use super::error::{Result, check_positive, check_range};

/// How the members whose updates entered a release were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampling {
    /// Every member of the population took part (no amplification).
    Full,
    /// Each member took part independently with probability `rate` (Poisson sampling,
    /// add/remove-one neighbours). The round's cohort size is then random.
    Poisson {
        /// The per-member participation probability, in `(0, 1]`.
        rate: f64,
    },
    /// A uniformly random cohort of exactly `cohort` members out of `population`, drawn
    /// without replacement. This is accounted *as such* (Wang, Balle, Kasiviswanathan 2019)
    /// under the replace-one neighbouring relation, which is the relation a fixed cohort
    /// size needs, and one member's replacement moves a clipped sum by twice the clip:
    /// the accountant doubles every sensitivity accordingly. It is not approximated by
    /// Poisson sampling. Only the RDP accountant supports it.
    FixedSizeWithoutReplacement {
        /// Members selected for the round (≥ 1).
        cohort: u64,
        /// Members eligible for selection (≥ `cohort`).
        population: u64,
    },
}

impl Sampling {
    /// The fraction of the population that takes part (`q`).
    pub fn rate(&self) -> f64 {
        match *self {
            Sampling::Full => 1.0,
            Sampling::Poisson { rate } => rate,
            Sampling::FixedSizeWithoutReplacement { cohort, population } => {
                cohort as f64 / population as f64
            }
        }
    }

    /// How much one member can move a sum relative to its add/remove-one sensitivity: 2
    /// under replace-one (fixed-size cohorts), 1 otherwise.
    pub fn sensitivity_factor(&self) -> f64 {
        match self {
            Sampling::FixedSizeWithoutReplacement { .. } => 2.0,
            Sampling::Full | Sampling::Poisson { .. } => 1.0,
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Sampling::Full => Ok(()),
            Sampling::Poisson { rate } => check_range(
                "sampling_rate",
                rate,
                f64::MIN_POSITIVE,
                1.0,
                "a probability in (0, 1]",
            )
            .map(drop)
            .map_err(Into::into),
            Sampling::FixedSizeWithoutReplacement { cohort, population } => check_range(
                "cohort",
                cohort as f64,
                1.0,
                population as f64,
                "1 <= cohort <= population",
            )
            .map(drop)
            .map_err(Into::into),
        }
    }
}

/// The noise mechanism applied to the (clipped) sum of one release.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mechanism {
    /// Continuous Gaussian noise of standard deviation `noise_multiplier × C` added to a sum
    /// of updates each clipped to L2 norm `C` (central DP, or the Gaussian proxy used to
    /// calibrate distributed noise).
    Gaussian {
        /// Noise standard deviation over the per-member L2 clip.
        noise_multiplier: f64,
    },
    /// Skellam noise carried by the securely aggregated integer sum: each of `survivors`
    /// members added `Sk(local_mu)`, so the sum carries `Sk(survivors × local_mu)`.
    /// Sensitivities are one member's scaled, rounded contribution in integer units
    /// (add/remove-one; doubled automatically for fixed-size cohorts).
    Skellam {
        /// L1 norm bound of one member's integer contribution.
        l1_sensitivity: f64,
        /// L2 norm bound of one member's integer contribution.
        l2_sensitivity: f64,
        /// Each member's Skellam parameter μ (its noise share has variance `2μ`).
        local_mu: f64,
        /// Members whose shares actually entered the sum (the round's survivors).
        survivors: u64,
    },
    /// Distributed discrete Gaussian: each of `survivors` members added a discrete Gaussian
    /// of scale `local_stddev` (integer units) to a `dimension`-coordinate vector.
    DistributedDiscreteGaussian {
        /// L1 norm bound of one member's integer contribution.
        l1_sensitivity: f64,
        /// L2 norm bound of one member's integer contribution.
        l2_sensitivity: f64,
        /// Scale of each member's discrete Gaussian share.
        local_stddev: f64,
        /// Members whose shares actually entered the sum.
        survivors: u64,
        /// Number of coordinates (after padding for the rotation).
        dimension: u64,
    },
}

impl Mechanism {
    fn validate(&self) -> Result<()> {
        match *self {
            Mechanism::Gaussian { noise_multiplier } => check_range(
                "noise_multiplier",
                noise_multiplier,
                0.0,
                f64::MAX,
                "a finite number >= 0",
            )
            .map(drop)
            .map_err(Into::into),
            Mechanism::Skellam {
                l1_sensitivity,
                l2_sensitivity,
                local_mu,
                survivors,
            } => {
                check_positive("local_mu", local_mu)?;
                check_shares(l1_sensitivity, l2_sensitivity, survivors)
            }
            Mechanism::DistributedDiscreteGaussian {
                l1_sensitivity,
                l2_sensitivity,
                local_stddev,
                survivors,
                dimension,
            } => {
                check_positive("local_stddev", local_stddev)?;
                check_at_least_one("dimension", dimension)?;
                check_shares(l1_sensitivity, l2_sensitivity, survivors)
            }
        }
    }
}

/// The parameters every distributed mechanism shares: sensitivities and survivors.
fn check_shares(l1_sensitivity: f64, l2_sensitivity: f64, survivors: u64) -> Result<()> {
    check_positive("l1_sensitivity", l1_sensitivity)?;
    check_positive("l2_sensitivity", l2_sensitivity)?;
    check_at_least_one("survivors", survivors)
}

fn check_at_least_one(name: &'static str, value: u64) -> Result<()> {
    check_range(name, value as f64, 1.0, f64::MAX, "at least one")?;
    Ok(())
}

/// `count` identical releases: one mechanism on one sampling scheme, repeated.
///
/// A ledger records one event per round with that round's actual survivors; a planner
/// composes one event with `count = T`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyEvent {
    /// The noise mechanism.
    pub mechanism: Mechanism,
    /// How members were selected.
    pub sampling: Sampling,
    /// How many times the release was repeated (≥ 1).
    pub count: u64,
}

impl PrivacyEvent {
    /// `steps` rounds of the Poisson-subsampled Gaussian mechanism (the DP-FedAvg event).
    pub fn subsampled_gaussian(noise_multiplier: f64, sampling_rate: f64, steps: u64) -> Self {
        let sampling = if sampling_rate == 1.0 {
            Sampling::Full
        } else {
            Sampling::Poisson {
                rate: sampling_rate,
            }
        };
        PrivacyEvent {
            mechanism: Mechanism::Gaussian { noise_multiplier },
            sampling,
            count: steps,
        }
    }

    /// Checks every parameter; accountants call this before composing.
    pub fn validate(&self) -> Result<()> {
        self.mechanism.validate()?;
        self.sampling.validate()?;
        check_at_least_one("count", self.count)
    }
}
