//! The DP part of a round plan, and the chooser that sizes it.
//!
//! A [`DpPlan`] fixes everything a member needs to encode and the server needs to decode:
//! clip, scale, bit width, rotation seed, each member's noise share, the cohort and the
//! minimum number of survivors the noise is provisioned for. It travels inside the round plan
//! (serde, with a version) and every device validates it before use.
//!
//! [`choose_plan`] picks the scale and the bit width `B` from the cohort, dimension, clip,
//! noise multiplier and a headroom of `k` standard deviations, so that the securely summed
//! integers stay inside `[-2^{B-1}, 2^{B-1})` except with a probability it states
//! ([`DpPlan::overflow_bound`], a Chernoff bound, not an approximation), and refuses
//! ([`Error::SumDoesNotFit`]) when no `B ≤ 32` can hold the sum.
//!
//! What the accountant needs ([`DpPlan::mechanism`]): the L2 and L1 sensitivities of one
//! member's integer contribution *after rounding* ([`DpPlan::l2_sensitivity`],
//! [`DpPlan::l1_sensitivity`]), each member's noise parameter, and the survivors. The
//! noise multiplier of the request applies to the rounded sensitivity, clip indicator
//! included, so the Gaussian-equivalent multiplier of the released sum
//! ([`DpPlan::noise_multiplier`]) is exactly the one requested at the minimum survivors.

use serde::{Deserialize, Serialize};

use crate::accounting::{self, AccountantKind, Mechanism, PrivacyEvent, Sampling};

use super::clip::AdaptiveClipping;
use super::error::{Error, Result, check_positive, check_range};
use super::rotation::padded_len;
use super::rounding::{DEFAULT_BETA, rounded_norm_bound};

/// Format version of [`DpPlan`].
pub const PLAN_VERSION: u8 = 1;
/// Largest update dimension a plan may declare (2^26 coordinates, 256 MiB of f32).
pub const MAX_DIMENSION: u32 = 1 << 26;
/// Largest cohort a plan may declare.
pub const MAX_COHORT: u32 = 1 << 24;
/// Largest modulus exponent: values travel as u32.
pub const MAX_BITS: u32 = 32;
/// Default headroom of the chooser in standard deviations of a summed coordinate: 6σ keeps
/// the per-coordinate overflow bound near 1e-8, so a million-coordinate sum rarely wraps
/// anywhere (4σ, TensorFlow Federated's choice, wraps a few coordinates per round).
pub const DEFAULT_OVERFLOW_SIGMAS: f64 = 6.0;
/// Default tolerated inflation of the L2 sensitivity by rounding (1%).
pub const DEFAULT_MAX_INFLATION: f64 = 0.01;
/// Smallest per-member Skellam μ or discrete Gaussian scale a plan may carry.
const MIN_NOISE: f64 = 1e-6;
/// Largest per-member rounded norm bound, so every coordinate fits an i32.
const MAX_SCALED_NORM: f64 = 2_147_483_647.0;

/// Which noise a plan uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    /// Distributed Skellam shares (the default): no party ever sees an un-noised sum.
    Skellam,
    /// Distributed discrete Gaussian shares.
    DiscreteGaussian,
    /// **Weaker:** members add no noise; the server adds Gaussian noise after unmasking.
    /// Privacy then rests on trusting the server to do so and to forget the exact sum.
    Central,
}

/// Who must be trusted for the privacy guarantee to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustModel {
    /// Noise is added on the devices; the server only ever sees the noised sum.
    Distributed,
    /// **Weaker:** the server sees the exact sum and is trusted to noise it.
    CentralTrustedServer,
}

/// Each member's noise share, in the integer units of the encoded vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoiseShare {
    /// Each member adds `Sk(local_mu)` per coordinate; the sum of `s` survivors carries
    /// `Sk(s · local_mu)`, variance `2 s local_mu`.
    Skellam {
        /// Poisson mean of each side of the member's Skellam share.
        local_mu: f64,
    },
    /// Each member adds a discrete Gaussian of scale `local_sigma` per coordinate.
    DiscreteGaussian {
        /// Scale of the member's discrete Gaussian share.
        local_sigma: f64,
    },
    /// **Weaker (central DP):** members add nothing; the server adds continuous Gaussian
    /// noise of this standard deviation to every coordinate of the unmasked sum.
    Central {
        /// Standard deviation of the server's noise per coordinate of the sum.
        server_stddev: f64,
    },
}

