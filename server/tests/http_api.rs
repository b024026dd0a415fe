//! The HTTP API on real loopback sockets: registration, authentication, limits, clear JSON
//! errors, model downloads and metrics.

mod common;

use common::device::{Device, Http};
use common::{TestServer, http_config};
use covey_protocol::dp::{DpPlan, Encoder};
use covey_protocol::secagg::{Client, MemberId, SessionParams};
use covey_server::http::RateLimit;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn registration_issues_tokens_and_every_auth_failure_is_a_clear_401() {
    let server = TestServer::start("auth", http_config(), false);
    let http = Http::new(&server.base);

    let unknown = http.post("/v1/populations/nope/devices", None, None, b"");
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (404, Some("not_found"))
    );

    let device = Device::register(&http, "auth");
    assert_eq!(device.token.len(), 64);
    let other = Device::register(&http, "auth");
    assert_ne!(device.token, other.token);

    let cases: [(Option<&str>, &str); 3] = [
        (None, "missing `Authorization"),
        (Some("abc"), "64 lowercase hex"),
        (Some(&"0".repeat(64)), "unknown bearer token"),
    ];
    for (token, message) in cases {
        let reply = http.get("/v1/plan", token, &[]);
        let json = reply.json();
        assert_eq!(reply.status, 401, "{json}");
        assert_eq!(json["error"], "unauthenticated");
        assert!(
            json["message"].as_str().unwrap().contains(message),
            "{json}"
        );
    }
    let not_bearer = http.get("/v1/plan", None, &[("authorization", "Basic Zm9vOmJhcg==")]);
    assert_eq!(not_bearer.status, 401);

    let plan = device.plan();
    assert_eq!(plan["population"], "auth");
    assert_eq!(plan["model"]["parameters"], common::SMALL_PARAMETERS);
    assert_eq!(plan["model"]["items"], 20);
    assert_eq!(plan["model"]["training"]["shape"]["dim"], 3);
    assert_eq!(plan["model"]["latest_version"], 0);
    assert_eq!(plan["eligibility"]["min_examples"], 1);
    assert!(plan["round"].is_null(), "no driver, no round: {plan}");

    // The token is stored hashed: the database never holds the token text.
    let db = std::fs::read(server.dir.path().join("covey.db")).unwrap();
    let needle = device.token.as_bytes();
    assert!(!db.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn the_whole_item_table_is_downloadable_by_version() {
    let server = TestServer::start("models", http_config(), false);
    let device = Device::register(&Http::new(&server.base), "models");
    let latest = device.get("/v1/models/latest");
    assert_eq!(latest.status, 200);
    let model = covey_model::GlobalModel::from_bytes(&latest.body).unwrap();
    assert_eq!(model.layout().len(), common::SMALL_PARAMETERS);
    assert_eq!(model.catalog(), &common::small_catalog());
    assert_eq!(model.catalog().item(5).unwrap().category, "cat-5");
    assert!(model.params().iter().any(|v| *v != 0.0));
    let v0 = device.get("/v1/models/0");
    assert_eq!(v0.body, latest.body);
    let etag = latest.etag.expect("etag");
    let digest = covey_server::token::sha256(&latest.body);
    assert_eq!(etag, format!("\"{}\"", hex::encode(digest)));
    assert_eq!(device.plan()["model"]["latest_digest"], hex::encode(digest));
    let cached = device.http.get(
        "/v1/models/0",
        Some(&device.token),
        &[("if-none-match", &etag)],
    );
    assert_eq!(cached.status, 304);
    let missing = device.get("/v1/models/7");
    assert_eq!(
        (missing.status, missing.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let bad = device.get("/v1/models/newest");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .contains("integer or `latest`")
    );
}

#[test]
fn malformed_oversized_misdirected_and_replayed_stage_messages_get_clear_4xx() {
    let mut config = http_config();
    config.max_body_bytes = 64 << 10;
    let server = TestServer::start("limits", config, true);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..3).map(|_| Device::register(&http, "limits")).collect();
    let joined: Vec<(i64, u32)> = devices.iter().map(Device::check_in).collect();
    let (round, member) = joined[0];
    let device = &devices[0];
    let (params, plan) = device.session(round);
    let path = format!("/v1/rounds/{round}/stages/advertise_keys");

    let wrong_type = device
        .http
        .post(&path, Some(&device.token), Some("application/json"), b"{}");
    assert_eq!(wrong_type.status, 415, "{:?}", wrong_type.json());

    let garbage = device.post(&path, &[1, 2, 3]);
    let json = garbage.json();
    assert_eq!(
        (garbage.status, json["error"].as_str()),
        (400, Some("bad_request")),
        "{json}"
    );
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("does not decode"),
        "{json}"
    );

    let oversized = device.post(&path, &vec![0u8; 100 << 10]);
    let json = oversized.json();
    assert_eq!(
        (oversized.status, json["error"].as_str()),
        (413, Some("payload_too_large")),
        "{json}"
    );

    let bad_round = device.post("/v1/rounds/abc/stages/advertise_keys", &[1]);
    assert_eq!(bad_round.status, 400);
    let bad_stage = device.post(&format!("/v1/rounds/{round}/stages/gossip"), &[1]);
    assert_eq!(bad_stage.status, 400);
    assert!(
        bad_stage.json()["message"]
            .as_str()
            .unwrap()
            .contains("unknown stage")
    );

    let bytes = advertise_keys_message(params, &plan, member, 9);

    // Another member's message (wrong sender) and a message to a stage that is not open.
    let as_other = devices[1].post(&path, &bytes);
    assert_eq!(as_other.status, 400);
    assert!(
        as_other.json()["message"]
            .as_str()
            .unwrap()
            .contains("another sender")
    );
    let early = device.post(&format!("/v1/rounds/{round}/stages/share_keys"), &bytes);
    assert_eq!(
        (early.status, early.json()["error"].as_str()),
        (409, Some("conflict"))
    );

    let first = device.post(&path, &bytes);
    assert_eq!(first.status, 202, "{:?}", first.json());
    let replay = device.post(&path, &bytes);
    let json = replay.json();
    assert_eq!(
        (replay.status, json["error"].as_str()),
        (409, Some("replay")),
        "{json}"
    );
    assert_eq!(json["same_payload"], true);

    let outsider = Device::register(&http, "limits");
    let forbidden = outsider.post(&path, &bytes);
    assert_eq!(
        (forbidden.status, forbidden.json()["error"].as_str()),
        (403, Some("forbidden"))
    );
    let unknown_route = device.get("/v2/anything");
    assert_eq!(
        (unknown_route.status, unknown_route.json()["error"].as_str()),
        (404, Some("not_found"))
    );
}

