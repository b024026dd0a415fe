//! Crash safety with real processes: the `covey-server` binary is SIGKILLed mid-round and
//! after a completed round; after each restart the interrupted round is aborted (never
//! double counted), the ledger stays exact and no model version is lost. With PostgreSQL,
//! two processes share one database: devices talk to one while the other drives, and the
//! survivor takes the round lease over when the driver dies.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::device::{Behaviour, Device, Http, run_cohort};
use covey_protocol::secagg::Stage;
use covey_server::storage::{RoundPhase, Storage};

const BIN: &str = env!("CARGO_BIN_EXE_covey-server");

/// A `covey-server serve` child process.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn spawn(data: &Path, postgres: Option<&str>, population: &str) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tick-ms",
            "50",
            "--drive",
            population,
        ])
        // Test devices poll every 20 ms; production devices honour Retry-After.
        .args(["--rate-per-second", "1000", "--rate-burst", "1000"])
        .arg("--data")
        .arg(data)
        .env_remove("COVEY_POSTGRES_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(url) = postgres {
            cmd.args(["--postgres", url]);
        }
        let mut child = cmd.spawn().expect("spawn covey-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, base }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(args: &[&str], data: &Path, postgres: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--data").arg(data).arg("--json");
    cmd.env_remove("COVEY_POSTGRES_URL");
    if let Some(url) = postgres {
        cmd.args(["--postgres", url]);
    }
    let out = cmd.output().expect("run covey-server");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Devices join the open round and stop once the key directory arrived, leaving the round
/// in share_keys. Returns the round id.
fn stall_a_round(devices: &[Device]) -> i64 {
    let cohort = run_cohort(devices, |_| {
        (
            common::upload(0.01),
            Behaviour::DropBefore(Stage::ShareKeys),
        )
    });
    for stages in cohort.sent {
        assert_eq!(stages, [Stage::AdvertiseKeys]);
    }
    cohort.round
}

/// Devices join the open round and complete it. Returns the round id.
fn complete_a_round(devices: &[Device]) -> i64 {
    let cohort = run_cohort(devices, |_| (common::upload(0.03), Behaviour::Complete));
    for stages in cohort.sent {
        assert_eq!(stages.last(), Some(&Stage::Unmask));
    }
    cohort.round
}

fn check_after_crashes(store: &dyn Storage, population: &str, stalled: i64, completed: i64) {
    let stalled = store.round(stalled).unwrap().unwrap();
    assert_eq!(stalled.phase, RoundPhase::Aborted);
    assert!(stalled.reason.unwrap().contains("lost its in-memory"));
    assert_eq!(
        store.round(completed).unwrap().unwrap().phase,
        RoundPhase::Completed
    );
    let ledger = store.ledger(population).unwrap();
    assert_eq!(ledger.len(), 1, "exactly one charge");
    assert_eq!(
        (ledger[0].seq, ledger[0].round_id, ledger[0].survivors),
        (1, completed, 3)
    );
    assert_eq!(
        store.epsilon_spent(population).unwrap(),
        ledger[0].epsilon_total
    );
    let versions: Vec<u64> = store
        .models(population)
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [0, 1]);
}