/// The extra securely summed coordinate that carries the adaptive-clipping indicator: a
/// member adds `+weight` if its update was within the clip and `−weight` if it was clipped,
/// plus the same noise share as every other coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClipIndicator {
    /// Integer magnitude of the indicator (≥ 1).
    pub weight: u32,
    /// The clip update rule the server applies to the decoded count.
    pub adaptive: AdaptiveClipping,
}

/// The DP encoding parameters of one round (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpPlan {
    /// Format version ([`PLAN_VERSION`]).
    pub version: u8,
    /// Coordinates of the model update.
    pub dimension: u32,
    /// L2 clip `C` of the whole update, in model units.
    pub clip: f64,
    /// Integer units per model unit (applied after the rotation).
    pub scale: f64,
    /// The secure sum runs modulo 2^bits.
    pub bits: u32,
    /// Conditional rounding parameter β in [0, 1) (0: plain stochastic rounding).
    pub rounding_beta: f64,
    /// Each member's noise share.
    pub noise: NoiseShare,
    /// Members invited (the most that can contribute to the sum).
    pub cohort: u32,
    /// The fewest survivors whose summed shares still carry the target noise; the server
    /// refuses to decode a sum of fewer.
    pub min_survivors: u32,
    /// Seed of the rotation's random signs (ChaCha20).
    pub rotation_seed: [u8; 32],
    /// The adaptive-clipping indicator coordinate, when adaptive clipping is on.
    pub clip_indicator: Option<ClipIndicator>,
}

/// Bounds on the probability that the secure sum wraps around the modulus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverflowBound {
    /// Any one rotated update coordinate of the full cohort's sum.
    pub per_coordinate: f64,
    /// The clip-indicator coordinate (0 without adaptive clipping).
    pub clip_indicator: f64,
    /// Any coordinate of the vector (union bound).
    pub per_vector: f64,
}

/// The checks a plan and a request share: sizes, clip, rounding parameter, bit width.
fn check_shape(
    cohort: u32,
    dimension: u32,
    clip: f64,
    rounding_beta: f64,
    bits: Option<u32>,
) -> Result<()> {
    check_range(
        "dimension",
        f64::from(dimension),
        1.0,
        f64::from(MAX_DIMENSION),
        "1 ..= 2^26 coordinates",
    )?;
    check_range(
        "cohort",
        f64::from(cohort),
        1.0,
        f64::from(MAX_COHORT),
        "1 ..= 2^24 members",
    )?;
    check_positive("clip", clip)?;
    check_range(
        "rounding_beta",
        rounding_beta,
        0.0,
        1.0 - f64::EPSILON,
        "in [0, 1)",
    )?;
    if let Some(bits) = bits {
        check_range(
            "bits",
            f64::from(bits),
            1.0,
            f64::from(MAX_BITS),
            "1 ..= 32",
        )?;
    }
    Ok(())
}

