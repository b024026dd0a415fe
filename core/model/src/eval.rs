//! The evaluation harness: chronological leave-last-out, full ranking over the catalog,
//! HR@10, NDCG@10 and catalog coverage@10, with the popularity baseline and the same MF
//! trained centrally measured in the same run.
//!
//! Split: each member's interactions are ordered by time. The test interaction is the
//! member's last purchase or redemption (any line of a weighted log): offer views and clicks
//! are the retailer's choice, not the member's, so they are training context only. With
//! `exclude_train_items` (the default) it is the last such interaction with an item the
//! member had not touched before (**last novel purchase**): an already-seen item could never
//! be a hit once training items are excluded, and loyalty logs repeat a lot. Training keeps the member's interactions before the test one;
//! members without a usable test item contribute all their interactions to training.
//! Recency decay is computed as of the test interaction's time (the moment the
//! recommendation would have been shown).

use std::collections::HashSet;
use std::time::Instant;

use covey_store::EventKind;
use rand_core::RngCore;
use serde::Serialize;

use crate::config::ModelConfig;
use crate::dataset::{Dataset, Interaction};
use crate::error::{Error, Result};
use crate::history::{MemberHistory, WeightedEvent};
use crate::model::GlobalModel;
use crate::recommend::{score_all, top_k};
use crate::solve::solve_user;
use crate::train::Trainer;
use crate::update::{UpdateLayout, cohort_step};

/// Cut-off of every metric.
pub const K: usize = 10;

/// Harness settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// The model and its local training.
    pub model: ModelConfig,
    /// Passes over all members in centralized training.
    pub epochs: usize,
    /// Members whose uploads are averaged into each centralized step (0 = all members).
    pub batch_members: usize,
    /// Leave each member's training items out of their ranking.
    pub exclude_train_items: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            model: ModelConfig::default(),
            epochs: 15,
            batch_members: 0,
            exclude_train_items: true,
        }
    }
}

/// A leave-last-out split.
#[derive(Debug, Clone)]
pub struct Split {
    /// Per member: their training history.
    pub histories: Vec<MemberHistory>,
    /// Per member: the held-out catalog row, if they have one.
    pub tests: Vec<Option<u32>>,
    /// Interactions used for training.
    pub train_interactions: usize,
    /// Whether rankings leave training items out.
    pub exclude_train_items: bool,
}

impl Split {
    /// Splits `dataset` (see the module docs).
    pub fn leave_last_out(dataset: &Dataset, config: &EvalConfig) -> Split {
        let mut histories = Vec::with_capacity(dataset.members);
        let mut tests = Vec::with_capacity(dataset.members);
        let mut train_interactions = 0;
        for (train, test) in member_splits(dataset, config.exclude_train_items) {
            train_interactions += train.len();
            let now = test.or(train.last().copied()).map_or(0, |i| i.time_ms);
            let weighted: Vec<WeightedEvent> = train
                .iter()
                .map(|i| WeightedEvent {
                    row: i.row,
                    weight: i.weight,
                    time_ms: i.time_ms,
                    kind: i.kind,
                })
                .collect();
            histories.push(MemberHistory::from_weighted(
                &weighted,
                &config.model.weights,
                now,
            ));
            tests.push(test.map(|i| i.row));
        }
        Split {
            histories,
            tests,
            train_interactions,
            exclude_train_items: config.exclude_train_items,
        }
    }

    /// The split's training and test interactions (to hand the same split to other tools).
    pub fn partition(&self, dataset: &Dataset) -> (Vec<Interaction>, Vec<Interaction>) {
        let mut train = Vec::new();
        let mut test = Vec::new();
        for (t, held_out) in member_splits(dataset, self.exclude_train_items) {
            train.extend(t.into_iter().copied());
            test.extend(held_out.copied());
        }
        (train, test)
    }

    /// Members with a held-out item.
    pub fn test_members(&self) -> usize {
        self.tests.iter().flatten().count()
    }
}

