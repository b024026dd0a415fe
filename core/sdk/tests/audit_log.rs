//! The audit log on a real database file: an untouched log verifies; modifying, deleting,
//! reordering or inserting entries, truncating the log, or rolling the database file back to
//! an older snapshot is detected. A tampered log is never re-signed. Opening verifies only what
//! was appended since the last open (the store's verified mark); the full verification still
//! finds tampering before it, and a damaged mark only costs a full verification.

mod common;

use std::path::Path;

use common::{Fixture, T0, config, purchase};
use covey_sdk::audit::{AuditReport, AuditViolation, VerifyScope};
use covey_sdk::audit_entry::{AuditEvent, NoiseParams, UploadRecord};
use covey_sdk::consent::{ConsentEventKind, PurposeId};
use covey_sdk::grant::{FederatedTraining, Personalization};
use covey_sdk::purpose::PurposeRegistry;
use covey_store::{DB_FILE_NAME, HistoryQuery};
use rusqlite::Connection;

/// A device with a realistic log: decisions, reads, a training pass, an upload.
fn busy_fixture() -> Fixture {
    let fx = Fixture::new();
    let d = fx.device();
    fx.store
        .record_events(&[
            purchase("sku-canary-7f3a", T0 - 5000),
            purchase("sku-2", T0 - 4000),
        ])
        .expect("events");
    for p in [
        PurposeId::personalization(),
        PurposeId::federated_training(),
    ] {
        d.decide(&p, ConsentEventKind::Given, 1, "onboarding")
            .expect("give");
    }
    let pers = d.grant::<Personalization>("recommender").expect("grant");
    fx.store
        .history(&pers, &HistoryQuery::default())
        .expect("read");
    let fed = d.grant::<FederatedTraining>("trainer").expect("grant");
    fx.store
        .history(&fed, &HistoryQuery::default())
        .expect("read");
    d.record_training(&fed, Some(3), 2).expect("training");
    d.record_upload(
        &fed,
        UploadRecord {
            round: 3,
            bytes: 8192,
            clip_norm: 1.0,
            noise: NoiseParams {
                mechanism: "skellam".into(),
                stddev: 3.0,
                bits: 20,
            },
            epsilon: 0.3,
            delta: 1e-6,
        },
    )
    .expect("upload");
    d.decide(
        &PurposeId::analytics(),
        ConsentEventKind::Refused,
        1,
        "onboarding",
    )
    .expect("refuse");
    fx
}

fn sql(dir: &Path) -> Connection {
    Connection::open(dir.join(DB_FILE_NAME)).expect("open db")
}

fn audit_ids(conn: &Connection) -> Vec<i64> {
    let mut stmt = conn
        .prepare("SELECT id FROM audit_log ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("ids")
}

fn sealed(conn: &Connection, id: i64) -> Vec<u8> {
    conn.query_row("SELECT sealed FROM audit_log WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .expect("row")
}

/// Closes the store, lets `tamper` edit the file, reopens, and verifies.
/// Deletes the newest `n` rows of the audit log, as an attacker truncating it would.
fn delete_last_entries(conn: &Connection, n: usize) {
    let ids = audit_ids(conn);
    for id in &ids[ids.len() - n..] {
        conn.execute("DELETE FROM audit_log WHERE id = ?1", [id])
            .expect("delete");
    }
}

fn tampered(tamper: impl FnOnce(&Connection)) -> (Fixture, AuditReport) {
    let mut fx = busy_fixture();
    assert!(fx.device().verify_audit_log().expect("verify").is_intact());
    fx.close();
    tamper(&sql(fx.dir.path()));
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("a tampered log does not stop the device from opening");
    let report = fx.device().verify_audit_log().expect("verify");
    assert!(!report.is_intact(), "tampering went unnoticed");
    assert_fails_closed(&fx);
    (fx, report)
}

/// A device that found its log tampered with signs nothing and issues no grant.
fn assert_fails_closed(fx: &Fixture) {
    assert!(
        fx.device().checkpoint().expect("checkpoint").is_none(),
        "a tampered log must not be re-signed"
    );
    assert!(
        fx.device().grant::<Personalization>("recommender").is_err(),
        "a tampered device fails closed"
    );
}

/// Overwrites the sealed bytes of audit row `id`.
fn put_sealed(c: &Connection, id: i64, blob: &[u8]) {
    c.execute(
        "UPDATE audit_log SET sealed = ?1 WHERE id = ?2",
        rusqlite::params![blob, id],
    )
    .expect("update");
}

fn assert_unreadable(report: &AuditReport, position: u64) {
    assert!(
        report
            .violations
            .contains(&AuditViolation::Unreadable { position }),
        "{report:?}"
    );
}

#[test]
fn untouched_log_verifies_across_reopen_and_holds_no_member_values() {
    let mut fx = busy_fixture();
    let report = fx.device().verify_audit_log().expect("verify");
    assert!(report.is_intact(), "{:?}", report.violations);
    assert_eq!(report.unsigned_tail, 0);
    assert_eq!(report.anchored_size, Some(report.log_size));
    fx.close();
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("reopen");
    let again = fx.device().verify_audit_log().expect("verify");
    assert!(again.is_intact(), "{:?}", again.violations);
    let entries = fx.device().audit_entries().expect("entries");
    let json = serde_json::to_string(&entries).expect("json");
    assert!(
        !json.contains("sku-canary-7f3a"),
        "audit entries carry no member values"
    );
    let reads: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::Read {
                purpose,
                component,
                rows,
                ..
            } => Some((purpose.as_str().to_owned(), component.clone(), *rows)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reads,
        vec![
            ("personalization".to_owned(), "recommender".to_owned(), 2),
            ("federated_training".to_owned(), "trainer".to_owned(), 2),
        ]
    );
    assert!(
        entries
            .iter()
            .any(|e| matches!(&e.event, AuditEvent::Upload(u) if u.round == 3))
    );
}

#[test]
fn a_modified_entry_is_detected() {
    let (_, report) = tampered(|c| {
        let id = audit_ids(c)[3];
        let mut blob = sealed(c, id);
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
        put_sealed(c, id, &blob);
    });
    assert_unreadable(&report, 3);
}

#[test]
fn a_deleted_entry_is_detected() {
    let (_, report) = tampered(|c| {
        let id = audit_ids(c)[2];
        c.execute("DELETE FROM audit_log WHERE id = ?1", [id])
            .expect("delete");
    });
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::OutOfPlace { position: 2, .. }))
    );
}

