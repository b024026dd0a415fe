//! Persistence behind one trait, [`Storage`], with two backends sharing one SQL
//! implementation ([`sql::SqlStorage`]):
//!
//! - [`SqliteStorage`]: an embedded SQLite file in WAL mode, the default;
//! - [`PostgresStorage`]: PostgreSQL, for several server processes sharing one database.
//!
//! Crash safety comes from the shape of the API, not from recovery code: every state change
//! is one transaction, and the changes that must happen together (a round completing, its
//! new model version, its privacy-ledger charge) are one call, [`Storage::complete_round`].
//! Conditional updates ([`Storage::advance_round`]) fail with [`Error::Conflict`] when the
//! round moved on, so two processes (or a restarted one) cannot both apply a transition.
//! A round is driven by whichever process holds its lease ([`Storage::acquire_lease`]).

mod postgres;
mod schema;
mod sql;
mod sqlite;

use covey_protocol::dp::ClipEstimate;
use covey_protocol::secagg::Stage;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{Error, Result};

pub use postgres::PostgresStorage;
pub use sql::SqlStorage;
pub use sqlite::SqliteStorage;

/// Format version of the database schema this build writes. Older databases are migrated
/// forward when opened (see `schema::MIGRATIONS`); a newer one is refused.
pub const SCHEMA_VERSION: i64 = 3;

/// A round's id, unique across populations.
pub type RoundId = i64;

/// A population as stored: its validated config as canonical TOML.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationRecord {
    /// Unique name.
    pub name: String,
    /// Canonical TOML of the validated config.
    pub config_toml: String,
    /// The catalog as an items CSV ([`crate::config::catalog_csv`]), in model row order.
    pub catalog: String,
    /// Creation time.
    pub created_at: Millis,
}

/// SHA-256 of a device's bearer token: the only form in which the token is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Server-assigned random id (hex).
    pub id: String,
    /// The population it belongs to.
    pub population: String,
    /// Registration time.
    pub registered_at: Millis,
    /// The device's Ed25519 key for signed SecAgg+ sessions (one per device and
    /// population), if it registered one. Unique within a population.
    pub signing_key: Option<[u8; 32]>,
}

/// A model version: the whole `covey_model::GlobalModel` plus the server optimizer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    /// Population.
    pub population: String,
    /// Version number; 0 is the initial table, round r publishes its base + 1.
    pub version: u64,
    /// The round that produced it (`None` for the initial version).
    pub round_id: Option<RoundId>,
    /// The model as `covey_model::GlobalModel::to_bytes` (catalog included).
    pub params: Vec<u8>,
    /// Encoded optimizer state (FedAdam moments; empty vectors for FedAvg).
    pub optimizer_state: Vec<u8>,
    /// The L2 clip of rounds trained on this version, as adaptive clipping set it from the
    /// round that produced it (`None`: the population's `privacy.clip_norm`).
    pub clip: Option<f64>,
    /// SHA-256 of `params`, served as the download's ETag.
    pub digest: [u8; 32],
    /// Publication time.
    pub created_at: Millis,
}

/// A model version without its blobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    /// Version number.
    pub version: u64,
    /// Producing round.
    pub round_id: Option<RoundId>,
    /// Size of the encoded parameters.
    pub bytes: u64,
    /// SHA-256 of the encoded parameters.
    pub digest: [u8; 32],
    /// [`ModelRecord::clip`].
    pub clip: Option<f64>,
    /// Publication time.
    pub created_at: Millis,
}

/// Where a round is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundPhase {
    /// Devices are checking in.
    CheckIn,
    /// A SecAgg+ stage is collecting messages.
    Stage(Stage),
    /// Aggregated, new model published, ledger charged.
    Completed,
    /// Ended without a model update and without a ledger charge.
    Aborted,
}

impl RoundPhase {
    /// Whether the round can still change.
    pub fn is_active(self) -> bool {
        matches!(self, RoundPhase::CheckIn | RoundPhase::Stage(_))
    }

    /// `(state, stage)` as stored.
    fn to_columns(self) -> (&'static str, i64) {
        match self {
            RoundPhase::CheckIn => ("check_in", 0),
            RoundPhase::Stage(s) => ("running", s as i64),
            RoundPhase::Completed => ("completed", 0),
            RoundPhase::Aborted => ("aborted", 0),
        }
    }

