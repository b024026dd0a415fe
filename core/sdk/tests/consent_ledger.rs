//! Consent state, prompts and grants through the device, over a real store.

mod common;

use std::collections::BTreeMap;

use common::{Fixture, T0, config};
use covey_sdk::Error;
use covey_sdk::consent::{
    ConsentEventKind, ConsentState, DataCategory, PurposeId, TermChange, Terms,
};
use covey_sdk::grant::{Analytics, FederatedTraining, Personalization, PurposeGrant};
use covey_sdk::notice::PromptReason;
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::DAY_MS;
use covey_store::{Clock, HistoryQuery};
use proptest::prelude::*;

fn ids() -> [PurposeId; 3] {
    [
        PurposeId::personalization(),
        PurposeId::federated_training(),
        PurposeId::analytics(),
    ]
}

fn can_access(fx: &Fixture, p: &PurposeId) -> bool {
    let d = fx.device();
    match p.as_str() {
        "personalization" => d.grant::<Personalization>("t").is_ok(),
        "federated_training" => d.grant::<FederatedTraining>("t").is_ok(),
        _ => d.grant::<Analytics>("t").is_ok(),
    }
}

/// Publishes notice version `version`; with `material`, that purpose's retention changes.
fn bump_notice(fx: &mut Fixture, registry: &mut PurposeRegistry, material: Option<&PurposeId>) {
    if let Some(p) = material {
        let mut spec = registry.get(p).expect("known").clone();
        spec.terms.retention_days += 1;
        registry.update(spec).expect("update");
    }
    let version = fx.device().notice().version + 1;
    fx.reopen_device(config(registry.clone(), version));
}

#[test]
fn nothing_is_granted_before_consent_and_refusal_keeps_it_so() {
    let fx = Fixture::new();
    let p = PurposeId::personalization();
    assert!(matches!(
        fx.device().grant::<Personalization>("recommender"),
        Err(Error::ConsentRequired { purpose }) if purpose == p
    ));
    fx.device()
        .record_prompt_shown(&p, "onboarding")
        .expect("shown");
    assert_eq!(
        fx.device().status(&p).expect("s").state,
        ConsentState::NotAsked
    );
    assert!(fx.device().status(&p).expect("s").pending_request);
    fx.decide(&p, ConsentEventKind::Refused);
    assert_eq!(
        fx.device().status(&p).expect("s").state,
        ConsentState::Refused
    );
    assert!(fx.device().grant::<Personalization>("recommender").is_err());
}

#[test]
fn decisions_need_the_notice_in_force_and_a_known_purpose() {
    let fx = Fixture::new();
    let p = PurposeId::personalization();
    assert!(matches!(
        fx.device().decide(&p, ConsentEventKind::Given, 0, "test"),
        Err(Error::StaleNotice {
            given: 0,
            current: 1
        })
    ));
    let unknown = PurposeId::new("partner_marketing").expect("id");
    assert!(matches!(
        fx.device()
            .decide(&unknown, ConsentEventKind::Given, 1, "test"),
        Err(Error::UnknownPurpose)
    ));
    assert!(
        fx.device()
            .decide(&p, ConsentEventKind::Expired, 1, "test")
            .is_err()
    );
    assert!(
        fx.store.consent_records().is_empty(),
        "nothing was recorded"
    );
}

#[test]
fn refusing_one_purpose_never_changes_another_and_reads_are_scoped() {
    let fx = Fixture::new();
    let [pers, fed, ana] = ids();
    fx.decide(&pers, ConsentEventKind::Given);
    fx.decide(&fed, ConsentEventKind::Refused);
    fx.decide(&ana, ConsentEventKind::Withdrawn);
    let grant = fx
        .device()
        .grant::<Personalization>("recommender")
        .expect("given");
    assert_eq!(grant.purpose(), &pers);
    assert!(fx.device().grant::<FederatedTraining>("trainer").is_err());
    assert!(fx.device().grant::<Analytics>("metrics").is_err());
    fx.store
        .record_events(&[common::purchase("sku-1", T0 - 1000)])
        .expect("record");
    let rows = fx
        .store
        .history(&grant, &HistoryQuery::default())
        .expect("read");
    assert_eq!(rows.len(), 1);
}

