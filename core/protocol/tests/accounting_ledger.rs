//! The accountants as the server's privacy ledger and the round planner use them: one event
//! per round with that round's actual survivors, heterogeneous rounds, distributed noise,
//! calibration of distributed noise, persisted events, and typed errors on bad input.

use covey_protocol::accounting::{
    Accountant, AccountantKind, Error, Mechanism, PldAccountant, PrivacyEvent, RdpAccountant,
    Sampling, calibrate, epsilon_for_events,
};

fn skellam_round(survivors: u64, local_mu: f64, q: f64) -> PrivacyEvent {
    PrivacyEvent {
        mechanism: Mechanism::Skellam {
            l1_sensitivity: 4.0e4,
            l2_sensitivity: 1.0e3,
            local_mu,
            survivors,
        },
        sampling: Sampling::Poisson { rate: q },
        count: 1,
    }
}

#[test]
fn composing_round_by_round_equals_composing_the_schedule() {
    let a = PrivacyEvent::subsampled_gaussian(1.1, 0.01, 1);
    let b = PrivacyEvent::subsampled_gaussian(0.9, 0.02, 1);
    let schedule = [
        PrivacyEvent { count: 6, ..a },
        PrivacyEvent { count: 4, ..b },
    ];
    let mut rounds = Vec::new();
    for i in 0..10 {
        rounds.push(if i % 5 < 3 { a } else { b });
    }
    for kind in [AccountantKind::Rdp, AccountantKind::Pld] {
        let whole = epsilon_for_events(kind, &schedule, 1e-6).unwrap();
        let ledger = epsilon_for_events(kind, &rounds, 1e-6).unwrap();
        // RDP adds exactly; PLD convolves the same distributions in another order.
        let tolerance = if kind == AccountantKind::Rdp {
            1e-12
        } else {
            1e-3
        };
        assert!(
            (whole - ledger).abs() <= tolerance * whole,
            "{kind}: {whole} vs {ledger}"
        );
    }
}

#[test]
fn epsilon_only_grows_as_rounds_are_charged() {
    let mut ledger = PldAccountant::new();
    assert_eq!(ledger.epsilon(1e-6).unwrap(), 0.0, "nothing spent yet");
    let mut last = 0.0;
    for round in 0..5 {
        ledger
            .compose(&PrivacyEvent::subsampled_gaussian(1.0, 0.01, 10))
            .unwrap();
        let eps = ledger.epsilon(1e-6).unwrap();
        assert!(eps > last, "round {round}: {eps} after {last}");
        last = eps;
    }
}

#[test]
fn dropouts_cost_privacy_because_fewer_noise_shares_reach_the_sum() {
    // 200 rounds; each member's share is sized for 1000 survivors (σ of the sum = 2 Δ₂).
    let schedule = |survivors: u64, local_mu: f64| {
        [PrivacyEvent {
            count: 200,
            ..skellam_round(survivors, local_mu, 0.01)
        }]
    };
    let eps =
        |events: &[PrivacyEvent]| epsilon_for_events(AccountantKind::Rdp, events, 1e-6).unwrap();
    let planned = eps(&schedule(1000, 2.0e3));
    let with_dropouts = eps(&schedule(700, 2.0e3));
    assert!(
        with_dropouts > planned * 1.1,
        "{with_dropouts} vs {planned}"
    );
    // Over-provisioning each share by 1/0.7 restores the planned noise exactly.
    let provisioned = eps(&schedule(700, 2.0e3 / 0.7));
    assert!(
        (provisioned - planned).abs() < 1e-9 * planned,
        "{provisioned} vs {planned}"
    );
}

