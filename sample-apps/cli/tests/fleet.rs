//! `covey fleet` end to end: an embedded server on loopback, a small fleet of real SDK
//! devices with encrypted stores, real rounds over HTTP, the per-round table, `--json`
//! and the HTML report. Sized for CI's two cores (tens of devices, two rounds).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn covey() -> Command {
    Command::new(env!("CARGO_BIN_EXE_covey"))
}

/// Runs `covey` with `args` and returns what it printed; a failing run fails the test.
fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = covey().args(args).output().expect("run covey");
    assert!(
        out.status.success(),
        "covey {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A small fleet with DP, refusals and dropouts; `extra` adds arguments.
fn run_fleet(report: &Path, extra: &[&str]) -> Value {
    let mut cmd = covey();
    cmd.args([
        "fleet",
        "--devices",
        "30",
        "--rounds",
        "2",
        "--items",
        "120",
        "--dim",
        "8",
        "--feature-rows",
        "16",
        "--epochs",
        "3",
        "--consent-rate",
        "0.85",
        "--dropout",
        "0.1",
        "--epsilon",
        "8",
        "--cohort",
        "12",
        "--seed",
        "3",
        "--json",
        "--report",
    ]);
    cmd.arg(report).args(extra);
    let out = cmd.output().expect("run covey fleet");
    assert!(
        out.status.success(),
        "covey fleet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What a user would check in the output: rounds that really ran, ε growing, quality
/// measured against baselines that differ from it, and the report written.
fn assert_real(json: &Value, report: &Path) {
    let settings = &json["settings"];
    let devices = settings["devices"].as_u64().unwrap();
    let consenting = settings["consenting"].as_u64().unwrap();
    assert_eq!(devices, 30);
    assert!(
        consenting < devices,
        "some members refuse at 85%: {settings}"
    );

    let rounds = json["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    let mut last_epsilon = 0.0;
    for r in rounds {
        assert_eq!(r["status"], "completed", "{r}");
        // The server drew the cohort at random from the devices that checked in and
        // dismissed the rest; dropouts leave fewer survivors than selected.
        let checked_in = r["checked_in"].as_u64().unwrap();
        let cohort = r["cohort"].as_u64().unwrap();
        assert_eq!(cohort, checked_in.min(12), "{r}");
        assert_eq!(
            r["not_selected"].as_u64().unwrap(),
            checked_in - cohort,
            "{r}"
        );
        let participants = r["participants"].as_u64().unwrap();
        assert!(participants >= 2 && participants <= cohort, "{r}");
        // Refusals are real: the SDK itself declined the devices without consent.
        let available = r["available"].as_u64().unwrap();
        assert_eq!(
            r["ineligible"].as_u64().unwrap() + checked_in,
            available,
            "{r}"
        );
        assert_eq!(r["failed"].as_u64().unwrap(), 0, "{r}");
        assert!(r["bytes_per_member"].as_u64().unwrap() > 0, "{r}");
        let epsilon = f(&r["epsilon"]);
        assert!(
            epsilon > last_epsilon && epsilon <= 8.0,
            "ε must grow within the budget: {r}"
        );
        last_epsilon = epsilon;
        let ndcg = f(&r["quality"]["ndcg_at_10"]);
        assert!((0.0..=1.0).contains(&ndcg), "{r}");
        assert!(f(&r["seconds"]) > 0.0);
    }
    let baselines = &json["baselines"];
    let popularity = f(&baselines["popularity"]["ndcg_at_10"]);
    let centralized = f(&baselines["centralized"]["ndcg_at_10"]);
    let federated = f(&json["final"]["federated"]["ndcg_at_10"]);
    assert!(popularity > 0.0 && centralized > 0.0, "{baselines}");
    assert_ne!(
        federated, popularity,
        "the federated model is not the popularity ranking"
    );
    let ratio = f(&json["final"]["ndcg_ratio_to_centralized"]);
    assert!((ratio - federated / centralized).abs() < 1e-9);

    let html = std::fs::read_to_string(report).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "quality, ε and bytes plots"
    );
    assert!(html.contains("NDCG@10") && html.contains("centralized MF"));
}

#[test]
fn a_small_fleet_runs_real_rounds_over_http_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let json = run_fleet(&report, &[]);
    assert_eq!(json["settings"]["backend"], "sqlite");
    assert_real(&json, &report);
}

#[test]
fn the_table_names_every_column_and_the_baselines() {
    let text = String::from_utf8(stdout_of(&[
        "fleet",
        "--devices",
        "12",
        "--rounds",
        "1",
        "--items",
        "60",
        "--dim",
        "4",
        "--feature-rows",
        "8",
        "--epochs",
        "2",
    ]))
    .unwrap();
    for column in [
        "round",
        "cohort",
        "parts",
        "dropouts",
        "bytes/mbr",
        "ε",
        "NDCG@10",
    ] {
        assert!(text.contains(column), "missing {column}:\n{text}");
    }
    assert!(text.contains("baselines: popularity"), "{text}");
    assert!(text.contains("no DP target"), "{text}");
    // Without a DP target the ledger's ε is astronomically large: the rows show "-" and
    // the final line names it for what it is; the clip prints without trailing zeros.
    assert!(text.contains("no DP (the ledger's ε"), "{text}");
    assert!(
        text.contains(" 2000 ") && !text.contains("2000.0"),
        "{text}"
    );
}

/// Issue 7's no-DP goal at CI size: the model the fleet ends with (not its best round)
/// ranks every member's held-out purchase nearly as well as the same MF trained centrally
/// on the same members in the same run. Rounds take the cohort's approximate ALS item step
/// (`covey_model::cohort_step`) under FedAvg at rate 1, exactly what the centralized
/// reference does with every member. With a server noise of σ = 10 on the cohort's sum the
/// run ended at 87 % of centralized (the step divides the gradient by the cohort's
/// curvature, which amplifies noise along rarely seen directions); at the default σ = 0.1 it
/// ends well above. (With the previous per-member SGD: 79–84 % with a clip of 10, 93–98 %
/// with a fitted clip and a decaying FedAdam rate.)
#[test]
fn without_dp_the_final_federated_model_nears_centralized_mf() {
    let json: Value = serde_json::from_slice(&stdout_of(&[
        "fleet",
        "--devices",
        "100",
        "--rounds",
        "6",
        "--items",
        "200",
        "--dim",
        "16",
        "--feature-rows",
        "32",
        "--seed",
        "5",
        "--json",
    ]))
    .unwrap();
    let settings = &json["settings"];
    let with_history =
        settings["devices"].as_u64().unwrap() - settings["without_history"].as_u64().unwrap();
    for r in json["rounds"].as_array().unwrap() {
        assert_eq!(r["status"], "completed", "{r}");
        // Everyone consents: every device counted available can train, so none is
        // turned away and the check-in closes as soon as all of them are in.
        assert_eq!(r["available"].as_u64().unwrap(), with_history, "{r}");
        assert_eq!(r["ineligible"].as_u64().unwrap(), 0, "{r}");
        assert_eq!(r["participants"].as_u64().unwrap(), with_history, "{r}");
    }
    let last = json["rounds"].as_array().unwrap().last().unwrap();
    let federated = f(&json["final"]["federated"]["ndcg_at_10"]);
    assert_eq!(
        federated,
        f(&last["quality"]["ndcg_at_10"]),
        "the final model"
    );
    let ratio = f(&json["final"]["ndcg_ratio_to_centralized"]);
    assert!(
        ratio >= 0.88,
        "federated NDCG@10 {federated:.4} is {:.1}% of centralized: {}",
        100.0 * ratio,
        json["baselines"]
    );
}

/// `--adaptive-clip`: the SDK devices send the "within the clip" bit the server's plan asks
/// for, and the server moves the clip from their noised count. Started far above every
/// upload, nearly every member is within it (a device that left the bit out would pull the
/// decoded fraction to ½), so the clip shrinks round after round.
#[test]
fn adaptive_clipping_moves_the_clip_from_the_devices_count() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let json = run_fleet(&report, &["--adaptive-clip", "0.5", "--clip", "1e6"]);
    let adaptive = &json["settings"]["adaptive_clip"];
    assert_eq!(f(&adaptive["target_quantile"]), 0.5);
    assert_eq!(f(&adaptive["learning_rate"]), 0.2);
    let rounds = json["rounds"].as_array().unwrap();
    let mut clip = 1e6;
    for r in rounds {
        assert_eq!(r["status"], "completed", "{r}");
        let round_clip = f(&r["clip"]);
        assert!(round_clip <= clip, "the clip never grows here: {r}");
        // At most ~10 participants and count noise 12/20 = 0.6 members: σ ≤ 0.1 on the
        // fraction; every update is within 1e6.
        assert!(f(&r["within_clip"]) > 0.6, "{r}");
        clip = round_clip;
    }
    assert_eq!(f(&rounds[0]["clip"]), 1e6, "the first round uses --clip");
    assert!(
        f(&rounds[1]["clip"]) < 1e6,
        "the second round's clip moved: {rounds:?}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for (args, reason) in [
        (&["--dropout=1.5"][..], "--dropout"),
        (&["--consent-rate", "0"][..], "--consent-rate"),
        (&["--epsilon=-1"][..], "--epsilon"),
        (&["--rounds", "0"][..], "--rounds"),
        (&["--server-schedule", "step"][..], "--server-schedule"),
        (&["--server-final-lr", "0"][..], "--server-final-lr"),
        (&["--adaptive-clip", "1"][..], "--adaptive-clip"),
        (&["--adaptive-clip-lr", "0"][..], "--adaptive-clip-lr"),
    ] {
        let out = covey().arg("fleet").args(args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

/// Where `scripts/setup.d/40-postgres` writes the URL of the test database.
fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("COVEY_TEST_POSTGRES_URL") {
        return Some(url);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let url = std::fs::read_to_string(cache.join("covey").join("postgres-url")).ok()?;
    Some(url.trim().to_owned())
}

#[test]
fn the_same_fleet_runs_on_postgres() {
    let Some(url) = postgres_url() else {
        eprintln!(
            "skipped: no PostgreSQL (set COVEY_TEST_POSTGRES_URL or run scripts/setup.d/40-postgres)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let json = run_fleet(&report, &["--postgres", &url]);
    assert_eq!(json["settings"]["backend"], "postgres");
    assert_real(&json, &report);
}
