//! The storage conformance suite: every backend must behave identically. Runs on SQLite
//! always and on PostgreSQL when `COVEY_TEST_POSTGRES_URL` (or the setup script's URL file)
//! is present.

mod common;

use std::sync::Arc;

use covey_protocol::dp::ClipEstimate;
use covey_protocol::secagg::Stage;
use covey_server::Error;
use covey_server::storage::{
    CheckIn, DeviceRecord, LedgerEntry, ModelRecord, NewRound, PopulationRecord,
    ROUND_PROFILE_VERSION, RoundCompletion, RoundPhase, RoundProfile, SessionRecord, StageProfile,
    Storage, Submission, SubmitOutcome, TokenHash, Transition,
};
use covey_server::token::sha256;

use common::{on_every_backend, unique};

fn population(store: &dyn Storage) -> String {
    let name = unique("pop");
    store
        .create_population(&PopulationRecord {
            name: name.clone(),
            config_toml: common::small_config(&name),
            catalog: common::small_items_csv(),
            created_at: 1_000,
        })
        .unwrap();
    name
}

fn device(store: &dyn Storage, pop: &str, n: u8) -> (DeviceRecord, TokenHash) {
    let d = DeviceRecord {
        id: unique(&format!("dev{n}")),
        population: pop.into(),
        registered_at: 2_000,
        signing_key: None,
    };
    let token = TokenHash(sha256(d.id.as_bytes()));
    store.register_device(&d, &token).unwrap();
    (d, token)
}

fn model(pop: &str, version: u64, round_id: Option<i64>, values: &[f32]) -> ModelRecord {
    let params = covey_server::model_blob::encode(values);
    ModelRecord {
        population: pop.into(),
        version,
        round_id,
        digest: sha256(&params),
        params,
        optimizer_state: covey_server::model_blob::encode(&[]),
        clip: None,
        created_at: 3_000 + version as i64,
    }
}

fn charge(pop: &str, seq: u64, round_id: i64, eps_round: f64, eps_total: f64) -> LedgerEntry {
    LedgerEntry {
        population: pop.into(),
        seq,
        round_id,
        survivors: 3,
        event: "{\"kind\":\"test\"}".into(),
        epsilon_round: eps_round,
        epsilon_total: eps_total,
        delta: 1e-6,
        created_at: 9_000,
    }
}

fn step<'a>(
    id: i64,
    from: RoundPhase,
    to: RoundPhase,
    deadline: i64,
    session: Option<&'a SessionRecord>,
    messages: &'a [(u32, Vec<u8>)],
) -> Transition<'a> {
    Transition {
        id,
        from,
        to,
        deadline,
        session,
        messages,
        cohort: None,
        now: deadline - 1_000,
    }
}

fn open(store: &dyn Storage, pop: &str, base: u64) -> i64 {
    store
        .open_round(&NewRound {
            population: pop.into(),
            base_version: base,
            opened_at: 5_000,
            deadline: 6_000,
        })
        .unwrap()
}

#[test]
fn populations_are_created_once_and_read_back() {
    on_every_backend(|store| {
        let name = population(store);
        let got = store.population(&name).unwrap().unwrap();
        assert_eq!(got.catalog, common::small_items_csv());
        assert!(store.populations().unwrap().iter().any(|p| p.name == name));
        let again = store.create_population(&got);
        assert!(
            matches!(again, Err(Error::AlreadyExists("population"))),
            "{again:?}"
        );
        assert!(store.population("no-such").unwrap().is_none());
    });
}

#[test]
fn devices_are_found_only_by_their_token_hash() {
    on_every_backend(|store| {
        let pop = population(store);
        let (a, ta) = device(store, &pop, 1);
        let (_, _) = device(store, &pop, 2);
        assert_eq!(store.device_by_token(&ta).unwrap(), Some(a.clone()));
        assert_eq!(store.device_by_token(&TokenHash([0; 32])).unwrap(), None);
        assert_eq!(store.device_count(&pop).unwrap(), 2);
        let dup = store.register_device(&a, &ta);
        assert!(
            matches!(dup, Err(Error::AlreadyExists("device"))),
            "{dup:?}"
        );
    });
}

