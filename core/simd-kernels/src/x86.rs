//! The AVX-512 kernels. Entry points are `unsafe fn`s whose only requirement is that the CPU
//! has the features they enable; [`crate::Avx512`] calls them after detection. Helpers are
//! safe `#[target_feature]` functions (callable from the entry points without `unsafe`).
//! Memory is reached only through slices: each load or store takes the pointer of a
//! bounds-checked array reference, so the `unsafe` blocks below are about the intrinsics'
//! raw-pointer signatures, never about indexes.

use core::arch::x86_64::*;

/// f32 lanes per 512-bit vector.
const LANES: usize = 16;

/// One 512-bit vector of f32 as it sits in memory.
type Chunk = [f32; LANES];

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn load(chunk: &Chunk) -> __m512 {
    // SAFETY: `chunk` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_ps(chunk.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn store(chunk: &mut Chunk, v: __m512) {
    // SAFETY: `chunk` is 64 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_ps(chunk.as_mut_ptr(), v) }
}

/// See [`crate::Avx512::hadamard_f32`] (which checks the length and `first_half`).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn hadamard_f32(values: &mut [f32], first_half: usize) {
    let (chunks, _) = values.as_chunks_mut::<LANES>();
    let len = chunks.len() * LANES;
    let mut half = first_half;
    if half < LANES {
        // The levels inside a vector, fused with up to four across consecutive vectors.
        let across = chunks.len().trailing_zeros().min(4);
        match across {
            0 => in_vector_sweep::<1>(chunks, half),
            1 => in_vector_sweep::<2>(chunks, half),
            2 => in_vector_sweep::<4>(chunks, half),
            3 => in_vector_sweep::<8>(chunks, half),
            _ => in_vector_sweep::<16>(chunks, half),
        }
        half = LANES << across;
    }
    while half < len {
        let stride = half / LANES;
        let levels = (len / half).trailing_zeros().min(4);
        match levels {
            1 => across_sweep::<2>(chunks, stride),
            2 => across_sweep::<4>(chunks, stride),
            3 => across_sweep::<8>(chunks, stride),
            _ => across_sweep::<16>(chunks, stride),
        }
        half <<= levels;
    }
}

/// Groups of `N` consecutive vectors: the levels `first_half..LANES` inside each vector,
/// then log2(N) levels across them.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn in_vector_sweep<const N: usize>(chunks: &mut [Chunk], first_half: usize) {
    for group in chunks.chunks_exact_mut(N) {
        let mut r = [_mm512_setzero_ps(); N];
        for (v, chunk) in r.iter_mut().zip(group.iter()) {
            let mut x = load(chunk);
            let mut half = first_half;
            while half < LANES {
                x = in_vector_level(x, half);
                half *= 2;
            }
            *v = x;
        }
        butterflies(&mut r);
        for (chunk, &v) in group.iter_mut().zip(&r) {
            store(chunk, v);
        }
    }
}

/// log2(N) levels with half-widths `stride, 2·stride, …` (in vectors): for each group of
/// `N · stride` vectors and each offset below `stride`, the `N` vectors `stride` apart are
/// loaded, combined in registers and stored.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn across_sweep<const N: usize>(chunks: &mut [Chunk], stride: usize) {
    for group in chunks.chunks_exact_mut(N * stride) {
        for offset in 0..stride {
            let mut r = [_mm512_setzero_ps(); N];
            for (j, v) in r.iter_mut().enumerate() {
                *v = load(&group[offset + j * stride]);
            }
            butterflies(&mut r);
            for (j, &v) in r.iter().enumerate() {
                store(&mut group[offset + j * stride], v);
            }
        }
    }
}

/// The butterfly levels across `N` registers, lowest half-width first.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn butterflies<const N: usize>(r: &mut [__m512; N]) {
    let mut half = 1;
    while half < N {
        for j in 0..N {
            if j & half == 0 {
                let (a, b) = (r[j], r[j + half]);
                r[j] = _mm512_add_ps(a, b);
                r[j + half] = _mm512_sub_ps(a, b);
            }
        }
        half *= 2;
    }
}

