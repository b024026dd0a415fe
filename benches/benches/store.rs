//! The sealed store against plain rusqlite on the same schema, same pragmas, same run.
//!
//! - `store_insert/{sealed,plain}/batch{1000,100000}`: 100 000 loyalty events written in
//!   batches of 1 000 (100 transactions) and in one batch, into a fresh database.
//!   Sealed = `covey_store::Store::record_events` (validate, encode, AES-256-GCM per record,
//!   HMAC blind index, insert). Plain = the same events as plaintext columns
//!   (`kind, item_id, category, quantity, amount_minor, currency, store_id, channel, time_ms`,
//!   index on `item_id`) with a cached prepared `INSERT`, one transaction per batch.
//! - `store_scan/{sealed,plain}`: read all 100 000 events back into `LoyaltyEvent`s ordered by
//!   time (sealed: `Store::member_history`, which also enforces retention and
//!   appends one audit-log entry per call; plain: `SELECT ... ORDER
//!   BY time_ms, id`).
//! - Both sides use WAL, `synchronous=FULL`, `secure_delete=ON`, `temp_store=MEMORY`.
//! - After criterion, a ratio table (sealed throughput / plain throughput) from interleaved
//!   timed runs, against the goals: ≥ 60 % on inserts, ≥ 50 % on scans.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use covey_store::{
    Channel, EventKind, FakeClock, HistoryQuery, InMemoryKeyStore, LoyaltyEvent, RetentionPolicy,
    Store, StoreConfig,
};
use criterion::{Criterion, Throughput};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const EVENTS: usize = 100_000;
/// Events under `cargo test --all-targets` (criterion's test mode: one smoke run per bench).
const SMOKE_EVENTS: usize = 2_000;
const NOW: i64 = 1_780_000_000_000;
const BATCHES: [usize; 2] = [1_000, 100_000];

/// Whether this is a real benchmark run (`cargo bench`) rather than `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn events(n: usize) -> Vec<LoyaltyEvent> {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    (0..n)
        .map(|i| {
            let r = rng.next_u64();
            let kind = EventKind::ALL[(r % 5) as usize];
            let counted = matches!(kind, EventKind::Purchase | EventKind::Redemption);
            LoyaltyEvent {
                kind,
                item_id: format!("sku-{:06}", r % 5_000),
                category: format!("category-{}", (r >> 16) % 40),
                quantity: if counted {
                    1 + ((r >> 24) % 4) as u32
                } else {
                    0
                },
                amount_minor: if counted {
                    ((r >> 32) % 20_000) as i64
                } else {
                    0
                },
                currency: if counted { "EUR".into() } else { String::new() },
                store_id: format!("store-{}", (r >> 40) % 200),
                channel: Channel::ALL[((r >> 48) % 3) as usize],
                time_ms: NOW - (i as i64) * 60_000,
            }
        })
        .collect()
}

fn open_sealed(dir: &Path) -> Store {
    let keystore = Arc::new(InMemoryKeyStore::new(Box::new(ChaCha20Rng::seed_from_u64(
        1,
    ))));
    let config = StoreConfig {
        // Both sides return everything: no TTL filtering differences.
        retention: RetentionPolicy::keep_forever(),
        ..StoreConfig::default()
    };
    let clock = Arc::new(FakeClock::new(NOW));
    Store::open(dir, keystore, config, clock).expect("open sealed store")
}

const PLAIN_SCHEMA: &str = "
    CREATE TABLE events (
        id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, item_id TEXT NOT NULL,
        category TEXT NOT NULL, quantity INTEGER NOT NULL, amount_minor INTEGER NOT NULL,
        currency TEXT NOT NULL, store_id TEXT NOT NULL, channel INTEGER NOT NULL,
        time_ms INTEGER NOT NULL);
    CREATE INDEX events_item ON events (item_id);";

fn open_plain(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join("plain.sqlite3")).expect("open plain");
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .expect("wal");
    for (k, v) in [
        ("synchronous", "FULL"),
        ("secure_delete", "ON"),
        ("temp_store", "MEMORY"),
        ("foreign_keys", "ON"),
    ] {
        conn.pragma_update(None, k, v).expect("pragma");
    }
    conn.execute_batch(PLAIN_SCHEMA).expect("schema");
    conn
}

fn code<T: PartialEq>(all: &[T], v: &T) -> i64 {
    all.iter().position(|x| x == v).unwrap_or(0) as i64
}

