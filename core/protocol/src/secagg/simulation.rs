//! An in-process SecAgg+ session: every member's [`Client`] and the [`Server`] exchange
//! encoded bytes, with dropouts injected before chosen stages. Used by `covey secagg
//! simulate`, the tests and the benches; it exercises exactly the code a deployment runs,
//! minus the network.

use std::collections::BTreeMap;
use std::time::Duration;

use rand_core::CryptoRng;

use super::error::{Error, Result};
use super::params::{self, GraphParams, ThreatModel};
use super::{
    Client, MemberId, Server, ServerMessage, ServerStep, SessionId, SessionParams, SigningIdentity,
    Stage, value_mask,
};

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// Cohort size n.
    pub members: usize,
    /// Vector length m.
    pub dimension: usize,
    /// Bit width B of inputs and sum.
    pub bits: u32,
    /// Fixed graph degree k instead of the one the finder derives.
    pub degree: Option<usize>,
    /// Threat model the parameters are derived for.
    pub threat: ThreatModel,
    /// Fraction of the cohort that drops out right before sending its message of a stage.
    pub dropouts: Vec<(Stage, f64)>,
    /// Run the signed variant (Ed25519 on every message and the survivor list).
    pub signed: bool,
}

/// What a simulated session measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationReport {
    /// The server's sum equals the plain sum of the survivors' inputs.
    pub sum_correct: bool,
    /// Cohort size n.
    pub members: usize,
    /// Members whose inputs are in the sum.
    pub survivors: usize,
    /// Graph degree k used.
    pub degree: usize,
    /// Shamir threshold t used.
    pub threshold: usize,
    /// Median over members of the time spent in their client state machine.
    pub client_seconds_median: f64,
    /// Time spent in the server state machine.
    pub server_seconds: f64,
    /// Median over survivors of the bytes a member uploaded over the whole session.
    pub bytes_per_member: usize,
}

/// Derives (k, t) for the config: the finder's choice, or the threshold for a fixed degree.
pub fn graph_params(config: &SimulationConfig) -> Result<GraphParams> {
    match config.degree {
        Some(degree) => params::for_degree(config.members, degree, &config.threat),
        None => params::find(config.members, &config.threat),
    }
}

struct Party {
    client: Client,
    input: Vec<u32>,
    spent: Duration,
    uploaded: usize,
}

