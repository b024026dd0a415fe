//! Crash consistency: a writer process killed with SIGKILL at random moments never loses a
//! batch it reported committed and never leaves part of a batch.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use covey_store::*;
use rand_core::{RngCore, SeedableRng};

const BATCH: usize = 25;
const ROUNDS: u64 = 24;
const PASSPHRASE: &str = "crash-test passphrase";
const DIR_VAR: &str = "COVEY_STORE_CRASH_DIR";
const START_VAR: &str = "COVEY_STORE_CRASH_START";

fn open(dir: &Path, seed: u64) -> Store {
    let ks = PassphraseKeyStore::insecure_open_or_create_for_tests(
        &dir.join("key"),
        PASSPHRASE,
        rng(seed),
        1000,
    )
    .expect("key store");
    // The child and the parent both use the system clock: events are stamped "now".
    Store::open(
        dir,
        Arc::new(ks),
        StoreConfig::default(),
        Arc::new(SystemClock),
    )
    .expect("open")
}

fn batch_of(item: &str) -> Option<u64> {
    item.strip_prefix('b')?.split('-').next()?.parse().ok()
}

/// The child: writes batches until killed, announcing each commit on stdout. Does nothing
/// unless started by `killed_writers_lose_no_committed_batch`.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_VAR), std::env::var(START_VAR)) else {
        return;
    };
    let start: u64 = start.parse().expect("start");
    let store = open(Path::new(&dir), start);
    let mut out = std::io::stdout().lock();
    for b in start.. {
        let now = SystemClock.now_ms();
        let events: Vec<_> = (0..BATCH)
            .map(|i| purchase(&format!("b{b}-e{i}"), now))
            .collect();
        store.record_events(&events).expect("record");
        writeln!(out, "committed {b}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[test]
fn killed_writers_lose_no_committed_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut timing = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let mut committed = Vec::new();
    let mut killed_mid_run = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(START_VAR, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                // libtest may print "test crash_child ... " before the first line.
                .filter_map(|l| l.split("committed ").nth(1)?.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(40 + timing.next_u64() % 260));
        if child.try_wait().expect("try_wait").is_none() {
            killed_mid_run += 1;
        }
        child.kill().expect("SIGKILL"); // SIGKILL on Unix
        child.wait().expect("wait");
        committed.extend(reader.join().expect("reader"));
    }
    assert!(
        killed_mid_run >= 20,
        "only {killed_mid_run} children were killed while running"
    );
    assert!(
        !committed.is_empty(),
        "no child committed anything: test would be vacuous"
    );

    let store = open(dir.path(), 99);
    let mut per_batch: BTreeMap<u64, usize> = BTreeMap::new();
    for e in store
        .member_history(&HistoryQuery::default())
        .expect("history")
    {
        let b = batch_of(&e.event.item_id).expect("item id names its batch");
        *per_batch.entry(b).or_default() += 1;
    }
    for b in &committed {
        assert_eq!(
            per_batch.get(b),
            Some(&BATCH),
            "committed batch {b} lost or partial"
        );
    }
    for (b, n) in &per_batch {
        assert_eq!(*n, BATCH, "batch {b} is partial");
    }
    // At most one unreported batch per round (committed, killed before it could say so).
    assert!(
        per_batch.len() <= committed.len() + ROUNDS as usize,
        "{} batches stored, {} reported: {:?} vs {:?}",
        per_batch.len(),
        committed.len(),
        per_batch.keys().collect::<Vec<_>>(),
        committed
    );
}
