//! The embedded aggregation server: a population file written like an operator would
//! write it, `covey-server init`'s code path, and the server started on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use covey_model::{Catalog, ModelConfig, write_catalog_csv};
use covey_server::http::{HttpConfig, RateLimit};
use covey_server::ops::{self, Running, ServeOptions};
use covey_server::storage::Storage;

use super::FleetError;
use super::clock::SimClock;

/// The population's settings as the fleet chose them.
#[derive(Debug, Clone)]
pub struct PopulationSpec {
    /// Model shape and local training.
    pub model: ModelConfig,
    /// `skellam` (distributed DP) or `central` (no member noise; used without a target ε).
    pub mechanism: &'static str,
    /// Lifetime ε budget.
    pub epsilon_budget: f64,
    /// δ.
    pub delta: f64,
    /// L2 clip of one update.
    pub clip_norm: f64,
    /// Noise multiplier of the surviving sum.
    pub noise_multiplier: f64,
    /// Modular bit width of the secure sum.
    pub bits: u32,
    /// Smallest cohort a round starts with.
    pub cohort_min: usize,
    /// Cohort size.
    pub cohort_max: usize,
    /// Devices admitted at check-in (the cohort is drawn from them).
    pub check_in_max: usize,
    /// Dropout fraction the SecAgg+ graph and the noise are provisioned for.
    pub dropout_tolerance: f64,
    /// Seconds check-in stays open.
    pub check_in_secs: u64,
    /// Rounds of the run: the per-day cap, since the simulation runs every round within
    /// minutes (in the field a population would allow one a day).
    pub rounds: u32,
    /// Seconds each SecAgg+ stage stays open.
    pub stage_secs: u64,
    /// `fedadam` or `fedavg`.
    pub optimizer: &'static str,
    /// Server learning rate.
    pub server_lr: f32,
    /// FedAdam τ.
    pub server_tau: f32,
    /// `constant`, `linear` or `cosine` server learning-rate schedule.
    pub server_schedule: &'static str,
    /// Completed rounds over which a decaying rate falls.
    pub decay_rounds: u64,
    /// The final server rate as a fraction of `server_lr`.
    pub server_final_lr: f32,
}

impl PopulationSpec {
    /// The population file, as an operator would write it.
    fn to_toml(&self, population: &str) -> String {
        let m = &self.model;
        let training = format!(
            "unobserved_weight = {}\nl2_user = {}\nl2_item = {}\nlearning_rate = {}\n\
             local_epochs = {}\nnegatives = {}\nmin_history_items = {}\n",
            m.unobserved_weight,
            m.l2_user,
            m.l2_item,
            m.learning_rate,
            m.local_epochs,
            m.negatives,
            m.min_history_items
        );
        format!(
            "[population]\nname = \"{population}\"\n\n\
             [model]\ndim = {}\nfeature_rows = {}\ncatalog = \"items.csv\"\n\n\
             [model.training]\n{training}\n\
             [privacy]\nmechanism = \"{}\"\nepsilon_budget = {:e}\ndelta = {:e}\n\
             clip_norm = {}\nnoise_multiplier = {}\nbits = {}\naccountant = \"rdp\"\n\n\
             [secagg]\ncohort_min = {}\ncohort_max = {}\ncheck_in_max = {}\n\
             dropout_tolerance = {}\nadversarial_fraction = 0.05\n\n\
             [deadlines]\ncheck_in = {}\nadvertise_keys = {s}\nshare_keys = {s}\n\
             masked_input = {s}\nconsistency_check = {s}\nunmask = {s}\n\n\
             [eligibility]\nmin_examples = 1\nmin_separation_hours = 0\nmax_per_day = {}\n\n\
             [optimizer]\nkind = \"{}\"\nlearning_rate = {}\ntau = {}\nschedule = \"{}\"\n\
             decay_rounds = {}\nfinal_fraction = {}\n",
            m.shape.dim,
            m.shape.feature_rows,
            self.mechanism,
            self.epsilon_budget,
            self.delta,
            self.clip_norm,
            self.noise_multiplier,
            self.bits,
            self.cohort_min,
            self.cohort_max,
            self.check_in_max,
            self.dropout_tolerance,
            self.check_in_secs,
            self.rounds,
            self.optimizer,
            self.server_lr,
            self.server_tau,
            self.server_schedule,
            self.decay_rounds,
            self.server_final_lr,
            s = self.stage_secs,
        )
    }
}

/// Writes the population file and its catalog into `dir` and initialises the population
/// through `covey-server init`'s code path, drawing the initial model from `rng`.
pub fn init_population(
    store: &dyn Storage,
    dir: &Path,
    population: &str,
    catalog: &Catalog,
    spec: &PopulationSpec,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> Result<(), FleetError> {
    let mut items = Vec::new();
    write_catalog_csv(catalog, &mut items)?;
    write(&dir.join("items.csv"), &items)?;
    let config = dir.join("population.toml");
    write(&config, spec.to_toml(population).as_bytes())?;
    ops::init(store, &config, rng)?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    std::fs::write(path, bytes).map_err(|e| FleetError::Input(format!("{}: {e}", path.display())))
}

/// Starts the API and the round driver on loopback (any free port), on `runtime`.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Storage>,
    clock: Arc<SimClock>,
    devices: usize,
) -> Result<Running, FleetError> {
    let options = ServeOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        http: HttpConfig {
            max_body_bytes: 64 << 20,
            // The whole fleet registers at once and every device polls from one host: the
            // budget stays on but is sized for that.
            rate_limit: RateLimit {
                burst: (2 * devices).max(1_000) as f64,
                per_second: 1_000.0,
            },
            tls: None,
        },
        tick: Some(Duration::from_millis(50)),
        drive: None,
    };
    let _guard = runtime.enter();
    Ok(ops::start(store, clock, ops::os_rng(), &options)?)
}
