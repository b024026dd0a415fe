//! DP encoding costs for a 1M-coordinate update, with the memory-bandwidth floor and the
//! encoder's irreducible parts measured in the same run.
//!
//! - `dp_floor/copy_add`: copy the 1M-float update into a buffer and add a second vector to it
//!   (the least any encoder that reads the update and writes a vector can cost).
//! - `dp_floor/chacha20_5B`: the ChaCha20 keystream the encoder consumes (2 bytes of rounding
//!   coin + 3 bytes of alias-table draw per padded coordinate), through the encoder's own
//!   [`Keystream`] in L1-sized chunks: the CSPRNG floor.
//! - `dp_floor/rand_chacha_5B`: the same bytes from `rand_chacha`, to keep the choice of
//!   ChaCha20 implementation measured.
//! - `dp_floor/hadamard_2^20`: a bare in-place f32 Walsh–Hadamard transform of the padded
//!   length ([`fwht`]): the rotation without signs, rounding or noise.
//! - `dp_encode/{skellam,discrete_gaussian,central}`: clip + rotate + round + noise + wrap,
//!   with the per-round [`Encoder`] built once outside the loop and the output and scratch
//!   buffers kept across calls ([`Encoder::encode_into`], the steady state of an SDK that
//!   keeps its [`EncodeScratch`]).
//! - `dp_encode/skellam_cold`: [`Encoder::encode`], which allocates (and page-faults) its
//!   buffers on every call, as a one-off encode does.
//! - `dp_encode/encoder_setup_skellam`: the per-round setup (signs + alias table).
//! - `dp_decode/skellam`: unwrap + descale + inverse rotation + average of a 100-member sum.
//! - After criterion, a ratio table against the copy+add floor in two cache states, each the
//!   median of 15 interleaved rounds: *interleaved* (every case once per round in turn, so
//!   each finds the cache as the others left it) and *memory-cold* (a 64 MiB sweep, twice
//!   the last-level cache, evicts everything before each timed call, so the floor really is
//!   the memory bandwidth and the encoder starts as a device's once-a-round encode does).
//!   Criterion's own figures are the third state: each case back to back, data in cache.
//!
//! The transform, rounding, sign-flip and alias-draw kernels run on AVX-512 where the CPU has
//! it (`covey-simd`, chosen at run time; the table's header says which ran);
//! `COVEY_SIMD=portable` runs the portable code instead, for an A/B on the same machine.

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use covey_protocol::dp::rotation::fwht;
use covey_protocol::dp::{
    Decoder, DpPlan, EncodeScratch, EncodedUpdate, Encoder, NoiseKind, PlanRequest, choose_plan,
};
use covey_protocol::keystream::Keystream;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const DIMENSION: usize = 1_000_000;
/// The encoder's padded length.
const PADDED: usize = 1 << 20;
const COHORT: u32 = 100;
/// Keystream bytes the encoder draws per padded coordinate (rounding coin head + noise head;
/// the rare tie draws add under 1 %).
const KEYSTREAM_BYTES: usize = 5;
/// Bytes per keystream read, as the encoder's chunks.
const CHUNK: usize = 5 * 1024;
/// Bytes swept to evict every cache level: twice this machine's 32 MiB L3.
const EVICT_BYTES: usize = 64 << 20;

fn plan(noise: NoiseKind) -> DpPlan {
    let mut request = PlanRequest::new(COHORT, DIMENSION as u32, 1.0, 1.0, [0x5d; 32]);
    request.noise = noise;
    request.max_dropout = 0.2;
    choose_plan(&request).expect("plan for the bench")
}

fn update() -> Vec<f32> {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    (0..DIMENSION)
        .map(|_| (rng.next_u32() as f32 / u32::MAX as f32 - 0.5) * 2e-3)
        .collect()
}

fn copy_add(input: &[f32], other: &[f32], out: &mut [f32]) {
    out.copy_from_slice(input);
    for (o, a) in out.iter_mut().zip(other) {
        *o += a;
    }
}

/// The encoder's keystream bytes for a 1M update, read chunk by chunk into L1.
fn keystream_floor(stream: &mut Keystream, chunk: &mut [u8]) {
    for _ in 0..(KEYSTREAM_BYTES * PADDED).div_ceil(CHUNK) {
        stream.fill(chunk).expect("keystream");
        black_box(&chunk);
    }
}

