//! One member's local training round: solve the private user vector, then train the global
//! parameters the member's data touches with candle (Var + backprop), and scatter the change
//! into a dense delta over the **whole** parameter vector.
//!
//! The objective is the solve's implicit-feedback loss with its unobserved part estimated by
//! uniformly sampled negatives, importance-weighted by `(n − |H|) / negatives` so the estimate
//! is unbiased; the user vector stays fixed during the round (FedRecon). Each epoch is one
//! batched forward/backward pass over all the epoch's rows (a handful of large ops, not one
//! op per item).
//!
//! Threads: candle's CPU matmul asks gemm for rayon parallelism sized by `RAYON_NUM_THREADS`
//! (or the core count) and gemm runs it with `into_par_iter` in the *current* rayon pool.
//! The trainer therefore owns a rayon pool of `ModelConfig::threads` threads (one by
//! default) and runs every step inside `pool.install`, so the work never reaches rayon's
//! global pool. candle also runs element-wise ops of 65,536 elements or more on a persistent
//! "barrier pool" of its own (sized by `CANDLE_NUM_THREADS`/`RAYON_NUM_THREADS`, default the
//! physical cores) that ignores rayon's pool, so a round keeps every tensor below that size:
//! it trains on at most [`max_positives`] history items (the most confident ones), and
//! [`ModelConfig::validate`] bounds `local_epochs × negatives × dim`. A test counts the
//! process's threads to hold both promises.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use rand_core::RngCore;

use crate::config::ModelConfig;
use crate::error::Result;
use crate::history::MemberHistory;
use crate::model::{GlobalModel, ParamLayout};
use crate::solve::{UserSolve, solve_user};

/// A dense change to the global parameters, laid out as [`ParamLayout`]. Its length depends
/// only on the model's shape and catalog, never on the member's data.
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

    /// Number of entries (= the model's parameter count).
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
    /// The dense delta (new − old parameters) to upload after clipping and noising.
    pub delta: Delta,
    /// The member's solved user vector (stays on the device).
    pub user: UserSolve,
    /// Training loss of the first and of the last epoch (before that epoch's step).
    pub loss_first: f32,
    /// See `loss_first`.
    pub loss_last: f32,
    /// Distinct history items trained on.
    pub positives: usize,
}

/// The rows of the global tables a round changes, with their new-minus-old values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SparseUpdate {
    pub(crate) item_rows: Vec<u32>,
    pub(crate) item_values: Vec<f32>,
    pub(crate) bias_values: Vec<f32>,
    pub(crate) feature_rows: Vec<u32>,
    pub(crate) feature_values: Vec<f32>,
}

impl SparseUpdate {
    /// Adds `scale ×` this update into a dense parameter-shaped buffer.
    pub(crate) fn add_into(&self, dense: &mut [f32], layout: ParamLayout, scale: f32) {
        let d = layout.dim;
        for (k, &row) in self.item_rows.iter().enumerate() {
            let row = row as usize;
            for (t, s) in dense[row * d..(row + 1) * d]
                .iter_mut()
                .zip(&self.item_values[k * d..(k + 1) * d])
            {
                *t += scale * s;
            }
            dense[layout.bias_offset() + row] += scale * self.bias_values[k];
        }
        let f0 = layout.feature_offset();
        for (k, &row) in self.feature_rows.iter().enumerate() {
            let row = row as usize;
            let dst = &mut dense[f0 + row * d..f0 + (row + 1) * d];
            for (t, s) in dst.iter_mut().zip(&self.feature_values[k * d..(k + 1) * d]) {
                *t += scale * s;
            }
        }
    }
}

/// The rows and weights of one round, drawn before any tensor work so that the round is a
/// pure function of (model, history, config, RNG state).
#[derive(Debug, Clone)]
pub(crate) struct RoundPlan {
    /// Sorted distinct item rows touched in any epoch.
    pub(crate) rows: Vec<u32>,
    /// Sorted distinct feature rows of those items.
    pub(crate) feature_rows: Vec<u32>,
    pub(crate) epochs: Vec<EpochPlan>,
}

