//! Cross-crate end-to-end tests live in `tests/tests/`; this library holds shared fixtures:
//! an embedded aggregation server on loopback over a real SQLite data directory, and
//! members with real encrypted stores, consent and purchase histories.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use covey_model::Catalog;
use covey_sdk::audit::MemoryAnchorStore;
use covey_sdk::consent::{ConsentEventKind, Controller, PurposeId};
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::RecordContext;
use covey_sdk::{
    CancelToken, Device, DeviceConditions, DeviceConfig, Error, HttpTransport, Ineligible,
    ParticipationOptions, ParticipationOutcome, Transport,
};
use covey_server::clock::SystemClock;
use covey_server::config::{Deadlines, PopulationConfig, RawConfig, catalog_csv, parse_catalog};
use covey_server::ops::{self, Running, ServeOptions};
use covey_server::storage::RoundRecord;
use covey_store::{
    Channel, EventKind, FakeClock, InMemoryKeyStore, LoyaltyEvent, Store, StoreConfig, StoreRng,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// 2026-01-01T00:00:00Z: the members' (fake) clock.
pub const T0: i64 = 1_767_225_600_000;

/// The shared test population ([`covey_test_support::POPULATION_TOML`]), which the Python
/// and Kotlin binding tests and covey-server's and covey-sdk's tests start from as well.
pub fn fixture_population() -> RawConfig {
    toml::from_str(covey_test_support::POPULATION_TOML).expect("fixture population")
}

/// The first `items` SKUs (`sku-0`, `sku-1`, ..., in 6 categories and 4 price levels) of the
/// shared test catalog.
pub fn catalog(items: usize) -> Catalog {
    parse_catalog(covey_test_support::items_csv(items).as_bytes()).expect("catalog")
}

/// A population TOML over `catalog.csv`: the shared fixture with dimension `dim`, cohorts of
/// `cohort_min..=cohort_max`, no contribution bounds that a test's repeated rounds would hit.
/// Check-in stays open long enough for every test device to join on a loaded machine; it
/// closes as soon as `cohort_max` devices are in. Stages allow for cohorts of dozens of
/// devices on two cores, and a dropout tolerance for the tests that drop 20% of them.
pub fn population_toml(name: &str, dim: usize, cohort_min: usize, cohort_max: usize) -> String {
    let mut raw = fixture_population();
    raw.population.name = name.to_owned();
    raw.model.dim = dim;
    raw.model.feature_rows = 16;
    raw.model.catalog = "catalog.csv".to_owned();
    raw.privacy.noise_multiplier = 0.5;
    raw.secagg.cohort_min = cohort_min;
    raw.secagg.cohort_max = cohort_max;
    raw.secagg.dropout_tolerance = 0.4;
    // Devices train between check-in and their first stage message, and the advertise
    // deadline starts as soon as the cohort is full: it must cover a loaded 2-core machine
    // training dozens of devices (6 s was missed once under a load average of 16).
    raw.deadlines = Deadlines {
        check_in: 20,
        advertise_keys: 20,
        share_keys: 6,
        masked_input: 10,
        consistency_check: 6,
        unmask: 6,
    };
    raw.eligibility.max_per_day = 100;
    toml::to_string(&raw).expect("population TOML")
}

/// Writes `toml` and its catalog into `dir` and creates the population in the SQLite store
/// under `dir/data` through the operator's `init` path.
pub fn init_population(dir: &Path, toml: &str, catalog: &Catalog) -> PathBuf {
    std::fs::write(dir.join("catalog.csv"), catalog_csv(catalog).expect("csv"))
        .expect("write catalog");
    let config_path = dir.join("population.toml");
    std::fs::write(&config_path, toml).expect("write config");
    let data = dir.join("data");
    let store = ops::open_storage(&data, None).expect("storage");
    let config = PopulationConfig::load(&config_path).expect("config");
    covey_server::service::init_population(
        &*store,
        &SystemClock,
        &mut ChaCha20Rng::seed_from_u64(11),
        &config,
    )
    .expect("init population");
    data
}

/// An embedded server (HTTP + round driver) on loopback over the data directory `data`.
pub fn start_server(runtime: &tokio::runtime::Runtime, data: &Path, seed: u64) -> Running {
    let store = ops::open_storage(data, None).expect("storage");
    let options = ServeOptions {
        tick: Some(Duration::from_millis(25)),
        ..ServeOptions::loopback(4 << 20)
    };
    runtime
        .block_on(async {
            ops::start(
                store,
                Arc::new(SystemClock),
                Box::new(ChaCha20Rng::seed_from_u64(seed)),
                &options,
            )
        })
        .expect("server starts")
}

/// Patient with a loaded machine, quick to poll.
pub fn participation_options() -> ParticipationOptions {
    ParticipationOptions {
        patience: Duration::from_secs(40),
        max_poll_interval: Duration::from_millis(40),
    }
}

/// Participates, retrying while no round is open yet (the driver opens one on its tick).
pub fn participate(
    member: &Member,
    transport: &dyn Transport,
) -> covey_sdk::Result<ParticipationOutcome> {
    let started = Instant::now();
    loop {
        let result = member.device.participate_with(
            transport,
            &DeviceConditions::ideal(),
            &CancelToken::new(),
            &participation_options(),
        );
        match result {
            Err(Error::NotEligible(Ineligible::NoRoundOpen))
                if started.elapsed() < Duration::from_secs(30) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Every member takes part in the same round over plain HTTP to `base`, each on its own
/// thread; panics unless all of them complete their part.
pub fn run_round(base: &str, members: &[Arc<Member>]) -> Vec<ParticipationOutcome> {
    let handles: Vec<_> = members
        .iter()
        .map(|m| {
            let m = Arc::clone(m);
            let t = HttpTransport::new(base);
            std::thread::spawn(move || participate(&m, &t))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .expect("participant thread")
                .expect("participation")
        })
        .collect()
}

/// Waits (30 s at most) until the server has ended round `id`, and returns its record.
pub fn wait_for_round_end(server: &Running, id: i64) -> RoundRecord {
    let store = server.service.store();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = store.round(id).expect("storage").expect("round exists");
        if !record.phase.is_active() {
            return record;
        }
        assert!(Instant::now() < deadline, "round never finished");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One member's phone: a real encrypted store in its own directory and a device over it.
#[derive(Debug)]
pub struct Member {
    /// The store's directory (kept alive with the member).
    pub dir: tempfile::TempDir,
    /// The device facade.
    pub device: Device,
    /// The member's clock.
    pub clock: Arc<FakeClock>,
}

fn rng(seed: u64) -> StoreRng {
    Box::new(ChaCha20Rng::seed_from_u64(seed))
}

fn device_config() -> DeviceConfig {
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new(
        "loyalty-privacy",
        1,
        "en",
        "Example Grocers privacy notice, version 1.",
        &registry,
    )
    .expect("notice");
    DeviceConfig {
        context: RecordContext {
            subject_ref: "subj-e2e".into(),
            controller: Controller {
                name: "Example Grocers Ltd".into(),
                contact: "privacy@example.test".into(),
            },
            jurisdiction: "EU-GDPR".into(),
            withdrawal_method: "app://privacy-center".into(),
        },
        registry,
        notice,
        renewal_window_days: 30,
    }
}

pub use covey_test_support::tempdir;

impl Member {
    /// A member with `purchases` purchases of catalog items (drawn with `seed`), who has
    /// consented to federated training.
    pub fn new(seed: u64, catalog_items: usize, purchases: usize) -> Self {
        let member = Self::undecided(seed, catalog_items, purchases);
        member.decide(ConsentEventKind::Given);
        member
    }

    /// Like [`Member::new`], but the member has decided nothing about any purpose yet.
    pub fn undecided(seed: u64, catalog_items: usize, purchases: usize) -> Self {
        let dir = tempdir();
        let clock = Arc::new(FakeClock::new(T0));
        let keystore = Arc::new(InMemoryKeyStore::new(rng(seed ^ 0x5eed)));
        let store = Arc::new(
            Store::open_with_rng(
                dir.path(),
                keystore,
                StoreConfig::default(),
                clock.clone(),
                rng(seed ^ 0xa11ce),
            )
            .expect("store"),
        );
        let mut pick = ChaCha20Rng::seed_from_u64(seed);
        let events: Vec<LoyaltyEvent> = (0..purchases)
            .map(|i| {
                purchase(
                    &format!("sku-{}", pick.next_u32() as usize % catalog_items),
                    i,
                )
            })
            .collect();
        store.record_events(&events).expect("events");
        let device = Device::open(
            store,
            device_config(),
            Arc::new(MemoryAnchorStore::default()),
            clock.clone(),
            rng(seed ^ 0xde71ce),
        )
        .expect("device");
        Member { dir, device, clock }
    }

    /// Records a federated-training consent decision.
    pub fn decide(&self, kind: ConsentEventKind) {
        self.device
            .decide(&PurposeId::federated_training(), kind, 1, "e2e")
            .expect("consent decision");
    }
}

fn purchase(item: &str, i: usize) -> LoyaltyEvent {
    LoyaltyEvent {
        kind: EventKind::Purchase,
        item_id: item.into(),
        category: String::new(),
        quantity: 1,
        amount_minor: 450,
        currency: "EUR".into(),
        store_id: "store-1".into(),
        channel: Channel::InStore,
        time_ms: T0 - 86_400_000 + i as i64 * 60_000,
    }
}
