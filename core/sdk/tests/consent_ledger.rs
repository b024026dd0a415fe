//! Consent state, prompts and grants over the in-memory ledger (no storage involved).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{T0, TestClock, context, member_tap};
use covey_sdk::consent::{
    ConsentEventKind, ConsentState, DataCategory, PurposeId, TermChange, Terms,
};
use covey_sdk::grant::{
    Analytics, ConsentLedger, FederatedTraining, GrantError, Personalization, PurposeGrant,
};
use covey_sdk::notice::{Notice, PromptReason, prompts_needed};
use covey_sdk::purpose::PurposeRegistry;
use covey_sdk::record::{DAY_MS, new_record};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct World {
    registry: PurposeRegistry,
    notice: Notice,
    clock: Arc<TestClock>,
    ledger: ConsentLedger,
    rng: ChaCha20Rng,
}

impl World {
    fn new() -> Self {
        let registry = PurposeRegistry::with_builtins();
        let notice = Notice::new("loyalty-privacy", 1, "en", "We respect you. v1", &registry)
            .expect("notice");
        let clock = TestClock::at(T0);
        let ledger = ConsentLedger::new(vec![], notice.purposes.clone(), clock.clone());
        Self {
            registry,
            notice,
            clock,
            ledger,
            rng: ChaCha20Rng::seed_from_u64(7),
        }
    }

    fn decide(&mut self, purpose: &PurposeId, kind: ConsentEventKind) {
        let spec = self.registry.get(purpose).expect("known");
        let now = covey_sdk::grant::Clock::now_ms(self.clock.as_ref());
        let record = new_record(
            &context(),
            &self.notice,
            spec,
            kind,
            member_tap(),
            now,
            &mut self.rng,
        );
        self.ledger.append(record);
    }

    /// Publishes a new notice version; with `material`, `purpose`'s retention changes.
    fn bump_notice(&mut self, material: Option<&PurposeId>) {
        if let Some(p) = material {
            let mut spec = self.registry.get(p).expect("known").clone();
            spec.terms.retention_days += 1;
            self.registry.update(spec).expect("update");
        }
        let version = self.notice.version + 1;
        let text = format!("We respect you. v{version}");
        self.notice =
            Notice::new("loyalty-privacy", version, "en", &text, &self.registry).expect("notice");
        self.ledger.set_terms(self.notice.purposes.clone());
    }

    fn statuses(&self) -> Vec<covey_sdk::consent::PurposeStatus> {
        self.registry
            .iter()
            .map(|s| self.ledger.status(&s.id))
            .collect()
    }
}

fn builtin_ids() -> [PurposeId; 3] {
    [
        PurposeId::personalization(),
        PurposeId::federated_training(),
        PurposeId::analytics(),
    ]
}

fn can_access(ledger: &mut ConsentLedger, p: &PurposeId) -> bool {
    match p.as_str() {
        "personalization" => ledger.grant::<Personalization>("t").is_ok(),
        "federated_training" => ledger.grant::<FederatedTraining>("t").is_ok(),
        _ => ledger.grant::<Analytics>("t").is_ok(),
    }
}

#[test]
fn nothing_is_granted_before_consent_and_refusal_keeps_it_so() {
    let mut w = World::new();
    let p = PurposeId::personalization();
    assert_eq!(
        w.ledger
            .grant::<Personalization>("recommender")
            .unwrap_err(),
        GrantError::ConsentRequired(p.clone())
    );
    w.decide(&p, ConsentEventKind::Requested);
    assert_eq!(w.ledger.status(&p).state, ConsentState::NotAsked);
    assert!(w.ledger.status(&p).pending_request);
    w.decide(&p, ConsentEventKind::Refused);
    assert_eq!(w.ledger.status(&p).state, ConsentState::Refused);
    assert!(w.ledger.grant::<Personalization>("recommender").is_err());
}

#[test]
fn refusing_one_purpose_never_changes_another() {
    let mut w = World::new();
    let [pers, fed, ana] = builtin_ids();
    w.decide(&pers, ConsentEventKind::Given);
    w.decide(&fed, ConsentEventKind::Refused);
    w.decide(&ana, ConsentEventKind::Withdrawn);
    let grant = w
        .ledger
        .grant::<Personalization>("recommender")
        .expect("given");
    assert_eq!(grant.purpose(), &pers);
    assert_eq!(grant.component(), "recommender");
    assert!(w.ledger.grant::<FederatedTraining>("trainer").is_err());
    assert!(w.ledger.grant::<Analytics>("metrics").is_err());
    assert!(grant.check().is_ok());
}

