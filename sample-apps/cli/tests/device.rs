//! `covey device` end to end: the built binary against a real store directory.

use std::path::Path;
use std::process::{Command, Output};

const VAR: &str = "COVEY_TEST_PASSPHRASE";
const HOUR_MS: i64 = 3_600_000;

/// Event times must be recent: the store rejects future events and hides ones past their
/// retention (90 days for offer views), so fixtures are relative to now.
fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).expect("ms")
}

/// RFC 3339 text of `ms`, at the given UTC offset in hours.
fn rfc3339(ms: i64, offset_hours: i8) -> String {
    let offset = time::UtcOffset::from_hms(offset_hours, 0, 0).expect("offset");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("time")
        .to_offset(offset)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// A whole second `hours` before now (RFC 3339 has second precision here).
fn hours_ago(hours: i64) -> i64 {
    (now_ms() - hours * HOUR_MS) / 1000 * 1000
}

fn record_args(time: &str) -> Vec<String> {
    [
        "record",
        "--kind",
        "purchase",
        "--item",
        "sku-espresso",
        "--category",
        "coffee",
        "--qty",
        "2",
        "--amount",
        "7.80",
        "--currency",
        "EUR",
        "--store",
        "store-12",
        "--time",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([time.to_string()])
    .collect()
}

fn covey<S: AsRef<std::ffi::OsStr>>(dir: &Path, passphrase: &str, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_covey"))
        .arg("device")
        .arg("--dir")
        .arg(dir)
        .args(["--passphrase-env", VAR])
        .args(args)
        .env(VAR, passphrase)
        .output()
        .expect("run covey")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

#[test]
fn record_import_list_export_erase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("member");
    let pass = "a long member passphrase";

    let t0 = hours_ago(100);
    let mut args = record_args(&rfc3339(t0, 0));
    args.push("--json".into());
    let recorded = json(&covey(&store, pass, &args));
    assert_eq!(recorded["recorded"].as_array().map(Vec::len), Some(1));

    let csv = dir.path().join("history.csv");
    let (t1, t2, t3) = (hours_ago(80), hours_ago(50), hours_ago(2));
    std::fs::write(
        &csv,
        format!(
            "kind,item,category,qty,amount,currency,store,channel,time\n\
             purchase,sku-croissant,bakery,1,2.10,EUR,store-12,in_store,{}\n\
             visit,,,,,,store-3,,{}\n\
             offer_view,sku-cake,bakery,,,,,app,{}\n",
            rfc3339(t1, 0),
            rfc3339(t2, 2),
            rfc3339(t3, -5)
        ),
    )
    .expect("csv");
    let imported = json(&covey(
        &store,
        pass,
        &["import-csv", csv.to_str().expect("path"), "--json"],
    ));
    assert_eq!(imported["imported"], 3);

    let listed = json(&covey(&store, pass, &["list", "--json"]));
    let events = listed.as_array().expect("array");
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["item_id"], "sku-espresso");
    assert_eq!(events[0]["amount_minor"], 780);
    assert_eq!(events[0]["quantity"], 2);
    assert_eq!(events[1]["item_id"], "sku-croissant");
    assert_eq!(events[2]["kind"], "visit");
    assert_eq!(events[0]["time_ms"], t0);
    assert_eq!(events[2]["time_ms"], t2, "UTC offsets are honoured");
    assert_eq!(events[3]["channel"], "app");

    let text = ok(&covey(&store, pass, &["list", "--kind", "purchase"]));
    assert!(
        text.contains("sku-croissant") && text.contains("2.10 EUR"),
        "{text}"
    );
    assert!(text.contains("2 events"), "{text}");

    let export = json(&covey(&store, pass, &["export"]));
    assert_eq!(export["format"], "covey.store.export");
    assert_eq!(export["events"].as_array().map(Vec::len), Some(4));

    // Nothing readable on disk.
    for entry in std::fs::read_dir(&store).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!bytes.windows(12).any(|w| w == b"sku-espresso"));
    }

    let erased = json(&covey(&store, pass, &["erase", "--json"]));
    assert_eq!(erased["erased"], true);
    // The 4 events, plus whatever else the store kept about them (audit entries of reads).
    assert!(
        erased["rows_deleted"].as_u64().is_some_and(|n| n >= 4),
        "{erased}"
    );
    let after = json(&covey(&store, pass, &["list", "--json"]));
    assert_eq!(after.as_array().map(Vec::len), Some(0));
}

#[test]
fn a_wrong_passphrase_exits_non_zero_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&covey(
        dir.path(),
        "right passphrase",
        &record_args(&rfc3339(hours_ago(1), 0)),
    ));
    let out = covey(dir.path(), "wrong passphrase", &["list"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    assert!(out.stdout.is_empty(), "no data printed");
}

#[test]
fn bad_input_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pass = "passphrase";
    let mut negative = record_args(&rfc3339(hours_ago(1), 0));
    let qty = negative.iter().position(|a| a == "2").expect("qty value");
    negative[qty] = "-1".into();
    let out = covey(dir.path(), pass, &negative);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quantity must not be negative"));

    let recent = rfc3339(hours_ago(1), 0);
    let out = covey(
        dir.path(),
        pass,
        &["record", "--kind", "refund", "--time", &recent],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event kind"));

    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        format!(
            "kind,item,qty,amount,currency,time\n\
             purchase,sku-1,1,1.00,EUR,{recent}\n\
             purchase,sku-2,1,1.00,EUR,1999-01-01T00:00:00Z\n"
        ),
    )
    .expect("csv");
    let out = covey(
        dir.path(),
        pass,
        &["import-csv", csv.to_str().expect("path")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("time"),
        "{stderr}"
    );
    let listed = json(&covey(dir.path(), pass, &["list", "--json"]));
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "atomic: nothing imported"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_covey"))
        .args(["device", "--dir"])
        .arg(dir.path())
        .args(["--passphrase-env", "COVEY_TEST_UNSET_VARIABLE", "list"])
        .env_remove("COVEY_TEST_UNSET_VARIABLE")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not set"));
}
