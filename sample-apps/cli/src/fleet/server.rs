//! The embedded aggregation server: a population file written like an operator would
//! write it, `covey-server init`'s code path, and the server started on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use covey_model::{Catalog, ModelConfig, ParamLayout, UpdateLayout, write_catalog_csv};
use covey_protocol::dp::AdaptiveClipping;
use covey_protocol::dp::rotation::padded_len;
use covey_protocol::secagg::{AdversaryClass, ThreatModel, params};
use covey_server::ops::{self, Running, ServeOptions};
use covey_server::storage::Storage;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

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
    /// Noise multiplier of the surviving sum (with adaptive clipping: of the update and
    /// the clip count together).
    pub noise_multiplier: f64,
    /// Adaptive clipping (`[privacy.adaptive_clip]`), `clip_norm` being the first clip.
    pub adaptive_clip: Option<AdaptiveClipping>,
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

/// Adversarial fraction the SecAgg+ graph is sized for.
const ADVERSARIAL_FRACTION: f64 = 0.05;
/// Headroom of a stage deadline over the cohort's estimated work.
const DEADLINE_HEADROOM: f64 = 3.0;
/// Seconds added to every stage deadline: requests, storage, training, scheduling.
const DEADLINE_SLACK_SECS: f64 = 10.0;
/// DP encoding work per padded coordinate, in ChaCha20 keystream words: the randomized
/// Hadamard rotation plus a Skellam (or discrete Gaussian) sample per coordinate cost about
/// as much as 40 words in the DP encoding bench; rounding alone (central mode) about 4.
const ENCODE_WORDS_DISTRIBUTED: f64 = 48.0;
const ENCODE_WORDS_CENTRAL: f64 = 4.0;

/// Deadlines of the SecAgg+ stages, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StageDeadlines {
    /// Opens when the cohort is fixed: devices still training, then DP encoding and keys.
    advertise_keys: u64,
    /// Shares to k neighbours, and the consistency check and unmasking after masking:
    /// small client work.
    light: u64,
    /// Masking: one keystream per neighbour and one of the device's own.
    masked_input: u64,
}

impl PopulationSpec {
    /// Stage deadlines that fit the whole cohort on this machine, for a catalog of `items`.
    ///
    /// In the field every phone computes on its own processor, so a deadline need not grow
    /// with the cohort. The simulator runs every device on this machine's cores (bounded
    /// by the fleet's `Cores`), so a stage lasts as long as the whole cohort's work does
    /// there. Work is counted in ChaCha20 keystream words, timed on every core of this
    /// machine now (other work on the machine lengthens the deadlines): masking expands
    /// (k + 1) keystreams over the padded vector for a SecAgg+ graph of degree k, and DP
    /// encoding costs [`ENCODE_WORDS_DISTRIBUTED`] words per coordinate
    /// ([`ENCODE_WORDS_CENTRAL`] without member noise). Each deadline is
    /// [`DEADLINE_HEADROOM`] times its stage's work plus [`DEADLINE_SLACK_SECS`]: with no
    /// dropouts a stage closes as soon as every member has answered, so generous deadlines
    /// cost nothing; a device that drops out costs its stage's whole deadline.
    fn stage_deadlines(&self, items: usize) -> Result<StageDeadlines, FleetError> {
        let shape = &self.model.shape;
        let parameters = UpdateLayout::of(ParamLayout {
            items,
            dim: shape.dim,
            feature_rows: shape.feature_rows,
        })
        .len();
        let threat = ThreatModel {
            adversarial_fraction: ADVERSARIAL_FRACTION,
            dropout_fraction: self.dropout_tolerance,
            adversary: AdversaryClass::SemiHonest,
        };
        let graph = params::find(self.cohort_max, &threat)
            .map_err(|e| FleetError::Usage(format!("cohort of {}: {e}", self.cohort_max)))?;
        let padded = padded_len(parameters) as f64;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let seconds_per_word = keystream_seconds_per_word(cores);
        let deadline = |words_per_device: f64| {
            let work = self.cohort_max as f64 * words_per_device * seconds_per_word / cores as f64;
            (DEADLINE_SLACK_SECS + DEADLINE_HEADROOM * work).ceil() as u64
        };
        let encode = if self.mechanism == "central" {
            ENCODE_WORDS_CENTRAL
        } else {
            ENCODE_WORDS_DISTRIBUTED
        };
        Ok(StageDeadlines {
            advertise_keys: deadline(encode * padded),
            light: deadline(0.0),
            masked_input: deadline((graph.degree + 1) as f64 * padded),
        })
    }

