//! Aggregation-server costs, each against a baseline measured in the same run.
//!
//! - `server_optimizer/{fedavg,fedadam}/{d}`: one server optimizer step over a dense f32
//!   vector of d parameters; floor `server_optimizer/stream/{d}`: the same number of bytes
//!   read and written by a plain element-wise pass (memory bandwidth is the limit: FedAvg
//!   moves 3 vectors, FedAdam 7).
//! - `server_ingest/{ours,raw_sqlite}`: queue and drain one masked upload of 100,000
//!   parameters at 20 bits (250 KB) through `Storage::submit` + `take_submissions` on SQLite
//!   (WAL, synchronous=FULL), against raw rusqlite doing the same INSERT + SELECT + UPDATE
//!   in one transaction each, with the same pragmas.

use std::hint::black_box;
use std::time::Duration;

use covey_protocol::secagg::Stage;
use covey_server::config::{OptimizerConfig, OptimizerKind};
use covey_server::optimizer::{self, OptimizerState};
use covey_server::storage::{
    NewRound, PopulationRecord, SqliteStorage, Storage, Submission, SubmitOutcome,
};
use covey_server::token::sha256;
use criterion::{Criterion, criterion_group, criterion_main};

const DIMS: [usize; 2] = [100_000, 1_000_000];

fn vector(d: usize, scale: f32) -> Vec<f32> {
    (0..d).map(|i| ((i % 97) as f32 - 48.0) * scale).collect()
}

fn bench_optimizer(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_optimizer");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let adam = OptimizerConfig::new(OptimizerKind::Fedadam, 0.05);
    for d in DIMS {
        let (params, delta) = (vector(d, 1e-3), vector(d, 1e-4));
        let state = OptimizerState {
            m: vector(d, 1e-5),
            v: vector(d, 1e-6),
        };
        group.bench_function(format!("fedavg/{d}"), |b| {
            b.iter(|| black_box(optimizer::fedavg(&params, &delta, 1.0).unwrap()))
        });
        group.bench_function(format!("fedadam/{d}"), |b| {
            b.iter(|| black_box(optimizer::fedadam(&params, &state, &delta, &adam, 0.05).unwrap()))
        });
        // Floor: read two vectors, write one (FedAvg's traffic) with no arithmetic to speak
        // of. FedAdam's traffic is 7/3 of it.
        group.bench_function(format!("stream/{d}"), |b| {
            b.iter(|| {
                let out: Vec<f32> = params.iter().zip(&delta).map(|(a, b)| a + b).collect();
                black_box(out)
            })
        });
    }
    group.finish();
}

const UPLOAD_BYTES: usize = 100_000 * 20 / 8;

fn bench_ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("server_ingest");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let dir = tempfile::tempdir().expect("temp dir");
    let payload = vec![0xA5u8; UPLOAD_BYTES];
    let digest = sha256(&payload);

    let store = SqliteStorage::open(&dir.path().join("covey.db")).expect("open");
    store
        .create_population(&PopulationRecord {
            name: "bench".into(),
            config_toml: String::new(),
            catalog: String::new(),
            created_at: 0,
        })
        .expect("population");
    let round = store
        .open_round(&NewRound {
            population: "bench".into(),
            base_version: 0,
            opened_at: 0,
            deadline: 1,
        })
        .expect("round");
    let mut member = 0u32;
    group.bench_function("ours", |b| {
        b.iter(|| {
            member += 1;
            let outcome = store
                .submit(&Submission {
                    round_id: round,
                    stage: Stage::MaskedInput,
                    member,
                    payload: payload.clone(),
                    digest,
                    received_at: 0,
                })
                .expect("submit");
            assert_eq!(outcome, SubmitOutcome::Accepted);
            black_box(
                store
                    .take_submissions(round, Stage::MaskedInput)
                    .expect("take"),
            )
        })
    });

    let raw = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open raw");
    raw.pragma_update(None, "journal_mode", "WAL").expect("wal");
    raw.pragma_update(None, "synchronous", "FULL")
        .expect("sync");
    raw.execute_batch(
        "CREATE TABLE inbox (member INTEGER PRIMARY KEY, digest BLOB NOT NULL, payload BLOB)",
    )
    .expect("table");
    let mut member = 0i64;
    group.bench_function("raw_sqlite", |b| {
        b.iter(|| {
            member += 1;
            let tx = raw.unchecked_transaction().expect("tx");
            tx.execute(
                "INSERT INTO inbox (member, digest, payload) VALUES (?1, ?2, ?3)",
                rusqlite::params![member, &digest[..], &payload],
            )
            .expect("insert");
            tx.commit().expect("commit");
            let tx = raw.unchecked_transaction().expect("tx");
            let taken: Vec<u8> = tx
                .query_row(
                    "SELECT payload FROM inbox WHERE member = ?1",
                    [member],
                    |r| r.get(0),
                )
                .expect("select");
            tx.execute(
                "UPDATE inbox SET payload = NULL WHERE member = ?1",
                [member],
            )
            .expect("update");
            tx.commit().expect("commit");
            black_box(taken)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_optimizer, bench_ingest);
criterion_main!(benches);