fn keyed_device(store: &dyn Storage, pop: &str, key: [u8; 32]) -> Result<DeviceRecord, Error> {
    let d = DeviceRecord {
        id: unique("keyed"),
        population: pop.into(),
        registered_at: 2_500,
        signing_key: Some(key),
    };
    store.register_device(&d, &TokenHash(sha256(d.id.as_bytes())))?;
    Ok(d)
}

#[test]
fn signing_keys_are_stored_with_devices_and_unique_within_a_population() {
    on_every_backend(|store| {
        let (pop, other) = (population(store), population(store));
        let key = sha256(unique("key").as_bytes());
        let a = keyed_device(store, &pop, key).unwrap();
        let token = TokenHash(sha256(a.id.as_bytes()));
        assert_eq!(store.device_by_token(&token).unwrap(), Some(a.clone()));
        let again = keyed_device(store, &pop, key);
        assert!(
            matches!(again, Err(Error::AlreadyExists("signing key"))),
            "{again:?}"
        );
        // Another population may see the same key (it cannot link it to this one's).
        keyed_device(store, &other, key).unwrap();
        // Devices without a key do not collide with each other.
        let (plain1, _) = device(store, &pop, 1);
        let (plain2, _) = device(store, &pop, 2);
        assert_eq!(store.device_count(&pop).unwrap(), 3);

        let id = open(store, &pop, 0);
        for d in [&a, &plain1, &plain2] {
            store.check_in(id, &d.id, 5, 5_100).unwrap();
        }
        assert_eq!(
            store.member_signing_keys(id).unwrap(),
            [(0, Some(key)), (1, None), (2, None)]
        );
    });
}

/// The version-1 tables of a database made before devices registered signing keys and
/// model versions carried a clip, with one device and one model version in it; `token`
/// renders a 32-byte token hash as the backend's byte literal (it also stands in for the
/// model's blobs and digest).
fn version_1_database(int: &str, blob: &str, token: &str) -> String {
    format!(
        "CREATE TABLE covey_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO covey_meta VALUES ('schema_version', '1');
         CREATE TABLE populations (name TEXT PRIMARY KEY, config TEXT NOT NULL,
             catalog TEXT NOT NULL, created_at {int} NOT NULL);
         CREATE TABLE devices (id TEXT PRIMARY KEY,
             population TEXT NOT NULL REFERENCES populations(name),
             token_hash {blob} NOT NULL UNIQUE, registered_at {int} NOT NULL);
         CREATE TABLE model_versions (population TEXT NOT NULL REFERENCES populations(name),
             version {int} NOT NULL, round_id {int}, params {blob} NOT NULL,
             optimizer_state {blob} NOT NULL, digest {blob} NOT NULL,
             created_at {int} NOT NULL, PRIMARY KEY (population, version));
         INSERT INTO populations VALUES ('old', '', '', 1);
         INSERT INTO devices VALUES ('old-device', 'old', {token}, 2);
         INSERT INTO model_versions VALUES ('old', 0, NULL, {token}, {token}, {token}, 3);"
    )
}

/// A version-1 database opens migrated: old devices keep working without a key, new ones
/// register keys; the old model version has no clip (rounds on it use the population's
/// `clip_norm`), a new one keeps its clip; opening again changes nothing.
fn check_migrated(store: &dyn Storage) {
    let old = store.device_by_token(&TokenHash([7; 32])).unwrap().unwrap();
    assert_eq!((old.id.as_str(), old.signing_key), ("old-device", None));
    keyed_device(store, "old", [3; 32]).unwrap();
    assert!(matches!(
        keyed_device(store, "old", [3; 32]),
        Err(Error::AlreadyExists("signing key"))
    ));
    let v0 = store.model("old", 0).unwrap().unwrap();
    assert_eq!((v0.params, v0.clip), (vec![7; 32], None));
    let v1 = ModelRecord {
        clip: Some(0.375),
        ..model("old", 1, None, &[1.0])
    };
    store.put_model(&v1).unwrap();
    assert_eq!(
        store.latest_model("old").unwrap().unwrap().clip,
        Some(0.375)
    );
}

