//! `Device::refresh_model` against an embedded `covey-server` on loopback: the latest model
//! is downloaded, digest-checked and installed; nothing is downloaded while it is current;
//! a completed round's model replaces it; a tampered download is refused and changes
//! nothing; and without federated-training consent not one request leaves the device.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use covey_e2e::{
    Member, catalog, init_population, population_toml, run_round, start_server, tempdir,
    wait_for_round_end,
};
use covey_sdk::consent::{ConsentEventKind, PurposeId};
use covey_sdk::{
    Error, HttpTransport, NetworkError, Transport, TransportError, TransportRequest,
    TransportResponse,
};
use covey_server::storage::RoundPhase;

const ITEMS: usize = 40;
const DIM: usize = 4;
const POPULATION: &str = "refresh";
/// Devices per round (the fewest the fixture's SecAgg+ threat model admits).
const COHORT: usize = 4;

/// Counts requests; when `tamper` is set, flips one byte of every model download (an
/// on-path attacker or a corrupting proxy as the device sees it).
struct Wire {
    inner: HttpTransport,
    requests: AtomicUsize,
    tamper: AtomicBool,
}

impl Wire {
    fn new(base: &str) -> Self {
        Wire {
            inner: HttpTransport::new(base),
            requests: AtomicUsize::new(0),
            tamper: AtomicBool::new(false),
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Transport for Wire {
    fn send(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut response = self.inner.send(request)?;
        if self.tamper.load(Ordering::SeqCst)
            && request.path.starts_with("/v1/models/")
            && let Some(byte) = response.body.last_mut()
        {
            *byte ^= 0x01;
        }
        Ok(response)
    }
}

/// A population with [`COHORT`]-device rounds and its server.
struct Setup {
    runtime: tokio::runtime::Runtime,
    server: Option<covey_server::ops::Running>,
    base: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let dir = tempdir();
        let data = init_population(
            dir.path(),
            &population_toml(POPULATION, DIM, COHORT, COHORT),
            &catalog(ITEMS),
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = start_server(&runtime, &data, 41);
        let base = format!("http://{}", server.addr);
        Setup {
            runtime,
            server: Some(server),
            base,
            _dir: dir,
        }
    }

    fn server(&self) -> &covey_server::ops::Running {
        self.server.as_ref().unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.runtime.block_on(s.shutdown());
        }
    }
}

fn installed_version(m: &Member) -> Option<u64> {
    m.device.global_model().unwrap().map(|g| g.version())
}

#[test]
fn without_training_consent_or_registration_nothing_is_sent() {
    let setup = Setup::start();
    let wire = Wire::new(&setup.base);

    let undecided = Member::undecided(1, ITEMS, 10);
    let r = undecided.device.refresh_model(&wire);
    assert!(matches!(r, Err(Error::ConsentRequired { .. })), "{r:?}");

    // On-device personalization alone does not cover talking to the server.
    let offers_only = Member::undecided(2, ITEMS, 10);
    offers_only
        .device
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Given,
            1,
            "e2e",
        )
        .unwrap();
    let r = offers_only.device.refresh_model(&wire);
    assert!(matches!(r, Err(Error::ConsentRequired { .. })), "{r:?}");

    let withdrawn = Member::new(3, ITEMS, 10);
    withdrawn.device.join(&wire, POPULATION).unwrap();
    let after_join = wire.requests();
    withdrawn.decide(ConsentEventKind::Withdrawn);
    let r = withdrawn.device.refresh_model(&wire);
    assert!(matches!(r, Err(Error::ConsentRequired { .. })), "{r:?}");
    assert_eq!(wire.requests(), after_join);

    let unregistered = Member::new(4, ITEMS, 10);
    let r = unregistered.device.refresh_model(&wire);
    assert!(matches!(r, Err(Error::NotRegistered)), "{r:?}");

    assert_eq!(wire.requests(), after_join, "only the join went out");
    for m in [&undecided, &offers_only, &withdrawn, &unregistered] {
        assert_eq!(installed_version(m), None);
    }
}

#[test]
fn refresh_installs_each_new_model_once_and_refuses_a_tampered_one() {
    let setup = Setup::start();
    let members: Vec<Arc<Member>> = (0..COHORT as u64)
        .map(|i| Arc::new(Member::new(100 + i, ITEMS, 12)))
        .collect();
    for m in &members {
        m.device
            .join(&HttpTransport::new(&setup.base), POPULATION)
            .unwrap();
    }
    let phone = &members[0];
    let wire = Wire::new(&setup.base);

    // A tampered first download: refused, nothing installed.
    wire.tamper.store(true, Ordering::SeqCst);
    let r = phone.device.refresh_model(&wire);
    assert!(
        matches!(r, Err(Error::Network(NetworkError::DigestMismatch))),
        "{r:?}"
    );
    assert_eq!(installed_version(phone), None);
    wire.tamper.store(false, Ordering::SeqCst);

    // The initial model, then nothing more while it is current (the plan only).
    assert_eq!(phone.device.refresh_model(&wire).unwrap(), Some(0));
    let v0 = phone.device.global_model().unwrap().unwrap();
    let before = wire.requests();
    assert_eq!(phone.device.refresh_model(&wire).unwrap(), None);
    assert_eq!(wire.requests(), before + 1);

    let outcomes = run_round(&setup.base, &members);
    let round = wait_for_round_end(setup.server(), outcomes[0].round);
    assert_eq!(round.phase, RoundPhase::Completed, "{:?}", round.reason);

    // The round's model: a tampered copy leaves v0 installed, the genuine one replaces it.
    wire.tamper.store(true, Ordering::SeqCst);
    let r = phone.device.refresh_model(&wire);
    assert!(
        matches!(r, Err(Error::Network(NetworkError::DigestMismatch))),
        "{r:?}"
    );
    let kept = phone.device.global_model().unwrap().unwrap();
    assert_eq!(kept.to_bytes(), v0.to_bytes());
    wire.tamper.store(false, Ordering::SeqCst);

    assert_eq!(phone.device.refresh_model(&wire).unwrap(), Some(1));
    let v1 = phone.device.global_model().unwrap().unwrap();
    assert_eq!(v1.version(), 1);
    assert_ne!(v1.to_bytes(), v0.to_bytes(), "the round changed the model");
    assert_eq!(phone.device.refresh_model(&wire).unwrap(), None);
    assert_eq!(installed_version(phone), Some(1));
}