/// Per member: the time-ordered training interactions and the held-out one.
fn member_splits(
    dataset: &Dataset,
    novel_only: bool,
) -> Vec<(Vec<&Interaction>, Option<&Interaction>)> {
    let mut per_member: Vec<Vec<&Interaction>> = vec![Vec::new(); dataset.members];
    for i in &dataset.interactions {
        if let Some(list) = per_member.get_mut(i.member as usize) {
            list.push(i);
        }
    }
    per_member
        .into_iter()
        .map(|mut list| {
            list.sort_by_key(|i| i.time_ms);
            match test_index(&list, novel_only) {
                Some(j) => {
                    let test = list[j];
                    list.truncate(j);
                    (list, Some(test))
                }
                None => (list, None),
            }
        })
        .collect()
}

/// Index of the test interaction in a time-ordered list, if there is a usable one: the last
/// target (see [`is_target`]) that is novel when `novel_only`, with something before it.
fn test_index(list: &[&Interaction], novel_only: bool) -> Option<usize> {
    let mut seen = HashSet::new();
    let mut best = None;
    for (j, i) in list.iter().enumerate() {
        let novel = seen.insert(i.row);
        if j > 0 && is_target(i) && (novel || !novel_only) {
            best = Some(j);
        }
    }
    best
}

/// What a recommendation is judged on: purchases and redemptions (or any weighted log line).
/// Offer views and clicks are shown by the retailer, not chosen, so they stay training
/// context only.
fn is_target(i: &Interaction) -> bool {
    matches!(
        i.kind,
        None | Some(EventKind::Purchase | EventKind::Redemption)
    )
}

/// Ranking quality over the held-out items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Fraction of members whose held-out item is in their top 10.
    pub hr_at_10: f64,
    /// Mean NDCG@10 (one relevant item: `1 / log2(rank + 2)` on a hit).
    pub ndcg_at_10: f64,
    /// Distinct items in all top-10 lists over the catalog size.
    pub coverage_at_10: f64,
    /// Members evaluated.
    pub members: usize,
}

/// Accumulates metrics over members' top-10 lists.
struct MetricSum {
    hits: f64,
    ndcg: f64,
    members: usize,
    shown: HashSet<u32>,
}

impl MetricSum {
    fn new() -> Self {
        MetricSum {
            hits: 0.0,
            ndcg: 0.0,
            members: 0,
            shown: HashSet::new(),
        }
    }

    fn add(&mut self, top: &[u32], test: u32) {
        self.members += 1;
        self.shown.extend(top);
        if let Some(rank) = top.iter().position(|&r| r == test) {
            self.hits += 1.0;
            self.ndcg += 1.0 / ((rank + 2) as f64).log2();
        }
    }

    fn finish(self, items: usize) -> Metrics {
        let n = self.members.max(1) as f64;
        Metrics {
            hr_at_10: self.hits / n,
            ndcg_at_10: self.ndcg / n,
            coverage_at_10: self.shown.len() as f64 / items as f64,
            members: self.members,
        }
    }
}

/// Evaluates any global model on a split's held-out items, the way a device would rank:
/// personalized from the solved user vector when the training history has at least
/// `config.min_history_items` items, the model's global ranking otherwise. The fleet demo
/// uses this to score federated models against the centralized reference.
pub fn evaluate_model(model: &GlobalModel, split: &Split, config: &ModelConfig) -> Result<Metrics> {
    let mut sum = MetricSum::new();
    for (history, test) in split.histories.iter().zip(&split.tests) {
        let Some(test) = *test else { continue };
        let user = if history.len() >= config.min_history_items.max(1) {
            Some(solve_user(model, history, config)?)
        } else {
            None
        };
        let scores = score_all(model, user.as_ref().map(|u| u.vector()));
        let top = top_k(&scores, K, |r| {
            !(split.exclude_train_items && history.contains(r))
        });
        sum.add(&top, test);
    }
    Ok(sum.finish(model.catalog().len()))
}

/// Popularity baseline: items ranked by how many members touched them in training.
pub fn evaluate_popularity(split: &Split, items: usize) -> Metrics {
    let mut counts = vec![0.0f32; items];
    for h in &split.histories {
        for e in h.items() {
            if let Some(c) = counts.get_mut(e.row as usize) {
                *c += 1.0;
            }
        }
    }
    let mut sum = MetricSum::new();
    for (history, test) in split.histories.iter().zip(&split.tests) {
        let Some(test) = *test else { continue };
        let top = top_k(&counts, K, |r| {
            !(split.exclude_train_items && history.contains(r))
        });
        sum.add(&top, test);
    }
    sum.finish(items)
}