#[test]
fn reordered_entries_are_detected() {
    let (_, report) = tampered(|c| {
        let ids = audit_ids(c);
        let (a, b) = (sealed(c, ids[1]), sealed(c, ids[4]));
        put_sealed(c, ids[1], &b);
        put_sealed(c, ids[4], &a);
    });
    assert_unreadable(&report, 1);
    assert_unreadable(&report, 4);
}

#[test]
fn an_inserted_entry_is_detected() {
    let (_, report) = tampered(|c| {
        let ids = audit_ids(c);
        // Row ids are shared by all sealed tables, so there are free ids between entries.
        let free = (ids[2] + 1..ids[3])
            .next()
            .expect("a free id between entries");
        let copy = sealed(c, ids[0]);
        c.execute(
            "INSERT INTO audit_log (id, sealed) VALUES (?1, ?2)",
            rusqlite::params![free, copy],
        )
        .expect("insert");
    });
    assert_unreadable(&report, 3);
}

#[test]
fn truncation_is_detected_by_checkpoints_and_by_the_anchor() {
    let (_, report) = tampered(|c| delete_last_entries(c, 2));
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::Truncated { .. }))
    );
    // Cutting the checkpoints that mention the tail too: the anchor outside the file knows.
    let (_, report) = tampered(|c| {
        delete_last_entries(c, 2);
        c.execute("DELETE FROM audit_checkpoints", [])
            .expect("delete checkpoints");
    });
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::RolledBack { .. }))
    );
}

#[test]
fn rollback_to_an_older_database_snapshot_is_detected() {
    let mut fx = busy_fixture();
    fx.close();
    let snapshot = common::tempdir();
    copy_dir(fx.dir.path(), snapshot.path());
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("reopen");
    // The member withdraws after the snapshot was taken ...
    fx.device()
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Withdrawn,
            1,
            "privacy_center",
        )
        .expect("withdraw");
    fx.close();
    // ... and someone restores the older database file, where consent is still given.
    copy_dir(snapshot.path(), fx.dir.path());
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("reopen");
    let report = fx.device().verify_audit_log().expect("verify");
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::RolledBack { .. })),
        "{:?}",
        report.violations
    );
    assert!(fx.device().checkpoint().expect("checkpoint").is_none());
    // The snapshot still says "given", but the device no longer believes it.
    assert!(fx.device().grant::<Personalization>("recommender").is_err());
    // Erasing everything is the way back to a trusted, empty device.
    fx.device().erase_all().expect("erase");
    assert!(fx.device().verify_audit_log().expect("verify").is_intact());
    fx.device()
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Given,
            1,
            "privacy_center",
        )
        .expect("give again");
    assert!(fx.device().grant::<Personalization>("recommender").is_ok());
}

/// Closes the device and its store, reopens both from disk, and returns what the verification
/// at open found.
fn reopened(fx: &mut Fixture) -> AuditReport {
    fx.close();
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("reopen");
    fx.device().open_verification().clone()
}

