//! Signed SecAgg+ rounds end to end: members with real stores run `Device::participate`
//! over real HTTP on loopback against an embedded `covey-server` whose population has
//! `secagg.signed = true`. Some members' networks run through a man in the middle that
//! rewrites what the server sent (the view a lying server gives one member): a substituted
//! peer key, a survivor list other than the one signed, a session stripped of its
//! signatures, a roster that lists another key for the member itself. Those members stop
//! with `Error::RoundTampered` and send nothing after the tampered message; the honest
//! members finish the round.
//!
//! (A roster shown with a substituted key *and* keys re-signed to match it cannot be staged
//! from the network here: the member's own signatures then commit to its altered roster and
//! the honest server drops it at once. covey-protocol's
//! `a_member_shown_a_substituted_roster_key_refuses_the_key_directory` plays the lying
//! server for that case.)

use std::sync::{Arc, Mutex};

use covey_e2e::{
    Member, catalog, init_population, participate, population_toml, start_server, tempdir,
    wait_for_round_end,
};
use covey_protocol::secagg::{MemberId, ServerBody, ServerMessage, SessionParams, SigningIdentity};
use covey_sdk::{
    Error, HttpMethod, HttpTransport, ParticipationOutcome, Tampering, Transport, TransportError,
    TransportRequest, TransportResponse,
};
use covey_server::config::RawConfig;
use covey_server::storage::RoundPhase;
use covey_store::ParticipationOutcome as Ended;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ITEMS: usize = 120;
const DIM: usize = 4;

/// What the man in the middle does to the server's messages for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// Nothing: an honest network.
    Honest,
    /// Replaces a neighbour's advertised keys in the key directory.
    SwapPeerKeys,
    /// Drops another survivor from the unmask request (to collect its s-share).
    ChangeSurvivorList,
    /// Strips the signing keys from the session (a downgrade to unsigned).
    StripSignatures,
    /// Lists another signing key for the member itself.
    ReplaceOwnKey,
}

/// A device's network through a man in the middle.
struct Mitm {
    inner: HttpTransport,
    attack: Attack,
    impostor: SigningIdentity,
    /// The member id the server gave at check-in.
    member: Mutex<Option<u32>>,
    /// Stages this member posted, in order.
    posted: Mutex<Vec<String>>,
}

impl Mitm {
    fn new(base: &str, attack: Attack, seed: u64) -> Self {
        Mitm {
            inner: HttpTransport::new(base),
            attack,
            impostor: SigningIdentity::generate(&mut ChaCha20Rng::seed_from_u64(seed)).unwrap(),
            member: Mutex::new(None),
            posted: Mutex::new(Vec::new()),
        }
    }

    fn posted(&self) -> Vec<String> {
        self.posted.lock().unwrap().clone()
    }

    fn rewrite(&self, path: &str, body: &[u8]) -> Option<Vec<u8>> {
        if path.ends_with("/session") {
            return self.rewrite_session(body);
        }
        let mut message = ServerMessage::decode(body).ok()?;
        match (&mut message.body, self.attack) {
            (ServerBody::KeyDirectory(entries), Attack::SwapPeerKeys) => {
                entries.first_mut()?.keys.c_public[0] ^= 1;
            }
            (ServerBody::UnmaskRequest { survivors, .. }, Attack::ChangeSurvivorList) => {
                let me = MemberId((*self.member.lock().unwrap())?);
                let other = survivors.iter().position(|m| *m != me)?;
                survivors.remove(other);
            }
            _ => return None,
        }
        Some(message.encode())
    }

    fn rewrite_session(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut params = SessionParams::decode(body).ok()?;
        let me = params.position(MemberId((*self.member.lock().unwrap())?))?;
        let impostor = self.impostor.public_key();
        match self.attack {
            Attack::StripSignatures => params.signing_keys = None,
            Attack::ReplaceOwnKey => params.signing_keys.as_mut()?[me] = impostor,
            _ => return None,
        }
        Some(params.encode())
    }
}

impl Transport for Mitm {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        let mut response = self.inner.send(request)?;
        // Polls may carry a query (`?wait=S`, a long poll).
        let path = request.path.split('?').next().unwrap_or_default();
        if request.method == HttpMethod::Post && path.contains("/stages/") {
            let stage = path.rsplit('/').next().unwrap_or_default().to_owned();
            self.posted.lock().unwrap().push(stage);
        }
        if request.method == HttpMethod::Post && path.ends_with("/check-in") {
            let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            *self.member.lock().unwrap() = json["member_id"].as_u64().map(|m| m as u32);
        }
        if request.method == HttpMethod::Get
            && response.status == 200
            && self.attack != Attack::Honest
            && let Some(body) = self.rewrite(path, &response.body)
        {
            response.body = body;
        }
        Ok(response)
    }
}

fn signed_toml(name: &str, cohort: usize) -> String {
    let toml = population_toml(name, DIM, cohort, cohort);
    let mut raw: RawConfig = ::toml::from_str(&toml).expect("population TOML");
    raw.secagg.signed = true;
    ::toml::to_string(&raw).expect("population TOML")
}

