//! The member's private user vector, solved in closed form from the current item table
//! (FedRecon: nothing about the member needs to survive between rounds).
//!
//! It minimises the implicit-feedback objective over the whole catalog,
//!
//! ```text
//! Σ_i∈H c_i (1 − s_i)² + w₀ Σ_j∉H s_j² + λ_u ‖p‖²,    s_i = p·v_i + b_i
//! ```
//!
//! whose normal equations only need the member's items and two catalog-wide sums the model
//! caches (Hu, Koren & Volinsky's trick): the Gramian `G = Σ_j v_j v_jᵀ` and `h = Σ_j b_j v_j`:
//!
//! ```text
//! (w₀ G + Σ_i∈H (c_i − w₀) v_i v_iᵀ + λ_u I) p = Σ_i∈H (c_i − (c_i − w₀) b_i) v_i − w₀ h
//! ```
//!
//! Cost O(|H| d² + d³), independent of the catalog size once `G` is cached.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::history::MemberHistory;
use crate::model::GlobalModel;

/// A solved user vector, with the factorised system kept for explanations.
#[derive(Debug, Clone)]
pub struct UserSolve {
    vector: Vec<f32>,
    /// Lower Cholesky factor of the system matrix, row-major d × d.
    cholesky: Vec<f64>,
    /// Per history item: `(row, r_i)` where `r_i` is its right-hand-side coefficient.
    terms: Vec<(u32, f64)>,
    dim: usize,
}

impl UserSolve {
    /// The user vector p.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    /// How much each history item contributes to the score of `target` (a d-vector): the
    /// user vector is `A⁻¹(Σ r_i v_i − w₀ h)`, so item i adds `r_i · targetᵀ A⁻¹ v_i`.
    pub(crate) fn contributions(&self, model: &GlobalModel, target: &[f32]) -> Vec<(u32, f64)> {
        let t: Vec<f64> = target.iter().map(|&x| f64::from(x)).collect();
        let a_inv_t = cholesky_solve(&self.cholesky, self.dim, &t);
        self.terms
            .iter()
            .filter_map(|&(row, r)| {
                let v = model.item_vector(row)?;
                let dot: f64 = v.iter().zip(&a_inv_t).map(|(a, b)| f64::from(*a) * b).sum();
                Some((row, r * dot))
            })
            .collect()
    }
}

/// Solves the member's user vector against `model` (see the module docs).
pub fn solve_user(
    model: &GlobalModel,
    history: &MemberHistory,
    config: &ModelConfig,
) -> Result<UserSolve> {
    let d = model.shape().dim;
    let derived = model.derived();
    let w0 = f64::from(config.unobserved_weight);
    let mut a: Vec<f64> = derived.gramian.iter().map(|g| w0 * g).collect();
    let mut rhs: Vec<f64> = derived.bias_projection.iter().map(|h| -w0 * h).collect();
    let bias = model.item_bias();
    let mut terms = Vec::with_capacity(history.len());
    for e in history.items() {
        let Some(v) = model.item_vector(e.row) else {
            continue;
        };
        let c = f64::from(e.confidence);
        let b = f64::from(bias[e.row as usize]);
        let r = c - (c - w0) * b;
        add_outer(&mut a, d, v, c - w0);
        for (k, x) in rhs.iter_mut().enumerate() {
            *x += r * f64::from(v[k]);
        }
        terms.push((e.row, r));
    }
    for k in 0..d {
        a[k * d + k] += f64::from(config.l2_user);
    }
    let cholesky = cholesky(&a, d)?;
    let p = cholesky_solve(&cholesky, d, &rhs);
    Ok(UserSolve {
        vector: p.iter().map(|&x| x as f32).collect(),
        cholesky,
        terms,
        dim: d,
    })
}