/// Trains the model centrally on every member's training history with exactly the
/// federated round: every member computes the upload a device would, the mean over
/// `batch_members` members (0 = all, the default: every member in every step) goes through
/// [`cohort_step`], `epochs` times. This is a full-participation federated run without
/// clipping or noise: the reference federated training is measured against.
pub fn train_centralized(
    dataset: &Dataset,
    split: &Split,
    config: &EvalConfig,
    rng: &mut (impl RngCore + Send),
) -> Result<GlobalModel> {
    if config.epochs == 0 {
        return Err(crate::error::config("epochs", "must be positive"));
    }
    let trainer = Trainer::new(config.model.clone())?;
    let mut model = GlobalModel::init(dataset.catalog.clone(), config.model.shape, rng)?;
    let active: Vec<usize> = (0..split.histories.len())
        .filter(|&m| !split.histories[m].is_empty())
        .collect();
    let batch = match config.batch_members {
        0 => active.len().max(1),
        b => b,
    };
    trainer.run(|| {
        let layout = UpdateLayout::of(model.layout());
        let mut mean = vec![0.0f32; layout.len()];
        for _ in 0..config.epochs {
            let order = shuffled(&active, rng);
            for members in order.chunks(batch) {
                mean.iter_mut().for_each(|x| *x = 0.0);
                let scale = 1.0 / members.len() as f32;
                for &m in members {
                    let (update, _) = trainer.member_update(&model, &split.histories[m])?;
                    update.add_into(&mut mean, layout, scale);
                }
                let step = cohort_step(&model, &mean, members.len() as f64, &config.model)?;
                model.apply_delta(&step, 1.0)?;
            }
        }
        Ok::<_, Error>(())
    })?;
    Ok(model)
}

fn shuffled(items: &[usize], rng: &mut impl RngCore) -> Vec<usize> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Dataset counts reported with the results.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    /// Members.
    pub members: usize,
    /// Catalog items.
    pub items: usize,
    /// All interactions.
    pub interactions: usize,
    /// Interactions used for training.
    pub train_interactions: usize,
    /// Members with a held-out item.
    pub test_members: usize,
    /// Whether rankings exclude training items.
    pub exclude_train_items: bool,
}

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// `popularity` or `mf_centralized`.
    pub model: String,
    /// HR@10.
    pub hr_at_10: f64,
    /// NDCG@10.
    pub ndcg_at_10: f64,
    /// Coverage@10.
    pub coverage_at_10: f64,
    /// Wall-clock training time.
    pub train_seconds: f64,
}

impl ModelResult {
    fn new(model: &str, m: Metrics, train_seconds: f64) -> Self {
        ModelResult {
            model: model.to_string(),
            hr_at_10: m.hr_at_10,
            ndcg_at_10: m.ndcg_at_10,
            coverage_at_10: m.coverage_at_10,
            train_seconds,
        }
    }
}

/// A full evaluation run.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Dataset counts.
    pub dataset: DatasetSummary,
    /// Results, baselines first.
    pub results: Vec<ModelResult>,
}

/// Splits, trains and evaluates the popularity baseline and centralized MF on one dataset.
pub fn run_evaluation(
    dataset: &Dataset,
    config: &EvalConfig,
    rng: &mut (impl RngCore + Send),
) -> Result<EvalReport> {
    config.model.validate()?;
    let split = Split::leave_last_out(dataset, config);
    if split.test_members() == 0 {
        return Err(Error::Dataset("no member has a held-out interaction"));
    }
    let items = dataset.catalog.len();
    let t0 = Instant::now();
    let popularity = evaluate_popularity(&split, items);
    let pop_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let model = train_centralized(dataset, &split, config, rng)?;
    let mf_seconds = t1.elapsed().as_secs_f64();
    let mf = evaluate_model(&model, &split, &config.model)?;
    Ok(EvalReport {
        dataset: DatasetSummary {
            members: dataset.members,
            items,
            interactions: dataset.interactions.len(),
            train_interactions: split.train_interactions,
            test_members: split.test_members(),
            exclude_train_items: split.exclude_train_items,
        },
        results: vec![
            ModelResult::new("popularity", popularity, pop_seconds),
            ModelResult::new("mf_centralized", mf, mf_seconds),
        ],
    })
}