#[test]
fn skellam_costs_slightly_more_than_the_gaussian_of_equal_variance_and_converges_to_it() {
    // Integer domain: L2 sensitivity Δ, Skellam Sk(μ) of variance 2μ = (zΔ)².
    let orders: Vec<f64> = (2..=256).map(f64::from).collect();
    let z = 1.0;
    let epsilon = |l2: f64| {
        let mu = (z * l2).powi(2) / 2.0;
        let mut skellam = RdpAccountant::with_orders(orders.clone()).unwrap();
        skellam
            .compose(&PrivacyEvent {
                mechanism: Mechanism::Skellam {
                    l1_sensitivity: l2 * l2,
                    l2_sensitivity: l2,
                    local_mu: mu,
                    survivors: 1,
                },
                sampling: Sampling::Full,
                count: 100,
            })
            .unwrap();
        skellam.epsilon(1e-6).unwrap()
    };
    let mut gaussian = RdpAccountant::with_orders(orders.clone()).unwrap();
    gaussian
        .compose(&PrivacyEvent::subsampled_gaussian(z, 1.0, 100))
        .unwrap();
    let gauss = gaussian.epsilon(1e-6).unwrap();
    let (coarse, fine) = (epsilon(100.0), epsilon(10_000.0));
    assert!(coarse > fine && fine > gauss, "{coarse} > {fine} > {gauss}");
    assert!((fine - gauss) / gauss < 1e-3, "{fine} vs {gauss}");
}

#[test]
fn distributed_discrete_gaussian_without_inflation_is_the_gaussian() {
    // Wide local noise: τ ≈ 0, and the sum of n shares of scale σ_l has σ = √n σ_l.
    let orders: Vec<f64> = (2..=64).map(f64::from).collect();
    let (members, local, l2) = (100_u64, 50.0, 500.0);
    let z = local * (members as f64).sqrt() / l2;
    let mut ddg = RdpAccountant::with_orders(orders.clone()).unwrap();
    ddg.compose(&PrivacyEvent {
        mechanism: Mechanism::DistributedDiscreteGaussian {
            l1_sensitivity: l2 * 30.0,
            l2_sensitivity: l2,
            local_stddev: local,
            survivors: members,
            dimension: 1 << 16,
        },
        sampling: Sampling::Full,
        count: 10,
    })
    .unwrap();
    let mut gauss = RdpAccountant::with_orders(orders).unwrap();
    gauss
        .compose(&PrivacyEvent::subsampled_gaussian(z, 1.0, 10))
        .unwrap();
    for (a, b) in ddg.rdp().iter().zip(gauss.rdp()) {
        assert!((a - b).abs() <= 1e-12 * b, "{a} vs {b}");
    }
}

#[test]
fn subsampling_amplifies_distributed_mechanisms() {
    let full = epsilon_for_events(
        AccountantKind::Rdp,
        &[PrivacyEvent {
            sampling: Sampling::Full,
            ..skellam_round(1000, 2.0e6, 1.0)
        }],
        1e-6,
    )
    .unwrap();
    let poisson = epsilon_for_events(
        AccountantKind::Rdp,
        &[skellam_round(1000, 2.0e6, 0.01)],
        1e-6,
    )
    .unwrap();
    let fixed = epsilon_for_events(
        AccountantKind::Rdp,
        &[PrivacyEvent {
            sampling: Sampling::FixedSizeWithoutReplacement {
                cohort: 1000,
                population: 100_000,
            },
            ..skellam_round(1000, 2.0e6, 0.01)
        }],
        1e-6,
    )
    .unwrap();
    assert!(poisson < full / 5.0, "{poisson} vs {full}");
    // Replace-one doubles the sensitivity: a fixed cohort is amplified but costs more than
    // Poisson sampling at the same rate.
    assert!(
        fixed > poisson && fixed < full,
        "{poisson} < {fixed} < {full}"
    );
}

#[test]
fn calibration_sizes_skellam_noise_for_a_target() {
    let schedule = |local_mu: f64| {
        vec![PrivacyEvent {
            count: 500,
            ..skellam_round(1000, local_mu, 0.01)
        }]
    };
    let mu = calibrate(AccountantKind::Rdp, 3.0, 1e-6, schedule).unwrap();
    let eps = epsilon_for_events(AccountantKind::Rdp, &schedule(mu), 1e-6).unwrap();
    assert!(eps <= 3.0 && eps > 2.99, "{eps} at μ = {mu}");
    let less = epsilon_for_events(AccountantKind::Rdp, &schedule(mu * 0.99), 1e-6).unwrap();
    assert!(less > 3.0);
}

