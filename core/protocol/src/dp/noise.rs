//! Noise samplers, all driven by a caller-supplied cryptographically secure RNG.
//!
//! - [`poisson`]: exact Poisson sampler (multiplication method below λ = 10, Hörmann's PTRS
//!   transformed rejection with squeeze above; the acceptance test uses the exact log-pmf, so
//!   no normal approximation enters at any λ).
//! - [`skellam`]: `Pois(μ) − Pois(μ)`, the default distributed noise (closed under
//!   summation: the sum of members' shares is again Skellam).
//! - [`discrete_gaussian`]: Canonne–Kamath–Steinke (2020) rejection sampler from a discrete
//!   Laplace proposal, with their Bernoulli(e^-γ) coin construction.
//! - [`gaussian`]: continuous Gaussian for the (weaker) central mode.
//! - [`AliasTable`]: the fast path the encoder uses for a million coordinates: the exact pmf
//!   of the plan's noise (Skellam through Miller's backward recurrence for `e^{-2μ} I_k(2μ)`,
//!   discrete Gaussian directly) is quantized into a Walker alias table that costs one
//!   lookup and 3 bytes of keystream per coordinate ([`AliasTable::sample_head`]: the bucket
//!   and the coin's first bits; the coin's other bits are drawn only on a tie).
//! - [`SummedAliasTable`]: Skellam noise too wide for one table, drawn as the sum of `j`
//!   table draws of Skellam(μ/j) — exact, since Skellam is closed under convolution — for
//!   `j` up to [`MAX_SUMMED_DRAWS`], beyond which the exact sampler is faster.
//!
//! Floating point: coins compare 53-bit uniforms against f64 probabilities (as TensorFlow
//! Privacy's samplers do) and the alias table resolves probabilities to 2^-63 per entry, so
//! every sampler's output is within total variation 2^-46 of its exact distribution (a sum
//! of `j` table draws within `j` · 2^-46 ≤ 2^-42). A mechanism within total variation τ of
//! one that is (ε, δ)-DP is (ε, δ + (1 + e^ε)·τ)-DP; at τ ≤ 2^-42 ≈ 2.3e-13 that is far
//! below any δ a deployment uses.

use rand_core::{CryptoRng, RngCore};

use super::error::{Error, Result};
use crate::keystream::{Exhausted, Keystream};

/// Below this mean the multiplication method is both exact and faster than PTRS.
const PTRS_THRESHOLD: f64 = 10.0;
/// Largest alias table: its index and alias fit 16 bits (entries pack into one u64).
pub const MAX_TABLE_BITS: u32 = 16;
/// Probability resolution of one alias bucket: 47 bits.
const BUCKET_BITS: u32 = 47;
/// Tail mass the alias table may drop (it is below the table's own resolution).
const TAIL_MASS: f64 = 1.0e-20;

