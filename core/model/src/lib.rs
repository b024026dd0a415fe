//! Covey's on-device recommender.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod catalog;
mod codec;
mod config;
mod dataset;
mod error;
mod eval;
mod history;
mod local_state;
mod model;
mod recommend;
mod solve;
mod synth;
mod train;

pub use catalog::{
    Catalog, ItemInfo, MAX_CATEGORY_LEN, MAX_ITEM_ID_LEN, MAX_ITEMS, PRICE_BANDS, price_band,
};
pub use config::{ModelConfig, ModelShape, WeightConfig};
pub use dataset::{Dataset, Interaction};
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
pub use train::{Delta, LocalRound, Trainer, max_positives};
