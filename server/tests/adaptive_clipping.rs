//! Adaptive clipping end to end: rounds over HTTP on loopback with a real SQLite store,
//! devices running the real DP encoder (which sets the clip-indicator coordinate the plan
//! asks for), the driver moving the clip from the decoded, noised count and storing it with
//! each model version, and a restart resuming it. Plus the ledger's price of the count.

mod common;

use common::device::{Behaviour, Device, Http, run_cohort};
use common::{TestServer, http_config};
use covey_protocol::accounting::Sampling;
use covey_protocol::secagg::Stage;
use covey_server::config::{AdaptiveClipConfig, PopulationConfig, RawConfig};
use covey_server::driver::{epsilon_after, plan_for};
use covey_server::ops::{self, RoundSummary};
use covey_server::storage::{LedgerEntry, RoundPhase};

/// Target quantile: the clip should settle at the median update norm.
const QUANTILE: f64 = 0.5;
/// A fast learning rate (the paper's is 0.2) so a few rounds cross a factor of ten.
const LEARNING_RATE: f64 = 1.5;
/// Count noise: a standard deviation of 0.05 members, 0.01 on the fraction of five members,
/// so each round's direction is decided by the members' norms, not the noise.
const COUNT_STDDEV: f64 = 0.05;
/// Devices per round (the small population's `cohort_max`).
const MEMBERS: usize = 5;

/// Member `i` uploads `upload(0.1 (i + 1))`: 100 values of 0.1 (i + 1) and the identity's
/// triangle (4 ones), so its L2 norm is √((i + 1)² + 4): 2.24, 2.83, 3.61, 4.47, 5.39.
fn upload_of(i: usize) -> Vec<f32> {
    common::upload(0.1 * (i as f32 + 1.0))
}

