//! Choosing the Harary-graph degree k and the Shamir threshold t (Bell et al. 2020, §4 and
//! Appendix; the same analysis as Google's `graph_parameter_finder`).
//!
//! Setting: n members, at most ⌊γn⌋ of them adversarial (colluding with the server) and at
//! most ⌊δn⌋ dropping out, both sets placed at random by the random permutation under the
//! Harary graph. Each member secret-shares its two seeds among its k neighbours (k even: k/2
//! on each side of the ring).
//!
//! A degree k is acceptable when three bad events are each rare enough:
//!
//! 1. **Disconnection** (privacy): the graph of honest survivors splits, so the server would
//!    learn a partial sum. Cutting a Harary graph of degree k takes two runs of k/2
//!    consecutive removed (bad) nodes. There are at most n (n − k − 1) / 2 pairs of such runs
//!    and each run pair is k fixed nodes, all bad with probability
//!    `b!/(b−k)! · (n−k)!/n!` (sampling without replacement, b = ⌊γn⌋ + ⌊δn⌋ bad nodes).
//!    The union bound must stay below 2^−(σ+1).
//! 2. **Too many adversarial neighbours** (privacy): a member's number of adversarial
//!    neighbours A is hypergeometric (population n, ⌊γn⌋ marked, k draws). The threshold must
//!    exceed it: t ≥ t_min where Pr(A ≥ t_min) ≤ 2^−(σ+1) / n (union bound over members).
//!    Against a semi-malicious server, which can make honest neighbours disagree about who
//!    dropped, both halves of a member's secret stay safe only if 2t > k + A, so
//!    t_min = ⌊(k + a)/2⌋ + 1 with a the same quantile of A.
//! 3. **Too few surviving neighbours** (correctness): S ~ hypergeometric (population n,
//!    ⌈(1−δ)n⌉ marked, k draws); reconstruction needs t ≤ t_max where
//!    Pr(S < t_max) ≤ 2^−η / n.
//!
//! The finder returns the smallest even k for which t_min ≤ t_max, with t = t_min (the
//! smallest safe threshold is the cheapest to reconstruct, and never below 2). σ = 40, η = 20.
//! When no k < n − 1 works (small cohorts), the complete graph (k = n − 1) is tried with the
//! same tail bounds.

use super::error::{Error, Result};

/// Statistical security parameter σ: privacy fails with probability below 2^-σ.
pub const SECURITY_BITS: f64 = 40.0;
/// Correctness parameter η: the protocol fails with probability below 2^-η.
pub const CORRECTNESS_BITS: f64 = 20.0;
/// Largest cohort the finder accepts.
pub const MAX_MEMBERS: usize = 1_000_000;

/// Guards floor/ceil of γn and δn against rounding in the insecure direction.
const ROUNDING_SLACK: f64 = 1e-14;

/// What the server may do with the shares it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdversaryClass {
    /// Honest-but-curious server (follows the protocol, tries to learn from what it sees).
    SemiHonest,
    /// The server may also lie about who dropped out (send honest members different views).
    SemiMalicious,
}

/// The threat model a cohort is sized against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThreatModel {
    /// Fraction γ of members that may collude with the server, in [0, 1).
    pub adversarial_fraction: f64,
    /// Fraction δ of members that may drop out over the whole session, in [0, 1).
    pub dropout_fraction: f64,
    /// Server behaviour assumed.
    pub adversary: AdversaryClass,
}

/// The graph degree and threshold chosen for a cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphParams {
    /// Cohort size n.
    pub members: usize,
    /// Number of neighbours k of each member (n − 1 means the complete graph).
    pub degree: usize,
    /// Shamir threshold t: shares needed to reconstruct a member's secrets.
    pub threshold: usize,
}

impl ThreatModel {
    fn validate(&self, members: usize) -> Result<()> {
        let infeasible = |reason| Err(Error::Infeasible { members, reason });
        if !(2..=MAX_MEMBERS).contains(&members) {
            return infeasible("the cohort must have between 2 and 1,000,000 members");
        }
        if !(0.0..1.0).contains(&self.adversarial_fraction)
            || !(0.0..1.0).contains(&self.dropout_fraction)
        {
            return infeasible("adversarial and dropout fractions must be in [0, 1)");
        }
        let load = match self.adversary {
            AdversaryClass::SemiHonest => self.adversarial_fraction + self.dropout_fraction,
            AdversaryClass::SemiMalicious => {
                self.adversarial_fraction + 2.0 * self.dropout_fraction
            }
        };
        if load > 0.9 {
            return infeasible("adversarial plus dropout load exceeds 0.9");
        }
        Ok(())
    }

    fn counts(&self, members: usize) -> (usize, usize) {
        let n = members as f64;
        let adversarial = ((self.adversarial_fraction + ROUNDING_SLACK) * n).floor() as usize;
        let dropouts = ((self.dropout_fraction + ROUNDING_SLACK) * n).floor() as usize;
        (adversarial.min(members), dropouts.min(members))
    }
}

