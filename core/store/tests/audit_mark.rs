//! The audit log's verified mark on a real database file: a store reopened after a mark reads
//! only the rows after it and arrives at the same tree; a damaged mark, or a mark whose last
//! entry was rewritten, is rejected and the whole log is read instead.

mod common;

use common::{Fixture, raw};
use covey_store::audit_entry::AuditEvent;
use covey_store::{AuditMarkStatus, Store};

fn append(store: &Store, entries: std::ops::Range<u64>) {
    for bytes in entries {
        store
            .append_audit(AuditEvent::Export { bytes })
            .expect("append");
    }
}

/// A store with 5 entries, a checkpoint and a mark over them, then 3 more entries; closed.
fn marked() -> (Fixture, (u64, [u8; 32])) {
    let fx = Fixture::new();
    let store = fx.open();
    append(&store, 0..5);
    store.append_checkpoint(b"signed head").expect("checkpoint");
    assert!(store.mark_audit_verified().expect("mark"));
    assert!(
        !store.mark_audit_verified().expect("mark"),
        "nothing moved: nothing to write"
    );
    append(&store, 5..8);
    let head = store.audit_head();
    (fx, head)
}

#[test]
fn a_reopened_store_resumes_from_the_mark_and_reads_only_the_rows_after_it() {
    let (fx, head) = marked();
    let store = fx.open();
    assert_eq!(
        store.audit_mark_status(),
        AuditMarkStatus::Resumed { size: 5 }
    );
    assert_eq!(store.audit_head(), head, "the same tree as from every row");
    let tail = store.audit_tail().expect("tail").expect("resumed");
    assert_eq!(tail.range.size(), 5);
    let positions: Vec<u64> = tail.entries.iter().map(|r| r.position).collect();
    assert_eq!(positions, vec![5, 6, 7]);
    assert!(tail.entries.iter().all(|r| r.bytes.is_some()));
    assert_eq!(tail.mark_checkpoint, b"signed head");
    assert_eq!(tail.checkpoints_before, 1);
    assert!(tail.checkpoints.is_empty());
    assert_eq!(
        store.latest_checkpoint().expect("latest").as_deref(),
        Some(&b"signed head"[..])
    );
    // Appends after a resumed open continue the same tree.
    append(&store, 8..9);
    store.append_checkpoint(b"second").expect("checkpoint");
    assert!(store.mark_audit_verified().expect("mark"));
    let head = store.audit_head();
    drop(store);
    let store = fx.open();
    assert_eq!(
        store.audit_mark_status(),
        AuditMarkStatus::Resumed { size: 9 }
    );
    assert_eq!(store.audit_head(), head);
    assert_eq!(store.audit_rows().expect("rows").len(), 9);
}

#[test]
fn a_damaged_mark_is_rejected_and_the_whole_log_is_read() {
    let (fx, head) = marked();
    let db = raw(&fx.db_path());
    let mut sealed: Vec<u8> = db
        .query_row("SELECT sealed FROM audit_mark", [], |r| r.get(0))
        .expect("mark row");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    db.execute("UPDATE audit_mark SET sealed = ?1", [&sealed])
        .expect("update");
    drop(db);
    let store = fx.open();
    assert_eq!(store.audit_mark_status(), AuditMarkStatus::Rejected);
    assert!(store.audit_tail().expect("tail").is_none());
    assert_eq!(store.audit_head(), head);
}

#[test]
fn a_mark_whose_last_entry_was_rewritten_or_removed_is_rejected() {
    let (fx, head) = marked();
    let db = raw(&fx.db_path());
    let ids: Vec<i64> = db
        .prepare("SELECT id FROM audit_log ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("ids");
    // Entry 4 is the last the mark covers: replace it with entry 3's sealed bytes (which do
    // not open under row 4's AAD) ...
    db.execute(
        "UPDATE audit_log SET sealed = (SELECT sealed FROM audit_log WHERE id = ?1) WHERE id = ?2",
        [ids[3], ids[4]],
    )
    .expect("rewrite");
    drop(db);
    let store = fx.open();
    assert_eq!(store.audit_mark_status(), AuditMarkStatus::Rejected);
    assert_ne!(
        store.audit_head(),
        head,
        "the damaged row is a placeholder leaf"
    );
    drop(store);
    // ... or remove it.
    let (fx, _) = marked();
    let db = raw(&fx.db_path());
    db.execute(
        "DELETE FROM audit_log WHERE id = (SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 4)",
        [],
    )
    .expect("delete");
    drop(db);
    let store = fx.open();
    assert_eq!(store.audit_mark_status(), AuditMarkStatus::Rejected);
    assert_eq!(store.audit_head().0, 7);
}

#[test]
fn erasing_the_store_removes_the_mark() {
    let (fx, _) = marked();
    let store = fx.open();
    store.erase_all().expect("erase");
    assert_eq!(store.latest_checkpoint().expect("latest"), None);
    drop(store);
    let store = fx.open();
    assert_eq!(store.audit_mark_status(), AuditMarkStatus::Absent);
}
