//! Privacy accounting costs, with Google's dp-accounting (the peer) and the FFT floor
//! measured in the same run.
//!
//! - `accounting/{rdp,pld}/q{q}_z{z}_T{t}`: a fresh accountant composes T rounds of the
//!   Poisson-subsampled Gaussian and reports ε at δ.
//! - `accounting_floor/fft_roundtrip/{n}`: one forward + inverse complex FFT of the length
//!   the PLD self-composition transforms (its grid, rounded up to a power of two): the
//!   irreducible core of FFT composition.
//! - After criterion, a ratio table: ours vs dp-accounting (`benches/peers/
//!   dp_accounting_epsilon.py`, run with `$COVEY_DP_PYTHON`, else the venv that
//!   `scripts/setup.d/20-python-dp` makes, else `python3`), including the calibration of the
//!   noise multiplier for (2, 1e-6) with PLD.

use std::hint::black_box;
use std::time::Duration;

use covey_benches::{median_seconds, peer_json_lines};
use covey_protocol::accounting::{
    Accountant, AccountantKind, PldAccountant, PrivacyEvent, Sampling, calibrate_noise_multiplier,
    epsilon_for_events,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// (q, z, T, δ) cases: the cross-device regime and dp-accounting's own test setting.
const CASES: [(f64, f64, u64, f64); 2] = [(1e-3, 1.0, 2000, 1e-6), (0.01, 2.5, 50, 1e-5)];

fn epsilon(kind: AccountantKind, (q, z, t, delta): (f64, f64, u64, f64)) -> f64 {
    epsilon_for_events(kind, &[PrivacyEvent::subsampled_gaussian(z, q, t)], delta)
        .expect("valid case")
}

fn label((q, z, t, _): (f64, f64, u64, f64)) -> String {
    format!("q{q}_z{z}_T{t}")
}

/// The power-of-two FFT length covering the composed PLD of `case`.
fn fft_len(case: (f64, f64, u64, f64)) -> usize {
    let (q, z, t, _) = case;
    let mut pld = PldAccountant::new();
    pld.compose(&PrivacyEvent::subsampled_gaussian(z, q, t))
        .expect("valid case");
    (pld.grid_points() / 2).next_power_of_two()
}

fn fft_roundtrip(planner: &mut FftPlanner<f64>, buf: &mut [Complex<f64>]) {
    planner.plan_fft_forward(buf.len()).process(buf);
    planner.plan_fft_inverse(buf.len()).process(buf);
}

fn bench_accountants(c: &mut Criterion) {
    let mut group = c.benchmark_group("accounting");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for case in CASES {
        group.bench_function(format!("rdp/{}", label(case)), |b| {
            b.iter(|| black_box(epsilon(AccountantKind::Rdp, case)))
        });
        group.bench_function(format!("pld/{}", label(case)), |b| {
            b.iter(|| black_box(epsilon(AccountantKind::Pld, case)))
        });
    }
    group.finish();
    let mut floor = c.benchmark_group("accounting_floor");
    floor
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut planner = FftPlanner::new();
    for case in CASES {
        let n = fft_len(case);
        let mut buf = vec![Complex::new(1.0, 0.0); n];
        floor.bench_function(format!("fft_roundtrip/{n}"), |b| {
            b.iter(|| fft_roundtrip(&mut planner, &mut buf))
        });
    }
    floor.finish();
}

fn peer_python() -> String {
    if let Ok(python) = std::env::var("COVEY_DP_PYTHON") {
        return python;
    }
    let venv =
        std::env::var("HOME").map(|h| format!("{h}/.cache/covey/dp-accounting-venv/bin/python"));
    venv.ok()
        .filter(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| "python3".into())
}

/// dp-accounting's median seconds and value per case spec, if it is installed.
fn peer(specs: &[String]) -> Vec<Option<(f64, f64)>> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/peers/dp_accounting_epsilon.py"
    );
    let args = ["--cases", &specs.join(",")];
    let Some(lines) = peer_json_lines(&peer_python(), script, &args) else {
        eprintln!("accounting: dp-accounting peer unavailable (run scripts/setup.d/20-python-dp)");
        return vec![None; specs.len()];
    };
    specs
        .iter()
        .map(|spec| {
            let row = lines.iter().find(|v| v["case"] == spec.as_str())?;
            Some((row["seconds"].as_f64()?, row["value"].as_f64()?))
        })
        .collect()
}

/// The table BENCHMARKS.md quotes (medians of 3, same process as criterion).
fn ratio_table(_: &mut Criterion) {
    type Run = Box<dyn Fn() -> f64>;
    let mut rows: Vec<(String, String, Run)> = Vec::new();
    for case in CASES {
        let (q, z, t, delta) = case;
        for (kind, name) in [(AccountantKind::Rdp, "rdp"), (AccountantKind::Pld, "pld")] {
            rows.push((
                format!("{name} ε {}", label(case)),
                format!("{name}:{q}:{z}:{t}:{delta}"),
                Box::new(move || epsilon(kind, case)),
            ));
        }
    }
    let poisson = Sampling::Poisson { rate: 1e-3 };
    rows.push((
        "pld calibrate z for (2, 1e-6), q0.001_T2000".into(),
        "pldcal:0.001:2.0:2000:1e-6".into(),
        Box::new(move || {
            calibrate_noise_multiplier(AccountantKind::Pld, 2.0, 1e-6, poisson, 2000)
                .expect("valid")
        }),
    ));
    let specs: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let peers = peer(&specs);
    println!("\nPrivacy accounting (median of 3):");
    println!(
        "| computation | ours s | ours value | dp-accounting s | dp-accounting value | dp-accounting/ours |"
    );
    println!("|---|---|---|---|---|---|");
    for ((name, _, run), peer) in rows.iter().zip(peers) {
        let value = run();
        let ours = median_seconds(3, || {
            black_box(run());
        });
        let (ps, pv, ratio) = peer.map_or(("n/a".into(), "n/a".into(), "n/a".into()), |(s, v)| {
            (
                format!("{s:.4}"),
                format!("{v:.6}"),
                format!("{:.1}×", s / ours),
            )
        });
        println!("| {name} | {ours:.4} | {value:.6} | {ps} | {pv} | {ratio} |");
    }
    let mut planner = FftPlanner::new();
    for case in CASES {
        let n = fft_len(case);
        let mut buf = vec![Complex::new(1.0, 0.0); n];
        let floor = median_seconds(3, || fft_roundtrip(&mut planner, &mut buf));
        let ours = median_seconds(3, || {
            black_box(epsilon(AccountantKind::Pld, case));
        });
        println!(
            "PLD {}: {ours:.4} s vs FFT round trip of {n} points {floor:.5} s = {:.1}× the floor",
            label(case),
            ours / floor
        );
    }
}

criterion_group!(benches, bench_accountants, ratio_table);
criterion_main!(benches);
