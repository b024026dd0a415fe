//! The privacy center's plain-language layer and metrics, generated from the registry.

mod common;

use common::{T0, context, member_tap};
use covey_sdk::audit_entry::{AuditEntry, AuditEvent, NoiseParams, UploadRecord};
use covey_sdk::consent::{
    ConsentEventKind, ConsentState, DataCategory, Egress, LegalBasis, Necessity, PurposeId, Terms,
    derive_status,
};
use covey_sdk::notice::Notice;
use covey_sdk::privacy::{PLAIN_SUMMARY_MAX_WORDS, summarize};
use covey_sdk::purpose::{PurposeRegistry, PurposeSpec};
use covey_sdk::record::new_record;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn host_purpose(id: &str) -> PurposeSpec {
    PurposeSpec {
        id: PurposeId::new(id).expect("id"),
        title: format!("Partner offers {id}"),
        description: "show offers from partner brands chosen on your phone".into(),
        terms: Terms::new(
            vec![DataCategory::Purchases],
            vec![],
            Egress::StaysOnDevice,
            30,
        ),
        necessity: Necessity::Optional,
        legal_basis: LegalBasis::Consent,
        processing_locus: "on_device".into(),
        dpv_purposes: vec!["dpv:PersonalisedAdvertising".into()],
        fideslang_use: "marketing.advertising.first_party".into(),
        validity_days: Some(180),
    }
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

#[test]
fn summary_reflects_choices_uses_and_egress_within_150_words() {
    let registry = PurposeRegistry::with_builtins();
    let notice = Notice::new("p", 1, "en", "text", &registry).expect("notice");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let decide = |p: PurposeId, k, rng: &mut ChaCha20Rng| {
        new_record(
            &context(),
            &notice,
            registry.get(&p).expect("p"),
            k,
            member_tap(),
            T0,
            rng,
        )
    };
    let records = vec![
        decide(
            PurposeId::personalization(),
            ConsentEventKind::Requested,
            &mut rng,
        ),
        decide(
            PurposeId::personalization(),
            ConsentEventKind::Given,
            &mut rng,
        ),
        decide(
            PurposeId::federated_training(),
            ConsentEventKind::Given,
            &mut rng,
        ),
        decide(
            PurposeId::federated_training(),
            ConsentEventKind::Withdrawn,
            &mut rng,
        ),
        decide(PurposeId::analytics(), ConsentEventKind::Refused, &mut rng),
    ];
    let statuses: Vec<_> = registry
        .iter()
        .map(|s| derive_status(&s.id, &records, notice.terms(&s.id), T0))
        .collect();
    let upload = UploadRecord {
        round: 4,
        bytes: 40_960,
        clip_norm: 1.0,
        noise: NoiseParams {
            mechanism: "skellam".into(),
            stddev: 2.5,
            bits: 20,
        },
        epsilon: 0.25,
        delta: 1e-6,
    };
    let audit = vec![
        AuditEntry {
            index: 0,
            time_ms: T0,
            event: AuditEvent::Read {
                purpose: PurposeId::personalization(),
                component: "recommender".into(),
                categories: vec![DataCategory::Purchases],
                rows: 12,
            },
        },
        AuditEntry {
            index: 1,
            time_ms: T0 + 5,
            event: AuditEvent::Read {
                purpose: PurposeId::personalization(),
                component: "recommender".into(),
                categories: vec![DataCategory::Purchases],
                rows: 3,
            },
        },
        AuditEntry {
            index: 2,
            time_ms: T0 + 6,
            event: AuditEvent::Upload(upload.clone()),
        },
        AuditEntry {
            index: 3,
            time_ms: T0 + 7,
            event: AuditEvent::Upload(upload),
        },
    ];
    let s = summarize(&registry, &statuses, &records, &audit, vec![]);
    assert!(
        words(&s.plain_language) <= PLAIN_SUMMARY_MAX_WORDS,
        "{}",
        s.plain_language
    );
    assert!(s.plain_language.contains("You allowed: Personal offers"));
    assert!(
        s.plain_language
            .contains("You withdrew: Improve recommendations for everyone")
    );
    assert!(
        s.plain_language
            .contains("You declined: Anonymous program statistics")
    );
    let state = |p: PurposeId| s.purposes.iter().find(|x| x.purpose == p).expect("p").state;
    assert_eq!(state(PurposeId::analytics()), ConsentState::Refused);
    assert_eq!(s.data_uses.len(), 1);
    assert_eq!((s.data_uses[0].reads, s.data_uses[0].rows), (2, 15));
    assert_eq!(s.egress.len(), 2);
    assert!((s.cumulative_epsilon - 0.5).abs() < 1e-12);
    assert_eq!(s.last_upload_ms, Some(T0 + 7));
    assert_eq!(s.last_training_ms, None);
    assert_eq!(s.metrics.prompts_shown, 1);
    assert_eq!(s.metrics.withdrawals, 1);
    assert!((s.metrics.consent_rate - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn plain_summary_stays_within_150_words_with_many_host_purposes() {
    let mut registry = PurposeRegistry::with_builtins();
    for i in 0..12 {
        registry
            .register(host_purpose(&format!("partner_{i}")))
            .expect("register");
    }
    let s = summarize(&registry, &[], &[], &[], vec![]);
    assert!(
        words(&s.plain_language) <= PLAIN_SUMMARY_MAX_WORDS,
        "{}",
        s.plain_language
    );
    assert!(s.plain_language.starts_with("Your loyalty history"));
}

#[test]
fn incomplete_host_purposes_are_rejected() {
    let mut registry = PurposeRegistry::with_builtins();
    let mut no_categories = host_purpose("a");
    no_categories.terms.data_categories.clear();
    assert!(registry.register(no_categories).is_err());
    let mut egress_without_recipient = host_purpose("b");
    egress_without_recipient.terms.egress = Egress::Other {
        description: "totals".into(),
    };
    assert!(registry.register(egress_without_recipient).is_err());
    let mut no_dpv = host_purpose("c");
    no_dpv.dpv_purposes = vec!["Marketing".into()];
    assert!(registry.register(no_dpv).is_err());
    registry.register(host_purpose("d")).expect("complete");
    assert!(registry.register(host_purpose("d")).is_err(), "duplicate");
    assert!(PurposeId::new("Bad-Id").is_err());
    assert!(PurposeId::new("").is_err());
}