impl DpPlan {
    /// Checks every field: what a device runs before encoding with a plan it received.
    pub fn validate(&self) -> Result<()> {
        if self.version != PLAN_VERSION {
            return Err(Error::UnsupportedVersion {
                found: self.version,
                supported: PLAN_VERSION,
            });
        }
        check_shape(
            self.cohort,
            self.dimension,
            self.clip,
            self.rounding_beta,
            Some(self.bits),
        )?;
        check_range(
            "min_survivors",
            f64::from(self.min_survivors),
            1.0,
            f64::from(self.cohort),
            "1 ..= cohort",
        )?;
        check_positive("scale", self.scale)?;
        check_range(
            "scale * clip",
            self.l2_bound(),
            0.0,
            MAX_SCALED_NORM,
            "a rounded norm below 2^31",
        )?;
        match self.noise {
            NoiseShare::Skellam { local_mu } => {
                check_range("local_mu", local_mu, MIN_NOISE, 1e15, "in [1e-6, 1e15]")?;
            }
            NoiseShare::DiscreteGaussian { local_sigma } => {
                check_range("local_sigma", local_sigma, MIN_NOISE, 1e8, "in [1e-6, 1e8]")?;
            }
            NoiseShare::Central { server_stddev } => {
                check_range("server_stddev", server_stddev, 0.0, 1e12, "in [0, 1e12]")?;
            }
        }
        if let Some(indicator) = &self.clip_indicator {
            indicator.adaptive.validate()?;
            check_range(
                "clip_indicator.weight",
                f64::from(indicator.weight),
                1.0,
                MAX_SCALED_NORM,
                ">= 1",
            )?;
        }
        Ok(())
    }

    /// Who must be trusted for this plan's privacy guarantee.
    pub fn trust_model(&self) -> TrustModel {
        match self.noise {
            NoiseShare::Central { .. } => TrustModel::CentralTrustedServer,
            NoiseShare::Skellam { .. } | NoiseShare::DiscreteGaussian { .. } => {
                TrustModel::Distributed
            }
        }
    }

    /// The rotation's length: the dimension padded to a power of two.
    pub fn padded_dimension(&self) -> usize {
        padded_len(self.dimension as usize)
    }

    /// Length of every encoded vector (the same for every member): padded dimension plus
    /// the clip-indicator coordinate when adaptive clipping is on.
    pub fn vector_len(&self) -> usize {
        self.padded_dimension() + usize::from(self.clip_indicator.is_some())
    }

    /// The L2 norm every member's rounded update part is guaranteed not to exceed, in integer
    /// units: [`rounded_norm_bound`] of `scale · clip` over the padded dimension. The encoder
    /// enforces it (conditional rounding), so it is a hard bound.
    pub fn l2_bound(&self) -> f64 {
        rounded_norm_bound(
            self.scale * self.clip,
            self.padded_dimension(),
            self.rounding_beta,
        )
    }

    fn indicator_weight(&self) -> f64 {
        self.clip_indicator
            .map_or(0.0, |indicator| f64::from(indicator.weight))
    }

    /// L2 sensitivity of one member's integer contribution (rounded update and clip
    /// indicator) under add/remove-one neighbours.
    pub fn l2_sensitivity(&self) -> f64 {
        self.l2_bound().hypot(self.indicator_weight())
    }

    /// L1 sensitivity of one member's integer contribution: an integer vector's L1 norm is
    /// at most `√n` times and at most the square of its L2 norm.
    pub fn l1_sensitivity(&self) -> f64 {
        let l2 = self.l2_bound();
        l2 * l2.min((self.padded_dimension() as f64).sqrt()) + self.indicator_weight()
    }

    /// Variance per coordinate (integer units) of the noise in a sum of `survivors` members.
    pub fn summed_noise_variance(&self, survivors: u32) -> f64 {
        let s = f64::from(survivors);
        match self.noise {
            NoiseShare::Skellam { local_mu } => 2.0 * local_mu * s,
            NoiseShare::DiscreteGaussian { local_sigma } => local_sigma * local_sigma * s,
            NoiseShare::Central { server_stddev } => server_stddev * server_stddev,
        }
    }

    /// The Gaussian-equivalent noise multiplier of a sum of `survivors` members: the summed
    /// noise's standard deviation over the L2 sensitivity. A device can refuse a plan whose
    /// multiplier at `min_survivors` is below its policy.
    pub fn noise_multiplier(&self, survivors: u32) -> f64 {
        self.summed_noise_variance(survivors).sqrt() / self.l2_sensitivity()
    }