/// Runs one session. `clock` returns monotonic time (injectable for tests); `rng` drives
/// every random choice: session id, inputs, keys and who drops out.
pub fn simulate<R: CryptoRng + ?Sized>(
    config: &SimulationConfig,
    rng: &mut R,
    clock: &mut dyn FnMut() -> Duration,
) -> Result<SimulationReport> {
    let graph = graph_params(config)?;
    let mut session = [0u8; 32];
    rng.fill_bytes(&mut session);
    let roster: Vec<MemberId> = (0..config.members as u32).map(MemberId).collect();
    let identities: Vec<Option<SigningIdentity>> = roster
        .iter()
        .map(|_| {
            config
                .signed
                .then(|| SigningIdentity::generate(rng))
                .transpose()
        })
        .collect::<Result<_>>()?;
    let signing_keys = config.signed.then(|| {
        identities
            .iter()
            .flatten()
            .map(SigningIdentity::public_key)
            .collect()
    });
    let params = SessionParams {
        session_id: SessionId(session),
        bits: config.bits,
        dimension: config.dimension,
        degree: graph.degree,
        threshold: graph.threshold,
        roster: roster.clone(),
        signing_keys,
    };
    let mut server_time = Duration::ZERO;
    let start = clock();
    let mut server = Server::new(params.clone())?;
    server_time += clock() - start;

    let mut parties: BTreeMap<MemberId, Party> = BTreeMap::new();
    let mut outbox: Vec<Vec<u8>> = Vec::new();
    let drops = dropout_plan(config, rng);
    let mask = value_mask(config.bits);
    for (member, identity) in roster.iter().zip(identities) {
        let input: Vec<u32> = (0..config.dimension)
            .map(|_| rng.next_u32() & mask)
            .collect();
        let start = clock();
        let (client, message) = Client::new(params.clone(), *member, &input, identity, rng)?;
        let bytes = message.encode();
        let spent = clock() - start;
        let mut party = Party {
            client,
            input,
            spent,
            uploaded: 0,
        };
        if !drops.drops_before(member.0, Stage::AdvertiseKeys) {
            party.uploaded += bytes.len();
            outbox.push(bytes);
        }
        parties.insert(*member, party);
    }

    let aggregate = loop {
        let start = clock();
        for bytes in outbox.drain(..) {
            server.receive_bytes(&bytes)?;
        }
        let step = server.close_stage();
        server_time += clock() - start;
        let messages = match step? {
            ServerStep::Finished(aggregate) => break aggregate,
            ServerStep::Send(messages) => messages,
        };
        for message in messages {
            let wire = message.encode();
            let Some(party) = parties.get_mut(&message.recipient) else {
                return Err(Error::UnknownMember);
            };
            let start = clock();
            let reply = party.client.handle(&ServerMessage::decode(&wire)?)?;
            let bytes = reply.encode();
            party.spent += clock() - start;
            if !drops.drops_before(message.recipient.0, reply.body.stage()) {
                party.uploaded += bytes.len();
                outbox.push(bytes);
            }
        }
    };

    let expected = plain_sum(&aggregate.survivors, &parties, config);
    let mut spent: Vec<Duration> = parties.values().map(|p| p.spent).collect();
    let mut uploads: Vec<usize> = aggregate
        .survivors
        .iter()
        .filter_map(|m| parties.get(m))
        .map(|p| p.uploaded)
        .collect();
    Ok(SimulationReport {
        sum_correct: expected == aggregate.sum,
        members: config.members,
        survivors: aggregate.survivors.len(),
        degree: graph.degree,
        threshold: graph.threshold,
        client_seconds_median: median(&mut spent).as_secs_f64(),
        server_seconds: server_time.as_secs_f64(),
        bytes_per_member: median(&mut uploads),
    })
}

fn plain_sum(
    survivors: &[MemberId],
    parties: &BTreeMap<MemberId, Party>,
    config: &SimulationConfig,
) -> Vec<u32> {
    let mut sum = vec![0u32; config.dimension];
    for party in survivors.iter().filter_map(|m| parties.get(m)) {
        sum.iter_mut()
            .zip(&party.input)
            .for_each(|(s, x)| *s = s.wrapping_add(*x));
    }
    let mask = value_mask(config.bits);
    sum.iter_mut().for_each(|s| *s &= mask);
    sum
}

fn median<T: Ord + Copy + Default>(values: &mut [T]) -> T {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Which member drops before which stage.
struct DropoutPlan(BTreeMap<u32, Stage>);

impl DropoutPlan {
    fn drops_before(&self, member: u32, stage: Stage) -> bool {
        self.0.get(&member).is_some_and(|s| *s <= stage)
    }
}

/// Picks ⌊fraction·n⌋ still-present members per stage, uniformly, in stage order.
fn dropout_plan<R: CryptoRng + ?Sized>(config: &SimulationConfig, rng: &mut R) -> DropoutPlan {
    let mut present: Vec<u32> = (0..config.members as u32).collect();
    let mut plan = BTreeMap::new();
    let mut stages = config.dropouts.clone();
    stages.sort_by_key(|(stage, _)| *stage);
    for (stage, fraction) in stages {
        let count = ((fraction.clamp(0.0, 1.0) * config.members as f64).floor() as usize)
            .min(present.len());
        for _ in 0..count {
            let i = (rng.next_u64() % present.len() as u64) as usize;
            plan.insert(present.swap_remove(i), stage);
        }
    }
    DropoutPlan(plan)
}