/// A member, its network and how its participation ended.
type Participant = (
    Arc<Member>,
    Arc<Mitm>,
    covey_sdk::Result<ParticipationOutcome>,
);

/// Runs one round of `attacks.len()` members, member i behind a man in the middle doing
/// `attacks[i]`; returns each participant and the round's final phase.
fn run(name: &str, attacks: &[Attack]) -> (Vec<Participant>, RoundPhase) {
    let dir = tempdir();
    let cat = catalog(ITEMS);
    let data = init_population(dir.path(), &signed_toml(name, attacks.len()), &cat);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let running = start_server(&runtime, &data, 41);
    let base = format!("http://{}", running.addr);
    let members: Vec<(Arc<Member>, Arc<Mitm>)> = attacks
        .iter()
        .enumerate()
        .map(|(i, attack)| {
            let member = Member::new(500 + i as u64, ITEMS, 12);
            let registration = member
                .device
                .join(&HttpTransport::new(&base), name)
                .unwrap();
            assert!(registration.signed_sessions);
            assert!(registration.signing_key.is_some());
            (
                Arc::new(member),
                Arc::new(Mitm::new(&base, *attack, 900 + i as u64)),
            )
        })
        .collect();
    let handles: Vec<_> = members
        .iter()
        .map(|(m, t)| {
            let (m, t) = (Arc::clone(m), Arc::clone(t));
            std::thread::spawn(move || participate(&m, &*t))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let round = results
        .iter()
        .find_map(|r| r.as_ref().ok().map(|o| o.round))
        .or_else(|| {
            let store = running.service.store();
            store.rounds(name, 1).unwrap().first().map(|r| r.id)
        })
        .expect("a round was opened");
    let phase = wait_for_round_end(&running, round).phase;
    let _ = runtime.block_on(running.shutdown());
    let out = members
        .into_iter()
        .zip(results)
        .map(|((m, t), r)| (m, t, r))
        .collect();
    (out, phase)
}

fn ended(member: &Member) -> Ended {
    let records = member.device.store().participations().unwrap();
    assert_eq!(records.len(), 1);
    records[0].record.outcome
}

#[test]
fn honest_members_finish_a_signed_round_and_tampered_ones_stop() {
    use Attack::*;
    let attacks = [
        Honest,
        Honest,
        Honest,
        Honest,
        Honest,
        SwapPeerKeys,
        ChangeSurvivorList,
    ];
    let (members, phase) = run("signed", &attacks);
    assert_eq!(phase, RoundPhase::Completed);
    for (attack, (member, network, result)) in attacks.iter().zip(&members) {
        let posted = network.posted();
        match attack {
            Honest => {
                let outcome = result.as_ref().expect("honest member finishes");
                assert!(outcome.upload_bytes > 0);
                assert_eq!(
                    posted,
                    [
                        "advertise_keys",
                        "share_keys",
                        "masked_input",
                        "consistency_check",
                        "unmask"
                    ]
                );
                assert_eq!(ended(member), Ended::Uploaded);
            }
            SwapPeerKeys => {
                assert!(
                    matches!(result, Err(Error::RoundTampered(Tampering::PeerKeysForged))),
                    "{result:?}"
                );
                // Only the member's own public keys left: no share of any secret.
                assert_eq!(posted, ["advertise_keys"]);
                assert_eq!(ended(member), Ended::Aborted);
            }
            ChangeSurvivorList => {
                assert!(
                    matches!(
                        result,
                        Err(Error::RoundTampered(Tampering::SurvivorListMismatch))
                    ),
                    "{result:?}"
                );
                // No unmask shares: neither the b- nor the s-share of the dropped peer.
                assert_eq!(
                    posted,
                    [
                        "advertise_keys",
                        "share_keys",
                        "masked_input",
                        "consistency_check"
                    ]
                );
                assert_eq!(ended(member), Ended::Aborted);
            }
            other => unreachable!("{other:?} is not in this round"),
        }
    }
}

#[test]
fn a_downgraded_or_rekeyed_session_is_refused_before_any_message() {
    use Attack::*;
    let attacks = [
        Honest,
        Honest,
        Honest,
        Honest,
        StripSignatures,
        ReplaceOwnKey,
    ];
    let (members, _) = run("downgrade", &attacks);
    for (attack, (member, network, result)) in attacks.iter().zip(&members) {
        let expected = match attack {
            StripSignatures => Tampering::UnsignedSession,
            ReplaceOwnKey => Tampering::OwnKeyReplaced,
            _ => continue,
        };
        assert!(
            matches!(result, Err(Error::RoundTampered(t)) if *t == expected),
            "{attack:?}: {result:?}"
        );
        assert!(
            network.posted().is_empty(),
            "{attack:?} sent a stage message"
        );
        assert_eq!(ended(member), Ended::Aborted);
    }
}