    /// The mechanism the accountant charges for a sum of `survivors` members.
    pub fn mechanism(&self, survivors: u32) -> Mechanism {
        let (l1, l2, members) = (
            self.l1_sensitivity(),
            self.l2_sensitivity(),
            u64::from(survivors),
        );
        match self.noise {
            NoiseShare::Skellam { local_mu } => Mechanism::Skellam {
                l1_sensitivity: l1,
                l2_sensitivity: l2,
                local_mu,
                survivors: members,
            },
            NoiseShare::DiscreteGaussian { local_sigma } => {
                Mechanism::DistributedDiscreteGaussian {
                    l1_sensitivity: l1,
                    l2_sensitivity: l2,
                    local_stddev: local_sigma,
                    survivors: members,
                    dimension: self.vector_len() as u64,
                }
            }
            NoiseShare::Central { server_stddev } => Mechanism::Gaussian {
                noise_multiplier: server_stddev / l2,
            },
        }
    }

    /// One round of this plan with `survivors` members under `sampling`, for the ledger.
    pub fn privacy_event(&self, survivors: u32, sampling: Sampling) -> PrivacyEvent {
        PrivacyEvent {
            mechanism: self.mechanism(survivors),
            sampling,
            count: 1,
        }
    }

    /// The probability that the full cohort's sum wraps: a Chernoff bound over the worst
    /// case of all members' updates aligned, the rounding errors, and the noise (Skellam
    /// through its exact moment generating function, discrete Gaussian as sub-Gaussian).
    ///
    /// Assumes members' updates do not depend on the rotation signs (the seed is public in
    /// the plan: a member crafting its update against it can force wrapping, as it could
    /// corrupt its update anyway).
    pub fn overflow_bound(&self) -> OverflowBound {
        let n = f64::from(self.cohort);
        let half_range = 2f64.powi(self.bits as i32 - 1);
        let c = self.scale * self.clip;
        let padded = self.padded_dimension() as f64;
        let signal_and_rounding = (n * c).powi(2) / padded + n / 4.0;
        let noise = match self.noise {
            NoiseShare::Skellam { local_mu } => NoiseTail::Skellam { mu: local_mu * n },
            NoiseShare::DiscreteGaussian { local_sigma } => NoiseTail::SubGaussian {
                variance: local_sigma * local_sigma * n,
            },
            // The server's noise is added after unwrapping.
            NoiseShare::Central { .. } => NoiseTail::SubGaussian { variance: 0.0 },
        };
        let per_coordinate = tail_bound(half_range, signal_and_rounding, noise);
        let clip_indicator = if self.clip_indicator.is_some() {
            let room = half_range - n * self.indicator_weight();
            if room <= 0.0 {
                1.0
            } else {
                tail_bound(room, 0.0, noise)
            }
        } else {
            0.0
        };
        OverflowBound {
            per_coordinate,
            clip_indicator,
            per_vector: (per_coordinate * padded + clip_indicator).min(1.0),
        }
    }
}

/// The noise part of a summed coordinate, by the moment generating function it admits.
#[derive(Debug, Clone, Copy)]
enum NoiseTail {
    /// `Sk(mu)`: `log E e^{tX} = 2 mu (cosh t − 1)`.
    Skellam { mu: f64 },
    /// Sub-Gaussian with this variance proxy.
    SubGaussian { variance: f64 },
}

impl NoiseTail {
    /// The log moment generating function ψ(t).
    fn log_mgf(self, t: f64) -> f64 {
        match self {
            NoiseTail::Skellam { mu } => 2.0 * mu * (t.cosh() - 1.0),
            NoiseTail::SubGaussian { variance } => variance * t * t / 2.0,
        }
    }

    /// ψ'(t).
    fn log_mgf_slope(self, t: f64) -> f64 {
        match self {
            NoiseTail::Skellam { mu } => 2.0 * mu * t.sinh(),
            NoiseTail::SubGaussian { variance } => variance * t,
        }
    }
}