/// A uniform double in `[0, 1)` with 53 random bits.
pub fn uniform<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `[0, n)`, unbiased (Lemire's multiply-and-reject). `n` must be > 0.
pub fn uniform_below<R: RngCore + CryptoRng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// A draw from the Poisson distribution of mean `lambda` (finite, ≥ 0).
pub fn poisson<R: RngCore + CryptoRng + ?Sized>(lambda: f64, rng: &mut R) -> u64 {
    if lambda <= 0.0 {
        0
    } else if lambda < PTRS_THRESHOLD {
        poisson_multiplication(lambda, rng)
    } else {
        poisson_ptrs(lambda, rng)
    }
}

/// Knuth's multiplication method: count uniforms until their product drops below e^-λ.
fn poisson_multiplication<R: RngCore + CryptoRng + ?Sized>(lambda: f64, rng: &mut R) -> u64 {
    let limit = (-lambda).exp();
    let mut product = 1.0;
    let mut count = 0;
    loop {
        product *= uniform(rng);
        if product <= limit {
            return count;
        }
        count += 1;
    }
}

/// Hörmann (1993), "The transformed rejection method for generating Poisson random
/// variables", algorithm PTRS: a transformed-rejection proposal with a squeeze, and an exact
/// acceptance test against `log p(k) = -λ + k log λ - log k!`.
fn poisson_ptrs<R: RngCore + CryptoRng + ?Sized>(lambda: f64, rng: &mut R) -> u64 {
    let sqrt_lambda = lambda.sqrt();
    let log_lambda = lambda.ln();
    let b = 0.931 + 2.53 * sqrt_lambda;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let v_r = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = uniform(rng) - 0.5;
        let v = uniform(rng);
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= v_r {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
        if lhs <= -lambda + k * log_lambda - libm::lgamma(k + 1.0) {
            return k as u64;
        }
    }
}

/// A draw from the Skellam distribution `Pois(mu) − Pois(mu)` (variance `2·mu`).
pub fn skellam<R: RngCore + CryptoRng + ?Sized>(mu: f64, rng: &mut R) -> i64 {
    poisson(mu, rng) as i64 - poisson(mu, rng) as i64
}

/// Bernoulli(p) from a 53-bit uniform.
fn bernoulli<R: RngCore + CryptoRng + ?Sized>(p: f64, rng: &mut R) -> bool {
    uniform(rng) < p
}

/// Bernoulli(e^-γ) for γ ≥ 0 without evaluating the exponential (CKS 2020, Algorithm 1):
/// for γ ≤ 1 draw Bernoulli(γ/k) for k = 1, 2, ... until one fails and answer whether k is
/// odd; for larger γ chain ⌊γ⌋ Bernoulli(e^-1) coins and one for the fractional rest.
fn bernoulli_exp_neg<R: RngCore + CryptoRng + ?Sized>(gamma: f64, rng: &mut R) -> bool {
    let mut remaining = gamma;
    while remaining > 1.0 {
        if !bernoulli_exp_neg_unit(1.0, rng) {
            return false;
        }
        remaining -= 1.0;
    }
    bernoulli_exp_neg_unit(remaining, rng)
}

fn bernoulli_exp_neg_unit<R: RngCore + CryptoRng + ?Sized>(gamma: f64, rng: &mut R) -> bool {
    let mut k = 1.0;
    while bernoulli(gamma / k, rng) {
        k += 1.0;
    }
    k % 2.0 == 1.0
}

/// Discrete Laplace with scale `t` (a positive integer): `P(y) ∝ e^{-|y|/t}` (CKS 2020,
/// Algorithm 2).
fn discrete_laplace<R: RngCore + CryptoRng + ?Sized>(t: u64, rng: &mut R) -> i64 {
    loop {
        let u = uniform_below(rng, t);
        if !bernoulli_exp_neg(u as f64 / t as f64, rng) {
            continue;
        }
        let mut v: u64 = 0;
        while bernoulli_exp_neg(1.0, rng) {
            v += 1;
        }
        let negative = rng.next_u32() & 1 == 1;
        if negative && u == 0 && v == 0 {
            continue;
        }
        let magnitude = (u + t * v) as i64;
        return if negative { -magnitude } else { magnitude };
    }
}

/// A draw from the discrete Gaussian `P(y) ∝ e^{-y²/(2σ²)}` on the integers (CKS 2020,
/// Algorithm 3): discrete Laplace proposals of scale `⌊σ⌋ + 1`, accepted with probability
/// `e^{-(|y| − σ²/t)²/(2σ²)}`. `sigma` must be finite and > 0.
pub fn discrete_gaussian<R: RngCore + CryptoRng + ?Sized>(sigma: f64, rng: &mut R) -> i64 {
    let t = sigma.floor() as u64 + 1;
    let sigma_sq = sigma * sigma;
    let shift = sigma_sq / t as f64;
    loop {
        let y = discrete_laplace(t, rng);
        let gap = y.unsigned_abs() as f64 - shift;
        if bernoulli_exp_neg(gap * gap / (2.0 * sigma_sq), rng) {
            return y;
        }
    }
}

/// A standard normal draw (Box–Muller on two 53-bit uniforms). Used only by the central
/// mode, where the trusted server adds continuous Gaussian noise to the decoded sum.
pub fn gaussian<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    // 1 − U lies in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - uniform(rng)).ln()).sqrt();
    radius * (std::f64::consts::TAU * uniform(rng)).cos()
}

