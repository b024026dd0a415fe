//! `covey eval` end to end: a small CSV log through the built binary, training settings from
//! a JSON file, the exported split, and clear errors for a bad settings file.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::json;

fn covey_eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_covey"))
        .arg("eval")
        .args(args)
        .output()
        .expect("run covey")
}

/// 40 members with 6 purchases each over 20 items: two taste groups ("a" and "b" items).
fn write_log(path: &Path) {
    let mut csv = String::from("user_id,item_id,timestamp\n");
    for m in 0..40u32 {
        let group = if m % 2 == 0 { 'a' } else { 'b' };
        for k in 0..6u32 {
            let item = (m + k * 3) % 10;
            csv.push_str(&format!(
                "u{m},{group}{item},{}\n",
                1_700_000_000 + k * 86_400 + m
            ));
        }
    }
    std::fs::write(path, csv).expect("write log");
}

#[test]
fn training_settings_file_is_applied_and_the_split_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.csv");
    write_log(&log);
    let training = dir.path().join("training.json");
    std::fs::write(&training, r#"{"unobserved_weight": 0.5, "l2_item": 0.1}"#).expect("write");
    let export = dir.path().join("split");
    let report = json(&covey_eval(&[
        "--interactions",
        log.to_str().expect("path"),
        "--dim",
        "4",
        "--epochs",
        "2",
        "--batch-members",
        "4",
        "--training",
        training.to_str().expect("path"),
        "--export",
        export.to_str().expect("path"),
        "--json",
    ]));
    assert_eq!(report["dataset"]["members"], 40);
    assert_eq!(report["dataset"]["test_members"], 40);
    let models: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["model"].as_str().expect("model"))
        .collect();
    assert_eq!(models, ["popularity", "mf_centralized"]);
    let test = std::fs::read_to_string(export.join("test.csv")).expect("test.csv");
    assert_eq!(
        test.lines().count(),
        41,
        "header + one held-out line per member"
    );
}

#[test]
fn a_bad_training_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.csv");
    write_log(&log);
    for (name, text) in [
        ("unknown.json", r#"{"unobserved_weigt": 0.5}"#),
        ("invalid.json", r#"{"unobserved_weight": -1}"#),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let out = covey_eval(&[
            "--interactions",
            log.to_str().expect("path"),
            "--dim",
            "4",
            "--epochs",
            "1",
            "--training",
            path.to_str().expect("path"),
        ]);
        assert!(!out.status.success(), "{name} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("covey eval:"), "{err}");
        if name == "unknown.json" {
            assert!(
                err.contains(name) && err.contains("unobserved_weigt"),
                "{err}"
            );
        } else {
            assert!(err.contains("unobserved_weight"), "{err}");
        }
    }
}