/// `a += scale · v vᵀ` (d × d, row-major).
pub(crate) fn add_outer(a: &mut [f64], d: usize, v: &[f32], scale: f64) {
    for i in 0..d {
        let s = scale * f64::from(v[i]);
        for j in 0..d {
            a[i * d + j] += s * f64::from(v[j]);
        }
    }
}

/// Lower Cholesky factor of a symmetric positive-definite d × d matrix.
pub(crate) fn cholesky(a: &[f64], d: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(Error::Singular);
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Ok(l)
}

/// Solves `L Lᵀ x = b` by forward and back substitution.
pub(crate) fn cholesky_solve(l: &[f64], d: usize, b: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0f64; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * d + i];
    }
    let mut x = vec![0.0f64; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * d + i];
    }
    x
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::catalog::{Catalog, ItemInfo};
    use crate::config::ModelShape;
    use crate::history::WeightedEvent;

    /// Gaussian elimination with partial pivoting on a dense system.
    fn direct_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for col in 0..n {
            let piv = (col..n)
                .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
                .unwrap();
            a.swap(col, piv);
            b.swap(col, piv);
            for r in col + 1..n {
                let f = a[r][col] / a[col][col];
                let pivot_row = a[col].clone();
                for (x, p) in a[r].iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * p;
                }
                b[r] -= f * b[col];
            }
        }
        let mut x = vec![0.0; n];
        for r in (0..n).rev() {
            let s: f64 = (r + 1..n).map(|c| a[r][c] * x[c]).sum();
            x[r] = (b[r] - s) / a[r][r];
        }
        x
    }

    #[test]
    fn closed_form_matches_a_direct_solve_over_every_item() {
        let items: Vec<ItemInfo> = (0..50)
            .map(|i| ItemInfo {
                category: format!("c{}", i % 3),
                ..ItemInfo::new(format!("i{i}"))
            })
            .collect();
        let shape = ModelShape {
            dim: 6,
            feature_rows: 16,
        };
        let mut model = GlobalModel::init(
            Catalog::new(items).unwrap(),
            shape,
            &mut ChaCha20Rng::seed_from_u64(5),
        )
        .unwrap();
        let n = model.layout().len();
        let shift: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 13) as f32 / 100.0 - 0.06)
            .collect();
        model.apply_delta(&shift, 1.0).unwrap();
        let config = ModelConfig {
            shape,
            ..ModelConfig::default()
        };
        let events: Vec<WeightedEvent> = [1u32, 4, 4, 10, 33, 49]
            .iter()
            .map(|&row| WeightedEvent {
                row,
                weight: 1.0,
                time_ms: 0,
                kind: None,
            })
            .collect();
        let history = MemberHistory::from_weighted(&events, &config.weights, 0);
        let fast = solve_user(&model, &history, &config).unwrap();

        // Direct: minimise Σ_all c_j (y_j − b_j − p·v_j)² + λ‖p‖² item by item.
        let d = shape.dim;
        let w0 = f64::from(config.unobserved_weight);
        let mut a = vec![vec![0.0; d]; d];
        let mut b = vec![0.0; d];
        for row in 0..50u32 {
            let v: Vec<f64> = model
                .item_vector(row)
                .unwrap()
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            let (c, y) = match history.items().iter().find(|e| e.row == row) {
                Some(e) => (f64::from(e.confidence), 1.0),
                None => (w0, 0.0),
            };
            let bias = f64::from(model.item_bias()[row as usize]);
            for i in 0..d {
                for j in 0..d {
                    a[i][j] += c * v[i] * v[j];
                }
                b[i] += c * (y - bias) * v[i];
            }
        }
        for (i, row) in a.iter_mut().enumerate() {
            row[i] += f64::from(config.l2_user);
        }
        let direct = direct_solve(a, b);
        for (f, s) in fast.vector().iter().zip(&direct) {
            assert!(
                (f64::from(*f) - s).abs() < 1e-4 * (1.0 + s.abs()),
                "{f} vs {s}"
            );
        }
    }
}