fn norms() -> Vec<f64> {
    (0..MEMBERS)
        .map(|i| {
            upload_of(i)
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// The small population with adaptive clipping starting from `clip`.
fn adaptive_config(name: &str, clip: f64) -> String {
    let mut raw: RawConfig = toml::from_str(&common::small_config(name)).expect("small config");
    raw.privacy.clip_norm = clip;
    raw.privacy.adaptive_clip = Some(AdaptiveClipConfig {
        target_quantile: QUANTILE,
        learning_rate: LEARNING_RATE,
        count_stddev: COUNT_STDDEV,
    });
    toml::to_string(&raw).expect("population TOML")
}

/// Runs one round with every device uploading its [`upload_of`] and waits until the round
/// completed; returns its summary as `covey-server rounds` reports it.
fn complete_round(server: &TestServer, devices: &[Device]) -> RoundSummary {
    let cohort = run_cohort(devices, |i| (upload_of(i), Behaviour::Complete));
    assert!(cohort.sent.iter().all(|s| s.last() == Some(&Stage::Unmask)));
    let store = server.service().store();
    let start = std::time::Instant::now();
    loop {
        let summary = ops::rounds(store, &devices[0].population, 5)
            .unwrap()
            .into_iter()
            .find(|r| r.id == cohort.round)
            .expect("the round is listed");
        match summary.phase {
            "completed" => return summary,
            "aborted" => panic!("round aborted: {:?}", summary.reason),
            _ => {}
        }
        assert!(start.elapsed().as_secs() < 30, "round never completed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Checks one completed round: its plan carried `clip` and the indicator; the noised
/// fraction within the clip is the true one within five of its standard deviations; the
/// next clip is the paper's geometric step from it, so it moved the right way. Returns
/// the next clip.
fn check_round(round: &RoundSummary, clip: f64) -> f64 {
    assert_eq!(round.clip, Some(clip), "the plan uses the stored clip");
    let profile = round.profile.as_ref().expect("profile");
    assert_eq!(profile.clip, Some(clip));
    let estimate = profile.adaptive.expect("the decoded count");
    let within = norms().iter().filter(|&&n| n <= clip).count() as f64 / MEMBERS as f64;
    assert!(
        (estimate.unclipped_fraction - within).abs() <= 5.0 * estimate.fraction_stddev,
        "fraction within clip {clip}: decoded {estimate:?}, true {within}"
    );
    assert!(estimate.fraction_stddev < 0.02, "{estimate:?}");
    let expected =
        clip * (-LEARNING_RATE * (estimate.unclipped_fraction.clamp(0.0, 1.0) - QUANTILE)).exp();
    assert!(
        (estimate.next_clip - expected).abs() <= 1e-12 * expected,
        "{estimate:?}"
    );
    assert_eq!(round.next_clip, Some(estimate.next_clip));
    if within > QUANTILE {
        assert!(estimate.next_clip < clip, "too few clipped: must shrink");
    } else {
        assert!(estimate.next_clip > clip, "too many clipped: must grow");
    }
    estimate.next_clip
}

/// The clip ends between the second and fourth norms: next to the median.
fn assert_near_the_median(clip: f64) {
    let n = norms();
    assert!(n[1] < clip && clip < n[3], "clip {clip}, norms {n:?}");
}

#[test]
fn a_clip_far_too_low_grows_to_the_median_update_norm() {
    let server = TestServer::with_config(&adaptive_config("low", 0.25), http_config(), true);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..MEMBERS)
        .map(|_| Device::register(&http, "low"))
        .collect();
    let mut clip = 0.25;
    for _ in 0..4 {
        clip = check_round(&complete_round(&server, &devices), clip);
    }
    assert_near_the_median(clip);
}

#[test]
fn a_clip_far_too_high_shrinks_to_the_median_and_survives_a_restart() {
    let mut server = TestServer::with_config(&adaptive_config("high", 40.0), http_config(), true);
    let http = Http::new(&server.base);
    let mut devices: Vec<Device> = (0..MEMBERS)
        .map(|_| Device::register(&http, "high"))
        .collect();
    let mut clip = 40.0;
    for _ in 0..2 {
        clip = check_round(&complete_round(&server, &devices), clip);
    }
    // The version the last round published carries the clip; devices see it in the plan.
    let latest = server
        .service()
        .store()
        .latest_model("high")
        .unwrap()
        .unwrap();
    assert_eq!((latest.version, latest.clip), (2, Some(clip)));

    server = server.restart(http_config(), true);
    let http = Http::new(&server.base);
    for d in &mut devices {
        d.http = http.clone();
    }
    let plan = devices[0].plan();
    assert_eq!(plan["privacy"]["clip_norm"].as_f64(), Some(clip), "{plan}");
    assert_eq!(
        plan["privacy"]["adaptive_clip"]["target_quantile"].as_f64(),
        Some(QUANTILE)
    );
    for _ in 0..2 {
        clip = check_round(&complete_round(&server, &devices), clip);
    }
    assert_near_the_median(clip);
    let store = server.service().store();
    assert_eq!(store.ledger("high").unwrap().len(), 4, "one charge a round");
    assert!(
        store
            .rounds("high", 10)
            .unwrap()
            .iter()
            .all(|r| r.phase != RoundPhase::Aborted),
        "the restart lost no round"
    );
}

/// The ledger charges the plan as built: the update and the count released together at the
/// configured noise multiplier z, which leaves the update alone the larger
/// z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2). So an adaptive round costs at least what a fixed-clip round
/// at z costs, and more than a fixed-clip round whose update carries the same noise.
#[test]
fn the_ledger_charges_the_clip_count_out_of_the_noise_budget() {
    let (z, sigma_b) = (1.0, 1.0);
    let config_with = |adaptive: bool, noise_multiplier: f64| {
        let mut raw: RawConfig = toml::from_str(&common::small_config("price")).unwrap();
        raw.privacy.noise_multiplier = noise_multiplier;
        raw.privacy.adaptive_clip = adaptive.then_some(AdaptiveClipConfig {
            target_quantile: 0.5,
            learning_rate: 0.2,
            count_stddev: sigma_b,
        });
        PopulationConfig::from_toml(&toml::to_string(&raw).unwrap(), common::small_catalog())
            .unwrap()
    };
    let epsilon = |config: &PopulationConfig, rounds: u64| {
        let plan = plan_for(config, 5, 1.0, [0; 32]).unwrap();
        let survivors = plan.min_survivors;
        let mut ledger = Vec::new();
        for seq in 1..rounds {
            let total = epsilon_after(config, &ledger, &plan, survivors).unwrap();
            ledger.push(LedgerEntry {
                population: "price".into(),
                seq,
                round_id: seq as i64,
                survivors: u64::from(survivors),
                event: serde_json::to_string(&plan.privacy_event(survivors, Sampling::Full))
                    .unwrap(),
                epsilon_round: 0.0,
                epsilon_total: total,
                delta: 1e-6,
                created_at: 0,
            });
        }
        (
            epsilon_after(config, &ledger, &plan, survivors).unwrap(),
            plan,
        )
    };

    let adaptive = config_with(true, z);
    let (eps_adaptive, plan) = epsilon(&adaptive, 10);
    let survivors = plan.min_survivors;
    assert!(plan.clip_indicator.is_some(), "the plan carries the count");
    assert_eq!(plan.vector_len(), plan.padded_dimension() + 1);
    // The released vector (update and count) carries z; the update alone z_Δ.
    assert!((plan.noise_multiplier(survivors) - z).abs() < 1e-9 * z);
    let update_z = plan.summed_noise_variance(survivors).sqrt() / plan.l2_bound();
    let z_delta = (z.powi(-2) - (2.0 * sigma_b).powi(-2)).powf(-0.5);
    assert!(
        (update_z - z_delta).abs() < 1e-3 * z_delta,
        "update noise multiplier {update_z}, Andrew et al.'s z_Δ {z_delta}"
    );

    let (eps_fixed_same_z, _) = epsilon(&config_with(false, z), 10);
    assert!(
        eps_adaptive >= eps_fixed_same_z,
        "adaptive {eps_adaptive} < fixed {eps_fixed_same_z} at z = {z}"
    );
    assert!(
        eps_adaptive < 1.05 * eps_fixed_same_z,
        "the count is paid out of the same budget: {eps_adaptive} vs {eps_fixed_same_z}"
    );
    let (eps_fixed_same_update_noise, _) = epsilon(&config_with(false, update_z), 10);
    assert!(
        eps_adaptive > 1.05 * eps_fixed_same_update_noise,
        "the count costs privacy: adaptive {eps_adaptive}, fixed at z_Δ \
         {eps_fixed_same_update_noise}"
    );
}

#[test]
fn an_invalid_adaptive_clipping_table_is_refused_by_field() {
    for (body, field) in [
        (
            "target_quantile = 1.5\ncount_stddev = 1.0",
            "target_quantile",
        ),
        (
            "target_quantile = 0.5\nlearning_rate = -0.2\ncount_stddev = 1.0",
            "learning_rate",
        ),
        // The small population's noise multiplier is 0.01: σ_b must exceed 0.005.
        (
            "target_quantile = 0.5\ncount_stddev = 0.004",
            "count_stddev",
        ),
    ] {
        let toml = common::small_config("bad").replace(
            "[secagg]",
            &format!("[privacy.adaptive_clip]\n{body}\n\n[secagg]"),
        );
        let err = PopulationConfig::from_toml(&toml, common::small_catalog()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("`privacy.adaptive_clip.{field}`")),
            "{body}: {err}"
        );
    }
}