#[test]
fn a_version_1_database_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("covey.db");
    let token = format!("X'{}'", hex::encode([7u8; 32]));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&version_1_database("INTEGER", "BLOB", &token))
        .unwrap();
    check_migrated(&covey_server::storage::SqliteStorage::open(&path).unwrap());
    check_migrated_again(&covey_server::storage::SqliteStorage::open(&path).unwrap());

    let Some(url) = common::postgres_url() else {
        eprintln!("PostgreSQL not configured: checked SQLite only");
        return;
    };
    // A schema of its own, so the shared test database's tables are not touched.
    let schema = format!("migration_{}", unique("v1").replace('-', "_"));
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let token = format!("decode('{}', 'hex')", hex::encode([7u8; 32]));
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}; {}",
            version_1_database("BIGINT", "BYTEA", &token)
        ))
        .unwrap();
    let scoped = format!("{url}?options=-csearch_path%3D{schema}");
    let result = std::panic::catch_unwind(|| {
        check_migrated(&covey_server::storage::PostgresStorage::connect(&scoped).unwrap());
        check_migrated_again(&covey_server::storage::PostgresStorage::connect(&scoped).unwrap());
    });
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Opening a migrated database again keeps its devices and keys.
fn check_migrated_again(store: &dyn Storage) {
    assert!(
        store
            .device_by_token(&TokenHash([7; 32]))
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        keyed_device(store, "old", [3; 32]),
        Err(Error::AlreadyExists("signing key"))
    ));
    let clips: Vec<_> = store
        .models("old")
        .unwrap()
        .iter()
        .map(|m| m.clip)
        .collect();
    assert_eq!(clips, [None, Some(0.375)]);
}

#[test]
fn model_versions_are_exact_and_never_overwritten() {
    on_every_backend(|store| {
        let pop = population(store);
        let v0 = model(&pop, 0, None, &[1.0, -2.5, 3.0]);
        store.put_model(&v0).unwrap();
        let dup = store.put_model(&model(&pop, 0, None, &[9.0]));
        assert!(matches!(dup, Err(Error::AlreadyExists(_))), "{dup:?}");
        assert_eq!(store.model(&pop, 0).unwrap(), Some(v0.clone()));
        let latest = store.latest_model(&pop).unwrap().unwrap();
        assert_eq!((latest.version, latest.bytes), (0, v0.params.len() as u64));
        assert_eq!(latest.digest, v0.digest);
        assert!(store.model(&pop, 1).unwrap().is_none());
    });
}

#[test]
fn a_model_version_keeps_the_clip_adaptive_clipping_set() {
    on_every_backend(|store| {
        let pop = population(store);
        store.put_model(&model(&pop, 0, None, &[1.0])).unwrap();
        let v1 = ModelRecord {
            clip: Some(0.123_456_789_012_345),
            ..model(&pop, 1, None, &[2.0])
        };
        store.put_model(&v1).unwrap();
        assert_eq!(store.model(&pop, 1).unwrap(), Some(v1));
        assert_eq!(store.model(&pop, 0).unwrap().unwrap().clip, None);
        let latest = store.latest_model(&pop).unwrap().unwrap();
        assert_eq!(latest.clip, Some(0.123_456_789_012_345), "bit-exact");
        let clips: Vec<_> = store.models(&pop).unwrap().iter().map(|m| m.clip).collect();
        assert_eq!(clips, [None, Some(0.123_456_789_012_345)]);
    });
}

