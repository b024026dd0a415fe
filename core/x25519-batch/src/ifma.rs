//! Eight X25519 Montgomery ladders at once, one per 64-bit lane of AVX-512 registers, with
//! the field multiplications on AVX-512 IFMA (`vpmadd52luq` / `vpmadd52huq`).
//!
//! Field elements mod p = 2^255 - 19 are five limbs in radix 2^51, one register per limb
//! and one ladder per lane. Radix 2^51 rather than IFMA's native 2^52: IFMA reads only the
//! low 52 bits of each input, so every multiplicand limb must stay below 2^52, and the
//! spare bit lets a limb carried by one *parallel* round (< 2^51 + 2^15) be a valid input
//! without a sequential carry chain. The price is that a product's high half lands at
//! weight 2^52 = 2 * 2^51, so the high columns are doubled once per multiplication.
//!
//! All lanes share one scalar (one member's secret against its peers), so the ladder's
//! conditional swap uses one mask for all lanes; the mask comes from the scalar bit by
//! arithmetic only (no branch, no secret-dependent index).

use core::arch::x86_64::{
    __m512i, _mm512_add_epi64, _mm512_and_si512, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64,
    _mm512_set_epi64, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_slli_epi64,
    _mm512_srli_epi64, _mm512_storeu_epi64, _mm512_sub_epi64, _mm512_xor_si512,
};

use zeroize::{Zeroize, Zeroizing};

use crate::scalar::{self, Limbs};

/// Ladders per batch: 64-bit lanes in a 512-bit register.
pub(crate) const LANES: usize = 8;

const MASK51: u64 = (1 << 51) - 1;
/// (A - 2) / 4 for Curve25519's A = 486662 (RFC 7748).
const A24: u64 = 121_665;
/// 2p in radix 2^51, added before a subtraction so no limb goes negative.
const TWO_P: [u64; 5] = [
    2 * (MASK51 - 18),
    2 * MASK51,
    2 * MASK51,
    2 * MASK51,
    2 * MASK51,
];

/// Eight field elements, limb `i` of lane `l` in `self.0[i]` lane `l`. Every value this
/// module keeps is carried: limbs < 2^51 + 2^15.
#[derive(Clone, Copy)]
struct Fe([__m512i; 5]);

impl Zeroize for Fe {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn add64(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi64(a, b)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn times19(x: __m512i) -> __m512i {
    add64(
        x,
        add64(_mm512_slli_epi64::<1>(x), _mm512_slli_epi64::<4>(x)),
    )
}

impl Fe {
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn constant(value: u64) -> Fe {
        let zero = _mm512_setzero_si512();
        Fe([splat(value), zero, zero, zero, zero])
    }

    /// One parallel carry round. Inputs below 2^61 per limb give limbs < 2^51 + 2^15.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn carry(a: [__m512i; 5]) -> Fe {
        let m = splat(MASK51);
        let c0 = _mm512_srli_epi64::<51>(a[0]);
        let c1 = _mm512_srli_epi64::<51>(a[1]);
        let c2 = _mm512_srli_epi64::<51>(a[2]);
        let c3 = _mm512_srli_epi64::<51>(a[3]);
        let c4 = _mm512_srli_epi64::<51>(a[4]);
        Fe([
            add64(_mm512_and_si512(a[0], m), times19(c4)),
            add64(_mm512_and_si512(a[1], m), c0),
            add64(_mm512_and_si512(a[2], m), c1),
            add64(_mm512_and_si512(a[3], m), c2),
            add64(_mm512_and_si512(a[4], m), c3),
        ])
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn add(&self, other: &Fe) -> Fe {
        let (a, b) = (&self.0, &other.0);
        Fe::carry([
            add64(a[0], b[0]),
            add64(a[1], b[1]),
            add64(a[2], b[2]),
            add64(a[3], b[3]),
            add64(a[4], b[4]),
        ])
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn sub(&self, other: &Fe) -> Fe {
        let (a, b) = (&self.0, &other.0);
        let limb = |i: usize| _mm512_sub_epi64(add64(a[i], splat(TWO_P[i])), b[i]);
        Fe::carry([limb(0), limb(1), limb(2), limb(3), limb(4)])
    }

    /// The product, carried. Inputs: limbs < 2^52 (every carried value).
    ///
    /// Column k sums the low halves of a_i * b_j with i + j = k and twice the high halves
    /// with i + j + 1 = k (at most 14 * 2^52); columns 5..9 fold into 0..4 times 19
    /// (2^255 = 19 mod p), below 2^61, so one carry round closes it.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn mul(&self, other: &Fe) -> Fe {
        let (a, b) = (&self.0, &other.0);
        let zero = _mm512_setzero_si512();
        let mut lo = [zero; 10];
        let mut hi = [zero; 10];
        for i in 0..5 {
            for j in 0..5 {
                lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a[i], b[j]);
                hi[i + j + 1] = _mm512_madd52hi_epu64(hi[i + j + 1], a[i], b[j]);
            }
        }
        Fe::fold(lo, hi)
    }

    /// The square, carried: the cross products once, then doubled with the high halves.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn square(&self) -> Fe {
        let a = &self.0;
        let zero = _mm512_setzero_si512();
        let mut cross_lo = [zero; 10];
        let mut cross_hi = [zero; 10];
        let mut lo = [zero; 10];
        let mut hi = [zero; 10];
        for i in 0..5 {
            lo[2 * i] = _mm512_madd52lo_epu64(lo[2 * i], a[i], a[i]);
            hi[2 * i + 1] = _mm512_madd52hi_epu64(hi[2 * i + 1], a[i], a[i]);
            for j in i + 1..5 {
                cross_lo[i + j] = _mm512_madd52lo_epu64(cross_lo[i + j], a[i], a[j]);
                cross_hi[i + j + 1] = _mm512_madd52hi_epu64(cross_hi[i + j + 1], a[i], a[j]);
            }
        }
        for k in 0..10 {
            lo[k] = add64(lo[k], _mm512_slli_epi64::<1>(cross_lo[k]));
            hi[k] = add64(hi[k], _mm512_slli_epi64::<1>(cross_hi[k]));
        }
        Fe::fold(lo, hi)
    }

