//! Golden outputs of the encoder: for a fixed plan, update and RNG seed the encoded vector is
//! pinned (as a SHA-256 of its words). The encoder's kernels are dispatched at run time (SIMD
//! on CPUs that have it, portable code elsewhere) and optimised over time; every version must
//! give members the same update bit for bit, or a cohort mixing devices would encode one
//! round differently and the pinned distributions (noise, rounding) would silently change.

use covey_protocol::dp::noise::uniform;
use covey_protocol::dp::{
    AdaptiveClipping, DpPlan, EncodeScratch, EncodedUpdate, Encoder, NoiseKind, PlanRequest,
    choose_plan,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A random update with L2 norm `norm` and one dominant coordinate.
fn update(dimension: usize, norm: f64, seed: u64) -> Vec<f32> {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    let mut raw: Vec<f64> = (0..dimension).map(|_| uniform(&mut r) - 0.5).collect();
    raw[dimension / 3] *= 40.0;
    let n = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    raw.iter().map(|x| (x * norm / n) as f32).collect()
}

/// The bench's plan shape (cohort 100, 20 % dropout allowance, clip 1); a 32-bit width with
/// almost no noise (`z` = 5e-5) picks the fine scale whose rounding slack is half a unit.
fn plan(dimension: u32, noise: NoiseKind, bits: Option<u32>, adaptive: bool) -> DpPlan {
    let z = if bits == Some(32) { 5e-5 } else { 1.0 };
    let mut request = PlanRequest::new(100, dimension, 1.0, z, [0x5d; 32]);
    request.noise = noise;
    request.max_dropout = 0.2;
    request.bits = bits;
    if adaptive {
        request.adaptive = Some(AdaptiveClipping::defaults_for(100));
    }
    choose_plan(&request).unwrap()
}

/// SHA-256 of the encoded words (little endian), the flags and the attempts, in hex.
fn digest(encoded: &EncodedUpdate) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for v in &encoded.values {
        context.update(&v.to_le_bytes());
    }
    context.update(&[u8::from(encoded.clipped), encoded.bits as u8]);
    context.update(&encoded.rounding_attempts.to_le_bytes());
    hex(context.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (dimension, noise, bits, adaptive clip, update norm, seed, digest).
type Case = (u32, NoiseKind, Option<u32>, bool, f64, u64, &'static str);

#[test]
fn encoded_updates_match_their_golden_digests() {
    // The dimensions cover one block, wide tiles over a few rows and one-line tiles over
    // many rows (the bench's 1M); norms above 1 are clipped.
    let cases: [Case; 8] = [
        (
            3_000,
            NoiseKind::Skellam,
            None,
            false,
            0.5,
            1,
            "951d5432575ed0d1f01ad83c1d36024513dc8224ea07f84e265f30b8305fe6df",
        ),
        (
            20_000,
            NoiseKind::Skellam,
            None,
            true,
            3.0,
            2,
            "754e66ee11232273abb9153da1b83a1edabf5cddf7a354fd417dd22f85faba86",
        ),
        (
            300_000,
            NoiseKind::Skellam,
            None,
            false,
            0.9,
            3,
            "34bbc04b2a26a26e850d153945fc46c75058405a95955870a0964c9b9f03a4b5",
        ),
        (
            1_000_000,
            NoiseKind::Skellam,
            None,
            false,
            0.7,
            4,
            "1751cee09877dd91a95283ed145e30c22e3f2eac104d438c4202b9c7fb2e3cba",
        ),
        (
            1_000_000,
            NoiseKind::DiscreteGaussian,
            None,
            false,
            2.0,
            5,
            "aa042559999ba2a1b72667c6c49230e570378e049993c736caa0a127b28c55a6",
        ),
        (
            300_000,
            NoiseKind::Central,
            None,
            false,
            1.5,
            6,
            "0eb09dc95ac04e934f467e21968277e371f0a7ccf3a18a9ee9380e8cd45c5e13",
        ),
        (
            102_561,
            NoiseKind::Skellam,
            Some(20),
            false,
            0.8,
            7,
            "2ac9484e93856a6c10f04efd05625c59162deaa65b2d2648681c03191322a885",
        ),
        (
            100_000,
            NoiseKind::Skellam,
            Some(32),
            false,
            9.0,
            8,
            "6d26046cb53b07f2d3a2de548539fe5410c3f260e9561019473160f4904eaeda",
        ),
    ];
    let mut scratch = EncodeScratch::default();
    let mut failures = Vec::new();
    for (case, (dimension, noise, bits, adaptive, norm, seed, expected)) in
        cases.into_iter().enumerate()
    {
        let encoder = Encoder::new(&plan(dimension, noise, bits, adaptive)).unwrap();
        let update = update(dimension as usize, norm, seed);
        let mut encoded = EncodedUpdate::default();
        let mut rng = ChaCha20Rng::seed_from_u64(100 + seed);
        encoder
            .encode_into(&update, &mut rng, &mut scratch, &mut encoded)
            .unwrap();
        let got = digest(&encoded);
        if got != expected {
            failures.push(format!("case {case}: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "digests differ:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_portable_kernels_give_the_same_digests() {
    // Where this CPU has AVX-512 the test above ran the SIMD kernels; the same digests must
    // come out of the portable code that phones and older x86-64 CPUs run. `COVEY_SIMD` is
    // read once per process, so the check runs in a child process of this test binary.
    if std::env::var_os("COVEY_SIMD").is_some() {
        return; // Already the child (or a run that chose its kernels).
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "encoded_updates_match_their_golden_digests"])
        .env("COVEY_SIMD", "portable")
        .status()
        .unwrap();
    assert!(status.success(), "portable kernels: {status}");
}
