//! Recommendations through consent: personalized only under a valid personalization grant,
//! the global ranking otherwise (reading no member data, proven on a store whose events are
//! destroyed), local model state erased on withdrawal, reads audit-logged without flooding.

mod common;

use common::{Fixture, T0, dir_bytes, purchase};
use covey_model::{Basis, Explanation, FallbackReason, GlobalModel, RecommendFilter, fixtures};
use covey_sdk::Error;
use covey_sdk::audit_entry::AuditEvent;
use covey_sdk::consent::{ConsentEventKind, PurposeId};
use covey_sdk::grant::Personalization;
use covey_sdk::personalize::{GLOBAL_MODEL_BLOB, LOCAL_STATE_BLOB, RECOMMENDER};
use covey_store::DB_FILE_NAME;
use rusqlite::Connection;

const ITEMS: usize = 40;
const DIM: usize = 8;
const HOUR_MS: i64 = 3_600_000;

fn two_taste_model(version: u64) -> GlobalModel {
    fixtures::two_taste_model(ITEMS, DIM, version).expect("model")
}

fn item(i: usize) -> String {
    fixtures::two_taste_item(ITEMS, i)
}

fn give(fx: &Fixture, kind: ConsentEventKind) {
    fx.decide(&PurposeId::personalization(), kind);
}

/// A member who bought five "a" items over the last days.
fn with_a_history(fx: &Fixture) {
    let events: Vec<_> = (0..5)
        .map(|i| purchase(&item(i), T0 - (i as i64 + 1) * HOUR_MS))
        .collect();
    fx.store.record_events(&events).expect("events");
}

fn recommender_reads(fx: &Fixture) -> usize {
    fx.device()
        .audit_entries()
        .expect("audit")
        .iter()
        .filter(
            |e| matches!(&e.event, AuditEvent::Read { component, .. } if component == RECOMMENDER),
        )
        .count()
}

fn ids(recs: &covey_model::Recommendations) -> Vec<&str> {
    recs.items.iter().map(|r| r.item_id.as_str()).collect()
}

#[test]
fn without_a_model_recommend_says_so() {
    let fx = Fixture::new();
    assert!(matches!(
        fx.device().recommend(5, &RecommendFilter::default()),
        Err(Error::NoModel)
    ));
    assert!(fx.device().global_model().expect("model").is_none());
}

#[test]
fn installed_model_survives_reopen_and_older_versions_are_refused() {
    let mut fx = Fixture::new();
    fx.device()
        .install_model(&two_taste_model(3))
        .expect("install");
    assert!(matches!(
        fx.device().install_model(&two_taste_model(2)),
        Err(Error::StaleModel {
            installed: 3,
            offered: 2
        })
    ));
    fx.reopen(common::config(
        covey_sdk::purpose::PurposeRegistry::with_builtins(),
        1,
    ))
    .expect("reopen");
    let model = fx
        .device()
        .global_model()
        .expect("read")
        .expect("installed");
    assert_eq!(model.version(), 3);
    assert_eq!(model.params(), two_taste_model(3).params());
}