/// Finds the smallest (k, t) meeting the 2^-40 privacy and 2^-20 failure targets.
pub fn find(members: usize, threat: &ThreatModel) -> Result<GraphParams> {
    threat.validate(members)?;
    let max_harary = members.saturating_sub(2);
    for degree in (2..=max_harary).step_by(2) {
        if let Some(threshold) = threshold_for(members, degree, threat, true) {
            return Ok(GraphParams {
                members,
                degree,
                threshold,
            });
        }
    }
    threshold_for(members, members - 1, threat, false)
        .map(|threshold| GraphParams {
            members,
            degree: members - 1,
            threshold,
        })
        .ok_or(Error::Infeasible {
            members,
            reason: "not even the complete graph suffices",
        })
}

/// The threshold for a fixed degree (what `--degree` asks for), if one is safe.
pub fn for_degree(members: usize, degree: usize, threat: &ThreatModel) -> Result<GraphParams> {
    threat.validate(members)?;
    let complete = degree == members - 1;
    if degree == 0 || degree >= members || (!complete && degree % 2 == 1) {
        return Err(Error::InvalidParams(
            "degree must be even and below n - 1, or exactly n - 1",
        ));
    }
    threshold_for(members, degree, threat, !complete)
        .map(|threshold| GraphParams {
            members,
            degree,
            threshold,
        })
        .ok_or(Error::Infeasible {
            members,
            reason: "no safe threshold for this degree",
        })
}

fn threshold_for(
    members: usize,
    degree: usize,
    threat: &ThreatModel,
    check_connectivity: bool,
) -> Option<usize> {
    let per_event = (-(SECURITY_BITS + 1.0)).exp2();
    let (adversarial, dropouts) = threat.counts(members);
    if check_connectivity
        && log_disconnection_bound(members, degree, adversarial + dropouts) >= per_event.ln()
    {
        return None;
    }
    let n = members as f64;
    // Smallest a with P[A > a] <= per_event / n.
    let adversarial_neighbours = Hypergeometric::new(members, adversarial, degree);
    let a = adversarial_neighbours.upper_quantile(per_event / n);
    let t_min = match threat.adversary {
        AdversaryClass::SemiHonest => a + 1,
        AdversaryClass::SemiMalicious => (degree + a) / 2 + 1,
    }
    .max(2); // t = 1 would hand a secret to a single neighbour in the clear
    // Largest t with P[S < t] <= 2^-eta / n.
    let survivors = members - dropouts;
    let surviving_neighbours = Hypergeometric::new(members, survivors, degree);
    let t_max = surviving_neighbours.lower_quantile((-CORRECTNESS_BITS).exp2() / n);
    (t_min <= t_max).then_some(t_min)
}

/// ln of the union bound on a Harary graph of `degree` being cut by `bad` random removals.
fn log_disconnection_bound(members: usize, degree: usize, bad: usize) -> f64 {
    if degree > bad {
        return f64::NEG_INFINITY;
    }
    let n = members as f64;
    let pairs = (n.ln() + ((members - degree - 1) as f64).ln()) - 2f64.ln();
    // ln[ bad!/(bad-k)! * (n-k)!/n! ] = sum_j ln((bad - j) / (n - j)).
    let all_bad: f64 = (0..degree)
        .map(|j| ((bad - j) as f64 / (members - j) as f64).ln())
        .sum();
    pairs + all_bad
}

/// Hypergeometric distribution: `draws` from `population` items of which `marked` count.
#[derive(Debug)]
struct Hypergeometric {
    pmf: Vec<f64>,
}

impl Hypergeometric {
    fn new(population: usize, marked: usize, draws: usize) -> Self {
        let lo = (draws + marked).saturating_sub(population);
        let hi = draws.min(marked);
        let mut pmf = vec![0.0; draws + 1];
        // ln P[X = lo] from log-binomials, then the ratio recurrence up to hi.
        let mut log_p = ln_choose(marked, lo) + ln_choose(population - marked, draws - lo)
            - ln_choose(population, draws);
        for (i, slot) in pmf.iter_mut().enumerate().take(hi + 1).skip(lo) {
            *slot = log_p.exp();
            if i < hi {
                let ratio = ((marked - i) as f64 * (draws - i) as f64)
                    / ((i + 1) as f64 * (population - marked + i + 1 - draws) as f64);
                log_p += ratio.ln();
            }
        }
        Hypergeometric { pmf }
    }

    /// Smallest a with Pr(X > a) <= p.
    fn upper_quantile(&self, p: f64) -> usize {
        let mut tail = 0.0;
        for a in (0..self.pmf.len()).rev() {
            if tail + self.pmf[a] > p {
                return a;
            }
            tail += self.pmf[a];
        }
        0
    }

