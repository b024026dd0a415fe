//! The round driver: opens rounds, fixes cohorts, runs the SecAgg+ server state machine
//! stage by stage against per-stage deadlines, decodes the DP sum, applies the server
//! optimizer, charges the privacy ledger and publishes the next model version.
//!
//! One process drives a population's rounds at a time: the holder of the lease
//! `rounds:<population>` (renewed every tick, taken over by another process once expired).
//! The SecAgg+ server state lives only in the driving process's memory — masked inputs are
//! folded into a running sum on arrival and never persisted — so a round whose driver dies
//! mid-protocol cannot be resumed; the next lease holder aborts it (no model published, no
//! ε charged) and opens a fresh round. A round still in check-in is simply resumed. Every
//! transition is one conditional transaction, and completion (model version + ledger
//! charge + round state) is one transaction: a crash at any point leaves either all of it or
//! none of it.
//!
//! With adaptive clipping (`[privacy.adaptive_clip]`) each round's plan carries the clip of
//! its base model version ([`round_clip`]) and the clip-indicator coordinate; the decoded,
//! noised count sets the next clip, which is stored with the model version the round
//! publishes, in the same transaction. A restarted server therefore resumes the clip where
//! the last completed round left it, and an aborted round leaves it unchanged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use covey_protocol::accounting::{Accountant, PrivacyEvent, Sampling};
use covey_protocol::dp::{self, DecodedUpdate, Decoder, DpPlan, NoiseShare, PlanRequest};
use covey_protocol::secagg::{self, MemberId, ServerStep, SessionId, SessionParams, Stage};

use crate::clock::Millis;
use crate::config::PopulationConfig;
use crate::error::{Error, Result};
use crate::metrics;
use crate::optimizer::{self, OptimizerState};
use crate::service::{Service, model_record, with_rng};
use crate::storage::{
    LedgerEntry, NewRound, ROUND_PROFILE_VERSION, RoundCompletion, RoundId, RoundPhase,
    RoundProfile, RoundRecord, SessionRecord, StageProfile, Transition,
};
use covey_model::GlobalModel;

/// How often the driver looks at its rounds.
pub const DEFAULT_TICK: Duration = Duration::from_millis(200);

/// Lease lifetime in ticks: long enough to survive a slow transaction, short enough that a
/// dead driver's population is taken over within a second or two.
const LEASE_TICKS: i64 = 10;

/// A round this process is driving.
#[derive(Debug)]
struct Live {
    population: String,
    server: secagg::Server,
    plan: DpPlan,
    /// Measurements so far (stored with the completed round).
    profile: RoundProfile,
    /// When the current stage opened (service clock).
    stage_opened: Millis,
    /// Server compute spent on the current stage's messages so far.
    stage_compute: Duration,
}

/// The driver of one server process.
#[derive(Debug)]
pub struct Driver {
    service: Arc<Service>,
    owner: String,
    tick: Duration,
    live: HashMap<RoundId, Live>,
    /// Populations found out of budget (cleared when this process restarts).
    exhausted: HashSet<String>,
    /// Populations this driver may drive (`None`: all).
    only: Option<Vec<String>>,
}

impl Driver {
    /// A driver identified as `owner` in leases (unique per process), driving the rounds
    /// of the populations in `only` (all when `None`).
    pub fn new(
        service: Arc<Service>,
        owner: String,
        tick: Duration,
        only: Option<Vec<String>>,
    ) -> Self {
        Driver {
            service,
            owner,
            tick,
            live: HashMap::new(),
            exhausted: HashSet::new(),
            only,
        }
    }

