//! Round participation: the device's side of a federated round.
//!
//! [`Device::join`] registers the device with a population once (the bearer token is kept
//! sealed in the store's key material and never logged). [`Device::participate`] then runs
//! one round:
//!
//! 1. eligibility, each failure named ([`Ineligible`]): the host's [`DeviceConditions`],
//!    federated-training consent, a round open for check-in, the population's per-day cap
//!    and minimum separation (against this device's own participation records) and minimum
//!    number of examples;
//! 2. check-in, then the round's base model, verified against the digest the plan names;
//! 3. the member's history, read through a `Grant<FederatedTraining>` (audit-logged), and a
//!    local round of `covey-model` training on one thread;
//! 4. DP encoding with the round's plan, and the SecAgg+ client over the [`Transport`];
//! 5. the participation, the upload and the ε it is charged recorded in the audit log.
//!
//! The grant and the [`CancelToken`] are re-checked between every step and before every
//! message leaves: a withdrawal ends the round with [`Error::ConsentWithdrawn`] and nothing
//! more is sent. Every member's masked upload has the same length, whatever its history:
//! the delta covers the whole parameter vector and SecAgg+ packs it at the session's width.

mod api;
mod eligibility;
mod refresh;
mod round_key;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use covey_model::{GlobalModel, MemberHistory, Trainer};
use covey_protocol::accounting::{Accountant, RdpAccountant, Sampling};
use covey_protocol::dp::{DpPlan, Encoder, NoiseShare};
use covey_protocol::secagg::{Client, MemberId, ServerMessage, Stage};
use covey_store::audit_entry::{AuditEvent, NoiseParams, UploadRecord};
use covey_store::grant::{FederatedTraining, Grant, PurposeGrant};
use covey_store::{
    HistoryQuery, KeyMaterial, LoyaltyEvent, ParticipationOutcome as Ended, ParticipationRecord,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::transport::{Transport, TransportError};
use api::{Plan, PlanRound, ServerApi};

pub use eligibility::{DeviceConditions, Ineligible, MIN_BATTERY_PERCENT};
pub use refresh::MODEL_REFRESH;
pub use round_key::{ROUND_KEY_NAME, Tampering};

/// Name of the server registration in the store's key material.
pub const REGISTRATION_KEY_NAME: &str = "covey.server_registration";
/// Component name under which the trainer holds its grant (shown in the audit log).
pub const TRAINER: &str = "trainer";
const REGISTRATION_ALGORITHM: &str = "covey-bearer-v1";

/// A network failure as round participation sees it. Messages come from the server or the
/// transport and never carry member data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The request got no response.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with an unexpected status.
    #[error("{during}: status {status} ({code}): {message}")]
    Status {
        /// What the device was doing.
        during: &'static str,
        /// HTTP status.
        status: u16,
        /// The server's error code, when it sent one.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server did not get to the next step within the device's patience.
    #[error("gave up waiting for the {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: &'static str,
    },
    /// A response did not decode or does not fit the round.
    #[error("unusable {what} from the server: {reason}")]
    BadResponse {
        /// Which response.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The downloaded model does not match the digest the plan named.
    #[error("the downloaded model does not match the plan's digest")]
    DigestMismatch,
}

/// Cancels a participation from any thread; checked between steps and while waiting.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the participation to stop at its next check (nothing more is sent).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How long participation waits for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipationOptions {
    /// Longest wait for any one server step (the cohort being fixed, a stage opening).
    pub patience: Duration,
    /// Longest pause between two polls, whatever `Retry-After` says; also how long a poll
    /// asks the server to hold it until the round moves (a long poll, whole seconds), so
    /// keep it under the host HTTP stack's read timeout. A cancel is seen within it.
    pub max_poll_interval: Duration,
}

impl Default for ParticipationOptions {
    fn default() -> Self {
        ParticipationOptions {
            patience: Duration::from_secs(300),
            max_poll_interval: Duration::from_secs(5),
        }
    }
}

