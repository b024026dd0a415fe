//! The operations behind the HTTP API, independent of HTTP: registration, authentication,
//! the round plan, check-in, stage messages, model downloads. Blocking (storage is
//! synchronous); the HTTP layer runs them on tokio's blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use covey_model::{GlobalModel, ModelConfig};
use covey_protocol::secagg::crypto::{SIGNATURE_BYTES, registration_message, verify};
use covey_protocol::secagg::{ClientMessage, MemberId, SessionParams, Stage};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{
    AdaptiveClipConfig, EligibilityPolicy, NoiseMechanism, PopulationConfig, catalog_csv,
    parse_catalog,
};
use crate::error::{Error, Result};
use crate::metrics::{self, Metrics};
use crate::optimizer::OptimizerState;
use crate::progress::RoundProgress;
use crate::storage::{
    CheckIn, DeviceRecord, ModelRecord, PopulationRecord, RoundId, RoundPhase, RoundRecord,
    SessionRecord, Storage, Submission, SubmitOutcome,
};
use crate::token::{BearerToken, random_id, sha256};

/// A cryptographically secure RNG shared by a process (OS-seeded in production, seeded in
/// tests).
pub type SharedRng = Mutex<Box<dyn CryptoRngSend>>;

/// A CSPRNG that can move between threads.
pub trait CryptoRngSend: RngCore + CryptoRng + Send {}
impl<T: RngCore + CryptoRng + Send> CryptoRngSend for T {}

/// Runs `f` with the shared RNG locked.
pub fn with_rng<T>(rng: &SharedRng, f: impl FnOnce(&mut dyn CryptoRngSend) -> T) -> Result<T> {
    let mut guard = rng
        .lock()
        .map_err(|_| Error::Serve("rng poisoned by an earlier panic".into()))?;
    Ok(f(&mut **guard))
}

/// Creates a population and its initial model version 0: a fresh
/// [`GlobalModel::init`] over the population's catalog and shape.
pub fn init_population(
    store: &dyn Storage,
    clock: &dyn Clock,
    mut rng: &mut dyn RngCore,
    config: &PopulationConfig,
) -> Result<ModelRecord> {
    let model = GlobalModel::init(config.catalog().clone(), config.model().shape(), &mut rng)?;
    let now = clock.now_ms();
    store.create_population(&PopulationRecord {
        name: config.name().to_owned(),
        config_toml: config.to_toml()?,
        catalog: catalog_csv(config.catalog())?,
        created_at: now,
    })?;
    let record = model_record(
        config.name(),
        &model,
        None,
        OptimizerState::default(),
        None,
        now,
    );
    store.put_model(&record)?;
    Ok(record)
}

/// The stored form of a model version: its [`GlobalModel::to_bytes`] blob (what devices
/// download), the blob's digest, the optimizer state that produced it and the clip of the
/// rounds that will train on it (`None`: the population's fixed clip).
pub fn model_record(
    population: &str,
    model: &GlobalModel,
    round_id: Option<RoundId>,
    optimizer_state: OptimizerState,
    clip: Option<f64>,
    now: crate::clock::Millis,
) -> ModelRecord {
    let params = model.to_bytes();
    ModelRecord {
        population: population.to_owned(),
        version: model.version(),
        round_id,
        digest: sha256(&params),
        params,
        optimizer_state: optimizer_state.encode(),
        clip,
        created_at: now,
    }
}

/// A newly registered device's credentials (the token is shown once, never stored).
#[derive(Debug)]
pub struct Registration {
    /// The device id.
    pub device_id: String,
    /// The bearer token.
    pub token: BearerToken,
    /// Whether the population runs signed SecAgg+ sessions (the device should then refuse
    /// unsigned ones: a server that stops signing is downgrading it).
    pub signed_sessions: bool,
}

/// Format version of [`RegistrationRequest`].
pub const REGISTRATION_REQUEST_VERSION: u8 = 1;

/// The JSON body of `POST /v1/populations/{name}/devices`. An empty body registers a device
/// without a signing key, which only unsigned populations accept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    /// [`REGISTRATION_REQUEST_VERSION`].
    pub version: u8,
    /// Hex Ed25519 public key the device signs SecAgg+ messages with in this population.
    pub signing_key: String,
    /// Hex Ed25519 signature by that key over
    /// [`registration_message`]`(population, key)`: proof that the device holds it, so
    /// nobody can register (and so block) a key that is not theirs.
    pub key_proof: String,
}

