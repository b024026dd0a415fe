//! A population's operator configuration: parsed from TOML, then validated into typed
//! settings. Every rejection names the setting (`secagg.cohort_min`) and the rule it broke.
//!
//! ```toml
//! [population]
//! name = "coffee-rewards"
//!
//! [model]              # the covey-model recommender every device trains
//! dim = 16              # embedding width
//! feature_rows = 64     # hashed category / price-band feature table
//! catalog = "items.csv" # item_id,category,price (minor units) or price_band[,available]
//!
//! [model.training]      # optional: covey_model::ModelConfig fields sent to devices
//! unobserved_weight = 1.0
//!
//! [privacy]
//! mechanism = "skellam" # or "discrete_gaussian", "central" (trusted server)
//! epsilon_budget = 8.0
//! delta = 1e-6
//! clip_norm = 1.0
//! noise_multiplier = 1.0
//! bits = 20
//! accountant = "rdp"    # or "pld" (Gaussian only)
//!
//! [privacy.adaptive_clip] # optional: the clip follows the update norms (Andrew et al.)
//! target_quantile = 0.5  # fraction of members whose update should fit within the clip
//! learning_rate = 0.2    # geometric step: clip × exp(−η (fraction within − quantile))
//! count_stddev = 2.5     # noise on the count of members within the clip, in members
//!
//! [secagg]
//! cohort_min = 50
//! cohort_max = 1000
//! check_in_max = 1500   # optional: pick the cohort at random from up to this many
//! dropout_tolerance = 0.3
//! adversarial_fraction = 0.05
//!
//! [deadlines]           # seconds per stage
//! check_in = 60
//! advertise_keys = 30
//! share_keys = 30
//! masked_input = 120
//! consistency_check = 30
//! unmask = 30
//!
//! [eligibility]
//! min_examples = 10
//! min_separation_hours = 24
//! max_per_day = 1
//!
//! [optimizer]
//! kind = "fedavg"       # or "fedadam" (applied to the cohort's ALS-style item step)
//! learning_rate = 1.0
//! schedule = "linear"   # optional: "constant" (default), "linear" or "cosine" decay
//! decay_rounds = 20     # completed rounds over which the rate falls (not for constant)
//! final_fraction = 0.1  # the rate after them, as a fraction of learning_rate
//! ```

use std::path::Path;

use covey_model::{Catalog, ModelConfig, ParamLayout, UpdateLayout};
use covey_protocol::accounting::AccountantKind;
use covey_protocol::dp::{AdaptiveClipping, NoiseKind};
use covey_protocol::secagg::{self, AdversaryClass, ThreatModel};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest model a population may declare (all parameters: every delta has this many).
pub const MAX_PARAMETERS: usize = secagg::MAX_DIMENSION;
/// Most devices one round's check-in may admit.
pub const MAX_CHECK_INS: usize = 10 * secagg::params::MAX_MEMBERS;
/// Longest stage deadline accepted (one day): longer ones are almost certainly a typo.
pub const MAX_DEADLINE_SECS: u64 = 86_400;

/// The noise mechanism of every round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMechanism {
    /// Distributed Skellam noise: each member adds a share; the server never sees an
    /// un-noised sum.
    Skellam,
    /// Distributed discrete Gaussian noise.
    DiscreteGaussian,
    /// **Weaker:** members only clip and quantize; the server adds Gaussian noise to the
    /// unmasked sum and must be trusted to do so.
    Central,
}

impl NoiseMechanism {
    /// The DP encoder's noise kind.
    pub fn noise_kind(self) -> NoiseKind {
        match self {
            NoiseMechanism::Skellam => NoiseKind::Skellam,
            NoiseMechanism::DiscreteGaussian => NoiseKind::DiscreteGaussian,
            NoiseMechanism::Central => NoiseKind::Central,
        }
    }
}

/// The server optimizer applied to the decoded mean update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Federated averaging: `w ← w + lr · mean Δ`.
    Fedavg,
    /// Adaptive federated optimization (Reddi et al. 2021), Adam on the pseudo-gradient.
    Fedadam,
}

/// The file as written by the operator, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[population]`
    pub population: RawPopulation,
    /// `[model]`
    pub model: ModelSection,
    /// `[privacy]`
    pub privacy: PrivacyConfig,
    /// `[secagg]`
    pub secagg: SecAggConfig,
    /// `[deadlines]`
    pub deadlines: Deadlines,
    /// `[eligibility]`
    pub eligibility: EligibilityPolicy,
    /// `[optimizer]`
    pub optimizer: OptimizerConfig,
}

