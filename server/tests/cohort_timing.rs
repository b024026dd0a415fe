//! What a large cohort notices about timing: check-in closes as soon as enough devices are
//! in (not when the window runs out), and a device waiting for the round to move is
//! answered the moment it moves (a long poll) instead of polling.

mod common;

use std::time::{Duration, Instant};

use common::device::{Device, Http};
use common::{TestServer, http_config};
use covey_protocol::secagg::Stage;
use covey_server::storage::{RoundPhase, RoundRecord};

/// The small population (cohorts of 3..=5) with a check-in window far longer than any test
/// waits, so that closing early is the server's doing, and `check_in_max` when given.
fn server(name: &str, check_in_max: Option<i64>) -> TestServer {
    let mut config: toml::Table = toml::from_str(&common::small_config(name)).unwrap();
    set(&mut config, "deadlines", "check_in", 600);
    if let Some(max) = check_in_max {
        assert_eq!(config["secagg"]["cohort_max"].as_integer(), Some(5));
        set(&mut config, "secagg", "check_in_max", max);
    }
    TestServer::with_config(&config.to_string(), http_config(), true)
}

fn set(config: &mut toml::Table, section: &str, key: &str, value: i64) {
    config
        .get_mut(section)
        .and_then(toml::Value::as_table_mut)
        .expect(section)
        .insert(key.into(), toml::Value::Integer(value));
}

fn round(server: &TestServer, id: i64) -> RoundRecord {
    server.service().store().round(id).unwrap().expect("round")
}

/// Waits until round `id` leaves check-in; returns how long that took.
fn wait_until_cohort_fixed(server: &TestServer, id: i64) -> Duration {
    let start = Instant::now();
    while round(server, id).phase == RoundPhase::CheckIn {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "check-in never closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn check_in_closes_as_soon_as_cohort_max_devices_are_in() {
    let server = server("early", None);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..5).map(|_| Device::register(&http, "early")).collect();
    let joined: Vec<(i64, u32)> = devices.iter().map(Device::check_in).collect();
    let id = joined[0].0;
    // cohort_max = 5 and no check_in_max: the fifth check-in fills the round.
    let took = wait_until_cohort_fixed(&server, id);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    let r = round(&server, id);
    assert_eq!(r.phase, RoundPhase::Stage(Stage::AdvertiseKeys));
    assert!(
        r.updated_at - r.opened_at < 60_000,
        "the 600 s window was not waited out"
    );
}

#[test]
fn check_in_max_keeps_check_in_open_until_that_many_are_in() {
    let server = server("pool", Some(7));
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..7).map(|_| Device::register(&http, "pool")).collect();
    let first: Vec<(i64, u32)> = devices[..5].iter().map(Device::check_in).collect();
    let id = first[0].0;
    // A full cohort is in, but the operator asked to pick it from seven.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(round(&server, id).phase, RoundPhase::CheckIn);
    for device in &devices[5..] {
        assert_eq!(device.check_in().0, id);
    }
    let took = wait_until_cohort_fixed(&server, id);
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    // Five of the seven were selected; the other two are told so.
    let statuses: Vec<u16> = devices
        .iter()
        .map(|d| d.get(&format!("/v1/rounds/{id}/session")).status)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 2);
}

#[test]
fn a_long_poll_is_answered_the_moment_the_cohort_is_fixed() {
    let server = server("held", None);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..5).map(|_| Device::register(&http, "held")).collect();
    let joined: Vec<(i64, u32)> = devices[..4].iter().map(Device::check_in).collect();
    let id = joined[0].0;
    let path = format!("/v1/rounds/{id}/session?wait=20");
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let reply = devices[0].get(&path);
            (reply.status, Instant::now())
        });
        // The poll is held: the cohort is not fixed yet.
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiting.is_finished(), "answered before the round moved");
        assert_eq!(devices[4].check_in().0, id);
        let checked_in = Instant::now();
        let (status, answered) = waiting.join().unwrap();
        assert_eq!(status, 200);
        let lag = answered.saturating_duration_since(checked_in);
        assert!(
            lag < Duration::from_secs(3),
            "answered {lag:?} after the cohort filled"
        );
    });
}

#[test]
fn a_long_poll_that_runs_out_says_ask_again_at_once() {
    let server = server("lonely", None);
    let http = Http::new(&server.base);
    let device = Device::register(&http, "lonely");
    // Alone, below cohort_min = 3: the cohort is never fixed.
    let (id, _) = device.check_in();

    let started = Instant::now();
    let held = device.get(&format!("/v1/rounds/{id}/session?wait=1"));
    assert_eq!(held.status, 204);
    assert!(started.elapsed() >= Duration::from_secs(1), "not held");
    assert_eq!(held.retry_after.as_deref(), Some("0"), "it already waited");

    let stage = device.get(&format!("/v1/rounds/{id}/stages/share_keys?wait=1"));
    assert_eq!(
        (stage.status, stage.retry_after.as_deref()),
        (204, Some("0"))
    );

    // Without `wait` nothing changes: an immediate 204 and a one-second hint.
    let started = Instant::now();
    let plain = device.get(&format!("/v1/rounds/{id}/dp-plan"));
    assert_eq!(
        (plain.status, plain.retry_after.as_deref()),
        (204, Some("1"))
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    let bad = device.get(&format!("/v1/rounds/{id}/session?wait=soon"));
    let json = bad.json();
    assert_eq!(
        (bad.status, json["error"].as_str()),
        (400, Some("bad_request"))
    );
    assert!(json["message"].as_str().unwrap().contains("wait"), "{json}");
}