#[test]
fn withdrawal_invalidates_outstanding_grants_and_regranting_mints_fresh_ones() {
    let mut w = World::new();
    let p = PurposeId::federated_training();
    w.decide(&p, ConsentEventKind::Given);
    let old = w
        .ledger
        .grant::<FederatedTraining>("trainer")
        .expect("given");
    w.decide(&p, ConsentEventKind::Withdrawn);
    assert_eq!(old.check(), Err(GrantError::Withdrawn(p.clone())));
    w.decide(&p, ConsentEventKind::Given);
    assert!(
        old.check().is_err(),
        "a re-grant does not revive old grants"
    );
    assert!(
        w.ledger
            .grant::<FederatedTraining>("trainer")
            .expect("new")
            .check()
            .is_ok()
    );
}

#[test]
fn consent_expires_after_its_validity_period() {
    let mut w = World::new();
    let p = PurposeId::personalization();
    w.decide(&p, ConsentEventKind::Given);
    let grant = w
        .ledger
        .grant::<Personalization>("recommender")
        .expect("given");
    w.clock.advance(364 * DAY_MS);
    assert!(grant.check().is_ok());
    let prompts = prompts_needed(&w.notice, &w.statuses(), T0 + 364 * DAY_MS, 30 * DAY_MS);
    assert!(
        prompts
            .iter()
            .any(|pr| pr.purpose == p && matches!(pr.reason, PromptReason::ExpiresSoon { .. }))
    );
    w.clock.advance(DAY_MS);
    assert_eq!(grant.check(), Err(GrantError::Expired(p.clone())));
    assert_eq!(w.ledger.status(&p).state, ConsentState::Expired);
    assert!(w.ledger.grant::<Personalization>("recommender").is_err());
    w.decide(&p, ConsentEventKind::Renewed);
    assert!(w.ledger.grant::<Personalization>("recommender").is_ok());
}

#[test]
fn wording_only_notice_change_prompts_nothing_and_keeps_grants() {
    let mut w = World::new();
    for p in builtin_ids() {
        w.decide(&p, ConsentEventKind::Given);
    }
    let grant = w.ledger.grant::<Analytics>("metrics").expect("given");
    w.bump_notice(None);
    assert!(prompts_needed(&w.notice, &w.statuses(), T0, DAY_MS).is_empty());
    assert!(grant.check().is_ok());
    assert!(w.ledger.grant::<Personalization>("r").is_ok());
}

#[test]
fn material_change_reprompts_only_the_changed_purpose_and_names_the_change() {
    let mut w = World::new();
    for p in builtin_ids() {
        w.decide(&p, ConsentEventKind::Given);
    }
    let pers_grant = w
        .ledger
        .grant::<Personalization>("recommender")
        .expect("given");
    let pers = PurposeId::personalization();
    let mut spec = w.registry.get(&pers).expect("known").clone();
    spec.terms = Terms::new(
        vec![DataCategory::Purchases, DataCategory::Visits],
        vec!["partner-brand.example".into()],
        spec.terms.egress.clone(),
        spec.terms.retention_days,
    );
    w.registry.update(spec).expect("update");
    let old_notice = w.notice.clone();
    w.bump_notice(None);
    assert_eq!(
        old_notice
            .material_changes(&w.notice)
            .keys()
            .collect::<Vec<_>>(),
        vec![&pers]
    );
    let prompts = prompts_needed(&w.notice, &w.statuses(), T0, DAY_MS);
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
    assert!(w.ledger.grant::<Personalization>("r").is_err());
    assert!(w.ledger.grant::<Analytics>("m").is_ok());
    w.decide(&pers, ConsentEventKind::Renewed);
    assert!(w.ledger.grant::<Personalization>("r").is_ok());
    assert!(prompts_needed(&w.notice, &w.statuses(), T0, DAY_MS).is_empty());
}

#[test]
fn never_asked_purposes_are_prompted_and_refusals_are_respected() {
    let mut w = World::new();
    let prompts = prompts_needed(&w.notice, &w.statuses(), T0, DAY_MS);
    assert_eq!(prompts.len(), 3);
    assert!(prompts.iter().all(|p| p.reason == PromptReason::NeverAsked));
    w.decide(&PurposeId::analytics(), ConsentEventKind::Refused);
    w.bump_notice(Some(&PurposeId::analytics()));
    let prompts = prompts_needed(&w.notice, &w.statuses(), T0, DAY_MS);
    assert!(prompts.iter().all(|p| p.purpose != PurposeId::analytics()));
}

