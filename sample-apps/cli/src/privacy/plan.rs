//! `covey privacy plan`: the DP encoding plan of a round (bit width, scale, each member's
//! noise share, overflow probability), for a given noise multiplier or calibrated to a
//! privacy target.

use clap::{Args, ValueEnum};
use covey_protocol::accounting::{self, AccountantKind, Sampling};
use covey_protocol::dp::{
    self, AdaptiveClipping, DpPlan, NoiseKind, NoiseShare, PlanRequest, PrivacyTarget,
    calibrate_plan, choose_plan,
};

use super::Outcome;

/// Noise mechanism on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Noise {
    /// Distributed Skellam shares (default).
    Skellam,
    /// Distributed discrete Gaussian shares.
    DiscreteGaussian,
    /// Weaker: the server adds Gaussian noise after unmasking.
    Central,
}

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// Members invited to each round (the cohort).
    #[arg(long)]
    members: u32,
    /// Coordinates of the model update.
    #[arg(long)]
    dimension: u32,
    /// L2 clip C of a member's update.
    #[arg(long)]
    clip: f64,
    /// Fraction of the cohort allowed to drop out; noise is sized for the rest.
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
    /// Noise standard deviation over the rounded L2 sensitivity (skip to calibrate from
    /// --epsilon).
    #[arg(long, required_unless_present = "epsilon", conflicts_with = "epsilon")]
    noise_multiplier: Option<f64>,
    /// Target ε over --steps rounds: calibrate the least noise that meets it.
    #[arg(long, requires_all = ["delta", "steps"])]
    epsilon: Option<f64>,
    /// δ of the target (or of the reported ε).
    #[arg(long)]
    delta: Option<f64>,
    /// Rounds the budget covers.
    #[arg(long)]
    steps: Option<u64>,
    /// Per-round Poisson sampling rate of members (1 = every member every round).
    #[arg(long, default_value_t = 1.0)]
    sampling_rate: f64,
    /// Noise mechanism.
    #[arg(long, value_enum, default_value_t = Noise::Skellam)]
    noise: Noise,
    /// Fixed bit width (1..=32); by default the smallest that keeps rounding's sensitivity
    /// inflation within --max-inflation.
    #[arg(long)]
    bits: Option<u32>,
    /// Headroom of the modulus in standard deviations of a summed coordinate.
    #[arg(long, default_value_t = dp::DEFAULT_OVERFLOW_SIGMAS)]
    sigmas: f64,
    /// Tolerated relative inflation of the L2 sensitivity by rounding.
    #[arg(long, default_value_t = dp::DEFAULT_MAX_INFLATION)]
    max_inflation: f64,
    /// Adaptive clipping (Andrew et al. defaults: quantile 0.5, rate 0.2, count noise n/20).
    #[arg(long)]
    adaptive: bool,
    /// Accountant for a central-mode plan (distributed noise is always accounted with RDP).
    #[arg(long, default_value = "rdp")]
    accountant: AccountantKind,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(super) json: bool,
}

impl PlanArgs {
    fn request(&self) -> PlanRequest {
        // Planning only: a server draws a fresh rotation seed for every round.
        let mut request = PlanRequest::new(
            self.members,
            self.dimension,
            self.clip,
            self.noise_multiplier.unwrap_or(1.0),
            [0; 32],
        );
        request.max_dropout = self.dropout;
        request.noise = match self.noise {
            Noise::Skellam => NoiseKind::Skellam,
            Noise::DiscreteGaussian => NoiseKind::DiscreteGaussian,
            Noise::Central => NoiseKind::Central,
        };
        request.bits = self.bits;
        request.overflow_sigmas = self.sigmas;
        request.max_inflation = self.max_inflation;
        request.adaptive = self
            .adaptive
            .then(|| AdaptiveClipping::defaults_for(self.members));
        request
    }

    fn sampling(&self) -> Sampling {
        if self.sampling_rate == 1.0 {
            Sampling::Full
        } else {
            Sampling::Poisson {
                rate: self.sampling_rate,
            }
        }
    }
}

/// Runs `covey privacy plan`.
pub(super) fn plan(args: &PlanArgs) -> Outcome<dp::Error> {
    let request = args.request();
    let (plan, epsilon) = match (args.epsilon, args.delta, args.steps) {
        (Some(epsilon), Some(delta), Some(rounds)) => {
            let target = PrivacyTarget {
                epsilon,
                delta,
                sampling: args.sampling(),
                rounds,
            };
            let (plan, spent) = calibrate_plan(&request, target, args.accountant)?;
            (plan, Some(spent))
        }
        _ => {
            let plan = choose_plan(&request)?;
            let spent = match (args.delta, args.steps) {
                (Some(delta), Some(rounds)) => Some(spent_epsilon(&plan, args, delta, rounds)?),
                _ => None,
            };
            (plan, spent)
        }
    };
    Ok(describe(&plan, epsilon, args.delta))
}