    /// The population file, as an operator would write it.
    fn to_toml(&self, population: &str, stages: &StageDeadlines) -> String {
        let m = &self.model;
        let training = format!(
            "unobserved_weight = {}\nl2_user = {}\nl2_item = {}\nitem_step = {}\n\
             min_history_items = {}\n",
            m.unobserved_weight, m.l2_user, m.l2_item, m.item_step, m.min_history_items
        );
        let adaptive = self.adaptive_clip.map_or_else(String::new, |a| {
            format!(
                "\n[privacy.adaptive_clip]\ntarget_quantile = {}\nlearning_rate = {}\n\
                 count_stddev = {}\n",
                a.target_quantile, a.learning_rate, a.count_stddev
            )
        });
        format!(
            "[population]\nname = \"{population}\"\n\n\
             [model]\ndim = {}\nfeature_rows = {}\ncatalog = \"items.csv\"\n\n\
             [model.training]\n{training}\n\
             [privacy]\nmechanism = \"{}\"\nepsilon_budget = {:e}\ndelta = {:e}\n\
             clip_norm = {}\nnoise_multiplier = {}\nbits = {}\naccountant = \"rdp\"\n{adaptive}\n\
             [secagg]\ncohort_min = {}\ncohort_max = {}\ncheck_in_max = {}\n\
             dropout_tolerance = {}\nadversarial_fraction = {ADVERSARIAL_FRACTION}\n\n\
             [deadlines]\ncheck_in = {}\nadvertise_keys = {}\nshare_keys = {light}\n\
             masked_input = {}\nconsistency_check = {light}\nunmask = {light}\n\n\
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
            stages.advertise_keys,
            stages.masked_input,
            self.rounds,
            self.optimizer,
            self.server_lr,
            self.server_tau,
            self.server_schedule,
            self.decay_rounds,
            self.server_final_lr,
            light = stages.light,
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
    rng: &mut ChaCha20Rng,
) -> Result<(), FleetError> {
    let mut items = Vec::new();
    write_catalog_csv(catalog, &mut items)?;
    write(&dir.join("items.csv"), &items)?;
    let config = dir.join("population.toml");
    let stages = spec.stage_deadlines(catalog.len())?;
    write(&config, spec.to_toml(population, &stages).as_bytes())?;
    ops::init(store, &config, rng)?;
    Ok(())
}

/// Seconds one core of this machine, as shared right now, takes per 32-bit ChaCha20
/// keystream word (the masks of SecAgg+ are such keystreams): one thread per core expands
/// 2^23 words each, at once, so that other work running on the machine slows the figure as
/// it will slow the devices.
fn keystream_seconds_per_word(cores: usize) -> f64 {
    const BLOCKS: usize = 32;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for seed in 0..cores {
            scope.spawn(move || {
                let mut rng = ChaCha20Rng::seed_from_u64(seed as u64);
                let mut block = vec![0u8; 1 << 20];
                for _ in 0..BLOCKS {
                    rng.fill_bytes(&mut block);
                    std::hint::black_box(&block);
                }
            });
        }
    });
    let words_per_core = (BLOCKS << 20) as f64 / 4.0;
    started.elapsed().as_secs_f64() / words_per_core
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    std::fs::write(path, bytes).map_err(|e| FleetError::Input(format!("{}: {e}", path.display())))
}

/// Starts the API and the round driver on loopback (any free port), on `runtime`: the
/// server's loopback settings (an accept queue for a whole cohort connecting at once, a
/// rate limit sized for one host running every device), with 64 MiB bodies.
pub fn start(
    runtime: &tokio::runtime::Runtime,
    store: Arc<dyn Storage>,
    clock: Arc<SimClock>,
) -> Result<Running, FleetError> {
    let options = ServeOptions {
        tick: Some(Duration::from_millis(50)),
        ..ServeOptions::loopback(64 << 20)
    };
    let _guard = runtime.enter();
    Ok(ops::start(store, clock, ops::os_rng(), &options)?)
}
