//! One simulated day: the devices that are idle and charging today open their stores and
//! call `Device::participate` at once, each on its own thread (SecAgg+ needs the cohort
//! together) with its own HTTP client (its own keep-alive connection, as a phone has),
//! some through a transport that drops out at a random stage. How many devices compute at
//! the same instant is bounded by the machine's cores ([`Cores`]). The server selects,
//! aggregates and publishes; the fleet waits for the round to end and reads what happened
//! from the server's records.

use std::time::{Duration, Instant};

use covey_sdk::participate::{
    CancelToken, DeviceConditions, ParticipationOptions, ParticipationOutcome,
};
use covey_sdk::transport::HttpTransport;
use covey_server::ops::Running;
use covey_server::storage::{RoundPhase, RoundProfile, RoundRecord};
use rand_core::RngCore;

use super::FleetError;
use super::devices::{Fleet, SimDevice};
use super::transport::{Cores, DROPOUT_STAGES, DropoutTransport, OnCore};

/// Stack of a device thread: training and SecAgg+ run on it.
const DEVICE_STACK: usize = 2 << 20;
/// Devices long-poll (the server answers as soon as the round moves, holding each poll up
/// to five seconds), so no device sits out a pause after its stage opened.
const POLLING: ParticipationOptions = ParticipationOptions {
    patience: Duration::from_secs(300),
    max_poll_interval: Duration::from_secs(5),
};
/// Longest the fleet waits for the server to open or finish a round.
const ROUND_PATIENCE: Duration = Duration::from_secs(600);

/// How one device's attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// Its masked update was uploaded and the round went on.
    Completed(ParticipationOutcome),
    /// The SDK declined, naming why (no consent, too few examples, ...).
    Ineligible(String),
    /// Checked in but the server picked others for the cohort.
    NotSelected,
    /// The simulated network failure hit it.
    DroppedOut,
    /// Anything else (reported; the round may still complete without it).
    Failed(String),
}

/// What the fleet saw of one round.
#[derive(Debug)]
pub struct RoundRun {
    /// The server's record of the round.
    pub record: RoundRecord,
    /// Each attempting device's outcome.
    pub attempts: Vec<Attempt>,
    /// Wall time from launching the devices to the round's end.
    pub seconds: f64,
    /// The server's measurements (completed rounds).
    pub profile: Option<RoundProfile>,
}