#[test]
fn withdrawal_invalidates_outstanding_grants_and_regranting_mints_fresh_ones() {
    let fx = Fixture::new();
    let p = PurposeId::federated_training();
    fx.decide(&p, ConsentEventKind::Given);
    let old = fx
        .device()
        .grant::<FederatedTraining>("trainer")
        .expect("given");
    fx.decide(&p, ConsentEventKind::Withdrawn);
    assert!(old.check().is_err());
    assert!(matches!(
        fx.store.history(&old, &HistoryQuery::default()),
        Err(covey_store::Error::Consent(_))
    ));
    fx.decide(&p, ConsentEventKind::Given);
    assert!(
        old.check().is_err(),
        "a re-grant does not revive old grants"
    );
    let fresh = fx
        .device()
        .grant::<FederatedTraining>("trainer")
        .expect("new");
    assert!(fresh.check().is_ok());
}

#[test]
fn consent_expires_after_its_validity_period_and_expiry_is_recorded() {
    let fx = Fixture::new();
    let p = PurposeId::personalization();
    fx.decide(&p, ConsentEventKind::Given);
    let grant = fx
        .device()
        .grant::<Personalization>("recommender")
        .expect("given");
    fx.clock.advance_ms(364 * DAY_MS);
    assert!(grant.check().is_ok());
    assert!(
        fx.device()
            .prompts_needed()
            .iter()
            .any(|pr| pr.purpose == p && matches!(pr.reason, PromptReason::ExpiresSoon { .. }))
    );
    fx.clock.advance_ms(DAY_MS);
    assert!(grant.check().is_err());
    assert_eq!(
        fx.device().status(&p).expect("s").state,
        ConsentState::Expired
    );
    assert!(fx.device().grant::<Personalization>("recommender").is_err());
    assert_eq!(
        fx.device().expire_lapsed().expect("expire"),
        vec![p.clone()]
    );
    assert!(
        fx.device().expire_lapsed().expect("again").is_empty(),
        "recorded once"
    );
    let last = fx.store.consent_records().last().cloned().expect("record");
    assert_eq!(last.event, ConsentEventKind::Expired);
    assert!(
        fx.device()
            .prompts_needed()
            .iter()
            .any(|pr| pr.purpose == p && pr.reason == PromptReason::Expired)
    );
    fx.decide(&p, ConsentEventKind::Renewed);
    assert!(fx.device().grant::<Personalization>("recommender").is_ok());
}

#[test]
fn wording_only_notice_change_prompts_nothing_and_keeps_grants() {
    let mut fx = Fixture::new();
    let mut registry = PurposeRegistry::with_builtins();
    for p in ids() {
        fx.decide(&p, ConsentEventKind::Given);
    }
    let grant = fx.device().grant::<Analytics>("metrics").expect("given");
    bump_notice(&mut fx, &mut registry, None);
    assert_eq!(fx.device().notice().version, 2);
    assert!(fx.device().prompts_needed().is_empty());
    assert!(grant.check().is_ok());
    assert!(fx.device().grant::<Personalization>("r").is_ok());
}

#[test]
fn material_change_reprompts_only_the_changed_purpose_and_names_the_change() {
    let mut fx = Fixture::new();
    for p in ids() {
        fx.decide(&p, ConsentEventKind::Given);
    }
    let pers_grant = fx
        .device()
        .grant::<Personalization>("recommender")
        .expect("given");
    let pers = PurposeId::personalization();
    let mut registry = PurposeRegistry::with_builtins();
    let mut spec = registry.get(&pers).expect("known").clone();
    spec.terms = Terms::new(
        vec![DataCategory::Purchases, DataCategory::Visits],
        vec!["partner-brand.example".into()],
        spec.terms.egress.clone(),
        spec.terms.retention_days,
    );
    registry.update(spec).expect("update");
    let old_notice = fx.device().notice().clone();
    fx.reopen_device(config(registry, 2));
    assert_eq!(
        old_notice
            .material_changes(fx.device().notice())
            .keys()
            .collect::<Vec<_>>(),
        vec![&pers]
    );
    let prompts = fx.device().prompts_needed();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].purpose, pers);
    assert_eq!(
        prompts[0].reason,
        PromptReason::TermsChanged {
            changes: vec![TermChange::DataCategories, TermChange::Recipients]
        }
    );
    assert!(
        pers_grant.check().is_err(),
        "changed terms stop outstanding grants"
    );
    assert!(fx.device().grant::<Personalization>("r").is_err());
    assert!(fx.device().grant::<Analytics>("m").is_ok());
    fx.decide(&pers, ConsentEventKind::Renewed);
    let renewed = fx.device().grant::<Personalization>("r").expect("renewed");
    assert!(fx.device().prompts_needed().is_empty());
    // The new terms no longer declare the personal model: the grant cannot read it.
    assert!(
        fx.store
            .derived_blob(&renewed, "personalization/user_state")
            .is_err()
    );
}

