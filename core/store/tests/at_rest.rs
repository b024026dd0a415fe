//! Nothing readable rests on disk; wrong keys and damaged files give typed errors.

mod common;

use std::sync::Arc;

use common::*;
use covey_store::*;

#[test]
fn canary_values_never_reach_disk() {
    let fx = Fixture::new();
    let store = fx.open();
    fill_with_canaries(&store);
    // While open, the data sits in the write-ahead log: scan db, -wal and -shm.
    let files = file_names(fx.dir.path());
    assert!(files.iter().any(|f| f.ends_with("-wal")), "{files:?}");
    for needle in canary_needles() {
        assert_eq!(
            occurrences(fx.dir.path(), &needle),
            0,
            "needle {needle:?} while open"
        );
    }
    // The values are really stored (the scan is not vacuous).
    let history = store
        .member_history(&HistoryQuery::default())
        .expect("history");
    assert_eq!(history.len(), 50);
    assert!(history[0].event.item_id.starts_with(CANARY));
    drop(store);
    // After close (checkpointed into the main file).
    for needle in canary_needles() {
        assert_eq!(
            occurrences(fx.dir.path(), &needle),
            0,
            "needle {needle:?} after close"
        );
    }
}

#[test]
fn wrong_passphrase_is_a_clear_error_and_returns_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key");
    let open = |pass: &str, seed: u64| -> Result<Store> {
        let ks = PassphraseKeyStore::insecure_open_or_create_for_tests(
            &key_path,
            pass,
            rng(seed),
            1000,
        )?;
        Store::open_with_rng(
            dir.path(),
            Arc::new(ks),
            StoreConfig::default(),
            Arc::new(FakeClock::new(NOW)),
            rng(seed + 100),
        )
    };
    let store = open("correct horse", 1).expect("create");
    store
        .record_event(&purchase("sku-1", NOW - 1000))
        .expect("record");
    drop(store);
    let err = open("battery staple", 2).expect_err("wrong passphrase must fail");
    assert!(matches!(err, Error::KeyMismatch), "{err:?}");
    assert!(err.to_string().contains("wrong key or passphrase"), "{err}");
    let store = open("correct horse", 3).expect("right passphrase reopens");
    assert_eq!(
        store
            .member_history(&HistoryQuery::default())
            .expect("history")
            .len(),
        1
    );
}

/// A key store that wraps honestly but hands back a different key: only the canary can tell.
struct LyingKeyStore(InMemoryKeyStore);

impl KeyStore for LyingKeyStore {
    fn wrap_key(&self, key_id: String, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        self.0.wrap_key(key_id, key)
    }
    fn unwrap_key(&self, key_id: String, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError> {
        let mut key = self.0.unwrap_key(key_id, wrapped)?;
        key[0] ^= 1;
        Ok(key)
    }
    fn destroy_key(&self, key_id: String) -> Result<(), KeyStoreError> {
        self.0.destroy_key(key_id)
    }
}

#[test]
fn a_wrong_key_is_caught_by_the_canary() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Creating a store only wraps (honestly); reopening unwraps (and lies).
    let lying = Arc::new(LyingKeyStore(InMemoryKeyStore::new(rng(5))));
    let clock = Arc::new(FakeClock::new(NOW));
    let store = Store::open_with_rng(
        dir.path(),
        lying.clone(),
        StoreConfig::default(),
        clock.clone(),
        rng(6),
    )
    .expect("create");
    store
        .record_event(&purchase("sku", NOW - 1))
        .expect("record");
    drop(store);
    let err = Store::open_with_rng(
        dir.path(),
        lying,
        StoreConfig::default(),
        clock.clone(),
        rng(7),
    )
    .expect_err("lying key store");
    assert!(matches!(err, Error::KeyMismatch), "{err:?}");
    // A key store that never held this store's key.
    let stranger = Arc::new(InMemoryKeyStore::new(rng(8)));
    let err = Store::open_with_rng(dir.path(), stranger, StoreConfig::default(), clock, rng(9))
        .expect_err("foreign key store");
    assert!(matches!(err, Error::KeyUnavailable), "{err:?}");
}

