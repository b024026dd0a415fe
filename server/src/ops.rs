//! Operator operations behind the `covey-server` commands: open the storage, initialise a
//! population, start the server (HTTP + round driver), and the read-only reports
//! (`status`, `rounds`, `ledger`, `export-model`). Each report is a serialisable struct so
//! the CLI prints it as text or `--json`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use covey_protocol::dp::DpPlan;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::{PopulationConfig, parse_catalog};
use crate::driver::{DEFAULT_TICK, Driver};
use crate::error::{Error, Result};
use crate::http::{self, HttpConfig, RateLimit};
use crate::service::{CryptoRngSend, Service, init_population, with_rng};
use crate::storage::{PostgresStorage, RoundProfile, SessionRecord, SqliteStorage, Storage};
use crate::token::random_id;

/// Name of the SQLite file inside the data directory.
pub const DATABASE_FILE: &str = "covey.db";

/// Opens PostgreSQL at `postgres` when given, else SQLite in `data` (created if needed).
pub fn open_storage(data: &Path, postgres: Option<&str>) -> Result<Arc<dyn Storage>> {
    if let Some(url) = postgres {
        return Ok(Arc::new(PostgresStorage::connect(url)?));
    }
    std::fs::create_dir_all(data).map_err(|source| Error::File {
        action: "creating data directory",
        path: data.to_path_buf(),
        source,
    })?;
    Ok(Arc::new(SqliteStorage::open(&data.join(DATABASE_FILE))?))
}

/// The operating system's CSPRNG, as the process RNG.
pub fn os_rng() -> Box<dyn CryptoRngSend> {
    Box::new(rand::rngs::StdRng::from_os_rng())
}

use rand::SeedableRng as _;

/// What `init` created.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// Population name.
    pub population: String,
    /// Storage backend.
    pub backend: &'static str,
    /// Parameters of the initial model version 0.
    pub parameters: usize,
    /// Catalog items loaded.
    pub catalog_items: usize,
}

/// `covey-server init`: validates `config_path` and creates the population with model 0.
pub fn init(
    store: &dyn Storage,
    config_path: &Path,
    rng: &mut dyn CryptoRngSend,
) -> Result<InitReport> {
    let config = PopulationConfig::load(config_path)?;
    init_population(store, &SystemClock, rng, &config)?;
    Ok(InitReport {
        population: config.name().to_owned(),
        backend: store.backend(),
        parameters: config.parameters(),
        catalog_items: config.catalog().len(),
    })
}

/// Connections the kernel queues for `accept` by default: a whole cohort checking in at
/// once must not overflow it (std's `TcpListener::bind` asks for 128, and connections
/// beyond that wait for SYN retransmits or are reset). Linux caps it at
/// `net.core.somaxconn` (4096 on current kernels).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Length of the listener's accept queue.
    pub backlog: u32,
    /// HTTP limits and TLS.
    pub http: HttpConfig,
    /// Round driver tick; `None` serves the API without driving rounds.
    pub tick: Option<Duration>,
    /// Populations whose rounds this process may drive (`None`: all of them).
    pub drive: Option<Vec<String>>,
}

impl ServeOptions {
    /// An embedded server for tests, demos and the fleet simulator: plain HTTP on a free
    /// loopback port, request bodies up to `max_body_bytes`, every population's rounds
    /// driven every [`DEFAULT_TICK`] / 4 (rounds move on quickly), and a rate limit sized
    /// for one host that runs every device (100,000 requests burst and per second: the
    /// limiter stays in the request path, but a simulated fleet never trips it). Adjust
    /// fields with struct update syntax, e.g. `ServeOptions { tick: None,
    /// ..ServeOptions::loopback(1 << 20) }` to serve without driving rounds.
    pub fn loopback(max_body_bytes: usize) -> Self {
        ServeOptions {
            listen: (Ipv4Addr::LOCALHOST, 0).into(),
            backlog: DEFAULT_BACKLOG,
            http: HttpConfig {
                max_body_bytes,
                rate_limit: RateLimit {
                    burst: 100_000.0,
                    per_second: 100_000.0,
                },
                tls: None,
            },
            tick: Some(DEFAULT_TICK / 4),
            drive: None,
        }
    }
}

/// Binds `addr` with an accept queue of `backlog` connections (must run on a tokio
/// runtime with I/O enabled, as the server does).
fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener> {
    let failed = |e: std::io::Error| Error::Serve(format!("binding {addr}: {e}"));
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(failed)?;
    // A restarted server can rebind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(addr).map_err(failed)?;
    socket
        .listen(backlog)
        .and_then(tokio::net::TcpListener::into_std)
        .map_err(failed)
}