#[test]
fn never_asked_purposes_are_prompted_and_refusals_are_respected() {
    let mut fx = Fixture::new();
    let prompts = fx.device().prompts_needed();
    assert_eq!(prompts.len(), 3);
    assert!(prompts.iter().all(|p| p.reason == PromptReason::NeverAsked));
    fx.decide(&PurposeId::analytics(), ConsentEventKind::Refused);
    let mut registry = PurposeRegistry::with_builtins();
    bump_notice(&mut fx, &mut registry, Some(&PurposeId::analytics()));
    assert!(
        fx.device()
            .prompts_needed()
            .iter()
            .all(|p| p.purpose != PurposeId::analytics())
    );
}

#[test]
fn a_grant_for_one_purpose_cannot_read_categories_it_does_not_declare() {
    let fx = Fixture::new();
    fx.decide(&PurposeId::analytics(), ConsentEventKind::Given);
    let analytics = fx.device().grant::<Analytics>("metrics").expect("given");
    let personal = fx.consented_grant::<Personalization>("recommender");
    fx.store
        .put_derived_blob(&personal, "personalization/user_state", b"vector")
        .expect("blob");
    // Without a grant, derived state cannot be written at all.
    assert!(matches!(
        fx.store.put_blob("personalization/other", b"vector"),
        Err(covey_store::Error::Consent(_))
    ));
    // Analytics reads history categories only, never the personal model.
    assert!(matches!(
        fx.store
            .derived_blob(&analytics, "personalization/user_state"),
        Err(covey_store::Error::Consent(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Decide(usize, ConsentEventKind),
    Advance(i64),
    RecordExpiries,
    NoticeBump(Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(ConsentEventKind::Given),
        Just(ConsentEventKind::Refused),
        Just(ConsentEventKind::Withdrawn),
        Just(ConsentEventKind::Renewed),
        Just(ConsentEventKind::Requested),
    ];
    prop_oneof![
        5 => (0..3usize, kind).prop_map(|(p, k)| Op::Decide(p, k)),
        1 => (0..400i64).prop_map(|d| Op::Advance(d * DAY_MS)),
        1 => Just(Op::RecordExpiries),
        1 => proptest::option::of(0..3usize).prop_map(Op::NoticeBump),
    ]
}

/// A grant minted during the run, and what the oracle expects of it.
struct Outstanding {
    /// Index of its purpose.
    purpose: usize,
    grant: Box<dyn PurposeGrant>,
    /// False once an event or notice ended or changed the purpose's consent.
    alive: bool,
    /// End of validity of the consent it was minted from.
    until: Option<i64>,
}

/// The oracle's view of one purpose: its latest decisive event.
#[derive(Debug, Clone, Default)]
struct Latest {
    kind: Option<ConsentEventKind>,
    terms: Option<Terms>,
    valid_until: Option<i64>,
}

impl Latest {
    fn valid(&self, current: &Terms, now: i64) -> bool {
        matches!(
            self.kind,
            Some(ConsentEventKind::Given | ConsentEventKind::Renewed)
        ) && self.terms.as_ref() == Some(current)
            && self.valid_until.is_none_or(|u| now < u)
    }
}

/// The purposes whose given consent has lapsed by `now`, marked expired in the oracle.
fn oracle_expire(
    ids: &[PurposeId; 3],
    latest: &mut BTreeMap<PurposeId, Latest>,
    now: i64,
) -> Vec<usize> {
    let mut out = vec![];
    for (i, p) in ids.iter().enumerate() {
        if let Some(l) = latest.get_mut(p) {
            let given = matches!(
                l.kind,
                Some(ConsentEventKind::Given | ConsentEventKind::Renewed)
            );
            if given && l.valid_until.is_some_and(|u| u <= now) {
                *l = Latest {
                    kind: Some(ConsentEventKind::Expired),
                    ..Latest::default()
                };
                out.push(i);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Access for purpose P succeeds iff P's latest consent is valid for the current notice;
    /// an outstanding grant keeps working iff nothing ended or changed P's consent since it
    /// was minted. Random grant / refuse / withdraw / renew / expire / notice-bump sequences
    /// over a real store.
    #[test]
    fn access_iff_latest_consent_is_valid(ops in proptest::collection::vec(op(), 1..24)) {
        let mut fx = Fixture::new();
        let mut registry = PurposeRegistry::with_builtins();
        let ids = ids();
        let mut latest: BTreeMap<PurposeId, Latest> = BTreeMap::new();
        let mut outstanding: Vec<Outstanding> = vec![];
        for op in ops {
            let now = fx.clock.now_ms();
            let mut ended: Vec<usize> = vec![];
            match op {
                Op::Decide(i, kind) => {
                    fx.decide(&ids[i], kind);
                    if kind != ConsentEventKind::Requested {
                        let days = registry.get(&ids[i]).expect("known").validity_days;
                        let grants = matches!(kind, ConsentEventKind::Given | ConsentEventKind::Renewed);
                        latest.insert(ids[i].clone(), Latest {
                            kind: Some(kind),
                            terms: fx.device().notice().terms(&ids[i]).cloned(),
                            valid_until: days.filter(|_| grants).map(|d| now + i64::from(d) * DAY_MS),
                        });
                        if !grants {
                            ended.push(i);
                        }
                    }
                }
                Op::Advance(ms) => fx.clock.advance_ms(ms),
                Op::RecordExpiries => {
                    let mut recorded = fx.device().expire_lapsed().expect("expire");
                    let expected = oracle_expire(&ids, &mut latest, now);
                    let mut want: Vec<PurposeId> = expected.iter().map(|i| ids[*i].clone()).collect();
                    recorded.sort();
                    want.sort();
                    prop_assert_eq!(recorded, want);
                    ended.extend(expected);
                }
                Op::NoticeBump(material) => {
                    // Opening the device with the new notice also records lapsed consents.
                    bump_notice(&mut fx, &mut registry, material.map(|i| &ids[i]));
                    ended.extend(material);
                    ended.extend(oracle_expire(&ids, &mut latest, now));
                }
            }
            for g in outstanding.iter_mut().filter(|g| ended.contains(&g.purpose)) {
                g.alive = false;
            }
            let now = fx.clock.now_ms();
            for (i, p) in ids.iter().enumerate() {
                let current = fx.device().notice().terms(p).expect("in notice").clone();
                let valid = latest.get(p).cloned().unwrap_or_default().valid(&current, now);
                prop_assert_eq!(can_access(&fx, p), valid, "purpose {}", p);
                prop_assert_eq!(fx.device().status(p).expect("s").valid_for_processing, valid);
                if valid {
                    let g: Box<dyn PurposeGrant> = match i {
                        0 => Box::new(fx.device().grant::<Personalization>("t").expect("valid")),
                        1 => Box::new(fx.device().grant::<FederatedTraining>("t").expect("valid")),
                        _ => Box::new(fx.device().grant::<Analytics>("t").expect("valid")),
                    };
                    let until = latest.get(p).and_then(|l| l.valid_until);
                    outstanding.push(Outstanding { purpose: i, grant: g, alive: true, until });
                }
            }
            for o in &outstanding {
                let expect_ok = o.alive && o.until.is_none_or(|u| now < u);
                let purpose = &ids[o.purpose];
                prop_assert_eq!(o.grant.check().is_ok(), expect_ok, "outstanding grant for {}", purpose);
                let read = fx.store.history(o.grant.as_ref(), &HistoryQuery::default());
                prop_assert_eq!(read.is_ok(), expect_ok, "read for {}", purpose);
            }
        }
        // Every decision and read above is in the log, and the log verifies.
        let report = fx.device().verify_audit_log().expect("verify");
        prop_assert!(report.is_intact(), "{:?}", report.violations);
    }
}
