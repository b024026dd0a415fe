//! Covey's on-device recommender: implicit-feedback matrix factorization that trains on the
//! phone and contributes to a shared model only through a dense, fixed-shape delta.
//!
//! - [`GlobalModel`]: the server's item table, item biases and hashed feature table (cold
//!   start by category and price band) over a [`Catalog`]; versioned byte blobs.
//! - [`MemberHistory`]: loyalty events turned into per-item confidence ([`WeightConfig`]:
//!   purchase > redemption > visit > offer click > view, recency decay, repeats add up).
//! - [`solve_user`]: the private user vector in closed form (FedRecon; no state between rounds).
//! - [`Trainer::local_round`]: candle Var + backprop on the member's items, on a bounded
//!   thread pool; returns a [`Delta`] (gradient and curvature statistics) as long as the
//!   whole catalog requires whatever the history ([`UpdateLayout`]).
//! - [`cohort_step`]: turns a cohort's mean upload into the next item table (an approximate
//!   ALS half-step; the server and the centralized reference both use it).
//! - [`Recommender`]: top-k with exclusions and explanations; the global ranking when the
//!   member has not consented or has too little history ([`Basis`] says which).
//! - [`generate_population`], [`Dataset::from_csv`], [`run_evaluation`], [`evaluate_model`]:
//!   synthetic data, real logs, and the leave-last-out harness.
//!
//! ```
//! use covey_model::*;
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! # fn main() -> Result<()> {
//! let mut rng = ChaCha20Rng::seed_from_u64(7);
//! let config = ModelConfig { shape: ModelShape { dim: 8, feature_rows: 16 }, ..ModelConfig::default() };
//! let items = (0..50).map(|i| ItemInfo::new(format!("sku-{i}"))).collect();
//! let model = GlobalModel::init(Catalog::new(items)?, config.shape, &mut rng)?;
//! let events: Vec<WeightedEvent> = [3, 4, 9]
//!     .iter()
//!     .map(|&row| WeightedEvent { row, weight: 1.0, time_ms: 0, kind: None })
//!     .collect();
//! let history = MemberHistory::from_weighted(&events, &config.weights, 0);
//!
//! let round = Trainer::new(config.clone())?.local_round(&model, &history)?;
//! assert_eq!(round.delta.len(), UpdateLayout::of(model.layout()).len()); // the whole catalog
//! let step = cohort_step(&model, round.delta.as_slice(), 1.0, &config)?; // the server's part
//! let mut model = model;
//! model.apply_delta(&step, 1.0)?;
//!
//! let recs = Recommender::new(&model, Some(&history), &config)?.recommend(5, &RecommendFilter::default());
//! assert_eq!(recs.basis, Basis::Personalized);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catalog;
mod codec;
mod config;
mod dataset;
mod error;
mod eval;
#[doc(hidden)]
pub mod fixtures;
mod history;
mod local_state;
mod model;
mod recommend;
mod solve;
mod synth;
mod train;
mod update;

pub use catalog::{
    Catalog, ItemInfo, MAX_CATEGORY_LEN, MAX_ITEM_ID_LEN, MAX_ITEMS, PRICE_BANDS, price_band,
};
pub use config::{ModelConfig, ModelShape, WeightConfig};
pub use dataset::{Dataset, Interaction, read_catalog_csv, write_catalog_csv};
pub use error::{Error, Result};
pub use eval::{
    DatasetSummary, EvalConfig, EvalReport, K, Metrics, ModelResult, Split, evaluate_model,
    evaluate_popularity, run_evaluation, train_centralized,
};
pub use history::{ItemEvidence, MemberHistory, WeightedEvent};
pub use local_state::{LOCAL_STATE_FORMAT, LocalState};
pub use model::{GLOBAL_MODEL_FORMAT, GlobalModel, ParamLayout};
pub use recommend::{
    Basis, Contributor, Explanation, FallbackReason, RecommendFilter, Recommendation,
    Recommendations, Recommender,
};
pub use solve::{UserSolve, solve_user};
pub use synth::{
    SYNTHETIC_START_MS, SyntheticConfig, SyntheticPopulation, generate as generate_population,
};
pub use train::{Delta, LocalRound, Trainer};
pub use update::{UpdateLayout, cohort_step};
