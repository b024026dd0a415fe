//! Migration, validation, retention, erase, export, rotation, and concurrent use.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use covey_store::*;

/// Schema version 1 exactly as the first release wrote it. Never edit: it stands for files
/// already on members' phones.
const FROZEN_V1_SCHEMA: &str = "
-- Schema version 1: store identity, the data key, loyalty events.
-- Values of member data live only in `sealed` columns (AES-256-GCM, see src/cipher.rs);
-- `*_idx` columns hold blind indexes (truncated HMAC-SHA256 under per-table keys).

CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- random; names this store's wrapping key in the host key store
    store_id TEXT NOT NULL,
    -- next row id of any sealed table; ids are never reused, so a deleted ciphertext can
    -- never be replayed into a new row under the same key
    next_row_id INTEGER NOT NULL
);

CREATE TABLE data_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- increments on rotation and erase; part of the key id
    generation INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    -- the data key wrapped by the host key store
    wrapped BLOB NOT NULL,
    -- a known constant sealed under the data key: detects a wrong key
    canary BLOB NOT NULL,
    -- values sealed under this key (random-nonce bound)
    seal_count INTEGER NOT NULL
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    -- blind index of the item id
    item_idx BLOB NOT NULL,
    sealed BLOB NOT NULL
);

CREATE INDEX events_item_idx ON events (item_idx);
PRAGMA user_version = 1;
";

/// `sqlite_master` rows: type, name, table, SQL text.
type SchemaRows = Vec<(String, String, String, Option<String>)>;

fn schema_of(path: &std::path::Path) -> (u32, SchemaRows) {
    let conn = raw(path);
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    let rows = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    (version, rows)
}

#[test]
fn an_old_schema_file_upgrades_to_exactly_the_fresh_schema_and_keeps_its_data() {
    let fresh = Fixture::new();
    drop(fresh.open());
    let fresh_schema = schema_of(&fresh.db_path());
    assert_eq!(fresh_schema.0, SCHEMA_VERSION);

    // A file written by the version-1 release (frozen DDL).
    let frozen = Fixture::new();
    raw(&frozen.db_path())
        .execute_batch(FROZEN_V1_SCHEMA)
        .expect("v1 file");
    drop(frozen.open());
    assert_eq!(schema_of(&frozen.db_path()), fresh_schema);

    // A version-1 store holding sealed events, upgraded by a newer build.
    let old = Fixture::new();
    let v1 = Store::open_at_schema_version_for_tests(
        old.dir.path(),
        old.keystore.clone(),
        old.clock.clone(),
        rng(40),
        1,
    )
    .expect("open v1");
    assert_eq!(v1.schema_version(), 1);
    v1.record_events(&[purchase("kept-1", NOW - 5), purchase("kept-2", NOW - 4)])
        .expect("record at v1");
    drop(v1);
    assert_eq!(schema_of(&old.db_path()).0, 1);
    let upgraded = old.open();
    assert_eq!(upgraded.schema_version(), SCHEMA_VERSION);
    let items: Vec<_> = upgraded
        .member_history(&HistoryQuery::default())
        .expect("history")
        .into_iter()
        .map(|e| e.event.item_id)
        .collect();
    assert_eq!(items, ["kept-1", "kept-2"]);
    upgraded
        .put_blob("local_state", b"v2 table works")
        .expect("v2 table");
    drop(upgraded);
    assert_eq!(schema_of(&old.db_path()), fresh_schema);
}

#[test]
fn a_newer_file_is_refused() {
    let fx = Fixture::new();
    drop(fx.open());
    raw(&fx.db_path())
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("bump");
    assert!(matches!(
        fx.open_with(StoreConfig::default()),
        Err(Error::SchemaTooNew { .. })
    ));
}

