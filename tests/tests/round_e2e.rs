//! Whole federated rounds end to end: members with real encrypted stores and consent run
//! `Device::participate` over real HTTP on loopback against an embedded `covey-server`
//! (SQLite in a temporary directory, its round driver running the SecAgg+ server, DP
//! decoding, FedAvg and the privacy ledger).
//!
//! Dropouts are real network failures as the device sees them: a wrapping [`Transport`]
//! that fails every request from a given stage on. Nothing in the SDK knows it is tested.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use covey_e2e::{
    Member, catalog, init_population, participate, population_toml, run_round, start_server,
    tempdir, wait_for_round_end,
};
use covey_model::GlobalModel;
use covey_protocol::secagg::{ClientBody, ClientMessage};
use covey_sdk::audit_entry::AuditEvent;
use covey_sdk::consent::ConsentEventKind;
use covey_sdk::{
    Error, HttpMethod, HttpTransport, ParticipationOutcome, Transport, TransportError,
    TransportRequest, TransportResponse,
};
use covey_server::storage::RoundPhase;
use covey_store::ParticipationOutcome as Ended;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

const ITEMS: usize = 300;
const DIM: usize = 6;
/// `ParamLayout::len()` of the test model: items × dim + biases + 16 feature rows × dim.
const PARAMETERS: usize = ITEMS * DIM + ITEMS + 16 * DIM;

/// Stage names in the order a device sends them (unsigned sessions skip the consistency
/// check).
const STAGES: [&str; 4] = ["advertise_keys", "share_keys", "masked_input", "unmask"];

fn stage_of(request: &TransportRequest) -> Option<usize> {
    // Polls carry a query (`?wait=`, a long poll); the stage is the path's last segment.
    let path = request.path.split('?').next()?;
    let name = path.rsplit('/').next()?;
    path.contains("/stages/")
        .then(|| STAGES.iter().position(|s| *s == name))
        .flatten()
}

/// Runs before a request leaves the device.
type Hook = Box<dyn Fn(&TransportRequest) + Send + Sync>;

/// The device's network, with the failures and observations a test needs.
struct TestTransport {
    inner: HttpTransport,
    /// Every request from this stage on fails, as if the phone lost its connection.
    fail_from: Option<usize>,
    failed: AtomicBool,
    /// Runs before a request is sent (e.g. the member withdraws consent).
    before: Option<Hook>,
    /// Masked-input uploads as sent, and the statuses of their replays.
    uploads: Mutex<Vec<Vec<u8>>>,
    replay_statuses: Mutex<Vec<u16>>,
}

impl TestTransport {
    fn new(base: &str) -> Self {
        TestTransport {
            inner: HttpTransport::new(base),
            fail_from: None,
            failed: AtomicBool::new(false),
            before: None,
            uploads: Mutex::new(Vec::new()),
            replay_statuses: Mutex::new(Vec::new()),
        }
    }
}

impl Transport for TestTransport {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        if let Some(hook) = &self.before {
            hook(request);
        }
        let stage = stage_of(request);
        if self.failed.load(Ordering::SeqCst)
            || matches!((stage, self.fail_from), (Some(s), Some(from)) if s >= from)
        {
            self.failed.store(true, Ordering::SeqCst);
            return Err(TransportError::Unreachable("simulated dropout".into()));
        }
        let response = self.inner.send(request)?;
        let is_upload = request.method == HttpMethod::Post && stage == Some(2);
        if is_upload && response.status == 202 {
            self.uploads.lock().unwrap().push(request.body.clone());
            // An attacker (or a confused retry) sends the same upload again.
            let replay = self.inner.send(request)?;
            self.replay_statuses.lock().unwrap().push(replay.status);
        }
        Ok(response)
    }
}

fn round_ended(member: &Member) -> Vec<(u64, Ended)> {
    member
        .device
        .audit_entries()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            AuditEvent::RoundEnded { round, outcome } => Some((round, outcome)),
            _ => None,
        })
        .collect()
}