/// `[population]`: its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPopulation {
    /// Short identifier: lowercase letters, digits and dashes.
    pub name: String,
}

/// `[model]`: the shape of the global [`covey_model::GlobalModel`] and the catalog it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Embedding width d.
    pub dim: usize,
    /// Rows of the hashed item-feature table (category and price band share it).
    pub feature_rows: usize,
    /// The catalog file, relative to the config file: an items CSV as
    /// [`covey_model::read_catalog_csv`] reads it (`item_id,category,price` or
    /// `price_band`, optional `available`). Its row order is the model's row order.
    pub catalog: String,
    /// Local-training settings every device uses (`shape` comes from `dim` and
    /// `feature_rows`; defaults when absent).
    #[serde(default)]
    pub training: ModelConfig,
}

impl ModelSection {
    /// The model shape.
    pub fn shape(&self) -> covey_model::ModelShape {
        covey_model::ModelShape {
            dim: self.dim,
            feature_rows: self.feature_rows,
        }
    }
}

/// `[privacy]`: differential privacy of every round and the population's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Noise mechanism.
    pub mechanism: NoiseMechanism,
    /// Total ε the population may spend over its lifetime.
    pub epsilon_budget: f64,
    /// δ of the (ε, δ) guarantee.
    pub delta: f64,
    /// L2 clip of one member's update (with `adaptive_clip`, of the first round).
    pub clip_norm: f64,
    /// Noise standard deviation over the clip (of the surviving sum).
    pub noise_multiplier: f64,
    /// Bit width of the modular sum, 1..=32.
    pub bits: u32,
    /// Which accountant charges the ledger.
    #[serde(default = "default_accountant")]
    pub accountant: AccountantKind,
    /// `[privacy.adaptive_clip]`: adaptive clipping, `clip_norm` being the first round's
    /// clip; `None` (no table) keeps `clip_norm` for every round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_clip: Option<AdaptiveClipConfig>,
}

/// `[privacy.adaptive_clip]`: adaptive clipping (Andrew et al., NeurIPS 2021).
///
/// Each round every member also sends one bit, whether its update fitted within the clip,
/// as one more coordinate of the securely summed, noised vector; after the round the server
/// moves the clip geometrically towards the `target_quantile` of the members' update norms
/// (`C ← C · exp(−η (b̃ − γ))`, `b̃` the noised fraction within the clip) and the next round's
/// plan carries the new clip. Devices need nothing: they encode with the plan's clip.
///
/// The count is released under the same noise multiplier as the update, so it is paid for
/// out of the update's noise: for `noise_multiplier` z the update alone carries
/// `z_Δ = (z⁻² − (2 σ_b)⁻²)^(−1/2)` (more noise than z), and the ledger charges the pair
/// at z. Hence `count_stddev` σ_b must exceed z / 2; the paper suggests σ_b = the expected
/// survivors / 20, which makes the count's share small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveClipConfig {
    /// Target quantile γ of the update norms, in (0, 1).
    pub target_quantile: f64,
    /// Learning rate η of the geometric clip update, positive (paper default 0.2).
    #[serde(default = "default_clip_learning_rate")]
    pub learning_rate: f64,
    /// Standard deviation σ_b of the noise on the count of members within the clip, in
    /// members; above `noise_multiplier / 2`.
    pub count_stddev: f64,
}

impl AdaptiveClipConfig {
    /// The clip update rule the DP plan carries.
    pub fn rule(&self) -> AdaptiveClipping {
        AdaptiveClipping {
            target_quantile: self.target_quantile,
            learning_rate: self.learning_rate,
            count_stddev: self.count_stddev,
        }
    }
}

fn default_clip_learning_rate() -> f64 {
    0.2
}

fn default_accountant() -> AccountantKind {
    AccountantKind::Rdp
}

/// `[secagg]`: cohort bounds and the threat model that sizes the SecAgg+ graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecAggConfig {
    /// A round starts only with at least this many checked-in devices.
    pub cohort_min: usize,
    /// The most devices selected into a round's cohort (uniformly at random from those
    /// checked in when check-in closes).
    pub cohort_max: usize,
    /// Check-in closes early at this many devices (default: `cohort_max`, so nobody is
    /// turned away); larger values let the server pick the cohort at random from a bigger
    /// pool. Devices not selected are dismissed and may check in to a later round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_in_max: Option<usize>,
    /// Fraction of the cohort that may drop out over the session.
    pub dropout_tolerance: f64,
    /// Fraction of the cohort that may collude with the server.
    pub adversarial_fraction: f64,
    /// Require signed messages and a consistency check (malicious-server hardening).
    #[serde(default)]
    pub signed: bool,
}