#[test]
fn one_active_round_per_population_and_check_in_up_to_the_cap() {
    on_every_backend(|store| {
        let pop = population(store);
        let devices: Vec<_> = (0..4).map(|n| device(store, &pop, n).0).collect();
        let id = open(store, &pop, 0);
        let second = store.open_round(&NewRound {
            population: pop.clone(),
            base_version: 0,
            opened_at: 5_001,
            deadline: 6_001,
        });
        assert!(matches!(second, Err(Error::AlreadyExists(_))), "{second:?}");

        let admitted: Vec<_> = devices[..3]
            .iter()
            .map(|d| store.check_in(id, &d.id, 3, 5_100).unwrap())
            .collect();
        assert_eq!(
            admitted,
            [
                CheckIn::Admitted(0),
                CheckIn::Admitted(1),
                CheckIn::Admitted(2)
            ]
        );
        assert_eq!(
            store.check_in(id, &devices[3].id, 3, 5_100).unwrap(),
            CheckIn::Full
        );
        // A device that checks in again gets its member id back, not a second seat.
        assert_eq!(
            store.check_in(id, &devices[1].id, 3, 5_200).unwrap(),
            CheckIn::Admitted(1)
        );
        let members = store.members(id).unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members[2], (devices[2].id.clone(), 2));
        assert_eq!(store.member_of(id, &devices[2].id).unwrap(), Some(2));
        assert_eq!(store.member_of(id, &devices[3].id).unwrap(), None);
        assert_eq!(store.check_ins_since(&devices[1].id, 0).unwrap(), [5_100]);
        assert!(
            store
                .check_ins_since(&devices[1].id, 5_101)
                .unwrap()
                .is_empty()
        );

        let stage1 = RoundPhase::Stage(Stage::AdvertiseKeys);
        let session = SessionRecord {
            secagg: b"session".to_vec(),
            dp_plan: "{\"plan\":1}".into(),
        };
        store
            .advance_round(&step(
                id,
                RoundPhase::CheckIn,
                stage1,
                7_000,
                Some(&session),
                &[],
            ))
            .unwrap();
        assert_eq!(
            store.check_in(id, &devices[3].id, 9, 5_400).unwrap(),
            CheckIn::Closed
        );
        // A second process holding a stale view cannot apply the same transition again.
        let stale = store.advance_round(&step(id, RoundPhase::CheckIn, stage1, 7_000, None, &[]));
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
        let r = store.round(id).unwrap().unwrap();
        assert_eq!((r.phase, r.deadline), (stage1, 7_000));
        assert_eq!(r.session, Some(session));
        assert_eq!(
            store
                .active_rounds()
                .unwrap()
                .iter()
                .filter(|r| r.id == id)
                .count(),
            1
        );
    });
}

#[test]
fn fixing_the_cohort_dismisses_the_unselected_and_the_profile_is_kept() {
    on_every_backend(|store| {
        let pop = population(store);
        store.put_model(&model(&pop, 0, None, &[0.0])).unwrap();
        let devices: Vec<_> = (0..5).map(|n| device(store, &pop, n).0).collect();
        let id = open(store, &pop, 0);
        for d in &devices {
            store.check_in(id, &d.id, 10, 5_100).unwrap();
        }
        let session = SessionRecord {
            secagg: b"session".to_vec(),
            dp_plan: "{}".into(),
        };
        let unmask = RoundPhase::Stage(Stage::Unmask);
        store
            .advance_round(&Transition {
                cohort: Some(&[1, 3, 4]),
                ..step(id, RoundPhase::CheckIn, unmask, 8_000, Some(&session), &[])
            })
            .unwrap();
        let kept: Vec<u32> = store.members(id).unwrap().iter().map(|m| m.1).collect();
        assert_eq!(kept, [1, 3, 4]);
        // A dismissed device is no member and its check-in no longer counts against it.
        assert_eq!(store.member_of(id, &devices[0].id).unwrap(), None);
        assert!(store.check_ins_since(&devices[2].id, 0).unwrap().is_empty());
        assert_eq!(store.check_ins_since(&devices[3].id, 0).unwrap(), [5_100]);

        let profile = RoundProfile {
            version: ROUND_PROFILE_VERSION,
            checked_in: 5,
            cohort: 3,
            check_in_ms: 2_900,
            stages: vec![StageProfile {
                stage: "unmask".into(),
                wall_ms: 1_000,
                server_ms: 12.5,
                messages: 3,
            }],
            unmask_ms: 12.0,
            decode_ms: 0.75,
            optimizer_ms: 0.25,
            clip: Some(0.75),
            adaptive: Some(ClipEstimate {
                unclipped_fraction: 0.625,
                fraction_stddev: 0.05,
                next_clip: 0.7,
            }),
        };
        assert_eq!(store.round_profile(id).unwrap(), None);
        store
            .complete_round(&RoundCompletion {
                round_id: id,
                from: unmask,
                survivors: vec![1, 4],
                // The clip adaptive clipping set is published with the version, atomically.
                model: ModelRecord {
                    clip: Some(0.7),
                    ..model(&pop, 1, Some(id), &[0.5])
                },
                charge: charge(&pop, 1, id, 0.5, 0.5),
                profile: profile.clone(),
                now: 9_000,
            })
            .unwrap();
        assert_eq!(store.round_profile(id).unwrap(), Some(profile));
        assert_eq!(store.latest_model(&pop).unwrap().unwrap().clip, Some(0.7));
    });
}