/// `member`'s first SecAgg+ message (its advertised keys) for a small DP-encoded update.
fn advertise_keys_message(params: SessionParams, plan: &DpPlan, member: u32, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let values = Encoder::new(plan)
        .unwrap()
        .encode(&common::upload(0.01), &mut rng)
        .unwrap()
        .values;
    let (_client, message) =
        Client::new(params, MemberId(member), &values, None, &mut rng).unwrap();
    message.encode()
}

#[test]
fn a_stage_message_after_its_stage_closed_is_refused_as_late() {
    let server = TestServer::start("late", http_config(), true);
    let http = Http::new(&server.base);
    let devices: Vec<Device> = (0..3).map(|_| Device::register(&http, "late")).collect();
    let joined: Vec<(i64, u32)> = devices.iter().map(Device::check_in).collect();
    let round = joined[0].0;
    let path = format!("/v1/rounds/{round}/stages/advertise_keys");

    // Every member advertises its keys, so the driver opens share_keys at once.
    let advertised: Vec<Vec<u8>> = devices
        .iter()
        .zip(&joined)
        .map(|(device, (_, member))| {
            let (params, plan) = device.session(round);
            let bytes = advertise_keys_message(params, &plan, *member, u64::from(*member));
            assert_eq!(device.post(&path, &bytes).status, 202);
            bytes
        })
        .collect();
    devices[0].poll(&format!("/v1/rounds/{round}/stages/share_keys"));

    let late = devices[0].post(&path, &advertised[0]);
    let json = late.json();
    assert_eq!(
        (late.status, json["error"].as_str()),
        (409, Some("stage_closed")),
        "{json}"
    );
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains("advertise_keys") && message.contains("dropout"),
        "{message}"
    );
}