    /// Columns of low and high halves (high at weight 2 * 2^(51k)) reduced mod p, carried.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn fold(lo: [__m512i; 10], hi: [__m512i; 10]) -> Fe {
        let column = |k: usize| add64(lo[k], _mm512_slli_epi64::<1>(hi[k]));
        let reduced = |k: usize| add64(column(k), times19(column(k + 5)));
        Fe::carry([reduced(0), reduced(1), reduced(2), reduced(3), reduced(4)])
    }

    /// AA + a24 * E, carried (the ladder's z2 factor).
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn add_a24_times(&self, e: &Fe) -> Fe {
        let a24 = splat(A24);
        let zero = _mm512_setzero_si512();
        let lo = |i: usize| _mm512_madd52lo_epu64(zero, e.0[i], a24);
        // High halves weigh 2^52 = 2 * 2^51: doubled into the next limb; the top one wraps.
        let hi2 = |i: usize| _mm512_slli_epi64::<1>(_mm512_madd52hi_epu64(zero, e.0[i], a24));
        let aa = &self.0;
        Fe::carry([
            add64(add64(aa[0], lo(0)), times19(hi2(4))),
            add64(add64(aa[1], lo(1)), hi2(0)),
            add64(add64(aa[2], lo(2)), hi2(1)),
            add64(add64(aa[3], lo(3)), hi2(2)),
            add64(add64(aa[4], lo(4)), hi2(3)),
        ])
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn square_times(&self, n: u32) -> Fe {
        let mut out = *self;
        for _ in 0..n {
            out = out.square();
        }
        out
    }

    /// self^(p - 2) = 1 / self (0 for 0), by the usual 254 squarings and 11 multiplications.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn invert(&self) -> Fe {
        let z2 = self.square();
        let z9 = self.mul(&z2.square_times(2));
        let z11 = z2.mul(&z9);
        let z_5_0 = z9.mul(&z11.square());
        let z_10_0 = z_5_0.square_times(5).mul(&z_5_0);
        let z_20_0 = z_10_0.square_times(10).mul(&z_10_0);
        let z_40_0 = z_20_0.square_times(20).mul(&z_20_0);
        let z_50_0 = z_40_0.square_times(10).mul(&z_10_0);
        let z_100_0 = z_50_0.square_times(50).mul(&z_50_0);
        let z_200_0 = z_100_0.square_times(100).mul(&z_100_0);
        let z_250_0 = z_200_0.square_times(50).mul(&z_50_0);
        z_250_0.square_times(5).mul(&z11)
    }

    /// Swaps `self` and `other` in every lane where `mask` is all ones.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn swap_if(&mut self, other: &mut Fe, mask: __m512i) {
        for i in 0..5 {
            let t = _mm512_and_si512(_mm512_xor_si512(self.0[i], other.0[i]), mask);
            self.0[i] = _mm512_xor_si512(self.0[i], t);
            other.0[i] = _mm512_xor_si512(other.0[i], t);
        }
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn from_lanes(lanes: &[Limbs; LANES]) -> Fe {
        let limb = |i: usize| {
            let l = |lane: usize| lanes[lane][i] as i64;
            _mm512_set_epi64(l(7), l(6), l(5), l(4), l(3), l(2), l(1), l(0))
        };
        Fe([limb(0), limb(1), limb(2), limb(3), limb(4)])
    }

    #[target_feature(enable = "avx512f,avx512ifma")]
    fn write_lanes(&self, lanes: &mut [Limbs; LANES]) {
        let mut column = Zeroizing::new([0u64; LANES]);
        for i in 0..5 {
            // SAFETY: `column` is 8 writable, initialised u64 = 64 bytes, the store's width;
            // `_mm512_storeu_epi64` has no alignment requirement.
            unsafe { _mm512_storeu_epi64(column.as_mut_ptr().cast(), self.0[i]) };
            for (lane, value) in lanes.iter_mut().zip(column.iter()) {
                lane[i] = *value;
            }
        }
    }
}