/// The Skellam pmf `P(k) = e^{-2μ} I_k(2μ)` for `k = 0..len` (symmetric in k), from Miller's
/// backward recurrence `I_{k-1}(x) = I_{k+1}(x) + (2k/x) I_k(x)` normalized by
/// `I_0(x) + 2 Σ_{k≥1} I_k(x) = e^x`. Stable at any μ > 0, unlike the series or a
/// convolution of Poisson pmfs.
pub fn skellam_pmf(mu: f64, len: usize) -> Vec<f64> {
    let x = 2.0 * mu;
    // Start far beyond where I_k(x)/I_0(x) is negligible so the recurrence has converged to
    // the minimal solution by index `len`.
    let start = len + 32 + (20.0 * x.sqrt()) as usize;
    let mut values = vec![0.0f64; start + 2];
    values[start] = 1.0e-300;
    for k in (1..=start).rev() {
        let next = values[k + 1] + (2.0 * k as f64 / x) * values[k];
        values[k - 1] = next;
        if next > 1.0e250 {
            // Rescale everything computed so far; entries that underflow were negligible.
            for v in &mut values[k - 1..] {
                *v *= 1.0e-250;
            }
        }
    }
    let total = values[0] + 2.0 * values[1..].iter().sum::<f64>();
    values.truncate(len);
    for v in &mut values {
        *v /= total;
    }
    values
}

/// The discrete Gaussian pmf `P(k) ∝ e^{-k²/(2σ²)}` for `k = 0..len`, normalized over all
/// integers (terms beyond `len` are summed until they vanish).
pub fn discrete_gaussian_pmf(sigma: f64, len: usize) -> Vec<f64> {
    let weight = |k: usize| (-((k * k) as f64) / (2.0 * sigma * sigma)).exp();
    let mut total = weight(0);
    let mut k = 1;
    loop {
        let w = weight(k);
        total += 2.0 * w;
        if (w == 0.0 || w < total * 1e-30) && k >= len {
            break;
        }
        k += 1;
    }
    (0..len).map(|k| weight(k) / total).collect()
}

/// Which noise an [`AliasTable`] holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseDistribution {
    /// `Pois(mu) − Pois(mu)`.
    Skellam {
        /// Poisson mean of each side.
        mu: f64,
    },
    /// Discrete Gaussian of scale `sigma`.
    DiscreteGaussian {
        /// Scale parameter.
        sigma: f64,
    },
}

impl NoiseDistribution {
    /// Standard deviation (Skellam: `√(2μ)`; discrete Gaussian: its scale, an upper bound).
    pub fn stddev(&self) -> f64 {
        match *self {
            NoiseDistribution::Skellam { mu } => (2.0 * mu).sqrt(),
            NoiseDistribution::DiscreteGaussian { sigma } => sigma,
        }
    }

    /// One draw from the exact sampler.
    pub fn sample_exact<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        match *self {
            NoiseDistribution::Skellam { mu } => skellam(mu, rng),
            NoiseDistribution::DiscreteGaussian { sigma } => discrete_gaussian(sigma, rng),
        }
    }

    /// `P(k)` for `k = 0..len` (both distributions are symmetric).
    pub fn pmf(&self, len: usize) -> Vec<f64> {
        match *self {
            NoiseDistribution::Skellam { mu } => skellam_pmf(mu, len),
            NoiseDistribution::DiscreteGaussian { sigma } => discrete_gaussian_pmf(sigma, len),
        }
    }

    /// The one-sided support `K` the alias table keeps — the smallest `K` whose two-sided
    /// tail mass beyond ±K is below [`TAIL_MASS`] — and the pmf on `0..=K` (computed once:
    /// at the widest tables it is most of the table's build time).
    fn table_support(&self) -> (usize, Vec<f64>) {
        // Both tails are at most Gaussian-like plus a Poisson correction for small μ; 12σ +
        // 40 always covers the cut, and the pmf itself decides the exact radius.
        let bound = (12.0 * self.stddev()) as usize + 40;
        let mut pmf = self.pmf(bound + 1);
        let mut tail = 0.0;
        let mut radius = 0;
        for k in (1..=bound).rev() {
            tail += 2.0 * pmf[k];
            if tail > TAIL_MASS {
                radius = k;
                break;
            }
        }
        pmf.truncate(radius + 1);
        (radius, pmf)
    }
}

/// A Walker alias table over `[-K, K]` (padded to a power of two with empty buckets): one
/// 64-bit random word gives the bucket (top bits) and the coin (next 47 bits).
#[derive(Clone)]
pub struct AliasTable {
    /// `(threshold << 16) | alias` per bucket; the threshold is in units of 2^-47.
    entries: Vec<u64>,
    /// The same buckets as [`Self::sample_head`] reads them, in half the cache:
    /// `(threshold >> (47 − coin bits)) << index_bits | alias`, 25 bits.
    heads: Vec<u32>,
    index_bits: u32,
    radius: i64,
}