#[test]
fn a_device_over_its_rate_gets_429() {
    let mut config = http_config();
    config.rate_limit = RateLimit {
        burst: 3.0,
        per_second: 0.01,
    };
    let server = TestServer::start("rate", config, false);
    let http = Http::new(&server.base);
    let device = Device::register(&http, "rate");
    let statuses: Vec<u16> = (0..5).map(|_| device.get("/v1/plan").status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let limited = device.get("/v1/plan");
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    assert_eq!(limited.json()["error"], "rate_limited");
    // Another device has its own budget.
    let other = Device::register(&http, "rate");
    assert_eq!(other.get("/v1/plan").status, 200);
}

#[test]
fn metrics_are_prometheus_text_without_device_ids() {
    let server = TestServer::start("metrics", http_config(), false);
    let http = Http::new(&server.base);
    let device = Device::register(&http, "metrics");
    let _ = http.get("/v1/plan", None, &[]);
    let text = String::from_utf8(http.get("/metrics", None, &[]).body).unwrap();
    for line in [
        "# TYPE covey_registrations_total counter",
        "covey_registrations_total 1",
        "covey_http_responses_total{class=\"4xx\"} 1",
        "# TYPE covey_devices gauge",
        "covey_devices{population=\"metrics\"} 1",
        "covey_model_version{population=\"metrics\"} 0",
        "covey_epsilon_spent{population=\"metrics\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(!text.contains(&device.device_id));
    assert_eq!(http.get("/healthz", None, &[]).status, 200);
}

/// Ends `round` (as if its deadline passed) and waits for the driver to open the next.
fn next_round(server: &TestServer, device: &Device, round: i64) -> i64 {
    server
        .service()
        .store()
        .abort_round(round, covey_server::storage::RoundPhase::CheckIn, "test", 0)
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let plan = device.plan();
        if let Some(id) = plan["round"]["id"].as_i64().filter(|id| *id != round) {
            return id;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{plan}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A second check-in under `policy_edit` is refused with a message containing `reason`.
fn second_check_in_is_refused(name: &str, policy_edit: (&str, &str), reason: &str) {
    let config = common::small_config(name).replace(policy_edit.0, policy_edit.1);
    let server = TestServer::with_config(&config, http_config(), true);
    let device = Device::register(&Http::new(&server.base), name);
    let (round, member) = device.check_in();
    // Checking in again to the same round is idempotent, not a second participation.
    let again = device.post(&format!("/v1/rounds/{round}/check-in"), b"");
    assert_eq!(
        (again.status, again.json()["member_id"].as_u64()),
        (200, Some(u64::from(member)))
    );
    let next = next_round(&server, &device, round);
    let refused = device.post(&format!("/v1/rounds/{next}/check-in"), b"");
    let json = refused.json();
    assert_eq!(
        (refused.status, json["error"].as_str()),
        (403, Some("forbidden")),
        "{json}"
    );
    assert!(json["message"].as_str().unwrap().contains(reason), "{json}");
}

#[test]
fn the_server_enforces_the_per_day_cap_and_minimum_separation() {
    second_check_in_is_refused(
        "capped",
        ("max_per_day = 24", "max_per_day = 1"),
        "per-day participation cap",
    );
    second_check_in_is_refused(
        "separated",
        ("min_separation_hours = 0", "min_separation_hours = 48"),
        "minimum separation",
    );
}
