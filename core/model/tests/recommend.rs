//! What a member sees: personalized vs global rankings, exclusions, explanations.

mod common;

use covey_model::*;

struct Fixture {
    pop: SyntheticPopulation,
    model: GlobalModel,
    config: ModelConfig,
}

fn fixture() -> Fixture {
    let pop = common::population(300, 150, 21);
    let eval = common::eval_config();
    let model = common::trained(&pop, &eval, 22);
    Fixture {
        pop,
        model,
        config: eval.model,
    }
}

/// The member with the most distinct items (a clearly personalizable history).
fn rich_history(f: &Fixture) -> MemberHistory {
    f.pop
        .members
        .iter()
        .map(|events| {
            MemberHistory::from_events(f.model.catalog(), events, &f.config.weights, f.pop.end_ms)
        })
        .max_by_key(MemberHistory::len)
        .unwrap()
}

#[test]
fn personalized_ranking_with_history_global_without() {
    let f = fixture();
    let history = rich_history(&f);
    let personal = Recommender::new(&f.model, Some(&history), &f.config).unwrap();
    let recs = personal.recommend(10, &RecommendFilter::default());
    assert_eq!(recs.basis, Basis::Personalized);
    assert_eq!(recs.items.len(), 10);
    assert!(recs.items.windows(2).all(|w| w[0].score >= w[1].score));

    let no_consent = Recommender::new(&f.model, None, &f.config).unwrap();
    let global = no_consent.recommend(10, &RecommendFilter::default());
    assert_eq!(global.basis, Basis::Global(FallbackReason::NoConsent));
    assert_ne!(global.items, recs.items, "personalization changes the list");

    let thin = MemberHistory::from_weighted(
        &[WeightedEvent {
            row: 0,
            weight: 1.0,
            time_ms: 0,
            kind: None,
        }],
        &f.config.weights,
        0,
    );
    let few = Recommender::new(&f.model, Some(&thin), &f.config).unwrap();
    let needed = f.config.min_history_items;
    assert_eq!(
        few.recommend(5, &RecommendFilter::default()).basis,
        Basis::Global(FallbackReason::TooLittleHistory { items: 1, needed })
    );
    // The global ranking is the same for everyone it applies to.
    assert_eq!(
        few.recommend(10, &RecommendFilter::default()).items,
        global.items
    );
}

#[test]
fn exclusions_are_applied() {
    let mut f = fixture();
    let history = rich_history(&f);
    let all = Recommender::new(&f.model, Some(&history), &f.config)
        .unwrap()
        .recommend(150, &RecommendFilter::default());
    let bought: Vec<&str> = history
        .items()
        .iter()
        .filter(|e| e.main_kind == Some(covey_store::EventKind::Purchase))
        .map(|e| f.model.catalog().item(e.row).unwrap().id.as_str())
        .collect();
    assert!(
        all.items
            .iter()
            .any(|r| bought.contains(&r.item_id.as_str())),
        "repeats allowed by default"
    );

    let filter = RecommendFilter {
        exclude_bought: true,
        ..RecommendFilter::default()
    };
    let fresh = Recommender::new(&f.model, Some(&history), &f.config)
        .unwrap()
        .recommend(150, &filter);
    assert!(
        fresh
            .items
            .iter()
            .all(|r| !bought.contains(&r.item_id.as_str()))
    );

    let top = all.items[0].item_id.clone();
    let filter = RecommendFilter {
        exclude_items: vec![top.clone()],
        category: Some("cat-003".into()),
        ..RecommendFilter::default()
    };
    let recs = Recommender::new(&f.model, Some(&history), &f.config)
        .unwrap()
        .recommend(10, &filter);
    assert!(!recs.items.is_empty());
    for r in &recs.items {
        assert_ne!(r.item_id, top);
        assert_eq!(
            f.model
                .catalog()
                .item(f.model.catalog().row(&r.item_id).unwrap())
                .unwrap()
                .category,
            "cat-003"
        );
    }

    f.model.set_available(&top, false).unwrap();
    let recs = Recommender::new(&f.model, Some(&history), &f.config)
        .unwrap()
        .recommend(150, &RecommendFilter::default());
    assert!(
        recs.items.iter().all(|r| r.item_id != top),
        "unavailable items never shown"
    );
    assert!(recs.items.iter().all(|r| {
        f.model
            .catalog()
            .item(f.model.catalog().row(&r.item_id).unwrap())
            .unwrap()
            .available
    }));
}

#[test]
fn explanations_name_history_items_or_say_no_personal_data() {
    let f = fixture();
    let history = rich_history(&f);
    let rec = Recommender::new(&f.model, Some(&history), &f.config).unwrap();
    let filter = RecommendFilter {
        exclude_bought: true,
        ..RecommendFilter::default()
    };
    let top = rec.recommend(3, &filter);
    let mut personal = 0;
    for item in &top.items {
        match rec.explain(&item.item_id).unwrap() {
            Explanation::Because { items } => {
                personal += 1;
                assert!(!items.is_empty() && items.len() <= 3);
                assert!(items.windows(2).all(|w| w[0].share >= w[1].share));
                for c in &items {
                    let row = f.model.catalog().row(&c.item_id).unwrap();
                    assert!(
                        history.contains(row),
                        "explanations only cite the member's own items"
                    );
                    assert!(c.share > 0.0 && c.share <= 1.0);
                }
                let text = rec.explain(&item.item_id).unwrap().text();
                assert!(text.starts_with("Because you "), "{text}");
            }
            Explanation::NoPersonalData { reason } => assert_eq!(reason, None),
        }
    }
    assert!(
        personal > 0,
        "a rich history explains at least one of its top items"
    );

    let global = Recommender::new(&f.model, None, &f.config).unwrap();
    let e = global.explain(&top.items[0].item_id).unwrap();
    assert_eq!(
        e,
        Explanation::NoPersonalData {
            reason: Some(FallbackReason::NoConsent)
        }
    );
    assert!(e.text().contains("no personal data"));
    assert!(matches!(
        global.explain("no-such-item"),
        Err(Error::UnknownItem)
    ));
}