/// Runs one round with `available` devices trying; `dropout` is each one's chance of
/// losing the network at a uniformly chosen stage.
pub fn run_round(
    fleet: &Fleet,
    server: &Running,
    population: &str,
    devices: &[&SimDevice],
    dropout: f64,
    rng: &mut impl RngCore,
) -> Result<RoundRun, FleetError> {
    let base = format!("http://{}", server.addr);
    let cores = Cores::of_this_machine();
    let plans: Vec<Option<&'static str>> = devices
        .iter()
        .map(|_| {
            (unit(rng) < dropout)
                .then(|| DROPOUT_STAGES[(rng.next_u32() as usize) % DROPOUT_STAGES.len()])
        })
        .collect();
    // Open every store first, then wait for the round: check-ins arrive together, early
    // in the window.
    let opened: Vec<covey_sdk::Device> = devices
        .iter()
        .map(|d| fleet.open(d))
        .collect::<Result<_, _>>()?;
    let round = wait_for_check_in(server, population)?;
    let started = Instant::now();
    let attempts = std::thread::scope(|scope| {
        let handles: Vec<_> = opened
            .iter()
            .zip(&plans)
            .map(|(device, plan)| {
                let (base, cores) = (&base, &cores);
                std::thread::Builder::new()
                    .stack_size(DEVICE_STACK)
                    .spawn_scoped(scope, move || {
                        let http = HttpTransport::new(base);
                        attempt(device, &OnCore::new(&http, cores), population, *plan)
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Attempt::Failed("device thread panicked".into())),
                Err(e) => Attempt::Failed(format!("could not start a device thread: {e}")),
            })
            .collect::<Vec<_>>()
    });
    let record = wait_for_end(server, round)?;
    let seconds = started.elapsed().as_secs_f64();
    let profile = server.service.store().round_profile(record.id)?;
    Ok(RoundRun {
        record,
        attempts,
        seconds,
        profile,
    })
}

/// The device's whole participation: eligibility, check-in, training, encoding, SecAgg+.
fn attempt(
    device: &covey_sdk::Device,
    network: &OnCore<'_, HttpTransport>,
    population: &str,
    dropout: Option<&'static str>,
) -> Attempt {
    let transport = DropoutTransport::new(network, dropout);
    // A simulated phone is always idle, charging and on Wi-Fi: whether it takes part is
    // decided by consent, the population's policy and the server's selection.
    let conditions = DeviceConditions::ideal();
    let cancel = CancelToken::new();
    let mut queued_before = network.queued();
    let mut result = device.participate_with(&transport, &conditions, &cancel, &POLLING);
    // Registers on its first eligible day only: a device without consent never contacts
    // the server (the SDK declines before needing a registration).
    if matches!(result, Err(covey_sdk::Error::NotRegistered)) {
        if let Err(e) = device.join(network, population) {
            return Attempt::Failed(format!("registration: {e}"));
        }
        queued_before = network.queued();
        result = device.participate_with(&transport, &conditions, &cancel, &POLLING);
    }
    match result {
        Ok(mut outcome) => {
            // The SDK times requests from outside the transport: waiting for a simulated
            // core happened inside them but is the simulator's queue, not the network.
            let queued = (network.queued() - queued_before).as_secs_f64() * 1e3;
            let upload_queued = network.queued_after_upload().as_secs_f64() * 1e3;
            let timings = &mut outcome.timings;
            timings.network_ms = (timings.network_ms - queued).max(0.0);
            timings.upload_ms = (timings.upload_ms - upload_queued).max(0.0);
            Attempt::Completed(outcome)
        }
        Err(_) if transport.dropped() => Attempt::DroppedOut,
        Err(covey_sdk::Error::NotEligible(why)) => Attempt::Ineligible(why.to_string()),
        Err(covey_sdk::Error::NotSelected) => Attempt::NotSelected,
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

/// The population's round in check-in (the driver opens one shortly after the last ended).
fn wait_for_check_in(server: &Running, population: &str) -> Result<i64, FleetError> {
    let start = Instant::now();
    loop {
        let active = active_round(server, population)?;
        if let Some(r) = active.filter(|r| r.phase == RoundPhase::CheckIn) {
            return Ok(r.id);
        }
        if start.elapsed() > ROUND_PATIENCE {
            return Err(FleetError::Stalled(
                "the server opened no round (privacy budget exhausted?)".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn active_round(server: &Running, population: &str) -> Result<Option<RoundRecord>, FleetError> {
    Ok(server
        .service
        .store()
        .rounds(population, 1)?
        .into_iter()
        .find(|r| r.phase.is_active()))
}

/// Round `id` once completed or aborted.
fn wait_for_end(server: &Running, id: i64) -> Result<RoundRecord, FleetError> {
    let start = Instant::now();
    loop {
        if let Some(r) = server.service.store().round(id)?
            && !r.phase.is_active()
        {
            return Ok(r);
        }
        if start.elapsed() > ROUND_PATIENCE {
            return Err(FleetError::Stalled(format!("round {id} did not finish")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Uniform in [0, 1).
pub fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The devices available today: `count` drawn uniformly without replacement.
pub fn available<'a>(
    devices: &'a [SimDevice],
    count: usize,
    rng: &mut impl RngCore,
) -> Vec<&'a SimDevice> {
    let mut all: Vec<&SimDevice> = devices.iter().collect();
    let take = count.min(all.len());
    for i in 0..take {
        let j = i + (rng.next_u64() % (all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(take);
    all
}
