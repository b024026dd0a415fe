//! SecAgg+ costs, with the physical floor and the Flower peer measured in the same run.
//!
//! - `secagg_client/{masked_input,all_stages}/k/m`: one member with k neighbours and an
//!   m-coordinate input: the masked-input stage alone, and key setup + share encryption +
//!   masking together.
//! - `secagg_floor/chacha20/k/m`: the raw ChaCha20 keystream for the same (k + 1) · m words
//!   of mask: no masking scheme can expand its masks faster.
//! - `secagg_floor/pairwise_keys/k`: the k X25519 agreements (and HKDFs) on the pairwise mask
//!   keys that the masked-input stage must run besides masking: with a fast keystream this
//!   fixed work, not the masking, is what separates the stage from the keystream floor.
//! - `secagg_x25519/{dalek,batch}/k`: those k agreements alone, one by one on x25519-dalek
//!   (the baseline) and as the stage runs them, one batch (eight IFMA ladders at once where
//!   the CPU has AVX-512 IFMA); the ratio table prints both per agreement.
//! - `secagg_server/unmask/n1000_m100000/drop{0,10,30}`: the server's unmask stage (accept
//!   the responses, reconstruct seeds, remove masks) for n = 1000, m = 100 000, with the
//!   given fraction dropped after sharing keys (the costly case: their pairwise masks must
//!   be rebuilt).
//! - `secagg_server/keystream_floor/...`: the raw keystream for the same masks, on all cores.
//! - `secagg_round/{unsigned,signed}/n{n}_k{k}_m{m}`: a whole in-process session (every
//!   client and the server, no dropouts) with the same graph, unsigned and signed (Ed25519
//!   on every message, the consistency check, survivor signatures verified): the price of
//!   the malicious-server hardening, with the unsigned session as the baseline.
//! - After criterion, a ratio table: ours vs the floor and vs Flower's SecAgg+ client
//!   (`benches/peers/flower_secaggplus.py`, run with `$COVEY_FLOWER_PYTHON` or `python3`
//!   when it can import flwr).
//!
//! Sizes: `COVEY_SECAGG_BENCH=quick` keeps only the 100k cases and the 10% dropout case;
//! `COVEY_SECAGG_BENCH=client` runs the client cases and the Flower table without the
//! (long) server cases.

use std::hint::black_box;
use std::time::Duration;

use covey_benches::{
    ClientCase, PairwiseKeys, keystream_floor, median_seconds, median_seconds_batched,
    peer_json_lines, session,
};
use covey_protocol::secagg::graph::Graph;
use covey_protocol::secagg::params::{self, AdversaryClass, ThreatModel};
use covey_protocol::secagg::{Client, ClientMessage, MemberId, Server, ServerStep};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// How big a run is: `cargo test` runs each bench once on toy sizes (CI), `cargo bench` the
/// issue's sizes, `COVEY_SECAGG_BENCH=quick cargo bench` the 100k cases and 10% dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Test,
    Quick,
    Client,
    Full,
}

fn scale() -> Scale {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test") {
        Scale::Test
    } else {
        match std::env::var("COVEY_SECAGG_BENCH").as_deref() {
            Ok("quick") => Scale::Quick,
            Ok("client") => Scale::Client,
            _ => Scale::Full,
        }
    }
}

fn client_cases() -> Vec<(usize, usize)> {
    let (degrees, dims): (&[usize], &[usize]) = match scale() {
        Scale::Test => (&[16], &[1000]),
        Scale::Quick => (&[16, 32, 72], &[100_000]),
        Scale::Client | Scale::Full => (&[16, 32, 72], &[100_000, 1_000_000]),
    };
    degrees
        .iter()
        .flat_map(|&k| dims.iter().map(move |&m| (k, m)))
        .collect()
}

/// (cohort size, dimension, dropout percentages) of the server bench.
fn server_sizes() -> (usize, usize, &'static [usize]) {
    match scale() {
        Scale::Test => (60, 1000, &[10]),
        Scale::Quick => (1000, 100_000, &[10]),
        Scale::Client => (0, 0, &[]),
        Scale::Full => (1000, 100_000, &[0, 10, 30]),
    }
}

/// The floor on every core the machine has, as the server uses them all.
fn keystream_floor_parallel(words: usize) -> u8 {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || keystream_floor(words.div_ceil(threads))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0, |a, b| a ^ b)
    })
}