/// Where the device's time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Local training (user solve and local epochs).
    pub train_ms: f64,
    /// DP encoding (clip, rotate, round, noise).
    pub encode_ms: f64,
    /// SecAgg+ client computation (keys, shares, masking, unmask shares).
    pub secagg_client_ms: f64,
    /// Requests and waiting for the server.
    pub network_ms: f64,
    /// The masked-input upload's request (part of `network_ms`).
    #[serde(default)]
    pub upload_ms: f64,
    /// The whole participation.
    pub total_ms: f64,
}

/// A completed participation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipationOutcome {
    /// Server round id.
    pub round: i64,
    /// Model version trained on.
    pub model_version: u64,
    /// This device's member id in the round.
    pub member_id: u32,
    /// Bytes of the masked upload (the same for every member of the round).
    pub upload_bytes: u64,
    /// Bytes of every message sent in the round.
    pub bytes_sent: u64,
    /// ε charged to this device for the round (at the plan's fewest survivors, RDP).
    pub epsilon: f64,
    /// δ of the (ε, δ) statement.
    pub delta: f64,
    /// Distinct catalog items trained on.
    pub examples: u64,
    /// Where the time went.
    pub timings: StageTimings,
}

/// The device's registration with an aggregation server (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Population registered with.
    pub population: String,
    /// Server-assigned device id.
    pub device_id: String,
    /// Hex Ed25519 public key this device signs SecAgg+ messages with in this population
    /// (`None` for registrations made before devices registered keys).
    #[serde(default)]
    pub signing_key: Option<String>,
    /// The server said at registration that the population runs signed sessions; the
    /// device then refuses unsigned ones ([`Tampering::UnsignedSession`]).
    #[serde(default)]
    pub signed_sessions: bool,
}

/// A registration with its token, as kept sealed in the store.
struct Credentials {
    public: Registration,
    token: Zeroizing<String>,
}

/// What has left the device so far in a round (for its record, whatever the ending).
#[derive(Debug, Default)]
struct Progress {
    bytes_sent: u64,
    masked_input_sent: bool,
    epsilon: f64,
}

impl Device {
    /// Registers with `population` on the server behind `transport`, once: an existing
    /// registration for the same population is returned without a request. The device
    /// registers a fresh Ed25519 signing key for signed SecAgg+ sessions (one per
    /// registration, never the device key: see `round_key`); key and token are sealed in
    /// the store's key material.
    pub fn join(&self, transport: &dyn Transport, population: &str) -> Result<Registration> {
        if let Some(c) = self.credentials()?
            && c.public.population == population
        {
            return Ok(c.public);
        }
        let key = self.new_round_key()?;
        let body = round_key::registration_body(population, &key)?;
        let new = api::register(transport, population, body)?;
        // The key is sealed before the registration that names it.
        self.store_round_key(&key)?;
        let public = Registration {
            population: population.to_owned(),
            device_id: new.device_id,
            signing_key: Some(hex::encode(key.public_key())),
            signed_sessions: new.signed_sessions,
        };
        let material = KeyMaterial {
            algorithm: REGISTRATION_ALGORITHM.into(),
            public_key: serde_json::to_vec(&public).map_err(|_| Error::Corrupted {
                what: "server registration",
            })?,
            secret: Zeroizing::new(new.token.as_bytes().to_vec()),
            created_at_ms: self.clock.now_ms(),
        };
        self.store
            .put_key_material(REGISTRATION_KEY_NAME, &material)?;
        Ok(public)
    }

    /// The device's registration, if [`Device::join`] ran.
    pub fn registration(&self) -> Result<Option<Registration>> {
        Ok(self.credentials()?.map(|c| c.public))
    }

    fn credentials(&self) -> Result<Option<Credentials>> {
        let Some(km) = self.store.key_material(REGISTRATION_KEY_NAME)? else {
            return Ok(None);
        };
        let corrupted = || Error::Corrupted {
            what: "server registration",
        };
        if km.algorithm != REGISTRATION_ALGORITHM {
            return Err(corrupted());
        }
        let public: Registration =
            serde_json::from_slice(&km.public_key).map_err(|_| corrupted())?;
        let token = String::from_utf8(km.secret.to_vec()).map_err(|_| corrupted())?;
        Ok(Some(Credentials {
            public,
            token: Zeroizing::new(token),
        }))
    }

