//! Round participation against a real `covey-server` on loopback: eligibility failures are
//! named and send nothing, the registration token stays sealed, cancellation aborts with
//! nothing more sent. (Whole rounds with many devices: `tests/tests/round_e2e.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, contains, dir_bytes, purchase};
use covey_sdk::audit_entry::AuditEvent;
use covey_sdk::consent::{ConsentEventKind, PurposeId};
use covey_sdk::{
    CancelToken, DeviceConditions, Error, HttpTransport, Ineligible, ParticipationOptions,
    Transport, TransportError, TransportRequest, TransportResponse,
};
use covey_server::clock::SystemClock;
use covey_server::config::{Deadlines, PopulationConfig, RawConfig, parse_catalog};
use covey_server::ops::{self, Running, ServeOptions};
use covey_store::ParticipationOutcome as Ended;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const POPULATION: &str = "sdk-test";

/// The shared test population ([`covey_test_support::POPULATION_TOML`]) over 40 items,
/// with patient 30-second stages (a test may hold a device between them), cohorts of up to 10
/// and a small budget and per-day cap.
fn config(min_examples: u32) -> PopulationConfig {
    let mut raw: RawConfig = toml::from_str(covey_test_support::POPULATION_TOML).unwrap();
    raw.population.name = POPULATION.to_owned();
    raw.privacy.epsilon_budget = 100.0;
    raw.privacy.noise_multiplier = 1.0;
    raw.privacy.bits = 20;
    raw.secagg.cohort_max = 10;
    raw.deadlines = Deadlines {
        check_in: 30,
        advertise_keys: 30,
        share_keys: 30,
        masked_input: 30,
        consistency_check: 30,
        unmask: 30,
    };
    raw.eligibility.min_examples = min_examples;
    raw.eligibility.max_per_day = 10;
    let catalog = parse_catalog(covey_test_support::items_csv(40).as_bytes()).unwrap();
    PopulationConfig::new(raw, catalog).unwrap()
}

/// A server on loopback (driving rounds when `drive`), in its own runtime.
struct Server {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(min_examples: u32, drive: bool) -> Self {
        let dir = common::tempdir();
        let store = ops::open_storage(dir.path(), None).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        covey_server::service::init_population(
            &*store,
            &SystemClock,
            &mut rng,
            &config(min_examples),
        )
        .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = ServeOptions {
            tick: drive.then_some(Duration::from_millis(20)),
            ..ServeOptions::loopback(1 << 20)
        };
        let running = runtime
            .block_on(async {
                ops::start(
                    store,
                    Arc::new(SystemClock),
                    Box::new(ChaCha20Rng::seed_from_u64(2)),
                    &options,
                )
            })
            .unwrap();
        let base = format!("http://{}", running.addr);
        Server {
            runtime,
            running: Some(running),
            base,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.runtime.block_on(r.shutdown());
        }
    }
}

/// Counts requests, keeps every response body, and runs a hook before each request.
struct Spy {
    inner: HttpTransport,
    requests: AtomicUsize,
    bodies: Mutex<Vec<Vec<u8>>>,
    before: Hook,
}

type Hook = Box<dyn Fn(&TransportRequest) + Send + Sync>;

impl Spy {
    fn new(base: &str) -> Self {
        Self::with_hook(base, |_| {})
    }

    fn with_hook(base: &str, hook: impl Fn(&TransportRequest) + Send + Sync + 'static) -> Self {
        Spy {
            inner: HttpTransport::new(base),
            requests: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
            before: Box::new(hook),
        }
    }
}

impl Transport for Spy {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        (self.before)(request);
        self.requests.fetch_add(1, Ordering::SeqCst);
        let response = self.inner.send(request)?;
        self.bodies.lock().unwrap().push(response.body.clone());
        Ok(response)
    }
}

fn fast() -> ParticipationOptions {
    ParticipationOptions {
        patience: Duration::from_secs(20),
        max_poll_interval: Duration::from_millis(20),
    }
}

fn consent(f: &Fixture, kind: ConsentEventKind) {
    f.device()
        .decide(&PurposeId::federated_training(), kind, 1, "test")
        .unwrap();
}

fn add_purchases(f: &Fixture, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| purchase(&format!("sku-{i}"), common::T0 - 1000 * i as i64))
        .collect();
    f.store.record_events(&events).unwrap();
}