fn event_ids(conn: &rusqlite::Connection) -> Vec<i64> {
    conn.prepare("SELECT id FROM events ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("ids")
}

fn sealed_of(conn: &rusqlite::Connection, id: i64) -> Vec<u8> {
    conn.query_row("SELECT sealed FROM events WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .expect("sealed")
}

/// A closed store holding one purchase per item, a raw connection to its file, and the ids.
fn closed_store_with(items: &[&str]) -> (Fixture, rusqlite::Connection, Vec<i64>) {
    let fx = Fixture::new();
    let store = fx.open();
    let events: Vec<_> = items
        .iter()
        .zip(1..)
        .map(|(item, age)| purchase(item, NOW - age))
        .collect();
    store.record_events(&events).expect("record");
    drop(store);
    let conn = raw(&fx.db_path());
    let ids = event_ids(&conn);
    (fx, conn, ids)
}

fn expect_corrupted_row(fx: &Fixture, id: i64) {
    let store = fx.open();
    match store.member_history(&HistoryQuery::default()) {
        Err(Error::Corrupted {
            table: "events",
            row_id: Some(row),
            ..
        }) => assert_eq!(row, id),
        other => panic!("expected Corrupted for row {id}, got {other:?}"),
    }
}

#[test]
fn a_flipped_ciphertext_byte_is_detected() {
    let (fx, conn, ids) = closed_store_with(&["a", "b"]);
    let mut blob = sealed_of(&conn, ids[1]);
    let last = blob.len() - 20; // inside the ciphertext
    blob[last] ^= 0x80;
    conn.execute(
        "UPDATE events SET sealed = ?1 WHERE id = ?2",
        rusqlite::params![blob, ids[1]],
    )
    .expect("tamper");
    drop(conn);
    expect_corrupted_row(&fx, ids[1]);
}

#[test]
fn a_ciphertext_copied_or_swapped_into_another_row_is_detected() {
    let (fx, conn, ids) = closed_store_with(&["a", "b", "c"]);
    let a = sealed_of(&conn, ids[0]);
    conn.execute(
        "UPDATE events SET sealed = ?1 WHERE id = ?2",
        rusqlite::params![a, ids[2]],
    )
    .expect("copy");
    drop(conn);
    expect_corrupted_row(&fx, ids[2]);

    // Swap two rows' ids (the whole row moves): still detected.
    let (fx, conn, ids) = closed_store_with(&["a", "b"]);
    conn.execute_batch(&format!(
        "UPDATE events SET id = -1 WHERE id = {a}; UPDATE events SET id = {a} WHERE id = {b};
         UPDATE events SET id = {b} WHERE id = -1;",
        a = ids[0],
        b = ids[1]
    ))
    .expect("swap");
    drop(conn);
    let store = fx.open();
    assert!(matches!(
        store.member_history(&HistoryQuery::default()),
        Err(Error::Corrupted {
            table: "events",
            ..
        })
    ));
}

#[test]
fn a_swapped_blind_index_never_yields_wrong_rows() {
    let (fx, conn, _) = closed_store_with(&["apple", "pear"]);
    conn.execute_batch(
        "UPDATE events SET item_idx = (SELECT item_idx FROM events ORDER BY id LIMIT 1) || x'' \
         WHERE id = (SELECT max(id) FROM events);",
    )
    .expect("alias index");
    drop(conn);
    let store = fx.open();
    let q = HistoryQuery {
        item_id: Some("apple".into()),
        ..HistoryQuery::default()
    };
    let got = store.member_history(&q).expect("history");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.item_id, "apple");
}

#[test]
fn a_truncated_or_garbage_file_gives_corrupted_never_a_panic() {
    let fx = Fixture::new();
    let store = fx.open();
    let events: Vec<_> = (0..3000)
        .map(|i| purchase(&format!("sku-{i}"), NOW - 1000 - i))
        .collect();
    store.record_events(&events).expect("record");
    drop(store);
    let path = fx.db_path();
    let full = std::fs::read(&path).expect("read");
    for keep in [full.len() / 2, full.len() * 9 / 10, 4096 + 100, 50] {
        std::fs::write(&path, &full[..keep]).expect("truncate");
        let outcome = fx
            .open_with(StoreConfig::default())
            .and_then(|s| s.member_history(&HistoryQuery::default()));
        match outcome {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("truncated to {keep} of {}: {other:?}", full.len()),
        }
    }
    let mut garbage = full.clone();
    garbage[..100].fill(0xAB);
    std::fs::write(&path, &garbage).expect("garbage");
    assert!(matches!(
        fx.open_with(StoreConfig::default()),
        Err(Error::Corrupted { .. })
    ));
}