#[test]
fn personalized_only_with_consent_and_enough_history() {
    let fx = Fixture::new();
    let d = fx.device();
    d.install_model(&two_taste_model(1)).expect("install");
    with_a_history(&fx);

    let global = d.recommend(5, &RecommendFilter::default()).expect("global");
    assert_eq!(global.basis, Basis::Global(FallbackReason::NoConsent));
    assert!(
        ids(&global).iter().all(|i| i.starts_with("b-")),
        "{global:?}"
    );
    assert_eq!(
        d.explain("a-7").expect("explain"),
        Explanation::NoPersonalData {
            reason: Some(FallbackReason::NoConsent)
        }
    );

    give(&fx, ConsentEventKind::Given);
    let personal = d
        .recommend(5, &RecommendFilter::default())
        .expect("personal");
    assert_eq!(personal.basis, Basis::Personalized);
    assert!(
        ids(&personal).iter().all(|i| i.starts_with("a-")),
        "{personal:?}"
    );
    let filter = RecommendFilter {
        exclude_bought: true,
        ..RecommendFilter::default()
    };
    let novel = d.recommend(5, &filter).expect("novel");
    assert!(ids(&novel).iter().all(|i| i.starts_with("a-")));
    assert!(
        !ids(&novel)
            .iter()
            .any(|i| ["a-0", "a-1", "a-2", "a-3", "a-4"].contains(i))
    );
    match d.explain(ids(&novel)[0]).expect("explain") {
        Explanation::Because { items } => {
            assert!(!items.is_empty());
            assert!(
                items.iter().all(|c| c.item_id.starts_with("a-")),
                "{items:?}"
            );
        }
        other => panic!("expected a personal explanation, got {other:?}"),
    }
    assert!(matches!(d.explain("no-such-item"), Err(Error::Model(_))));

    // The solved user vector is kept as local state, for the model it was solved against.
    let grant = d.grant::<Personalization>("test").expect("grant");
    let state = d.local_state(&grant).expect("read").expect("kept");
    assert_eq!(state.model_version, 1);
    assert_eq!(state.user_vector.len(), DIM);
}

#[test]
fn too_little_history_falls_back_with_the_reason() {
    let fx = Fixture::new();
    let d = fx.device();
    d.install_model(&two_taste_model(1)).expect("install");
    give(&fx, ConsentEventKind::Given);
    fx.store
        .record_events(&[purchase("a-1", T0 - HOUR_MS)])
        .expect("event");
    let recs = d.recommend(3, &RecommendFilter::default()).expect("recs");
    assert_eq!(
        recs.basis,
        Basis::Global(FallbackReason::TooLittleHistory {
            items: 1,
            needed: 3
        })
    );
    assert!(matches!(
        d.explain("b-30").expect("explain"),
        Explanation::NoPersonalData {
            reason: Some(FallbackReason::TooLittleHistory { .. })
        }
    ));
    // Nothing personal was solved, so nothing is kept.
    let grant = d.grant::<Personalization>("test").expect("grant");
    assert_eq!(d.local_state(&grant).expect("read"), None);
}

/// The privacy officer's proof that the fallback reads no member data: every event row is
/// overwritten with garbage (any read of history now fails with a corruption error), yet
/// the fallback still answers, and the audit log gains no entry at all.
#[test]
fn the_fallback_reads_no_member_data() {
    let fx = Fixture::new();
    let d = fx.device();
    d.install_model(&two_taste_model(1)).expect("install");
    with_a_history(&fx);
    let conn = Connection::open(fx.dir.path().join(DB_FILE_NAME)).expect("db");
    let destroyed = conn
        .execute("UPDATE events SET sealed = zeroblob(length(sealed))", [])
        .expect("destroy");
    assert_eq!(destroyed, 5);
    drop(conn);

    let log_before = d.audit_entries().expect("audit");
    let recs = d
        .recommend(5, &RecommendFilter::default())
        .expect("fallback");
    assert_eq!(recs.basis, Basis::Global(FallbackReason::NoConsent));
    d.explain("b-30").expect("explain");
    assert_eq!(
        d.audit_entries().expect("audit"),
        log_before,
        "no read, no entry"
    );

    // Control: the personalized path does read, and so hits the destroyed rows.
    give(&fx, ConsentEventKind::Given);
    assert!(matches!(
        d.recommend(5, &RecommendFilter::default()),
        Err(Error::Store(_))
    ));
}

