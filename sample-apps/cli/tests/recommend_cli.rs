//! `covey device install-model|recommend|explain` end to end: the built binary against a
//! real store directory, through consent given and withdrawn.

use std::path::Path;

mod common;

use common::{covey, json};

/// "a-*" items share one taste, "b-*" another; "b" is more popular overall.
fn write_model(path: &Path) {
    let model = covey_model::fixtures::two_taste_model(20, 4, 4).expect("model");
    std::fs::write(path, model.to_bytes()).expect("write model");
}

fn top_items(recs: &serde_json::Value) -> Vec<String> {
    recs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["item_id"].as_str().expect("id").to_owned())
        .collect()
}

fn consent(d: &Path, action: &str) {
    json(&covey(
        d,
        &[
            "consent",
            action,
            "personalization",
            "--notice-version",
            "1",
            "--json",
        ],
    ));
}

#[test]
fn recommendations_follow_consent_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let missing = covey(d, &["recommend"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no global model"));

    let model = d.join("model.bin");
    write_model(&model);
    let installed = json(&covey(
        d,
        &["install-model", model.to_str().expect("utf-8"), "--json"],
    ));
    assert_eq!(installed["version"], 4);
    for (i, item) in ["a-1", "a-2", "a-3", "a-4"].iter().enumerate() {
        let time = format!("2026-05-0{}T10:00:00Z", i + 1);
        let out = covey(
            d,
            &[
                "record", "--kind", "purchase", "--item", item, "--time", &time,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let global = json(&covey(d, &["recommend", "-k", "3", "--json"]));
    assert_eq!(global["basis"]["basis"], "global");
    assert_eq!(global["basis"]["reason"], "no_consent");
    assert!(top_items(&global).iter().all(|i| i.starts_with("b-")));
    let text = covey(d, &["recommend", "-k", "3"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("no personal data used"));

    consent(d, "grant");
    let personal = json(&covey(
        d,
        &["recommend", "-k", "3", "--exclude-bought", "--json"],
    ));
    assert_eq!(personal["basis"]["basis"], "personalized");
    let top = top_items(&personal);
    assert!(
        top.iter().all(|i| i.starts_with("a-") && i != "a-1"),
        "{top:?}"
    );
    let why = json(&covey(d, &["explain", &top[0], "--json"]));
    assert_eq!(why["explanation"]["type"], "because");
    assert!(why["text"].as_str().expect("text").contains("bought a-"));

    consent(d, "withdraw");
    let after = json(&covey(d, &["recommend", "-k", "3", "--json"]));
    assert_eq!(after["basis"]["reason"], "no_consent");
    let why = json(&covey(d, &["explain", "a-5", "--json"]));
    assert_eq!(why["explanation"]["type"], "no_personal_data");
    let unknown = covey(d, &["explain", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not in the catalog"));
}