/// The same bytes from `rand_chacha`.
fn rand_chacha_floor(rng: &mut ChaCha20Rng, chunk: &mut [u8]) {
    for _ in 0..(KEYSTREAM_BYTES * PADDED).div_ceil(CHUNK) {
        rng.fill_bytes(chunk);
        black_box(&chunk);
    }
}

fn bench(c: &mut Criterion) {
    let input = update();
    let other = update();
    let mut out = vec![0.0f32; DIMENSION];
    let mut rng = ChaCha20Rng::seed_from_u64(2);

    let mut floor = c.benchmark_group("dp_floor");
    floor.bench_function("copy_add", |b| {
        b.iter(|| copy_add(black_box(&input), black_box(&other), &mut out))
    });
    let mut chunk = vec![0u8; CHUNK];
    let mut stream = Keystream::new(&[1; 32], &[0; 12]);
    floor.bench_function("chacha20_5B", |b| {
        b.iter(|| keystream_floor(&mut stream, &mut chunk))
    });
    floor.bench_function("rand_chacha_5B", |b| {
        b.iter(|| rand_chacha_floor(&mut rng, &mut chunk))
    });
    // A fresh copy per batch (untimed): transforming the same buffer over and over would
    // grow it by 2^10 a call and reach f32 infinity after about 13 calls.
    let padded = padded_copy(&input);
    floor.bench_function("hadamard_2^20", |b| {
        b.iter_batched_ref(|| padded.clone(), |v| fwht(v), BatchSize::LargeInput)
    });
    floor.finish();

    let mut encode = c.benchmark_group("dp_encode");
    for (name, kind) in [
        ("skellam", NoiseKind::Skellam),
        ("discrete_gaussian", NoiseKind::DiscreteGaussian),
        ("central", NoiseKind::Central),
    ] {
        let encoder = Encoder::new(&plan(kind)).expect("encoder");
        let (mut scratch, mut out) = (EncodeScratch::default(), EncodedUpdate::default());
        encode.bench_function(name, |b| {
            b.iter(|| {
                encoder
                    .encode_into(black_box(&input), &mut rng, &mut scratch, &mut out)
                    .expect("encode")
            })
        });
    }
    let skellam = plan(NoiseKind::Skellam);
    let encoder = Encoder::new(&skellam).expect("encoder");
    encode.bench_function("skellam_cold", |b| {
        b.iter(|| encoder.encode(black_box(&input), &mut rng).expect("encode"))
    });
    encode.bench_function("encoder_setup_skellam", |b| {
        b.iter(|| Encoder::new(black_box(&skellam)).expect("encoder"))
    });
    encode.finish();

    let sum = member_sum(&skellam, &input, &mut rng);
    let decoder = Decoder::new(&skellam).expect("decoder");
    let mut decode = c.benchmark_group("dp_decode");
    decode.bench_function("skellam", |b| {
        b.iter(|| {
            decoder
                .decode(black_box(&sum), skellam.bits, COHORT)
                .expect("decode")
        })
    });
    decode.finish();

    ratio_table(&input, &other, &skellam, &sum);
}

/// A plausible 100-member sum: one encoding repeated (the decoder's cost does not depend on
/// the values).
fn member_sum(plan: &DpPlan, input: &[f32], rng: &mut ChaCha20Rng) -> Vec<u32> {
    let encoded = Encoder::new(plan)
        .expect("encoder")
        .encode(input, rng)
        .expect("encode");
    let mask = if plan.bits == 32 {
        u32::MAX
    } else {
        (1u32 << plan.bits) - 1
    };
    encoded
        .values
        .iter()
        .map(|&v| v.wrapping_mul(COHORT) & mask)
        .collect()
}

/// The update zero-padded to the encoder's length, as the rotation sees it.
fn padded_copy(input: &[f32]) -> Vec<f32> {
    let mut padded = input.to_vec();
    padded.resize(PADDED, 0.0);
    padded
}