#[derive(Debug, Clone)]
pub(crate) struct EpochPlan {
    /// Local row indices (into `RoundPlan::rows`): positives, then this epoch's negatives.
    pub(crate) select: Vec<u32>,
    /// Local feature-row indices of the selected rows: all category rows, then all
    /// price-band rows.
    pub(crate) feature_select: Vec<u32>,
    pub(crate) targets: Vec<f32>,
    pub(crate) weights: Vec<f32>,
}

pub(crate) fn plan_round(
    model: &GlobalModel,
    history: &MemberHistory,
    config: &ModelConfig,
    rng: &mut impl RngCore,
) -> RoundPlan {
    let n = model.catalog().len();
    let mut positives: Vec<(u32, f32)> = history
        .items()
        .iter()
        .map(|e| (e.row, e.confidence))
        .collect();
    let cap = max_positives(config);
    if positives.len() > cap {
        positives.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        positives.truncate(cap);
        positives.sort_by_key(|p| p.0);
    }
    let unobserved = n - positives.len().min(n);
    let neg_count = if unobserved == 0 { 0 } else { config.negatives };
    let neg_weight = config.unobserved_weight * unobserved as f32 / neg_count.max(1) as f32;
    let epoch_negatives: Vec<Vec<u32>> = (0..config.local_epochs)
        .map(|_| sample_negatives(history, n, neg_count, rng))
        .collect();
    let mut local: BTreeMap<u32, u32> = positives.iter().map(|&(r, _)| (r, 0)).collect();
    for &r in epoch_negatives.iter().flatten() {
        local.insert(r, 0);
    }
    for (i, slot) in local.values_mut().enumerate() {
        *slot = i as u32;
    }
    let rows: Vec<u32> = local.keys().copied().collect();
    let features = model.item_features();
    let mut feature_local: BTreeMap<u32, u32> = rows
        .iter()
        .flat_map(|&r| features[r as usize])
        .map(|f| (f, 0))
        .collect();
    for (i, slot) in feature_local.values_mut().enumerate() {
        *slot = i as u32;
    }
    let local_features: Vec<[u32; 2]> = rows
        .iter()
        .map(|&r| features[r as usize].map(|f| feature_local[&f]))
        .collect();
    let epochs = epoch_negatives
        .into_iter()
        .map(|negs| {
            let mut select: Vec<u32> = positives.iter().map(|(r, _)| local[r]).collect();
            let mut targets = vec![1.0f32; positives.len()];
            let mut weights: Vec<f32> = positives.iter().map(|&(_, c)| c).collect();
            select.extend(negs.iter().map(|r| local[r]));
            targets.resize(select.len(), 0.0);
            weights.resize(select.len(), neg_weight);
            let feature_select = (0..2)
                .flat_map(|k| select.iter().map(move |&l| (l, k)))
                .map(|(l, k)| local_features[l as usize][k])
                .collect();
            EpochPlan {
                select,
                feature_select,
                targets,
                weights,
            }
        })
        .collect();
    RoundPlan {
        rows,
        feature_rows: feature_local.into_keys().collect(),
        epochs,
    }
}

/// Largest tensor a round may build: below candle's threshold for its own thread pool.
pub(crate) const MAX_TENSOR_ELEMENTS: usize = 65_535;

/// How many history items one round trains on (its most confident ones): every touched row
/// times `dim` must stay below [`MAX_TENSOR_ELEMENTS`].
pub fn max_positives(config: &ModelConfig) -> usize {
    let rows = MAX_TENSOR_ELEMENTS / config.shape.dim.max(1);
    rows.saturating_sub(config.local_epochs * config.negatives)
}

/// `count` uniform draws (with replacement) from the items outside the history.
fn sample_negatives(
    history: &MemberHistory,
    n: usize,
    count: usize,
    rng: &mut impl RngCore,
) -> Vec<u32> {
    if count == 0 {
        return Vec::new();
    }
    // Rejection sampling is fast while the history is a small part of the catalog; past
    // half of it, draw from the explicit complement instead.
    if history.len() * 2 <= n {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let r = (rng.next_u64() % n as u64) as u32;
            if !history.contains(r) {
                out.push(r);
            }
        }
        out
    } else {
        let complement: Vec<u32> = (0..n as u32).filter(|r| !history.contains(*r)).collect();
        (0..count)
            .map(|_| complement[(rng.next_u64() % complement.len() as u64) as usize])
            .collect()
    }
}