impl RegistrationRequest {
    /// Parses a registration body and checks the key proof; `None` for an empty body.
    pub fn verified_key(population: &str, body: &[u8]) -> Result<Option<[u8; 32]>> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let bad = |why: &str| Error::BadRequest(format!("registration: {why}"));
        let request: RegistrationRequest =
            serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
        if request.version != REGISTRATION_REQUEST_VERSION {
            return Err(bad("unsupported request version"));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(&request.signing_key, &mut key)
            .map_err(|_| bad("signing_key must be 64 hex characters (Ed25519)"))?;
        let mut proof = [0u8; SIGNATURE_BYTES];
        hex::decode_to_slice(&request.key_proof, &mut proof)
            .map_err(|_| bad("key_proof must be 128 hex characters (Ed25519)"))?;
        verify(&key, &registration_message(population, &key), &proof)
            .map_err(|_| bad("key_proof does not verify under signing_key"))?;
        Ok(Some(key))
    }
}

/// What a device needs to decide whether and how to take part (the body of `GET /v1/plan`).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Population name.
    pub population: String,
    /// Model shape, training settings and the newest version.
    pub model: ModelInfo,
    /// Differential privacy of each round and the budget.
    pub privacy: PrivacyInfo,
    /// Cohort bounds.
    pub secagg: SecAggInfo,
    /// Device-side eligibility policy.
    pub eligibility: EligibilityPolicy,
    /// The population's active round, if any.
    pub round: Option<RoundInfo>,
}

/// The model as a device needs to know it before downloading it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Catalog items (rows of the item table).
    pub items: usize,
    /// Embedding width.
    pub dim: usize,
    /// Rows of the hashed feature table.
    pub feature_rows: usize,
    /// [`covey_model::ParamLayout::len`]: the length of every delta.
    pub parameters: usize,
    /// Newest published version.
    pub latest_version: u64,
    /// SHA-256 (hex) of the newest version's blob.
    pub latest_digest: String,
    /// Local-training settings (shape included).
    pub training: ModelConfig,
}

/// Privacy settings.
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyInfo {
    /// Noise mechanism.
    pub mechanism: NoiseMechanism,
    /// L2 clip of rounds on the newest model version (with adaptive clipping, where the
    /// last completed round moved it; each round's DP plan carries the clip it uses).
    pub clip_norm: f64,
    /// Adaptive clipping, when the population uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive_clip: Option<AdaptiveClipConfig>,
    /// Noise multiplier of the surviving sum.
    pub noise_multiplier: f64,
    /// Modular bit width.
    pub bits: u32,
    /// δ.
    pub delta: f64,
    /// Lifetime ε budget.
    pub epsilon_budget: f64,
    /// ε spent so far.
    pub epsilon_spent: f64,
}

/// Cohort bounds.
#[derive(Debug, Clone, Serialize)]
pub struct SecAggInfo {
    /// Minimum cohort.
    pub cohort_min: usize,
    /// Maximum cohort.
    pub cohort_max: usize,
    /// Signed sessions: members sign every stage message and the survivor list, and only
    /// devices that registered a signing key may check in.
    pub signed: bool,
}

/// The active round as a device sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RoundInfo {
    /// Round id.
    pub id: RoundId,
    /// Phase name (`check_in`, `advertise_keys`, ...).
    pub phase: &'static str,
    /// Model version to train on.
    pub base_version: u64,
    /// SHA-256 (hex) of that version's blob (`GET /v1/models/{base_version}`).
    pub base_digest: String,
    /// Deadline of the phase (ms since the epoch).
    pub deadline_ms: i64,
    /// This device's member id if it checked in.
    pub member_id: Option<u32>,
}

/// The server's state shared by HTTP handlers and the round driver.
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    rng: SharedRng,
    metrics: Metrics,
    configs: RwLock<HashMap<String, Arc<PopulationConfig>>>,
    sessions: Mutex<HashMap<RoundId, Arc<SessionParams>>>,
    progress: RoundProgress,
}

impl std::fmt::Debug for dyn CryptoRngSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoRng")
    }
}

impl Service {
    /// A service over `store`, reading time from `clock` and randomness from `rng`.
    pub fn new(
        store: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        rng: Box<dyn CryptoRngSend>,
    ) -> Self {
        Service {
            store,
            clock,
            rng: Mutex::new(rng),
            metrics: Metrics::default(),
            configs: RwLock::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            progress: RoundProgress::default(),
        }
    }