fn uploads_logged(member: &Member) -> usize {
    member
        .device
        .audit_entries()
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, AuditEvent::Upload(_)))
        .count()
}

#[test]
fn fifty_devices_with_dropouts_and_a_withdrawal_complete_a_private_round() {
    const DEVICES: usize = 50;
    const WITHDRAWER: usize = 7;
    let dir = tempdir();
    let cat = catalog(ITEMS);
    let data = init_population(dir.path(), &population_toml("e2e", DIM, 30, DEVICES), &cat);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let running = start_server(&runtime, &data, 21);
    let base = format!("http://{}", running.addr);

    let members: Vec<Arc<Member>> = (0..DEVICES)
        .map(|i| Arc::new(Member::new(100 + i as u64, ITEMS, 8 + i % 12)))
        .collect();
    for m in &members {
        let first = m.device.join(&HttpTransport::new(&base), "e2e").unwrap();
        // Joining again is a no-op: one registration per device.
        let again = m.device.join(&HttpTransport::new(&base), "e2e").unwrap();
        assert_eq!(first, again);
    }

    // ~20% drop at random stages; one member withdraws consent once the masked-input stage
    // opens (after training, key advertisement and share exchange).
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut dropouts: HashMap<usize, usize> = HashMap::new();
    while dropouts.len() < DEVICES / 5 {
        let i = rng.next_u32() as usize % DEVICES;
        if i != WITHDRAWER {
            dropouts.insert(i, rng.next_u32() as usize % STAGES.len());
        }
    }
    let transports: Vec<Arc<TestTransport>> = (0..DEVICES)
        .map(|i| {
            let mut t = TestTransport::new(&base);
            t.fail_from = dropouts.get(&i).copied();
            if i == WITHDRAWER {
                let member = Arc::clone(&members[i]);
                t.before = Some(Box::new(move |r: &TransportRequest| {
                    if r.method == HttpMethod::Get && stage_of(r) == Some(2) {
                        member.decide(ConsentEventKind::Withdrawn);
                    }
                }));
            }
            Arc::new(t)
        })
        .collect();

    let handles: Vec<_> = members
        .iter()
        .zip(&transports)
        .map(|(m, t)| {
            let (m, t) = (Arc::clone(m), Arc::clone(t));
            std::thread::spawn(move || participate(&m, &*t))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    // Who finished: everyone but the dropouts and the withdrawer.
    for (i, r) in results.iter().enumerate() {
        match (i, dropouts.get(&i)) {
            (WITHDRAWER, _) => assert!(
                matches!(r, Err(Error::ConsentWithdrawn { .. })),
                "withdrawer: {r:?}"
            ),
            (_, Some(_)) => assert!(matches!(r, Err(Error::Network(_))), "dropout {i}: {r:?}"),
            (_, None) => assert!(r.is_ok(), "member {i}: {r:?}"),
        }
    }
    let outcomes: Vec<&ParticipationOutcome> =
        results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let round = outcomes[0].round;
    assert!(
        outcomes
            .iter()
            .all(|o| o.round == round && o.model_version == 0)
    );

    // The server completed the round and published model v1 of the same shape.
    let store = running.service.store();
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let r = store.round(round).unwrap().unwrap();
        if !r.phase.is_active() || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(record.phase, RoundPhase::Completed, "{:?}", record.reason);
    let v1 = store.model("e2e", 1).unwrap().expect("model v1");
    let v1 = GlobalModel::from_bytes(&v1.params).unwrap();
    let v0 = GlobalModel::from_bytes(&store.model("e2e", 0).unwrap().unwrap().params).unwrap();
    assert_eq!(v1.layout().len(), PARAMETERS);
    assert_ne!(v1.params(), v0.params(), "the round changed the model");

    // Survivors: exactly the members whose masked input reached the server.
    let member_id = |i: usize| {
        let device = members[i].device.registration().unwrap().unwrap().device_id;
        store
            .member_of(round, &device)
            .unwrap()
            .expect("checked in")
    };
    let mut expected: Vec<u32> = (0..DEVICES)
        .filter(|i| *i != WITHDRAWER && dropouts.get(i).is_none_or(|s| *s > 2))
        .map(member_id)
        .collect();
    expected.sort_unstable();
    let mut survivors = record.survivors.clone();
    survivors.sort_unstable();
    assert_eq!(survivors, expected);
    assert!(!survivors.contains(&member_id(WITHDRAWER)));

    // The withdrawer's data is provably absent: nothing after the abort, no upload logged.
    let withdrawer = &members[WITHDRAWER];
    assert!(transports[WITHDRAWER].uploads.lock().unwrap().is_empty());
    assert_eq!(uploads_logged(withdrawer), 0);
    assert_eq!(round_ended(withdrawer), [(round as u64, Ended::Aborted)]);
    let w = only_record(withdrawer);
    assert_eq!((w.outcome, w.epsilon_charged), (Ended::Aborted, 0.0));
    assert!(withdrawer.device.verify_audit_log().unwrap().is_intact());

    // Upload privacy invariant: every masked upload has the same length and is dense.
    let uploads: Vec<Vec<u8>> = transports
        .iter()
        .flat_map(|t| t.uploads.lock().unwrap().clone())
        .collect();
    assert_eq!(uploads.len(), survivors.len());
    for bytes in &uploads {
        assert_eq!(bytes.len(), uploads[0].len(), "upload lengths differ");
        let message = ClientMessage::decode(bytes).unwrap();
        match message.body {
            ClientBody::MaskedInput { values, .. } => {
                assert!(values.len() >= PARAMETERS, "{} coordinates", values.len());
                // Masked values are uniform in Z_2^bits: a sparse upload would show zeros.
                let zeros = values.iter().filter(|v| **v == 0).count();
                assert!(zeros * 1000 < values.len(), "{zeros} zero coordinates");
            }
            other => panic!("not a masked input: {:?}", other.stage()),
        }
    }
    assert!(
        outcomes
            .iter()
            .all(|o| o.upload_bytes == uploads[0].len() as u64)
    );

    // Replayed uploads were refused.
    let replays: Vec<u16> = transports
        .iter()
        .flat_map(|t| t.replay_statuses.lock().unwrap().clone())
        .collect();
    assert_eq!(replays.len(), survivors.len());
    assert!(replays.iter().all(|s| *s == 409), "{replays:?}");

    // Ledger: one charge with the actual survivors; every member's own ε statement (at the
    // plan's fewest survivors) bounds it.
    let ledger = store.ledger("e2e").unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].survivors, survivors.len() as u64);
    assert!(
        outcomes
            .iter()
            .all(|o| o.epsilon >= ledger[0].epsilon_round - 1e-9)
    );

    // Completers logged their upload and the ε; dropouts before the upload were charged 0.
    for (i, m) in members.iter().enumerate() {
        let r = only_record(m);
        match dropouts.get(&i) {
            _ if i == WITHDRAWER => {}
            None => {
                assert_eq!(r.outcome, Ended::Uploaded);
                assert_eq!(uploads_logged(m), 1);
                assert!(r.epsilon_charged > 0.0);
            }
            Some(stage) => {
                assert_eq!(r.outcome, Ended::DroppedOut);
                assert_eq!(r.epsilon_charged > 0.0, *stage > 2, "member {i}");
            }
        }
    }
    let timings = outcomes[0].timings;
    assert!(timings.train_ms > 0.0 && timings.encode_ms > 0.0 && timings.secagg_client_ms > 0.0);
    assert!(timings.total_ms >= timings.train_ms + timings.encode_ms + timings.secagg_client_ms);
    runtime.block_on(running.shutdown()).unwrap();
}

