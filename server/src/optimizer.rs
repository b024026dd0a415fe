//! Server optimizers over a dense f32 parameter vector (Reddi et al. 2021, "Adaptive
//! Federated Optimization"). The decoded aggregate is the mean client delta Δ (a
//! pseudo-gradient pointing downhill); the optimizer turns it into the next model.
//!
//! - FedAvg: `x ← x + η Δ`.
//! - FedAdam: `m ← β₁ m + (1 − β₁) Δ`, `v ← β₂ v + (1 − β₂) Δ²`, `x ← x + η m / (√v + τ)`,
//!   without bias correction, as in the paper's Algorithm 2 (τ bounds the step size).
//!
//! Pure functions: the state goes in and comes out, so a crash between rounds loses nothing
//! (the state is persisted with the model version it produced).

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::error::{Error, Result};
use crate::model_blob;

/// FedAdam's moment estimates (empty for FedAvg).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimizerState {
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
}

impl OptimizerState {
    /// Encodes as one model blob holding `m` then `v`.
    pub fn encode(&self) -> Vec<u8> {
        let mut both = Vec::with_capacity(self.m.len() + self.v.len());
        both.extend_from_slice(&self.m);
        both.extend_from_slice(&self.v);
        model_blob::encode(&both)
    }

    /// Decodes a blob written by [`OptimizerState::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut both = model_blob::decode(bytes)?;
        if !both.len().is_multiple_of(2) {
            return Err(Error::Corrupt {
                what: "optimizer state",
                reason: "odd number of values".into(),
            });
        }
        let v = both.split_off(both.len() / 2);
        Ok(OptimizerState { m: both, v })
    }
}

fn check(params: &[f32], delta: &[f32]) -> Result<()> {
    if params.len() != delta.len() {
        return Err(Error::Dimension {
            expected: params.len(),
            got: delta.len(),
        });
    }
    // A branch-free pass (vectorised) first; the index is only searched on failure.
    let all_finite = delta.iter().fold(true, |ok, d| ok & d.is_finite());
    if !all_finite {
        let i = delta.iter().position(|d| !d.is_finite()).unwrap_or(0);
        return Err(Error::Corrupt {
            what: "aggregate update",
            reason: format!("coordinate {i} is not finite"),
        });
    }
    Ok(())
}

/// FedAvg: `params + lr · delta`.
pub fn fedavg(params: &[f32], delta: &[f32], lr: f32) -> Result<Vec<f32>> {
    check(params, delta)?;
    Ok(params.iter().zip(delta).map(|(x, d)| x + lr * d).collect())
}

/// One FedAdam step; a state of the wrong length (e.g. empty, the first round) starts from
/// zero moments.
pub fn fedadam(
    params: &[f32],
    state: &OptimizerState,
    delta: &[f32],
    config: &OptimizerConfig,
) -> Result<(Vec<f32>, OptimizerState)> {
    check(params, delta)?;
    let n = params.len();
    let fresh = state.m.len() != n || state.v.len() != n;
    let mut next = if fresh {
        OptimizerState {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    } else {
        state.clone()
    };
    let (b1, b2, lr, tau) = (config.beta1, config.beta2, config.learning_rate, config.tau);
    let mut out = params.to_vec();
    // Zipped slices, no indexing: the loop vectorises (sqrt and division included).
    for (((x, m), v), d) in out
        .iter_mut()
        .zip(next.m.iter_mut())
        .zip(next.v.iter_mut())
        .zip(delta)
    {
        *m = b1 * *m + (1.0 - b1) * d;
        *v = b2 * *v + (1.0 - b2) * d * d;
        *x += lr * *m / (v.sqrt() + tau);
    }
    Ok((out, next))
}

/// Applies the configured optimizer.
pub fn step(
    config: &OptimizerConfig,
    params: &[f32],
    state: &OptimizerState,
    delta: &[f32],
) -> Result<(Vec<f32>, OptimizerState)> {
    match config.kind {
        OptimizerKind::Fedavg => Ok((
            fedavg(params, delta, config.learning_rate)?,
            OptimizerState::default(),
        )),
        OptimizerKind::Fedadam => fedadam(params, state, delta, config),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adam(lr: f32) -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Fedadam,
            learning_rate: lr,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
        }
    }

    #[test]
    fn fedavg_with_unit_rate_adds_the_mean_delta() {
        let x = fedavg(&[1.0, 2.0], &[0.5, -1.0], 1.0).unwrap();
        assert_eq!(x, [1.5, 1.0]);
        let x = fedavg(&[1.0, 2.0], &[0.5, -1.0], 0.1).unwrap();
        assert!((x[0] - 1.05).abs() < 1e-6 && (x[1] - 1.9).abs() < 1e-6);
    }

    #[test]
    fn fedadam_first_step_matches_the_formula() {
        // m = 0.1 d, v = 0.01 d²  ⇒  step = lr · 0.1 d / (0.1 |d| + τ) ≈ lr · sign(d).
        let (x, s) = fedadam(
            &[0.0, 0.0],
            &OptimizerState::default(),
            &[2.0, -0.5],
            &adam(0.1),
        )
        .unwrap();
        let expect = |d: f32| 0.1 * 0.1 * d / ((0.01f32 * d * d).sqrt() + 1e-3);
        assert!((x[0] - expect(2.0)).abs() < 1e-6, "{x:?}");
        assert!((x[1] - expect(-0.5)).abs() < 1e-6, "{x:?}");
        assert!((s.m[0] - 0.2).abs() < 1e-6 && (s.v[0] - 0.04).abs() < 1e-6);
    }

    #[test]
    fn fedadam_minimises_a_quadratic_where_fedavg_with_a_small_rate_crawls() {
        // f(x) = ½ Σ a_i (x_i − 3)² with badly scaled curvatures; Δ = −∇f.
        let a = [100.0f32, 1.0, 0.01];
        let grad =
            |x: &[f32]| -> Vec<f32> { x.iter().zip(a).map(|(x, a)| -a * (x - 3.0)).collect() };
        let (mut x, mut s) = (vec![0.0f32; 3], OptimizerState::default());
        for _ in 0..600 {
            (x, s) = fedadam(&x, &s, &grad(&x), &adam(0.05)).unwrap();
        }
        let mut y = vec![0.0f32; 3];
        for _ in 0..600 {
            y = fedavg(&y, &grad(&y), 0.009).unwrap();
        }
        let err = |v: &[f32]| v.iter().map(|v| (v - 3.0).abs()).fold(0.0f32, f32::max);
        assert!(err(&x) < 0.1, "FedAdam ended at {x:?}");
        assert!(err(&y) > 1.0, "FedAvg ended at {y:?}");
    }

    #[test]
    fn bad_updates_are_refused_and_change_nothing() {
        let params = [1.0f32, 2.0];
        assert!(matches!(
            fedavg(&params, &[1.0], 1.0),
            Err(Error::Dimension {
                expected: 2,
                got: 1
            })
        ));
        assert!(
            fedadam(
                &params,
                &OptimizerState::default(),
                &[f32::NAN, 0.0],
                &adam(0.1)
            )
            .is_err()
        );
    }

    #[test]
    fn state_round_trips() {
        let s = OptimizerState {
            m: vec![1.0, 2.0],
            v: vec![3.0, 4.0],
        };
        assert_eq!(OptimizerState::decode(&s.encode()).unwrap(), s);
        assert_eq!(
            OptimizerState::decode(&OptimizerState::default().encode()).unwrap(),
            OptimizerState::default()
        );
    }
}