impl SecAggConfig {
    /// How many devices check-in admits: [`SecAggConfig::check_in_max`] or `cohort_max`.
    pub fn check_in_max(&self) -> usize {
        self.check_in_max.unwrap_or(self.cohort_max)
    }

    /// The threat model handed to the SecAgg+ parameter finder.
    pub fn threat_model(&self) -> ThreatModel {
        ThreatModel {
            adversarial_fraction: self.adversarial_fraction,
            dropout_fraction: self.dropout_tolerance,
            adversary: if self.signed {
                AdversaryClass::SemiMalicious
            } else {
                AdversaryClass::SemiHonest
            },
        }
    }
}

/// `[deadlines]`: seconds each stage stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// Check-in window.
    pub check_in: u64,
    /// SecAgg+ stage 1. A device trains and encodes its update between check-in and its
    /// first stage message (the SecAgg+ client is built over the encoded input), and this
    /// deadline starts as soon as the cohort is fixed: it must cover the slowest member's
    /// local training when check-in closes early.
    pub advertise_keys: u64,
    /// SecAgg+ stage 2.
    pub share_keys: u64,
    /// SecAgg+ stage 3: masking and uploading the update.
    pub masked_input: u64,
    /// SecAgg+ stage 4 (signed sessions).
    pub consistency_check: u64,
    /// SecAgg+ stage 5.
    pub unmask: u64,
}

impl Deadlines {
    /// The deadline of a SecAgg+ stage, in milliseconds.
    pub fn stage_ms(&self, stage: secagg::Stage) -> i64 {
        let secs = match stage {
            secagg::Stage::AdvertiseKeys => self.advertise_keys,
            secagg::Stage::ShareKeys => self.share_keys,
            secagg::Stage::MaskedInput => self.masked_input,
            secagg::Stage::ConsistencyCheck => self.consistency_check,
            secagg::Stage::Unmask => self.unmask,
        };
        secs_to_ms(secs)
    }

    /// The check-in window in milliseconds.
    pub fn check_in_ms(&self) -> i64 {
        secs_to_ms(self.check_in)
    }

