//! SIMD kernels of the DP encoder, chosen at run time.
//!
//! The workspace compiles for baseline x86-64 (SSE2) so that one binary runs everywhere, but
//! the encoder's hot loops — the Walsh–Hadamard butterflies, the fixed-point stochastic
//! rounding and the alias-table noise draws — are several times faster with AVX-512: 16 f32
//! or 8 f64 lanes, mask registers for blends and compares.
//! This crate holds those kernels behind [`Avx512`], a proof token that only
//! [`Avx512::detect`] can create (after `cpuid` says the CPU has the features), so every
//! kernel is a safe method. Callers keep their portable code as the fallback (phones are
//! aarch64; older x86-64 CPUs lack AVX-512) and use a kernel only when the token exists.
//!
//! Every kernel computes exactly what its documented scalar definition computes, bit for bit
//! (same IEEE operations in the same order, no fused multiply-add), so an update encoded on
//! a CPU with AVX-512 equals the one encoded without; the tests check each kernel against a
//! scalar reference on random inputs.
//!
//! `COVEY_SIMD=portable` in the environment (read once per process) makes
//! [`Avx512::detect`] answer `None`, to run the portable paths on a machine that has the
//! features (tests of the fallback, A/B measurements).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Proof that the running CPU has AVX-512 F, BW, DQ and VL: the kernels' target features.
/// Only [`Avx512::detect`] makes one, so holding it is what makes the kernels safe to call.
#[derive(Debug, Clone, Copy)]
pub struct Avx512 {
    _proof: Proof,
}

/// Inhabited only where the kernels exist.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct Proof(());

/// Uninhabited: no other architecture can hold an [`Avx512`].
#[cfg(not(target_arch = "x86_64"))]
#[derive(Debug, Clone, Copy)]
enum Proof {}

/// Result of the environment switch and `cpuid`, computed once per process.
#[cfg(target_arch = "x86_64")]
static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