/// The ladder state, wiped on drop: it holds multiples of the secret scalar.
struct Ladder {
    x2: Fe,
    z2: Fe,
    x3: Fe,
    z3: Fe,
}

impl Drop for Ladder {
    fn drop(&mut self) {
        self.x2.zeroize();
        self.z2.zeroize();
        self.x3.zeroize();
        self.z3.zeroize();
    }
}

impl Ladder {
    /// One step of RFC 7748's ladder: (x2 : z2) doubled, (x3 : z3) the differential sum.
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn step(&mut self, x1: &Fe) {
        let a = self.x2.add(&self.z2);
        let b = self.x2.sub(&self.z2);
        let c = self.x3.add(&self.z3);
        let d = self.x3.sub(&self.z3);
        let aa = a.square();
        let bb = b.square();
        let e = aa.sub(&bb);
        let da = d.mul(&a);
        let cb = c.mul(&b);
        self.x3 = da.add(&cb).square();
        self.z3 = x1.mul(&da.sub(&cb).square());
        self.x2 = aa.mul(&bb);
        self.z2 = e.mul(&aa.add_a24_times(&e));
    }
}

/// X25519 of one clamped `scalar` with the eight u-coordinates in `u` (limbs), written to
/// `out` as reduced limbs (x2 / z2 per lane).
#[target_feature(enable = "avx512f,avx512ifma")]
fn ladder(scalar: &[u8; 32], u: &[Limbs; LANES], out: &mut [Limbs; LANES]) {
    let x1 = Fe::from_lanes(u);
    let mut state = Ladder {
        x2: Fe::constant(1),
        z2: Fe::constant(0),
        x3: x1,
        z3: Fe::constant(1),
    };
    let mut swap = 0u64;
    for t in (0..255).rev() {
        // The bit goes through black_box so the compiler cannot turn the mask into a branch.
        let bit = core::hint::black_box(u64::from((scalar[t >> 3] >> (t & 7)) & 1));
        swap ^= bit;
        let mask = splat(0u64.wrapping_sub(swap));
        let Ladder { x2, z2, x3, z3 } = &mut state;
        x2.swap_if(x3, mask);
        z2.swap_if(z3, mask);
        swap = bit;
        state.step(&x1);
    }
    let mask = splat(0u64.wrapping_sub(swap));
    let Ladder { x2, z2, x3, z3 } = &mut state;
    x2.swap_if(x3, mask);
    z2.swap_if(z3, mask);
    let mut result = state.x2.mul(&state.z2.invert());
    result.write_lanes(out);
    result.zeroize();
}

/// X25519 of `secret` with every peer, written to `out` (same length as `peers`).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) fn agree_many(secret: &[u8; 32], peers: &[[u8; 32]], out: &mut [Zeroizing<[u8; 32]>]) {
    let scalar = scalar::clamp(secret);
    let mut limbs = Zeroizing::new([[0u64; 5]; LANES]);
    for (peers, out) in peers.chunks(LANES).zip(out.chunks_mut(LANES)) {
        // Tail lanes repeat the chunk's last peer; their results are dropped.
        let u: [Limbs; LANES] =
            core::array::from_fn(|lane| scalar::decode_u(&peers[lane.min(peers.len() - 1)]));
        ladder(&scalar, &u, &mut limbs);
        for (lane, out) in limbs.iter().zip(out.iter_mut()) {
            **out = scalar::encode(lane);
        }
    }
}