impl std::fmt::Debug for AliasTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliasTable")
            .field("buckets", &self.entries.len())
            .field("radius", &self.radius)
            .finish()
    }
}

impl AliasTable {
    /// Builds the table for `distribution`; fails when the support needs more than
    /// 2^[`MAX_TABLE_BITS`] buckets (callers then fall back to the exact sampler).
    pub fn new(distribution: NoiseDistribution) -> Result<Self> {
        let (radius, pmf) = distribution.table_support();
        let support = 2 * radius + 1;
        let index_bits = support.next_power_of_two().trailing_zeros().max(1);
        if index_bits > MAX_TABLE_BITS {
            return Err(Error::InvalidParameter {
                name: "noise stddev",
                value: distribution.stddev(),
                expected: "small enough for a 2^16-entry alias table",
            });
        }
        let buckets = 1usize << index_bits;
        let unit = 2f64.powi((BUCKET_BITS + index_bits) as i32);
        let mut weights: Vec<u64> = (0..buckets)
            .map(|i| {
                let k = i as i64 - radius as i64;
                if i < support {
                    (pmf[k.unsigned_abs() as usize] * unit) as u64
                } else {
                    0
                }
            })
            .collect();
        // Give the rounding residue (either sign: the f64 pmf may sum to a hair above 1) to
        // the mode so the weights total exactly buckets · 2^47.
        let total: u64 = weights.iter().sum();
        let target = 1u64 << (BUCKET_BITS + index_bits);
        weights[radius] = (weights[radius] + target).wrapping_sub(total);
        let entries = vose(&weights, 1u64 << BUCKET_BITS);
        let coin_bits = HEAD_BITS - index_bits;
        let heads = entries
            .iter()
            .map(|&entry| {
                let threshold = (entry >> 16) >> (BUCKET_BITS - coin_bits);
                ((threshold << index_bits) | (entry & 0xffff)) as u32
            })
            .collect();
        Ok(AliasTable {
            entries,
            heads,
            index_bits,
            radius: radius as i64,
        })
    }

    /// The draw selected by one uniform 64-bit word.
    #[inline]
    pub fn sample(&self, word: u64) -> i64 {
        let index = (word >> (64 - self.index_bits)) as usize;
        let coin = (word << self.index_bits) >> (64 - BUCKET_BITS);
        let entry = self.entries[index];
        self.pick(index, entry, coin < entry >> 16)
    }
}

/// Random bits [`AliasTable::sample_head`] reads per draw (3 keystream bytes).
pub const HEAD_BITS: u32 = 24;
/// Keystream bytes of one head.
pub(crate) const HEAD_BYTES: usize = (HEAD_BITS / 8) as usize;
/// Draws per group of the AVX-512 kernel ([`covey_simd::Avx512::alias_draws`]).
const SIMD_GROUP: usize = 16;

/// A head from its 3 keystream bytes, big endian.
#[inline(always)]
fn head_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
}

impl AliasTable {
    /// The draw selected by the first [`HEAD_BITS`] bits of a uniform word (`head`, below
    /// 2^24), or `None` when those bits leave the coin tied with the bucket's threshold
    /// (chance 2^-(24 − index bits), at most 2^-8): then [`Self::sample_tie`] decides with
    /// further bits. Together they give exactly the distribution of [`Self::sample`] on the
    /// word `head · 2^40 + tail / 2^24`, for a third of its random bytes.
    #[inline]
    pub fn sample_head(&self, head: u32) -> Option<i64> {
        let (draw, tied) = self.head_draw(head);
        (!tied).then_some(draw)
    }

    /// [`Self::sample_head`] without the branch: the draw (meaningless when tied) and
    /// whether the head tied.
    #[inline(always)]
    fn head_draw(&self, head: u32) -> (i64, bool) {
        let coin_bits = HEAD_BITS - self.index_bits;
        let index = head >> coin_bits;
        let coin = head & ((1 << coin_bits) - 1);
        let entry = self.heads[index as usize];
        let threshold = entry >> self.index_bits;
        let alias = entry & ((1 << self.index_bits) - 1);
        // A select by mask, not a branch: whether the coin keeps the bucket's own value is a
        // fair-ish coin per draw, which a branch predictor misses half the time.
        let own = u32::from(coin < threshold).wrapping_neg();
        let value = alias ^ ((index ^ alias) & own);
        (i64::from(value) - self.radius, coin == threshold)
    }