    /// Ticks until `stop` is set. Errors of one tick are logged; the next tick retries.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            if let Err(e) = self.tick() {
                tracing::warn!(error = %e, "round driver tick failed");
            }
            std::thread::sleep(self.tick);
        }
    }

    fn lease_ms(&self) -> Millis {
        i64::try_from(self.tick.as_millis()).unwrap_or(1000) * LEASE_TICKS
    }

    /// One pass over every population.
    pub fn tick(&mut self) -> Result<()> {
        let populations = self.service.store().populations()?;
        for p in populations {
            if self
                .only
                .as_ref()
                .is_some_and(|only| !only.contains(&p.name))
            {
                continue;
            }
            let key = format!("rounds:{}", p.name);
            let now = self.service.clock().now_ms();
            if !self
                .service
                .store()
                .acquire_lease(&key, &self.owner, now, self.lease_ms())?
            {
                // Someone else drives this population: forget anything we held.
                self.live.retain(|_, l| l.population != p.name);
                continue;
            }
            let config = self.service.config(&p.name)?;
            if let Err(e) = self.drive_population(&config) {
                tracing::warn!(population = %p.name, error = %e, "driving rounds failed");
            }
        }
        Ok(())
    }

    fn drive_population(&mut self, config: &PopulationConfig) -> Result<()> {
        let store = self.service.store();
        let active = store
            .rounds(config.name(), 1)?
            .into_iter()
            .find(|r| r.phase.is_active());
        match active {
            None => self.maybe_open(config),
            Some(round) => self.drive_round(config, round),
        }
    }

    /// Opens a round unless the budget cannot pay for one more.
    fn maybe_open(&mut self, config: &PopulationConfig) -> Result<()> {
        if self.exhausted.contains(config.name()) {
            return Ok(());
        }
        let store = self.service.store();
        let base = store
            .latest_model(config.name())?
            .ok_or(Error::NotFound("model version"))?;
        // The cheapest round a plan allows (fewest survivors, least noise) must fit.
        let clip = round_clip(config, base.clip);
        let plan = self.plan_for(config, config.secagg().cohort_min, clip)?;
        let ledger = store.ledger(config.name())?;
        let projected = epsilon_after(config, &ledger, &plan, plan.min_survivors)?;
        if projected > config.privacy().epsilon_budget {
            tracing::warn!(
                population = config.name(),
                projected,
                budget = config.privacy().epsilon_budget,
                "privacy budget exhausted: no further rounds"
            );
            self.exhausted.insert(config.name().to_owned());
            return Ok(());
        }
        let now = self.service.clock().now_ms();
        let id = store.open_round(&NewRound {
            population: config.name().to_owned(),
            base_version: base.version,
            opened_at: now,
            deadline: now + config.deadlines().check_in_ms(),
        })?;
        self.service.progress().announce();
        tracing::info!(population = config.name(), round = id, "round opened");
        Ok(())
    }

    fn drive_round(&mut self, config: &PopulationConfig, round: RoundRecord) -> Result<()> {
        let now = self.service.clock().now_ms();
        match round.phase {
            RoundPhase::CheckIn => self.drive_check_in(config, &round, now),
            RoundPhase::Stage(stage) => {
                if !self.live.contains_key(&round.id) {
                    return self.abort(
                        &round,
                        "the driving process lost its in-memory SecAgg+ state (restart or \
                         takeover); the round cannot be resumed without double counting",
                    );
                }
                self.drive_stage(config, &round, stage, now)
            }
            RoundPhase::Completed | RoundPhase::Aborted => Ok(()),
        }
    }

    fn abort(&mut self, round: &RoundRecord, reason: &str) -> Result<()> {
        self.live.remove(&round.id);
        let now = self.service.clock().now_ms();
        self.service
            .store()
            .abort_round(round.id, round.phase, reason, now)?;
        self.service.progress().announce();
        metrics::inc(&self.service.metrics().rounds_aborted);
        tracing::warn!(round = round.id, reason, "round aborted");
        Ok(())
    }

    /// A DP plan for a cohort of `cohort` at `clip` with a fresh rotation seed.
    fn plan_for(&self, config: &PopulationConfig, cohort: usize, clip: f64) -> Result<DpPlan> {
        let mut seed = [0u8; 32];
        with_rng(self.service.rng(), |rng| rng.fill_bytes(&mut seed))?;
        plan_for(config, cohort, clip, seed)
    }

    fn drive_check_in(
        &mut self,
        config: &PopulationConfig,
        round: &RoundRecord,
        now: Millis,
    ) -> Result<()> {
        let store = self.service.store();
        let members = store.members(round.id)?;
        let full = members.len() >= config.secagg().check_in_max();
        if !full && now < round.deadline {
            return Ok(());
        }
        if members.len() < config.secagg().cohort_min {
            // Too few devices so far: keep the window open rather than churn rounds.
            let deadline = now + config.deadlines().check_in_ms();
            return store.advance_round(&Transition {
                id: round.id,
                from: round.phase,
                to: round.phase,
                deadline,
                session: None,
                messages: &[],
                cohort: None,
                now,
            });
        }
        let selected = self.select_cohort(&members, config.secagg().cohort_max)?;
        let roster: Vec<MemberId> = selected.iter().copied().map(MemberId).collect();
        let started = self.start_session(config, round, &roster);
        let (server, plan, record) = match started {
            Ok(s) => s,
            Err(e) => return self.abort(round, &format!("could not start the session: {e}")),
        };
        let to = RoundPhase::Stage(Stage::AdvertiseKeys);
        let deadline = now + config.deadlines().stage_ms(Stage::AdvertiseKeys);
        store.advance_round(&Transition {
            id: round.id,
            from: round.phase,
            to,
            deadline,
            session: Some(&record),
            messages: &[],
            cohort: Some(&selected),
            now,
        })?;
        self.service.progress().announce();
        let population = config.name().to_owned();
        let profile = RoundProfile {
            version: ROUND_PROFILE_VERSION,
            checked_in: u32::try_from(members.len()).unwrap_or(u32::MAX),
            cohort: u32::try_from(roster.len()).unwrap_or(u32::MAX),
            check_in_ms: now - round.opened_at,
            clip: Some(plan.clip),
            ..RoundProfile::default()
        };
        let clip = plan.clip;
        self.live.insert(
            round.id,
            Live {
                population,
                server,
                plan,
                profile,
                stage_opened: now,
                stage_compute: Duration::ZERO,
            },
        );
        tracing::info!(
            round = round.id,
            checked_in = members.len(),
            cohort = roster.len(),
            clip,
            "cohort fixed; SecAgg+ started"
        );
        Ok(())
    }

    /// Up to `cohort_max` member ids drawn uniformly without replacement from the devices
    /// checked in (a partial Fisher–Yates shuffle on the server's CSPRNG), sorted as the
    /// SecAgg+ roster requires. Everyone is selected when few enough checked in.
    fn select_cohort(&self, members: &[(String, u32)], cohort_max: usize) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = members.iter().map(|(_, m)| *m).collect();
        let take = cohort_max.min(ids.len());
        with_rng(self.service.rng(), |rng| {
            for i in 0..take {
                let remaining = (ids.len() - i) as u64;
                // Rejection sampling: no modulo bias, even with millions of check-ins.
                let zone = u64::MAX - u64::MAX % remaining;
                let j = loop {
                    let r = rng.next_u64();
                    if r < zone {
                        break i + (r % remaining) as usize;
                    }
                };
                ids.swap(i, j);
            }
        })?;
        ids.truncate(take);
        ids.sort_unstable();
        Ok(ids)
    }

    fn start_session(
        &self,
        config: &PopulationConfig,
        round: &RoundRecord,
        roster: &[MemberId],
    ) -> Result<(secagg::Server, DpPlan, SessionRecord)> {
        let base = self
            .service
            .store()
            .model(config.name(), round.base_version)?
            .ok_or(Error::NotFound("base model version"))?;
        let plan = self.plan_for(config, roster.len(), round_clip(config, base.clip))?;
        let graph = secagg::params::find(roster.len(), &config.secagg().threat_model())?;
        let mut session_id = [0u8; 32];
        with_rng(self.service.rng(), |rng| rng.fill_bytes(&mut session_id))?;
        let params = SessionParams {
            session_id: SessionId(session_id),
            bits: plan.bits,
            dimension: plan.vector_len(),
            degree: graph.degree,
            threshold: graph.threshold,
            roster: roster.to_vec(),
            signing_keys: self.service.cohort_signing_keys(config, round.id, roster)?,
        };
        let record = SessionRecord {
            secagg: params.encode(),
            dp_plan: serde_json::to_string(&plan).map_err(|e| Error::Serve(e.to_string()))?,
        };
        Ok((secagg::Server::new(params)?, plan, record))
    }

    fn drive_stage(
        &mut self,
        config: &PopulationConfig,
        round: &RoundRecord,
        stage: Stage,
        now: Millis,
    ) -> Result<()> {
        let store = self.service.store();
        let queued = store.take_submissions(round.id, stage)?;
        let Some(live) = self.live.get_mut(&round.id) else {
            return Ok(());
        };
        let started = Instant::now();
        for (_, payload) in queued {
            if live.server.receive_bytes(&payload).is_err() {
                metrics::inc(&self.service.metrics().protocol_rejections);
            }
        }
        live.stage_compute += started.elapsed();
        if !live.server.pending().is_empty() && now < round.deadline {
            return Ok(());
        }
        let messages_in = store.submission_count(round.id, stage)?;
        let started = Instant::now();
        let step = live.server.close_stage();
        let closing = started.elapsed();
        live.profile.stages.push(StageProfile {
            stage: round.phase.name().to_owned(),
            wall_ms: now - live.stage_opened,
            server_ms: millis(live.stage_compute + closing),
            messages: u32::try_from(messages_in).unwrap_or(u32::MAX),
        });
        if matches!(step, Ok(ServerStep::Finished(_))) {
            live.profile.unmask_ms = millis(closing);
        }
        live.stage_opened = now;
        live.stage_compute = Duration::ZERO;
        match step {
            Ok(ServerStep::Send(messages)) => {
                let Some(next) = messages.first().map(|m| m.body.stage()) else {
                    return self.abort(round, "no member is left to continue");
                };
                let encoded: Vec<(u32, Vec<u8>)> = messages
                    .iter()
                    .map(|m| (m.recipient.0, m.encode()))
                    .collect();
                let deadline = now + config.deadlines().stage_ms(next);
                store.advance_round(&Transition {
                    id: round.id,
                    from: round.phase,
                    to: RoundPhase::Stage(next),
                    deadline,
                    session: None,
                    messages: &encoded,
                    cohort: None,
                    now,
                })?;
                self.service.progress().announce();
                tracing::info!(round = round.id, stage = ?next, members = encoded.len(), "stage opened");
                Ok(())
            }
            Ok(ServerStep::Finished(aggregate)) => {
                let Some(live) = self.live.remove(&round.id) else {
                    return Ok(());
                };
                match self.finish(config, round, &live, &aggregate) {
                    Ok(()) => Ok(()),
                    Err(e) => self.abort(round, &format!("could not publish the update: {e}")),
                }
            }
            Err(e) => self.abort(round, &format!("secure aggregation failed: {e}")),
        }
    }

    /// Decodes the sum, steps the optimizer, charges the ledger, publishes the model.
    fn finish(
        &mut self,
        config: &PopulationConfig,
        round: &RoundRecord,
        live: &Live,
        aggregate: &secagg::Aggregate,
    ) -> Result<()> {
        let store = self.service.store();
        let plan = &live.plan;
        let mut profile = live.profile.clone();
        let survivors = u32::try_from(aggregate.survivors.len()).unwrap_or(u32::MAX);
        let started = Instant::now();
        let decoded = decode(self, plan, &aggregate.sum, survivors)?;
        profile.decode_ms = millis(started.elapsed());
        profile.adaptive = decoded.clip;
        // The clip of rounds on the version this round publishes (None: the fixed clip).
        let next_clip = decoded.clip.map(|estimate| estimate.next_clip);
        let base = store
            .model(config.name(), round.base_version)?
            .ok_or(Error::NotFound("base model version"))?;
        let mut model = GlobalModel::from_bytes(&base.params)?;
        let state = OptimizerState::decode(&base.optimizer_state)?;
        let started = Instant::now();
        // The mean upload holds gradient and curvature sums; the model turns them into the
        // cohort's item step, which the optimizer then applies like any pseudo-gradient.
        let item_step = covey_model::cohort_step(
            &model,
            &decoded.mean,
            f64::from(survivors),
            &config.training(),
        )?;
        let (next, next_state) = optimizer::step(
            config.optimizer(),
            round.base_version,
            model.params(),
            &state,
            &item_step,
        )?;
        model.set_params(next)?;
        model.set_version(round.base_version + 1);
        profile.optimizer_ms = millis(started.elapsed());

        let event = plan.privacy_event(survivors, Sampling::Full);
        let ledger = store.ledger(config.name())?;
        let before = ledger.last().map_or(0.0, |e| e.epsilon_total);
        let total = epsilon_after(config, &ledger, plan, survivors)?;
        if total > config.privacy().epsilon_budget {
            self.exhausted.insert(config.name().to_owned());
            return Err(Error::BudgetExhausted {
                would_be: total,
                budget: config.privacy().epsilon_budget,
            });
        }
        let now = self.service.clock().now_ms();
        store.complete_round(&RoundCompletion {
            round_id: round.id,
            from: round.phase,
            survivors: aggregate.survivors.iter().map(|m| m.0).collect(),
            model: model_record(
                config.name(),
                &model,
                Some(round.id),
                next_state,
                next_clip,
                now,
            ),
            charge: LedgerEntry {
                population: config.name().to_owned(),
                seq: ledger.len() as u64 + 1,
                round_id: round.id,
                survivors: u64::from(survivors),
                event: serde_json::to_string(&event).map_err(|e| Error::Serve(e.to_string()))?,
                epsilon_round: total - before,
                epsilon_total: total,
                delta: config.privacy().delta,
                created_at: now,
            },
            profile,
            now,
        })?;
        self.service.progress().announce();
        metrics::inc(&self.service.metrics().rounds_completed);
        tracing::info!(
            round = round.id,
            survivors,
            version = round.base_version + 1,
            epsilon_total = total,
            noise_stddev = decoded.noise_stddev,
            clip = plan.clip,
            next_clip,
            "round completed"
        );
        Ok(())
    }
}