/// Runs a planned round with candle and returns the sparse change and the epoch losses.
pub(crate) fn run_plan(
    model: &GlobalModel,
    user: &[f32],
    plan: &RoundPlan,
    config: &ModelConfig,
) -> Result<(SparseUpdate, Vec<f32>)> {
    let dev = Device::Cpu;
    let layout = model.layout();
    let d = layout.dim;
    let params = model.params();
    let q0: Vec<f32> = plan
        .rows
        .iter()
        .flat_map(|&r| &params[r as usize * d..(r as usize + 1) * d])
        .copied()
        .collect();
    let b0: Vec<f32> = plan
        .rows
        .iter()
        .map(|&r| params[layout.bias_offset() + r as usize])
        .collect();
    let f_off = layout.feature_offset();
    let f0: Vec<f32> = plan
        .feature_rows
        .iter()
        .flat_map(|&r| &params[f_off + r as usize * d..f_off + (r as usize + 1) * d])
        .copied()
        .collect();
    let m = plan.rows.len();
    let q = Var::from_tensor(&Tensor::from_slice(&q0, (m, d), &dev)?)?;
    let b = Var::from_tensor(&Tensor::from_slice(&b0, m, &dev)?)?;
    let f = Var::from_tensor(&Tensor::from_slice(
        &f0,
        (plan.feature_rows.len(), d),
        &dev,
    )?)?;
    let p = Tensor::from_slice(user, (1, d), &dev)?;
    let l2 = f64::from(config.l2_item);
    let mut losses = Vec::with_capacity(plan.epochs.len());
    for epoch in &plan.epochs {
        let k = epoch.select.len();
        let sel = Tensor::from_slice(&epoch.select, k, &dev)?;
        let y = Tensor::from_slice(&epoch.targets, k, &dev)?;
        let w = Tensor::from_slice(&epoch.weights, k, &dev)?;
        // v = q[sel] + f[cat[sel]] + f[price[sel]]
        let q_sel = q.as_tensor().index_select(&sel, 0)?;
        let fsel = Tensor::from_slice(&epoch.feature_select, 2 * k, &dev)?;
        let feats = f
            .as_tensor()
            .index_select(&fsel, 0)?
            .reshape((2, k, d))?
            .sum(0)?;
        let v = (&q_sel + feats)?;
        let s = (v.broadcast_mul(&p)?.sum(1)? + b.as_tensor().index_select(&sel, 0)?)?;
        let fit = (w * (s - y)?.sqr()?)?.sum_all()?;
        let reg = ((q_sel.sqr()?.sum_all()? + f.as_tensor().sqr()?.sum_all()?)? * l2)?;
        let loss = (fit + reg)?;
        losses.push(loss.to_scalar::<f32>()?);
        let grads = loss.backward()?;
        let steps = step_sizes(plan, epoch, config, user);
        let rates = [
            (&q, Tensor::from_vec(steps.rows, (m, 1), &dev)?),
            (&b, Tensor::from_vec(steps.biases, m, &dev)?),
            (
                &f,
                Tensor::from_vec(steps.features, (plan.feature_rows.len(), 1), &dev)?,
            ),
        ];
        for (var, rate) in rates {
            if let Some(g) = grads.get(var.as_tensor()) {
                var.set(&(var.as_tensor() - g.broadcast_mul(&rate)?)?)?;
            }
        }
    }
    let diff = |var: &Var, init: &[f32]| -> Result<Vec<f32>> {
        let now = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        Ok(now.iter().zip(init).map(|(a, b)| a - b).collect())
    };
    let update = SparseUpdate {
        item_rows: plan.rows.clone(),
        item_values: diff(&q, &q0)?,
        bias_values: diff(&b, &b0)?,
        feature_rows: plan.feature_rows.clone(),
        feature_values: diff(&f, &f0)?,
    };
    Ok((update, losses))
}

