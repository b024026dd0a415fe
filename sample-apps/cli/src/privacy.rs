//! `covey privacy`: privacy accounting from the command line (ε of a training schedule, the
//! noise multiplier for a target).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use covey_protocol::accounting::{
    self, Accountant, AccountantKind, PrivacyEvent, RdpAccountant, Sampling,
    calibrate_noise_multiplier,
};

mod plan;

/// `covey privacy ...`
#[derive(Debug, Args)]
pub struct PrivacyArgs {
    #[command(subcommand)]
    command: PrivacyCommand,
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// ε spent by T rounds of the subsampled Gaussian mechanism at a given δ.
    Epsilon(EpsilonArgs),
    /// The smallest noise multiplier that keeps T rounds within (ε, δ).
    Calibrate(CalibrateArgs),
    /// The DP encoding plan of a round: bit width, scale, per-member noise, overflow bound.
    Plan(plan::PlanArgs),
}

/// How members are selected each round.
#[derive(Debug, Args)]
struct SamplingArgs {
    /// Poisson sampling: each member takes part with this probability (1 = everyone).
    #[arg(long, required_unless_present = "cohort", conflicts_with = "cohort")]
    sampling_rate: Option<f64>,
    /// Fixed-size cohort drawn without replacement (replace-one accounting, RDP only).
    #[arg(long, requires = "population")]
    cohort: Option<u64>,
    /// Population the fixed-size cohort is drawn from.
    #[arg(long, requires = "cohort")]
    population: Option<u64>,
}

impl SamplingArgs {
    fn sampling(&self) -> Sampling {
        match (self.sampling_rate, self.cohort, self.population) {
            (Some(1.0), _, _) => Sampling::Full,
            (Some(rate), _, _) => Sampling::Poisson { rate },
            (None, Some(cohort), Some(population)) => {
                Sampling::FixedSizeWithoutReplacement { cohort, population }
            }
            // clap's `required_unless_present` and `requires` rule this out; keep a total
            // function anyway: an invalid rate is rejected by the accountant with a message.
            _ => Sampling::Poisson { rate: f64::NAN },
        }
    }
}