    /// Largest t with Pr(X < t) <= p.
    fn lower_quantile(&self, p: f64) -> usize {
        let mut below = 0.0;
        for t in 0..self.pmf.len() {
            if below + self.pmf[t] > p {
                return t;
            }
            below += self.pmf[t];
        }
        self.pmf.len()
    }
}

/// ln C(n, k) as a sum of k logs: k is at most a degree here, so this stays cheap.
fn ln_choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (1..=k).map(|j| ((n - k + j) as f64 / j as f64).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threat(adversarial: f64, dropout: f64, adversary: AdversaryClass) -> ThreatModel {
        ThreatModel {
            adversarial_fraction: adversarial,
            dropout_fraction: dropout,
            adversary,
        }
    }

    #[test]
    fn hypergeometric_sums_to_one_and_matches_a_hand_value() {
        let h = Hypergeometric::new(10, 4, 3);
        assert!((h.pmf.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // P[X = 2] = C(4,2) C(6,1) / C(10,3) = 36 / 120.
        assert!((h.pmf[2] - 0.3).abs() < 1e-12);
        assert_eq!(h.upper_quantile(0.0), 3);
        assert_eq!(h.lower_quantile(0.0), 0);
    }

    #[test]
    fn thousand_members_five_percent_adversarial_third_dropping() {
        let p = find(1000, &threat(0.05, 0.33, AdversaryClass::SemiHonest)).unwrap();
        assert!((70..80).contains(&p.degree), "{p:?}");
        assert!((20..30).contains(&p.threshold), "{p:?}");
    }

    #[test]
    fn the_heavier_threats_need_bigger_graphs() {
        let light = find(1000, &threat(0.05, 0.33, AdversaryClass::SemiHonest)).unwrap();
        let heavy = find(1000, &threat(0.33, 0.33, AdversaryClass::SemiHonest)).unwrap();
        let malicious = find(1000, &threat(0.3, 0.3, AdversaryClass::SemiMalicious)).unwrap();
        assert!(light.degree < heavy.degree && heavy.degree < malicious.degree);
        assert!(2 * malicious.threshold > malicious.degree);
    }

    #[test]
    fn degree_grows_logarithmically_with_the_cohort() {
        let t = threat(0.05, 0.33, AdversaryClass::SemiHonest);
        let k3 = find(1_000, &t).unwrap().degree;
        let k4 = find(10_000, &t).unwrap().degree;
        let k5 = find(100_000, &t).unwrap().degree;
        assert!(k3 < k4 && k4 < k5 && k5 < 2 * k3, "{k3} {k4} {k5}");
    }

    /// The published table of Google's finder (same analysis): our derivation must agree.
    #[test]
    fn matches_the_reference_points() {
        use AdversaryClass::{SemiHonest, SemiMalicious};
        let cases = [
            (100, 0.05, 0.33, SemiHonest, 28, 6),
            (100, 0.33, 0.33, SemiHonest, 68, 34),
            (100, 0.33, 0.05, SemiHonest, 34, 29),
            (100, 0.3, 0.3, SemiMalicious, 92, 62),
            (1000, 0.33, 0.33, SemiHonest, 286, 150),
            (1000, 0.33, 0.05, SemiHonest, 78, 60),
            (1000, 0.3, 0.3, SemiMalicious, 872, 584),
            (10_000, 0.05, 0.33, SemiHonest, 86, 29),
            (10_000, 0.33, 0.05, SemiHonest, 92, 70),
        ];
        for (n, g, d, class, k, t) in cases {
            let p = find(n, &threat(g, d, class)).unwrap();
            assert_eq!(
                (p.degree, p.threshold),
                (k, t),
                "n={n} γ={g} δ={d} {class:?}"
            );
        }
    }

    #[test]
    fn small_cohorts_fall_back_to_the_complete_graph() {
        let p = find(20, &threat(0.3, 0.3, AdversaryClass::SemiMalicious)).unwrap();
        assert_eq!(p.degree, 19);
        assert!(2 * p.threshold > p.degree && p.threshold <= 19 - 6, "{p:?}");
    }

    #[test]
    fn infeasible_requests_are_typed_errors() {
        assert!(matches!(
            find(1000, &threat(0.5, 0.5, AdversaryClass::SemiHonest)),
            Err(Error::Infeasible { .. })
        ));
        assert!(find(1, &threat(0.0, 0.0, AdversaryClass::SemiHonest)).is_err());
        assert!(find(10, &threat(0.3, 0.3, AdversaryClass::SemiMalicious)).is_err());
        assert!(for_degree(100, 7, &threat(0.0, 0.1, AdversaryClass::SemiHonest)).is_err());
        assert!(for_degree(100, 100, &threat(0.0, 0.1, AdversaryClass::SemiHonest)).is_err());
    }

    #[test]
    fn fixed_degree_yields_a_threshold_between_the_bounds() {
        let p = for_degree(200, 40, &threat(0.05, 0.1, AdversaryClass::SemiHonest)).unwrap();
        assert!(p.threshold > 2 && p.threshold < 36, "{p:?}");
    }
}
