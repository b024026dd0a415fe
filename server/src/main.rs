//! `covey-server`: the operator's command line (init, serve, status, rounds, ledger,
//! export-model). Thin: parses arguments, calls `covey_server::ops`, prints text or JSON.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use covey_server::clock::SystemClock;
use covey_server::http::{HttpConfig, RateLimit, TlsFiles};
use covey_server::ops::{self, ServeOptions};
use covey_server::storage::Storage;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(name = "covey-server", version, about = "Covey aggregation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives.
#[derive(Debug, Args)]
struct StorageArgs {
    /// Data directory (holds the SQLite database).
    #[arg(long, default_value = "covey-data")]
    data: PathBuf,
    /// Use this PostgreSQL database instead of SQLite (several servers may share it).
    #[arg(long, env = "COVEY_POSTGRES_URL")]
    postgres: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a population from a TOML config (with its initial model version 0).
    Init {
        /// Population config file.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Serve the device API and drive rounds.
    Serve {
        #[command(flatten)]
        storage: StorageArgs,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// TLS certificate chain (PEM); with --tls-key, serves HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Largest request body in bytes.
        #[arg(long, default_value_t = 64 << 20)]
        max_body_bytes: usize,
        /// Requests a device may burst.
        #[arg(long, default_value_t = 60.0)]
        rate_burst: f64,
        /// Sustained requests per second per device.
        #[arg(long, default_value_t = 20.0)]
        rate_per_second: f64,
        /// Accept queue of the listener (connections waiting to be accepted; a cohort
        /// checks in at once).
        #[arg(long, default_value_t = ops::DEFAULT_BACKLOG)]
        backlog: u32,
        /// Round driver tick in milliseconds (0: serve the API only, drive no rounds).
        #[arg(long, default_value_t = 200)]
        tick_ms: u64,
        /// Drive only this population's rounds (repeatable; default: every population).
        #[arg(long = "drive")]
        drive: Vec<String>,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Populations: devices, model version, ε spent, active round, driving process.
    Status {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// A population's recent rounds.
    Rounds {
        /// Population.
        #[arg(long)]
        population: String,
        /// How many rounds.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// A population's privacy ledger.
    Ledger {
        /// Population.
        #[arg(long)]
        population: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Write a model version (default: the newest) to a file.
    ExportModel {
        /// Population.
        #[arg(long)]
        population: String,
        /// Version (default: newest).
        #[arg(long)]
        version: Option<u64>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

fn open(storage: &StorageArgs) -> covey_server::Result<Arc<dyn Storage>> {
    ops::open_storage(&storage.data, storage.postgres.as_deref())
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
    } else {
        print!("{}", text(value));
    }
}

fn run(cli: Cli) -> covey_server::Result<()> {
    match cli.command {
        Command::Init { config, storage } => {
            let store = open(&storage)?;
            let report = ops::init(&*store, &config, &mut *ops::os_rng())?;
            print(storage.json, &report, |r| {
                format!(
                    "created population {} ({} parameters, {} catalog items) in {}\n",
                    r.population, r.parameters, r.catalog_items, r.backend
                )
            });
        }
        Command::Serve {
            storage,
            listen,
            tls_cert,
            tls_key,
            max_body_bytes,
            rate_burst,
            rate_per_second,
            backlog,
            tick_ms,
            drive,
            log_json,
        } => {
            init_logging(log_json);
            let store = open(&storage)?;
            let tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| TlsFiles { cert, key });
            let scheme = if tls.is_some() { "https" } else { "http" };
            let options = ServeOptions {
                listen,
                backlog,
                http: HttpConfig {
                    max_body_bytes,
                    rate_limit: RateLimit {
                        burst: rate_burst,
                        per_second: rate_per_second,
                    },
                    tls,
                },
                tick: (tick_ms > 0).then(|| Duration::from_millis(tick_ms)),
                drive: (!drive.is_empty()).then_some(drive),
            };
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| covey_server::Error::Serve(e.to_string()))?;
            runtime.block_on(async {
                let running = ops::start(store, Arc::new(SystemClock), ops::os_rng(), &options)?;
                // Tests and scripts read this line to learn the bound port.
                println!("listening on {scheme}://{}", running.addr);
                let handle = running.handle();
                tokio::spawn(async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        handle.graceful_shutdown(Some(Duration::from_secs(5)));
                    }
                });
                running.wait().await
            })?;
        }
        Command::Status { storage } => {
            let report = ops::status(&*open(&storage)?)?;
            print(storage.json, &report, |list| {
                list.iter()
                    .map(|p| {
                        format!(
                            "{}: {} devices, model v{}, ε {:.4} of {}, {} rounds completed, \
                             active round {}, driver {}{}\n",
                            p.name,
                            p.devices,
                            p.model_version.map_or("-".into(), |v| v.to_string()),
                            p.epsilon_spent,
                            p.epsilon_budget.map_or("?".into(), |b| b.to_string()),
                            p.rounds_completed,
                            p.active_round
                                .map_or("none".into(), |(id, phase)| format!("{id} ({phase})")),
                            p.driver
                                .as_ref()
                                .map_or("none", |(owner, _)| owner.as_str()),
                            p.config_error
                                .as_ref()
                                .map_or(String::new(), |e| format!(" (config unreadable: {e})")),
                        )
                    })
                    .collect()
            });
        }
        Command::Rounds {
            population,
            limit,
            storage,
        } => {
            let report = ops::rounds(&*open(&storage)?, &population, limit)?;
            print(storage.json, &report, |list| {
                let mut out = format!(
                    "{:>6} {:<18} {:>5} {:>10} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}  \
                     reason\n",
                    "round",
                    "phase",
                    "base",
                    "checked-in",
                    "members",
                    "survivors",
                    "clip",
                    "next clip",
                    "unmask ms",
                    "decode ms",
                    "optim. ms"
                );
                let clip = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.4}"));
                for r in list {
                    let ms = |f: fn(&covey_server::storage::RoundProfile) -> f64| {
                        r.profile
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |p| format!("{:.1}", f(p)))
                    };
                    out += &format!(
                        "{:>6} {:<18} {:>5} {:>10} {:>8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}  \
                         {}\n",
                        r.id,
                        r.phase,
                        r.base_version,
                        r.profile
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), |p| p.checked_in.to_string()),
                        r.members,
                        r.survivors,
                        clip(r.clip),
                        clip(r.next_clip),
                        ms(|p| p.unmask_ms),
                        ms(|p| p.decode_ms),
                        ms(|p| p.optimizer_ms),
                        r.reason.as_deref().unwrap_or("")
                    );
                }
                out
            });
        }
        Command::Ledger {
            population,
            storage,
        } => {
            let report = ops::ledger(&*open(&storage)?, &population)?;
            print(storage.json, &report, |list| {
                let mut out = format!(
                    "{:>4} {:>6} {:>9} {:>10} {:>10} {:>8}\n",
                    "seq", "round", "survivors", "ε round", "ε total", "δ"
                );
                for e in list {
                    out += &format!(
                        "{:>4} {:>6} {:>9} {:>10.4} {:>10.4} {:>8.0e}\n",
                        e.seq, e.round_id, e.survivors, e.epsilon_round, e.epsilon_total, e.delta
                    );
                }
                out
            });
        }
        Command::ExportModel {
            population,
            version,
            out,
            storage,
        } => {
            let report = ops::export_model(&*open(&storage)?, &population, version, &out)?;
            print(storage.json, &report, |r| {
                format!(
                    "wrote model v{} ({} bytes, sha256 {}) to {}\n",
                    r.version,
                    r.bytes,
                    r.sha256,
                    r.path.display()
                )
            });
        }
    }
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