#[derive(Debug, Args)]
struct EpsilonArgs {
    /// Noise standard deviation over the per-member L2 clip.
    #[arg(long)]
    noise_multiplier: f64,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Number of rounds T.
    #[arg(long)]
    steps: u64,
    /// Target δ.
    #[arg(long)]
    delta: f64,
    /// `rdp` (fast, looser) or `pld` (tight).
    #[arg(long, default_value = "pld")]
    accountant: AccountantKind,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CalibrateArgs {
    /// Target ε.
    #[arg(long)]
    epsilon: f64,
    /// Target δ.
    #[arg(long)]
    delta: f64,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Number of rounds T.
    #[arg(long)]
    steps: u64,
    /// `rdp` (fast, looser) or `pld` (tight).
    #[arg(long, default_value = "pld")]
    accountant: AccountantKind,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: PrivacyArgs) -> ExitCode {
    match args.command {
        PrivacyCommand::Epsilon(args) => report(args.json, epsilon(&args)),
        PrivacyCommand::Calibrate(args) => report(args.json, calibrate(&args)),
        PrivacyCommand::Plan(args) => report(args.json, plan::plan(&args)),
    }
}

/// A computed figure: its JSON object and its line of text.
type Outcome<E = accounting::Error> = Result<(serde_json::Value, String), E>;

fn epsilon(args: &EpsilonArgs) -> Outcome {
    let event = PrivacyEvent {
        mechanism: accounting::Mechanism::Gaussian {
            noise_multiplier: args.noise_multiplier,
        },
        sampling: args.sampling.sampling(),
        count: args.steps,
    };
    if args.accountant == AccountantKind::Rdp {
        // Report the optimal order too: it tells whether the order grid was wide enough.
        let mut rdp = RdpAccountant::new();
        rdp.compose(&event)?;
        let (eps, order) = rdp.epsilon_and_order(args.delta)?;
        let json = serde_json::json!({ "epsilon": eps, "delta": args.delta, "accountant": "rdp", "order": order });
        return Ok((
            json,
            format!(
                "epsilon = {eps:.6} at delta = {:e} (RDP, order {order})",
                args.delta
            ),
        ));
    }
    let eps = accounting::epsilon_for_events(args.accountant, &[event], args.delta)?;
    let json =
        serde_json::json!({ "epsilon": eps, "delta": args.delta, "accountant": args.accountant });
    Ok((
        json,
        format!(
            "epsilon = {eps:.6} at delta = {:e} ({})",
            args.delta, args.accountant
        ),
    ))
}

fn calibrate(args: &CalibrateArgs) -> Outcome {
    let sampling = args.sampling.sampling();
    let z = calibrate_noise_multiplier(
        args.accountant,
        args.epsilon,
        args.delta,
        sampling,
        args.steps,
    )?;
    let json = serde_json::json!({
        "noise_multiplier": z,
        "epsilon": args.epsilon,
        "delta": args.delta,
        "accountant": args.accountant,
    });
    let text = format!(
        "noise multiplier = {z:.6} keeps {} rounds within epsilon = {} at delta = {:e} ({})",
        args.steps, args.epsilon, args.delta, args.accountant
    );
    Ok((json, text))
}

fn report<E: std::fmt::Display>(json: bool, outcome: Outcome<E>) -> ExitCode {
    match outcome {
        Ok((value, text)) => {
            if json {
                println!("{value}");
            } else {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            if json {
                println!("{}", serde_json::json!({ "error": error.to_string() }));
            } else {
                eprintln!("privacy: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(rate: f64) -> SamplingArgs {
        SamplingArgs {
            sampling_rate: Some(rate),
            cohort: None,
            population: None,
        }
    }

    #[test]
    fn epsilon_reports_the_dp_accounting_figure() {
        let args = EpsilonArgs {
            noise_multiplier: 2.5,
            sampling: sampling(0.01),
            steps: 50,
            delta: 1e-5,
            accountant: AccountantKind::Rdp,
            json: true,
        };
        let (json, _) = epsilon(&args).unwrap();
        let eps = json["epsilon"].as_f64().unwrap();
        assert!((eps - 0.144_786_379_298_978_9).abs() < 1e-9, "{eps}");
    }

    #[test]
    fn bad_input_is_a_typed_error_not_a_panic() {
        let args = EpsilonArgs {
            noise_multiplier: 1.0,
            sampling: sampling(1.5),
            steps: 10,
            delta: 1e-5,
            accountant: AccountantKind::Pld,
            json: true,
        };
        assert!(epsilon(&args).is_err());
        let fixed = SamplingArgs {
            sampling_rate: None,
            cohort: Some(10),
            population: Some(1000),
        };
        let pld_fixed = CalibrateArgs {
            epsilon: 1.0,
            delta: 1e-6,
            sampling: fixed,
            steps: 10,
            accountant: AccountantKind::Pld,
            json: false,
        };
        assert!(calibrate(&pld_fixed).is_err());
    }

    #[test]
    fn calibrated_multiplier_meets_its_target() {
        let args = CalibrateArgs {
            epsilon: 1.0,
            delta: 1e-5,
            sampling: sampling(0.01),
            steps: 100,
            accountant: AccountantKind::Rdp,
            json: true,
        };
        let (json, _) = calibrate(&args).unwrap();
        let z = json["noise_multiplier"].as_f64().unwrap();
        let check = EpsilonArgs {
            noise_multiplier: z,
            sampling: sampling(0.01),
            steps: 100,
            delta: 1e-5,
            accountant: AccountantKind::Rdp,
            json: true,
        };
        let eps = epsilon(&check).unwrap().0["epsilon"].as_f64().unwrap();
        assert!(eps <= 1.0 && eps > 0.99, "{eps}");
    }
}
