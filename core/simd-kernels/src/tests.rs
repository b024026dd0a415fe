//! Each kernel against its scalar definition, bit for bit, on random inputs. On a CPU
//! without the features the tests have nothing to check and say so.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::Avx512;

fn token() -> Option<Avx512> {
    let token = Avx512::detect();
    if token.is_none() {
        eprintln!("no AVX-512 (or COVEY_SIMD=portable): kernels not exercised");
    }
    token
}

/// Random f32 of mixed magnitudes and signs (so rounding in the butterflies matters).
fn random_f32(n: usize, rng: &mut ChaCha20Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let exponent = (rng.next_u32() % 40) as i32 - 20;
            let mantissa = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            mantissa * 2f32.powi(exponent)
        })
        .collect()
}

/// The butterfly levels from `first_half` up, one level at a time.
fn reference_hadamard(values: &mut [f32], first_half: usize) {
    let mut half = first_half;
    while half < values.len() {
        for pair in values.chunks_exact_mut(2 * half) {
            let (lo, hi) = pair.split_at_mut(half);
            for (a, b) in lo.iter_mut().zip(hi) {
                (*a, *b) = (*a + *b, *a - *b);
            }
        }
        half *= 2;
    }
}

#[test]
fn hadamard_matches_the_level_by_level_definition() {
    let Some(token) = token() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    // Every length from one vector to a 4096 block and beyond; first halves inside a
    // vector, at one vector and across many (the encoder's tiles).
    for log_len in 4..=14 {
        let len = 1usize << log_len;
        for first_half in [1usize, 2, 4, 8, 16, 32, 128, 1024] {
            let input = random_f32(len, &mut rng);
            let mut expected = input.clone();
            reference_hadamard(&mut expected, first_half);
            let mut got = input;
            token.hadamard_f32(&mut got, first_half);
            let same = got
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "len {len}, first half {first_half}");
        }
    }
}

#[test]
#[should_panic(expected = "hadamard_f32")]
fn hadamard_refuses_a_length_that_is_not_a_power_of_two() {
    let Some(token) = token() else {
        panic!("hadamard_f32: no kernel to call")
    };
    token.hadamard_f32(&mut [0.0; 48], 1);
}

/// [`Avx512::round_fixed_point`]'s definition, one coordinate at a time.
fn reference_round(input: &[f32], gain16: f64, coins: &[u8], out: &mut [u32]) -> ([f64; 8], bool) {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let mut lanes = [0.0f64; 8];
    let mut tied = false;
    for (i, (&x, o)) in input.iter().zip(out.iter_mut()).enumerate() {
        let t = f64::from(x) * gain16;
        let s = t + MAGIC;
        let fixed = (s.to_bits() & ((1 << 52) - 1)) - u64::from(s - MAGIC > t);
        let coin = u64::from(u16::from_le_bytes([coins[2 * i], coins[2 * i + 1]]));
        let head = fixed & 0xffff;
        tied |= coin == head;
        let offset = (fixed >> 16) + u64::from(coin < head);
        *o = offset as u32;
        let k = f64::from_bits(0x4330_0000_0000_0000 | offset) - 4_503_633_987_108_864.0;
        lanes[i % 8] += k * k;
    }
    (lanes, tied)
}

#[test]
fn rounding_matches_the_scalar_fixed_point_definition() {
    let Some(token) = token() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut ties_seen = 0;
    for case in 0..400 {
        let len = 8 * (1 + rng.next_u32() as usize % 128);
        let input = random_f32(len, &mut rng);
        // Gains from tiny to the largest the encoder uses (|t| < 2^51), and exact integers
        // and halves (coins then tie with heads of 0 or 0x8000).
        let gain16 = 2f64.powi((rng.next_u32() % 70) as i32 - 20) * 65_536.0;
        let mut coins = vec![0u8; 2 * len];
        rng.fill_bytes(&mut coins);
        if case % 4 == 0 {
            coins.chunks_exact_mut(2).step_by(3).for_each(|c| c.fill(0));
        }
        let mut expected = vec![0u32; len];
        let (lanes_expected, tied_expected) =
            reference_round(&input, gain16, &coins, &mut expected);
        let mut got = vec![0u32; len];
        let mut lanes = [0.0f64; 8];
        let tied = token.round_fixed_point(&input, gain16, &coins, &mut got, &mut lanes);
        assert_eq!(got, expected, "case {case}");
        assert_eq!(tied, tied_expected, "case {case}");
        let same = lanes
            .iter()
            .zip(&lanes_expected)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "case {case}: {lanes:?} vs {lanes_expected:?}");
        ties_seen += usize::from(tied);
    }
    assert!(ties_seen > 50, "ties exercised only {ties_seen} times");
}