    fn from_columns(state: &str, stage: i64) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt {
            what: "round state",
            reason,
        };
        Ok(match state {
            "check_in" => RoundPhase::CheckIn,
            "completed" => RoundPhase::Completed,
            "aborted" => RoundPhase::Aborted,
            "running" => RoundPhase::Stage(
                stage_from_i64(stage).ok_or_else(|| corrupt(format!("stage {stage}")))?,
            ),
            other => return Err(corrupt(format!("state `{other}`"))),
        })
    }

    /// Short lowercase name for display (`check_in`, `share_keys`, `completed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RoundPhase::CheckIn => "check_in",
            RoundPhase::Stage(Stage::AdvertiseKeys) => "advertise_keys",
            RoundPhase::Stage(Stage::ShareKeys) => "share_keys",
            RoundPhase::Stage(Stage::MaskedInput) => "masked_input",
            RoundPhase::Stage(Stage::ConsistencyCheck) => "consistency_check",
            RoundPhase::Stage(Stage::Unmask) => "unmask",
            RoundPhase::Completed => "completed",
            RoundPhase::Aborted => "aborted",
        }
    }
}

/// The SecAgg+ stage with wire byte `value`.
pub fn stage_from_i64(value: i64) -> Option<Stage> {
    Stage::ALL.into_iter().find(|s| *s as i64 == value)
}

/// A round about to be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRound {
    /// Population.
    pub population: String,
    /// The model version devices train on.
    pub base_version: u64,
    /// Opening time.
    pub opened_at: Millis,
    /// End of the check-in window.
    pub deadline: Millis,
}

/// A round as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRecord {
    /// Id.
    pub id: RoundId,
    /// Population.
    pub population: String,
    /// Model version trained on.
    pub base_version: u64,
    /// Current phase.
    pub phase: RoundPhase,
    /// Opening time.
    pub opened_at: Millis,
    /// Deadline of the current phase.
    pub deadline: Millis,
    /// The session's parameters, once the cohort is fixed.
    pub session: Option<SessionRecord>,
    /// Member ids whose inputs are in the aggregate (completed rounds).
    pub survivors: Vec<u32>,
    /// Why the round was aborted.
    pub reason: Option<String>,
    /// Last change.
    pub updated_at: Millis,
}

/// What devices of a round must agree on once its cohort is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Encoded SecAgg+ session parameters (`SessionParams::encode`).
    pub secagg: Vec<u8>,
    /// The DP encoding plan (`DpPlan`) as JSON.
    pub dp_plan: String,
}

/// A move of an active round to another active phase, applied atomically with the
/// session (when the cohort is fixed) and the server's messages opening the new stage, so a
/// device never sees a stage's messages before the round is in that stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<'a> {
    /// The round.
    pub id: RoundId,
    /// The phase the caller saw.
    pub from: RoundPhase,
    /// The new (active) phase.
    pub to: RoundPhase,
    /// Deadline of the new phase.
    pub deadline: Millis,
    /// Session to store, when the cohort is being fixed.
    pub session: Option<&'a SessionRecord>,
    /// Server messages opening `to`'s stage, one per member as `(member, payload)`.
    pub messages: &'a [(u32, Vec<u8>)],
    /// When the cohort is being fixed: the member ids selected (sorted). Every other device
    /// checked in to the round is dismissed in the same transaction — removed from the
    /// round, so it is no member, can send nothing, and its check-in does not count
    /// against its contribution bounds. This includes a device whose check-in raced the
    /// selection.
    pub cohort: Option<&'a [u32]>,
    /// Time of the change.
    pub now: Millis,
}

/// The outcome of a device's check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckIn {
    /// Admitted with this member id (also returned again to a device that re-checks in).
    Admitted(u32),
    /// The cohort is full.
    Full,
    /// The round is no longer accepting check-ins.
    Closed,
}

/// One entry of the privacy ledger: what one completed round cost.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    /// Population.
    pub population: String,
    /// 1 for the population's first charged round, then consecutive.
    pub seq: u64,
    /// The round charged.
    pub round_id: RoundId,
    /// Members whose updates entered the release.
    pub survivors: u64,
    /// The accountant's event (mechanism, noise, sampling) as JSON.
    pub event: String,
    /// ε added by this round (total after minus total before).
    pub epsilon_round: f64,
    /// ε of every charged round of the population composed, at `delta`.
    pub epsilon_total: f64,
    /// δ at which ε is stated.
    pub delta: f64,
    /// Charge time.
    pub created_at: Millis,
}

