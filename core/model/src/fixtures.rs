//! Small models with a known structure, for tests of the crates above (the SDK's
//! recommendations, the CLI): not part of the product API.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use crate::catalog::{Catalog, ItemInfo};
use crate::config::ModelShape;
use crate::error::Result;
use crate::model::GlobalModel;

/// A model over `items` items in two tastes: the first half (ids `a-<row>`) lies along one
/// embedding axis, the second half (`b-<row>`) along another, and the `b` items are more
/// popular overall (higher bias). So the global ranking is all `b`, while a member whose
/// history is `a` items gets `a` items. `dim` must be at least 2.
pub fn two_taste_model(items: usize, dim: usize, version: u64) -> Result<GlobalModel> {
    let half = items / 2;
    let ids = (0..items)
        .map(|i| ItemInfo::new(two_taste_item(items, i)))
        .collect();
    let shape = ModelShape {
        dim,
        feature_rows: 2,
    };
    let mut model = GlobalModel::init(
        Catalog::new(ids)?,
        shape,
        &mut ChaCha20Rng::seed_from_u64(9),
    )?;
    let layout = model.layout();
    let mut target = vec![0.0f32; layout.len()];
    for i in 0..items {
        target[i * dim + usize::from(i >= half)] = 1.0;
        // Small distinct biases keep rankings free of ties.
        let popularity = if i < half { 0.0 } else { 0.1 };
        target[layout.bias_offset() + i] = popularity + 0.001 * i as f32;
    }
    let delta: Vec<f32> = target
        .iter()
        .zip(model.params())
        .map(|(t, p)| t - p)
        .collect();
    model.apply_delta(&delta, 1.0)?;
    model.set_version(version);
    Ok(model)
}

/// The id of row `i` in [`two_taste_model`]`(items, ..)`.
pub fn two_taste_item(items: usize, i: usize) -> String {
    if i < items / 2 {
        format!("a-{i}")
    } else {
        format!("b-{i}")
    }
}
