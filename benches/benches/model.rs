//! One member's local round (closed-form user solve + dense upload) against the arithmetic
//! floor measured in the same run.
//!
//! Case (issue 4): 1,000 loyalty events (purchases with repeats, some views and clicks), a
//! 10,000-item catalog, d = 32. The round solves the user vector, differentiates the
//! member's observed terms with candle and scatters gradient, curvature and outer products
//! into the dense upload (`covey_model::UpdateLayout`, 340,561 values); no negatives are
//! sampled (the server computes the unobserved term from the cohort's Gramian).
//!
//! - `model_round/covey/{fresh,warm}`: `Trainer::local_round` (candle Var + backprop on one
//!   pool thread). `fresh` starts from a just-downloaded model, so it includes building the
//!   catalog Gramian (O(n·d²)) that every round after a model update pays once; `warm` has it
//!   cached (the per-member cost).
//! - `model_round/floor/{fresh,warm}`: a minimal hand-written f32 loop computing the *same*
//!   upload (same solve, gradient, curvature and outer products; checked equal before timing): the
//!   arithmetic floor with no autograd, no tensors, no allocation beyond the output.
//! - After criterion: a ratio table with peak heap bytes of each path (counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use covey_benches::median_seconds_batched;
use covey_model::{
    Catalog, GlobalModel, ItemInfo, MemberHistory, ModelConfig, ModelShape, SYNTHETIC_START_MS,
    Trainer, UpdateLayout, solve_user,
};
use covey_store::{Channel, EventKind, LoyaltyEvent};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Counts live and peak heap bytes so the table can report each path's peak memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth while running `f` on a prepared input.
fn peak_bytes<S>(input: S, f: impl FnOnce(S)) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f(input);
    PEAK.load(Ordering::Relaxed) - base
}

const ITEMS: usize = 10_000;
const EVENTS: usize = 1_000;

struct Case {
    model: GlobalModel,
    history: MemberHistory,
    config: ModelConfig,
}

impl Case {
    fn new() -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let items: Vec<ItemInfo> = (0..ITEMS)
            .map(|i| ItemInfo {
                category: format!("cat-{}", i % 40),
                price_band: Some((i % 7) as u8),
                ..ItemInfo::new(format!("sku-{i:05}"))
            })
            .collect();
        let shape = ModelShape {
            dim: 32,
            feature_rows: 256,
        };
        let mut model = GlobalModel::init(Catalog::new(items).expect("catalog"), shape, &mut rng)
            .expect("model");
        // A trained-looking model: non-zero biases and feature rows.
        let shift: Vec<f32> = (0..model.layout().len())
            .map(|_| (rng.next_u32() % 200) as f32 / 1000.0 - 0.1)
            .collect();
        model.apply_delta(&shift, 1.0).expect("finite");
        // 1k events over ~350 distinct items (Zipf-like repeats), 15% views and clicks.
        let events: Vec<LoyaltyEvent> = (0..EVENTS)
            .map(|e| {
                let u = (rng.next_u32() as f64 / u32::MAX as f64).max(1e-9);
                let item = ((u.powf(3.0) * 2000.0) as usize * 5) % ITEMS;
                let kind = match e % 20 {
                    0 | 1 => EventKind::OfferView,
                    2 => EventKind::OfferClick,
                    3 => EventKind::Redemption,
                    _ => EventKind::Purchase,
                };
                let counted = matches!(kind, EventKind::Purchase | EventKind::Redemption);
                LoyaltyEvent {
                    kind,
                    item_id: format!("sku-{item:05}"),
                    category: String::new(),
                    quantity: u32::from(counted),
                    amount_minor: 0,
                    currency: String::new(),
                    store_id: String::new(),
                    channel: Channel::InStore,
                    time_ms: SYNTHETIC_START_MS + e as i64 * 3_600_000,
                }
            })
            .collect();
        let config = ModelConfig {
            shape,
            ..ModelConfig::default()
        };
        let now = SYNTHETIC_START_MS + EVENTS as i64 * 3_600_000;
        let history = MemberHistory::from_events(model.catalog(), &events, &config.weights, now);
        Case {
            model,
            history,
            config,
        }
    }

    /// A copy as just downloaded (no cached Gramian).
    fn fresh(&self) -> GlobalModel {
        self.model.clone()
    }

    /// A copy with the Gramian already built.
    fn warm(&self) -> GlobalModel {
        let m = self.model.clone();
        solve_user(&m, &self.history, &self.config).expect("solve");
        m
    }
}

fn covey_round(trainer: &Trainer, model: &GlobalModel, history: &MemberHistory) -> Vec<f32> {
    trainer
        .local_round(model, history)
        .expect("round")
        .delta
        .into_vec()
}