/// One level with half-width `half` < 16 inside a vector: lane `i` pairs with lane `i ^
/// half`; the lower lane gets `a + b`, the upper `a − b` (`a` the lower lane's value).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn in_vector_level(x: __m512, half: usize) -> __m512 {
    // The partner of every lane, and the lanes that hold the upper element of their pair.
    let (partner, upper): (__m512, __mmask16) = match half {
        1 => (_mm512_permute_ps::<0b10_11_00_01>(x), 0xaaaa),
        2 => (_mm512_permute_ps::<0b01_00_11_10>(x), 0xcccc),
        4 => (_mm512_shuffle_f32x4::<0b10_11_00_01>(x, x), 0xf0f0),
        _ => (_mm512_shuffle_f32x4::<0b01_00_11_10>(x, x), 0xff00),
    };
    // Lower lanes: x + partner = a + b. Upper lanes: partner − x = a − b.
    _mm512_mask_sub_ps(_mm512_add_ps(x, partner), upper, partner, x)
}

/// 1.5 · 2^52 (see [`crate::Avx512::round_fixed_point`]).
const ROUNDING_MAGIC: f64 = 6_755_399_441_055_744.0;
/// The mantissa bits of an f64.
const MANTISSA: i64 = (1 << 52) - 1;
/// The exponent bits that make `2^52 + n` of an integer `n < 2^52`.
const EXACT_EXPONENT: i64 = 0x4330_0000_0000_0000;
/// `2^52 + 2^35`.
const K_BIAS: f64 = 4_503_633_987_108_864.0;

/// See [`crate::Avx512::round_fixed_point`] (which trims the slices to whole groups of 8).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn round_fixed_point(
    input: &[f32],
    gain16: f64,
    coins: &[u8],
    out: &mut [u32],
    lanes: &mut [f64; 8],
) -> bool {
    let gain = _mm512_set1_pd(gain16);
    let magic = _mm512_set1_pd(ROUNDING_MAGIC);
    let mantissa = _mm512_set1_epi64(MANTISSA);
    let head_mask = _mm512_set1_epi64(0xffff);
    let exponent = _mm512_set1_epi64(EXACT_EXPONENT);
    let k_bias = _mm512_set1_pd(K_BIAS);
    let one = _mm512_set1_epi64(1);
    // SAFETY: `lanes` is 64 readable bytes.
    let mut acc = unsafe { _mm512_loadu_pd(lanes.as_ptr()) };
    let mut ties: __mmask8 = 0;
    let groups = input
        .as_chunks::<8>()
        .0
        .iter()
        .zip(coins.as_chunks::<16>().0)
        .zip(out.as_chunks_mut::<8>().0);
    for ((xs, cs), os) in groups {
        // SAFETY: `xs` is 32 readable bytes.
        let x = _mm512_cvtps_pd(unsafe { _mm256_loadu_ps(xs.as_ptr()) });
        let t = _mm512_mul_pd(x, gain);
        let shifted = _mm512_add_pd(t, magic);
        let above = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(_mm512_sub_pd(shifted, magic), t);
        let bits = _mm512_and_si512(_mm512_castpd_si512(shifted), mantissa);
        let fixed = _mm512_mask_sub_epi64(bits, above, bits, one);
        let head = _mm512_and_si512(fixed, head_mask);
        // SAFETY: `cs` is 16 readable bytes.
        let coin = _mm512_cvtepu16_epi64(unsafe { _mm_loadu_si128(cs.as_ptr().cast()) });
        ties |= _mm512_cmpeq_epu64_mask(coin, head);
        let down = _mm512_srli_epi64::<16>(fixed);
        let offset = _mm512_mask_add_epi64(down, _mm512_cmplt_epu64_mask(coin, head), down, one);
        // SAFETY: `os` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(os.as_mut_ptr().cast(), _mm512_cvtepi64_epi32(offset)) };
        let k = _mm512_sub_pd(
            _mm512_castsi512_pd(_mm512_or_si512(offset, exponent)),
            k_bias,
        );
        acc = _mm512_add_pd(acc, _mm512_mul_pd(k, k));
    }
    // SAFETY: `lanes` is 64 writable bytes.
    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
    ties != 0
}