/// A duration in milliseconds, with microsecond resolution.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The L2 clip of a round trained on a model version whose stored clip is `stored`
/// ([`crate::storage::ModelRecord::clip`]): with adaptive clipping the stored clip, or
/// `privacy.clip_norm` before the first adaptive round; without it always `clip_norm` (a
/// clip stored while adaptive clipping was on is then ignored).
pub fn round_clip(config: &PopulationConfig, stored: Option<f64>) -> f64 {
    let p = config.privacy();
    match (&p.adaptive_clip, stored) {
        (Some(_), Some(clip)) => clip,
        _ => p.clip_norm,
    }
}

/// The DP plan of a round of `cohort` members at L2 clip `clip` ([`round_clip`]) under the
/// population's settings, with the clip-indicator coordinate when adaptive clipping is on.
pub fn plan_for(
    config: &PopulationConfig,
    cohort: usize,
    clip: f64,
    rotation_seed: [u8; 32],
) -> Result<DpPlan> {
    let p = config.privacy();
    let dimension = u32::try_from(config.upload_len()).map_err(|_| Error::Dimension {
        expected: dp::MAX_DIMENSION as usize,
        got: config.upload_len(),
    })?;
    let mut request = PlanRequest::new(
        u32::try_from(cohort).unwrap_or(u32::MAX),
        dimension,
        clip,
        p.noise_multiplier,
        rotation_seed,
    );
    request.adaptive = p.adaptive_clip.map(|a| a.rule());
    request.noise = p.mechanism.noise_kind();
    request.max_dropout = config.secagg().dropout_tolerance;
    request.bits = Some(p.bits);
    dp::choose_plan(&request).map_err(|e| Error::BadRequest(format!("DP plan: {e}")))
}

