//! One member's local round: solve the private user vector in closed form, then compute
//! the member's dense upload ([`UpdateLayout`]): the gradient of their observed terms with
//! candle (`Var` + backprop over their history's rows), curvature scalars and the outer
//! products the server needs for its approximate ALS step (see [`cohort_step`]). The upload
//! is scattered over the **whole** catalog: its length never depends on the member's data.
//!
//! A round draws nothing at random: the unobserved part of the objective (every item the
//! member did not touch) is computed exactly by the server from the cohort's Gramian, so no
//! negatives are sampled (sampling them cost 40 % of NDCG@10 on MovieLens, see
//! [`cohort_step`]).
//!
//! Threads: candle's CPU matmul asks gemm for rayon parallelism sized by `RAYON_NUM_THREADS`
//! (or the core count) and gemm runs it with `into_par_iter` in the *current* rayon pool.
//! The trainer therefore owns a rayon pool of `ModelConfig::threads` threads (one by
//! default) and runs every step inside `pool.install`, so the work never reaches rayon's
//! global pool. candle also runs element-wise ops of 65,536 elements or more on a persistent
//! "barrier pool" of its own (sized by `CANDLE_NUM_THREADS`/`RAYON_NUM_THREADS`, default the
//! physical cores) that ignores rayon's pool, so a round differentiates the history in
//! chunks whose tensors stay below that size. A test counts the process's threads to hold
//! both promises.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::history::MemberHistory;
use crate::model::GlobalModel;
use crate::solve::{UserSolve, solve_user};
#[cfg(doc)]
use crate::update::cohort_step;
use crate::update::{MemberUpdate, UpdateLayout, member_update};

/// A member's dense upload, laid out as [`UpdateLayout`]. Its length depends only on the
/// model's catalog size and dimension, never on the member's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta(Vec<f32>);

impl Delta {
    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The values, by move (for the DP encoder).
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }

    /// Number of entries (= [`UpdateLayout::len`]).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a valid model.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Euclidean norm (what DP clipping bounds).
    pub fn l2_norm(&self) -> f32 {
        self.0
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt() as f32
    }
}

/// What a local round produced.
#[derive(Debug, Clone)]
pub struct LocalRound {
    /// The dense upload to clip, noise and securely aggregate.
    pub delta: Delta,
    /// The member's solved user vector (stays on the device).
    pub user: UserSolve,
    /// The member's objective at the current model and their solved vector:
    /// `Σ_{i∈H} c_i (1 − s_i)² + w₀ Σ_{j∉H} s_j² + λ_u ‖x‖²`.
    pub loss: f64,
    /// Distinct history items.
    pub positives: usize,
}

/// Runs local rounds on a bounded thread pool.
#[derive(Debug)]
pub struct Trainer {
    config: ModelConfig,
    pool: rayon::ThreadPool,
}

impl Trainer {
    /// A trainer with `config.threads` threads (validated).
    pub fn new(config: ModelConfig) -> Result<Self> {
        config.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("covey-train-{i}"))
            .build()?;
        Ok(Trainer { config, pool })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs `f` on the trainer's pool (every tensor op inside stays on its threads).
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }

    /// One member's local round: solve the user vector and return the dense upload over the
    /// whole catalog. A pure function of (model, history, configuration).
    pub fn local_round(&self, model: &GlobalModel, history: &MemberHistory) -> Result<LocalRound> {
        let (update, user) = self.run(|| self.member_update(model, history))?;
        let layout = UpdateLayout::of(model.layout());
        let mut dense = vec![0.0f32; layout.len()];
        update.add_into(&mut dense, layout, 1.0);
        let loss = member_loss(model, &update, &user, &self.config);
        Ok(LocalRound {
            delta: Delta(dense),
            user,
            loss,
            positives: history.len(),
        })
    }

    /// The round's contribution over the history's rows only: for in-process centralized
    /// training, never for upload (its shape reveals the member's items).
    pub(crate) fn member_update(
        &self,
        model: &GlobalModel,
        history: &MemberHistory,
    ) -> Result<(MemberUpdate, UserSolve)> {
        let user = solve_user(model, history, &self.config)?;
        let update = member_update(model, history, user.vector(), &self.config)?;
        Ok((update, user))
    }
}