#[test]
fn sigkill_mid_round_and_after_a_round_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = common::write_config(dir.path(), &common::small_config("crash"));
    let init = cli(&["init", "--config", config.to_str().unwrap()], &data, None);
    assert_eq!(init["population"], "crash");

    let first = Server::spawn(&data, None, "crash");
    let devices: Vec<Device> = (0..3)
        .map(|_| Device::register(&Http::new(&first.base), "crash"))
        .collect();
    let stalled = stall_a_round(&devices);
    first.kill();
    {
        let store = covey_server::storage::SqliteStorage::open(&data.join("covey.db")).unwrap();
        let round = store.round(stalled).unwrap().unwrap();
        assert_eq!(round.phase, RoundPhase::Stage(Stage::ShareKeys));
        assert!(store.ledger("crash").unwrap().is_empty());
    }

    let second = Server::spawn(&data, None, "crash");
    let devices: Vec<Device> = devices
        .into_iter()
        .map(|d| Device {
            http: Http::new(&second.base),
            ..d
        })
        .collect();
    let completed = complete_a_round(&devices);
    wait_until("model v1", || {
        devices[0].plan()["model"]["latest_version"] == 1
    });
    let v1 = devices[0].get("/v1/models/1").body;
    second.kill();

    let third = Server::spawn(&data, None, "crash");
    let device = Device {
        http: Http::new(&third.base),
        ..devices[0].clone()
    };
    assert_eq!(
        device.get("/v1/models/1").body,
        v1,
        "model v1 survives SIGKILL"
    );
    third.kill();

    let store = covey_server::storage::SqliteStorage::open(&data.join("covey.db")).unwrap();
    check_after_crashes(&store, "crash", stalled, completed);
    let ledger = cli(&["ledger", "--population", "crash"], &data, None);
    assert_eq!(ledger.as_array().unwrap().len(), 1);
    let rounds = cli(&["rounds", "--population", "crash"], &data, None);
    let phases: Vec<&str> = rounds
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"aborted") && phases.contains(&"completed"),
        "{phases:?}"
    );
    // The completed round shows its plan's clip: the fixed clip_norm, so no next clip.
    let done = rounds
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == completed)
        .unwrap();
    assert_eq!(done["clip"].as_f64(), Some(1.0), "{done}");
    assert!(done["next_clip"].is_null(), "{done}");
    let out = dir.path().join("v1.bin");
    let export = cli(
        &[
            "export-model",
            "--population",
            "crash",
            "--out",
            out.to_str().unwrap(),
        ],
        &data,
        None,
    );
    assert_eq!(export["version"], 1);
    assert_eq!(std::fs::read(&out).unwrap(), v1);
}

#[test]
fn postgres_processes_share_rounds_and_the_survivor_takes_over_the_lease() {
    let Some(url) = common::postgres_url() else {
        eprintln!("PostgreSQL not configured: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let population = common::unique("scale").replace('_', "-");
    let config = common::write_config(dir.path(), &common::small_config(&population));
    cli(
        &["init", "--config", config.to_str().unwrap()],
        dir.path(),
        Some(&url),
    );

    // The first process drives; devices talk only to the second one.
    let driver = Server::spawn(dir.path(), Some(&url), &population);
    let store = covey_server::storage::PostgresStorage::connect(&url).unwrap();
    wait_until("the first round", || {
        store.rounds(&population, 1).unwrap().len() == 1
    });
    let front = Server::spawn(dir.path(), Some(&url), &population);
    let http = Http::new(&front.base);
    let devices: Vec<Device> = (0..3)
        .map(|_| Device::register(&http, &population))
        .collect();
    let stalled = stall_a_round(&devices);
    driver.kill();

    let completed = complete_a_round(&devices);
    wait_until("model v1", || {
        devices[0].plan()["model"]["latest_version"] == 1
    });
    let status = cli(&["status"], dir.path(), Some(&url));
    let ours = status
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == population.as_str())
        .expect("population in status");
    assert_eq!(ours["rounds_completed"], 1);
    drop(front);
    check_after_crashes(&store, &population, stalled, completed);
}

#[test]
fn init_reports_a_bad_config_by_field_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path(),
        &common::small_config("bad").replace("cohort_max = 5", "cohort_max = 2"),
    );
    let out = Command::new(BIN)
        .args(["init", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path().join("data"))
        .env_remove("COVEY_POSTGRES_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`secagg.cohort_max` must be at least cohort_min (3), got 2"),
        "{stderr}"
    );
    let status = cli(&["status"], &dir.path().join("data"), None);
    assert_eq!(status, serde_json::json!([]));
}
