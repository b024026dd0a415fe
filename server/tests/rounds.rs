//! Whole rounds over HTTP on loopback: devices run the real SecAgg+ client and DP encoder;
//! the server's driver runs the SecAgg+ server, the DP decoder, the optimizer and the
//! accountant, and publishes the next model version.

mod common;

use std::time::{Duration, Instant};

use common::device::{Behaviour, Device, Http, run_cohort};
use common::{TestServer, http_config};
use covey_model::GlobalModel;
use covey_protocol::secagg::Stage;
use covey_server::storage::RoundPhase;

fn wait_for_version(device: &Device, version: u64) {
    let start = Instant::now();
    while device.plan()["model"]["latest_version"] != version {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "model v{version} never appeared"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_round_with_a_dropout_publishes_base_plus_mean_update_and_charges_the_ledger() {
    let server = TestServer::start("round", http_config(), true);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..5).map(|_| Device::register(&http, "round")).collect();
    // Member i uploads 0.02·(i+1) in every gradient and curvature coordinate; the last one
    // vanishes before its masked input, so the sum holds members 0..4 and their mean is 0.05.
    let cohort = run_cohort(&devices, |i| {
        let behaviour = if i == 4 {
            Behaviour::DropBefore(Stage::MaskedInput)
        } else {
            Behaviour::Complete
        };
        (common::upload(0.02 * (i as f32 + 1.0)), behaviour)
    });
    let (round, sent) = (cohort.round, &cohort.sent);
    assert_eq!(sent[4], [Stage::AdvertiseKeys, Stage::ShareKeys]);
    assert_eq!(sent[0].last(), Some(&Stage::Unmask));

    wait_for_version(&devices[0], 1);
    let v0 = GlobalModel::from_bytes(&devices[0].get("/v1/models/0").body).unwrap();
    let v1 = GlobalModel::from_bytes(&devices[0].get("/v1/models/1").body).unwrap();
    assert_eq!((v0.version(), v1.version()), (0, 1));
    assert_eq!(
        v1.catalog(),
        v0.catalog(),
        "the catalog travels with every version"
    );
    assert_eq!(v1.params().len(), common::SMALL_PARAMETERS);
    let worst = common::worst_step_error(&v0, &v1, &common::expected_step(&v0, 0.05, 4));
    assert!(worst < 0.01, "update off by {worst}");

    let store = server.service().store();
    let record = store.round(round).unwrap().unwrap();
    assert_eq!(record.phase, RoundPhase::Completed);
    let member_of_dropout = cohort.members[4];
    assert_eq!(record.survivors.len(), 4);
    assert!(!record.survivors.contains(&member_of_dropout));
    let ledger = store.ledger("round").unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0].survivors, ledger[0].round_id), (4, round));
    assert!(ledger[0].epsilon_total > 0.0 && ledger[0].epsilon_total.is_finite());
    assert!(ledger[0].event.contains("skellam"), "{}", ledger[0].event);
    assert_eq!(
        store.epsilon_spent("round").unwrap(),
        ledger[0].epsilon_total
    );

    // The next round opens on the new version.
    let start = Instant::now();
    loop {
        let plan = devices[0].plan();
        if plan["round"]["base_version"] == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{plan}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_round_that_would_exceed_the_budget_is_refused() {
    // Budget for exactly one round of three members: the second would exceed it.
    let config = covey_server::config::PopulationConfig::from_toml(
        &common::small_config("budget"),
        common::small_catalog(),
    )
    .unwrap();
    let plan =
        covey_server::driver::plan_for(&config, 3, config.privacy().clip_norm, [0; 32]).unwrap();
    let one_round = covey_server::driver::epsilon_after(&config, &[], &plan, 3).unwrap();
    let two_rounds = {
        let first = covey_server::storage::LedgerEntry {
            population: "budget".into(),
            seq: 1,
            round_id: 1,
            survivors: 3,
            event: serde_json::to_string(
                &plan.privacy_event(3, covey_protocol::accounting::Sampling::Full),
            )
            .unwrap(),
            epsilon_round: one_round,
            epsilon_total: one_round,
            delta: 1e-6,
            created_at: 0,
        };
        covey_server::driver::epsilon_after(&config, &[first], &plan, 3).unwrap()
    };
    assert!(
        two_rounds > one_round * 1.01,
        "{one_round} then {two_rounds}"
    );
    let budget = one_round * 1.01;
    let server = TestServer::with_config(
        &common::config_with_budget("budget", budget),
        http_config(),
        true,
    );
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..3).map(|_| Device::register(&http, "budget")).collect();
    run_cohort(&devices, |_| (common::upload(0.01), Behaviour::Complete));
    wait_for_version(&devices[0], 1);

    // The driver ticks every 20 ms; give it many chances to (wrongly) open a round.
    std::thread::sleep(Duration::from_millis(500));
    let plan = devices[0].plan();
    assert!(plan["round"].is_null(), "{plan}");
    let store = server.service().store();
    assert_eq!(store.rounds("budget", 10).unwrap().len(), 1);
    let spent = store.epsilon_spent("budget").unwrap();
    assert!(
        (spent - one_round).abs() < 1e-9 * one_round.max(1.0),
        "{spent} vs {one_round}"
    );
    assert!(spent <= budget);
    assert_eq!(plan["privacy"]["epsilon_spent"].as_f64().unwrap(), spent);
}