/// Flips the last byte of the sealed value of row `id` of `table`.
fn flip(c: &Connection, table: &str, id: i64) {
    let mut blob: Vec<u8> = c
        .query_row(
            &format!("SELECT sealed FROM {table} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .expect("row");
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    c.execute(
        &format!("UPDATE {table} SET sealed = ?1 WHERE id = ?2"),
        rusqlite::params![blob, id],
    )
    .expect("update");
}

fn mark_row(c: &Connection) -> i64 {
    c.query_row("SELECT id FROM audit_mark", [], |r| r.get(0))
        .expect("a verified mark is stored")
}

#[test]
fn opening_verifies_only_what_was_appended_since_the_last_open() {
    let mut fx = busy_fixture();
    // The mark written at the fixture's first open covers its first entries; the busy
    // session's entries are read at this open.
    let first = reopened(&mut fx);
    assert!(first.is_intact(), "{:?}", first.violations);
    let VerifyScope::FromMark { from } = first.scope else {
        panic!("verified from the start: {:?}", first.scope);
    };
    assert!(
        0 < from && from < first.log_size,
        "{from} of {}",
        first.log_size
    );
    // Nothing was appended since: the next open reads no entry, and agrees with a full check.
    let second = reopened(&mut fx);
    assert_eq!(
        second.scope,
        VerifyScope::FromMark {
            from: second.log_size
        }
    );
    assert!(second.is_intact());
    let full = fx.device().verify_audit_log().expect("verify");
    assert_eq!(full.scope, VerifyScope::Full);
    assert_eq!((full.root, full.log_size), (second.root, second.log_size));
    assert!(fx.device().grant::<Personalization>("recommender").is_ok());
}

#[test]
fn tampering_after_the_mark_is_detected_at_open() {
    let mut fx = busy_fixture();
    reopened(&mut fx);
    // The member withdraws after the last open ...
    fx.decide(&PurposeId::personalization(), ConsentEventKind::Withdrawn);
    fx.close();
    // ... and someone edits that entry.
    let db = sql(fx.dir.path());
    let ids = audit_ids(&db);
    flip(&db, "audit_log", ids[ids.len() - 1]);
    drop(db);
    let report = reopened(&mut fx);
    assert!(
        matches!(report.scope, VerifyScope::FromMark { .. }),
        "{:?}",
        report.scope
    );
    assert_unreadable(&report, ids.len() as u64 - 1);
    assert_fails_closed(&fx);
}

#[test]
fn tampering_before_the_mark_is_found_by_the_full_verification() {
    let mut fx = busy_fixture();
    reopened(&mut fx);
    fx.close();
    let db = sql(fx.dir.path());
    flip(&db, "audit_log", audit_ids(&db)[2]);
    drop(db);
    // Opening reads only what came after the mark (nothing here) ...
    let at_open = reopened(&mut fx);
    assert!(matches!(at_open.scope, VerifyScope::FromMark { .. }));
    assert!(at_open.is_intact());
    // ... the full verification reads everything, finds the edit, and fails closed.
    let full = fx.device().verify_audit_log().expect("verify");
    assert_unreadable(&full, 2);
    assert_fails_closed(&fx);
}

#[test]
fn a_damaged_mark_is_detected_and_the_whole_log_is_verified_instead() {
    let mut fx = busy_fixture();
    reopened(&mut fx);
    fx.close();
    let db = sql(fx.dir.path());
    flip(&db, "audit_mark", mark_row(&db));
    drop(db);
    let report = reopened(&mut fx);
    assert_eq!(report.scope, VerifyScope::FullAfterBadMark);
    assert!(report.is_intact(), "{:?}", report.violations);
    // A fresh mark is written over the verified log: the next open resumes again.
    assert!(matches!(
        reopened(&mut fx).scope,
        VerifyScope::FromMark { .. }
    ));
    // With the mark damaged, an edit anywhere is found at open.
    fx.close();
    let db = sql(fx.dir.path());
    flip(&db, "audit_mark", mark_row(&db));
    flip(&db, "audit_log", audit_ids(&db)[2]);
    drop(db);
    let report = reopened(&mut fx);
    assert_eq!(report.scope, VerifyScope::FullAfterBadMark);
    assert_unreadable(&report, 2);
    assert!(fx.device().grant::<Personalization>("recommender").is_err());
}

#[test]
fn a_mark_without_its_signed_checkpoint_is_not_relied_on() {
    let mut fx = busy_fixture();
    reopened(&mut fx);
    fx.close();
    // The checkpoint the mark was written after is the last one stored.
    let db = sql(fx.dir.path());
    let last: i64 = db
        .query_row("SELECT MAX(id) FROM audit_checkpoints", [], |r| r.get(0))
        .expect("checkpoints");
    flip(&db, "audit_checkpoints", last);
    drop(db);
    let report = reopened(&mut fx);
    assert_eq!(report.scope, VerifyScope::FullAfterBadMark);
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::BadCheckpoint { .. })),
        "{:?}",
        report.violations
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(to).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::remove_file(path).expect("remove");
        }
    }
    for entry in std::fs::read_dir(from).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}