    /// Adds to each of `values` the draw of its head (the next 3 bytes of `heads`, big
    /// endian) and wraps with `mask`; a tied head (rare) is completed at once with a tail
    /// from `stream`. Only that rare case branches, so the lookups of consecutive draws
    /// overlap. Where the CPU has AVX-512 the draws run 16 at a time; the kernel stops after
    /// a group with a tied head, whose tied draws are completed here in order before it goes
    /// on (and the last partial group takes the scalar path), so the tails are drawn in the
    /// same order and the result is the same bit for bit.
    pub(crate) fn add_draws(
        &self,
        values: &mut [u32],
        heads: &[u8],
        mask: u32,
        stream: &mut Keystream,
    ) -> std::result::Result<(), Exhausted> {
        let Some(simd) = covey_simd::Avx512::detect() else {
            return self.add_draws_scalar(values, heads, mask, stream);
        };
        let mut at = 0;
        loop {
            let (done, mut tied) = simd.alias_draws(
                &self.heads,
                self.index_bits,
                self.radius as u32,
                &heads[HEAD_BYTES * at..],
                &mut values[at..],
                mask,
            );
            at += done;
            if tied == 0 {
                break;
            }
            // The tied lanes of the last group, lowest first.
            while tied != 0 {
                let i = at - SIMD_GROUP + tied.trailing_zeros() as usize;
                let draw = self.settle_tie(head_of(&heads[HEAD_BYTES * i..]), stream)?;
                values[i] = values[i].wrapping_add(draw as u32) & mask;
                tied &= tied - 1;
            }
        }
        // The last partial group.
        self.add_draws_scalar(&mut values[at..], &heads[HEAD_BYTES * at..], mask, stream)
    }

    /// [`Self::add_draws`] one value at a time.
    fn add_draws_scalar(
        &self,
        values: &mut [u32],
        heads: &[u8],
        mask: u32,
        stream: &mut Keystream,
    ) -> std::result::Result<(), Exhausted> {
        for (v, head) in values.iter_mut().zip(heads.chunks_exact(HEAD_BYTES)) {
            let head = head_of(head);
            let (mut draw, tied) = self.head_draw(head);
            if tied {
                draw = self.settle_tie(head, stream)?;
            }
            *v = v.wrapping_add(draw as u32) & mask;
        }
        Ok(())
    }

    /// The draw of a tied `head`, completed with the next tail of `stream` (the one place
    /// tails are drawn, so the SIMD and scalar paths consume the stream alike).
    fn settle_tie(&self, head: u32, stream: &mut Keystream) -> std::result::Result<i64, Exhausted> {
        Ok(self.sample_tie(head, stream.next_u64()?))
    }

    /// Completes a draw [`Self::sample_head`] left tied, with the coin's remaining bits
    /// taken from the top of `tail` (a uniform word).
    pub fn sample_tie(&self, head: u32, tail: u64) -> i64 {
        let coin_bits = HEAD_BITS - self.index_bits;
        let rest = BUCKET_BITS - coin_bits;
        let index = (head >> coin_bits) as usize;
        let entry = self.entries[index];
        let threshold = (entry >> 16) & ((1 << rest) - 1);
        self.pick(index, entry, tail >> (64 - rest) < threshold)
    }

    /// The bucket's own value when `own`, else its alias.
    #[inline]
    fn pick(&self, index: usize, entry: u64, own: bool) -> i64 {
        let value = if own {
            index
        } else {
            (entry & 0xffff) as usize
        };
        value as i64 - self.radius
    }
}

/// Most table draws a [`SummedAliasTable`] sums per coordinate. Measured in the encoder
/// (bench profile, the 20-bit participation plan's 131 072 coordinates, μ from 5e6 to 1e10):
/// each summed draw costs ~2.2 ns per coordinate (0.29 ms per draw for the vector) against
/// ~70 ns for the exact Skellam sampler (9.2 ms), and the table costs ~2 ms to build per
/// round, which the exact sampler does not: the sum wins up to ~20 draws, so 16 keeps a
/// margin (and the sum's total variation at most 16 · 2^-46 = 2^-42).
pub const MAX_SUMMED_DRAWS: u32 = 16;

