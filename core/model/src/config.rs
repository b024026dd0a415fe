//! Model, weighting and training configuration (serde, so a round plan can carry it).

use covey_store::EventKind;
use serde::{Deserialize, Serialize};

use crate::error::{Result, config};

/// Shape of the global model: what the server publishes and every member must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// Embedding dimension d.
    pub dim: usize,
    /// Rows of the hashed item-feature table (category and price band share it).
    pub feature_rows: usize,
}

impl Default for ModelShape {
    fn default() -> Self {
        ModelShape {
            dim: 32,
            feature_rows: 256,
        }
    }
}

impl ModelShape {
    /// Largest accepted embedding dimension.
    pub const MAX_DIM: usize = 512;
    /// Largest accepted hashed feature table.
    pub const MAX_FEATURE_ROWS: usize = 1 << 20;

    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > Self::MAX_DIM {
            return Err(config("dim", "must be in 1..=512"));
        }
        if self.feature_rows == 0 || self.feature_rows > Self::MAX_FEATURE_ROWS {
            return Err(config("feature_rows", "must be in 1..=1048576"));
        }
        Ok(())
    }
}

/// How loyalty events turn into implicit-feedback confidence.
///
/// An item's raw weight is the sum over the member's events for it of
/// `kind weight × 0.5^(age / half_life)`; repeat purchases therefore add up. The confidence the
/// model uses is `1 + alpha · ln(1 + raw / epsilon)` (Hu, Koren & Volinsky's log scaling), so a
/// member who bought the same coffee 200 times does not drown out everything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeightConfig {
    /// Weight of one purchase.
    pub purchase: f32,
    /// Weight of one redemption.
    pub redemption: f32,
    /// Weight of one store visit that names an item (visits without an item carry no item
    /// evidence and are ignored).
    pub visit: f32,
    /// Weight of one offer click.
    pub offer_click: f32,
    /// Weight of one offer view.
    pub offer_view: f32,
    /// Recency half-life in days; `0` disables decay.
    pub half_life_days: f32,
    /// Confidence scale alpha.
    pub alpha: f32,
    /// Confidence log-scaling epsilon.
    pub epsilon: f32,
}

impl Default for WeightConfig {
    fn default() -> Self {
        WeightConfig {
            purchase: 1.0,
            redemption: 0.7,
            visit: 0.4,
            offer_click: 0.25,
            offer_view: 0.05,
            half_life_days: 180.0,
            alpha: 4.0,
            epsilon: 1.0,
        }
    }
}

impl WeightConfig {
    /// Weight of one event of `kind`.
    pub fn kind_weight(&self, kind: EventKind) -> f32 {
        match kind {
            EventKind::Purchase => self.purchase,
            EventKind::Redemption => self.redemption,
            EventKind::Visit => self.visit,
            EventKind::OfferClick => self.offer_click,
            EventKind::OfferView => self.offer_view,
        }
    }

    /// Recency factor of an event `age_ms` old (future events count as new).
    pub fn decay(&self, age_ms: i64) -> f32 {
        if self.half_life_days <= 0.0 {
            return 1.0;
        }
        let age_days = age_ms.max(0) as f64 / 86_400_000.0;
        0.5f64.powf(age_days / f64::from(self.half_life_days)) as f32
    }

    /// Confidence of an item with accumulated raw weight `raw`.
    pub fn confidence(&self, raw: f32) -> f32 {
        1.0 + self.alpha * (1.0 + raw.max(0.0) / self.epsilon).ln()
    }

    /// Checks the bounds (weights non-negative and finite, alpha and epsilon positive).
    pub fn validate(&self) -> Result<()> {
        let weights = [
            self.purchase,
            self.redemption,
            self.visit,
            self.offer_click,
            self.offer_view,
        ];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(config("weights", "must be finite and non-negative"));
        }
        if !self.half_life_days.is_finite() || self.half_life_days < 0.0 {
            return Err(config("half_life_days", "must be finite and non-negative"));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(config("alpha", "must be positive"));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(config("epsilon", "must be positive"));
        }
        Ok(())
    }
}

/// Hyper-parameters of the objective, the member's solve and the item step.
///
/// The objective is implicit-feedback weighted least squares (iALS, Hu, Koren & Volinsky):
/// every item the member touched has target 1 with its confidence, every other item target
/// 0 with weight `unobserved_weight`; ridge penalties on the user vector and on every item's
/// effective vector and bias. The user vector minimises it exactly (closed form, using the
/// whole catalog through the item Gramian); the item table moves by an approximate ALS step
/// computed from the cohort's summed uploads ([`crate::cohort_step`]). The defaults are
/// `implicit`'s ALS weighting (unobserved weight 1, ridge 0.05, confidence `1 + 4 ln(1 + w)`):
/// covey's earlier weighting (0.05, user ridge 1) made a purchase ~75× a non-purchase and
/// ranked below popularity on public data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Model shape (must match the global model it is used with).
    pub shape: ModelShape,
    /// How events become confidence.
    pub weights: WeightConfig,
    /// Weight of every unobserved (member, item) pair.
    pub unobserved_weight: f32,
    /// Ridge penalty on the user vector.
    pub l2_user: f32,
    /// Ridge penalty on every item's effective vector and bias (per cohort step).
    pub l2_item: f32,
    /// Fraction of the approximate ALS item step a cohort step takes, in (0, 1]. The
    /// approximation under-estimates an item's curvature along its own buyers' direction, so
    /// the whole step overshoots and alternates (numpy prototype, synthetic split, rounds
    /// 13–17: NDCG@10 swinging 0.141 ↔ 0.166); 0.8 settles at 0.180–0.186, 0.65 at
    /// 0.190–0.192 (MovieLens 0.0364–0.0374, exact ALS 0.0373), 0.5 at 0.195–0.197.
    pub item_step: f32,
    /// Minimum number of distinct items in a member's history before recommendations are
    /// personalized; below it the global ranking is used.
    pub min_history_items: usize,
    /// Threads the training step may use (1 = the calling work runs on one pool thread).
    pub threads: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            shape: ModelShape::default(),
            weights: WeightConfig::default(),
            unobserved_weight: 1.0,
            l2_user: 0.05,
            l2_item: 0.05,
            item_step: 0.65,
            min_history_items: 3,
            threads: 1,
        }
    }
}

impl ModelConfig {
    /// Checks every bound.
    pub fn validate(&self) -> Result<()> {
        self.shape.validate()?;
        self.weights.validate()?;
        let positive = |v: f32| v.is_finite() && v > 0.0;
        let non_negative = |v: f32| v.is_finite() && v >= 0.0;
        if !positive(self.unobserved_weight) {
            return Err(config("unobserved_weight", "must be positive"));
        }
        if !positive(self.l2_user) {
            return Err(config("l2_user", "must be positive"));
        }
        if !non_negative(self.l2_item) {
            return Err(config("l2_item", "must be finite and non-negative"));
        }
        if !(positive(self.item_step) && self.item_step <= 1.0) {
            return Err(config("item_step", "must be in (0, 1]"));
        }
        if self.threads == 0 || self.threads > 256 {
            return Err(config("threads", "must be in 1..=256"));
        }
        Ok(())
    }
}