/// Everything that happens when a round completes, applied atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundCompletion {
    /// The round.
    pub round_id: RoundId,
    /// The phase the caller saw (the completion fails if the round moved on).
    pub from: RoundPhase,
    /// Surviving member ids.
    pub survivors: Vec<u32>,
    /// The new model version (its `version` must be the next one).
    pub model: ModelRecord,
    /// The ledger charge (its `seq` must be the next one).
    pub charge: LedgerEntry,
    /// What the driver measured about the round.
    pub profile: RoundProfile,
    /// Completion time.
    pub now: Millis,
}

/// Format version of [`RoundProfile`] as stored.
pub const ROUND_PROFILE_VERSION: u8 = 1;

/// What the driver measured about a completed round: how the cohort was selected and where
/// the server's time went. Wall times come from the service clock; server compute times
/// are measured around the work itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundProfile {
    /// [`ROUND_PROFILE_VERSION`].
    pub version: u8,
    /// Devices checked in when check-in closed.
    pub checked_in: u32,
    /// Devices selected (uniformly at random from those checked in, up to `cohort_max`).
    pub cohort: u32,
    /// Wall time from opening the round to fixing the cohort, ms.
    pub check_in_ms: i64,
    /// Each SecAgg+ stage in order.
    pub stages: Vec<StageProfile>,
    /// Server compute of the final stage: reconstructing and removing masks, ms.
    pub unmask_ms: f64,
    /// DP decoding of the unmasked sum, ms.
    pub decode_ms: f64,
    /// The server optimizer step, ms.
    pub optimizer_ms: f64,
    /// The L2 clip of the round's DP plan (absent in profiles stored before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<f64>,
    /// With adaptive clipping: the noised fraction of survivors within the clip and the
    /// clip it set for the next round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<ClipEstimate>,
}

/// One SecAgg+ stage of a [`RoundProfile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageProfile {
    /// Stage name (`advertise_keys`, `share_keys`, `masked_input`, ...).
    pub stage: String,
    /// Wall time the stage was open (devices computing and uploading), ms.
    pub wall_ms: i64,
    /// Server compute on the stage's messages (ingest and closing), ms.
    pub server_ms: f64,
    /// Members whose message arrived in time.
    pub messages: u32,
}

/// One device message for a stage, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Round.
    pub round_id: RoundId,
    /// Stage the message answers.
    pub stage: Stage,
    /// Sender's member id.
    pub member: u32,
    /// The opaque payload.
    pub payload: Vec<u8>,
    /// SHA-256 of the payload.
    pub digest: [u8; 32],
    /// Arrival time.
    pub received_at: Millis,
}

/// What [`Storage::submit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// First message of this member for this stage: queued.
    Accepted,
    /// The member already sent a message for this stage; nothing changed.
    Replay {
        /// Whether the earlier message had the same bytes (a retry, not a forgery).
        same_payload: bool,
    },
}

/// A lease row: who drives a round (or a population's scheduler) until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What is leased (`round:17`, `population:coffee`).
    pub key: String,
    /// Process id of the holder.
    pub owner: String,
    /// The lease is void after this time unless renewed.
    pub expires_at: Millis,
}