#[test]
fn withdrawal_makes_the_very_next_recommend_global_and_erases_local_state() {
    let fx = Fixture::new();
    let d = fx.device();
    d.install_model(&two_taste_model(1)).expect("install");
    with_a_history(&fx);
    give(&fx, ConsentEventKind::Given);
    let personal = d
        .recommend(5, &RecommendFilter::default())
        .expect("personal");
    assert_eq!(personal.basis, Basis::Personalized);
    let state = {
        let grant = d.grant::<Personalization>("test").expect("grant");
        d.local_state(&grant).expect("read").expect("kept")
    };
    let vector_bytes: Vec<u8> = state
        .user_vector
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();

    let decision = d
        .decide(
            &PurposeId::personalization(),
            ConsentEventKind::Withdrawn,
            1,
            "privacy-center",
        )
        .expect("withdraw");
    assert_eq!(decision.erased_items, 1);
    let after = d.recommend(5, &RecommendFilter::default()).expect("after");
    assert_eq!(after.basis, Basis::Global(FallbackReason::NoConsent));
    assert!(ids(&after).iter().all(|i| i.starts_with("b-")));

    let export = d.export().expect("export");
    let names: Vec<&str> = export
        .store
        .model_blobs
        .iter()
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(names, [GLOBAL_MODEL_BLOB]);
    assert!(!names.contains(&LOCAL_STATE_BLOB));
    // No copy of the user vector is left in the database, WAL or shared-memory files.
    assert!(!common::contains(&dir_bytes(fx.dir.path()), &vector_bytes));

    // Consent given again: personalized again, from a fresh read.
    give(&fx, ConsentEventKind::Given);
    let again = d.recommend(5, &RecommendFilter::default()).expect("again");
    assert_eq!(again.basis, Basis::Personalized);
}

#[test]
fn history_reads_are_logged_once_per_change_not_per_call() {
    let fx = Fixture::new();
    let d = fx.device();
    d.install_model(&two_taste_model(1)).expect("install");
    with_a_history(&fx);
    give(&fx, ConsentEventKind::Given);
    for _ in 0..5 {
        d.recommend(5, &RecommendFilter::default()).expect("recs");
        d.explain("a-9").expect("explain");
    }
    // One history read, plus one read of the local state it replaced.
    assert_eq!(recommender_reads(&fx), 2);
    let rows = fx
        .device()
        .audit_entries()
        .expect("audit")
        .into_iter()
        .find_map(|e| match e.event {
            AuditEvent::Read {
                component, rows, ..
            } if component == RECOMMENDER => Some(rows),
            _ => None,
        });
    assert_eq!(rows, Some(5), "the history read logs its row count");

    // A new purchase is used at the next call (and that read is logged).
    fx.store
        .record_events(&[purchase("b-25", T0 - 10)])
        .expect("event");
    d.recommend(5, &RecommendFilter::default()).expect("recs");
    assert_eq!(recommender_reads(&fx), 4);

    // A day later the history is read again (recency and retention move on).
    fx.clock.advance_ms(24 * HOUR_MS);
    d.recommend(5, &RecommendFilter::default()).expect("recs");
    assert_eq!(recommender_reads(&fx), 6);

    // A new model maps items to new rows: read again.
    d.install_model(&two_taste_model(2)).expect("install");
    d.recommend(5, &RecommendFilter::default()).expect("recs");
    assert_eq!(recommender_reads(&fx), 8);
    let grant = d.grant::<Personalization>("test").expect("grant");
    assert_eq!(
        d.local_state(&grant)
            .expect("read")
            .expect("kept")
            .model_version,
        2
    );
}

#[test]
fn derived_state_is_written_only_under_its_own_valid_grant() {
    let fx = Fixture::new();
    let d = fx.device();
    let grant = fx.consented_grant::<Personalization>("test");
    let training = fx.consented_grant::<covey_sdk::grant::FederatedTraining>("test");
    let store = d.store();
    store
        .put_derived_blob(&grant, LOCAL_STATE_BLOB, b"state")
        .expect("own purpose");
    assert!(
        store
            .put_derived_blob(&training, LOCAL_STATE_BLOB, b"x")
            .is_err()
    );
    assert!(
        store
            .put_derived_blob(&grant, "global_model", b"x")
            .is_err()
    );
    give(&fx, ConsentEventKind::Withdrawn);
    assert!(
        store
            .put_derived_blob(&grant, LOCAL_STATE_BLOB, b"again")
            .is_err()
    );
    let names: Vec<String> = d
        .export()
        .expect("export")
        .store
        .model_blobs
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(names.is_empty(), "{names:?}");
}