    /// Takes part in the population's open round with [`ParticipationOptions::default`].
    pub fn participate(
        &self,
        transport: &dyn Transport,
        conditions: &DeviceConditions,
        cancel: &CancelToken,
    ) -> Result<ParticipationOutcome> {
        self.participate_with(
            transport,
            conditions,
            cancel,
            &ParticipationOptions::default(),
        )
    }

    /// Takes part in the population's open round (see the module docs for the steps).
    ///
    /// Errors: [`Error::NotEligible`] before check-in (nothing was sent but the plan
    /// request), [`Error::ConsentWithdrawn`] / [`Error::Cancelled`] when the round was
    /// abandoned (nothing more was sent), [`Error::RoundMissed`] when a stage message came
    /// after the server closed that stage (recorded as a dropout), [`Error::Network`] when
    /// the server or the network failed, [`Error::NotRegistered`] without [`Device::join`].
    ///
    /// Run one participation per device at a time (the host's scheduler does): the server
    /// gives a device one member id per round, so two concurrent calls would share it.
    pub fn participate_with(
        &self,
        transport: &dyn Transport,
        conditions: &DeviceConditions,
        cancel: &CancelToken,
        options: &ParticipationOptions,
    ) -> Result<ParticipationOutcome> {
        let started = Instant::now();
        eligibility::check_conditions(conditions).map_err(Error::NotEligible)?;
        let grant = match self.grant::<FederatedTraining>(TRAINER) {
            Ok(g) => g,
            Err(
                Error::ConsentRequired { .. }
                | Error::ConsentWithdrawn { .. }
                | Error::ConsentExpired { .. },
            ) => return Err(Error::NotEligible(Ineligible::Consent)),
            Err(e) => return Err(e),
        };
        let credentials = self.credentials()?.ok_or(Error::NotRegistered)?;
        let mut api = ServerApi::new(transport, &credentials.token, options.into(), cancel);
        let step = || check_step(&grant, cancel);

        step()?;
        let plan = api.plan()?;
        let round = plan
            .round
            .clone()
            .filter(|r| r.phase == "check_in")
            .ok_or(Error::NotEligible(Ineligible::NoRoundOpen))?;
        eligibility::check_bounds(
            &plan.eligibility,
            &self.store.participations()?,
            self.clock.now_ms(),
        )
        .map_err(Error::NotEligible)?;
        step()?;
        let events: Vec<LoyaltyEvent> = self
            .store
            .history(&grant, &HistoryQuery::default())?
            .into_iter()
            .map(|e| e.event)
            .collect();
        eligibility::check_examples(&plan.eligibility, events.len()).map_err(Error::NotEligible)?;
        step()?;
        let member = api.check_in(round.id)?;

        // The server now counts this device in the round: every ending is recorded.
        let started_at_ms = self.clock.now_ms();
        let mut progress = Progress::default();
        let mut timings = StageTimings::default();
        let result = self.run_round(
            &mut RoundContext {
                api: &mut api,
                registration: &credentials.public,
                grant: &grant,
                cancel,
                plan: &plan,
                round: &round,
                member,
                progress: &mut progress,
                timings: &mut timings,
            },
            &events,
        );
        timings.network_ms = millis(api.network);
        timings.total_ms = millis(started.elapsed());
        let ended = match &result {
            Ok(_) => Some(Ended::Uploaded),
            // Dismissed before the session: the device never took part.
            Err(Error::NotSelected) => None,
            Err(
                Error::ConsentWithdrawn { .. }
                | Error::ConsentExpired { .. }
                | Error::Cancelled
                | Error::RoundTampered(_),
            ) => Some(Ended::Aborted),
            Err(_) => Some(Ended::DroppedOut),
        };
        if let Some(ended) = ended {
            self.record_round_end(&credentials.public, &round, started_at_ms, ended, &progress)?;
        }
        result.map(|mut outcome| {
            outcome.timings = timings;
            outcome
        })
    }

