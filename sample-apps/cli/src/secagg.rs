//! `covey secagg`: run SecAgg+ client and server state machines in-process.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use covey_protocol::secagg::simulation::{SimulationConfig, SimulationReport, simulate};
use covey_protocol::secagg::{AdversaryClass, Stage, ThreatModel};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// `covey secagg ...`
#[derive(Debug, Args)]
pub struct SecaggArgs {
    #[command(subcommand)]
    command: SecaggCommand,
}

#[derive(Debug, Subcommand)]
enum SecaggCommand {
    /// Simulate one session: every member and the server, with injected dropouts.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Cohort size n.
    #[arg(long)]
    members: usize,
    /// Vector length m.
    #[arg(long)]
    dimension: usize,
    /// Fix the graph degree k instead of deriving it.
    #[arg(long)]
    degree: Option<usize>,
    /// Bit width B of inputs and sum (1..=32).
    #[arg(long, default_value_t = 32)]
    bits: u32,
    /// Dropouts as STAGE=FRACTION, comma separated; stages: advertise, share, masked,
    /// consistency, unmask. A fraction of the cohort drops right before that stage's upload.
    #[arg(long, value_delimiter = ',', value_parser = parse_dropout)]
    dropout: Vec<(Stage, f64)>,
    /// Fraction of members assumed to collude with the server (sizes k and t).
    #[arg(long, default_value_t = 0.05)]
    adversarial: f64,
    /// Dropout fraction k and t are sized for (default: the injected total, at least 0.1).
    #[arg(long)]
    tolerated_dropout: Option<f64>,
    /// Signed variant: Ed25519 on every message and on the survivor list.
    #[arg(long)]
    signed: bool,
    /// Seed of every random choice (session id, inputs, keys, who drops).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_dropout(text: &str) -> Result<(Stage, f64), String> {
    let (stage, fraction) = text.split_once('=').ok_or("expected STAGE=FRACTION")?;
    let stage = match stage.trim() {
        "advertise" => Stage::AdvertiseKeys,
        "share" => Stage::ShareKeys,
        "masked" => Stage::MaskedInput,
        "consistency" => Stage::ConsistencyCheck,
        "unmask" => Stage::Unmask,
        other => return Err(format!("unknown stage {other:?}")),
    };
    let fraction: f64 = fraction
        .trim()
        .parse()
        .map_err(|_| "fraction must be a number")?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err("fraction must be in [0, 1]".into());
    }
    Ok((stage, fraction))
}

/// Runs the subcommand.
pub fn run(args: SecaggArgs) -> ExitCode {
    match args.command {
        SecaggCommand::Simulate(args) => run_simulation(&args),
    }
}

fn run_simulation(args: &SimulateArgs) -> ExitCode {
    let injected: f64 = args.dropout.iter().map(|(_, f)| f).sum();
    let config = SimulationConfig {
        members: args.members,
        dimension: args.dimension,
        bits: args.bits,
        degree: args.degree,
        threat: ThreatModel {
            adversarial_fraction: args.adversarial,
            dropout_fraction: args.tolerated_dropout.unwrap_or(injected.max(0.1)),
            adversary: if args.signed {
                AdversaryClass::SemiMalicious
            } else {
                AdversaryClass::SemiHonest
            },
        },
        dropouts: args.dropout.clone(),
        signed: args.signed,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let start = Instant::now();
    let mut clock = move || start.elapsed();
    match simulate(&config, &mut rng, &mut clock) {
        Ok(report) => {
            print_report(&report, args.json);
            if report.sum_correct {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "sum_correct": false, "error": error.to_string() })
                );
            } else {
                eprintln!("secagg simulation aborted: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

fn print_report(r: &SimulationReport, json: bool) {
    if json {
        let value = serde_json::json!({
            "sum_correct": r.sum_correct,
            "members": r.members,
            "survivors": r.survivors,
            "k": r.degree,
            "t": r.threshold,
            "client_seconds_median": r.client_seconds_median,
            "server_seconds": r.server_seconds,
            "bytes_per_member": r.bytes_per_member,
        });
        println!("{value}");
    } else {
        println!(
            "sum {}: {} of {} members in the sum, k = {}, t = {}\n\
             client {:.4} s (median), server {:.4} s, {} bytes uploaded per member",
            if r.sum_correct { "exact" } else { "WRONG" },
            r.survivors,
            r.members,
            r.degree,
            r.threshold,
            r.client_seconds_median,
            r.server_seconds,
            r.bytes_per_member
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_flags_parse_and_reject_nonsense() {
        assert_eq!(parse_dropout("masked=0.25"), Ok((Stage::MaskedInput, 0.25)));
        assert_eq!(parse_dropout("unmask = 0"), Ok((Stage::Unmask, 0.0)));
        assert!(parse_dropout("masked").is_err());
        assert!(parse_dropout("lunch=0.1").is_err());
        assert!(parse_dropout("share=1.5").is_err());
    }

    #[test]
    fn a_small_simulation_succeeds_and_an_impossible_one_fails() {
        let args = |dropout: Vec<(Stage, f64)>| SimulateArgs {
            members: 30,
            dimension: 50,
            degree: None,
            bits: 16,
            dropout,
            adversarial: 0.05,
            tolerated_dropout: Some(0.1),
            signed: false,
            seed: 1,
            json: true,
        };
        assert_eq!(
            run_simulation(&args(vec![(Stage::MaskedInput, 0.1)])),
            ExitCode::SUCCESS
        );
        assert_eq!(
            run_simulation(&args(vec![(Stage::MaskedInput, 0.9)])),
            ExitCode::FAILURE
        );
    }
}