/// Per-row step sizes of one epoch: a diagonal preconditioner. The loss' curvature along an
/// item row is `2 ‖p‖² Σ w` (summed over the epoch's rows that use it), along its bias
/// `2 Σ w`, and along a feature row `2 ‖p‖² Σ w` over every selected item of that category
/// or price band. Plain SGD with one rate either crawls on rare rows or diverges on shared
/// feature rows and long user vectors; dividing each row's step by its curvature (when above
/// 1) makes `learning_rate` a fraction of a Newton step for every row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepSizes {
    pub(crate) rows: Vec<f32>,
    pub(crate) biases: Vec<f32>,
    pub(crate) features: Vec<f32>,
}

pub(crate) fn step_sizes(
    plan: &RoundPlan,
    epoch: &EpochPlan,
    config: &ModelConfig,
    user: &[f32],
) -> StepSizes {
    let norm2: f32 = user.iter().map(|x| x * x).sum();
    let mut row_w = vec![0.0f32; plan.rows.len()];
    let mut feature_w = vec![0.0f32; plan.feature_rows.len()];
    let k = epoch.select.len();
    for (i, (&local, &w)) in epoch.select.iter().zip(&epoch.weights).enumerate() {
        row_w[local as usize] += w;
        feature_w[epoch.feature_select[i] as usize] += w;
        feature_w[epoch.feature_select[k + i] as usize] += w;
    }
    let rate = |curvature: f32| config.learning_rate / curvature.max(1.0);
    StepSizes {
        rows: row_w.iter().map(|w| rate(2.0 * w * norm2)).collect(),
        biases: row_w.iter().map(|w| rate(2.0 * w)).collect(),
        features: feature_w.iter().map(|w| rate(2.0 * w * norm2)).collect(),
    }
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

    /// One member's local round: solve the user vector, train `local_epochs` epochs on the
    /// history's items plus sampled negatives, and return the dense delta over the whole
    /// parameter vector. Deterministic for a given RNG state.
    pub fn local_round(
        &self,
        model: &GlobalModel,
        history: &MemberHistory,
        rng: &mut (impl RngCore + Send),
    ) -> Result<LocalRound> {
        let (update, user, losses) = self.run(|| self.sparse_round(model, history, rng))?;
        let layout = model.layout();
        let mut dense = vec![0.0f32; layout.len()];
        update.add_into(&mut dense, layout, 1.0);
        Ok(LocalRound {
            delta: Delta(dense),
            user,
            loss_first: losses.first().copied().unwrap_or(0.0),
            loss_last: losses.last().copied().unwrap_or(0.0),
            positives: history.len(),
        })
    }

    /// The round's change as touched rows only: for in-process centralized training, never
    /// for upload (its shape reveals the member's items).
    pub(crate) fn sparse_round(
        &self,
        model: &GlobalModel,
        history: &MemberHistory,
        rng: &mut impl RngCore,
    ) -> Result<(SparseUpdate, UserSolve, Vec<f32>)> {
        let user = solve_user(model, history, &self.config)?;
        let plan = plan_round(model, history, &self.config, rng);
        let (update, losses) = run_plan(model, user.vector(), &plan, &self.config)?;
        Ok((update, user, losses))
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::catalog::{Catalog, ItemInfo};
    use crate::config::ModelShape;
    use crate::history::WeightedEvent;

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
        // Non-zero biases and features so every parameter group has a non-trivial gradient.
        let n = model.layout().len();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let shift: Vec<f32> = (0..n)
            .map(|_| crate::model::unit_f32(&mut rng) * 0.2 - 0.1)
            .collect();
        model.apply_delta(&shift, 1.0).unwrap();
        let events: Vec<WeightedEvent> = [2u32, 5, 9, 17, 23]
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
            local_epochs: 1,
            negatives: 6,
            l2_item: 0.1,
            learning_rate: 0.01,
            ..ModelConfig::default()
        };
        let history = MemberHistory::from_weighted(&events, &config.weights, 0);
        (model, history, config)
    }

    /// The epoch loss of `plan` at parameters `params`, in f64, written independently of
    /// the candle graph.
    fn loss(model: &GlobalModel, params: &[f64], user: &[f32], plan: &RoundPlan, l2: f64) -> f64 {
        let l = model.layout();
        let d = l.dim;
        let epoch = &plan.epochs[0];
        let row_of = |local: u32| plan.rows[local as usize] as usize;
        let feats = model.item_features();
        let mut total = 0.0;
        for (k, &local) in epoch.select.iter().enumerate() {
            let r = row_of(local);
            let [c, p] = feats[r];
            let mut s = params[l.bias_offset() + r];
            for j in 0..d {
                let v = params[r * d + j]
                    + params[l.feature_offset() + c as usize * d + j]
                    + params[l.feature_offset() + p as usize * d + j];
                s += v * f64::from(user[j]);
                total += l2 * params[r * d + j].powi(2);
            }
            total += f64::from(epoch.weights[k]) * (f64::from(epoch.targets[k]) - s).powi(2);
        }
        for &f in &plan.feature_rows {
            for j in 0..d {
                total += l2 * params[l.feature_offset() + f as usize * d + j].powi(2);
            }
        }
        total
    }

    #[test]
    fn one_epoch_delta_matches_finite_differences() {
        let (model, history, config) = fixture();
        let trainer = Trainer::new(config.clone()).unwrap();
        let round = trainer
            .local_round(&model, &history, &mut ChaCha20Rng::seed_from_u64(9))
            .unwrap();
        let plan = plan_round(
            &model,
            &history,
            &config,
            &mut ChaCha20Rng::seed_from_u64(9),
        );
        let user = round.user.vector();
        let steps = step_sizes(&plan, &plan.epochs[0], &config, user);
        let local_row = |row: usize| plan.rows.binary_search(&(row as u32)).ok();
        let local_feature = |row: usize| plan.feature_rows.binary_search(&(row as u32)).ok();
        let params: Vec<f64> = model.params().iter().map(|&x| f64::from(x)).collect();
        let l = model.layout();
        let h = 1e-4;
        let mut checked = 0;
        for (i, &delta) in round.delta.as_slice().iter().enumerate() {
            let mut plus = params.clone();
            plus[i] += h;
            let mut minus = params.clone();
            minus[i] -= h;
            let fd = (loss(&model, &plus, user, &plan, 0.1)
                - loss(&model, &minus, user, &plan, 0.1))
                / (2.0 * h);
            let d = l.dim;
            let lr = if i < l.bias_offset() {
                local_row(i / d).map(|r| steps.rows[r])
            } else if i < l.feature_offset() {
                local_row(i - l.bias_offset()).map(|r| steps.biases[r])
            } else {
                local_feature((i - l.feature_offset()) / d).map(|r| steps.features[r])
            };
            let Some(lr) = lr else {
                assert_eq!(delta, 0.0, "untouched parameter {i} changed");
                continue;
            };
            let from_delta = -f64::from(delta) / f64::from(lr);
            assert!(
                (fd - from_delta).abs() <= 2e-3 * (1.0 + fd.abs()),
                "parameter {i}: finite difference {fd}, delta implies {from_delta}"
            );
            checked += usize::from(fd.abs() > 1e-6);
        }
        // Every group (rows, biases, features) has non-zero gradients somewhere.
        assert!(checked > 5 * 4 + 5, "only {checked} non-zero gradients");
    }

    #[test]
    fn plan_is_deterministic_and_covers_positives_and_negatives() {
        let (model, history, config) = fixture();
        let config = ModelConfig {
            local_epochs: 3,
            ..config
        };
        let a = plan_round(
            &model,
            &history,
            &config,
            &mut ChaCha20Rng::seed_from_u64(1),
        );
        let b = plan_round(
            &model,
            &history,
            &config,
            &mut ChaCha20Rng::seed_from_u64(1),
        );
        assert_eq!(a.rows, b.rows);
        for e in &a.epochs {
            assert_eq!(e.select.len(), history.len() + config.negatives);
            let negatives = &e.select[history.len()..];
            assert!(
                negatives
                    .iter()
                    .all(|&l| !history.contains(a.rows[l as usize]))
            );
        }
    }
}
