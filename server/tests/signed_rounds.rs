//! Signed SecAgg+ populations (`secagg.signed = true`) over HTTP on loopback: devices
//! register an Ed25519 key with a proof of possession, the session roster carries the
//! cohort's keys, members sign every stage message and the survivor list, and devices
//! without a key are refused at registration and at check-in.

mod common;

use std::time::{Duration, Instant};

use common::device::{Behaviour, Device, Http, registration_body, run_cohort};
use common::{TestServer, http_config, small_config};
use covey_model::GlobalModel;
use covey_protocol::secagg::{SessionParams, SigningIdentity, Stage};
use covey_server::config::RawConfig;
use covey_server::storage::{DeviceRecord, RoundPhase, TokenHash};
use covey_server::token::sha256;

/// The small test population, signed.
fn signed_config(name: &str) -> String {
    let mut raw: RawConfig = toml::from_str(&small_config(name)).expect("small config");
    raw.secagg.signed = true;
    toml::to_string(&raw).expect("population TOML")
}

fn register(http: &Http, population: &str, body: &[u8]) -> common::device::Reply {
    http.post(
        &format!("/v1/populations/{population}/devices"),
        None,
        Some("application/json"),
        body,
    )
}

#[test]
fn a_signed_round_runs_the_consistency_check_and_publishes_the_mean() {
    let server = TestServer::with_config(&signed_config("signed"), http_config(), true);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..5)
        .map(|i| Device::register_signed(&http, "signed", 100 + i))
        .collect();
    assert_eq!(devices[0].plan()["secagg"]["signed"], true);
    // Member i uploads 0.02·(i+1): the mean of the five is 0.06.
    let cohort = run_cohort(&devices, |i| {
        (common::upload(0.02 * (i as f32 + 1.0)), Behaviour::Complete)
    });
    for sent in &cohort.sent {
        assert_eq!(sent, &Stage::ALL, "every member signed the survivor list");
    }

    // The roster the devices verified each other against is the registered keys.
    let store = server.service().store();
    let start = Instant::now();
    let record = loop {
        let record = store.round(cohort.round).unwrap().unwrap();
        if !record.phase.is_active() {
            break record;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "round never ended"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(record.phase, RoundPhase::Completed, "{:?}", record.reason);
    let params = SessionParams::decode(&record.session.expect("session").secagg).unwrap();
    let roster_keys = params.signing_keys.expect("signed session");
    for (device, member) in devices.iter().zip(&cohort.members) {
        let seed = device.signing_seed.expect("registered a key");
        let key = SigningIdentity::from_seed(&seed).unwrap().public_key();
        let pos = params.roster.iter().position(|m| m.0 == *member).unwrap();
        assert_eq!(roster_keys[pos], key);
    }

    let v0 = GlobalModel::from_bytes(&devices[0].get("/v1/models/0").body).unwrap();
    let v1 = GlobalModel::from_bytes(&devices[0].get("/v1/models/1").body).unwrap();
    let worst = common::worst_step_error(&v0, &v1, &common::expected_step(&v0, 0.06, 5));
    assert!(worst < 0.01, "update off by {worst}");
}

#[test]
fn a_signed_population_refuses_devices_without_a_proven_key() {
    let server = TestServer::with_config(&signed_config("strict"), http_config(), false);
    let http = Http::new(&server.base);

    let keyless = register(&http, "strict", b"");
    assert_eq!(keyless.status, 403);
    assert_eq!(keyless.json()["error"], "signing_key_required");
    let message = keyless.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("signing key"), "{message}");

    // A proof made for another population (or by another key) proves nothing here.
    let elsewhere = register(&http, "strict", &registration_body("other", &[5; 32]));
    assert_eq!(elsewhere.status, 400);
    assert!(
        elsewhere.json()["message"]
            .as_str()
            .unwrap()
            .contains("key_proof does not verify"),
        "{:?}",
        elsewhere.json()
    );
    let garbage = register(&http, "strict", br#"{"version": 1, "signing_key": "zz"}"#);
    assert_eq!(garbage.status, 400, "{:?}", garbage.json());
    let future = register(
        &http,
        "strict",
        &String::from_utf8(registration_body("strict", &[5; 32]))
            .unwrap()
            .replace("\"version\":1", "\"version\":9")
            .into_bytes(),
    );
    assert_eq!(future.status, 400, "{:?}", future.json());

    let first = register(&http, "strict", &registration_body("strict", &[5; 32]));
    assert_eq!(first.status, 201, "{:?}", first.json());
    assert_eq!(first.json()["signed_sessions"], true);
    let copy = register(&http, "strict", &registration_body("strict", &[5; 32]));
    assert_eq!(copy.status, 409, "{:?}", copy.json());

    // A device in the database without a key (registered before the population required
    // one, or written by hand) cannot check in to a signed round.
    let token = "ab".repeat(32);
    let record = DeviceRecord {
        id: "keyless-device".into(),
        population: "strict".into(),
        registered_at: 1,
        signing_key: None,
    };
    let store = server.service().store();
    store
        .register_device(&record, &TokenHash(sha256(token.as_bytes())))
        .unwrap();
    let round = store
        .open_round(&covey_server::storage::NewRound {
            population: "strict".into(),
            base_version: 0,
            opened_at: 0,
            deadline: i64::MAX / 2,
        })
        .unwrap();
    let check_in = http.post(
        &format!("/v1/rounds/{round}/check-in"),
        Some(&token),
        None,
        b"",
    );
    assert_eq!(check_in.status, 403, "{:?}", check_in.json());
    assert_eq!(check_in.json()["error"], "signing_key_required");
    assert!(store.members(round).unwrap().is_empty());
}