    fn run_round(
        &self,
        cx: &mut RoundContext<'_, '_>,
        events: &[LoyaltyEvent],
    ) -> Result<ParticipationOutcome> {
        let round_id = round_number(cx.round)?;
        let mut rng = self.round_rng()?;
        cx.step()?;
        let model = self.base_model(cx)?;
        cx.step()?;
        let mut config = cx.plan.model.training.clone();
        config.threads = 1;
        let history = MemberHistory::from_events(
            model.catalog(),
            events,
            &config.weights,
            self.clock.now_ms(),
        );
        let timer = Instant::now();
        let local = Trainer::new(config)?.local_round(&model, &history)?;
        cx.timings.train_ms = millis(timer.elapsed());
        self.record_training(cx.grant, Some(round_id), history.len() as u64)?;

        cx.step()?;
        let (params, dp_plan) = cx.api.session(cx.round.id)?;
        if dp_plan.dimension as usize != local.delta.len()
            || params.dimension != dp_plan.vector_len()
        {
            return Err(bad("session", "its dimension does not fit the model"));
        }
        cx.progress.epsilon = round_epsilon(&dp_plan, cx.plan.privacy.delta)?;
        cx.step()?;
        let timer = Instant::now();
        let encoded = Encoder::new(&dp_plan)
            .and_then(|e| e.encode(local.delta.as_slice(), &mut rng))
            .map_err(|e| Error::Protocol {
                what: "DP encoding",
                reason: e.to_string(),
            })?;
        cx.timings.encode_ms = millis(timer.elapsed());
        drop(local);

        let member = MemberId(cx.member);
        let identity = self.session_identity(cx.registration, &params, member)?;
        let timer = Instant::now();
        let (mut client, first) = Client::new(params, member, &encoded.values, identity, &mut rng)
            .map_err(secagg_error)?;
        let mut secagg = timer.elapsed();
        drop(encoded);
        let mut message = first;
        let mut upload_bytes = 0;
        loop {
            let stage = message.body.stage();
            let bytes = message.encode();
            cx.step()?;
            self.upload_permit(cx.grant)?;
            let len = bytes.len() as u64;
            let timer = Instant::now();
            cx.api.submit(cx.round.id, stage, bytes)?;
            cx.progress.bytes_sent += len;
            if stage == Stage::MaskedInput {
                cx.timings.upload_ms = millis(timer.elapsed());
                upload_bytes = len;
                cx.progress.masked_input_sent = true;
                self.log_upload(round_id, len, &dp_plan, cx)?;
            }
            if client.is_done() {
                break;
            }
            let opening = cx.api.opening(cx.round.id, client.stage())?;
            let opening = ServerMessage::decode(&opening).map_err(|e| bad("stage opening", e))?;
            let timer = Instant::now();
            message = client
                .handle(&opening)
                .map_err(|e| round_key::client_error(client.stage(), e))?;
            secagg += timer.elapsed();
        }
        cx.timings.secagg_client_ms = millis(secagg);
        Ok(ParticipationOutcome {
            round: cx.round.id,
            model_version: model.version(),
            member_id: cx.member,
            upload_bytes,
            bytes_sent: cx.progress.bytes_sent,
            epsilon: cx.progress.epsilon,
            delta: cx.plan.privacy.delta,
            examples: history.len() as u64,
            timings: StageTimings::default(),
        })
    }

    /// The round's base model, checked against the plan's digest, version and size.
    fn base_model(&self, cx: &mut RoundContext<'_, '_>) -> Result<GlobalModel> {
        let blob = cx.api.model(cx.round.base_version, &cx.round.base_digest)?;
        let model = GlobalModel::from_bytes(&blob).map_err(|e| bad("model", e))?;
        if model.version() != cx.round.base_version
            || model.layout().len() != cx.plan.model.parameters
            || model.shape() != cx.plan.model.training.shape
        {
            return Err(bad("model", "its version or shape differs from the plan"));
        }
        Ok(model)
    }