fn spent_epsilon(
    plan: &DpPlan,
    args: &PlanArgs,
    delta: f64,
    rounds: u64,
) -> accounting::Result<f64> {
    let mut event = plan.privacy_event(plan.min_survivors, args.sampling());
    event.count = rounds;
    let kind = match plan.noise {
        NoiseShare::Central { .. } => args.accountant,
        _ => AccountantKind::Rdp,
    };
    accounting::epsilon_for_events(kind, &[event], delta)
}

fn describe(
    plan: &DpPlan,
    epsilon: Option<f64>,
    delta: Option<f64>,
) -> (serde_json::Value, String) {
    let overflow = plan.overflow_bound();
    let (noise_kind, local_stddev) = match plan.noise {
        NoiseShare::Skellam { local_mu } => ("skellam", (2.0 * local_mu).sqrt()),
        NoiseShare::DiscreteGaussian { local_sigma } => ("discrete_gaussian", local_sigma),
        NoiseShare::Central { .. } => ("central (weaker: trusted server adds the noise)", 0.0),
    };
    let z = plan.noise_multiplier(plan.min_survivors);
    let json = serde_json::json!({
        "bits": plan.bits,
        "scale": plan.scale,
        "padded_dimension": plan.padded_dimension(),
        "vector_len": plan.vector_len(),
        "min_survivors": plan.min_survivors,
        "noise": plan.noise,
        "per_member_noise_stddev": local_stddev,
        "summed_noise_stddev": plan.summed_noise_variance(plan.min_survivors).sqrt(),
        "noise_multiplier": z,
        "l2_sensitivity": plan.l2_sensitivity(),
        "l1_sensitivity": plan.l1_sensitivity(),
        "overflow_probability": overflow,
        "trust_model": plan.trust_model(),
        "epsilon": epsilon,
        "delta": delta,
        "plan": plan,
    });
    let mut text = format!(
        "B = {} bits, scale = {:.4} per unit, {} values per member ({} survivors minimum)\n\
         noise: {noise_kind}, per-member stddev {local_stddev:.3}, noise multiplier {z:.4} \
         at the minimum survivors\n\
         overflow probability: {:.3e} per coordinate, {:.3e} per vector",
        plan.bits,
        plan.scale,
        plan.vector_len(),
        plan.min_survivors,
        overflow.per_coordinate,
        overflow.per_vector,
    );
    if let (Some(eps), Some(delta)) = (epsilon, delta) {
        text.push_str(&format!("\nepsilon = {eps:.6} at delta = {delta:e}"));
    }
    (json, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: PlanArgs,
    }

    fn parse(line: &str) -> PlanArgs {
        Cli::try_parse_from(std::iter::once("plan").chain(line.split_whitespace()))
            .unwrap()
            .args
    }

    #[test]
    fn plan_reports_bits_scale_noise_and_overflow() {
        let args = parse(
            "--members 1000 --dimension 100000 --clip 1 --noise-multiplier 1 --dropout 0.3 --json",
        );
        let (json, _) = plan(&args).unwrap();
        assert!(json["bits"].as_u64().unwrap() <= 20);
        assert_eq!(json["min_survivors"], 700);
        assert!((json["noise_multiplier"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        assert!(json["overflow_probability"]["per_vector"].as_f64().unwrap() < 0.01);
        assert_eq!(json["noise"]["kind"], "skellam");
    }

    #[test]
    fn calibrated_plan_meets_the_target() {
        let args = parse(
            "--members 500 --dimension 10000 --clip 1 --epsilon 2 --delta 1e-6 --steps 100 --sampling-rate 0.01",
        );
        let (json, _) = plan(&args).unwrap();
        let eps = json["epsilon"].as_f64().unwrap();
        assert!(eps <= 2.0 && eps > 1.99, "{eps}");
    }

    #[test]
    fn a_sum_that_cannot_fit_is_an_error() {
        let args =
            parse("--members 100000 --dimension 1000 --clip 1 --noise-multiplier 1 --bits 8");
        assert!(plan(&args).is_err());
    }
}