#[test]
fn events_and_accountant_state_persist_as_json() {
    let event = PrivacyEvent {
        mechanism: Mechanism::Skellam {
            l1_sensitivity: 10.0,
            l2_sensitivity: 2.0,
            local_mu: 5.0,
            survivors: 7,
        },
        sampling: Sampling::FixedSizeWithoutReplacement {
            cohort: 7,
            population: 70,
        },
        count: 3,
    };
    let text = serde_json::to_string(&event).unwrap();
    assert!(
        text.contains(r#""kind":"skellam""#)
            && text.contains(r#""kind":"fixed_size_without_replacement""#)
    );
    let back: PrivacyEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(back, event);

    // A ledger's running RDP survives a restart, including an infinite (noise-free) charge.
    let mut ledger = RdpAccountant::new();
    ledger.compose(&event).unwrap();
    let text = serde_json::to_string(&ledger).unwrap();
    assert!(text.starts_with(r#"{"version":1,"#), "{text}");
    let restored: RdpAccountant = serde_json::from_str(&text).unwrap();
    // serde_json without `float_roundtrip` may move the last bit of a float.
    assert_eq!(restored.orders(), ledger.orders());
    for (a, b) in restored.rdp().iter().zip(ledger.rdp()) {
        assert!((a - b).abs() <= 4.0 * f64::EPSILON * b, "{a} vs {b}");
    }
    ledger
        .compose(&PrivacyEvent::subsampled_gaussian(0.0, 1.0, 1))
        .unwrap();
    let restored: RdpAccountant =
        serde_json::from_str(&serde_json::to_string(&ledger).unwrap()).unwrap();
    assert!(restored.epsilon(1e-6).unwrap().is_infinite());

    // Tampered or foreign state is refused, not half-loaded.
    for bad in [
        r#"{"version":2,"orders":[2.0],"rdp":[0.1]}"#,
        r#"{"version":1,"orders":[2.0,3.0],"rdp":[0.1]}"#,
        r#"{"version":1,"orders":[0.5],"rdp":[0.1]}"#,
        r#"{"version":1,"orders":[2.0],"rdp":[-0.1]}"#,
        r#"{"version":1,"orders":[],"rdp":[]}"#,
    ] {
        assert!(serde_json::from_str::<RdpAccountant>(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_input_is_rejected_with_the_parameter_named() {
    let mut rdp = RdpAccountant::new();
    let bad = [
        PrivacyEvent::subsampled_gaussian(-1.0, 0.01, 1),
        PrivacyEvent::subsampled_gaussian(f64::NAN, 0.01, 1),
        PrivacyEvent::subsampled_gaussian(1.0, 1.5, 1),
        PrivacyEvent::subsampled_gaussian(1.0, 0.01, 0),
        PrivacyEvent {
            sampling: Sampling::FixedSizeWithoutReplacement {
                cohort: 11,
                population: 10,
            },
            ..PrivacyEvent::subsampled_gaussian(1.0, 1.0, 1)
        },
        skellam_round(0, 1.0, 0.1),
    ];
    for event in bad {
        assert!(
            matches!(rdp.compose(&event), Err(Error::InvalidParameter { .. })),
            "{event:?}"
        );
    }
    assert_eq!(
        rdp.rdp().iter().sum::<f64>(),
        0.0,
        "rejected events charge nothing"
    );
    assert!(matches!(
        rdp.epsilon(1.5),
        Err(Error::InvalidParameter { name: "delta", .. })
    ));
    let mut pld = PldAccountant::new();
    assert!(matches!(
        pld.compose(&skellam_round(10, 1.0, 0.1)),
        Err(Error::Unsupported { .. })
    ));
    assert!(RdpAccountant::with_orders(vec![0.5]).is_err());
}

#[test]
fn a_release_without_noise_has_infinite_epsilon() {
    for kind in [AccountantKind::Rdp, AccountantKind::Pld] {
        let eps = epsilon_for_events(
            kind,
            &[PrivacyEvent::subsampled_gaussian(0.0, 0.1, 1)],
            1e-6,
        )
        .unwrap();
        assert!(eps.is_infinite(), "{kind}: {eps}");
    }
}

#[test]
fn an_oversized_distribution_is_a_typed_error() {
    let mut pld = PldAccountant::with_discretization(1e-4, 1 << 16).unwrap();
    let result = pld.compose(&PrivacyEvent::subsampled_gaussian(0.5, 0.01, 100));
    assert!(
        matches!(result, Err(Error::DistributionTooLarge { .. })),
        "{result:?}"
    );
}
