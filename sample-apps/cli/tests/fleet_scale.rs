//! `covey fleet` with more devices than one listener's default accept queue (128) and
//! than a shared client's connection pool: on a healthy loopback network with no dropout
//! injected, every device that checks in ends the round in the aggregate.

use std::process::Command;

use serde_json::Value;

#[test]
fn three_hundred_devices_at_once_all_survive_a_round() {
    let out = Command::new(env!("CARGO_BIN_EXE_covey"))
        .args([
            "fleet",
            "--devices",
            "300",
            "--rounds",
            "1",
            "--items",
            "100",
            "--dim",
            "4",
            "--feature-rows",
            "8",
            "--epochs",
            "1",
            "--json",
        ])
        .output()
        .expect("run covey fleet");
    assert!(
        out.status.success(),
        "covey fleet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("--json prints one object");
    let round = &json["rounds"][0];
    assert_eq!(round["status"], "completed", "{round}");
    let checked_in = round["checked_in"].as_u64().expect("checked_in");
    assert!(checked_in >= 290, "most devices have history: {round}");
    assert_eq!(round["cohort"].as_u64(), Some(checked_in), "{round}");
    assert_eq!(
        round["participants"].as_u64(),
        Some(checked_in),
        "no device lost: {round}"
    );
    assert_eq!(round["failed"].as_u64(), Some(0), "{round}");
    assert_eq!(round["dropouts"].as_u64(), Some(0), "{round}");
    // The device-side breakdown is each device's own work, not a 300-way time slice.
    let timings = &round["timings"];
    for step in ["train_ms", "encode_ms", "secagg_client_ms", "upload_ms"] {
        let ms = timings[step].as_f64().expect(step);
        assert!(ms > 0.0 && ms < 5_000.0, "{step}: {timings}");
    }
}