/// The member's single participation record.
fn only_record(m: &Member) -> covey_store::ParticipationRecord {
    let records = m.device.store().participations().unwrap();
    assert_eq!(records.len(), 1);
    records[0].record.clone()
}

/// Holds devices at the masked-input stage until released.
struct Gate {
    waiting: AtomicUsize,
    open: AtomicBool,
}

#[test]
fn a_server_restarted_mid_round_aborts_it_and_the_next_round_is_charged_once() {
    const DEVICES: usize = 6;
    let dir = tempdir();
    let cat = catalog(ITEMS);
    let data = init_population(
        dir.path(),
        &population_toml("restart", DIM, 4, DEVICES),
        &cat,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let first = start_server(&runtime, &data, 31);
    let base = format!("http://{}", first.addr);
    let members: Vec<Arc<Member>> = (0..DEVICES)
        .map(|i| Arc::new(Member::new(500 + i as u64, ITEMS, 10)))
        .collect();
    for m in &members {
        m.device
            .join(&HttpTransport::new(&base), "restart")
            .unwrap();
    }

    // Round 1: every device stops before its masked input until the server is gone.
    let gate = Arc::new(Gate {
        waiting: AtomicUsize::new(0),
        open: AtomicBool::new(false),
    });
    let handles: Vec<_> = members
        .iter()
        .map(|m| {
            let m = Arc::clone(m);
            let mut t = TestTransport::new(&base);
            let g = Arc::clone(&gate);
            t.before = Some(Box::new(move |r: &TransportRequest| {
                if r.method == HttpMethod::Get && stage_of(r) == Some(2) {
                    g.waiting.fetch_add(1, Ordering::SeqCst);
                    while !g.open.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }));
            std::thread::spawn(move || participate(&m, &t))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    while gate.waiting.load(Ordering::SeqCst) < DEVICES {
        assert!(
            Instant::now() < deadline,
            "devices never reached the masked input"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stalled = first
        .service
        .store()
        .rounds("restart", 1)
        .unwrap()
        .remove(0);
    assert!(stalled.phase.is_active());
    runtime.block_on(first.shutdown()).unwrap();
    gate.open.store(true, Ordering::SeqCst);
    for h in handles {
        let r = h.join().unwrap();
        assert!(matches!(r, Err(Error::Network(_))), "{r:?}");
    }
    for m in &members {
        assert_eq!(round_ended(m), [(stalled.id as u64, Ended::DroppedOut)]);
        assert_eq!(uploads_logged(m), 0);
    }

    // Restart on the same data directory: the stalled round is aborted, a new one runs.
    let second = start_server(&runtime, &data, 32);
    let base = format!("http://{}", second.addr);
    let outcomes = run_round(&base, &members);
    let round = outcomes[0].round;
    assert_ne!(round, stalled.id);

    let new = wait_for_round_end(&second, round);
    assert_eq!(new.phase, RoundPhase::Completed, "{:?}", new.reason);
    let store = second.service.store();
    let old = store.round(stalled.id).unwrap().unwrap();
    assert_eq!(old.phase, RoundPhase::Aborted);
    let ledger = store.ledger("restart").unwrap();
    assert_eq!(ledger.len(), 1, "only the completed round is charged");
    assert_eq!(
        (ledger[0].round_id, ledger[0].survivors),
        (round, DEVICES as u64)
    );
    assert_eq!(
        store.epsilon_spent("restart").unwrap(),
        ledger[0].epsilon_total
    );
    let versions: Vec<u64> = store
        .models("restart")
        .unwrap()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [0, 1]);
    for m in &members {
        assert_eq!(
            round_ended(m),
            [
                (stalled.id as u64, Ended::DroppedOut),
                (round as u64, Ended::Uploaded)
            ]
        );
    }
    runtime.block_on(second.shutdown()).unwrap();
}