#[test]
fn stage_messages_are_accepted_once_and_replays_rejected() {
    on_every_backend(|store| {
        let pop = population(store);
        let id = open(store, &pop, 0);
        let msg = |member: u32, payload: &[u8]| Submission {
            round_id: id,
            stage: Stage::AdvertiseKeys,
            member,
            payload: payload.to_vec(),
            digest: sha256(payload),
            received_at: 5_500,
        };
        assert_eq!(
            store.submit(&msg(0, b"keys-0")).unwrap(),
            SubmitOutcome::Accepted
        );
        assert_eq!(
            store.submit(&msg(1, b"keys-1")).unwrap(),
            SubmitOutcome::Accepted
        );
        assert_eq!(
            store.submit(&msg(0, b"keys-0")).unwrap(),
            SubmitOutcome::Replay { same_payload: true }
        );
        assert_eq!(
            store.submit(&msg(0, b"forged")).unwrap(),
            SubmitOutcome::Replay {
                same_payload: false
            }
        );
        let taken = store.take_submissions(id, Stage::AdvertiseKeys).unwrap();
        assert_eq!(taken, [(0, b"keys-0".to_vec()), (1, b"keys-1".to_vec())]);
        assert!(
            store
                .take_submissions(id, Stage::AdvertiseKeys)
                .unwrap()
                .is_empty()
        );
        // Taken payloads are gone but a replay is still recognised.
        assert_eq!(
            store.submit(&msg(1, b"keys-1")).unwrap(),
            SubmitOutcome::Replay { same_payload: true }
        );
        assert_eq!(store.submission_count(id, Stage::AdvertiseKeys).unwrap(), 2);
        assert_eq!(store.submission_count(id, Stage::ShareKeys).unwrap(), 0);

        // A stage's messages appear together with the transition that opens it.
        let opening = [(0, b"dir-0".to_vec()), (1, b"dir-1".to_vec())];
        let share_keys = RoundPhase::Stage(Stage::ShareKeys);
        store
            .advance_round(&step(
                id,
                RoundPhase::CheckIn,
                share_keys,
                9_000,
                None,
                &opening,
            ))
            .unwrap();
        let again = store.advance_round(&step(id, share_keys, share_keys, 9_500, None, &opening));
        assert!(matches!(again, Err(Error::AlreadyExists(_))), "{again:?}");
        assert_eq!(
            store.round(id).unwrap().unwrap().deadline,
            9_000,
            "rolled back"
        );
        assert_eq!(
            store.message(id, Stage::ShareKeys, 1).unwrap().as_deref(),
            Some(&b"dir-1"[..])
        );
        assert!(store.message(id, Stage::ShareKeys, 2).unwrap().is_none());
    });
}

#[test]
fn completion_is_atomic_and_the_ledger_is_exact() {
    on_every_backend(|store| {
        let pop = population(store);
        store.put_model(&model(&pop, 0, None, &[0.0, 0.0])).unwrap();
        let unmask = RoundPhase::Stage(Stage::Unmask);
        let id = open(store, &pop, 0);
        store
            .advance_round(&step(id, RoundPhase::CheckIn, unmask, 8_000, None, &[]))
            .unwrap();
        let completion = |seq: u64| RoundCompletion {
            round_id: id,
            from: unmask,
            survivors: vec![0, 2, 5],
            model: model(&pop, 1, Some(id), &[0.5, -0.5]),
            charge: charge(&pop, seq, id, 0.75, 0.75),
            profile: RoundProfile::default(),
            now: 9_000,
        };
        // A wrong ledger sequence aborts the whole transaction: no model, round still open.
        let bad = store.complete_round(&completion(2));
        assert!(matches!(bad, Err(Error::Conflict { .. })), "{bad:?}");
        assert!(store.model(&pop, 1).unwrap().is_none());
        assert_eq!(store.round(id).unwrap().unwrap().phase, unmask);
        assert_eq!(store.epsilon_spent(&pop).unwrap(), 0.0);

        store.complete_round(&completion(1)).unwrap();
        let r = store.round(id).unwrap().unwrap();
        assert_eq!(
            (r.phase, r.survivors.clone()),
            (RoundPhase::Completed, vec![0, 2, 5])
        );
        assert_eq!(store.latest_model(&pop).unwrap().unwrap().version, 1);
        // Completing twice (a restarted owner replaying its last step) charges nothing more.
        assert!(store.complete_round(&completion(2)).is_err());
        assert_eq!(store.ledger(&pop).unwrap().len(), 1);

        // An aborted round charges nothing; a new round may open after it.
        let id2 = open(store, &pop, 1);
        let wrong = store.abort_round(id2, unmask, "test", 9_500);
        assert!(matches!(wrong, Err(Error::Conflict { .. })), "{wrong:?}");
        store
            .abort_round(id2, RoundPhase::CheckIn, "owner lost", 9_500)
            .unwrap();
        let r2 = store.round(id2).unwrap().unwrap();
        assert_eq!(
            (r2.phase, r2.reason.as_deref()),
            (RoundPhase::Aborted, Some("owner lost"))
        );
        let id3 = open(store, &pop, 1);
        store
            .advance_round(&step(id3, RoundPhase::CheckIn, unmask, 9_900, None, &[]))
            .unwrap();
        store
            .complete_round(&RoundCompletion {
                round_id: id3,
                from: unmask,
                survivors: vec![1, 2],
                model: model(&pop, 2, Some(id3), &[1.0, -1.0]),
                charge: charge(&pop, 2, id3, 0.25, 1.0),
                profile: RoundProfile::default(),
                now: 10_000,
            })
            .unwrap();
        let ledger = store.ledger(&pop).unwrap();
        assert_eq!(ledger.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(ledger[1].round_id, id3);
        assert_eq!(store.epsilon_spent(&pop).unwrap(), 1.0);
        let versions: Vec<_> = store
            .models(&pop)
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, [0, 1, 2]);
        let rounds = store.rounds(&pop, 10).unwrap();
        assert_eq!(
            rounds.iter().map(|r| r.id).collect::<Vec<_>>(),
            [id3, id2, id]
        );
    });
}