    fn all(&self) -> [(&'static str, u64); 6] {
        [
            ("deadlines.check_in", self.check_in),
            ("deadlines.advertise_keys", self.advertise_keys),
            ("deadlines.share_keys", self.share_keys),
            ("deadlines.masked_input", self.masked_input),
            ("deadlines.consistency_check", self.consistency_check),
            ("deadlines.unmask", self.unmask),
        ]
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    // Validated to at most MAX_DEADLINE_SECS, so this cannot overflow.
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `[eligibility]`: what a device checks before it volunteers (published in the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EligibilityPolicy {
    /// Minimum number of local examples.
    pub min_examples: u32,
    /// Minimum hours between two participations of one device.
    pub min_separation_hours: u32,
    /// Maximum participations of one device per day.
    pub max_per_day: u32,
}

/// How the server learning rate changes from one completed round to the next.
///
/// A constant rate keeps taking steps of the same size once the model is near a good
/// point, so the published model keeps moving around it (with FedAdam, whose steps are
/// about `learning_rate` per coordinate whatever the update's size, visibly so). A decaying
/// rate takes large steps early and settles at the end. The rate of each step is a function
/// of the base model's version only, so a restarted server resumes the schedule exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `learning_rate` for every round.
    #[default]
    Constant,
    /// Falls in a straight line from `learning_rate` to `final_fraction × learning_rate`
    /// over `decay_rounds` completed rounds.
    Linear,
    /// Falls along half a cosine (slowly at first and last) over `decay_rounds` rounds.
    Cosine,
}

/// `[optimizer]`: the server optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// FedAvg or FedAdam.
    pub kind: OptimizerKind,
    /// Server learning rate (of the first round under a decaying schedule).
    pub learning_rate: f32,
    /// FedAdam first-moment decay.
    #[serde(default = "default_beta1")]
    pub beta1: f32,
    /// FedAdam second-moment decay.
    #[serde(default = "default_beta2")]
    pub beta2: f32,
    /// FedAdam adaptivity τ (added to √v).
    #[serde(default = "default_tau")]
    pub tau: f32,
    /// How the rate changes over the rounds (default constant).
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Completed rounds over which a decaying rate falls: the step from model version
    /// `decay_rounds` to `decay_rounds + 1`, and every later one, use the final rate.
    /// Required (at least 1) unless the schedule is constant.
    #[serde(default)]
    pub decay_rounds: u64,
    /// The final rate as a fraction of `learning_rate`, in (0, 1] (default 0.1).
    #[serde(default = "default_final_fraction")]
    pub final_fraction: f32,
}

impl OptimizerConfig {
    /// `kind` at a constant `learning_rate`, every other setting at its default.
    pub fn new(kind: OptimizerKind, learning_rate: f32) -> Self {
        OptimizerConfig {
            kind,
            learning_rate,
            beta1: default_beta1(),
            beta2: default_beta2(),
            tau: default_tau(),
            schedule: LrSchedule::Constant,
            decay_rounds: 0,
            final_fraction: default_final_fraction(),
        }
    }

    /// The learning rate of the step from model version `base_version` to the next.
    pub fn learning_rate_at(&self, base_version: u64) -> f32 {
        if self.schedule == LrSchedule::Constant {
            return self.learning_rate;
        }
        // Validation guarantees decay_rounds ≥ 1; max(1) keeps a hand-built config sane.
        let progress = base_version.min(self.decay_rounds) as f64 / self.decay_rounds.max(1) as f64;
        // The share of the way from the final rate up to the initial one still left: 1 → 0.
        let left = match self.schedule {
            LrSchedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            LrSchedule::Linear | LrSchedule::Constant => 1.0 - progress,
        };
        let fraction = f64::from(self.final_fraction);
        (f64::from(self.learning_rate) * (fraction + (1.0 - fraction) * left)) as f32
    }
}

fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.99
}
fn default_tau() -> f32 {
    1e-3
}
fn default_final_fraction() -> f32 {
    0.1
}

/// A validated population configuration. Construct with [`PopulationConfig::from_toml`].
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationConfig {
    raw: RawConfig,
    catalog: Catalog,
}

impl PopulationConfig {
    /// Reads and validates a config file; the `model.catalog` path is resolved next to it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::File {
            action: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let raw = parse_raw(&text)?;
        let full = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&raw.model.catalog);
        let file = std::fs::File::open(&full).map_err(|source| Error::File {
            action: "reading catalog",
            path: full.clone(),
            source,
        })?;
        let catalog = parse_catalog(std::io::BufReader::new(file))?;
        Self::new(raw, catalog)
    }

    /// Validates TOML text whose catalog file has already been read into `catalog`.
    pub fn from_toml(text: &str, catalog: Catalog) -> Result<Self> {
        Self::new(parse_raw(text)?, catalog)
    }

    /// Validates an already-parsed file.
    pub fn new(raw: RawConfig, catalog: Catalog) -> Result<Self> {
        validate(&raw, &catalog)?;
        Ok(PopulationConfig { raw, catalog })
    }

    /// The population's name.
    pub fn name(&self) -> &str {
        &self.raw.population.name
    }
    /// The `[model]` section.
    pub fn model(&self) -> &ModelSection {
        &self.raw.model
    }
    /// The catalog, in model row order.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
    /// Where each parameter sits in the model (and in every delta).
    pub fn layout(&self) -> ParamLayout {
        ParamLayout {
            items: self.catalog.len(),
            dim: self.raw.model.dim,
            feature_rows: self.raw.model.feature_rows,
        }
    }
    /// Number of model parameters: [`ParamLayout::len`].
    pub fn parameters(&self) -> usize {
        self.layout().len()
    }
    /// Length of every device upload (what SecAgg+ and the DP plan cover):
    /// [`UpdateLayout::len`].
    pub fn upload_len(&self) -> usize {
        UpdateLayout::of(self.layout()).len()
    }
    /// The training settings devices use, with the population's shape and one thread.
    pub fn training(&self) -> ModelConfig {
        ModelConfig {
            shape: self.raw.model.shape(),
            threads: 1,
            ..self.raw.model.training.clone()
        }
    }
    /// Differential privacy settings.
    pub fn privacy(&self) -> &PrivacyConfig {
        &self.raw.privacy
    }
    /// SecAgg+ settings.
    pub fn secagg(&self) -> &SecAggConfig {
        &self.raw.secagg
    }
    /// Stage deadlines.
    pub fn deadlines(&self) -> &Deadlines {
        &self.raw.deadlines
    }
    /// Device eligibility policy.
    pub fn eligibility(&self) -> &EligibilityPolicy {
        &self.raw.eligibility
    }
    /// Server optimizer.
    pub fn optimizer(&self) -> &OptimizerConfig {
        &self.raw.optimizer
    }
    /// The settings as written (for storage and display).
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// Canonical TOML of the settings (what the database keeps).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(&self.raw).map_err(|e| Error::ConfigSyntax(e.to_string()))
    }
}