fn plain_insert(conn: &mut rusqlite::Connection, events: &[LoyaltyEvent], batch: usize) {
    for chunk in events.chunks(batch) {
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO events (kind, item_id, category, quantity, amount_minor, \
                     currency, store_id, channel, time_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                )
                .expect("prepare");
            for e in chunk {
                stmt.execute(rusqlite::params![
                    code(EventKind::ALL, &e.kind),
                    e.item_id,
                    e.category,
                    e.quantity,
                    e.amount_minor,
                    e.currency,
                    e.store_id,
                    code(Channel::ALL, &e.channel),
                    e.time_ms
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

/// Decodes an enum code with the same validation the sealed decoder applies.
fn by_code<T: Copy>(all: &[T], column: usize, code: i64) -> rusqlite::Result<T> {
    usize::try_from(code)
        .ok()
        .and_then(|i| all.get(i).copied())
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(column, code))
}

fn plain_scan(conn: &rusqlite::Connection) -> Vec<LoyaltyEvent> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, item_id, category, quantity, amount_minor, currency, store_id, \
             channel, time_ms FROM events ORDER BY time_ms, id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(LoyaltyEvent {
            kind: by_code(EventKind::ALL, 0, r.get(0)?)?,
            item_id: r.get(1)?,
            category: r.get(2)?,
            quantity: r.get(3)?,
            amount_minor: r.get(4)?,
            currency: r.get(5)?,
            store_id: r.get(6)?,
            channel: by_code(Channel::ALL, 7, r.get(7)?)?,
            time_ms: r.get(8)?,
        })
    })
    .expect("query")
    .collect::<rusqlite::Result<_>>()
    .expect("rows")
}

/// Time of one fresh-database insert run (setup excluded).
fn time_insert(sealed: bool, events: &[LoyaltyEvent], batch: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    if sealed {
        let store = open_sealed(dir.path());
        let start = Instant::now();
        for chunk in events.chunks(batch) {
            store.record_events(chunk).expect("record");
        }
        start.elapsed()
    } else {
        let mut conn = open_plain(dir.path());
        let start = Instant::now();
        plain_insert(&mut conn, events, batch);
        start.elapsed()
    }
}

struct Filled {
    _dir: tempfile::TempDir,
    store: Store,
    plain: rusqlite::Connection,
}

fn filled(events: &[LoyaltyEvent]) -> Filled {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_sealed(dir.path());
    store.record_events(events).expect("fill sealed");
    let mut plain = open_plain(dir.path());
    plain_insert(&mut plain, events, events.len());
    Filled {
        _dir: dir,
        store,
        plain,
    }
}

fn sealed_scan(store: &Store) -> usize {
    store
        .member_history(&HistoryQuery::default())
        .expect("history")
        .len()
}

fn bench(c: &mut Criterion, events: &[LoyaltyEvent], filled: &Filled) {
    let mut group = c.benchmark_group("store_insert");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    for batch in BATCHES {
        for (name, sealed) in [("sealed", true), ("plain", false)] {
            group.bench_function(format!("{name}/batch{batch}"), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| time_insert(sealed, events, batch)).sum())
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("store_scan");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("sealed", |b| {
        b.iter(|| black_box(sealed_scan(&filled.store)))
    });
    group.bench_function("plain", |b| {
        b.iter(|| black_box(plain_scan(&filled.plain).len()))
    });
    group.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Interleaved runs (sealed, plain, sealed, ...) so machine noise hits both sides alike.
fn ratio(
    runs: usize,
    mut sealed: impl FnMut() -> Duration,
    mut plain: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    let (mut s, mut p) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        s.push(sealed());
        p.push(plain());
    }
    (median(s), median(p))
}

fn timed(f: impl FnOnce() -> usize) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

fn ratio_table(events: &[LoyaltyEvent], filled: &Filled) {
    println!("\nsealed vs plain rusqlite, 100 000 events, median of 7 interleaved runs");
    println!(
        "{:<28} {:>12} {:>12} {:>8} {:>6}",
        "case", "sealed", "plain", "ratio", "goal"
    );
    for batch in BATCHES {
        let (s, p) = ratio(
            7,
            || time_insert(true, events, batch),
            || time_insert(false, events, batch),
        );
        report(&format!("insert, batches of {batch}"), s, p, 0.60);
    }
    let (s, p) = ratio(
        7,
        || timed(|| sealed_scan(&filled.store)),
        || timed(|| plain_scan(&filled.plain).len()),
    );
    report("full scan", s, p, 0.50);
}

fn report(case: &str, sealed: Duration, plain: Duration, goal: f64) {
    // Throughput ratio = plain time / sealed time.
    let r = plain.as_secs_f64() / sealed.as_secs_f64();
    println!(
        "{case:<28} {:>10.1}ms {:>10.1}ms {:>7.0}% {:>5.0}%{}",
        sealed.as_secs_f64() * 1e3,
        plain.as_secs_f64() * 1e3,
        r * 100.0,
        goal * 100.0,
        if r >= goal { "" } else { "  (below goal)" }
    );
}

fn main() {
    let events = events(if benchmarking() { EVENTS } else { SMOKE_EVENTS });
    let filled = filled(&events);
    // Both sides hold and return the same events in the same order.
    let sealed: Vec<_> = filled
        .store
        .member_history(&HistoryQuery::default())
        .expect("history")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(sealed.len(), events.len());
    assert_eq!(plain_scan(&filled.plain), sealed);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench(&mut c, &events, &filled);
    c.final_summary();
    if benchmarking() {
        ratio_table(&events, &filled);
    }
}