/// The floor's cached per-model quantities: effective item vectors, Gramian, Σ b v.
struct FloorCache {
    vectors: Vec<f32>,
    gramian: Vec<f64>,
    bias_projection: Vec<f64>,
}

fn floor_cache(model: &GlobalModel) -> FloorCache {
    let l = model.layout();
    let d = l.dim;
    let p = model.params();
    let mut vectors = p[..l.bias_offset()].to_vec();
    for (row, [c, f]) in model.item_features().iter().enumerate() {
        let (c, f) = (
            l.feature_offset() + *c as usize * d,
            l.feature_offset() + *f as usize * d,
        );
        for k in 0..d {
            vectors[row * d + k] += p[c + k] + p[f + k];
        }
    }
    let mut gramian = vec![0.0f64; d * d];
    let mut bias_projection = vec![0.0f64; d];
    for (v, b) in vectors
        .chunks_exact(d)
        .zip(&p[l.bias_offset()..l.feature_offset()])
    {
        for a in 0..d {
            let va = f64::from(v[a]);
            bias_projection[a] += f64::from(*b) * va;
            for c in a..d {
                gramian[a * d + c] += va * f64::from(v[c]);
            }
        }
    }
    for a in 0..d {
        for c in 0..a {
            gramian[a * d + c] = gramian[c * d + a];
        }
    }
    FloorCache {
        vectors,
        gramian,
        bias_projection,
    }
}

/// The same round by hand: solve p, then the upload's blocks, written straight into it.
fn floor_round(
    model: &GlobalModel,
    cache: &FloorCache,
    history: &MemberHistory,
    config: &ModelConfig,
) -> Vec<f32> {
    let l = model.layout();
    let d = l.dim;
    let params = model.params();
    let bias = &params[l.bias_offset()..l.feature_offset()];
    let w0 = config.unobserved_weight;
    // Closed-form user solve (Cholesky of a d × d system).
    let mut a: Vec<f64> = cache.gramian.iter().map(|g| f64::from(w0) * g).collect();
    let mut rhs: Vec<f64> = cache
        .bias_projection
        .iter()
        .map(|h| -f64::from(w0) * h)
        .collect();
    for e in history.items() {
        let v = &cache.vectors[e.row as usize * d..(e.row as usize + 1) * d];
        let c = f64::from(e.confidence);
        let r = c - (c - f64::from(w0)) * f64::from(bias[e.row as usize]);
        for i in 0..d {
            rhs[i] += r * f64::from(v[i]);
            let s = (c - f64::from(w0)) * f64::from(v[i]);
            for j in 0..d {
                a[i * d + j] += s * f64::from(v[j]);
            }
        }
    }
    for k in 0..d {
        a[k * d + k] += f64::from(config.l2_user);
    }
    let user: Vec<f32> = cholesky_solve(&a, &rhs, d)
        .iter()
        .map(|x| *x as f32)
        .collect();
    // The upload: ∇ of Σ [c (1 − s)² − w₀ s²] per history row, κ per row, a aᵀ.
    let layout = UpdateLayout::of(l);
    let w = d + 1;
    let mut upload = vec![0.0f32; layout.len()];
    let mut a_vec = user.clone();
    a_vec.push(1.0);
    let norm2: f32 = a_vec.iter().map(|x| x * x).sum();
    for e in history.items() {
        let row = e.row as usize;
        let v = &cache.vectors[row * d..(row + 1) * d];
        let s: f32 = v.iter().zip(&user).map(|(x, p)| x * p).sum::<f32>() + bias[row];
        let c = e.confidence;
        let g = 2.0 * (c * (s - 1.0) - w0 * s);
        for (t, x) in upload[row * w..(row + 1) * w].iter_mut().zip(&a_vec) {
            *t = g * x;
        }
        upload[layout.curvature_offset() + row] = (c - w0) * norm2;
    }
    let gramian = &mut upload[layout.gramian_offset()..];
    let mut t = 0;
    for i in 0..w {
        for j in i..w {
            gramian[t] = a_vec[i] * a_vec[j];
            t += 1;
        }
    }
    upload
}

fn cholesky_solve(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            l[i * d + j] = if i == j { s.sqrt() } else { s / l[j * d + j] };
        }
    }
    let mut y = vec![0.0f64; d];
    for i in 0..d {
        y[i] = (b[i] - (0..i).map(|k| l[i * d + k] * y[k]).sum::<f64>()) / l[i * d + i];
    }
    let mut x = vec![0.0f64; d];
    for i in (0..d).rev() {
        x[i] = (y[i] - (i + 1..d).map(|k| l[k * d + i] * x[k]).sum::<f64>()) / l[i * d + i];
    }
    x
}