fn parse_raw(text: &str) -> Result<RawConfig> {
    toml::from_str(text).map_err(|e| Error::ConfigSyntax(e.to_string()))
}

/// Reads an items CSV (see [`ModelSection::catalog`]); errors are reported against
/// `model.catalog` with the file's line.
pub fn parse_catalog(input: impl std::io::BufRead) -> Result<Catalog> {
    covey_model::read_catalog_csv(input).map_err(|e| invalid("model.catalog", e.to_string()))
}

/// The catalog as the items CSV that [`parse_catalog`] reads (what the database keeps).
pub fn catalog_csv(catalog: &Catalog) -> Result<String> {
    let mut out = Vec::new();
    covey_model::write_catalog_csv(catalog, &mut out)?;
    String::from_utf8(out).map_err(|_| invalid("model.catalog", "is not UTF-8"))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        field,
        reason: reason.into(),
    }
}

fn check(ok: bool, field: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, reason()))
    }
}

fn check_positive(value: f64, field: &'static str) -> Result<()> {
    check(value.is_finite() && value > 0.0, field, || {
        format!("must be a positive number, got {value}")
    })
}

fn check_fraction(value: f64, field: &'static str) -> Result<()> {
    check((0.0..1.0).contains(&value), field, || {
        format!("must be in [0, 1), got {value}")
    })
}

fn validate(raw: &RawConfig, catalog: &Catalog) -> Result<()> {
    validate_name(&raw.population.name)?;
    validate_model(&raw.model, catalog)?;
    validate_privacy(&raw.privacy)?;
    validate_secagg(&raw.secagg)?;
    for (field, secs) in raw.deadlines.all() {
        check((1..=MAX_DEADLINE_SECS).contains(&secs), field, || {
            format!("must be between 1 and {MAX_DEADLINE_SECS} seconds, got {secs}")
        })?;
    }
    let e = &raw.eligibility;
    check(e.max_per_day >= 1, "eligibility.max_per_day", || {
        "must be at least 1 (0 would make every device ineligible)".into()
    })?;
    validate_optimizer(&raw.optimizer)
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    check(ok, "population.name", || {
        "must be 1-64 characters of a-z, 0-9 and '-'".into()
    })
}

fn validate_model(model: &ModelSection, catalog: &Catalog) -> Result<()> {
    let shape = model.shape();
    check(
        (1..=covey_model::ModelShape::MAX_DIM).contains(&model.dim),
        "model.dim",
        || format!("must be in 1..={}", covey_model::ModelShape::MAX_DIM),
    )?;
    check(
        (1..=covey_model::ModelShape::MAX_FEATURE_ROWS).contains(&model.feature_rows),
        "model.feature_rows",
        || {
            format!(
                "must be in 1..={}",
                covey_model::ModelShape::MAX_FEATURE_ROWS
            )
        },
    )?;
    let layout = ParamLayout {
        items: catalog.len(),
        dim: model.dim,
        feature_rows: model.feature_rows,
    };
    let (parameters, upload) = (layout.len(), UpdateLayout::of(layout).len());
    check(
        parameters.max(upload) <= MAX_PARAMETERS,
        "model.catalog",
        || {
            format!(
                "{} items: {parameters} parameters and uploads of {upload} values (items × \
             (dim + 2) + two (dim + 1)-triangles) must stay within the {} coordinates an \
             upload may carry",
                catalog.len(),
                MAX_PARAMETERS
            )
        },
    )?;
    let training = &model.training;
    check(
        training.shape == covey_model::ModelShape::default() || training.shape == shape,
        "model.training",
        || "must not set `shape`: set model.dim and model.feature_rows instead".into(),
    )?;
    ModelConfig {
        shape,
        ..training.clone()
    }
    .validate()
    .map_err(|e| invalid("model.training", e.to_string()))
}

fn validate_privacy(p: &PrivacyConfig) -> Result<()> {
    check_positive(p.epsilon_budget, "privacy.epsilon_budget")?;
    check(p.delta > 0.0 && p.delta < 1e-2, "privacy.delta", || {
        format!("must be in (0, 0.01), got {}", p.delta)
    })?;
    check_positive(p.clip_norm, "privacy.clip_norm")?;
    check_positive(p.noise_multiplier, "privacy.noise_multiplier")?;
    check((1..=32).contains(&p.bits), "privacy.bits", || {
        format!("must be in 1..=32, got {}", p.bits)
    })?;
    if let Some(adaptive) = &p.adaptive_clip {
        validate_adaptive_clip(adaptive, p.noise_multiplier)?;
    }
    check(
        p.accountant == AccountantKind::Rdp || p.mechanism == NoiseMechanism::Central,
        "privacy.accountant",
        || {
            "`pld` accounts only the central Gaussian mechanism; use `rdp` for distributed noise"
                .into()
        },
    )
}

