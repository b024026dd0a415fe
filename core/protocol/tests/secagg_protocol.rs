//! SecAgg+ end to end through the public API: exact sums under dropouts, clean aborts, and
//! the refusals that protect a member against a lying server or a forged message.

use std::collections::BTreeMap;
use std::time::Duration;

use covey_protocol::secagg::simulation::{SimulationConfig, simulate};
use covey_protocol::secagg::{
    AdversaryClass, AdvertisedKeys, Client, ClientBody, ClientMessage, DirectoryEntry, Error,
    MemberId, Server, ServerBody, ServerMessage, ServerStep, SessionId, SessionParams,
    SigningIdentity, Stage, ThreatModel, signature_payload,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn threat(adversarial: f64, dropout: f64) -> ThreatModel {
    ThreatModel {
        adversarial_fraction: adversarial,
        dropout_fraction: dropout,
        adversary: AdversaryClass::SemiHonest,
    }
}

fn config(
    members: usize,
    dimension: usize,
    bits: u32,
    dropouts: &[(Stage, f64)],
) -> SimulationConfig {
    SimulationConfig {
        members,
        dimension,
        bits,
        degree: None,
        threat: threat(0.05, 0.3),
        dropouts: dropouts.to_vec(),
        signed: false,
    }
}

fn run(
    config: &SimulationConfig,
    seed: u64,
) -> Result<covey_protocol::secagg::simulation::SimulationReport, Error> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut ticks = Duration::ZERO;
    let mut clock = move || {
        ticks += Duration::from_micros(1);
        ticks
    };
    simulate(config, &mut rng, &mut clock)
}

#[test]
fn sum_is_exact_without_dropouts() {
    let report = run(&config(40, 300, 16, &[]), 1).unwrap();
    assert!(report.sum_correct);
    assert_eq!(report.survivors, 40);
}

#[test]
fn sum_is_exact_with_dropouts_at_every_stage_up_to_the_tolerated_fraction() {
    let stages = [
        Stage::AdvertiseKeys,
        Stage::ShareKeys,
        Stage::MaskedInput,
        Stage::Unmask,
    ];
    for (i, stage) in stages.into_iter().enumerate() {
        let report = run(&config(120, 64, 20, &[(stage, 0.3)]), 10 + i as u64).unwrap();
        assert!(report.sum_correct, "dropouts before {stage:?}");
        let expect = if stage == Stage::Unmask {
            120
        } else {
            120 - 36
        };
        assert_eq!(report.survivors, expect, "dropouts before {stage:?}");
    }
}

#[test]
fn sum_is_exact_for_a_few_hundred_members_with_mixed_dropouts() {
    let dropouts = [
        (Stage::AdvertiseKeys, 0.07),
        (Stage::ShareKeys, 0.07),
        (Stage::MaskedInput, 0.08),
        (Stage::Unmask, 0.08),
    ];
    let report = run(&config(300, 32, 32, &dropouts), 3).unwrap();
    assert!(report.sum_correct);
    assert_eq!(report.survivors, 300 - 21 - 21 - 24);
    assert!(report.degree < 299, "SecAgg+ graph, not the complete graph");
}

#[test]
fn signed_sessions_survive_dropouts_including_at_the_consistency_check() {
    let mut c = config(
        60,
        16,
        8,
        &[
            (Stage::MaskedInput, 0.1),
            (Stage::ConsistencyCheck, 0.1),
            (Stage::Unmask, 0.05),
        ],
    );
    c.signed = true;
    let report = run(&c, 4).unwrap();
    assert!(report.sum_correct);
    assert_eq!(report.survivors, 54);
}

#[test]
fn one_bit_and_thirty_two_bit_inputs_sum_exactly() {
    for bits in [1, 32] {
        assert!(
            run(&config(20, 33, bits, &[(Stage::MaskedInput, 0.1)]), 5)
                .unwrap()
                .sum_correct
        );
    }
}