/// The server's persistence. Every method is one transaction.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Backend name (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Creates a population; [`Error::AlreadyExists`] if the name is taken.
    fn create_population(&self, population: &PopulationRecord) -> Result<()>;
    /// One population.
    fn population(&self, name: &str) -> Result<Option<PopulationRecord>>;
    /// All populations, by name.
    fn populations(&self) -> Result<Vec<PopulationRecord>>;

    /// Registers a device with the hash of its bearer token; [`Error::AlreadyExists`] if
    /// the id, the token or the signing key (within the population) is taken.
    fn register_device(&self, device: &DeviceRecord, token: &TokenHash) -> Result<()>;
    /// The device holding the token with this hash.
    fn device_by_token(&self, token: &TokenHash) -> Result<Option<DeviceRecord>>;
    /// Number of registered devices of a population.
    fn device_count(&self, population: &str) -> Result<u64>;

    /// Stores a model version; [`Error::AlreadyExists`] if that version exists.
    fn put_model(&self, model: &ModelRecord) -> Result<()>;
    /// One model version with its blobs.
    fn model(&self, population: &str, version: u64) -> Result<Option<ModelRecord>>;
    /// The newest model version's metadata.
    fn latest_model(&self, population: &str) -> Result<Option<ModelMeta>>;
    /// Every model version's metadata, oldest first.
    fn models(&self, population: &str) -> Result<Vec<ModelMeta>>;

    /// Opens a round in [`RoundPhase::CheckIn`]; [`Error::AlreadyExists`] when the
    /// population already has an active round.
    fn open_round(&self, round: &NewRound) -> Result<RoundId>;
    /// One round.
    fn round(&self, id: RoundId) -> Result<Option<RoundRecord>>;
    /// The newest `limit` rounds of a population, newest first.
    fn rounds(&self, population: &str, limit: u32) -> Result<Vec<RoundRecord>>;
    /// Every active round of every population (for recovery after a restart).
    fn active_rounds(&self) -> Result<Vec<RoundRecord>>;
    /// Applies a [`Transition`] in one transaction. [`Error::Conflict`] if the round is
    /// not in `from` (another process or an earlier run already moved it).
    fn advance_round(&self, transition: &Transition<'_>) -> Result<()>;
    /// Admits a device to a round in check-in, up to `cohort_max` members.
    fn check_in(&self, id: RoundId, device: &str, cohort_max: u32, now: Millis) -> Result<CheckIn>;
    /// A round's members as `(device id, member id)`, by member id.
    fn members(&self, id: RoundId) -> Result<Vec<(String, u32)>>;
    /// A round's members as `(member id, the device's signing key)`, by member id.
    fn member_signing_keys(&self, id: RoundId) -> Result<Vec<(u32, Option<[u8; 32]>)>>;
    /// When `device` was admitted to rounds at or after `since`, oldest first.
    fn check_ins_since(&self, device: &str, since: Millis) -> Result<Vec<Millis>>;
    /// The member id of `device` in round `id`, if it checked in.
    fn member_of(&self, id: RoundId, device: &str) -> Result<Option<u32>>;
    /// Completes a round, publishes its model version and charges the ledger, atomically.
    fn complete_round(&self, completion: &RoundCompletion) -> Result<()>;
    /// Aborts an active round from `from` and drops its queued payloads.
    fn abort_round(&self, id: RoundId, from: RoundPhase, reason: &str, now: Millis) -> Result<()>;

    /// Takes or renews the lease `key` for `owner` until `now + ttl`; false while another
    /// owner holds an unexpired lease.
    fn acquire_lease(&self, key: &str, owner: &str, now: Millis, ttl: Millis) -> Result<bool>;
    /// Gives up a lease held by `owner`.
    fn release_lease(&self, key: &str, owner: &str) -> Result<()>;
    /// The lease on `key`, if any.
    fn lease(&self, key: &str) -> Result<Option<Lease>>;

    /// Queues a stage message unless the member already sent one for that stage.
    fn submit(&self, submission: &Submission) -> Result<SubmitOutcome>;
    /// Removes and returns the queued payloads of a stage not yet taken, by member id.
    /// Their digests stay, so replays are still rejected.
    fn take_submissions(&self, id: RoundId, stage: Stage) -> Result<Vec<(u32, Vec<u8>)>>;
    /// Number of members who sent a message for a stage (taken or not).
    fn submission_count(&self, id: RoundId, stage: Stage) -> Result<u64>;
    /// The server's message opening `stage` for `member`.
    fn message(&self, id: RoundId, stage: Stage, member: u32) -> Result<Option<Vec<u8>>>;

    /// The profile recorded when round `id` completed.
    fn round_profile(&self, id: RoundId) -> Result<Option<RoundProfile>>;

    /// A population's ledger, oldest first.
    fn ledger(&self, population: &str) -> Result<Vec<LedgerEntry>>;
    /// ε spent so far by a population (0 before its first charge).
    fn epsilon_spent(&self, population: &str) -> Result<f64>;
}