/// See [`crate::Avx512::alias_draws`] (which checks the table against `index_bits`).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn alias_draws(
    table: &[u32],
    index_bits: u32,
    radius: u32,
    heads: &[u8],
    values: &mut [u32],
    mask: u32,
) -> (usize, u16) {
    let coin_bits = _mm512_set1_epi32((24 - index_bits) as i32);
    let coin_mask = _mm512_set1_epi32((1 << (24 - index_bits)) - 1);
    let alias_mask = _mm512_set1_epi32((1 << index_bits) - 1);
    let shift = _mm512_set1_epi32(index_bits as i32);
    let radius = _mm512_set1_epi32(radius as i32);
    let mask = _mm512_set1_epi32(mask as i32);
    // Dwords 3L..3L+2 (the 12 bytes of heads 4L..4L+3) into 128-bit lane L, then per head
    // its 3 big-endian bytes into a little-endian dword with a zero top byte.
    let spread = _mm512_setr_epi32(0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 11);
    let bytes = _mm512_broadcast_i32x4(_mm_setr_epi8(
        2, 1, 0, -1, 5, 4, 3, -1, 8, 7, 6, -1, 11, 10, 9, -1,
    ));
    let groups = heads
        .as_chunks::<48>()
        .0
        .iter()
        .zip(values.as_chunks_mut::<16>().0);
    let mut done = 0;
    for (hs, vs) in groups {
        // SAFETY: the mask enables exactly the 48 bytes of `hs`, which are readable; the
        // disabled bytes are not accessed.
        let raw = unsafe { _mm512_maskz_loadu_epi8(0x0000_ffff_ffff_ffff, hs.as_ptr().cast()) };
        let head = _mm512_shuffle_epi8(_mm512_permutexvar_epi32(spread, raw), bytes);
        let index = _mm512_srlv_epi32(head, coin_bits);
        let coin = _mm512_and_si512(head, coin_mask);
        // Sixteen scalar loads: on the AMD cores measured, a 16-lane gather took 0.74 ms per
        // million draws from a 64 KiB table where these take 0.52 ms. Every index is `head >>
        // (24 − index_bits)` with head < 2^24, so below 2^index_bits = table.len().
        let mut indexes = [0u32; LANES];
        store_u32(&mut indexes, index);
        // A plain loop, not `array::map`: a closure does not inherit the target features,
        // and the call per group was measured to cost more than the loads.
        let mut entries = [0u32; LANES];
        for (e, &i) in entries.iter_mut().zip(&indexes) {
            *e = table[i as usize];
        }
        let entry = load_u32(&entries);
        let threshold = _mm512_srlv_epi32(entry, shift);
        let tied = _mm512_cmpeq_epi32_mask(coin, threshold);
        let alias = _mm512_and_si512(entry, alias_mask);
        let value = _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(coin, threshold), alias, index);
        let v = load_u32(vs);
        let sum = _mm512_sub_epi32(_mm512_add_epi32(v, value), radius);
        // Tied lanes keep their value for the caller.
        store_u32(vs, _mm512_mask_and_epi32(v, !tied, sum, mask));
        done += LANES;
        if tied != 0 {
            return (done, tied);
        }
    }
    (done, 0)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn load_u32(chunk: &[u32; 16]) -> __m512i {
    // SAFETY: `chunk` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(chunk.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
fn store_u32(chunk: &mut [u32; 16], v: __m512i) {
    // SAFETY: `chunk` is 64 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_si512(chunk.as_mut_ptr().cast(), v) }
}

/// See [`crate::Avx512::flip_signs_and_square`] (which trims the slices to whole words).
///
/// # Safety
/// The CPU must have AVX-512 F, BW, DQ and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
pub(crate) unsafe fn flip_signs_and_square(
    input: &[f32],
    signs: &[u64],
    out: &mut [f32],
    lanes: &mut [f64; 8],
) {
    let sign_bit = _mm512_set1_epi32(i32::MIN);
    // SAFETY: `lanes` is 64 readable bytes.
    let mut acc = unsafe { _mm512_loadu_pd(lanes.as_ptr()) };
    let words = input
        .as_chunks::<64>()
        .0
        .iter()
        .zip(out.as_chunks_mut::<64>().0)
        .zip(signs);
    for ((xs, os), &word) in words {
        let (xs, os) = (xs.as_chunks::<LANES>().0, os.as_chunks_mut::<LANES>().0);
        for (q, (x, o)) in xs.iter().zip(os).enumerate() {
            let x = load(x);
            let flips = (word >> (LANES * q)) as __mmask16;
            let flipped = _mm512_mask_xor_epi32(
                _mm512_castps_si512(x),
                flips,
                _mm512_castps_si512(x),
                sign_bit,
            );
            store(o, _mm512_castsi512_ps(flipped));
            // Squares in f64, coordinates l and l + 8 into lane l, in order.
            let low = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
            let high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(x),
            )));
            acc = _mm512_add_pd(acc, _mm512_mul_pd(low, low));
            acc = _mm512_add_pd(acc, _mm512_mul_pd(high, high));
        }
    }
    // SAFETY: `lanes` is 64 writable bytes.
    unsafe { _mm512_storeu_pd(lanes.as_mut_ptr(), acc) };
}