#[test]
fn too_many_dropouts_abort_cleanly() {
    let mut c = config(60, 8, 16, &[(Stage::MaskedInput, 0.7)]);
    c.threat = threat(0.05, 0.1);
    match run(&c, 6) {
        Err(Error::BelowThreshold {
            stage: Stage::MaskedInput,
            available,
            threshold,
        }) => {
            assert!(available < threshold)
        }
        other => panic!("expected a clean abort, got {other:?}"),
    }
    let mut c = config(60, 8, 16, &[(Stage::Unmask, 0.8)]);
    c.threat = threat(0.05, 0.1);
    assert!(matches!(
        run(&c, 7),
        Err(Error::BelowThreshold {
            stage: Stage::Unmask,
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Within the tolerated dropout fraction the sum is always exact.
    #[test]
    fn random_cohorts_within_tolerance_sum_exactly(
        members in 8usize..48,
        dimension in 1usize..40,
        bits in 1u32..=32,
        split in proptest::collection::vec(0.0f64..0.075, 4),
        seed in any::<u64>(),
    ) {
        let stages = [Stage::AdvertiseKeys, Stage::ShareKeys, Stage::MaskedInput, Stage::Unmask];
        let dropouts: Vec<(Stage, f64)> = stages.into_iter().zip(split).collect();
        let report = run(&config(members, dimension, bits, &dropouts), seed).unwrap();
        prop_assert!(report.sum_correct);
    }
}

// ------------------------------------------------------------------------------------
// A hand-driven session, for the attacks the simulator cannot express.

struct Harness {
    server: Server,
    clients: BTreeMap<MemberId, Client>,
    /// Server messages of the stage just opened, by recipient.
    inbox: BTreeMap<MemberId, ServerMessage>,
}

fn params(n: u32, signed: Option<&[SigningIdentity]>, rng: &mut ChaCha20Rng) -> SessionParams {
    let mut session = [0u8; 32];
    rng.fill_bytes(&mut session);
    SessionParams {
        session_id: SessionId(session),
        bits: 16,
        dimension: 10,
        degree: 6,
        threshold: 3,
        roster: (0..n).map(MemberId).collect(),
        signing_keys: signed.map(|ids| ids.iter().map(SigningIdentity::public_key).collect()),
    }
}

impl Harness {
    fn new(n: u32, signed: bool) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let ids: Option<Vec<SigningIdentity>> = signed.then(|| {
            (0..n)
                .map(|_| SigningIdentity::generate(&mut rng).unwrap())
                .collect()
        });
        let params = params(n, ids.as_deref(), &mut rng);
        let mut server = Server::new(params.clone()).unwrap();
        let mut clients = BTreeMap::new();
        let mut seeds = ids
            .map(|v| v.into_iter().map(Some).collect::<Vec<_>>())
            .unwrap_or_default();
        for (i, member) in params.roster.iter().enumerate() {
            let identity = seeds.get_mut(i).and_then(Option::take);
            let input = vec![i as u32; 10];
            let (client, message) =
                Client::new(params.clone(), *member, &input, identity, &mut rng).unwrap();
            server.receive_bytes(&message.encode()).unwrap();
            clients.insert(*member, client);
        }
        let mut h = Harness {
            server,
            clients,
            inbox: BTreeMap::new(),
        };
        h.close();
        h
    }

    fn close(&mut self) -> Option<covey_protocol::secagg::Aggregate> {
        match self.server.close_stage().unwrap() {
            ServerStep::Send(messages) => {
                self.inbox = messages.into_iter().map(|m| (m.recipient, m)).collect();
                None
            }
            ServerStep::Finished(aggregate) => Some(aggregate),
        }
    }

    /// Delivers the open stage's messages to everyone except `skip` and closes the stage.
    fn step(&mut self, skip: &[MemberId]) -> Option<covey_protocol::secagg::Aggregate> {
        let inbox = std::mem::take(&mut self.inbox);
        for (member, message) in inbox {
            if skip.contains(&member) {
                continue;
            }
            let reply = self
                .clients
                .get_mut(&member)
                .unwrap()
                .handle(&message)
                .unwrap();
            self.server.receive(&reply).unwrap();
        }
        self.close()
    }
}

#[test]
fn hand_driven_session_sums_and_reports_survivors() {
    let mut h = Harness::new(12, false);
    assert!(h.step(&[]).is_none()); // shares
    assert!(h.step(&[MemberId(3)]).is_none()); // masked input, member 3 drops
    let aggregate = h.step(&[]).unwrap();
    let expect: u32 = (0..12).filter(|&i| i != 3).sum();
    assert_eq!(aggregate.sum, vec![expect; 10]);
    assert_eq!(aggregate.survivors.len(), 11);
    assert!(!aggregate.survivors.contains(&MemberId(3)));
}

#[test]
fn a_member_never_reveals_both_shares_of_a_peer() {
    let mut h = Harness::new(12, false);
    h.step(&[]);
    h.step(&[]);
    let (&member, request) = h.inbox.iter().next().unwrap();
    let ServerBody::UnmaskRequest { survivors, .. } = &request.body else {
        panic!("not at unmask")
    };
    let client = h.clients.get_mut(&member).unwrap();
    let reply = client.handle(request).unwrap();
    let ClientBody::UnmaskShares { b_shares, s_shares } = &reply.body else {
        panic!()
    };
    assert!(s_shares.is_empty(), "everyone survived: only b-shares");
    let peer = b_shares[0].0;
    // The server now claims that peer dropped, to collect its s-share as well.
    let lying = ServerMessage {
        body: ServerBody::UnmaskRequest {
            survivors: survivors.iter().copied().filter(|m| *m != peer).collect(),
            signatures: Vec::new(),
        },
        ..request.clone()
    };
    assert!(matches!(
        client.handle(&lying),
        Err(Error::UnmaskRefused(_))
    ));
}

#[test]
fn signed_members_refuse_a_survivor_list_they_did_not_sign() {
    let mut h = Harness::new(12, true);
    h.step(&[]);
    h.step(&[]);
    assert!(h.step(&[]).is_none()); // consistency check
    let (&member, request) = h.inbox.iter().next().unwrap();
    let ServerBody::UnmaskRequest {
        survivors,
        signatures,
    } = &request.body
    else {
        panic!()
    };
    let client = h.clients.get_mut(&member).unwrap();
    let altered = |survivors: Vec<MemberId>, signatures: Vec<(MemberId, [u8; 64])>| ServerMessage {
        body: ServerBody::UnmaskRequest {
            survivors,
            signatures,
        },
        ..request.clone()
    };
    let fewer: Vec<MemberId> = survivors
        .iter()
        .copied()
        .filter(|m| *m != MemberId(11) && *m != member)
        .collect();
    let mut with_self = fewer.clone();
    with_self.push(member);
    with_self.sort();
    assert!(matches!(
        client.handle(&altered(with_self, signatures.clone())),
        Err(Error::UnmaskRefused(_))
    ));
    assert!(matches!(
        client.handle(&altered(survivors.clone(), signatures[..2].to_vec())),
        Err(Error::UnmaskRefused(_))
    ));
    let mut forged = signatures.clone();
    forged[0].1[5] ^= 1;
    assert!(matches!(
        client.handle(&altered(survivors.clone(), forged)),
        Err(Error::BadSignature(_))
    ));
    // Rejections changed nothing: the genuine request still works and the sum is exact.
    assert!(h.step(&[]).is_some());
}

#[test]
fn server_rejects_replays_duplicates_strangers_and_dropouts() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let params = params(10, None, &mut rng);
    let mut server = Server::new(params.clone()).unwrap();
    let (mut first, hello) =
        Client::new(params.clone(), MemberId(0), &[1; 10], None, &mut rng).unwrap();
    server.receive(&hello).unwrap();
    assert_eq!(
        server.receive(&hello),
        Err(Error::Duplicate(Stage::AdvertiseKeys))
    );
    let old_session = ClientMessage {
        session: SessionId([0xee; 32]),
        ..hello.clone()
    };
    assert_eq!(server.receive(&old_session), Err(Error::WrongSession));
    let stranger = ClientMessage {
        sender: MemberId(77),
        ..hello.clone()
    };
    assert_eq!(server.receive(&stranger), Err(Error::UnknownMember));
    let mut others = Vec::new();
    for i in 1..9 {
        let (client, m) =
            Client::new(params.clone(), MemberId(i), &[1; 10], None, &mut rng).unwrap();
        server.receive(&m).unwrap();
        others.push(client);
    }
    // Member 9 never advertised: it is out for good.
    let (_, late) = Client::new(params.clone(), MemberId(9), &[1; 10], None, &mut rng).unwrap();
    let ServerStep::Send(directories) = server.close_stage().unwrap() else {
        panic!()
    };
    assert_eq!(
        server.receive(&late),
        Err(Error::UnexpectedStage {
            expected: Stage::ShareKeys,
            got: Stage::AdvertiseKeys
        })
    );
    let to_first = directories
        .iter()
        .find(|m| m.recipient == MemberId(0))
        .unwrap();
    let shares = first.handle(to_first).unwrap();
    // The client will not process the same stage twice.
    assert!(matches!(
        first.handle(to_first),
        Err(Error::UnexpectedStage { .. })
    ));
    let not_mine = ServerMessage {
        recipient: MemberId(1),
        ..to_first.clone()
    };
    assert_eq!(first.handle(&not_mine), Err(Error::WrongRecipient));
    server.receive(&shares).unwrap();
    assert_eq!(
        server.receive(&shares),
        Err(Error::Duplicate(Stage::ShareKeys))
    );
    let ghost = ClientMessage {
        sender: MemberId(9),
        ..shares.clone()
    };
    assert_eq!(server.receive(&ghost), Err(Error::NotLive));
}

/// A server that substitutes one peer's roster key in a member's session parameters, and
/// relays keys it signed with the substitute, is caught at the key directory: the other
/// peers signed over the genuine roster, so their signatures do not verify under the
/// member's altered view. The member sends nothing beyond its own advertised keys.
#[test]
fn a_member_shown_a_substituted_roster_key_refuses_the_key_directory() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ids: Vec<SigningIdentity> = (0..7)
        .map(|_| SigningIdentity::generate(&mut rng).unwrap())
        .collect();
    let mut honest = params(7, Some(&ids), &mut rng);
    honest.degree = 6; // complete graph: every member is every other's neighbour
    let (victim, peer) = (MemberId(0), MemberId(3));
    let impostor = SigningIdentity::generate(&mut rng).unwrap();
    let mut altered = honest.clone();
    if let Some(keys) = altered.signing_keys.as_mut() {
        keys[3] = impostor.public_key();
    }
    let mut seeds = ids.into_iter();
    let mut directory = Vec::new();
    let mut victim_client = None;
    for member in honest.roster.clone() {
        let identity = seeds.next();
        let view = if member == victim { &altered } else { &honest };
        let (client, advert) =
            Client::new(view.clone(), member, &[1; 10], identity, &mut rng).unwrap();
        let ClientBody::AdvertiseKeys(keys) = advert.body else {
            panic!("stage 1 advertises keys")
        };
        if member == victim {
            victim_client = Some(client);
        } else if member == peer {
            // The server's own keys in the peer's place, signed over the victim's view.
            let forged_keys = AdvertisedKeys {
                c_public: [9; 32],
                s_public: [9; 32],
                b_commitment: [9; 32],
            };
            let forged = ClientMessage {
                body: ClientBody::AdvertiseKeys(forged_keys),
                signature: None,
                ..advert
            };
            let signature = impostor.sign(&signature_payload(&altered.digest(), &forged));
            directory.push(DirectoryEntry {
                member,
                keys: forged_keys,
                signature: Some(signature),
            });
        } else {
            directory.push(DirectoryEntry {
                member,
                keys,
                signature: advert.signature,
            });
        }
    }
    let mut victim_client = victim_client.unwrap();
    let opening = ServerMessage {
        session: honest.session_id,
        recipient: victim,
        body: ServerBody::KeyDirectory(directory),
    };
    assert!(matches!(
        victim_client.handle(&opening),
        Err(Error::BadSignature(_))
    ));
    assert_eq!(
        victim_client.stage(),
        Stage::ShareKeys,
        "nothing was shared"
    );
    assert_ne!(honest.digest(), altered.digest());
}

/// A server that hands a member a low-order mask key for one neighbour (which would force
/// a known pairwise mask) is refused at the masked-input stage, where the member's batched
/// agreements run: the member sends no masked input.
#[test]
fn a_low_order_neighbour_key_is_refused_at_masked_input() {
    let mut h = Harness::new(10, false);
    let victim = MemberId(0);
    let inbox = std::mem::take(&mut h.inbox);
    for (member, mut message) in inbox {
        if member == victim {
            let ServerBody::KeyDirectory(entries) = &mut message.body else {
                panic!("stage 2 opens with the key directory")
            };
            // The point of order 8 (RFC 7748 section 5 lists it among the low-order points).
            entries[1].keys.s_public = [
                0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
                0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
                0x5f, 0x49, 0xb8, 0x00,
            ];
        }
        let reply = h
            .clients
            .get_mut(&member)
            .unwrap()
            .handle(&message)
            .unwrap();
        h.server.receive(&reply).unwrap();
    }
    h.close();
    let bundle = h.inbox[&victim].clone();
    assert_eq!(
        h.clients.get_mut(&victim).unwrap().handle(&bundle),
        Err(Error::Protocol("peer public key has low order"))
    );
}

#[test]
fn forged_shares_and_messages_are_rejected() {
    let mut h = Harness::new(10, true);
    // Forge a member's stage-2 message: body changed after signing.
    let (&member, directory) = h.inbox.iter().next().unwrap();
    let mut reply = h
        .clients
        .get_mut(&member)
        .unwrap()
        .handle(directory)
        .unwrap();
    if let ClientBody::EncryptedShares(list) = &mut reply.body {
        list[0].1[0] ^= 1;
    }
    assert!(matches!(
        h.server.receive(&reply),
        Err(Error::BadSignature(_))
    ));
    let unsigned = ClientMessage {
        signature: None,
        ..reply.clone()
    };
    assert!(matches!(
        h.server.receive(&unsigned),
        Err(Error::BadSignature(_))
    ));
    // A relayed ciphertext of the wrong length is refused at masked input.
    let mut h = Harness::new(10, false);
    h.step(&[]);
    let (&member, bundle) = h.inbox.iter().next().unwrap();
    let mut truncated = bundle.clone();
    if let ServerBody::ShareBundle(list) = &mut truncated.body {
        list[0].1.pop();
    }
    let client = h.clients.get_mut(&member).unwrap();
    assert!(matches!(client.handle(&truncated), Err(Error::Protocol(_))));
    assert!(
        client.handle(bundle).is_ok(),
        "a rejected message leaves the client unchanged"
    );
}

#[test]
fn a_tampered_relayed_share_is_caught_at_unmask_and_the_others_still_sum() {
    let mut h = Harness::new(10, false);
    h.step(&[]);
    // The server flips a bit of one ciphertext it relays to the victim. Shares stay sealed
    // until unmask, so the victim masks and uploads as usual.
    let victim = *h.inbox.keys().next().unwrap();
    if let ServerBody::ShareBundle(list) = &mut h.inbox.get_mut(&victim).unwrap().body {
        let last = list[0].1.len() - 1;
        list[0].1[last] ^= 0x80;
    }
    assert!(h.step(&[]).is_none());
    let inbox = std::mem::take(&mut h.inbox);
    for (member, request) in inbox {
        let client = h.clients.get_mut(&member).unwrap();
        if member == victim {
            // Every needed share is opened before any is released: the forged one refuses
            // the whole request, and the client stays where it was (nothing was revealed).
            assert_eq!(client.handle(&request), Err(Error::ShareDecryption));
            assert_eq!(client.handle(&request), Err(Error::ShareDecryption));
            assert!(!client.is_done());
            continue;
        }
        let reply = client.handle(&request).unwrap();
        h.server.receive(&reply).unwrap();
    }
    // The victim's masked input is in the sum; its neighbours' shares still reach t.
    let aggregate = h.close().unwrap();
    assert_eq!(aggregate.sum, vec![(0..10).sum::<u32>(); 10]);
    assert_eq!(aggregate.survivors.len(), 10);
}

#[test]
fn a_corrupted_unmask_share_is_detected_not_summed() {
    let mut h = Harness::new(10, false);
    h.step(&[]);
    h.step(&[]);
    let inbox = std::mem::take(&mut h.inbox);
    for (member, message) in inbox {
        let mut reply = h
            .clients
            .get_mut(&member)
            .unwrap()
            .handle(&message)
            .unwrap();
        if let ClientBody::UnmaskShares { b_shares, .. } = &mut reply.body {
            for (_, share) in b_shares.iter_mut() {
                share[0] ^= 1;
            }
        }
        h.server.receive(&reply).unwrap();
    }
    assert_eq!(h.server.close_stage(), Err(Error::ReconstructionMismatch));
    assert_eq!(h.server.close_stage(), Err(Error::Closed));
}

#[test]
fn bad_inputs_get_typed_errors() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let p = params(10, None, &mut rng);
    assert_eq!(
        Client::new(p.clone(), MemberId(0), &[0; 9], None, &mut rng).err(),
        Some(Error::InputLength {
            expected: 10,
            got: 9
        })
    );
    let mut big = vec![0; 10];
    big[4] = 1 << 16;
    assert_eq!(
        Client::new(p.clone(), MemberId(0), &big, None, &mut rng).err(),
        Some(Error::InputOutOfRange { index: 4, bits: 16 })
    );
    assert_eq!(
        Client::new(p.clone(), MemberId(50), &[0; 10], None, &mut rng).err(),
        Some(Error::UnknownMember)
    );
    let bad = SessionParams {
        threshold: 7,
        ..p.clone()
    };
    assert!(matches!(Server::new(bad), Err(Error::InvalidParams(_))));
    let odd = SessionParams { degree: 5, ..p };
    assert!(matches!(Server::new(odd), Err(Error::InvalidParams(_))));
}