fn decode(driver: &Driver, plan: &DpPlan, sum: &[u32], survivors: u32) -> Result<DecodedUpdate> {
    let decoder = Decoder::new(plan).map_err(|e| Error::BadRequest(format!("DP plan: {e}")))?;
    let decoded = match plan.noise {
        NoiseShare::Central { .. } => with_rng(driver.service.rng(), |rng| {
            decoder.decode_central(sum, plan.bits, survivors, rng)
        })?,
        NoiseShare::Skellam { .. } | NoiseShare::DiscreteGaussian { .. } => {
            decoder.decode(sum, plan.bits, survivors)
        }
    };
    decoded.map_err(|e| Error::BadRequest(format!("DP decode: {e}")))
}

/// ε of the charged rounds in `ledger` plus one more round of `plan` with `survivors`
/// members, composed by the population's accountant at its δ.
///
/// Every round is accounted without sampling amplification ([`Sampling::Full`]), although
/// the cohort is drawn uniformly at random from the devices that checked in. Amplification
/// by subsampling needs every member's inclusion probability to be at most a known `q` over
/// a fixed population; here the pool is whoever volunteered this round (availability
/// depends on the device, its pool size varies and is known to the server, and a member
/// that checks in to every round is sampled from a different pool each time), so no `q`
/// holds for every member. The random selection still bounds how often one device can be
/// picked and spreads load; it buys no ε, and the ledger does not claim any.
pub fn epsilon_after(
    config: &PopulationConfig,
    ledger: &[LedgerEntry],
    plan: &DpPlan,
    survivors: u32,
) -> Result<f64> {
    let mut accountant: Box<dyn Accountant + Send> = config.privacy().accountant.new_accountant();
    for entry in ledger {
        let event: PrivacyEvent =
            serde_json::from_str(&entry.event).map_err(|e| Error::Corrupt {
                what: "ledger event",
                reason: e.to_string(),
            })?;
        accountant.compose(&event)?;
    }
    accountant.compose(&plan.privacy_event(survivors, Sampling::Full))?;
    Ok(accountant.epsilon(config.privacy().delta)?)
}