#[test]
fn an_invalid_event_fails_the_whole_batch_and_writes_nothing() {
    let fx = Fixture::new();
    let store = fx.open();
    let batch = vec![
        purchase("ok-1", NOW - 10),
        LoyaltyEvent {
            quantity: 0,
            ..purchase("bad", NOW - 9)
        },
        purchase("ok-2", NOW - 8),
    ];
    match store.record_events(&batch) {
        Err(Error::InvalidEvent {
            index: 1,
            field: "quantity",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let future = purchase("late", NOW + 2 * DAY_MS);
    assert!(matches!(
        store.record_event(&future),
        Err(Error::InvalidEvent { field: "time", .. })
    ));
    assert!(
        store
            .member_history(&HistoryQuery::default())
            .expect("history")
            .is_empty()
    );
    assert!(matches!(
        store.put_blob("", b"x"),
        Err(Error::InvalidInput { field: "name", .. })
    ));
}

#[test]
fn history_queries_filter_by_kind_item_time_and_limit() {
    let fx = Fixture::new();
    let store = fx.open();
    store
        .record_events(&[
            purchase("apple", NOW - 50),
            view("apple", NOW - 40),
            purchase("pear", NOW - 30),
            purchase("apple", NOW - 20),
        ])
        .expect("record");
    let q = |q: HistoryQuery| -> Vec<(String, i64)> {
        store
            .member_history(&q)
            .expect("history")
            .into_iter()
            .map(|e| (e.event.item_id, e.event.time_ms))
            .collect()
    };
    let apple = HistoryQuery {
        item_id: Some("apple".into()),
        ..HistoryQuery::default()
    };
    assert_eq!(q(apple.clone()).len(), 3);
    let apple_purchases = HistoryQuery {
        kinds: vec![EventKind::Purchase],
        ..apple.clone()
    };
    assert_eq!(
        q(apple_purchases),
        [("apple".into(), NOW - 50), ("apple".into(), NOW - 20)]
    );
    let window = HistoryQuery {
        since_ms: Some(NOW - 40),
        until_ms: Some(NOW - 20),
        ..HistoryQuery::default()
    };
    assert_eq!(
        q(window),
        [("apple".into(), NOW - 40), ("pear".into(), NOW - 30)]
    );
    let last = HistoryQuery {
        limit: Some(1),
        ..HistoryQuery::default()
    };
    assert_eq!(q(last), [("apple".into(), NOW - 20)]);
}

#[test]
fn retention_hides_expired_rows_at_read_time_and_the_sweep_deletes_them() {
    let fx = Fixture::new();
    let policy = RetentionPolicy::keep_forever()
        .with_event_ttl(EventKind::OfferView, Duration::from_secs(90 * 86_400))
        .with_event_ttl(EventKind::Purchase, Duration::from_secs(730 * 86_400))
        .with_participation_ttl(Duration::from_secs(30 * 86_400));
    let store = fx
        .open_with(StoreConfig {
            retention: policy,
            ..StoreConfig::default()
        })
        .expect("open");
    store
        .record_events(&[
            view("old-view", NOW - 80 * DAY_MS),
            view("new-view", NOW - DAY_MS),
            purchase("old-buy", NOW - 700 * DAY_MS),
        ])
        .expect("record");
    store
        .record_participation(&ParticipationRecord {
            population: "p".into(),
            round_id: 1,
            model_version: 1,
            started_at_ms: NOW - 2 * DAY_MS,
            finished_at_ms: NOW - DAY_MS,
            outcome: ParticipationOutcome::DroppedOut,
            bytes_uploaded: 0,
            epsilon_charged: 0.0,
        })
        .expect("participation");
    let items = |s: &Store| -> Vec<String> {
        s.member_history(&HistoryQuery::default())
            .expect("history")
            .into_iter()
            .map(|e| e.event.item_id)
            .collect()
    };
    let raw_count = || -> i64 {
        raw(&fx.db_path())
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(items(&store), ["old-buy", "old-view", "new-view"]);

    fx.clock.advance_ms(20 * DAY_MS); // old view is now 100 days old
    assert_eq!(items(&store), ["old-buy", "new-view"]);
    assert_eq!(raw_count(), 3, "expired row still on disk until the sweep");
    assert_eq!(store.participations().expect("rounds").len(), 1);

    fx.clock.advance_ms(40 * DAY_MS); // purchase 760 days old, round 61 days old
    assert_eq!(items(&store), ["new-view"]);
    assert!(store.participations().expect("rounds").is_empty());
    assert!(store.export().expect("export").events.len() == 1);
    assert_eq!(
        store.purge_expired().expect("purge"),
        PurgeReport {
            events: 2,
            participations: 1
        }
    );
    assert_eq!(raw_count(), 1);
    assert_eq!(items(&store), ["new-view"]);
}

/// Every sealed value and the wrapped key, as raw bytes from the file.
fn raw_secrets(fx: &Fixture) -> Vec<Vec<u8>> {
    let conn = raw(&fx.db_path());
    let mut out = Vec::new();
    for table in [
        "events",
        "catalog_header",
        "catalog_items",
        "model_blobs",
        "participations",
        "key_material",
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT sealed FROM {table}"))
            .expect("prepare");
        let blobs = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("blobs");
        out.extend(blobs);
    }
    out.push(
        conn.query_row("SELECT wrapped FROM data_key", [], |r| r.get(0))
            .expect("wrapped"),
    );
    out
}

#[test]
fn erase_leaves_no_byte_of_any_member_value_and_shreds_the_key() {
    let fx = Fixture::new();
    let store = fx.open();
    fill_with_canaries(&store);
    let before = store.key_info().expect("key info");
    let secrets = raw_secrets(&fx);
    assert!(secrets.len() > 50);
    // Each sealed value (ciphertext part, past the version byte and nonce) is on disk now.
    let needle = |s: &Vec<u8>| s[13..s.len().min(13 + 24)].to_vec();
    assert!(occurrences(fx.dir.path(), &needle(&secrets[0])) > 0);

    let report = store.erase_all().expect("erase");
    assert!(report.rows_deleted >= 54, "{report:?}");
    assert_eq!(report.new_generation, before.generation + 1);
    for s in &secrets {
        assert_eq!(
            occurrences(fx.dir.path(), &needle(s)),
            0,
            "sealed bytes survived erase"
        );
    }
    for n in canary_needles() {
        assert_eq!(occurrences(fx.dir.path(), &n), 0);
    }
    // The old wrapping key is gone from the key store: old backups cannot be opened.
    assert!(matches!(
        fx.keystore
            .unwrap_key(before.key_id.clone(), secrets[secrets.len() - 1].clone()),
        Err(KeyStoreError::KeyNotFound)
    ));
    // The store is empty and usable.
    assert!(
        store
            .member_history(&HistoryQuery::default())
            .expect("history")
            .is_empty()
    );
    assert_eq!(store.blob("local_state").expect("blob"), None);
    assert_eq!(store.catalog().expect("catalog"), None);
    store
        .record_event(&purchase("after", NOW - 1))
        .expect("record after erase");
    drop(store);
    for s in &secrets {
        assert_eq!(
            occurrences(fx.dir.path(), &needle(s)),
            0,
            "sealed bytes after close"
        );
    }
    assert_eq!(
        fx.open()
            .member_history(&HistoryQuery::default())
            .expect("h")
            .len(),
        1
    );
}

/// Handing the member's data out of the store is recorded where it is read, whoever asks.
#[test]
fn every_export_is_audit_logged_as_a_member_access() {
    let fx = Fixture::new();
    let store = fx.open();
    store
        .record_events(&[purchase("a", NOW - 10), purchase("b", NOW - 5)])
        .expect("events");
    let before = store.audit_rows().expect("rows").len();
    store.export().expect("export");
    store.export_json().expect("json");
    let rows = store.audit_rows().expect("rows");
    assert_eq!(rows.len(), before + 2);
    for row in &rows[before..] {
        let entry =
            audit_entry::AuditEntry::decode(row.bytes.as_deref().expect("opens")).expect("decodes");
        assert_eq!(
            entry.event,
            audit_entry::AuditEvent::MemberAccess {
                what: "export".into(),
                rows: 2
            }
        );
    }
}

#[test]
fn export_round_trips_through_json_and_import() {
    let fx = Fixture::new();
    let store = fx.open();
    fill_with_canaries(&store);
    store.record_event(&view("viewed", NOW - 5)).expect("view");
    store
        .put_blob("global_model", &[0, 1, 2, 255])
        .expect("blob");
    let doc = store.export().expect("export");
    assert_eq!(doc.format, EXPORT_FORMAT);
    assert_eq!(doc.format_version, EXPORT_FORMAT_VERSION);
    assert_eq!(doc.events.len(), 51);
    assert_eq!(doc.model_blobs.len(), 2);
    assert_eq!(doc.key_material[0].name, "receipt-signing");
    let json = store.export_json().expect("json");
    assert!(
        !json.contains(&format!("{CANARY}-secret")),
        "secrets are never exported"
    );
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid json");
    assert_eq!(value["events"][0]["kind"], "purchase");
    assert_eq!(value["events"][0]["amount_minor"], CANARY_AMOUNT);
    assert_eq!(value["events"][0]["channel"], "web");
    let mut parsed: ExportDocument = serde_json::from_str(&json).expect("parse back");
    assert_eq!(
        parsed.data_key.seal_count,
        doc.data_key.seal_count + 1,
        "the first export sealed its audit entry"
    );
    parsed.data_key = doc.data_key.clone();
    assert_eq!(parsed, doc);

    // Portability: import into a new store, export again: same member data.
    let other = Fixture::new();
    let target = other.open();
    let report = target.import(&parsed).expect("import");
    assert_eq!(report.events, 51);
    let again = target.export().expect("export again");
    let strip = |d: &ExportDocument| {
        let events: Vec<_> = d.events.iter().map(|e| e.event.clone()).collect();
        let rounds: Vec<_> = d.participations.iter().map(|p| p.record.clone()).collect();
        (events, d.catalog.clone(), d.model_blobs.clone(), rounds)
    };
    assert_eq!(strip(&again), strip(&doc));

    let mut wrong = parsed.clone();
    wrong.format_version = 99;
    assert!(matches!(
        target.import(&wrong),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn rotation_reseals_everything_under_a_new_key() {
    let fx = Fixture::new();
    let store = fx.open();
    fill_with_canaries(&store);
    let before_doc = store.export().expect("export");
    let before_key = store.key_info().expect("key");
    let before_raw = raw_secrets(&fx);
    let idx_before: Vec<u8> = raw(&fx.db_path())
        .query_row("SELECT item_idx FROM events ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("idx");

    let report = store.rotate_key().expect("rotate");
    assert_eq!(report.generation, before_key.generation + 1);
    // Every sealed value but the wrapped key, plus the export's audit entry.
    assert_eq!(report.resealed_rows, before_raw.len() as u64 - 1 + 1);
    assert!(report.old_key_destroyed);
    let after_raw = raw_secrets(&fx);
    for old in &before_raw {
        assert!(!after_raw.contains(old), "a value was not re-sealed");
    }
    let idx_after: Vec<u8> = raw(&fx.db_path())
        .query_row("SELECT item_idx FROM events ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .expect("idx");
    assert_ne!(idx_before, idx_after, "blind indexes are re-keyed too");

    let mut after_doc = store.export().expect("export");
    assert_eq!(after_doc.data_key.generation, before_key.generation + 1);
    assert_eq!(after_doc.data_key.seal_count, report.resealed_rows + 1);
    after_doc.data_key = before_doc.data_key.clone();
    assert_eq!(after_doc, before_doc);
    let by_item = HistoryQuery {
        item_id: Some(format!("{CANARY}-item-3")),
        ..HistoryQuery::default()
    };
    assert_eq!(store.member_history(&by_item).expect("lookup").len(), 1);
    let km = store
        .key_material("receipt-signing")
        .expect("km")
        .expect("present");
    assert_eq!(km.secret.as_slice(), format!("{CANARY}-secret").as_bytes());
    drop(store);
    // Reopens with the new key; the old wrapping key is destroyed.
    assert_eq!(
        fx.open()
            .member_history(&HistoryQuery::default())
            .expect("h")
            .len(),
        50
    );
    assert!(matches!(
        fx.keystore.unwrap_key(before_key.key_id, vec![0; 60]),
        Err(KeyStoreError::KeyNotFound)
    ));
}

#[test]
fn the_nonce_budget_is_enforced_and_rotation_renews_it() {
    let fx = Fixture::new();
    let store = fx
        .open_with(StoreConfig {
            seal_limit: 12,
            ..StoreConfig::default()
        })
        .expect("open");
    // The canary used one seal.
    let ten: Vec<_> = (0..10)
        .map(|i| purchase(&format!("s{i}"), NOW - 1))
        .collect();
    store.record_events(&ten).expect("within budget");
    let two = [purchase("x", NOW - 1), purchase("y", NOW - 1)];
    assert!(matches!(
        store.record_events(&two),
        Err(Error::KeyUsageExhausted { sealed: 12 })
    ));
    // (Counted in SQL: a member access or an export would itself seal an audit entry.)
    let rows: i64 = raw(&fx.db_path())
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 10);
    store.rotate_key().expect("rotate");
    assert_eq!(store.key_info().expect("info").seal_count, 11);
    store
        .record_event(&purchase("z", NOW - 1))
        .expect("after rotation");
}

#[test]
fn blobs_catalog_and_key_material_round_trip() {
    let fx = Fixture::new();
    let store = fx.open();
    store.put_blob("global_model", &[1, 2, 3]).expect("put");
    store.put_blob("global_model", &[4, 5]).expect("replace");
    assert_eq!(store.blob("global_model").expect("get"), Some(vec![4, 5]));
    assert_eq!(store.blob("other").expect("get"), None);
    assert!(store.delete_blob("global_model").expect("delete"));
    assert!(!store.delete_blob("global_model").expect("delete again"));
    let catalog = Catalog {
        version: 9,
        items: vec![
            CatalogItem {
                item_id: "a".into(),
                category: "c".into(),
                name: "A".into(),
                features: vec!["brand:x".into()],
            },
            CatalogItem {
                item_id: "b".into(),
                category: "c".into(),
                name: "B".into(),
                features: vec![],
            },
        ],
    };
    store.put_catalog(&catalog).expect("catalog");
    assert_eq!(store.catalog().expect("get"), Some(catalog.clone()));
    assert_eq!(
        store.catalog_item("b").expect("item"),
        Some(catalog.items[1].clone())
    );
    assert_eq!(store.catalog_item("zz").expect("item"), None);
    let dup = Catalog {
        items: vec![catalog.items[0].clone(), catalog.items[0].clone()],
        ..catalog.clone()
    };
    assert!(matches!(
        store.put_catalog(&dup),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(store.catalog().expect("unchanged"), Some(catalog));
}

#[test]
fn readers_run_beside_the_writer_and_see_whole_batches() {
    let fx = Fixture::new();
    let store = Arc::new(fx.open());
    const BATCH: usize = 20;
    const BATCHES: usize = 30;
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for b in 0..BATCHES {
                let events: Vec<_> = (0..BATCH)
                    .map(|i| purchase(&format!("b{b}-{i}"), NOW - 1))
                    .collect();
                store.record_events(&events).expect("record");
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                while last < BATCH * BATCHES {
                    let n = store
                        .member_history(&HistoryQuery::default())
                        .expect("read")
                        .len();
                    assert_eq!(n % BATCH, 0, "a reader saw part of a batch");
                    assert!(n >= last, "a reader went back in time");
                    last = n;
                }
            })
        })
        .collect();
    writer.join().expect("writer");
    for r in readers {
        r.join().expect("reader");
    }
}