/// `P(|S| ≥ a)` for `S` = (sub-Gaussian part with variance proxy `v`) + noise, by the
/// two-sided Chernoff bound `2 min_t exp(−t a + t² v / 2 + ψ(t))`.
fn tail_bound(a: f64, v: f64, noise: NoiseTail) -> f64 {
    let psi = |t: f64| noise.log_mgf(t);
    let dpsi = |t: f64| noise.log_mgf_slope(t);
    let slope = |t: f64| -a + t * v + dpsi(t);
    if v == 0.0 && dpsi(1.0) == 0.0 {
        // Nothing random: the sum is 0 and never reaches a > 0.
        return 0.0;
    }
    // The exponent is convex in t; find where its slope crosses zero.
    let mut hi = 1.0;
    while slope(hi) < 0.0 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if slope(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = 0.5 * (lo + hi);
    (2.0 * (-t * a + t * t * v / 2.0 + psi(t)).exp()).min(1.0)
}

/// What a round needs from the DP encoding; [`choose_plan`] turns it into a [`DpPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Members invited to the round.
    pub cohort: u32,
    /// Fraction of the cohort allowed to drop out, in [0, 1); the noise is provisioned for
    /// `⌈cohort · (1 − max_dropout)⌉` survivors.
    pub max_dropout: f64,
    /// Coordinates of the model update.
    pub dimension: u32,
    /// L2 clip `C`, model units.
    pub clip: f64,
    /// Noise standard deviation over the (rounded) L2 sensitivity, at the minimum survivors.
    pub noise_multiplier: f64,
    /// Which noise.
    pub noise: NoiseKind,
    /// Headroom `k`: the modulus holds ±k standard deviations of a summed coordinate.
    pub overflow_sigmas: f64,
    /// Fixed bit width, or `None` to pick the smallest that meets `max_inflation`.
    pub bits: Option<u32>,
    /// Tolerated relative growth of the L2 sensitivity through rounding when picking `bits`.
    pub max_inflation: f64,
    /// Conditional rounding parameter β in [0, 1).
    pub rounding_beta: f64,
    /// Adaptive clipping, or `None` for a fixed clip.
    pub adaptive: Option<AdaptiveClipping>,
    /// Seed of the rotation (fresh random bytes per round).
    pub rotation_seed: [u8; 32],
}

impl PlanRequest {
    /// A request with the defaults: Skellam noise, no dropout allowance, 6σ headroom,
    /// automatic bit width at 1% sensitivity inflation, β = e^{-1/2}, fixed clip.
    pub fn new(
        cohort: u32,
        dimension: u32,
        clip: f64,
        noise_multiplier: f64,
        rotation_seed: [u8; 32],
    ) -> Self {
        PlanRequest {
            cohort,
            max_dropout: 0.0,
            dimension,
            clip,
            noise_multiplier,
            noise: NoiseKind::Skellam,
            overflow_sigmas: DEFAULT_OVERFLOW_SIGMAS,
            bits: None,
            max_inflation: DEFAULT_MAX_INFLATION,
            rounding_beta: DEFAULT_BETA,
            adaptive: None,
            rotation_seed,
        }
    }

    /// The fewest survivors the noise is provisioned for.
    pub fn min_survivors(&self) -> u32 {
        let survivors = (f64::from(self.cohort) * (1.0 - self.max_dropout)).ceil();
        (survivors as u32).clamp(1, self.cohort.max(1))
    }

    fn validate(&self) -> Result<()> {
        check_shape(
            self.cohort,
            self.dimension,
            self.clip,
            self.rounding_beta,
            self.bits,
        )?;
        check_range("max_dropout", self.max_dropout, 0.0, 0.999, "in [0, 0.999]")?;
        check_positive("noise_multiplier", self.noise_multiplier)?;
        check_range(
            "overflow_sigmas",
            self.overflow_sigmas,
            1.0,
            40.0,
            "in [1, 40]",
        )?;
        check_range(
            "max_inflation",
            self.max_inflation,
            1e-6,
            10.0,
            "in [1e-6, 10]",
        )?;
        if let Some(adaptive) = &self.adaptive {
            adaptive.validate()?;
            // The indicator's noise comes out of the same budget: σ_b must exceed z / 2.
            check_range(
                "adaptive.count_stddev",
                adaptive.count_stddev,
                self.noise_multiplier / 2.0 * (1.0 + 1e-9),
                f64::MAX,
                "above noise_multiplier / 2 (the indicator's share of the noise budget)",
            )?;
        }
        Ok(())
    }
}