fn bench_client(c: &mut Criterion) {
    for (k, m) in client_cases() {
        let case = ClientCase::new(k, m);
        let id = format!("k{k}/m{m}");
        let mut group = c.benchmark_group("secagg_client");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        group.bench_function(format!("masked_input/{id}"), |b| {
            b.iter_batched(
                || case.ready(),
                |mut client| client.handle(&case.bundle).expect("mask"),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("all_stages/{id}"), |b| b.iter(|| case.all_stages()));
        group.finish();
        let mut floor = c.benchmark_group("secagg_floor");
        floor
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        floor.bench_function(format!("chacha20/{id}"), |b| {
            b.iter(|| keystream_floor(black_box((k + 1) * m)))
        });
        if m == client_cases()[0].1 {
            let keys = PairwiseKeys::new(k);
            floor.bench_function(format!("pairwise_keys/k{k}"), |b| {
                b.iter(|| keys.derive_all())
            });
            floor.finish();
            let mut x25519 = c.benchmark_group("secagg_x25519");
            x25519
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(2));
            x25519.bench_function(format!("dalek/k{k}"), |b| {
                b.iter(|| keys.agree_one_by_one())
            });
            x25519.bench_function(format!("batch/k{k}"), |b| b.iter(|| keys.agree_batched()));
            x25519.finish();
        } else {
            floor.finish();
        }
    }
}

/// n members run to the unmask stage with `drop` percent of them silent at masked input.
struct ServerCase {
    server: Server,
    responses: Vec<ClientMessage>,
    /// Words of keystream the unmask stage must expand: one self-mask per survivor plus one
    /// pairwise mask per (dropped member, surviving neighbour) pair, times m.
    mask_words: usize,
}

impl ServerCase {
    fn new(n: usize, m: usize, drop_percent: usize) -> Self {
        let threat = ThreatModel {
            adversarial_fraction: 0.05,
            dropout_fraction: 0.33,
            adversary: AdversaryClass::SemiHonest,
        };
        let graph = params::find(n, &threat).expect("parameters");
        let params = session(n, m, graph.degree, graph.threshold);
        let mut server = Server::new(params.clone()).expect("server");
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let input = vec![1u32; m];
        let mut clients: Vec<Client> = params
            .roster
            .iter()
            .map(|member| {
                let (client, hello) =
                    Client::new(params.clone(), *member, &input, None, &mut rng).expect("client");
                server.receive(&hello).expect("hello");
                client
            })
            .collect();
        // Every (100 / drop)-th member falls silent before uploading its masked input.
        let dropped = |member: MemberId| {
            drop_percent > 0 && (member.0 as usize * drop_percent) % 100 < drop_percent
        };
        for stage in 0..3 {
            let ServerStep::Send(messages) = server.close_stage().expect("close") else {
                unreachable!()
            };
            let mut responses = Vec::new();
            for message in &messages {
                if stage == 1 && dropped(message.recipient) {
                    continue;
                }
                let reply = clients[message.recipient.0 as usize]
                    .handle(message)
                    .expect("reply");
                if stage == 2 {
                    responses.push(reply);
                } else {
                    server.receive(&reply).expect("accept");
                }
            }
            if stage == 2 {
                let graph = Graph::new(&params.session_id, &params.roster, params.degree);
                let survivors = params.roster.iter().filter(|m| !dropped(**m)).count();
                let pairs: usize = (0..n)
                    .filter(|&v| dropped(params.roster[v]))
                    .map(|v| {
                        graph
                            .neighbours(v)
                            .iter()
                            .filter(|&&u| !dropped(params.roster[u]))
                            .count()
                    })
                    .sum();
                return ServerCase {
                    server,
                    responses,
                    mask_words: (survivors + pairs) * m,
                };
            }
        }
        unreachable!("three stages reach unmask")
    }

    fn unmask(&self) -> Vec<u32> {
        let mut server = self.server.clone();
        for response in &self.responses {
            server.receive(response).expect("unmask share");
        }
        match server.close_stage().expect("unmask") {
            ServerStep::Finished(aggregate) => aggregate.sum,
            ServerStep::Send(_) => unreachable!("unmask is the last stage"),
        }
    }
}

fn bench_server(c: &mut Criterion) {
    let (n, m, drops) = server_sizes();
    let mut group = c.benchmark_group("secagg_server");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    for &drop in drops {
        let case = ServerCase::new(n, m, drop);
        let survivors = n - (0..n).filter(|i| (i * drop) % 100 < drop).count();
        assert_eq!(
            case.unmask(),
            vec![survivors as u32; m],
            "unmasked sum must be exact"
        );
        let id = format!("n{n}_m{m}/drop{drop}");
        group.bench_function(format!("unmask/{id}"), |b| b.iter(|| case.unmask()));
        group.bench_function(format!("keystream_floor/{id}"), |b| {
            b.iter(|| keystream_floor_parallel(black_box(case.mask_words)))
        });
    }
    group.finish();
}

/// One Flower measurement of case (k, m): (masked-input, all-stages) seconds, if a Python
/// with flwr is at hand.
fn flower_once(k: usize, m: usize) -> Option<(f64, f64)> {
    let python = std::env::var("COVEY_FLOWER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/flower_secaggplus.py");
    let lines = peer_json_lines(
        &python,
        script,
        &["--cases", &format!("{k}x{m}"), "--reps", "1"],
    )?;
    let row = lines.first()?;
    Some((
        row["masked_seconds"].as_f64()?,
        row["client_seconds"].as_f64()?,
    ))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The ratio table BENCHMARKS.md quotes: five rounds per case, each measuring Flower and then
/// ours (each of our figures the median of three runs), so both sides of a ratio see the
/// same machine load; medians of the rounds.
fn ratio_table(_: &mut Criterion) {
    x25519_table();
    println!("\nSecAgg+ client, one member (medians of 5 interleaved rounds):");
    println!(
        "| k | m | masked-input s | keystream floor s | masked/floor | k pairwise keys s | masked/(floor+keys) | all stages s | Flower masked s | Flower all s | Flower/ours (all) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let with_peer = scale() != Scale::Test;
    if with_peer && flower_once(16, 1000).is_none() {
        eprintln!(
            "secagg: Flower peer unavailable (set COVEY_FLOWER_PYTHON to a python with flwr)"
        );
    }
    for (k, m) in client_cases() {
        let case = ClientCase::new(k, m);
        let keys = PairwiseKeys::new(k);
        let (mut ours, mut peer) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            if with_peer {
                peer.extend(flower_once(k, m));
            }
            let masked = median_seconds_batched(
                3,
                || case.ready(),
                |mut client| {
                    black_box(client.handle(&case.bundle).expect("mask"));
                },
            );
            let floor = median_seconds(3, || {
                black_box(keystream_floor((k + 1) * m));
            });
            let key_work = median_seconds(3, || {
                black_box(keys.derive_all());
            });
            let all = median_seconds(3, || {
                black_box(case.all_stages());
            });
            ours.push([masked, floor, key_work, all]);
        }
        let column = |i: usize| median(ours.iter().map(|o| o[i]).collect()).unwrap_or(f64::NAN);
        let (masked, floor, key_work, all) = (column(0), column(1), column(2), column(3));
        let peer_masked = median(peer.iter().map(|p| p.0).collect());
        let peer_all = median(peer.iter().map(|p| p.1).collect());
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
        let speedup = peer_all.map_or("n/a".into(), |pa| format!("{:.1}×", pa / all));
        println!(
            "| {k} | {m} | {masked:.4} | {floor:.4} | {:.2}× | {key_work:.4} | {:.2}× | {all:.4} | {} | {} | {speedup} |",
            masked / floor,
            masked / (floor + key_work),
            show(peer_masked),
            show(peer_all),
        );
    }
}

/// Per-agreement cost of the k pairwise agreements, x25519-dalek one by one vs one batch,
/// interleaved in the same rounds (medians of 5 rounds of 5 runs each).
fn x25519_table() {
    println!("\nX25519, one member's k agreements (no HKDF), per agreement:");
    println!("| k | x25519-dalek µs | batch µs | dalek / batch |");
    println!("|---|---|---|---|");
    for k in [16, 32, 72] {
        let keys = PairwiseKeys::new(k);
        let (mut dalek, mut batch) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            dalek.push(median_seconds(5, || {
                black_box(keys.agree_one_by_one());
            }));
            batch.push(median_seconds(5, || {
                black_box(keys.agree_batched());
            }));
        }
        let per = |v: Vec<f64>| median(v).unwrap_or(f64::NAN) * 1e6 / k as f64;
        let (dalek, batch) = (per(dalek), per(batch));
        println!("| {k} | {dalek:.1} | {batch:.1} | {:.1}× |", dalek / batch);
    }
}

fn bench_round(c: &mut Criterion) {
    use covey_protocol::secagg::simulation::{SimulationConfig, simulate};
    let (n, k, m) = match scale() {
        Scale::Test => (10, 4, 100),
        _ => (100, 32, 10_000),
    };
    let mut group = c.benchmark_group("secagg_round");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for signed in [false, true] {
        let config = SimulationConfig {
            members: n,
            dimension: m,
            bits: 20,
            degree: Some(k),
            threat: ThreatModel {
                adversarial_fraction: 0.05,
                dropout_fraction: 0.1,
                adversary: AdversaryClass::SemiHonest,
            },
            dropouts: Vec::new(),
            signed,
        };
        let name = if signed { "signed" } else { "unsigned" };
        group.bench_function(format!("{name}/n{n}_k{k}_m{m}"), |b| {
            let mut rng = ChaCha20Rng::seed_from_u64(17);
            let start = std::time::Instant::now();
            b.iter(|| {
                let report = simulate(&config, &mut rng, &mut || start.elapsed()).unwrap();
                assert!(report.sum_correct);
                black_box(report)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_client,
    bench_server,
    bench_round,
    ratio_table
);
criterion_main!(benches);
