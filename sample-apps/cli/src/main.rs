//! `covey`: the command line for devices, evaluation, privacy accounting, SecAgg+ simulation
//! and the fleet demo. Each top-level command lives in its own module.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod consent_cmd;
mod device;
mod eval;
mod fleet;
mod privacy;
mod recommend_cmd;
mod secagg;

#[derive(Debug, Parser)]
#[command(
    name = "covey",
    version,
    about = "Covey: consent-first federated personalization"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The member's encrypted store on this computer: record, import, list, export, erase.
    Device(device::DeviceArgs),
    /// Offline recommender quality: popularity vs centralized MF, full-catalog ranking.
    Eval(eval::EvalArgs),
    /// The fleet simulator: an embedded server and N simulated devices running real rounds.
    Fleet(fleet::FleetArgs),
    /// Privacy accounting: epsilon of a schedule, noise for a target.
    Privacy(privacy::PrivacyArgs),
    /// SecAgg+ secure aggregation: in-process simulation.
    Secagg(secagg::SecaggArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Device(args) => device::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Fleet(args) => fleet::run(args),
        Command::Privacy(args) => privacy::run(args),
        Command::Secagg(args) => secagg::run(args),
    }
}