/// Sizes derived from a scaled clip `c`: the indicator weight and the summed noise's
/// standard deviation at the minimum survivors.
#[derive(Debug, Clone, Copy)]
struct Sizing {
    c: f64,
    weight: u32,
    sigma: f64,
}

fn sizing(request: &PlanRequest, c: f64) -> Sizing {
    let padded = padded_len(request.dimension as usize);
    let l2_bound = rounded_norm_bound(c, padded, request.rounding_beta);
    let z = request.noise_multiplier;
    let weight = match &request.adaptive {
        // σ² = z² (Δ² + h²) with h = σ / (2 σ_b)  ⇒  σ = z Δ / √(1 − z²/(4 σ_b²)); the
        // integer h then fixes σ exactly, so the requested z holds for the whole vector.
        Some(adaptive) => {
            let sigma_b = adaptive.count_stddev;
            let sigma = z * l2_bound / (1.0 - z * z / (4.0 * sigma_b * sigma_b)).sqrt();
            ((sigma / (2.0 * sigma_b)).round() as u32).max(1)
        }
        None => 0,
    };
    Sizing {
        c,
        weight,
        sigma: z * l2_bound.hypot(f64::from(weight)),
    }
}

/// Half the modulus the full cohort's sum needs for `k` standard deviations of headroom.
fn needed_half_range(request: &PlanRequest, s: &Sizing) -> f64 {
    let n = f64::from(request.cohort);
    let padded = padded_len(request.dimension as usize) as f64;
    let k = request.overflow_sigmas;
    let noise_var = match request.noise {
        NoiseKind::Central => 0.0,
        NoiseKind::Skellam | NoiseKind::DiscreteGaussian => {
            s.sigma * s.sigma * n / f64::from(request.min_survivors())
        }
    };
    let update = k * ((n * s.c).powi(2) / padded + n / 4.0 + noise_var).sqrt();
    let indicator = if request.adaptive.is_some() {
        n * f64::from(s.weight) + k * noise_var.sqrt()
    } else {
        0.0
    };
    update.max(indicator)
}

/// Picks the scale and bit width for `request` (see the module docs).
pub fn choose_plan(request: &PlanRequest) -> Result<DpPlan> {
    request.validate()?;
    let bits = match request.bits {
        Some(bits) => bits,
        None => smallest_bits(request)?,
    };
    let half_range = 2f64.powi(bits as i32 - 1);
    let c = largest_fitting_c(request, half_range)?;
    Ok(build(request, bits, sizing(request, c)))
}

/// The smallest bit width whose largest fitting scale keeps the rounding inflation of the
/// L2 sensitivity within `max_inflation`.
fn smallest_bits(request: &PlanRequest) -> Result<u32> {
    let padded = padded_len(request.dimension as usize);
    // The inflation ratio l2_bound(c)/c falls as c grows: bisect (in log space) for the
    // smallest c that meets it.
    let ratio = |c: f64| rounded_norm_bound(c, padded, request.rounding_beta) / c;
    let target = 1.0 + request.max_inflation;
    let (mut lo, mut hi) = (1e-9f64, 1e15f64);
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if ratio(mid) <= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let needed = needed_half_range(request, &sizing(request, hi));
    let bits = (2.0 * needed).log2().ceil().max(1.0);
    if bits > f64::from(MAX_BITS) {
        return Err(Error::SumDoesNotFit {
            members: request.cohort,
            needed_bits: (2.0 * needed).log2(),
            max_bits: MAX_BITS,
            sigmas: request.overflow_sigmas,
        });
    }
    Ok(bits as u32)
}