impl Avx512 {
    /// The token when this CPU has the features (and `COVEY_SIMD` is not `portable`).
    /// Cheap after the first call (one cached flag).
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            let detected = *DETECTED.get_or_init(|| {
                std::env::var_os("COVEY_SIMD").is_none_or(|v| v != "portable")
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            });
            detected.then_some(Avx512 { _proof: Proof(()) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// In-place Walsh–Hadamard butterfly passes on `values` (f32): for `half = first_half,
    /// 2·first_half, …, len/2`, in that order, every pair `(a, b)` at distance `half`
    /// (with `a` the lower index, in aligned groups of `2·half`) becomes `(a + b, a − b)`.
    /// With `first_half = 1` that is the whole unnormalized transform.
    ///
    /// Register-blocked: each sweep loads up to 16 vectors and runs up to four levels on
    /// them before storing (the levels below 16 lanes run inside a vector with permutes),
    /// so a 4096-coordinate transform makes 2 sweeps instead of 12.
    ///
    /// Nothing to do (and nothing done) when `first_half ≥ len`.
    ///
    /// # Panics
    /// Unless `values.len()` is a power of two ≥ 16 and `first_half` a power of two.
    pub fn hadamard_f32(self, values: &mut [f32], first_half: usize) {
        assert!(
            values.len().is_power_of_two() && values.len() >= 16 && first_half.is_power_of_two(),
            "hadamard_f32: length {} and first half {first_half}",
            values.len()
        );
        if first_half >= values.len() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only when `detect` found every feature the kernel enables.
        unsafe {
            x86::hadamard_f32(values, first_half)
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self._proof {}
    }

    /// Fixed-point stochastic rounding of the first `8·⌊len/8⌋` coordinates `x` of `input`
    /// (the caller rounds the rest), with one 16-bit little-endian coin per coordinate in
    /// `coins`. Per coordinate, in IEEE f64 arithmetic without fused operations:
    ///
    /// - `t = f64(x) · gain16`; `s = t + 1.5·2^52`; `fixed = (bits(s) & (2^52 − 1)) − [s −
    ///   1.5·2^52 > t]` (the integer `2^51 + ⌊t⌋`);
    /// - `offset = (fixed >> 16) + [coin < fixed & 0xffff]`; `out = offset as u32`;
    /// - `k = f64::from_bits(0x4330_0000_0000_0000 | offset) − (2^52 + 2^35)`, and
    ///   `lanes[i % 8] += k · k` in coordinate order.
    ///
    /// Returns whether any coin equalled `fixed & 0xffff` (a tie the caller settles).
    /// Every `|t|` must be below 2^51.
    ///
    /// # Panics
    /// When `coins` holds fewer than 2 bytes or `out` fewer than 1 value per rounded
    /// coordinate.
    pub fn round_fixed_point(
        self,
        input: &[f32],
        gain16: f64,
        coins: &[u8],
        out: &mut [u32],
        lanes: &mut [f64; 8],
    ) -> bool {
        let len = input.len() / 8 * 8;
        let (input, coins, out) = (&input[..len], &coins[..2 * len], &mut out[..len]);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only when `detect` found every feature the kernel enables.
        unsafe {
            x86::round_fixed_point(input, gain16, coins, out, lanes)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (input, gain16, coins, out, lanes);
            match self._proof {}
        }
    }

    /// The random sign flips and squared norm of a rotation's input, for the first
    /// `64·⌊len/64⌋` coordinates of `input` (whole sign words; the caller does the rest):
    /// `out[i] = input[i]` with its sign bit flipped where bit `i % 64` of `signs[i / 64]`
    /// is set, and `lanes[i % 8] += f64(input[i])²` in coordinate order.
    ///
    /// # Panics
    /// When `signs` or `out` are shorter than those coordinates need.
    pub fn flip_signs_and_square(
        self,
        input: &[f32],
        signs: &[u64],
        out: &mut [f32],
        lanes: &mut [f64; 8],
    ) {
        let words = input.len() / 64;
        let (input, signs, out) = (
            &input[..64 * words],
            &signs[..words],
            &mut out[..64 * words],
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only when `detect` found every feature the kernel enables.
        unsafe {
            x86::flip_signs_and_square(input, signs, out, lanes)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (input, signs, out, lanes);
            match self._proof {}
        }
    }

    /// Alias-table draws added to `values`, 16 at a time from the start, up to and
    /// including the first group of 16 that holds a tied head, or up to the last partial
    /// group. Returns how many values it went through (whole groups) and the tied lanes of
    /// the last group (bit `l` for value `done − 16 + l`; 0 when no head tied), which it left
    /// unchanged for the caller to settle with more coin bits, in lane order, before calling
    /// again for the rest. Per value `v` with
    /// its 3 bytes of `heads` read big endian as `head` (below 2^24), `c = 24 − index_bits`:
    ///
    /// `index = head >> c`, `coin = head & (2^c − 1)`, `entry = table[index]`,
    /// `threshold = entry >> index_bits`, `alias = entry & (2^index_bits − 1)`;
    /// tied when `coin == threshold`, else `v ← (v + (coin < threshold ? index : alias) −
    /// radius) & mask` in wrapping u32 arithmetic.
    ///
    /// # Panics
    /// Unless `index_bits` is in 1..=23, `table` holds `2^index_bits` entries and `heads`
    /// at least 3 bytes per value.
    pub fn alias_draws(
        self,
        table: &[u32],
        index_bits: u32,
        radius: u32,
        heads: &[u8],
        values: &mut [u32],
        mask: u32,
    ) -> (usize, u16) {
        assert!(
            (1..24).contains(&index_bits)
                && table.len() == 1 << index_bits
                && heads.len() >= 3 * values.len(),
            "alias_draws: {} entries for {index_bits} index bits, {} head bytes for {} values",
            table.len(),
            heads.len(),
            values.len()
        );
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `self` exists only when `detect` found every feature the kernel enables.
        unsafe {
            x86::alias_draws(table, index_bits, radius, heads, values, mask)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (table, radius, heads, values, mask);
            match self._proof {}
        }
    }
}

#[cfg(test)]
mod tests;
