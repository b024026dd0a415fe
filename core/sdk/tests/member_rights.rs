//! The member's rights through the device: receipts provably in the audit log, per-purpose
//! erasure of derived state that leaves no byte behind, and an export with consent history,
//! receipts and the audit log.

mod common;

use common::{Fixture, T0, contains, dir_bytes, purchase};
use covey_sdk::audit_entry::AuditEvent;
use covey_sdk::consent::{ConsentEventKind, ConsentState, PurposeId};
use covey_sdk::grant::{Personalization, PurposeGrant};
use covey_sdk::receipt::{ConsentReceipt, verify_receipt, verify_receipt_inclusion};
use covey_sdk::signing::DeviceKey;
use covey_store::DB_FILE_NAME;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const CANARY: &[u8] = b"CANARY-user-vector-5e1f9c";

#[test]
fn a_receipt_is_provably_in_the_audit_log_and_a_forged_one_is_not() {
    let fx = Fixture::new();
    let d = fx.device();
    let given = d
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Given,
            1,
            "onboarding",
        )
        .expect("give");
    verify_receipt(&given.receipt, Some(d.public_key())).expect("genuine");
    // More entries after it: the proof is against a later, larger checkpoint.
    d.decide(
        &PurposeId::analytics(),
        ConsentEventKind::Refused,
        1,
        "onboarding",
    )
    .expect("refuse");
    let record_id = &given.receipt.body.record.record_id;
    let proof = d.inclusion_proof(record_id).expect("proof");
    assert!(proof.checkpoint.tree_size > proof.leaf_index + 1);
    verify_receipt_inclusion(&given.receipt, &proof).expect("included");
    // Receipts re-issued later are identical (deterministic signatures).
    assert!(d.receipts().contains(&given.receipt));

    // A forger turns a refusal into consent and signs with their own key: the device's
    // checkpoint does not vouch for it.
    let refusal = d.receipts().pop().expect("receipt");
    let mut record = refusal.body.record.clone();
    record.event = ConsentEventKind::Given;
    let forger = DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(66)).expect("key");
    let forged = ConsentReceipt::issue(&forger, &record, record.event_time_ms);
    let refusal_proof = d.inclusion_proof(&record.record_id).expect("proof");
    assert!(verify_receipt_inclusion(&forged, &refusal_proof).is_err());
    // The genuine receipt does not match another event's leaf either.
    assert!(verify_receipt_inclusion(&given.receipt, &refusal_proof).is_err());
    let mut bad_path = proof.clone();
    bad_path.audit_path[0] = hex::encode([0u8; 32]);
    assert!(verify_receipt_inclusion(&given.receipt, &bad_path).is_err());
    assert!(d.inclusion_proof("no-such-record").is_err());
}

#[test]
fn withdrawing_personalization_erases_its_derived_state_without_a_trace() {
    let fx = Fixture::new();
    let d = fx.device();
    let p = PurposeId::personalization();
    d.decide(&p, ConsentEventKind::Given, 1, "onboarding")
        .expect("give");
    let mut state = CANARY.repeat(40);
    state.extend_from_slice(b"tail");
    let grant = d.grant::<Personalization>("recommender").expect("grant");
    fx.store
        .put_derived_blob(&grant, "personalization/user_state", &state)
        .expect("personal state");
    fx.store
        .put_blob("global_model", b"shared item table")
        .expect("global");
    assert_eq!(
        fx.store
            .derived_blob(&grant, "personalization/user_state")
            .expect("read"),
        Some(state.clone())
    );
    // Its sealed form, as it sits in the database.
    let sealed: Vec<u8> = {
        let conn = rusqlite::Connection::open(fx.dir.path().join(DB_FILE_NAME)).expect("db");
        let rows: Vec<Vec<u8>> = conn
            .prepare("SELECT sealed FROM model_blobs")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.into_iter()
            .max_by_key(Vec::len)
            .expect("the state row")
    };
    let decision = d
        .decide(&p, ConsentEventKind::Withdrawn, 1, "privacy_center")
        .expect("withdraw");
    assert_eq!(decision.erased_items, 1);
    assert_eq!(decision.status.state, ConsentState::Withdrawn);
    // Gone: no plaintext canary, and not even the ciphertext, in db, WAL or shm.
    let bytes = dir_bytes(fx.dir.path());
    assert!(!contains(&bytes, CANARY));
    assert!(
        !contains(&bytes, &sealed[sealed.len() - 64..]),
        "ciphertext left behind"
    );
    assert!(grant.check().is_err());
    let export = d.export().expect("export");
    assert!(
        export
            .store
            .model_blobs
            .iter()
            .all(|b| b.name == "global_model")
    );
    assert_eq!(
        fx.store.blob("global_model").expect("global"),
        Some(b"shared item table".to_vec())
    );
    assert!(export.audit_log.entries.iter().any(|e| matches!(
        &e.event,
        AuditEvent::Erasure { scope, items: 1 } if scope == "purpose:personalization"
    )));
    // Derived state cannot be read around the grant either.
    assert!(fx.store.blob("personalization/user_state").is_err());
}

#[test]
fn export_contains_consent_history_receipts_and_a_verifiable_audit_log() {
    let fx = Fixture::new();
    let d = fx.device();
    fx.store
        .record_events(&[purchase("sku-export-1", T0 - 10)])
        .expect("record");
    d.record_prompt_shown(&PurposeId::federated_training(), "onboarding")
        .expect("shown");
    for (p, k) in [
        (PurposeId::personalization(), ConsentEventKind::Given),
        (PurposeId::federated_training(), ConsentEventKind::Given),
        (PurposeId::federated_training(), ConsentEventKind::Withdrawn),
    ] {
        d.decide(&p, k, 1, "privacy_center").expect("decide");
    }
    let doc = d.export().expect("export");
    assert_eq!(doc.consent_history.len(), 4);
    assert_eq!(doc.receipts.len(), 4);
    for r in &doc.receipts {
        verify_receipt(r, Some(d.public_key())).expect("receipt verifies");
    }
    assert!(doc.audit_log.verification.is_intact());
    assert_eq!(doc.audit_log.public_key, hex::encode(d.public_key()));
    let consent_entries = doc
        .audit_log
        .entries
        .iter()
        .filter(|e| matches!(e.event, AuditEvent::Consent { .. }))
        .count();
    assert_eq!(consent_entries, 4);
    assert!(!doc.audit_log.checkpoints.is_empty());
    assert_eq!(doc.store.events.len(), 1);
    assert_eq!(doc.privacy_summary.metrics.withdrawals, 1);
    assert!(
        doc.privacy_summary
            .plain_language
            .contains("You allowed: Personal offers")
    );
    let json = serde_json::to_string(&doc).expect("json");
    assert!(json.contains("\"format\":\"covey.device.export\""));
    // The export itself is on record afterwards.
    let entries = d.audit_entries().expect("entries");
    assert!(
        matches!(entries.last().map(|e| &e.event), Some(AuditEvent::Export { bytes }) if *bytes > 0)
    );
    assert!(d.verify_audit_log().expect("verify").is_intact());
}
