//! `covey device consent|prompts|receipts|audit|privacy-summary` end to end: the built binary
//! against a real store directory.

mod common;

use common::{covey, json};

#[test]
fn consent_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let prompts = json(&covey(d, &["prompts", "--json"]));
    assert_eq!(prompts.as_array().map(Vec::len), Some(3));
    let given = json(&covey(
        d,
        &[
            "consent",
            "grant",
            "personalization",
            "--notice-version",
            "1",
            "--json",
        ],
    ));
    assert_eq!(given["status"]["state"], "given");
    assert!(
        given["receipt"]["signature"]
            .as_str()
            .is_some_and(|s| s.len() == 128)
    );
    // A decision on a notice the member was not shown is refused, and nothing is recorded.
    let stale = covey(
        d,
        &["consent", "grant", "analytics", "--notice-version", "2"],
    );
    assert!(!stale.status.success());
    assert!(String::from_utf8_lossy(&stale.stderr).contains("not the version in force"));
    let withdrawn = json(&covey(
        d,
        &[
            "consent",
            "withdraw",
            "personalization",
            "--notice-version",
            "1",
            "--json",
        ],
    ));
    assert_eq!(withdrawn["status"]["state"], "withdrawn");
    let status = json(&covey(d, &["consent", "status", "--json"]));
    let states: Vec<_> = status
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["purpose"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(states.contains(&("personalization".into(), "withdrawn".into())));
    assert!(states.contains(&("analytics".into(), "not_asked".into())));
    let receipts = json(&covey(d, &["receipts", "--json"]));
    assert_eq!(receipts.as_array().map(Vec::len), Some(2));
    let report = json(&covey(d, &["audit", "verify", "--json"]));
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));
    let summary = json(&covey(d, &["privacy-summary", "--json"]));
    let text = summary["plain_language"].as_str().expect("text");
    assert!(text.contains("You withdrew: Personal offers"));
    assert!(text.split_whitespace().count() <= 150);
    assert_eq!(summary["metrics"]["withdrawals"], 1);
}

#[test]
fn audit_verify_fails_after_the_database_is_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    json(&covey(
        d,
        &[
            "consent",
            "grant",
            "personalization",
            "--notice-version",
            "1",
            "--json",
        ],
    ));
    let snapshot = tempfile::tempdir().expect("tempdir");
    let db_files = [
        "covey-store.sqlite3",
        "covey-store.sqlite3-wal",
        "covey-store.sqlite3-shm",
    ];
    for f in db_files {
        if d.join(f).exists() {
            std::fs::copy(d.join(f), snapshot.path().join(f)).expect("copy");
        }
    }
    json(&covey(
        d,
        &[
            "consent",
            "withdraw",
            "personalization",
            "--notice-version",
            "1",
            "--json",
        ],
    ));
    for f in db_files {
        let _ = std::fs::remove_file(d.join(f));
        if snapshot.path().join(f).exists() {
            std::fs::copy(snapshot.path().join(f), d.join(f)).expect("restore");
        }
    }
    let out = covey(d, &["audit", "verify"]);
    assert!(!out.status.success(), "rollback went unnoticed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RolledBack"));
}
