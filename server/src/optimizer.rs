//! Server optimizers over a dense f32 parameter vector (Reddi et al. 2021, "Adaptive
//! Federated Optimization"). The decoded aggregate is the mean client delta Δ (a
//! pseudo-gradient pointing downhill); the optimizer turns it into the next model.
//!
//! - FedAvg: `x ← x + η Δ`.
//! - FedAdam: `m ← β₁ m + (1 − β₁) Δ`, `v ← β₂ v + (1 − β₂) Δ²`, `x ← x + η m / (√v + τ)`,
//!   without bias correction, as in the paper's Algorithm 2 (τ bounds the step size).
//!
//! The rate η of each step follows the population's [`LrSchedule`]: a function of the base
//! model's version, so the schedule needs no state of its own.
//!
//! Pure functions: the state goes in and comes out, so a crash between rounds loses nothing
//! (the state is persisted with the model version it produced).

#[cfg(doc)]
use crate::config::LrSchedule;
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

/// One FedAdam step at rate `lr` (β₁, β₂ and τ from `config`); a state of the wrong length
/// (e.g. empty, the first round) starts from zero moments.
pub fn fedadam(
    params: &[f32],
    state: &OptimizerState,
    delta: &[f32],
    config: &OptimizerConfig,
    lr: f32,
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
    let (b1, b2, tau) = (config.beta1, config.beta2, config.tau);
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

/// Applies the configured optimizer to the model of version `base_version`, at the rate its
/// schedule gives that version ([`OptimizerConfig::learning_rate_at`]).
pub fn step(
    config: &OptimizerConfig,
    base_version: u64,
    params: &[f32],
    state: &OptimizerState,
    delta: &[f32],
) -> Result<(Vec<f32>, OptimizerState)> {
    let lr = config.learning_rate_at(base_version);
    match config.kind {
        OptimizerKind::Fedavg => Ok((fedavg(params, delta, lr)?, OptimizerState::default())),
        OptimizerKind::Fedadam => fedadam(params, state, delta, config, lr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::LrSchedule;

    fn adam(lr: f32) -> OptimizerConfig {
        OptimizerConfig::new(OptimizerKind::Fedadam, lr)
    }

    fn decaying(kind: OptimizerKind, schedule: LrSchedule) -> OptimizerConfig {
        OptimizerConfig {
            schedule,
            decay_rounds: 10,
            final_fraction: 0.1,
            ..OptimizerConfig::new(kind, 0.5)
        }
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
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
            0.1,
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
            (x, s) = fedadam(&x, &s, &grad(&x), &adam(0.05), 0.05).unwrap();
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
                &adam(0.1),
                0.1
            )
            .is_err()
        );
    }

    #[test]
    fn a_constant_schedule_keeps_the_rate() {
        let c = adam(0.3);
        assert!(
            [0, 1, 9, 10, 1_000]
                .iter()
                .all(|&v| c.learning_rate_at(v) == 0.3)
        );
    }

    #[test]
    fn a_linear_schedule_falls_in_equal_steps_then_stays_at_the_final_rate() {
        let c = decaying(OptimizerKind::Fedadam, LrSchedule::Linear);
        // 0.5 → 0.05 over 10 rounds: 0.045 less per round.
        assert!(close(c.learning_rate_at(0), 0.5));
        assert!(close(c.learning_rate_at(1), 0.455));
        assert!(close(c.learning_rate_at(5), 0.275));
        assert!(close(c.learning_rate_at(10), 0.05));
        assert!(close(c.learning_rate_at(u64::MAX), 0.05));
    }

    #[test]
    fn a_cosine_schedule_falls_slowly_at_both_ends() {
        let c = decaying(OptimizerKind::Fedadam, LrSchedule::Cosine);
        assert!(close(c.learning_rate_at(0), 0.5));
        assert!(
            close(c.learning_rate_at(5), 0.275),
            "half-way is the mid rate"
        );
        let first_drop = c.learning_rate_at(0) - c.learning_rate_at(1);
        let middle_drop = c.learning_rate_at(5) - c.learning_rate_at(6);
        assert!(
            first_drop < middle_drop / 4.0,
            "{first_drop} vs {middle_drop}"
        );
        assert!(close(c.learning_rate_at(10), 0.05));
        assert!(close(c.learning_rate_at(40), 0.05));
    }

    #[test]
    fn step_uses_the_rate_of_the_base_version() {
        // FedAvg makes the rate visible: x + η Δ with Δ = 1.
        let c = decaying(OptimizerKind::Fedavg, LrSchedule::Linear);
        let moved = |version| step(&c, version, &[0.0], &OptimizerState::default(), &[1.0]);
        assert!(close(moved(0).unwrap().0[0], 0.5));
        assert!(close(moved(5).unwrap().0[0], 0.275));
        assert!(close(moved(12).unwrap().0[0], 0.05));
        // FedAdam's first step is ≈ η·sign(Δ): halving η halves it.
        let c = decaying(OptimizerKind::Fedadam, LrSchedule::Linear);
        let adam_step = |version| {
            step(&c, version, &[0.0], &OptimizerState::default(), &[1.0])
                .unwrap()
                .0[0]
        };
        assert!((adam_step(0) / adam_step(10) - 10.0).abs() < 1e-3);
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
