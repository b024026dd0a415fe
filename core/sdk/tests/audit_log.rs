//! The audit log on a real database file: an untouched log verifies; modifying, deleting,
//! reordering or inserting entries, truncating the log, or rolling the database file back to
//! an older snapshot is detected. A tampered log is never re-signed.

mod common;

use std::path::Path;

use common::{Fixture, T0, config, purchase};
use covey_sdk::audit::{AuditReport, AuditViolation};
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
fn tampered(tamper: impl FnOnce(&Connection)) -> (Fixture, AuditReport) {
    let mut fx = busy_fixture();
    assert!(fx.device().verify_audit_log().expect("verify").is_intact());
    fx.close();
    tamper(&sql(fx.dir.path()));
    fx.reopen(config(PurposeRegistry::with_builtins(), 1))
        .expect("a tampered log does not stop the device from opening");
    let report = fx.device().verify_audit_log().expect("verify");
    assert!(!report.is_intact(), "tampering went unnoticed");
    assert!(
        fx.device().checkpoint().expect("checkpoint").is_none(),
        "a tampered log must not be re-signed"
    );
    assert!(
        fx.device().grant::<Personalization>("recommender").is_err(),
        "a tampered device fails closed"
    );
    (fx, report)
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
    let (_, report) = tampered(|c| {
        let ids = audit_ids(c);
        for id in &ids[ids.len() - 2..] {
            c.execute("DELETE FROM audit_log WHERE id = ?1", [id])
                .expect("delete");
        }
    });
    assert!(
        report
            .violations
            .iter()
            .any(|v| matches!(v, AuditViolation::Truncated { .. }))
    );
    // Cutting the checkpoints that mention the tail too: the anchor outside the file knows.
    let (_, report) = tampered(|c| {
        let ids = audit_ids(c);
        let keep = ids.len() - 2;
        for id in &ids[keep..] {
            c.execute("DELETE FROM audit_log WHERE id = ?1", [id])
                .expect("delete");
        }
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