    /// A per-round CSPRNG seeded from the device's (injectable) RNG.
    pub(crate) fn round_rng(&self) -> Result<ChaCha20Rng> {
        let mut seed = Zeroizing::new([0u8; 32]);
        self.rng
            .lock()
            .map_err(|_| Error::Corrupted {
                what: "device rng (poisoned)",
            })?
            .fill_bytes(&mut *seed);
        Ok(ChaCha20Rng::from_seed(*seed))
    }

    /// Logs the masked upload. It has already left, so it is logged whatever the grant says
    /// now (the audit log must show every byte that left).
    fn log_upload(
        &self,
        round: u64,
        bytes: u64,
        plan: &DpPlan,
        cx: &RoundContext<'_, '_>,
    ) -> Result<()> {
        let stddev = match plan.noise {
            NoiseShare::Skellam { local_mu } => (2.0 * local_mu).sqrt(),
            NoiseShare::DiscreteGaussian { local_sigma } => local_sigma,
            NoiseShare::Central { .. } => 0.0,
        };
        self.store.append_audit(AuditEvent::Upload(UploadRecord {
            round,
            bytes,
            clip_norm: plan.clip,
            noise: NoiseParams {
                mechanism: cx.plan.privacy.mechanism.clone(),
                stddev,
                bits: plan.bits,
            },
            epsilon: cx.progress.epsilon,
            delta: cx.plan.privacy.delta,
        }))?;
        self.checkpoint().map(drop)
    }

    /// Records how the device's part in the round ended: a participation record (what the
    /// privacy center lists) and an audit entry, then a checkpoint.
    fn record_round_end(
        &self,
        registration: &Registration,
        round: &PlanRound,
        started_at_ms: i64,
        ended: Ended,
        progress: &Progress,
    ) -> Result<()> {
        let round_id = round_number(round)?;
        self.store.record_participation(&ParticipationRecord {
            population: registration.population.clone(),
            round_id,
            model_version: round.base_version,
            started_at_ms,
            finished_at_ms: self.clock.now_ms().max(started_at_ms),
            outcome: ended,
            bytes_uploaded: progress.bytes_sent,
            // Only a masked input that left is charged: without it the member is not in
            // the sum.
            epsilon_charged: if progress.masked_input_sent {
                progress.epsilon
            } else {
                0.0
            },
        })?;
        self.store.append_audit(AuditEvent::RoundEnded {
            round: round_id,
            outcome: ended,
        })?;
        self.checkpoint().map(drop)
    }
}

/// Everything one round's steps share.
struct RoundContext<'a, 'b> {
    api: &'a mut ServerApi<'b>,
    registration: &'a Registration,
    grant: &'a Grant<FederatedTraining>,
    cancel: &'a CancelToken,
    plan: &'a Plan,
    round: &'a PlanRound,
    member: u32,
    progress: &'a mut Progress,
    timings: &'a mut StageTimings,
}

impl RoundContext<'_, '_> {
    fn step(&self) -> Result<()> {
        check_step(self.grant, self.cancel)
    }
}

/// Between steps: stop if cancelled or if consent ended.
fn check_step(grant: &Grant<FederatedTraining>, cancel: &CancelToken) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    grant.check()?;
    Ok(())
}

/// The ε this round costs the member at worst (the plan's fewest survivors), by RDP.
fn round_epsilon(plan: &DpPlan, delta: f64) -> Result<f64> {
    let mut accountant = RdpAccountant::new();
    let accounted = accountant
        .compose(&plan.privacy_event(plan.min_survivors, Sampling::Full))
        .and_then(|()| accountant.epsilon(delta));
    accounted.map_err(|e| Error::Protocol {
        what: "privacy accounting",
        reason: e.to_string(),
    })
}

fn round_number(round: &PlanRound) -> Result<u64> {
    u64::try_from(round.id).map_err(|_| bad("plan", "negative round id"))
}

fn bad(what: &'static str, reason: impl ToString) -> Error {
    Error::Network(NetworkError::BadResponse {
        what,
        reason: reason.to_string(),
    })
}

fn secagg_error(e: covey_protocol::secagg::Error) -> Error {
    Error::Protocol {
        what: "secure aggregation",
        reason: e.to_string(),
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
