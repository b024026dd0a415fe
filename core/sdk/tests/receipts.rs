//! Signed consent receipts: genuine ones verify, forged or altered ones do not.

mod common;

use common::{T0, context, member_tap};
use covey_sdk::Error;
use covey_sdk::consent::{ConsentEventKind, PurposeId};
use covey_sdk::notice::Notice;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::receipt::{ConsentReceipt, verify_receipt, verify_receipt_json};
use covey_sdk::record::new_record;
use covey_sdk::signing::DeviceKey;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn issue(key: &DeviceKey, kind: ConsentEventKind) -> ConsentReceipt {
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new("loyalty-privacy", 3, "en", "Notice text", &registry).expect("n");
    let spec = registry
        .get(&PurposeId::personalization())
        .expect("builtin");
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let record = new_record(&context(), &notice, spec, kind, member_tap(), T0, &mut rng);
    ConsentReceipt::issue(key, &record, T0 + 1)
}

fn key(seed: u64) -> DeviceKey {
    DeviceKey::generate(&mut ChaCha20Rng::seed_from_u64(seed)).expect("key")
}

fn invalid(r: Result<(), Error>) -> bool {
    matches!(r, Err(Error::InvalidReceipt { .. }))
}

#[test]
fn genuine_receipt_verifies_pinned_and_unpinned_and_survives_json() {
    let k = key(1);
    let receipt = issue(&k, ConsentEventKind::Given);
    verify_receipt(&receipt, Some(k.public_key())).expect("genuine");
    verify_receipt(&receipt, None).expect("self-consistent");
    let json = receipt.to_json();
    // The receipt carries the 27560 fields a compliance officer looks for.
    for field in [
        "record_id",
        "subject_ref",
        "controller",
        "jurisdiction",
        "language",
        "text_sha256",
        "legal_basis",
        "data_categories",
        "processing_locus",
        "retention_days",
        "withdrawal_method",
        "event_time_ms",
        "ui_surface",
    ] {
        assert!(json.contains(field), "receipt lacks {field}");
    }
    let back = verify_receipt_json(&json, Some(k.public_key())).expect("parses");
    assert_eq!(back, receipt);
    // Whitespace does not matter: the signature covers the typed content.
    let compact = serde_json::to_string(&receipt).expect("json");
    verify_receipt_json(&compact, Some(k.public_key())).expect("compact form verifies");
}

#[test]
fn altered_receipts_are_rejected() {
    let k = key(1);
    let receipt = issue(&k, ConsentEventKind::Refused);
    let mut flipped = receipt.clone();
    flipped.body.record.event = ConsentEventKind::Given;
    assert!(invalid(verify_receipt(&flipped, Some(k.public_key()))));
    let mut other_purpose = receipt.clone();
    other_purpose.body.record.purpose = PurposeId::analytics();
    assert!(invalid(verify_receipt(&other_purpose, None)));
    let mut later = receipt.clone();
    later.body.record.event_time_ms += 1;
    assert!(invalid(verify_receipt(&later, None)));
    let mut bad_sig = receipt.clone();
    bad_sig.signature.replace_range(0..2, "00");
    if bad_sig.signature == receipt.signature {
        bad_sig.signature.replace_range(0..2, "ff");
    }
    assert!(invalid(verify_receipt(&bad_sig, None)));
}

#[test]
fn forged_receipt_signed_by_another_key_fails_against_the_device_key() {
    let device = key(1);
    let forger = key(2);
    let genuine = issue(&device, ConsentEventKind::Refused);
    // The forger rewrites "refused" into "given" and re-signs with their own key.
    let mut record = genuine.body.record.clone();
    record.event = ConsentEventKind::Given;
    let forged = ConsentReceipt::issue(&forger, &record, T0 + 1);
    assert!(
        verify_receipt(&forged, None).is_ok(),
        "self-consistent on its own"
    );
    assert!(invalid(verify_receipt(&forged, Some(device.public_key()))));
    // Swapping in the device's public key without its private key breaks the signature.
    let mut spoofed = forged.clone();
    spoofed.body.signer.public_key = hex::encode(device.public_key());
    spoofed.body.signer.key_id = device.key_id();
    assert!(invalid(verify_receipt(&spoofed, Some(device.public_key()))));
}

#[test]
fn malformed_receipt_documents_get_typed_errors() {
    let k = key(1);
    for doc in ["", "{}", "not json", "{\"body\": 1, \"signature\": \"zz\"}"] {
        assert!(matches!(
            verify_receipt_json(doc, Some(k.public_key())),
            Err(Error::InvalidReceipt { .. })
        ));
    }
    let mut extra: serde_json::Value =
        serde_json::from_str(&issue(&k, ConsentEventKind::Given).to_json()).expect("json");
    extra["body"]["record"]["smuggled"] = serde_json::json!("field");
    assert!(verify_receipt_json(&extra.to_string(), Some(k.public_key())).is_err());
    let huge = " ".repeat(70 * 1024);
    assert!(verify_receipt_json(&huge, None).is_err());
}
