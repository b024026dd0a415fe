//! Helpers shared by the server's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

pub mod device;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use covey_model::{Catalog, GlobalModel};
use covey_server::clock::SystemClock;
use covey_server::config::{PopulationConfig, RawConfig, parse_catalog};
use covey_server::http::{HttpConfig, RateLimit};
use covey_server::ops::{self, Running, ServeOptions};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use covey_server::storage::{PostgresStorage, SqliteStorage, Storage};

/// Where `scripts/setup.d/40-postgres` writes the URL of the test database.
pub fn postgres_url_file() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    cache.join("covey").join("postgres-url")
}

/// The PostgreSQL test database: `COVEY_TEST_POSTGRES_URL`, else the URL the setup script
/// wrote; `None` when neither exists (the PostgreSQL half of the suite is then skipped, and
/// says so).
pub fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("COVEY_TEST_POSTGRES_URL") {
        return Some(url);
    }
    let url = std::fs::read_to_string(postgres_url_file()).ok()?;
    Some(url.trim().to_owned())
}

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub fn sqlite() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStorage::open(&dir.path().join("covey.db")).expect("open sqlite");
    (dir, store)
}

/// The PostgreSQL store, if configured. A configured but unreachable database fails the
/// test: the setup script promised it.
pub fn postgres() -> Option<PostgresStorage> {
    let url = postgres_url()?;
    Some(PostgresStorage::connect(&url).unwrap_or_else(|e| {
        panic!("PostgreSQL test database configured but unusable ({e}); run scripts/setup")
    }))
}

/// A name no earlier run used (PostgreSQL keeps data between runs).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Runs `check` against SQLite and, when available, PostgreSQL.
pub fn on_every_backend(check: impl Fn(&dyn Storage)) {
    let (_dir, sqlite) = sqlite();
    check(&sqlite);
    match postgres() {
        Some(pg) => check(&pg),
        None => eprintln!("PostgreSQL not configured: checked SQLite only"),
    }
}

/// The small population's catalog file: the first 20 items of the shared test catalog
/// (`sku-0`..`sku-19`, 6 categories, 4 price levels).
pub fn small_items_csv() -> String {
    covey_test_support::items_csv(20)
}

/// [`small_items_csv`] parsed.
pub fn small_catalog() -> Catalog {
    parse_catalog(small_items_csv().as_bytes()).expect("small catalog")
}

/// Parameters of the small population's model: 20 items × 3 + 20 biases + 4 feature rows × 3.
pub const SMALL_PARAMETERS: usize = 20 * 3 + 20 + 4 * 3;

/// Length of the small population's uploads (`covey_model::UpdateLayout`): 20 items × (3 + 1)
/// gradient values + 20 curvatures + the 4 × 4 Gramian's 10-value triangle.
pub const SMALL_UPLOAD: usize = 20 * 4 + 20 + 10;

/// A device upload for the small population: every gradient and curvature value `value`, the
/// Gramian the identity (so a cohort's mean stays well conditioned under the round's noise).
pub fn upload(value: f32) -> Vec<f32> {
    let mut v = vec![value; SMALL_UPLOAD];
    let triangle = &mut v[SMALL_UPLOAD - 10..];
    let mut t = 0;
    for i in 0..4 {
        for j in i..4 {
            triangle[t] = if i == j { 1.0 } else { 0.0 };
            t += 1;
        }
    }
    v
}

/// The parameter change a round must publish when `members` sent [`upload`]s whose mean is
/// `upload(mean)`: the model's cohort step (FedAvg at rate 1 applies it whole).
pub fn expected_step(before: &GlobalModel, mean: f32, members: usize) -> Vec<f32> {
    let config = covey_model::ModelConfig {
        shape: before.shape(),
        ..covey_model::ModelConfig::default()
    };
    covey_model::cohort_step(before, &upload(mean), members as f64, &config).expect("step")
}