/// Skellam noise too wide for one [`AliasTable`], drawn as the sum of `draws` independent
/// draws from the table of Skellam(μ / draws). Skellam(μ) is the convolution of `j` copies
/// of Skellam(μ/j), so the sum has the exact distribution up to the table's own precision
/// (total variation at most `draws` · 2^-46).
#[derive(Debug, Clone)]
pub struct SummedAliasTable {
    table: AliasTable,
    draws: u32,
}

impl SummedAliasTable {
    /// The table of Skellam(μ/j) for the smallest `j` (1 when one table fits) whose table
    /// fits 2^[`MAX_TABLE_BITS`] buckets. Fails for the discrete Gaussian (not closed under
    /// convolution) and when `j` would exceed [`MAX_SUMMED_DRAWS`] (callers then fall back
    /// to the exact sampler).
    pub fn new(distribution: NoiseDistribution) -> Result<Self> {
        let NoiseDistribution::Skellam { mu } = distribution else {
            return Err(Error::InvalidParameter {
                name: "noise stddev",
                value: distribution.stddev(),
                expected: "Skellam noise (a sum of discrete Gaussians is not one)",
            });
        };
        (fewest_draws(mu)..=MAX_SUMMED_DRAWS)
            .find_map(|draws| {
                let share = NoiseDistribution::Skellam {
                    mu: mu / f64::from(draws),
                };
                AliasTable::new(share)
                    .ok()
                    .map(|table| SummedAliasTable { table, draws })
            })
            .ok_or(Error::InvalidParameter {
                name: "noise stddev",
                value: distribution.stddev(),
                expected: "small enough for a sum of at most 16 alias-table draws",
            })
    }

    /// The table every draw comes from: Skellam(μ / [`Self::draws`]).
    pub fn table(&self) -> &AliasTable {
        &self.table
    }

    /// The table alone (what one draw per sample needs).
    pub fn into_table(self) -> AliasTable {
        self.table
    }

    /// Table draws summed per sample.
    pub fn draws(&self) -> u32 {
        self.draws
    }

    /// One sample: the sum of [`Self::draws`] table draws, one 64-bit word of `rng` each.
    pub fn sample<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> i64 {
        (0..self.draws)
            .map(|_| self.table.sample(rng.next_u64()))
            .sum()
    }
}

/// A lower bound on the draws a [`SummedAliasTable`] for Skellam(`mu`) needs, so that its
/// search skips tables that cannot fit (each failed try computes a pmf ~12σ long): a table
/// keeps more than ±9σ (a Gaussian's two-sided mass beyond 9σ is 2e-19, above
/// [`TAIL_MASS`], and Skellam's tails are heavier), so Skellam(μ/j) fits only if
/// 9·√(2μ/j) < 2^(MAX_TABLE_BITS − 1).
fn fewest_draws(mu: f64) -> u32 {
    let widest = f64::from(1u32 << (MAX_TABLE_BITS - 1)) / 9.0;
    let needed = (2.0 * mu / (widest * widest)).floor() + 1.0;
    // Saturating: a NaN or huge μ needs more than any sum allows.
    if needed.is_finite() && needed < f64::from(u32::MAX) {
        (needed as u32).max(1)
    } else {
        u32::MAX
    }
}

