//! Differential privacy encoding: what turns a member's model delta into an update that is
//! safe to securely aggregate, and what turns the aggregated sum back into a model update.
//!
//! Client side ([`Encoder`]), per [`DpPlan`]:
//! 1. **Clip** the whole update to L2 norm `C` ([`clip`]); with adaptive clipping the member
//!    also reports, as one more securely summed and noised coordinate, whether it was
//!    within the clip.
//! 2. **Rotate** with a randomized Walsh–Hadamard transform whose signs come from the
//!    plan's seed ([`rotation`]), so no coordinate carries much of the norm.
//! 3. **Scale and round** stochastically to integers, re-rounding until the rounded norm is
//!    within the bound the accountant uses ([`rounding`]).
//! 4. **Noise**: add this member's share of Skellam (default) or discrete Gaussian noise
//!    ([`noise`]), sized so that the sum over the plan's minimum survivors carries the
//!    target noise.
//! 5. **Wrap** into Z_{2^B}, B ≤ 32: the `Vec<u32>` secure aggregation sums.
//!
//! Steps 2–5 run as two sweeps over the padded vector (see [`Encoder::encode_into`]); a
//! caller that encodes repeatedly keeps an [`EncodeScratch`] so the buffers are reused.
//!
//! Server side ([`Decoder`]): lift the modular sum to centered integers, descale,
//! inverse-rotate, divide by the survivors, report the noise the result carries and (with
//! adaptive clipping) the next round's clip.
//!
//! **Central mode** ([`NoiseKind::Central`], [`TrustModel::CentralTrustedServer`]) is
//! *weaker*: members only clip and quantize; the server sees the exact sum and adds Gaussian
//! noise itself ([`Decoder::decode_central`]). Use it only with a server you trust.
//!
//! Interface with secure aggregation: every encoded vector has [`DpPlan::vector_len`]
//! values, each below 2^[`DpPlan::bits`]; the sum is taken with wrapping arithmetic mod
//! 2^bits; the decoder takes that sum, the bits and the survivor count. Interface with the
//! accountants: [`DpPlan::mechanism`] (rounded sensitivities, per-member noise, survivors).

pub mod clip;
mod coins;
pub mod decode;
pub mod encode;
pub mod error;
pub mod noise;
pub mod plan;
pub mod rotation;
pub mod rounding;

pub use clip::{AdaptiveClipping, clip_l2, l2_norm};
pub use decode::{ClipEstimate, DecodedUpdate, Decoder};
pub use encode::{EncodeScratch, EncodedUpdate, Encoder, NoiseSampling};
pub use error::{Error, Result};
pub use plan::{
    ClipIndicator, DEFAULT_MAX_INFLATION, DEFAULT_OVERFLOW_SIGMAS, DpPlan, MAX_BITS, MAX_COHORT,
    MAX_DIMENSION, NoiseKind, NoiseShare, OverflowBound, PLAN_VERSION, PlanRequest, PrivacyTarget,
    TrustModel, calibrate_plan, choose_plan,
};
pub use rounding::{DEFAULT_BETA, rounded_norm_bound};