fn validate_adaptive_clip(a: &AdaptiveClipConfig, noise_multiplier: f64) -> Result<()> {
    check(
        a.target_quantile > 0.0 && a.target_quantile < 1.0,
        "privacy.adaptive_clip.target_quantile",
        || format!("must be in (0, 1), got {}", a.target_quantile),
    )?;
    check_positive(a.learning_rate, "privacy.adaptive_clip.learning_rate")?;
    check_positive(a.count_stddev, "privacy.adaptive_clip.count_stddev")?;
    // The DP plan's own rule (see AdaptiveClipConfig): the count's noise share comes out of
    // the update's, which needs σ_b > z / 2.
    check(
        a.count_stddev > noise_multiplier / 2.0 * (1.0 + 1e-9),
        "privacy.adaptive_clip.count_stddev",
        || {
            format!(
                "must exceed noise_multiplier / 2 = {} (the count's share of the noise \
                 budget), got {}",
                noise_multiplier / 2.0,
                a.count_stddev
            )
        },
    )?;
    // Anything the plan would still refuse is reported against the table too.
    a.rule()
        .validate()
        .map_err(|e| invalid("privacy.adaptive_clip", e.to_string()))
}

fn validate_secagg(s: &SecAggConfig) -> Result<()> {
    check(s.cohort_min >= 2, "secagg.cohort_min", || {
        format!("must be at least 2, got {}", s.cohort_min)
    })?;
    check(s.cohort_max >= s.cohort_min, "secagg.cohort_max", || {
        format!(
            "must be at least cohort_min ({}), got {}",
            s.cohort_min, s.cohort_max
        )
    })?;
    check(
        s.cohort_max <= secagg::params::MAX_MEMBERS,
        "secagg.cohort_max",
        || format!("must be at most {}", secagg::params::MAX_MEMBERS),
    )?;
    check(
        (s.cohort_max..=MAX_CHECK_INS).contains(&s.check_in_max()),
        "secagg.check_in_max",
        || {
            format!(
                "must be between cohort_max ({}) and {MAX_CHECK_INS}, got {}",
                s.cohort_max,
                s.check_in_max()
            )
        },
    )?;
    check_fraction(s.dropout_tolerance, "secagg.dropout_tolerance")?;
    check_fraction(s.adversarial_fraction, "secagg.adversarial_fraction")?;
    check(
        s.dropout_tolerance + s.adversarial_fraction <= 0.9,
        "secagg.dropout_tolerance",
        || "plus adversarial_fraction must not exceed 0.9".into(),
    )?;
    // The smallest cohort must admit a secure graph, or no round could ever run.
    secagg::params::find(s.cohort_min, &s.threat_model()).map_err(|e| {
        invalid(
            "secagg.cohort_min",
            format!("admits no secure SecAgg+ graph under this threat model: {e}"),
        )
    })?;
    Ok(())
}