/// The largest scaled clip whose full-cohort sum fits in ±`half_range` with the headroom.
fn largest_fitting_c(request: &PlanRequest, half_range: f64) -> Result<f64> {
    let fits = |c: f64| needed_half_range(request, &sizing(request, c)) <= half_range;
    let padded = padded_len(request.dimension as usize) as f64;
    // The aligned-signal term alone caps c.
    let mut hi = half_range * padded.sqrt() / (request.overflow_sigmas * f64::from(request.cohort));
    let mut lo = hi * 1e-12;
    if !fits(lo) {
        let needed = needed_half_range(request, &sizing(request, lo));
        return Err(Error::SumDoesNotFit {
            members: request.cohort,
            needed_bits: (2.0 * needed).log2(),
            max_bits: (2.0 * half_range).log2() as u32,
            sigmas: request.overflow_sigmas,
        });
    }
    if fits(hi) {
        lo = hi;
    }
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // The encoder needs every rounded coordinate to fit an i32.
    Ok(lo.min(MAX_SCALED_NORM / 2.0))
}

fn build(request: &PlanRequest, bits: u32, s: Sizing) -> DpPlan {
    let min_survivors = request.min_survivors();
    let m = f64::from(min_survivors);
    let noise = match request.noise {
        NoiseKind::Skellam => NoiseShare::Skellam {
            local_mu: s.sigma * s.sigma / (2.0 * m),
        },
        NoiseKind::DiscreteGaussian => NoiseShare::DiscreteGaussian {
            local_sigma: s.sigma / m.sqrt(),
        },
        NoiseKind::Central => NoiseShare::Central {
            server_stddev: s.sigma,
        },
    };
    DpPlan {
        version: PLAN_VERSION,
        dimension: request.dimension,
        clip: request.clip,
        scale: s.c / request.clip,
        bits,
        rounding_beta: request.rounding_beta,
        noise,
        cohort: request.cohort,
        min_survivors,
        rotation_seed: request.rotation_seed,
        clip_indicator: request.adaptive.map(|adaptive| ClipIndicator {
            weight: s.weight,
            adaptive,
        }),
    }
}

/// A privacy target for [`calibrate_plan`]: `rounds` rounds under `sampling` must stay
/// within (`epsilon`, `delta`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrivacyTarget {
    /// Target ε over all rounds.
    pub epsilon: f64,
    /// Target δ.
    pub delta: f64,
    /// How each round's cohort is selected.
    pub sampling: Sampling,
    /// Rounds the budget must cover.
    pub rounds: u64,
}

/// The plan with the least noise whose `rounds` rounds, each with exactly the minimum
/// survivors (the least noise the plan allows), meet `target`, and the ε it spends.
/// `request.noise_multiplier` is ignored (it is what is calibrated).
///
/// The distributed mechanisms are accounted with Rényi DP (Skellam: Agarwal et al. 2021;
/// discrete Gaussian: Kairouz et al. 2021), the only accountant that bounds them here; the
/// central mode uses `kind`.
pub fn calibrate_plan(
    request: &PlanRequest,
    target: PrivacyTarget,
    kind: AccountantKind,
) -> Result<(DpPlan, f64)> {
    let kind = match request.noise {
        NoiseKind::Central => kind,
        NoiseKind::Skellam | NoiseKind::DiscreteGaussian => AccountantKind::Rdp,
    };
    let plan_for = |z: f64| {
        let mut req = request.clone();
        req.noise_multiplier = z;
        if let Some(adaptive) = &req.adaptive {
            // Keep the indicator's share of the budget feasible while searching.
            req.noise_multiplier = z.min(adaptive.count_stddev * 2.0 * (1.0 - 1e-6));
        }
        choose_plan(&req)
    };
    let events_for = |plan: &DpPlan| {
        let mut event = plan.privacy_event(plan.min_survivors, target.sampling);
        event.count = target.rounds;
        vec![event]
    };
    // Surface request errors before searching.
    plan_for(1.0)?;
    let z = accounting::calibrate(kind, target.epsilon, target.delta, |z| match plan_for(z) {
        Ok(plan) => events_for(&plan),
        // A multiplier whose plan cannot exist counts as missing the target.
        Err(_) => vec![PrivacyEvent::subsampled_gaussian(0.0, 1.0, 1)],
    })?;
    let plan = plan_for(z)?;
    let epsilon = accounting::epsilon_for_events(kind, &events_for(&plan), target.delta)?;
    Ok((plan, epsilon))
}
