//! DP encoding costs for a 1M-coordinate update, with the memory-bandwidth floor measured in
//! the same run.
//!
//! - `dp_floor/copy_add`: copy the 1M-float update into a buffer and add a second vector to it
//!   (the least any encoder that reads the update and writes a vector can cost).
//! - `dp_floor/chacha20_12B`: the ChaCha20 keystream the encoder consumes (4 bytes for the
//!   rounding coin + 8 bytes for the noise draw per coordinate): the CSPRNG floor.
//! - `dp_encode/{skellam,discrete_gaussian,central}`: clip + rotate + round + noise + wrap,
//!   with the per-round [`Encoder`] built once outside the loop (as on a device).
//! - `dp_encode/encoder_setup_skellam`: that per-round setup (signs + alias table).
//! - `dp_decode/skellam`: unwrap + descale + inverse rotation + average of a 100-member sum.
//! - After criterion, a ratio table against the copy+add floor.

use std::hint::black_box;
use std::time::{Duration, Instant};

use covey_protocol::dp::{Decoder, DpPlan, Encoder, NoiseKind, PlanRequest, choose_plan};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const DIMENSION: usize = 1_000_000;
const COHORT: u32 = 100;

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

fn bench(c: &mut Criterion) {
    let input = update();
    let other = update();
    let mut out = vec![0.0f32; DIMENSION];
    let mut rng = ChaCha20Rng::seed_from_u64(2);

    let mut floor = c.benchmark_group("dp_floor");
    floor.bench_function("copy_add", |b| {
        b.iter(|| copy_add(black_box(&input), black_box(&other), &mut out))
    });
    let mut keystream = vec![0u8; 12 * DIMENSION];
    floor.bench_function("chacha20_12B", |b| {
        b.iter(|| rng.fill_bytes(black_box(&mut keystream)))
    });
    floor.finish();

    let mut encode = c.benchmark_group("dp_encode");
    for (name, kind) in [
        ("skellam", NoiseKind::Skellam),
        ("discrete_gaussian", NoiseKind::DiscreteGaussian),
        ("central", NoiseKind::Central),
    ] {
        let encoder = Encoder::new(&plan(kind)).expect("encoder");
        encode.bench_function(name, |b| {
            b.iter(|| encoder.encode(black_box(&input), &mut rng).expect("encode"))
        });
    }
    let skellam = plan(NoiseKind::Skellam);
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

/// Median wall time of `f` over a few runs.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn ratio_table(input: &[f32], other: &[f32], plan: &DpPlan, sum: &[u32]) {
    let mut out = vec![0.0f32; DIMENSION];
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut keystream = vec![0u8; 12 * DIMENSION];
    let keystream_floor = median(|| rng.fill_bytes(black_box(&mut keystream)));
    let floor = median(|| copy_add(black_box(input), black_box(other), &mut out));
    let encoder = Encoder::new(plan).expect("encoder");
    let decoder = Decoder::new(plan).expect("decoder");
    let encode = median(|| {
        black_box(encoder.encode(input, &mut rng).expect("encode"));
    });
    let decode = median(|| {
        black_box(decoder.decode(sum, plan.bits, COHORT).expect("decode"));
    });
    println!(
        "\nDP encoding, d = 1M (padded 2^20), cohort {COHORT}, B = {}, Skellam μ = {:.1}",
        plan.bits,
        match plan.noise {
            covey_protocol::dp::NoiseShare::Skellam { local_mu } => local_mu,
            _ => f64::NAN,
        }
    );
    println!("{:<28}{:>12}{:>10}", "case", "median", "x floor");
    for (name, t) in [
        ("copy+add floor", floor),
        ("ChaCha20 12 B/coordinate", keystream_floor),
        ("encode (Skellam)", encode),
        ("decode (100-member sum)", decode),
    ] {
        println!(
            "{name:<28}{:>10.2}ms{:>10.1}",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / floor.as_secs_f64()
        );
    }
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