/// A running server: its address, and the means to stop it.
#[derive(Debug)]
pub struct Running {
    /// Bound address.
    pub addr: SocketAddr,
    /// The service (for in-process tests and embedding).
    pub service: Arc<Service>,
    handle: axum_server::Handle,
    stop: Arc<AtomicBool>,
    driver: Option<std::thread::JoinHandle<()>>,
    http: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Stops the driver and the listener and waits for both.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.graceful_shutdown(Some(Duration::from_secs(2)));
        if let Some(driver) = self.driver.take() {
            let _ = tokio::task::spawn_blocking(move || driver.join()).await;
        }
        self.http
            .await
            .map_err(|e| Error::Serve(format!("server task: {e}")))?
    }

    /// Waits until the HTTP server stops (by signal in the CLI).
    pub async fn wait(self) -> Result<()> {
        let Running {
            http, stop, driver, ..
        } = self;
        let result = http
            .await
            .map_err(|e| Error::Serve(format!("server task: {e}")))?;
        stop.store(true, Ordering::SeqCst);
        if let Some(driver) = driver {
            let _ = tokio::task::spawn_blocking(move || driver.join()).await;
        }
        result
    }

    /// The listener's handle (to shut it down from a signal handler).
    pub fn handle(&self) -> axum_server::Handle {
        self.handle.clone()
    }
}

/// Starts the HTTP API and (unless disabled) the round driver on the current tokio runtime.
pub fn start(
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    rng: Box<dyn CryptoRngSend>,
    options: &ServeOptions,
) -> Result<Running> {
    let service = Arc::new(Service::new(store, clock, rng));
    let listener = bind(options.listen, options.backlog)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Serve(e.to_string()))?;
    let app = http::router(Arc::clone(&service), &options.http);
    let handle = axum_server::Handle::new();
    let tls = options.http.tls.clone();
    let task_handle = handle.clone();
    let http =
        tokio::spawn(async move { http::serve(listener, app, tls.as_ref(), task_handle).await });
    let stop = Arc::new(AtomicBool::new(false));
    let driver = match options.tick {
        Some(tick) => {
            let owner = with_rng(service.rng(), |rng| random_id(rng))?;
            let driver = Driver::new(Arc::clone(&service), owner, tick, options.drive.clone());
            let stop = Arc::clone(&stop);
            Some(
                std::thread::Builder::new()
                    .name("covey-round-driver".into())
                    .spawn(move || driver.run(&stop))
                    .map_err(|e| Error::Serve(format!("starting the round driver: {e}")))?,
            )
        }
        None => None,
    };
    Ok(Running {
        addr,
        service,
        handle,
        stop,
        driver,
        http,
    })
}

/// One population's state for `status`.
#[derive(Debug, Clone, Serialize)]
pub struct PopulationStatus {
    /// Name.
    pub name: String,
    /// Registered devices.
    pub devices: u64,
    /// Newest model version.
    pub model_version: Option<u64>,
    /// ε spent / budget.
    pub epsilon_spent: f64,
    /// Lifetime budget (`None` when the stored config cannot be read).
    pub epsilon_budget: Option<f64>,
    /// Why the stored config cannot be read (e.g. written by an incompatible version); the
    /// other figures come from storage and are still shown.
    pub config_error: Option<String>,
    /// Completed rounds.
    pub rounds_completed: usize,
    /// The active round: `(id, phase)`.
    pub active_round: Option<(i64, &'static str)>,
    /// Which process drives its rounds, and until when (ms since the epoch).
    pub driver: Option<(String, i64)>,
}

/// `covey-server status`.
pub fn status(store: &dyn Storage) -> Result<Vec<PopulationStatus>> {
    store
        .populations()?
        .into_iter()
        .map(|p| {
            // One unreadable population must not hide the state of the others.
            let config = parse_catalog(p.catalog.as_bytes())
                .and_then(|catalog| PopulationConfig::from_toml(&p.config_toml, catalog));
            let active = store
                .rounds(&p.name, 1)?
                .into_iter()
                .find(|r| r.phase.is_active());
            Ok(PopulationStatus {
                devices: store.device_count(&p.name)?,
                model_version: store.latest_model(&p.name)?.map(|m| m.version),
                epsilon_spent: store.epsilon_spent(&p.name)?,
                epsilon_budget: config.as_ref().ok().map(|c| c.privacy().epsilon_budget),
                config_error: config.err().map(|e| e.to_string()),
                rounds_completed: store.ledger(&p.name)?.len(),
                active_round: active.map(|r| (r.id, r.phase.name())),
                driver: store
                    .lease(&format!("rounds:{}", p.name))?
                    .map(|l| (l.owner, l.expires_at)),
                name: p.name,
            })
        })
        .collect()
}

/// One round for `rounds`.
#[derive(Debug, Clone, Serialize)]
pub struct RoundSummary {
    /// Id.
    pub id: i64,
    /// Phase name.
    pub phase: &'static str,
    /// Model version trained on.
    pub base_version: u64,
    /// Members checked in.
    pub members: usize,
    /// Members whose inputs entered the sum (completed rounds).
    pub survivors: usize,
    /// Opening time (ms since the epoch).
    pub opened_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Abort reason.
    pub reason: Option<String>,
    /// The L2 clip of the round's DP plan, once its cohort is fixed.
    pub clip: Option<f64>,
    /// With adaptive clipping, the clip the round set for the next one (completed rounds).
    pub next_clip: Option<f64>,
    /// Cohort selection and server timings (completed rounds).
    pub profile: Option<RoundProfile>,
}

/// `covey-server rounds`: the newest `limit` rounds of a population.
pub fn rounds(store: &dyn Storage, population: &str, limit: u32) -> Result<Vec<RoundSummary>> {
    store
        .rounds(population, limit)?
        .into_iter()
        .map(|r| {
            let profile = store.round_profile(r.id)?;
            Ok(RoundSummary {
                members: store.members(r.id)?.len(),
                survivors: r.survivors.len(),
                id: r.id,
                phase: r.phase.name(),
                base_version: r.base_version,
                opened_at: r.opened_at,
                updated_at: r.updated_at,
                clip: r.session.as_ref().map(plan_clip).transpose()?,
                next_clip: profile
                    .as_ref()
                    .and_then(|p| p.adaptive)
                    .map(|a| a.next_clip),
                profile,
                reason: r.reason,
            })
        })
        .collect()
}

/// The clip of a round's stored DP plan.
fn plan_clip(session: &SessionRecord) -> Result<f64> {
    let plan: DpPlan = serde_json::from_str(&session.dp_plan).map_err(|e| Error::Corrupt {
        what: "round DP plan",
        reason: e.to_string(),
    })?;
    Ok(plan.clip)
}

/// One ledger entry for `ledger`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerLine {
    /// Sequence number.
    pub seq: u64,
    /// Round.
    pub round_id: i64,
    /// Survivors charged.
    pub survivors: u64,
    /// ε added by the round.
    pub epsilon_round: f64,
    /// ε after the round.
    pub epsilon_total: f64,
    /// δ.
    pub delta: f64,
    /// The accountant's event (mechanism, noise, sampling).
    pub event: serde_json::Value,
    /// Charge time.
    pub created_at: i64,
}

