//! `covey`: the command line for devices, evaluation, privacy accounting, SecAgg+ simulation
//! and the fleet demo. Each top-level command lives in its own module.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod privacy;
mod secagg;

#[derive(Debug, Parser)]
#[command(name = "covey", version, about = "Covey: consent-first federated personalization")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Privacy accounting: epsilon of a schedule, noise for a target.
    Privacy(privacy::PrivacyArgs),
    /// SecAgg+ secure aggregation: in-process simulation.
    Secagg(secagg::SecaggArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Privacy(args) => privacy::run(args),
        Command::Secagg(args) => secagg::run(args),
    }
}