fn validate_optimizer(o: &OptimizerConfig) -> Result<()> {
    check_positive(f64::from(o.learning_rate), "optimizer.learning_rate")?;
    check_fraction(f64::from(o.beta1), "optimizer.beta1")?;
    check_fraction(f64::from(o.beta2), "optimizer.beta2")?;
    check_positive(f64::from(o.tau), "optimizer.tau")?;
    let fraction = f64::from(o.final_fraction);
    check(
        fraction.is_finite() && fraction > 0.0 && fraction <= 1.0,
        "optimizer.final_fraction",
        || format!("must be in (0, 1], got {fraction}"),
    )?;
    check(
        o.schedule == LrSchedule::Constant || o.decay_rounds >= 1,
        "optimizer.decay_rounds",
        || "must be at least 1 when the schedule decays".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config that passes validation; tests edit one line of it.
    pub(crate) const EXAMPLE: &str = include_str!("../examples/population.toml");

    /// The example's catalog file.
    fn example_catalog() -> Catalog {
        parse_catalog(include_str!("../examples/items.csv").as_bytes()).unwrap()
    }

    fn with(from: &str, to: &str) -> Result<PopulationConfig> {
        assert!(EXAMPLE.contains(from), "example lacks {from}");
        PopulationConfig::from_toml(&EXAMPLE.replace(from, to), example_catalog())
    }

    fn field_of(err: Error) -> &'static str {
        field_of_ref(&err)
    }

    fn field_of_ref(err: &Error) -> &'static str {
        match err {
            Error::ConfigInvalid { field, .. } => field,
            other => panic!("expected ConfigInvalid, got {other}"),
        }
    }

    #[test]
    fn example_config_is_valid() {
        let c = PopulationConfig::from_toml(EXAMPLE, example_catalog()).unwrap();
        assert_eq!(c.name(), "coffee-rewards");
        assert_eq!(c.parameters(), 400 * 16 + 400 + 64 * 16);
        assert_eq!(c.training().shape, c.model().shape());
        assert_eq!(c.training().threads, 1);
        assert_eq!(c.catalog().item(3).unwrap().category, "pastry");
        assert_eq!(c.optimizer().kind, OptimizerKind::Fedavg);
        assert_eq!(c.deadlines().stage_ms(secagg::Stage::Unmask), 30_000);
    }

    /// `config` as the database keeps it (canonical TOML and catalog CSV), read back.
    fn round_trip(config: &PopulationConfig) -> PopulationConfig {
        let catalog = parse_catalog(catalog_csv(config.catalog()).unwrap().as_bytes()).unwrap();
        PopulationConfig::from_toml(&config.to_toml().unwrap(), catalog).unwrap()
    }

    #[test]
    fn canonical_toml_round_trips() {
        let c = PopulationConfig::from_toml(EXAMPLE, example_catalog()).unwrap();
        let again = round_trip(&c);
        assert_eq!(c, again);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases = [
            (
                "name = \"coffee-rewards\"",
                "name = \"Coffee Rewards\"",
                "population.name",
            ),
            ("dim = 16", "dim = 0", "model.dim"),
            (
                "feature_rows = 64",
                "feature_rows = 0",
                "model.feature_rows",
            ),
            (
                "unobserved_weight = 1.0",
                "unobserved_weight = 0.0",
                "model.training",
            ),
            (
                "dim = 16\nfeature_rows = 64",
                "dim = 128\nfeature_rows = 1048576",
                "model.catalog",
            ),
            (
                "epsilon_budget = 8.0",
                "epsilon_budget = -1.0",
                "privacy.epsilon_budget",
            ),
            ("delta = 1e-6", "delta = 0.5", "privacy.delta"),
            ("bits = 20", "bits = 40", "privacy.bits"),
            ("cohort_max = 1000", "cohort_max = 10", "secagg.cohort_max"),
            (
                "cohort_max = 1000",
                "cohort_max = 1000\ncheck_in_max = 999",
                "secagg.check_in_max",
            ),
            ("cohort_min = 50", "cohort_min = 1", "secagg.cohort_min"),
            (
                "dropout_tolerance = 0.3",
                "dropout_tolerance = 1.5",
                "secagg.dropout_tolerance",
            ),
            ("unmask = 30", "unmask = 0", "deadlines.unmask"),
            (
                "max_per_day = 1",
                "max_per_day = 0",
                "eligibility.max_per_day",
            ),
            (
                "learning_rate = 1.0",
                "learning_rate = 0.0",
                "optimizer.learning_rate",
            ),
            (
                "learning_rate = 1.0",
                "learning_rate = 1.0\nschedule = \"linear\"",
                "optimizer.decay_rounds",
            ),
            (
                "learning_rate = 1.0",
                "learning_rate = 1.0\nfinal_fraction = 0.0",
                "optimizer.final_fraction",
            ),
            (
                "learning_rate = 1.0",
                "learning_rate = 1.0\nfinal_fraction = 1.5",
                "optimizer.final_fraction",
            ),
        ];
        for (from, to, field) in cases {
            assert_eq!(field_of(with(from, to).unwrap_err()), field, "{to}");
        }
    }

    #[test]
    fn a_learning_rate_schedule_is_read_and_kept() {
        let decaying = "learning_rate = 1.0\nschedule = \"cosine\"\ndecay_rounds = 20\n\
                        final_fraction = 0.25";
        let c = with("learning_rate = 1.0", decaying).unwrap();
        let o = c.optimizer();
        assert_eq!(
            (o.schedule, o.decay_rounds, o.final_fraction),
            (LrSchedule::Cosine, 20, 0.25)
        );
        let again = round_trip(&c);
        assert_eq!(again.optimizer(), o);
        // Files without the new keys keep a constant rate.
        let plain = PopulationConfig::from_toml(EXAMPLE, example_catalog()).unwrap();
        assert_eq!(plain.optimizer().schedule, LrSchedule::Constant);
        let err = with(
            "learning_rate = 1.0",
            "learning_rate = 1.0\nschedule = \"step\"",
        );
        assert!(err.unwrap_err().to_string().contains("step"));
    }

    /// The example with an `[privacy.adaptive_clip]` table of `body`.
    fn with_adaptive(body: &str) -> Result<PopulationConfig> {
        with(
            "accountant = \"rdp\"",
            &format!("accountant = \"rdp\"\n\n[privacy.adaptive_clip]\n{body}"),
        )
    }

    #[test]
    fn adaptive_clipping_is_read_kept_and_off_by_default() {
        let plain = PopulationConfig::from_toml(EXAMPLE, example_catalog()).unwrap();
        assert_eq!(plain.privacy().adaptive_clip, None);
        let c = with_adaptive("target_quantile = 0.7\ncount_stddev = 2.5").unwrap();
        let a = c.privacy().adaptive_clip.unwrap();
        assert_eq!(
            a.rule(),
            AdaptiveClipping {
                target_quantile: 0.7,
                learning_rate: 0.2,
                count_stddev: 2.5
            },
            "the paper's learning rate by default"
        );
        let again = round_trip(&c);
        assert_eq!(again, c);
    }

    #[test]
    fn bad_adaptive_clipping_settings_are_named() {
        let cases = [
            (
                "target_quantile = 0.0\ncount_stddev = 2.5",
                "privacy.adaptive_clip.target_quantile",
            ),
            (
                "target_quantile = 1.0\ncount_stddev = 2.5",
                "privacy.adaptive_clip.target_quantile",
            ),
            (
                "target_quantile = nan\ncount_stddev = 2.5",
                "privacy.adaptive_clip.target_quantile",
            ),
            (
                "target_quantile = 0.5\nlearning_rate = 0.0\ncount_stddev = 2.5",
                "privacy.adaptive_clip.learning_rate",
            ),
            (
                "target_quantile = 0.5\nlearning_rate = inf\ncount_stddev = 2.5",
                "privacy.adaptive_clip.learning_rate",
            ),
            (
                "target_quantile = 0.5\ncount_stddev = -1.0",
                "privacy.adaptive_clip.count_stddev",
            ),
            // noise_multiplier is 1: the count's noise must exceed half of it.
            (
                "target_quantile = 0.5\ncount_stddev = 0.5",
                "privacy.adaptive_clip.count_stddev",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(with_adaptive(body).unwrap_err()), field, "{body}");
        }
        let typo = with_adaptive("target_quantile = 0.5\ncount_stdev = 2.5").unwrap_err();
        assert!(matches!(typo, Error::ConfigSyntax(_)), "{typo}");
        assert!(typo.to_string().contains("count_stdev"), "{typo}");
    }

    #[test]
    fn pld_with_distributed_noise_is_refused() {
        let err = with("accountant = \"rdp\"", "accountant = \"pld\"").unwrap_err();
        assert_eq!(field_of(err), "privacy.accountant");
    }

    #[test]
    fn unknown_keys_and_bad_syntax_are_reported() {
        let err = with("[eligibility]", "[eligibility]\nmin_exmaples = 3").unwrap_err();
        assert!(err.to_string().contains("min_exmaples"), "{err}");
        let err = PopulationConfig::from_toml("[model\ndim = 3", example_catalog()).unwrap_err();
        assert!(matches!(err, Error::ConfigSyntax(_)), "{err}");
    }

    #[test]
    fn catalog_errors_name_the_setting_and_line() {
        let dup = parse_catalog("item_id,category,price\na,x,100\nb,y,200\na,z,300\n".as_bytes());
        let err = dup.unwrap_err();
        assert_eq!(field_of_ref(&err), "model.catalog");
        assert!(err.to_string().contains("line 4"), "{err}");
        assert!(parse_catalog("item_id,category\n".as_bytes()).is_err());
    }

    #[test]
    fn training_shape_must_come_from_the_model_section() {
        let err = with(
            "unobserved_weight = 1.0",
            "unobserved_weight = 1.0\nshape = { dim = 3, feature_rows = 9 }",
        )
        .unwrap_err();
        assert_eq!(field_of(err), "model.training");
    }

    #[test]
    fn load_reads_the_catalog_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("population.toml"), EXAMPLE).unwrap();
        let missing = PopulationConfig::load(&dir.path().join("population.toml")).unwrap_err();
        assert!(matches!(missing, Error::File { .. }), "{missing}");
        std::fs::write(
            dir.path().join("items.csv"),
            include_str!("../examples/items.csv"),
        )
        .unwrap();
        let c = PopulationConfig::load(&dir.path().join("population.toml")).unwrap();
        assert_eq!(c.catalog().len(), 400);
    }
}