#[derive(Debug, Clone)]
enum Op {
    Decide(usize, ConsentEventKind),
    Advance(i64),
    NoticeBump(Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(ConsentEventKind::Given),
        Just(ConsentEventKind::Refused),
        Just(ConsentEventKind::Withdrawn),
        Just(ConsentEventKind::Expired),
        Just(ConsentEventKind::Renewed),
        Just(ConsentEventKind::Requested),
    ];
    prop_oneof![
        4 => (0..3usize, kind).prop_map(|(p, k)| Op::Decide(p, k)),
        1 => (0..400i64).prop_map(|d| Op::Advance(d * DAY_MS)),
        1 => proptest::option::of(0..3usize).prop_map(Op::NoticeBump),
    ]
}

/// The oracle's view of one purpose: its latest decisive event.
#[derive(Debug, Clone, Default)]
struct Latest {
    kind: Option<ConsentEventKind>,
    terms: Option<Terms>,
    valid_until: Option<i64>,
}

fn oracle_valid(latest: &Latest, current: &Terms, now: i64) -> bool {
    matches!(
        latest.kind,
        Some(ConsentEventKind::Given | ConsentEventKind::Renewed)
    ) && latest.terms.as_ref() == Some(current)
        && latest.valid_until.is_none_or(|u| now < u)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Access for purpose P succeeds iff P's latest consent is valid for the current notice;
    /// an outstanding grant works iff nothing invalidated P since it was minted.
    #[test]
    fn access_iff_latest_consent_is_valid(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        let ids = builtin_ids();
        let mut latest: BTreeMap<PurposeId, Latest> = BTreeMap::new();
        // (purpose index, grant, still alive per the oracle, valid_until at mint)
        let mut outstanding: Vec<(usize, Box<dyn PurposeGrant>, bool, Option<i64>)> = vec![];
        for op in ops {
            let now = covey_sdk::grant::Clock::now_ms(w.clock.as_ref());
            let mut touched: Vec<usize> = vec![];
            match op {
                Op::Decide(i, kind) => {
                    w.decide(&ids[i], kind);
                    if kind != ConsentEventKind::Requested {
                        let days = w.registry.get(&ids[i]).expect("known").validity_days;
                        let grants = matches!(kind, ConsentEventKind::Given | ConsentEventKind::Renewed);
                        latest.insert(ids[i].clone(), Latest {
                            kind: Some(kind),
                            terms: w.notice.terms(&ids[i]).cloned(),
                            valid_until: days.filter(|_| grants).map(|d| now + i64::from(d) * DAY_MS),
                        });
                    }
                    touched.push(i);
                }
                Op::Advance(ms) => w.clock.advance(ms),
                Op::NoticeBump(material) => {
                    w.bump_notice(material.map(|i| &ids[i]));
                    if let Some(i) = material {
                        for g in outstanding.iter_mut().filter(|g| g.0 == i) {
                            g.2 = false;
                        }
                    }
                }
            }
            let now = covey_sdk::grant::Clock::now_ms(w.clock.as_ref());
            for (i, p) in ids.iter().enumerate() {
                let current = w.notice.terms(p).expect("in notice");
                let valid = oracle_valid(&latest.get(p).cloned().unwrap_or_default(), current, now);
                if touched.contains(&i) && !valid {
                    for g in outstanding.iter_mut().filter(|g| g.0 == i) {
                        g.2 = false;
                    }
                }
                prop_assert_eq!(can_access(&mut w.ledger, p), valid, "purpose {}", p);
                prop_assert_eq!(w.ledger.status(p).valid_for_processing, valid);
                if valid {
                    let g: Box<dyn PurposeGrant> = match i {
                        0 => Box::new(w.ledger.grant::<Personalization>("t").expect("valid")),
                        1 => Box::new(w.ledger.grant::<FederatedTraining>("t").expect("valid")),
                        _ => Box::new(w.ledger.grant::<Analytics>("t").expect("valid")),
                    };
                    let until = latest.get(p).and_then(|l| l.valid_until);
                    outstanding.push((i, g, true, until));
                }
            }
            for (i, g, alive, until) in &outstanding {
                let expect_ok = *alive && until.is_none_or(|u| now < u);
                prop_assert_eq!(g.check().is_ok(), expect_ok, "outstanding grant for {}", ids[*i]);
            }
        }
    }
}