/// [`Avx512::alias_draws`]'s definition for one value: the new value, or `None` when tied.
fn reference_draw(
    table: &[u32],
    index_bits: u32,
    radius: u32,
    head: &[u8],
    v: u32,
    mask: u32,
) -> Option<u32> {
    let head = u32::from_be_bytes([0, head[0], head[1], head[2]]);
    let coin_bits = 24 - index_bits;
    let (index, coin) = (head >> coin_bits, head & ((1 << coin_bits) - 1));
    let entry = table[index as usize];
    let (threshold, alias) = (entry >> index_bits, entry & ((1 << index_bits) - 1));
    let value = if coin < threshold { index } else { alias };
    (coin != threshold).then(|| v.wrapping_add(value).wrapping_sub(radius) & mask)
}

#[test]
fn alias_draws_match_the_definition_and_stop_after_a_tie() {
    let Some(token) = token() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut stops = 0;
    for case in 0..300 {
        // Table widths of the encoder's range; small coin ranges make ties common.
        let index_bits = [1, 4, 9, 14, 16, 20][case % 6];
        let coin_bits = 24 - index_bits;
        let table: Vec<u32> = (0..1u32 << index_bits)
            .map(|_| {
                let threshold = rng.next_u32() % ((1 << coin_bits) + 1);
                let alias = rng.next_u32() & ((1 << index_bits) - 1);
                (threshold << index_bits) | alias
            })
            .collect();
        let len = rng.next_u32() as usize % 600;
        let mut heads = vec![0u8; 3 * len];
        rng.fill_bytes(&mut heads);
        let radius = rng.next_u32() % (1 << index_bits);
        let mask = [u32::MAX, (1 << 16) - 1, (1 << 20) - 1][case % 3];
        let before: Vec<u32> = (0..len).map(|_| rng.next_u32() & mask).collect();
        let mut values = before.clone();
        let (done, tied) = token.alias_draws(&table, index_bits, radius, &heads, &mut values, mask);
        let draws: Vec<Option<u32>> = (0..len)
            .map(|i| reference_draw(&table, index_bits, radius, &heads[3 * i..], before[i], mask))
            .collect();
        // Done: every whole group of 16 up to and including the first one with a tie.
        let groups = draws.chunks_exact(16);
        let first_tied = groups.clone().position(|g| g.iter().any(Option::is_none));
        let expected_done = 16 * first_tied.map_or(groups.len(), |g| g + 1);
        assert_eq!(done, expected_done, "case {case}");
        let expected_tied: u16 = first_tied.map_or(0, |g| {
            (0..16)
                .filter(|l| draws[16 * g + l].is_none())
                .map(|l| 1 << l)
                .sum()
        });
        assert_eq!(tied, expected_tied, "case {case}");
        stops += usize::from(tied != 0);
        for i in 0..len {
            let expected = match draws[i] {
                Some(drawn) if i < done => drawn,
                _ => before[i],
            };
            assert_eq!(values[i], expected, "case {case}, value {i}");
        }
    }
    assert!(stops > 30, "ties stopped the kernel only {stops} times");
}

#[test]
#[should_panic(expected = "alias_draws")]
fn alias_draws_refuse_a_table_of_the_wrong_size() {
    let Some(token) = token() else {
        panic!("alias_draws: no kernel to call")
    };
    token.alias_draws(&[0; 100], 7, 0, &[0; 48], &mut [0; 16], u32::MAX);
}

#[test]
fn sign_flips_and_squares_match_the_definition() {
    let Some(token) = token() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for case in 0..100 {
        let len = rng.next_u32() as usize % 700;
        let input = random_f32(len, &mut rng);
        let signs: Vec<u64> = (0..len.div_ceil(64)).map(|_| rng.next_u64()).collect();
        let done = len / 64 * 64;
        let mut expected_lanes = [0.5f64; 8];
        let mut expected = vec![7.0f32; len];
        for i in 0..done {
            let flip = ((signs[i / 64] >> (i % 64)) & 1) as u32;
            expected[i] = f32::from_bits(input[i].to_bits() ^ (flip << 31));
            expected_lanes[i % 8] += f64::from(input[i]) * f64::from(input[i]);
        }
        let mut lanes = [0.5f64; 8];
        let mut out = vec![7.0f32; len];
        token.flip_signs_and_square(&input, &signs, &mut out, &mut lanes);
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same(&out, &expected), "case {case}");
        let same_lanes = lanes
            .iter()
            .zip(&expected_lanes)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same_lanes, "case {case}");
    }
}