/// Writes `toml` as `pop.toml` and the small catalog next to it; returns the config path.
pub fn write_config(dir: &std::path::Path, toml: &str) -> PathBuf {
    std::fs::write(dir.join("items.csv"), small_items_csv()).expect("write catalog");
    let path = dir.join("pop.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// A small population that runs quickly: [`SMALL_PARAMETERS`] parameters, cohorts of
/// 3..=5, one-second check-in, FedAvg with rate 1 (the new model is base + the cohort step).
pub fn small_config(name: &str) -> String {
    config_with_budget(name, 1e6)
}

/// [`small_config`] with another ε budget: the shared test population
/// ([`covey_test_support::POPULATION_TOML`]) with a smaller model (dimension 3, 4 feature rows),
/// cohorts of up to 5 so a test can check in more devices than the minimum, and one example
/// enough to take part.
pub fn config_with_budget(name: &str, budget: f64) -> String {
    let mut raw: RawConfig =
        toml::from_str(covey_test_support::POPULATION_TOML).expect("fixture population");
    raw.population.name = name.to_owned();
    raw.model.dim = 3;
    raw.model.feature_rows = 4;
    raw.privacy.epsilon_budget = budget;
    raw.secagg.cohort_max = 5;
    raw.eligibility.min_examples = 1;
    toml::to_string(&raw).expect("population TOML")
}

/// Default HTTP settings for tests.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        max_body_bytes: 1 << 20,
        rate_limit: RateLimit {
            burst: 10_000.0,
            per_second: 10_000.0,
        },
        tls: None,
    }
}

/// A server with population `name` on loopback, in its own tokio runtime.
pub struct TestServer {
    pub runtime: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub base: String,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start(name: &str, http: HttpConfig, drive: bool) -> Self {
        Self::with_config(&small_config(name), http, drive)
    }

    /// A server with the population described by `toml`.
    pub fn with_config(toml: &str, http: HttpConfig, drive: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ops::open_storage(dir.path(), None).expect("storage");
        let config = PopulationConfig::from_toml(toml, small_catalog()).expect("config");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        covey_server::service::init_population(&*store, &SystemClock, &mut rng, &config)
            .expect("init population");
        Self::on(dir, store, http, drive)
    }

    /// Shuts this server down and starts a new one on the same data directory (a restart:
    /// nothing survives but the database).
    pub fn restart(mut self, http: HttpConfig, drive: bool) -> Self {
        if let Some(running) = self.running.take() {
            self.runtime
                .block_on(running.shutdown())
                .expect("clean shutdown");
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let store = ops::open_storage(dir.path(), None).expect("storage reopens");
        Self::on(dir, store, http, drive)
    }

    /// Serves `store`, kept in `dir`, on loopback in a fresh runtime.
    fn on(dir: tempfile::TempDir, store: Arc<dyn Storage>, http: HttpConfig, drive: bool) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let options = ServeOptions {
            tick: drive.then_some(Duration::from_millis(20)),
            ..ServeOptions::loopback(http.max_body_bytes)
        };
        let options = ServeOptions { http, ..options };
        let running = runtime
            .block_on(async {
                ops::start(
                    store,
                    Arc::new(SystemClock),
                    Box::new(ChaCha20Rng::seed_from_u64(2)),
                    &options,
                )
            })
            .expect("server starts");
        let base = format!("http://{}", running.addr);
        TestServer {
            runtime,
            running: Some(running),
            base,
            dir,
        }
    }

    pub fn service(&self) -> &covey_server::service::Service {
        &self.running.as_ref().expect("running").service
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

/// The largest distance between `after - before` and `expected` over every parameter: how far
/// a round's published update is from the step the test's devices' mean upload implies.
pub fn worst_step_error(before: &GlobalModel, after: &GlobalModel, expected: &[f32]) -> f32 {
    before
        .params()
        .iter()
        .zip(after.params())
        .zip(expected)
        .map(|((a, b), e)| (b - a - e).abs())
        .fold(0.0f32, f32::max)
}