#[test]
fn leases_exclude_other_owners_until_they_expire() {
    on_every_backend(|store| {
        let key = unique("round");
        assert!(store.acquire_lease(&key, "a", 1_000, 500).unwrap());
        assert!(!store.acquire_lease(&key, "b", 1_200, 500).unwrap());
        assert!(
            store.acquire_lease(&key, "a", 1_400, 500).unwrap(),
            "renewal"
        );
        assert!(!store.acquire_lease(&key, "b", 1_800, 500).unwrap());
        assert!(
            store.acquire_lease(&key, "b", 1_900, 500).unwrap(),
            "takeover after expiry"
        );
        assert_eq!(store.lease(&key).unwrap().unwrap().owner, "b");
        store.release_lease(&key, "a").unwrap();
        assert_eq!(
            store.lease(&key).unwrap().unwrap().owner,
            "b",
            "not a's to release"
        );
        store.release_lease(&key, "b").unwrap();
        assert!(store.lease(&key).unwrap().is_none());
    });
}

/// Many concurrent check-ins: exactly `cohort_max` seats, each member id handed out once.
fn concurrent_check_ins(store: Arc<dyn Storage>) {
    let pop = population(&*store);
    let devices: Vec<_> = (0..24).map(|n| device(&*store, &pop, n).0.id).collect();
    let id = open(&*store, &pop, 0);
    let handles: Vec<_> = devices
        .into_iter()
        .map(|d| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                loop {
                    match store.check_in(id, &d, 10, 5_000) {
                        Err(Error::Conflict { .. }) => continue,
                        other => return other.unwrap(),
                    }
                }
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ids: Vec<u32> = outcomes
        .iter()
        .filter_map(|o| match o {
            CheckIn::Admitted(m) => Some(*m),
            _ => None,
        })
        .collect();
    ids.sort();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    assert_eq!(outcomes.iter().filter(|o| **o == CheckIn::Full).count(), 14);
}

#[test]
fn concurrent_check_ins_hand_out_each_seat_once() {
    let (_dir, sqlite) = common::sqlite();
    concurrent_check_ins(Arc::new(sqlite));
    if let Some(pg) = common::postgres() {
        concurrent_check_ins(Arc::new(pg));
    }
}

#[test]
fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("covey.db");
    let pop = {
        let store = covey_server::storage::SqliteStorage::open(&path).unwrap();
        let pop = population(&store);
        store.put_model(&model(&pop, 0, None, &[4.0])).unwrap();
        pop
    };
    let store = covey_server::storage::SqliteStorage::open(&path).unwrap();
    assert_eq!(
        store.model(&pop, 0).unwrap().unwrap().params,
        model(&pop, 0, None, &[4.0]).params
    );
}