/// The member's whole objective: the observed terms candle evaluated plus `w₀` times the
/// sum of every item's squared score (from the model's cached Gramian, O(d² + n)).
fn member_loss(
    model: &GlobalModel,
    update: &MemberUpdate,
    user: &UserSolve,
    config: &ModelConfig,
) -> f64 {
    let x: Vec<f64> = user.vector().iter().map(|&v| f64::from(v)).collect();
    let d = x.len();
    let derived = model.derived();
    let mut all = 0.0;
    for i in 0..d {
        all += 2.0 * x[i] * derived.bias_projection[i];
        for j in 0..d {
            all += x[i] * derived.gramian[i * d + j] * x[j];
        }
    }
    all += model
        .item_bias()
        .iter()
        .map(|b| f64::from(*b).powi(2))
        .sum::<f64>();
    let ridge = f64::from(config.l2_user) * x.iter().map(|v| v * v).sum::<f64>();
    f64::from(update.observed_loss) + f64::from(config.unobserved_weight) * all + ridge
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::catalog::{Catalog, ItemInfo};
    use crate::config::ModelShape;
    use crate::history::WeightedEvent;
    use crate::update::cohort_step;

    const HISTORY: [u32; 5] = [2, 5, 9, 17, 23];

    fn fixture() -> (GlobalModel, MemberHistory, ModelConfig) {
        let items: Vec<ItemInfo> = (0..30)
            .map(|i| ItemInfo {
                category: format!("c{}", i % 4),
                price_band: Some((i % 3) as u8),
                ..ItemInfo::new(format!("sku-{i}"))
            })
            .collect();
        let shape = ModelShape {
            dim: 4,
            feature_rows: 8,
        };
        let mut model = GlobalModel::init(
            Catalog::new(items).unwrap(),
            shape,
            &mut ChaCha20Rng::seed_from_u64(3),
        )
        .unwrap();
        // Non-zero biases and features so every parameter group matters.
        let n = model.layout().len();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let shift: Vec<f32> = (0..n)
            .map(|_| crate::model::unit_f32(&mut rng) * 0.2 - 0.1)
            .collect();
        model.apply_delta(&shift, 1.0).unwrap();
        let events: Vec<WeightedEvent> = HISTORY
            .iter()
            .map(|&row| WeightedEvent {
                row,
                weight: 1.0 + row as f32 / 10.0,
                time_ms: 0,
                kind: None,
            })
            .collect();
        let config = ModelConfig {
            shape,
            l2_item: 0.1,
            ..ModelConfig::default()
        };
        let history = MemberHistory::from_weighted(&events, &config.weights, 0);
        (model, history, config)
    }

    /// `Σ_{i∈H} [c (1 − s)² − w₀ s²]` at parameters `params` for a fixed user vector, in
    /// f64, written independently of candle.
    fn observed_loss(
        model: &GlobalModel,
        params: &[f64],
        user: &[f32],
        history: &MemberHistory,
        w0: f64,
    ) -> f64 {
        let l = model.layout();
        let d = l.dim;
        let feats = model.item_features();
        history
            .items()
            .iter()
            .map(|e| {
                let r = e.row as usize;
                let [c, p] = feats[r];
                let mut s = params[l.bias_offset() + r];
                for j in 0..d {
                    let v = params[r * d + j]
                        + params[l.feature_offset() + c as usize * d + j]
                        + params[l.feature_offset() + p as usize * d + j];
                    s += v * f64::from(user[j]);
                }
                let c = f64::from(e.confidence);
                c * (1.0 - s).powi(2) - w0 * s * s
            })
            .sum()
    }

    #[test]
    fn upload_gradient_matches_finite_differences() {
        let (model, history, config) = fixture();
        let round = Trainer::new(config.clone())
            .unwrap()
            .local_round(&model, &history)
            .unwrap();
        let user = round.user.vector();
        let params: Vec<f64> = model.params().iter().map(|&x| f64::from(x)).collect();
        let l = model.layout();
        let u = UpdateLayout::of(l);
        let (d, w) = (l.dim, u.row_width());
        let w0 = f64::from(config.unobserved_weight);
        let up = round.delta.as_slice();
        let h = 1e-4;
        let fd = |i: usize| {
            let mut plus = params.clone();
            plus[i] += h;
            let mut minus = params.clone();
            minus[i] -= h;
            (observed_loss(&model, &plus, user, &history, w0)
                - observed_loss(&model, &minus, user, &history, w0))
                / (2.0 * h)
        };
        let close = |a: f64, b: f64| (a - b).abs() <= 2e-3 * (1.0 + b.abs());
        let mut checked = 0;
        for row in 0..l.items {
            let slots = (0..d).map(|k| row * d + k).chain([l.bias_offset() + row]);
            for (k, i) in slots.enumerate() {
                let got = f64::from(up[row * w + k]);
                let want = fd(i);
                assert!(
                    close(got, want),
                    "row {row} slot {k}: upload {got}, finite difference {want}"
                );
                checked += usize::from(want.abs() > 1e-6);
            }
            let touched = history.contains(row as u32);
            assert_eq!(up[u.curvature_offset() + row] != 0.0, touched, "row {row}");
        }
        assert!(
            checked >= HISTORY.len() * w,
            "only {checked} non-zero gradients"
        );
        // Curvature and outer product, against their formulas.
        let a: Vec<f64> = user.iter().map(|&x| f64::from(x)).chain([1.0]).collect();
        let norm2: f64 = a.iter().map(|x| x * x).sum();
        for e in history.items() {
            let want = (f64::from(e.confidence) - w0) * norm2;
            assert!(close(
                f64::from(up[u.curvature_offset() + e.row as usize]),
                want
            ));
        }
        let mut t = 0;
        for i in 0..w {
            for j in i..w {
                assert!(close(f64::from(up[u.gramian_offset() + t]), a[i] * a[j]));
                t += 1;
            }
        }
        assert_eq!(up.len(), u.len());
    }

    #[test]
    fn one_members_cohort_step_is_the_exact_item_solve() {
        // With a single member the observed curvature is rank one along a = [x; 1], which is
        // exactly what Ĥ = G / tr G holds: the step must reach the minimum of every item's
        // objective for the member's (fixed) vector.
        let (model, history, config) = fixture();
        let round = Trainer::new(config.clone())
            .unwrap()
            .local_round(&model, &history)
            .unwrap();
        let config = ModelConfig {
            item_step: 1.0,
            ..config
        };
        let delta = cohort_step(&model, round.delta.as_slice(), 1.0, &config).unwrap();
        let mut next = model.clone();
        next.apply_delta(&delta, 1.0).unwrap();
        let a: Vec<f64> = round
            .user
            .vector()
            .iter()
            .map(|&x| f64::from(x))
            .chain([1.0])
            .collect();
        let w0 = f64::from(config.unobserved_weight);
        let lambda = f64::from(config.l2_item);
        for row in 0..next.catalog().len() as u32 {
            let theta: Vec<f64> = next
                .item_vector(row)
                .unwrap()
                .iter()
                .map(|&x| f64::from(x))
                .chain([f64::from(next.item_bias()[row as usize])])
                .collect();
            let s: f64 = theta.iter().zip(&a).map(|(t, a)| t * a).sum();
            let (c, y) = match history.items().iter().find(|e| e.row == row) {
                Some(e) => (f64::from(e.confidence), 1.0),
                None => (w0, 0.0),
            };
            for (t, a) in theta.iter().zip(&a) {
                let g = c * (s - y) * a + lambda * t;
                assert!(g.abs() < 1e-4, "row {row}: gradient {g} after the step");
            }
        }
    }

    #[test]
    fn bad_aggregates_are_refused() {
        let (model, history, config) = fixture();
        let round = Trainer::new(config.clone())
            .unwrap()
            .local_round(&model, &history)
            .unwrap();
        let up = round.delta.as_slice();
        assert!(cohort_step(&model, &up[1..], 1.0, &config).is_err());
        let mut nan = up.to_vec();
        nan[3] = f32::NAN;
        assert!(cohort_step(&model, &nan, 1.0, &config).is_err());
        assert!(cohort_step(&model, up, 0.0, &config).is_err());
    }
}