    /// The storage.
    pub fn store(&self) -> &dyn Storage {
        &*self.store
    }
    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
    /// The process RNG.
    pub fn rng(&self) -> &SharedRng {
        &self.rng
    }
    /// The process counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    /// Round transitions, announced by the driver and awaited by long-polling requests.
    pub fn progress(&self) -> &RoundProgress {
        &self.progress
    }

    /// A population's validated config (cached; configs never change after `init`).
    pub fn config(&self, population: &str) -> Result<Arc<PopulationConfig>> {
        if let Some(c) = self
            .configs
            .read()
            .ok()
            .and_then(|m| m.get(population).cloned())
        {
            return Ok(c);
        }
        let record = self
            .store
            .population(population)?
            .ok_or(Error::NotFound("population"))?;
        let catalog = parse_catalog(record.catalog.as_bytes())?;
        let config = Arc::new(PopulationConfig::from_toml(&record.config_toml, catalog)?);
        if let Ok(mut m) = self.configs.write() {
            m.insert(population.to_owned(), Arc::clone(&config));
        }
        Ok(config)
    }

    /// Registers a new device in `population`; `body` is a [`RegistrationRequest`] or
    /// empty. A signed population refuses a device without a signing key
    /// ([`Error::SigningKeyRequired`]); a key another device of the population registered
    /// is refused ([`Error::AlreadyExists`]).
    pub fn register(&self, population: &str, body: &[u8]) -> Result<Registration> {
        let config = self.config(population)?;
        let signing_key = RegistrationRequest::verified_key(population, body)?;
        let signed_sessions = config.secagg().signed;
        if signed_sessions && signing_key.is_none() {
            return Err(Error::SigningKeyRequired);
        }
        let (token, id) = with_rng(&self.rng, |rng| {
            (BearerToken::generate(rng), random_id(rng))
        })?;
        let device = DeviceRecord {
            id,
            population: population.to_owned(),
            registered_at: self.clock.now_ms(),
            signing_key,
        };
        self.store.register_device(&device, &token.hash())?;
        metrics::inc(&self.metrics.registrations);
        Ok(Registration {
            device_id: device.id,
            token,
            signed_sessions,
        })
    }