/// `covey-server ledger`.
pub fn ledger(store: &dyn Storage, population: &str) -> Result<Vec<LedgerLine>> {
    store
        .ledger(population)?
        .into_iter()
        .map(|e| {
            Ok(LedgerLine {
                event: serde_json::from_str(&e.event).map_err(|err| Error::Corrupt {
                    what: "ledger event",
                    reason: err.to_string(),
                })?,
                seq: e.seq,
                round_id: e.round_id,
                survivors: e.survivors,
                epsilon_round: e.epsilon_round,
                epsilon_total: e.epsilon_total,
                delta: e.delta,
                created_at: e.created_at,
            })
        })
        .collect()
}

/// What `export-model` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Version exported.
    pub version: u64,
    /// Output file.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: usize,
    /// SHA-256 of the blob (hex).
    pub sha256: String,
}

/// `covey-server export-model`: writes a model version's blob
/// (`covey_model::GlobalModel::to_bytes`, readable by `GlobalModel::from_bytes`).
pub fn export_model(
    store: &dyn Storage,
    population: &str,
    version: Option<u64>,
    out: &Path,
) -> Result<ExportReport> {
    let version = match version {
        Some(v) => v,
        None => {
            store
                .latest_model(population)?
                .ok_or(Error::NotFound("model version"))?
                .version
        }
    };
    let model = store
        .model(population, version)?
        .ok_or(Error::NotFound("model version"))?;
    std::fs::write(out, &model.params).map_err(|source| Error::File {
        action: "writing",
        path: out.to_path_buf(),
        source,
    })?;
    Ok(ExportReport {
        version,
        path: out.to_path_buf(),
        bytes: model.params.len(),
        sha256: hex::encode(model.digest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{PopulationRecord, SqliteStorage};

    #[test]
    fn status_reports_an_unreadable_population_and_still_lists_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStorage::open(&dir.path().join("server.db")).expect("open");
        store
            .create_population(&PopulationRecord {
                name: "legacy".into(),
                config_toml: "[model]\nitems = 2000\n".into(),
                catalog: String::new(),
                created_at: 0,
            })
            .expect("create");
        let report = status(&store).expect("status answers");
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].name, "legacy");
        assert_eq!(report[0].epsilon_budget, None);
        assert!(report[0].config_error.is_some());
    }

    #[tokio::test]
    async fn the_listener_queues_a_cohort_checking_in_at_once() {
        // Nothing accepts here, so a connection completes its handshake only while the
        // kernel's accept queue has room: std's `bind` leaves room for 128.
        let listener = bind((Ipv4Addr::LOCALHOST, 0).into(), 1024).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connected = (0..300)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
            .collect::<std::io::Result<Vec<_>>>();
        assert_eq!(connected.map(|c| c.len()).ok(), Some(300));
    }

    #[test]
    fn loopback_options_listen_on_a_free_loopback_port_and_drive_rounds() {
        let options = ServeOptions::loopback(1 << 20);
        assert!(options.listen.ip().is_loopback());
        assert_eq!(options.listen.port(), 0);
        assert_eq!(options.http.max_body_bytes, 1 << 20);
        assert!(options.http.tls.is_none());
        assert!(options.tick.is_some() && options.drive.is_none());
        assert_eq!(options.backlog, DEFAULT_BACKLOG);
    }
}