#[test]
fn eligibility_failures_are_named_and_send_nothing() {
    let server = Server::start(1, false);
    let f = Fixture::new();
    add_purchases(&f, 5);
    let spy = Spy::new(&server.base);
    let run = |c: DeviceConditions| {
        f.device()
            .participate_with(&spy, &c, &CancelToken::new(), &fast())
    };
    let ideal = DeviceConditions::ideal();
    let not_charging = DeviceConditions {
        charging: false,
        ..ideal
    };
    assert!(matches!(
        run(not_charging),
        Err(Error::NotEligible(Ineligible::NotCharging))
    ));
    assert!(matches!(
        run(DeviceConditions {
            battery_percent: 5,
            ..ideal
        }),
        Err(Error::NotEligible(Ineligible::BatteryLow { need: 20 }))
    ));
    assert!(matches!(
        run(ideal),
        Err(Error::NotEligible(Ineligible::Consent))
    ));
    consent(&f, ConsentEventKind::Given);
    assert!(matches!(run(ideal), Err(Error::NotRegistered)));
    assert_eq!(spy.requests.load(Ordering::SeqCst), 0, "nothing was sent");

    f.device().join(&spy, POPULATION).unwrap();
    assert_eq!(spy.requests.load(Ordering::SeqCst), 1);
    // No driver, so no round: named, and only the plan was fetched.
    assert!(matches!(
        run(ideal),
        Err(Error::NotEligible(Ineligible::NoRoundOpen))
    ));
    assert_eq!(spy.requests.load(Ordering::SeqCst), 2);
    assert!(f.store.participations().unwrap().is_empty());
}

#[test]
fn the_registration_token_is_sealed_and_never_logged() {
    let server = Server::start(1, false);
    let f = Fixture::new();
    let spy = Spy::new(&server.base);
    let registration = f.device().join(&spy, POPULATION).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&spy.bodies.lock().unwrap()[0]).unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(body["device_id"], registration.device_id.as_str());
    assert_eq!(f.device().registration().unwrap(), Some(registration));

    // Joining again sends nothing; the token is in no file in the clear and in no log.
    f.device().join(&spy, POPULATION).unwrap();
    assert_eq!(spy.requests.load(Ordering::SeqCst), 1);
    assert!(!contains(&dir_bytes(f.dir.path()), token.as_bytes()));
    let audit = serde_json::to_string(&f.device().audit_entries().unwrap()).unwrap();
    assert!(!audit.contains(&token));
    assert!(!format!("{:?}", f.device()).contains(&token));
    let export = serde_json::to_string(&f.device().export().unwrap()).unwrap();
    assert!(!export.contains(&token));
}

#[test]
fn too_few_examples_is_named_after_the_plan_is_read() {
    let server = Server::start(5, true);
    let f = Fixture::new();
    add_purchases(&f, 2);
    consent(&f, ConsentEventKind::Given);
    let spy = Spy::new(&server.base);
    f.device().join(&spy, POPULATION).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let err = loop {
        let r = f.device().participate_with(
            &spy,
            &DeviceConditions::ideal(),
            &CancelToken::new(),
            &fast(),
        );
        match r {
            Err(Error::NotEligible(Ineligible::NoRoundOpen))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.unwrap_err(),
        }
    };
    assert!(
        matches!(
            err,
            Error::NotEligible(Ineligible::TooFewExamples { need: 5 })
        ),
        "{err}"
    );
}

#[test]
fn cancelling_while_waiting_for_the_cohort_aborts_and_records_it() {
    let server = Server::start(1, true);
    let f = Fixture::new();
    add_purchases(&f, 6);
    consent(&f, ConsentEventKind::Given);
    let cancel = CancelToken::new();
    let on_session = cancel.clone();
    // The member taps "stop" while the device waits for the cohort to fill.
    let spy = Spy::with_hook(&server.base, move |r| {
        if r.path.contains("/session") {
            on_session.cancel();
        }
    });
    f.device().join(&spy, POPULATION).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let result = loop {
        let r = f
            .device()
            .participate_with(&spy, &DeviceConditions::ideal(), &cancel, &fast());
        match r {
            Err(Error::NotEligible(Ineligible::NoRoundOpen))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other,
        }
    };
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let records = f.store.participations().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.outcome, Ended::Aborted);
    assert_eq!(records[0].record.epsilon_charged, 0.0);
    let entries = f.device().audit_entries().unwrap();
    assert!(entries.iter().any(|e| matches!(
        e.event,
        AuditEvent::RoundEnded {
            outcome: Ended::Aborted,
            ..
        }
    )));
    assert!(
        !entries
            .iter()
            .any(|e| matches!(e.event, AuditEvent::Upload(_)))
    );
    // Training ran (it precedes the wait) and was logged; its read was grant-gated.
    assert!(
        entries
            .iter()
            .any(|e| matches!(e.event, AuditEvent::Training { .. }))
    );
}

#[test]
fn a_registration_gets_its_own_round_key_never_the_receipt_key() {
    let server = Server::start(1, false);
    let f = Fixture::new();
    let spy = Spy::new(&server.base);
    let registration = f.device().join(&spy, POPULATION).unwrap();
    let registered = registration
        .signing_key
        .clone()
        .expect("a key is registered");
    let receipt_key: String = f
        .device()
        .public_key()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_ne!(
        registered, receipt_key,
        "the receipt key would link member and device"
    );
    assert!(!registration.signed_sessions, "this population is unsigned");
    let sealed = f
        .store
        .key_material(covey_sdk::participate::ROUND_KEY_NAME)
        .unwrap()
        .expect("round key sealed in the store");
    let sealed_public: String = sealed
        .public_key
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sealed_public, registered);
    assert!(!contains(&dir_bytes(f.dir.path()), &sealed.secret));
}