    /// The roster's signing keys for a session of round `round`, parallel to `roster`, when
    /// the population runs signed sessions (`None` otherwise). Check-in admits only devices
    /// with a key to signed rounds, so a missing key is a corrupt database.
    pub fn cohort_signing_keys(
        &self,
        config: &PopulationConfig,
        round: RoundId,
        roster: &[MemberId],
    ) -> Result<Option<Vec<[u8; 32]>>> {
        if !config.secagg().signed {
            return Ok(None);
        }
        let keys: HashMap<u32, Option<[u8; 32]>> =
            self.store.member_signing_keys(round)?.into_iter().collect();
        roster
            .iter()
            .map(|m| {
                keys.get(&m.0).copied().flatten().ok_or(Error::Corrupt {
                    what: "cohort signing keys",
                    reason: "a member of a signed round has no signing key".into(),
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The device holding `token`.
    pub fn authenticate(&self, token: &str) -> Result<DeviceRecord> {
        let token = BearerToken::parse(token).ok_or(Error::Unauthenticated(
            "the bearer token is not 64 lowercase hex characters",
        ))?;
        self.store
            .device_by_token(&token.hash())?
            .ok_or(Error::Unauthenticated("unknown bearer token"))
    }

    /// The population's active round (newest first, so at most one is active).
    fn active_round(&self, population: &str) -> Result<Option<RoundRecord>> {
        Ok(self
            .store
            .rounds(population, 1)?
            .into_iter()
            .find(|r| r.phase.is_active()))
    }

    /// The plan for `device`'s population.
    pub fn plan(&self, device: &DeviceRecord) -> Result<Plan> {
        let c = self.config(&device.population)?;
        let latest = self
            .store
            .latest_model(&device.population)?
            .ok_or(Error::NotFound("model version"))?;
        let round = match self.active_round(&device.population)? {
            Some(r) => {
                // Only the active round publishes, so its base is normally the newest.
                let base_digest = if r.base_version == latest.version {
                    latest.digest
                } else {
                    self.store
                        .models(&device.population)?
                        .into_iter()
                        .find(|m| m.version == r.base_version)
                        .ok_or(Error::NotFound("model version"))?
                        .digest
                };
                Some(RoundInfo {
                    member_id: self.store.member_of(r.id, &device.id)?,
                    id: r.id,
                    phase: r.phase.name(),
                    base_version: r.base_version,
                    base_digest: hex::encode(base_digest),
                    deadline_ms: r.deadline,
                })
            }
            None => None,
        };
        let p = c.privacy();
        Ok(Plan {
            population: device.population.clone(),
            model: ModelInfo {
                items: c.catalog().len(),
                dim: c.model().dim,
                feature_rows: c.model().feature_rows,
                parameters: c.parameters(),
                latest_version: latest.version,
                latest_digest: hex::encode(latest.digest),
                training: c.training(),
            },
            privacy: PrivacyInfo {
                mechanism: p.mechanism,
                clip_norm: crate::driver::round_clip(&c, latest.clip),
                adaptive_clip: p.adaptive_clip,
                noise_multiplier: p.noise_multiplier,
                bits: p.bits,
                delta: p.delta,
                epsilon_budget: p.epsilon_budget,
                epsilon_spent: self.store.epsilon_spent(&device.population)?,
            },
            secagg: SecAggInfo {
                cohort_min: c.secagg().cohort_min,
                cohort_max: c.secagg().cohort_max,
                signed: c.secagg().signed,
            },
            eligibility: *c.eligibility(),
            round,
        })
    }

    /// A model version of the device's population (`None`: the newest).
    pub fn model(&self, device: &DeviceRecord, version: Option<u64>) -> Result<ModelRecord> {
        let version = match version {
            Some(v) => v,
            None => {
                self.store
                    .latest_model(&device.population)?
                    .ok_or(Error::NotFound("model version"))?
                    .version
            }
        };
        let model = self
            .store
            .model(&device.population, version)?
            .ok_or(Error::NotFound("model version"))?;
        metrics::inc(&self.metrics.model_downloads);
        Ok(model)
    }

    /// A round of the device's own population.
    fn own_round(&self, device: &DeviceRecord, id: RoundId) -> Result<RoundRecord> {
        match self.store.round(id)? {
            Some(r) if r.population == device.population => Ok(r),
            _ => Err(Error::NotFound("round")),
        }
    }

    /// Checks `device` in to round `id`; returns its member id.
    ///
    /// The server enforces the population's contribution bounds itself (minimum separation
    /// and per-day cap), so a device that ignores its own eligibility checks gains nothing.
    pub fn check_in(&self, device: &DeviceRecord, id: RoundId) -> Result<u32> {
        let round = self.own_round(device, id)?;
        let config = self.config(&device.population)?;
        if config.secagg().signed && device.signing_key.is_none() {
            return Err(Error::SigningKeyRequired);
        }
        if self.store.member_of(round.id, &device.id)?.is_none() {
            self.check_contribution_bounds(device, config.eligibility())?;
        }
        let max = u32::try_from(config.secagg().check_in_max()).unwrap_or(u32::MAX);
        // Concurrent check-ins may race for a member id; the loser retries.
        for _ in 0..8 {
            match self
                .store
                .check_in(round.id, &device.id, max, self.clock.now_ms())
            {
                Ok(CheckIn::Admitted(member)) => {
                    metrics::inc(&self.metrics.check_ins);
                    return Ok(member);
                }
                Ok(CheckIn::Full) => {
                    return Err(Error::Conflict {
                        what: "round",
                        expected: "a free seat (the cohort is full)".into(),
                    });
                }
                Ok(CheckIn::Closed) => {
                    return Err(Error::Gone("check-in for this round is closed"));
                }
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            what: "check-in",
            expected: "a free member id (retry)".into(),
        })
    }

    fn check_contribution_bounds(
        &self,
        device: &DeviceRecord,
        policy: &EligibilityPolicy,
    ) -> Result<()> {
        const HOUR_MS: i64 = 3_600_000;
        let now = self.clock.now_ms();
        let separation = i64::from(policy.min_separation_hours) * HOUR_MS;
        let recent = self
            .store
            .check_ins_since(&device.id, now - separation.max(24 * HOUR_MS))?;
        let today = recent.iter().filter(|t| now - **t < 24 * HOUR_MS).count();
        if today >= policy.max_per_day as usize {
            return Err(Error::Forbidden(
                "not eligible: the device reached the population's per-day participation cap",
            ));
        }
        if recent.last().is_some_and(|last| now - last < separation) {
            return Err(Error::Forbidden(
                "not eligible: the device took part too recently (minimum separation)",
            ));
        }
        Ok(())
    }

    /// The member's round and id; fails unless `device` checked in to `id`.
    fn membership(&self, device: &DeviceRecord, id: RoundId) -> Result<(RoundRecord, u32)> {
        let round = self.own_round(device, id)?;
        let member = self
            .store
            .member_of(id, &device.id)?
            .ok_or(Error::Forbidden(
                "this device is not a member of the round (it did not check in, or was not \
                 selected for the cohort)",
            ))?;
        Ok((round, member))
    }

    /// The round's session (SecAgg+ parameters and DP plan), once the cohort is fixed.
    pub fn session(&self, device: &DeviceRecord, id: RoundId) -> Result<Option<SessionRecord>> {
        let (round, _) = self.membership(device, id)?;
        if round.phase == RoundPhase::Aborted {
            return Err(Error::Gone("the round was aborted"));
        }
        Ok(round.session)
    }

    fn session_params(&self, round: &RoundRecord) -> Result<Option<Arc<SessionParams>>> {
        let Some(session) = &round.session else {
            return Ok(None);
        };
        let mut cache = self
            .sessions
            .lock()
            .map_err(|_| Error::Serve("session cache poisoned".into()))?;
        if let Some(p) = cache.get(&round.id) {
            return Ok(Some(Arc::clone(p)));
        }
        let params = Arc::new(SessionParams::decode(&session.secagg)?);
        cache.insert(round.id, Arc::clone(&params));
        Ok(Some(params))
    }

    /// Queues a member's message for `stage`, after checking that it decodes and is bound
    /// to this round's session, this member and this stage.
    pub fn submit(
        &self,
        device: &DeviceRecord,
        id: RoundId,
        stage: Stage,
        payload: &[u8],
    ) -> Result<SubmitOutcome> {
        let (round, member) = self.membership(device, id)?;
        match round.phase {
            RoundPhase::Completed | RoundPhase::Aborted => {
                return Err(Error::Gone("the round is over"));
            }
            RoundPhase::Stage(open) if open == stage => {}
            // Late, not racing: a device that missed a stage is a dropout, and says so.
            RoundPhase::Stage(open) if open > stage => {
                return Err(Error::StageClosed {
                    stage: RoundPhase::Stage(stage).name(),
                    open: RoundPhase::Stage(open).name(),
                });
            }
            other => {
                return Err(Error::Conflict {
                    what: "stage",
                    expected: format!("the round to be in {}", other.name()),
                });
            }
        }
        let session = self.session_params(&round)?.ok_or(Error::Conflict {
            what: "round",
            expected: "a fixed cohort".into(),
        })?;
        let message = ClientMessage::decode(payload)
            .map_err(|e| Error::BadRequest(format!("stage message does not decode: {e}")))?;
        if message.session != session.session_id {
            return Err(Error::BadRequest(
                "stage message belongs to another session".into(),
            ));
        }
        if message.sender != MemberId(member) {
            return Err(Error::BadRequest(
                "stage message names another sender".into(),
            ));
        }
        if message.body.stage() != stage {
            return Err(Error::BadRequest(format!(
                "stage message answers {:?}, not {stage:?}",
                message.body.stage()
            )));
        }
        let outcome = self.store.submit(&Submission {
            round_id: id,
            stage,
            member,
            payload: payload.to_vec(),
            digest: sha256(payload),
            received_at: self.clock.now_ms(),
        })?;
        match outcome {
            SubmitOutcome::Accepted => {
                metrics::inc(&self.metrics.stage_messages);
                metrics::add(&self.metrics.upload_bytes, payload.len() as u64);
            }
            SubmitOutcome::Replay { .. } => metrics::inc(&self.metrics.replays),
        }
        Ok(outcome)
    }

    /// The server's message opening `stage` for the device, once posted.
    pub fn fetch(
        &self,
        device: &DeviceRecord,
        id: RoundId,
        stage: Stage,
    ) -> Result<Option<Vec<u8>>> {
        let (round, member) = self.membership(device, id)?;
        let message = self.store.message(id, stage, member)?;
        if message.is_none() && !round.phase.is_active() {
            return Err(Error::Gone("the round is over"));
        }
        Ok(message)
    }
}

/// Parses a stage name from a URL (`advertise_keys`, `share_keys`, `masked_input`,
/// `consistency_check`, `unmask`).
pub fn parse_stage(name: &str) -> Option<Stage> {
    Stage::ALL
        .into_iter()
        .find(|s| RoundPhase::Stage(*s).name() == name)
}