/// Vose's alias construction on integer weights summing to `buckets · capacity`: exact, so
/// the table's probabilities are the quantized pmf without further rounding.
fn vose(weights: &[u64], capacity: u64) -> Vec<u64> {
    let mut remaining = weights.to_vec();
    let mut entries = vec![capacity << 16; weights.len()];
    let (mut small, mut large): (Vec<usize>, Vec<usize>) =
        (0..weights.len()).partition(|&i| weights[i] < capacity);
    while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
        small.pop();
        entries[s] = (remaining[s] << 16) | l as u64;
        remaining[l] -= capacity - remaining[s];
        if remaining[l] < capacity {
            large.pop();
            small.push(l);
        }
    }
    // Whatever is left holds exactly `capacity` (integer weights leave no rounding drift):
    // it keeps its own full bucket.
    for i in small.into_iter().chain(large) {
        entries[i] = (capacity << 16) | i as u64;
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skellam_pmf_matches_a_poisson_convolution() {
        for mu in [0.3, 4.0, 40.0] {
            let pmf = skellam_pmf(mu, 30);
            let pois = |j: usize| (-mu + j as f64 * mu.ln() - libm::lgamma(j as f64 + 1.0)).exp();
            for (k, &p) in pmf.iter().enumerate() {
                let direct: f64 = (0..600).map(|j| pois(j) * pois(j + k)).sum();
                assert!(
                    (p - direct).abs() <= 1e-12 * direct.max(1e-300) + 1e-300,
                    "{mu} {k}"
                );
            }
        }
    }

    #[test]
    fn alias_weights_total_exactly_and_sampling_covers_the_support() {
        let table = AliasTable::new(NoiseDistribution::Skellam { mu: 2.0 }).unwrap();
        // Word 0 picks bucket 0 with coin 0; all-ones picks the last bucket.
        let lo = table.sample(0);
        let hi = table.sample(u64::MAX);
        assert!(lo.abs() <= table.radius && hi.abs() <= table.radius);
    }

    #[test]
    fn head_and_tie_draws_equal_the_full_word_draw() {
        // Every table width the encoder meets, words forced to tie as well as random ones.
        let mut stream = Keystream::new(&[5; 32], &[0; 12]);
        for dist in [
            NoiseDistribution::Skellam { mu: 0.7 },
            NoiseDistribution::Skellam { mu: 148_014.0 },
            NoiseDistribution::DiscreteGaussian { sigma: 3_000.0 },
        ] {
            let table = AliasTable::new(dist).unwrap();
            let coin_bits = HEAD_BITS - table.index_bits;
            let (mut forced, mut ties) = (0, 0);
            for round in 0..200_000 {
                let mut head = (stream.next_u64().unwrap() >> 40) as u32;
                let index = head >> coin_bits;
                let threshold = (table.entries[index as usize] >> 16) >> (BUCKET_BITS - coin_bits);
                // Force a tie on every other draw (full buckets, threshold 2^47, never tie).
                if round % 2 == 0 && threshold < 1 << coin_bits {
                    head = (index << coin_bits) | threshold as u32;
                    forced += 1;
                }
                let tail = stream.next_u64().unwrap();
                let lazy = table
                    .sample_head(head)
                    .unwrap_or_else(|| table.sample_tie(head, tail));
                ties += usize::from(table.sample_head(head).is_none());
                let word = (u64::from(head) << 40) | (tail >> 24);
                assert_eq!(lazy, table.sample(word), "{dist:?} head {head:#x}");
            }
            assert!(forced > 10_000 && ties >= forced, "{dist:?}: {ties} ties");
        }
    }

    #[test]
    fn batch_draws_equal_one_at_a_time_draws() {
        // The encoder's batch path against sample_head/sample_tie draw by draw, with ties
        // forced, on a wrapping modulus.
        let table = AliasTable::new(NoiseDistribution::Skellam { mu: 148_014.0 }).unwrap();
        let coin_bits = HEAD_BITS - table.index_bits;
        let mut heads = vec![0u8; HEAD_BYTES * 4096];
        Keystream::new(&[6; 32], &[0; 12]).fill(&mut heads).unwrap();
        let mut forced = 0;
        for head in heads.chunks_exact_mut(HEAD_BYTES).step_by(7) {
            let index = head_of(head) >> coin_bits;
            let threshold = table.heads[index as usize] >> table.index_bits;
            if threshold < 1 << coin_bits {
                let tied = (index << coin_bits) | threshold;
                head.copy_from_slice(&tied.to_be_bytes()[1..]);
                forced += 1;
            }
        }
        assert!(forced > 100, "{forced}");
        let mask = (1u32 << 16) - 1;
        let start: Vec<u32> = (0..4096u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let mut batch = start.clone();
        let mut tails = Keystream::new(&[7; 32], &[0; 12]);
        table
            .add_draws(&mut batch, &heads, mask, &mut tails)
            .unwrap();
        let mut tails = Keystream::new(&[7; 32], &[0; 12]);
        for ((&b, &s), head) in batch.iter().zip(&start).zip(heads.chunks_exact(HEAD_BYTES)) {
            let head = head_of(head);
            let draw = table
                .sample_head(head)
                .unwrap_or_else(|| table.sample_tie(head, tails.next_u64().unwrap()));
            assert_eq!(b, s.wrapping_add(draw as u32) & mask, "head {head:#x}");
        }
    }

    #[test]
    fn oversized_tables_are_refused() {
        assert!(AliasTable::new(NoiseDistribution::DiscreteGaussian { sigma: 1e5 }).is_err());
    }
}