/// Both paths must compute the same update before their times mean anything.
fn check_same_update(case: &Case, trainer: &Trainer) {
    let ours = covey_round(trainer, &case.fresh(), &case.history);
    let floor = floor_round(
        &case.model,
        &floor_cache(&case.model),
        &case.history,
        &case.config,
    );
    let scale = floor.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let worst = ours
        .iter()
        .zip(&floor)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-3 * scale,
        "floor differs from covey's delta: {worst} (scale {scale})"
    );
}

fn bench_round(c: &mut Criterion) {
    let case = Case::new();
    let trainer = Trainer::new(case.config.clone()).expect("trainer");
    check_same_update(&case, &trainer);
    let mut group = c.benchmark_group("model_round");
    group.sample_size(20);
    group.bench_function("covey/fresh", |b| {
        // `_ref`: the used model is dropped outside the timed region (freeing a 10k-item
        // catalog is not part of a round).
        b.iter_batched_ref(
            || case.fresh(),
            |m| black_box(covey_round(&trainer, m, &case.history)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("floor/fresh", |b| {
        b.iter(|| {
            let cache = floor_cache(&case.model);
            black_box(floor_round(
                &case.model,
                &cache,
                &case.history,
                &case.config,
            ))
        })
    });
    let warm = case.warm();
    let cache = floor_cache(&case.model);
    group.bench_function("covey/warm", |b| {
        b.iter(|| black_box(covey_round(&trainer, &warm, &case.history)))
    });
    group.bench_function("floor/warm", |b| {
        b.iter(|| {
            black_box(floor_round(
                &case.model,
                &cache,
                &case.history,
                &case.config,
            ))
        })
    });
    group.finish();
}

/// The table BENCHMARKS.md quotes: medians of 31 runs, and peak heap growth.
fn ratio_table(_: &mut Criterion) {
    let case = Case::new();
    let trainer = Trainer::new(case.config.clone()).expect("trainer");
    let cache = floor_cache(&case.model);
    let warm = case.warm();
    let reps = 31;
    // Used models are kept until after timing so their drop is not measured.
    let used = RefCell::new(Vec::with_capacity(reps));
    let covey_fresh = median_seconds_batched(
        reps,
        || case.fresh(),
        |m| {
            black_box(covey_round(&trainer, &m, &case.history));
            used.borrow_mut().push(m);
        },
    );
    drop(used);
    let floor_fresh = median_seconds_batched(
        reps,
        || (),
        |()| {
            black_box(floor_round(
                &case.model,
                &floor_cache(&case.model),
                &case.history,
                &case.config,
            ));
        },
    );
    let covey_warm = median_seconds_batched(
        reps,
        || (),
        |()| {
            black_box(covey_round(&trainer, &warm, &case.history));
        },
    );
    let floor_warm = median_seconds_batched(
        reps,
        || (),
        |()| {
            black_box(floor_round(
                &case.model,
                &cache,
                &case.history,
                &case.config,
            ));
        },
    );
    let mem_covey = peak_bytes(case.fresh(), |m| {
        black_box(covey_round(&trainer, &m, &case.history));
    });
    let mem_floor = peak_bytes((), |()| {
        black_box(floor_round(
            &case.model,
            &floor_cache(&case.model),
            &case.history,
            &case.config,
        ));
    });
    let delta_bytes = UpdateLayout::of(case.model.layout()).len() * 4;
    println!(
        "\nLocal round: {EVENTS} events ({} distinct items), {ITEMS} items, d=32 (solve + upload)",
        case.history.len()
    );
    println!("| path | covey ms | floor ms | covey/floor |");
    println!("|---|---|---|---|");
    println!(
        "| fresh model (Gramian built) | {:.3} | {:.3} | {:.2}× |",
        covey_fresh * 1e3,
        floor_fresh * 1e3,
        covey_fresh / floor_fresh
    );
    println!(
        "| warm model (Gramian cached) | {:.3} | {:.3} | {:.2}× |",
        covey_warm * 1e3,
        floor_warm * 1e3,
        covey_warm / floor_warm
    );
    println!(
        "peak heap growth, fresh round: covey {:.2} MB, floor {:.2} MB (the dense upload alone is {:.2} MB)",
        mem_covey as f64 / 1e6,
        mem_floor as f64 / 1e6,
        delta_bytes as f64 / 1e6
    );
}

criterion_group!(benches, bench_round, ratio_table);
criterion_main!(benches);
