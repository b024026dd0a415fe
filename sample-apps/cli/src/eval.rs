//! `covey eval`: offline quality of the recommender on an interaction log or a synthetic
//! loyalty population: popularity vs the same MF trained centrally, full-catalog ranking.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use covey_model::{
    Dataset, EvalConfig, EvalReport, ModelConfig, Split, SyntheticConfig, generate_population,
    run_evaluation,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// `covey eval ...`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Interaction log: CSV `user_id,item_id,timestamp[,weight|rating]` with a header.
    #[arg(
        long,
        required_unless_present = "synthetic",
        conflicts_with = "synthetic"
    )]
    interactions: Option<PathBuf>,
    /// With `--interactions`: optional item file, CSV `item_id,category[,price]` with a
    /// header. With `--synthetic`: number of catalog items (default 1000).
    #[arg(long)]
    items: Option<String>,
    /// Evaluate on a seeded synthetic loyalty population instead of a log.
    #[arg(long)]
    synthetic: bool,
    /// Synthetic population: number of members.
    #[arg(long, default_value_t = 2000, requires = "synthetic")]
    members: usize,
    /// Embedding dimension.
    #[arg(long, default_value_t = 32)]
    dim: usize,
    /// Centralized training epochs.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Members whose uploads are averaged into each centralized step (0 = all members).
    #[arg(long, default_value_t = EvalConfig::default().batch_members)]
    batch_members: usize,
    /// Training settings: a JSON object of `covey_model::ModelConfig` fields (missing ones
    /// keep their defaults; `--dim` sets the shape), e.g. `{"unobserved_weight": 0.1}`.
    #[arg(long)]
    training: Option<PathBuf>,
    /// Seed of every random choice (data generation, initialisation, sampling).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rank training items too (default: leave them out and test on the last novel item).
    #[arg(long)]
    include_train_items: bool,
    /// Also write the split as CSV (train.csv, test.csv, items.csv) into this directory, to
    /// run other libraries on exactly the same data.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> ExitCode {
    match evaluate(&args) {
        Ok(report) => {
            print_report(&report, args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("covey eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn evaluate(args: &EvalArgs) -> Result<EvalReport, Box<dyn std::error::Error>> {
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let model = match &args.training {
        Some(path) => {
            serde_json::from_reader(open(path)?).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => ModelConfig::default(),
    };
    let mut config = EvalConfig {
        model,
        epochs: args.epochs,
        batch_members: args.batch_members,
        exclude_train_items: !args.include_train_items,
    };
    config.model.shape.dim = args.dim;
    let dataset = match &args.interactions {
        Some(path) => {
            let items = args
                .items
                .as_deref()
                .map(|p| open(Path::new(p)))
                .transpose()?;
            Dataset::from_csv(open(path)?, items)?
        }
        None => {
            let items = match &args.items {
                Some(n) => n
                    .parse()
                    .map_err(|_| "--items must be a number with --synthetic")?,
                None => SyntheticConfig::default().items,
            };
            let synth = SyntheticConfig {
                members: args.members,
                items,
                ..SyntheticConfig::default()
            };
            generate_population(&synth, &mut rng)?.to_dataset(&config.model.weights)
        }
    };
    if let Some(dir) = &args.export {
        export(&dataset, &config, dir)?;
    }
    Ok(run_evaluation(&dataset, &config, &mut rng)?)
}

fn open(path: &Path) -> Result<BufReader<File>, Box<dyn std::error::Error>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("{}: {e}", path.display()).into())
}

fn export(
    dataset: &Dataset,
    config: &EvalConfig,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let split = Split::leave_last_out(dataset, config);
    let (train, test) = split.partition(dataset);
    dataset.write_interactions_csv(&train, &mut File::create(dir.join("train.csv"))?)?;
    dataset.write_interactions_csv(&test, &mut File::create(dir.join("test.csv"))?)?;
    dataset.write_items_csv(&mut File::create(dir.join("items.csv"))?)?;
    Ok(())
}

fn print_report(report: &EvalReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
        return;
    }
    let d = &report.dataset;
    println!(
        "{} members, {} items, {} interactions ({} for training), {} held-out members{}",
        d.members,
        d.items,
        d.interactions,
        d.train_interactions,
        d.test_members,
        if d.exclude_train_items {
            ", training items excluded"
        } else {
            ""
        }
    );
    println!(
        "{:<16} {:>8} {:>10} {:>12} {:>10}",
        "model", "HR@10", "NDCG@10", "coverage@10", "train s"
    );
    for r in &report.results {
        println!(
            "{:<16} {:>8.4} {:>10.4} {:>12.4} {:>10.2}",
            r.model, r.hr_at_10, r.ndcg_at_10, r.coverage_at_10, r.train_seconds
        );
    }
}