fn ratio_table(input: &[f32], other: &[f32], plan: &DpPlan, sum: &[u32]) {
    let mut out = vec![0.0f32; DIMENSION];
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut chunk = vec![0u8; CHUNK];
    let mut stream = Keystream::new(&[1; 32], &[0; 12]);
    let padded = padded_copy(input);
    let transformed = RefCell::new(padded.clone());
    let encoder = Encoder::new(plan).expect("encoder");
    let decoder = Decoder::new(plan).expect("decoder");
    let (mut scratch, mut encoded) = (EncodeScratch::default(), EncodedUpdate::default());
    let mut cold_rng = ChaCha20Rng::seed_from_u64(4);
    let (mut chacha_rng, mut chacha_chunk) = (ChaCha20Rng::seed_from_u64(5), vec![0u8; CHUNK]);
    let cases: [Case<'_>; 7] = [
        (
            "copy+add floor",
            Box::new(|| copy_add(black_box(input), black_box(other), &mut out)),
        ),
        (
            "ChaCha20 5 B/coordinate",
            Box::new(|| keystream_floor(&mut stream, &mut chunk)),
        ),
        (
            "Hadamard 2^20 (f32)",
            Box::new(|| fwht(&mut transformed.borrow_mut())),
        ),
        (
            "encode, steady (scratch kept)",
            Box::new(|| {
                encoder
                    .encode_into(input, &mut rng, &mut scratch, &mut encoded)
                    .expect("encode")
            }),
        ),
        (
            "encode, cold (fresh buffers)",
            Box::new(|| {
                black_box(encoder.encode(input, &mut cold_rng).expect("encode"));
            }),
        ),
        (
            "decode (100-member sum)",
            Box::new(|| {
                black_box(decoder.decode(sum, plan.bits, COHORT).expect("decode"));
            }),
        ),
        (
            "rand_chacha 5 B/coordinate",
            Box::new(|| rand_chacha_floor(&mut chacha_rng, &mut chacha_chunk)),
        ),
    ];
    // Untimed, before every round: the transform's input back to the update, so 30 rounds
    // of transforms never overflow.
    let mut reset = || transformed.borrow_mut().copy_from_slice(&padded);
    let times = interleaved_medians(cases, &mut reset);
    println!(
        "\nDP encoding, d = 1M (padded 2^20), cohort {COHORT}, B = {}, Skellam μ = {:.1}, \
         kernels {}, load {}",
        plan.bits,
        match plan.noise {
            covey_protocol::dp::NoiseShare::Skellam { local_mu } => local_mu,
            _ => f64::NAN,
        },
        if covey_simd::Avx512::detect().is_some() {
            "AVX-512"
        } else {
            "portable"
        },
        load_average()
    );
    println!(
        "{:<32}{:>12}{:>10}{:>14}{:>10}",
        "case", "interleaved", "x floor", "memory-cold", "x floor"
    );
    let (_, floor, cold_floor) = times[0];
    for (name, t, c) in times {
        println!(
            "{name:<32}{:>10.3}ms{:>10.1}{:>12.3}ms{:>10.1}",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / floor.as_secs_f64(),
            c.as_secs_f64() * 1e3,
            c.as_secs_f64() / cold_floor.as_secs_f64()
        );
    }
}

/// A named case of the ratio table.
type Case<'a> = (&'a str, Box<dyn FnMut() + 'a>);

/// Each case's name and median wall time over 15 rounds that run every case once in turn
/// (so a change of machine load hits all cases alike): first as they come (interleaved),
/// then with every cache level evicted right before each timed call (memory-cold). `reset`
/// runs, untimed, before every round.
fn interleaved_medians<'a>(
    mut cases: [Case<'a>; 7],
    reset: &mut dyn FnMut(),
) -> Vec<(&'a str, Duration, Duration)> {
    let mut evict = vec![0u8; EVICT_BYTES];
    let mut medians = |flush: bool| {
        let mut samples = vec![Vec::new(); cases.len()];
        for round in 0..15u8 {
            reset();
            for ((_, f), times) in cases.iter_mut().zip(&mut samples) {
                if flush {
                    evict_caches(&mut evict, round);
                }
                let start = Instant::now();
                f();
                times.push(start.elapsed());
            }
        }
        samples.into_iter().map(|mut times| {
            times.sort();
            times[times.len() / 2]
        })
    };
    let interleaved: Vec<Duration> = medians(false).collect();
    let cold: Vec<Duration> = medians(true).collect();
    cases
        .iter()
        .zip(interleaved.into_iter().zip(cold))
        .map(|((name, _), (t, c))| (*name, t, c))
        .collect()
}

/// Writes every cache line of `buffer` (larger than the last-level cache), so whatever a
/// case touched before is evicted to memory and dirty lines are written back first.
fn evict_caches(buffer: &mut [u8], round: u8) {
    for line in buffer.chunks_mut(64) {
        line[0] = round;
    }
    black_box(buffer);
}

/// The 1-minute load average, for the record next to the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
